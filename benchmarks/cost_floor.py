"""The cost floor: model calls the cascade's memories would still need with perfect models.

The cost target (model calls per 1,000 lines) mixes two things: how often the models are
wrong in ways that cost calls (unsure scores that escalate, flags that pay R-Log), and how
often a session is simply news to the memories (a template never judged, a new incident).
This runs the real ``Cascade`` (its verdict memory, known-normal templates and open
incidents, in the same order as the scored run, warm-up included) with both stages read
from the labels: R-Log-fast scores 1.0 on abnormal sessions and 0.0 on normal ones, and
R-Log answers the label. What it still calls is what the data and the memory design cost;
the gap to the real run is the models' share.

Labels are looked up by the prompt the cascade builds, so sessions the models could not tell
apart (the same prompt) count as abnormal when any of them is.
"""

from __future__ import annotations

from collections.abc import Sequence

from benchmarks.llm import run_cascade, warm_up
from rlog.backends.base import Generation, GenerationParams
from rlog.cascade.cascade import Cascade
from rlog.config import CascadeConfig
from rlog.contract.prompts import ChatPrompt
from rlog.pipeline.sessions import Session


def _key(p: ChatPrompt) -> tuple:
    return tuple((m["role"], m["content"]) for m in p.messages)


class LabelModel:
    """Both stages answered from the labels (see the module docstring); never a served model."""

    model_id = "labels"
    calibration = None

    def __init__(self) -> None:
        self._labels: dict[tuple, bool] = {}

    def teach(self, cascade: Cascade, sessions: Sequence[Session], labels: Sequence[bool | None]) -> None:
        for s, lab in zip(sessions, labels, strict=True):
            for mode in ("fast", "full"):
                k = _key(cascade.prompt(s, mode))
                self._labels[k] = self._labels.get(k, False) or bool(lab)

    def score(self, prompts: Sequence[ChatPrompt]) -> list[float]:
        return [1.0 if self._labels.get(_key(p), False) else 0.0 for p in prompts]

    def generate(self, prompts: Sequence[ChatPrompt], params: GenerationParams) -> list[Generation]:
        out = []
        for p in prompts:
            verdict = "abnormal" if self._labels.get(_key(p), False) else "normal"
            out.append(Generation(f"</think><answer>verdict: {verdict}</answer>"))
        return out


def cost_floor(cfg: CascadeConfig, fit: Sequence[Session], fit_labels: Sequence[bool | None],
               test: Sequence[Session], test_labels: Sequence[bool], lines: int, *, warm: bool = True) -> dict:
    """Calls per 1,000 scored lines with perfect models, after the same warm-up as the scored run."""
    # R-Log here decodes in batches; the served transformers path writes one answer at a time, so
    # each escalation sees the incidents opened before it: keep that with batches of one
    full = cfg.full.model_copy(update={"batch_size": 1})
    cfg = cfg.model_copy(update={"threshold": 0.5, "band": 0.0, "fusion": False, "full": full})
    model = LabelModel()
    cascade = Cascade(model, model, cfg)  # type: ignore[arg-type]
    model.teach(cascade, [*fit, *test], [*fit_labels, *test_labels])
    if warm:  # the scored run's own warm-up and chunking (benchmarks.llm)
        warm_up(cascade, fit, desc="floor warm-up", progress=False)
    st = run_cascade(cascade, test, desc="floor", progress=False).stats
    per_k = 1000 / lines if lines else 0.0
    return {"fast_calls": st["fast_calls"], "full_calls": st["full_calls"],
            "model_calls_per_1k_lines": round((st["fast_calls"] + st["full_calls"]) * per_k, 2),
            "incident_hits": st["incident_hits"], "explanations_reused": st["explanations_reused"]}
