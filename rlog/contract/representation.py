"""What the models see of a session, for serving and training alike.

The prompt is a pure function of this representation: the verdict cache keys on it, and
train/ and the simulated environment build their prompts from it, so a prompt trained
on is exactly the prompt served.
"""

from __future__ import annotations

from collections.abc import Sequence

from rlog.config import CascadeConfig
from rlog.contract.prompts import ChatPrompt, Mode, session_prompt
from rlog.pipeline.sessions import Session


def sequence_of(session: Session) -> tuple[str, ...]:
    """The session's templates in order with consecutive repeats collapsed."""
    out: list[str] = []
    for ln in session.lines:
        if not out or out[-1] != ln.template:
            out.append(ln.template)
    return tuple(out)


def prompt_for(templates: Sequence[str], mode: Mode, cfg: CascadeConfig) -> ChatPrompt:
    """The prompt for a template sequence: a pure function of it, which makes cached verdicts exact.

    train/ and the simulated environment build prompts here too, so a prompt trained on is
    exactly the prompt served.
    """
    return session_prompt(templates, mode, max_templates=cfg.max_prompt_templates, max_chars=cfg.max_template_chars)
