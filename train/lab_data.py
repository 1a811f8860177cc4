"""Training examples from the fault lab: real daemons, real faults, labelled by the injector.

Each daemon's lines go through the stream's own pipeline (one per daemon, its runs in seed
order, as one long-running deployment reads them), cut as ``rlog analyze`` cuts a run folder.
A session is abnormal when one of its lines is in a fault's trace; its reference answer is the
injector's: the fault's root-cause category, its one-line cause and fix (for R-Log, in the
shape serving writes), and the failing lines it quotes.

Only a daemon's first ``lab_runs`` runs are read, so the runs the ``faultlab`` benchmark scores
(the later ones) are never trained on; ``lab_exclude`` leaves whole daemons out, which is how a
leave-one-daemon-out adapter is made. Splits are chronological per daemon (its oldest sessions
train), and the source of an example is ``lab-<daemon>``, so calibration weighs daemons alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rlog.config import CascadeConfig, load_config
from rlog.contract.evidence import evidence_of
from rlog.contract.prompts import Mode
from rlog.contract.representation import TokenCounter, prompt_for, view_of
from rlog.labcorpus import LabIncident, read_corpus
from rlog.pipeline.lines import Line
from rlog.pipeline.pipeline import Pipeline
from rlog.pipeline.sessions import Session
from train.data import Example, chrono_split
from train.explain_data import as_action, as_root_cause, cap_words, lower_first, served_answer


def _failing_templates(s: Session) -> list[str]:
    return list(dict.fromkeys(ln.template for ln in s.lines if ln.truth is not None and ln.truth.label))


def lab_reference(s: Session, inc: LabIncident | None, mode: Mode) -> str:
    """The ideal completion after the prefill: the injector's account of the fault, grounded in the
    failing lines the session shows."""
    t = s.truth
    if t is None or not t.label:
        why = "Routine operations: no line states an error that does not recover."
        return f"normal</answer><think>{why}</think>" if mode == "fast" else served_answer("normal", analysis=why)
    cited = "; ".join(f'the line "{x[:160]}"' for x in _failing_templates(s)[:3])
    lead = cited[0].upper() + cited[1:] if cited else "The logs state a failure"
    cause = (inc.cause if inc else "unknown").rstrip()
    cause = cause if cause.endswith((".", "!", "?")) else cause + "."
    fix = inc.fix if inc else "investigate the failing daemon"
    what = f"{(inc.fault if inc else t.scenario or 'a fault').replace('_', ' ')} on {inc.daemon if inc else s.source}"
    short = f"{lead}: {what}, which does not recover."
    if mode == "fast":
        return f"abnormal</answer><think>{short}</think>"
    category = inc.root if inc else t.category
    return served_answer("abnormal", category, cap_words(what[0].upper() + what[1:]), as_root_cause(cause),
                         as_action(fix) or cap_words(lower_first(fix)),
                         analysis=f"{short} The immediate cause: {cause} Category: {category}.")


def lab_examples(corpus: str | Path, mode: Mode, *, runs: int = 14, exclude: Sequence[str] = (),
                 daemons: Sequence[str] | None = None, cascade: CascadeConfig | None = None, val: float = 0.15,
                 test: float = 0.15, count: TokenCounter | None = None) -> list[Example]:
    """Session examples of every daemon of a lab corpus but ``exclude``, from its first ``runs`` runs."""
    cascade = cascade or CascadeConfig()
    out: list[Example] = []
    for daemon, lab_runs in read_corpus(corpus, daemons).items():
        if daemon in exclude:
            continue
        chosen = lab_runs[:runs]
        pipe = Pipeline(load_config(env={}, base=chosen[0].config))
        incidents: dict[str, LabIncident] = {}
        sessions: list[tuple[int, Session]] = []
        seq = 0
        for run in chosen:
            incidents.update(run.incidents)
            for text, truth in run.lines():
                seq += 1
                sessions += [(run.seed, s) for s in pipe.feed(daemon, Line(seq, text), truth)[0]]
            sessions += [(run.seed, s) for s in pipe.flush()[0]]
        for (seed, s), split in zip(sessions, chrono_split(len(sessions), val, test), strict=True):
            t = s.truth
            abnormal = t is not None and t.label
            inc = incidents.get(t.incident or "") if abnormal and t is not None else None
            view = view_of(s, cascade.view)
            out.append(Example("anomaly", mode, prompt_for(view, mode, cascade, count), lab_reference(s, inc, mode),
                               "abnormal" if abnormal else "normal", f"lab-{daemon}", split,
                               category=inc.root if inc else None, key=f"lab:{daemon}/seed-{seed}:{s.session_id}",
                               meta={"scenario": inc.fault if inc else None, "evidence": evidence_of(view)}))
    return out
