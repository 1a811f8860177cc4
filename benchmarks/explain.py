"""Does R-Log explain incidents right? Category accuracy, readable answers and text overlap.

Simulated incidents of a seed no training run used (every fault type, at least a few each)
are each explained once, through the stream's explain role (``Cascade.explain``, with the
session flagged by R-Log-fast, as in production). Per incident, its most telling session
(most abnormal lines) is the one explained. Scored against what was injected:

- category: what the alert names (by ``cascade.explain.category``: the fitted category
  model by default) vs the fault's, with a 95% interval; side by side with R-Log's own
  scored choice and the evidence rule alone (``rlog.cascade.fallback.category_of``, the
  baseline a model must beat);
- written: R-Log wrote interpretation, root cause and action itself (no field filled from
  the evidence); readable: the alert has all four (after the fallback: always, by design);
- overlap: ROUGE-L of R-Log's root cause with the injected cause, of its action with the
  injected action (only over fields R-Log wrote);
- latency per escalation.

``real_incident_overlap`` asks the same of real logs: the published trajectories' incidents
that the interpretation, root-cause and solution tasks share (real Apache errors), outside
the training split, each written as the stream writes an escalation, scored by ROUGE-L
against the published answers as training shaped them (``train.explain_data``).

``trajectory_overlap`` adds the text side on real logs: R-Log's answers to the published
root-cause, interpretation and solution tasks of the trajectories' validation split (the
split the training recipe holds out), as BLEU-4 and ROUGE-L against the published answers.
"""

from __future__ import annotations

import math
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import orjson
from tqdm import tqdm

from rlog.backends.base import GenerationParams
from rlog.cascade.alerts import pick_evidence
from rlog.cascade.cascade import Cascade
from rlog.cascade.explain import TEXT_FIELDS, structured_answer, written_budget
from rlog.cascade.fallback import category_of, complete
from rlog.contract.answers import FastAnswer
from rlog.contract.representation import view_of
from rlog.metrics import percentiles
from rlog.pipeline.sessions import Session
from train.rewards import overlap, rouge_l, split_answer, words


def incident_sessions(sessions: Sequence[Session], limit: int | None = None) -> list[Session]:
    """Per fault incident, its session with the most abnormal lines (incidents in order, fault types interleaved)."""
    best: dict[str, tuple[int, Session]] = {}
    for s in sessions:
        t = s.truth
        if t is None or not t.label or not t.category or not t.incident:
            continue
        n = sum(1 for ln in s.lines if ln.truth is not None and ln.truth.label and ln.truth.incident == t.incident)
        if t.incident not in best or n > best[t.incident][0]:
            best[t.incident] = (n, s)
    by_type: dict[str, list[Session]] = defaultdict(list)
    for inc in sorted(best):
        s = best[inc][1]
        by_type[s.truth.scenario or ""].append(s)  # type: ignore[union-attr]
    out: list[Session] = []
    while any(by_type.values()) and (limit is None or len(out) < limit):
        for name in sorted(by_type):
            if by_type[name] and (limit is None or len(out) < limit):
                out.append(by_type[name].pop(0))
    return out


def load_incidents(folder: Path) -> dict[str, dict]:
    with open(folder / "incidents.jsonl", "rb") as f:
        return {r["id"]: r for r in map(orjson.loads, f) if r.get("kind") == "fault"}


def _overlap(candidate: str, reference: str) -> float:
    return rouge_l(words(candidate), words(reference))


def evaluate_explanations(cascade: Cascade, sessions: Sequence[Session], incidents: dict[str, dict], *,
                          progress: bool = True) -> dict:
    """Explain each session once (the stream's explain role) and score it against its incident."""
    rows = []
    for s in tqdm(sessions, unit="incident", desc="explanations", disable=not progress, file=sys.stderr):
        truth = s.truth
        assert truth is not None
        inc = incidents.get(truth.incident or "", {})
        evidence = pick_evidence(s, view_of(s, cascade.cfg.view), cascade.cfg.evidence_lines)
        t0 = time.perf_counter()
        _, d, _ = cascade.explain([(s, FastAnswer("abnormal", 1.0, p_abnormal=1.0), 0.0)], share=False)[0]
        ms = (time.perf_counter() - t0) * 1000
        full = d.full if d.full is not None and d.full.ok else None
        alert = cascade.alerts([(s, d, False)])[0] if d.verdict == "abnormal" else None
        shown = alert if alert is not None else complete(d.full, s, evidence)
        written = full is not None and _wrote_all(full)
        rows.append({
            "session_id": s.session_id, "incident": truth.incident, "scenario": truth.scenario,
            "category": truth.category, "alert_category": shown.category,
            "category_by": alert.category_by if alert is not None else "rule",
            "category_p": shown.category_confidence if alert is not None else None,
            "rlog_category": (full.fields.get("category") or full.category) if full else None,
            "rule_category": category_of(evidence),
            "written": written, "readable": bool(shown.category and shown.interpretation and shown.root_cause
                                                 and shown.action),
            "fallback": shown.fallback,
            "cause_rouge_l": _overlap(full.root_cause, inc.get("cause", "")) if full and full.root_cause else None,
            "action_rouge_l": _overlap(full.action, inc.get("action", "")) if full and full.action else None,
            "interpretation": full.interpretation if full else "",
            "root_cause": full.root_cause if full else "", "action": full.action if full else "",
            "ms": round(ms, 1)})
    return summarize(rows)


def _wrote_all(answer) -> bool:
    """R-Log wrote every text field itself (none left to the evidence)."""
    return all(getattr(answer, k).strip() for k in TEXT_FIELDS)


def _share(xs: Sequence[bool]) -> float | None:
    return round(sum(xs) / len(xs), 3) if xs else None


def _mean(xs: Sequence[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return round(sum(vals) / len(vals), 3) if vals else None


def wilson(k: int, n: int, z: float = 1.96) -> list[float] | None:
    """The 95% Wilson interval of k successes in n (small samples: an interval, not a point)."""
    if not n:
        return None
    p = k / n
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, mid - half), 3), round(min(1.0, mid + half), 3)]


def summarize(rows: list[dict]) -> dict:
    """Totals and per fault type (pure)."""
    def block(rs: list[dict]) -> dict:
        hits = [r["alert_category"] == r["category"] for r in rs]
        return {"incidents": len(rs),
                "category_accuracy": _share(hits), "category_interval": wilson(sum(hits), len(hits)),
                "rlog_category_accuracy": _share([r["rlog_category"] == r["category"] for r in rs]),
                "rule_category_accuracy": _share([r["rule_category"] == r["category"] for r in rs]),
                "written_rate": _share([r["written"] for r in rs]), "readable_rate": _share([r["readable"] for r in rs]),
                "cause_rouge_l": _mean([r["cause_rouge_l"] for r in rs]),
                "action_rouge_l": _mean([r["action_rouge_l"] for r in rs])}

    by: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by[r["scenario"]].append(r)
    by_who = sorted({r["category_by"] for r in rows})
    return {**block(rows), "category_by": ", ".join(by_who) or None,
            "ms": percentiles([r["ms"] for r in rows], (0.5, 0.95)),
            "by_scenario": {k: {"category": v[0]["category"], **block(v)} for k, v in sorted(by.items())},
            "rows": rows}


TEXT_TASKS = ("interpretation", "root_cause", "solution")


def trajectory_overlap(backend, data_dir: Path, *, per_task: int, max_new_tokens: int, progress: bool = True) -> dict:
    """R-Log on the first ``per_task`` validation trajectories of each text task (the recipe's split)."""
    from train.data import load_trajectories, trajectory_examples
    from train.recipe import load_recipe

    spec = load_recipe("tiny").data  # the shipped adapters' recipe decides what training held out
    params = GenerationParams(max_new_tokens, 0.0, ("</answer>",), logprobs=False)
    out: dict[str, dict] = {}
    for task in TEXT_TASKS:
        examples = [e for e in trajectory_examples(load_trajectories(data_dir, task), "full",
                                                   val=spec.val_fraction, test=spec.test_fraction)
                    if e.split == "val"][:per_task]
        scores, answered, ms = [], 0, []
        for e in tqdm(examples, unit="answer", desc=f"trajectories {task}", disable=not progress, file=sys.stderr):
            t0 = time.perf_counter()
            text = backend.generate([e.prompt], params)[0].text
            ms.append((time.perf_counter() - t0) * 1000)
            parts = split_answer("<think>" + text, "full")
            answered += parts is not None
            scores.append(overlap(parts[1] if parts else "", e.label))
        n = len(scores)
        out[task] = {"n": n, "answered": answered,
                     "bleu4": round(sum(o.bleu4 for o in scores) / n, 3) if n else None,
                     "rougeL": round(sum(o.rougeL for o in scores) / n, 3) if n else None,
                     "ms": percentiles(ms, (0.5,))}
    return out


def real_incident_overlap(backend, cascade_cfg, data_dir: Path, *, progress: bool = True) -> dict:
    """R-Log's structured answer on each held-out real incident (val and test splits of the recipe),
    the category named by the evidence rule as in training; ROUGE-L per text field."""
    from train.data import explain_examples
    from train.recipe import load_recipe

    spec = load_recipe("tiny").data
    examples = [e for e in explain_examples(data_dir, cascade=cascade_cfg, val=spec.val_fraction,
                                            test=spec.test_fraction) if e.split != "train"]
    rows = []
    for e in tqdm(examples, unit="incident", desc="real incidents", disable=not progress, file=sys.stderr):
        t0 = time.perf_counter()
        with backend.transcript(e.prompt, written_budget(cascade_cfg.explain)) as t:
            ans = structured_answer(t, cascade_cfg.explain, continue_as="abnormal", category=(e.category, None))
        ms = (time.perf_counter() - t0) * 1000
        rows.append({"key": e.key[:120], "written": _wrote_all(ans),
                     "interpretation_rouge_l": _overlap(ans.interpretation, e.meta["interpretation"]),
                     "cause_rouge_l": _overlap(ans.root_cause, e.meta["root_cause"]),
                     "action_rouge_l": _overlap(ans.action, e.meta["action"]),
                     "root_cause": ans.root_cause, "action": ans.action, "ms": round(ms, 1)})
    return {"n": len(rows), "written_rate": _share([r["written"] for r in rows]),
            "interpretation_rouge_l": _mean([r["interpretation_rouge_l"] for r in rows]),
            "cause_rouge_l": _mean([r["cause_rouge_l"] for r in rows]),
            "action_rouge_l": _mean([r["action_rouge_l"] for r in rows]),
            "ms": percentiles([r["ms"] for r in rows], (0.5, 0.95)), "rows": rows}
