"""R-Log's answer written under constraint: structure the model cannot break.

Decoded freely, a small R-Log loops in its analysis until the budget runs out and never
writes the answer (7 of 31 escalations readable in the demo before this). So the answer
is written in steps on one transcript (``rlog.backends.base.Transcript``), in the exact
shape R-Log is trained on:

1. ``<think>`` a short analysis (``explain.think_tokens``), cut at its last full sentence
   (none by default: on 2 CPU cores each token costs ~50 ms, and the shipped 135M R-Log's
   analysis did not make its fields better; a GPU deployment can afford one);
2. ``</think><answer>\\nverdict:`` forced, then normal / abnormal chosen by scoring both
   (its probability is the answer's ``p_abnormal``);
3. ``category:`` forced, then one of the taxonomy chosen by scoring each (probability in
   the alert);
4. ``interpretation:``, ``root_cause: the most likely root cause is``, ``action: the
   recommended fix is to`` forced in turn (the lead-ins: ``explain.lead_ins``), each value a
   short greedy generation that stops at the end of its line, with a repetition penalty.

The answer comes back complete in shape; a value the model left empty (or wrote as
"none") stays empty here, and the cascade fills it from the evidence (``fallback``).
"""

from __future__ import annotations

import re

from rlog.backends.base import Transcript
from rlog.config import ExplainConfig
from rlog.contract.answers import FullAnswer
from rlog.contract.prompts import CATEGORIES, VERDICTS

TEXT_FIELDS = ("interpretation", "root_cause", "action")
# A value ends where the model starts writing the contract's markup again: any closing tag, or a
# new <think>/<answer>; a '<' left dangling at the budget is its first character. (The '<*>' of
# a quoted template is not markup.)
_MARKUP = re.compile(r"</|<(?:think|answer)>|<$")
FIELD_STOPS = ("\n", "</", "<answer>", "<think>")
# What R-Log writes first in a field, echoing the contract's own description of it (``root_cause:
# the most likely root cause``): forced instead of generated (``explain.lead_ins``), they cost one
# forward pass instead of one per token, and the field's budget goes to what it says. The value
# shown is what follows them.
# (Interpretation has none: forced to "the logs show", the shipped R-Log wrote one sentence for
# every incident.)
LEAD_INS = {"root_cause": " the most likely root cause is", "action": " the recommended fix is to"}
# The analysis forced in place of one when ``explain.think_tokens`` is 0; R-Log is trained on exactly
# this line (train/data.py, ``data.full_analysis: placeholder``), so what it learns follows it as served.
NO_ANALYSIS = "The session is analysed from its templates."
# A value that is only the lead-in of one ("the recommended fix", "the most likely root cause is")
# says nothing: empty, so the evidence fills it and the alert names the fallback.
_STEM = re.compile(r"^\W*(the\s+)?(most\s+likely\s+)?(root\s+cause|cause|recommended\s+(fix|action)|fix|action|"
                   r"interpretation)(\s+(is|was|would\s+be))?(\s+to)?\W*$", re.IGNORECASE)
# The contract's own description of a field, parroted back, says nothing either.
_PLACEHOLDER = re.compile(r"^\W*what\s+the\s+logs\s+say\s+happened\W*$", re.IGNORECASE)
_EMPTY = re.compile(r"^\W*(none|n/?a|unknown|null|-+)?\W*$", re.IGNORECASE)


def written_budget(cfg: ExplainConfig) -> int:
    """Most tokens one structured answer writes: the analysis, the forced keys, the choices and the texts."""
    return cfg.think_tokens + 3 * cfg.field_tokens + 64


def tidy_text(text: str, finish: str) -> str:
    """A generated value as shown: one line, trimmed, without markup; cut by the budget, back to its last
    full sentence or word."""
    text = " ".join(text.split())
    m = _MARKUP.search(text)
    if m is not None:
        text = text[: m.start()].rstrip()
    if finish == "length" and text:
        end = max(text.rfind(". "), text.rfind("; "))
        if text.endswith((".", "!", "?")):
            pass
        elif end > 0:  # a whole sentence reads better than a longer broken one
            text = text[: end + 1]
        elif " " in text:
            text = text[: text.rfind(" ")].rstrip(",;:") + " …"
    return "" if _EMPTY.match(text) or _STEM.match(text) or _PLACEHOLDER.match(text) else text


def structured_answer(t: Transcript, cfg: ExplainConfig, *, continue_as: str | None = None,
                      category: tuple[str, float | None] | None = None) -> FullAnswer:
    """Write R-Log's answer on ``t`` (a transcript of the full prompt, prefill ``<think>`` included).

    ``continue_as``: the verdict the rest of the answer is written under, when the cascade
    has already decided it (R-Log-fast flagged the session and R-Log may not clear it);
    R-Log's own verdict and its probability are still scored and returned. ``category``:
    the category (and its probability) the cascade names (``cascade.explain.category``);
    the texts are then written under it, while R-Log's own choice stays in ``fields``.
    """
    base, reasoning = t.text, ""
    if cfg.think_tokens > 0:
        raw, finish = t.generate(cfg.think_tokens, ("</think>",), cfg.repetition_penalty, cfg.no_repeat_ngram)
        reasoning = tidy_text(raw, finish)
    t.reset(base + (reasoning or NO_ANALYSIS) + "</think><answer>\nverdict:")
    p_verdict = t.choose([" " + v for v in VERDICTS], "\n")
    p_abnormal = p_verdict[VERDICTS.index("abnormal")]
    verdict = "abnormal" if p_abnormal >= 0.5 else "normal"
    # The category is chosen with the verdict's line in front of each choice, and the chosen one is
    # then written with the first field's key in one step: a forward pass each saved, same
    # probabilities (the shared part cancels when the choices are renormalised).
    head = f" {continue_as or verdict}\ncategory:"
    p_cat = t.choose([f"{head} {c}" for c in CATEGORIES], "\n")
    best = max(range(len(CATEGORIES)), key=p_cat.__getitem__)
    own, shown, shown_p = CATEGORIES[best], CATEGORIES[best], p_cat[best]
    if category is not None:
        shown, shown_p = category
    written = f"{head} {shown}"
    values: dict[str, str] = {}
    for name in TEXT_FIELDS:
        lead = LEAD_INS.get(name, "") if cfg.lead_ins else ""
        t.extend(f"{written}\n{name}:{lead}")
        written = ""
        raw_value, finish = t.generate(cfg.field_tokens, FIELD_STOPS, cfg.repetition_penalty, cfg.no_repeat_ngram)
        values[name] = tidy_text(raw_value, finish)
    return FullAnswer(verdict, shown, values["interpretation"], values["root_cause"], values["action"],
                      reasoning, fields={"verdict": verdict, "category": own, **values},
                      p_abnormal=round(p_abnormal, 4), category_p=None if shown_p is None else round(shown_p, 4))
