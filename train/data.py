"""Training and evaluation examples, built with the prompt builders the stream serves with.

Three sources, each turned into :class:`Example` rows (a served-shape prompt, the ideal text
after its prefill, and what the reward needs to score any other text):

- the published R-Log reasoning trajectories (``rlog/*_with_reason.json``, five tasks). An
  anomaly trajectory judges one template, so its prompt is the stream's session prompt of
  that one template; the other four tasks get think-first task prompts. Answer-first
  variants for R-Log-fast are made by moving the answer before a short rationale;
- labelled Loghub BGL (line labels, with RationAnomaly's template corrections applied),
  parsed by the stream's own parser into count windows (session examples) and into unique
  templates (template-level examples);
- the simulated O&M environment (``rlog.sim``): sessions with known incidents, categories,
  root causes and fixes, available wherever the package is installed;
- the fault lab (``train.lab_data``): real daemons with real injected faults, labelled and
  explained by the injector (a corpus built by ``rlog lab corpus``).

Splits are chronological for logs (train on the past, validate and test on the future) and
by a stable hash of the input for the trajectories, so a duplicate never straddles splits.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from rlog.config import CascadeConfig, load_config
from rlog.contract.answers import check_format
from rlog.contract.evidence import evidence_of
from rlog.contract.prompts import ChatPrompt, Mode, task_prompt
from rlog.contract.representation import TokenCounter, prompt_for, sequence_of, view_of, view_of_templates
from rlog.loghub import DataError, bgl_lines, load_corrections, shared_data_dir
from train.explain_data import joined_incidents, placeholder_analysis, served_answer
from train.rewards import PREFILL, TASKS

SPLITS = ("train", "val", "test")
TRAJECTORY_FILES = {
    "anomaly": "AnomalyDetection_with_reason.json",
    "parsing": "logParsing_with_reason.json",
    "interpretation": "LogInterpretation_with_reason.json",
    "root_cause": "RootCauseAnalysis_with_reason.json",
    "solution": "SolutionRecommendation_with_reason.json",
}


@dataclass(frozen=True)
class Example:
    """One prompt with its reference completion and what scoring needs.

    ``completion`` is the ideal text after ``prompt.prefill``; ``label`` is the verdict for
    anomaly detection and the reference answer for the other tasks.
    """

    task: str
    mode: Mode
    prompt: ChatPrompt
    completion: str
    label: str
    source: str
    split: str = "train"
    category: str | None = None
    key: str = ""
    meta: dict = field(default_factory=dict, compare=False)

    def row(self) -> dict:
        """A flat record (for datasets, JSONL dumps and the GRPO reward columns)."""
        return {"task": self.task, "mode": self.mode, "messages": list(self.prompt.messages),
                "prefill": self.prompt.prefill, "completion": self.completion, "label": self.label,
                "category": self.category or "", "source": self.source, "split": self.split, "key": self.key}


# --------------------------------------------------------------------------- helpers

def stable_split(key: str, val: float, test: float) -> str:
    """A split from a hash of ``key``: the same input always lands in the same split."""
    h = int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big") / 2**64
    return "test" if h < test else "val" if h < test + val else "train"


def chrono_split(n: int, val: float, test: float) -> list[str]:
    """Split ``n`` time-ordered items: the oldest train, then validation, the newest test."""
    n_test, n_val = round(n * test), round(n * val)
    n_train = n - n_val - n_test
    return ["train"] * n_train + ["val"] * n_val + ["test"] * n_test


_THINK_ANSWER = re.compile(r"^\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*$", re.DOTALL)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def short_rationale(think: str, max_chars: int = 280) -> str:
    """The conclusion of a reasoning trace: its last sentences, up to ``max_chars``."""
    sentences = [s.strip() for s in _SENTENCE.split(" ".join(think.split())) if s.strip()]
    out: list[str] = []
    for s in reversed(sentences):
        if out and len(s) + sum(len(x) + 1 for x in out) > max_chars:
            break
        out.insert(0, s)
    text = " ".join(out)
    return text if len(text) <= max_chars else text[: max_chars - 1].rstrip() + "…"


def to_answer_first(reasoning: str, max_chars: int = 280) -> str | None:
    """``<think>T</think><answer>A</answer>`` → ``<answer>A</answer><think>short T</think>``.

    R-Log-fast answers before it reasons, so serving can stop at ``</answer>``; its
    rationale is the conclusion of the full trace. None when the trace is malformed.
    """
    m = _THINK_ANSWER.match(reasoning)
    if m is None or not check_format(reasoning, "full"):
        return None
    return f"<answer>{m.group(2).strip()}</answer><think>{short_rationale(m.group(1), max_chars)}</think>"


def strip_prefill(text: str, prefill: str) -> str:
    t = text.lstrip()
    return t[len(prefill):] if t.startswith(prefill) else t


def _verdict_word(text: str) -> str | None:
    w = text.strip().strip(".").lower()
    return w if w in ("normal", "abnormal") else None


# --------------------------------------------------------------------------- trajectories

@dataclass(frozen=True)
class Trajectory:
    task: str
    instruction: str
    input: str
    label: str
    reasoning: str


def load_trajectories(data_dir: Path, task: str) -> list[Trajectory]:
    """The published R-Log trajectories of one task, in file order."""
    if task not in TRAJECTORY_FILES:
        raise DataError(f"unknown task {task!r}; expected one of {', '.join(TRAJECTORY_FILES)}")
    path = data_dir / "rlog" / TRAJECTORY_FILES[task]
    if not path.is_file():
        raise DataError(f"{path} not found: the R-Log trajectories live in ../shared/data/rlog "
                        "(set data.shared_dir or $RLOG_SHARED_DATA)")
    rows = json.loads(path.read_text("utf-8"))
    return [Trajectory(task, r.get("instruction", ""), r["input"], str(r.get("label", "")), r.get("reasoning", ""))
            for r in rows]


def trajectory_examples(trajs: Iterable[Trajectory], mode: Mode, *, corrections: dict[str, str] | None = None,
                        cascade: CascadeConfig | None = None, val: float = 0.1, test: float = 0.1,
                        stats: Counter | None = None, count: TokenCounter | None = None) -> Iterator[Example]:
    """Examples from trajectories. Anomaly ones become single-template session prompts.

    A trajectory whose label an expert correction overturns keeps the corrected label with a
    short rationale quoting the line (its published reasoning argues for the old label);
    malformed traces are skipped and counted in ``stats``.
    """
    cascade = cascade or CascadeConfig()
    corrections = corrections or {}
    stats = stats if stats is not None else Counter()
    for t in trajs:
        key = f"{t.task}:{' '.join(t.input.split())}"
        split = stable_split(key, val, test)
        if t.task == "anomaly":
            template = " ".join(t.input.split())
            label = _verdict_word(t.label)
            if label is None:
                stats["bad_label"] += 1
                continue
            fixed = corrections.get(template)
            view = view_of_templates([template])
            prompt = prompt_for(view, mode, cascade, count)
            if fixed and fixed != label:
                stats["corrected"] += 1
                label = fixed
                why = (f'The line "{template[:160]}" states a failure that does not recover.' if label == "abnormal"
                       else f'The line "{template[:160]}" reports routine operation, not a failure.')
                text = (f"<answer>{label}</answer><think>{why}</think>" if mode == "fast"
                        else f"<think>{why}</think><answer>{label}</answer>")
            else:
                text = to_answer_first(t.reasoning) if mode == "fast" else t.reasoning.strip()
                if text is None or not check_format(text, mode):
                    stats["malformed"] += 1
                    continue
            yield Example("anomaly", mode, prompt, strip_prefill(text, PREFILL[mode]), label, "rlog", split, key=key,
                          meta={"evidence": evidence_of(view)})
            continue
        if mode == "fast":
            continue  # R-Log-fast serves detection only
        text = t.reasoning.strip()
        m = _THINK_ANSWER.match(text)
        if m is None or not check_format(text, "full"):
            stats["malformed"] += 1
            continue
        reference = t.label.strip() or m.group(2).strip()
        yield Example(t.task, "full", task_prompt(t.task, t.instruction, t.input), strip_prefill(text, "<think>"),
                      reference, "rlog", split, key=key)


def explain_examples(data_dir: Path, *, cascade: CascadeConfig | None = None, val: float = 0.1, test: float = 0.1,
                     count: TokenCounter | None = None) -> list[Example]:
    """Escalation answers on real logs: the trajectories' incidents answered in all three text tasks
    (``train.explain_data.joined_incidents``), each a session prompt of its lines with the served-shape answer."""
    cascade = cascade or CascadeConfig()
    rows = {task: [{"input": t.input, "label": t.label} for t in load_trajectories(data_dir, task)]
            for task in ("interpretation", "root_cause", "solution")}
    out = []
    for inc in joined_incidents(rows):
        key = f"explain:{inc['input']}"
        view = view_of_templates(inc["lines"])
        completion = served_answer("abnormal", inc["category"], inc["interpretation"], inc["root_cause"],
                                   inc["action"])
        out.append(Example("anomaly", "full", prompt_for(view, "full", cascade, count), completion, "abnormal",
                           "rlog-explain", stable_split(key, val, test), category=inc["category"], key=key,
                           meta={"evidence": evidence_of(view), "interpretation": inc["interpretation"],
                                 "root_cause": inc["root_cause"], "action": inc["action"]}))
    return out


# --------------------------------------------------------------------------- Loghub BGL

def bgl_examples(data_dir: Path, mode: Mode, *, window: int = 20, corrections: dict[str, str] | None = None,
                 cascade: CascadeConfig | None = None, val: float = 0.15, test: float = 0.15,
                 count: TokenCounter | None = None) -> list[Example]:
    """Session examples (count windows) and template-level examples from labelled BGL.

    Lines go through the stream's own parser, template miner and sessionizer; a window is
    abnormal when any line is, a template when most of its lines are.
    """
    from rlog.pipeline.lines import Line
    from rlog.pipeline.pipeline import Pipeline
    from rlog.truth import LineTruth

    cascade = cascade or CascadeConfig()
    cfg = load_config(env={}, overrides={"parse": {"format": "bgl", "multiline": False},
                                         "session": {"mode": "fixed", "by": "count", "size": window}})
    pipe = Pipeline(cfg)
    sessions = []
    tpl_votes: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    tpl_first: dict[str, int] = {}
    for i, (line, abnormal) in enumerate(bgl_lines(data_dir, corrections)):
        out, _ = pipe.feed("BGL", Line(i, line), LineTruth(abnormal))
        sessions.extend(out)
    sessions.extend(pipe.flush()[0])
    for s in sessions:
        for ln in s.lines:
            tpl_first.setdefault(ln.template, ln.seq)
            tpl_votes[ln.template][bool(ln.label)] += 1
    out_examples: list[Example] = []
    for s, split in zip(sessions, chrono_split(len(sessions), val, test), strict=True):
        label = "abnormal" if s.label else "normal"
        seq = sequence_of(s)
        view = view_of(s, cascade.view)
        prompt = prompt_for(view, mode, cascade, count)
        cited = [t for t in dict.fromkeys(seq) if tpl_votes[t][1] > tpl_votes[t][0]][:2]
        out_examples.append(Example("anomaly", mode, prompt, _grounded(label, seq, cited, mode), label, "bgl-session",
                                    split, key=f"bgl:{s.session_id}", meta={"evidence": evidence_of(view)}))
    ordered = sorted(tpl_first, key=tpl_first.__getitem__)
    for t, split in zip(ordered, chrono_split(len(ordered), val, test), strict=True):
        label = "abnormal" if tpl_votes[t][1] > tpl_votes[t][0] else "normal"
        view = view_of_templates([t])
        prompt = prompt_for(view, mode, cascade, count)
        out_examples.append(Example("anomaly", mode, prompt, _grounded(label, [t], [t] if label == "abnormal" else [],
                                                                       mode), label, "bgl-template", split,
                                    key=f"bgl-template:{t}", meta={"evidence": evidence_of(view)}))
    return out_examples


def _grounded(label: str, seq: Sequence[str], cited: Sequence[str], mode: Mode) -> str:
    """A reference answer citing the lines that state the failure (Loghub has no root causes)."""
    if label == "abnormal":
        evidence = "; ".join(f'the line "{t[:160]}"' for t in cited) or "a line states a failure"
        why = f"{evidence[0].upper() + evidence[1:]}: a failure that does not recover."
    else:
        why = "Routine operations: no line states an error that does not recover."
    if mode == "fast":
        return f"{label}</answer><think>{why}</think>"
    return f"{why}</think><answer>{label}</answer>"


# --------------------------------------------------------------------------- simulator

def sim_examples(mode: Mode, *, seed: int = 11, lines: int = 6000, fault_gap_s: float = 40.0,
                 benign_gap_s: float = 60.0, cascade: CascadeConfig | None = None, val: float = 0.15,
                 test: float = 0.15, window: int | None = None, count: TokenCounter | None = None) -> list[Example]:
    """Session examples from one simulated run, with incident-grounded reference answers.

    ``window``: lines per session window (default: how ``rlog analyze`` reads a simulation).
    """
    from rlog.config import SessionConfig
    from rlog.sim.engine import SimConfig
    from rlog.sim.output import analysis_config
    from train.environment import SimEnvironment, reference_answer, scenario_of

    cascade = cascade or CascadeConfig()
    config = None
    if window is not None:
        config = load_config(env={}, base=analysis_config(SessionConfig(mode="fixed", by="count", size=window)))
    episodes = list(SimEnvironment(SimConfig(seed=seed, lines=lines, fault_gap_s=fault_gap_s,
                                             benign_gap_s=benign_gap_s), config).episodes())
    out = []
    for ep, split in zip(episodes, chrono_split(len(episodes), val, test), strict=True):
        label = "abnormal" if ep.truth.label else "normal"
        prompt = ep.prompt(mode, cascade, count)
        shown = prompt.messages[-1]["content"]
        out.append(Example("anomaly", mode, prompt, reference_answer(ep, mode, shown), label, "sim",
                           split, category=ep.truth.category if ep.truth.label else None,
                           key=f"sim{seed}:{ep.session.session_id}",
                           meta={"scenario": scenario_of(ep), "evidence": evidence_of(ep.view(cascade))}))
    return out


def sim_seeds(first: int, runs: int) -> list[int]:
    """The seeds of a recipe's simulated runs: ``first``, ``first + 100``, … (benchmarks pick seeds off this grid)."""
    return [first + 100 * k for k in range(runs)]


# --------------------------------------------------------------------------- assembly

def balance(examples: Sequence[Example], max_normal_ratio: float, seed: int) -> list[Example]:
    """Keep every abnormal anomaly example and at most ``ratio`` normal ones per abnormal one.

    Logs are mostly normal; without this a small model learns to say 'normal' and is right
    most of the time while missing every incident. Other tasks pass through.
    """
    rng = random.Random(seed)
    by_source: dict[str, list[Example]] = defaultdict(list)
    rest = []
    for ex in examples:
        (by_source[ex.source] if ex.task == "anomaly" else rest).append(ex)
    out = list(rest)
    for group in by_source.values():
        ab = [e for e in group if e.label == "abnormal"]
        no = [e for e in group if e.label != "abnormal"]
        keep = max(int(len(ab) * max_normal_ratio), 1)
        if len(no) > keep:
            no = rng.sample(no, keep)
        out.extend(ab + no)
    return out


def cap_per_category(examples: Sequence[Example], cap: int | None, seed: int) -> list[Example]:
    """At most ``cap`` examples per root-cause category and source (examples without one pass through).

    Simulated incidents differ in how many windows they span (an authentication storm fills
    dozens, a memory leak a few): uncapped, R-Log would learn that most incidents are
    security ones, and its scored category choice would lean there on any log.
    """
    if cap is None:
        return list(examples)
    rng = random.Random(seed)
    by_cat: dict[tuple[str, str], list[Example]] = defaultdict(list)
    out = []
    for ex in examples:
        (by_cat[(ex.category, ex.source)] if ex.category else out).append(ex)
    for cat in sorted(by_cat):
        group = by_cat[cat]
        out.extend(rng.sample(group, cap) if len(group) > cap else group)
    return out


def cap_per_task(examples: Sequence[Example], caps: dict[str, int], seed: int) -> list[Example]:
    """At most ``caps[task]`` examples per task (missing task: no cap), chosen at random."""
    rng = random.Random(seed)
    by_task: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        by_task[ex.task].append(ex)
    out = []
    for task in TASKS:
        group = by_task.get(task, [])
        cap = caps.get(task)
        out.extend(rng.sample(group, cap) if cap is not None and len(group) > cap else group)
    return out


def summarize(examples: Iterable[Example]) -> dict:
    """Counts per split, task, source and label, for logs and model cards."""
    c: Counter = Counter()
    for e in examples:
        lab = e.label if e.task == "anomaly" else "text"
        c[(e.split, e.task, e.source, lab)] += 1
    out: dict = {}
    for (split, task, source, lab), n in sorted(c.items()):
        out.setdefault(split, {}).setdefault(task, {}).setdefault(source, {})[lab] = n
    return out


FAST_RATIONALE_CHARS = 100


def shorten_fast(completion: str, max_chars: int = FAST_RATIONALE_CHARS) -> str:
    """Cap the rationale of an answer-first completion: R-Log-fast's think must stay short
    enough to fit its completion budget (it is never decoded in serving, only trained on).

    ``max_chars=0`` drops it: the completion is ``verdict</answer>``. Served as a one-pass
    scorer, R-Log-fast is only ever read at the verdict token; with a 40-token rationale that
    token is one of forty in the loss, without it one of a handful.
    """
    m = re.match(r"^(.*?</answer>)\s*<think>(.*?)</think>\s*$", completion, re.DOTALL)
    if m is None:
        return completion
    if max_chars == 0:
        return m.group(1)
    return f"{m.group(1)}<think>{short_rationale(m.group(2), max_chars)}</think>"


def shorten_full(completion: str, max_chars: int) -> str:
    """``analysis</think><answer>…`` with the analysis cut to its conclusion; the answer untouched."""
    head, sep, rest = completion.partition("</think>")
    if not sep:
        return completion
    return f"{short_rationale(head, max_chars)}{sep}{rest}"


def category_drill(e: Example) -> Example:
    """The example cut at ``category:``: the analysis and verdict given, the category alone to complete.

    Serving scores the category as a choice at exactly this point (``rlog.cascade.explain``),
    so this is the loss that choice needs; ``meta["drill"]`` keeps it out of evaluation and RL.
    The analysis given is the reference's without its "Category: X." sentence: served, a short
    analysis rarely gets that far, and a drill that could copy the answer would teach nothing.
    """
    # without the analysis' own "Category: X." the choice is learned from the logs, not copied
    think = re.sub(r"\s*Category:\s*\w+\.?", "", e.completion.partition("</think>")[0]).strip()
    prefill = f"{PREFILL['full']}{think}</think><answer>\nverdict: {e.label}\ncategory:"
    return replace(e, prompt=ChatPrompt(e.prompt.messages, prefill), completion=f" {e.category}\n",
                   key=f"{e.key}#category", meta={**e.meta, "drill": "category"})


def build_examples(recipe, variant: Mode, *, stats: Counter | None = None,
                   count: TokenCounter | None = None) -> dict[str, list[Example]]:
    """All examples of a recipe for one variant, split, balanced (train) and capped.

    ``recipe`` is a :class:`train.recipe.Recipe`; ``count`` is the served model's token
    counter, so session prompts are capped exactly as in serving. Raises DataError when a
    requested source is unavailable.
    """
    spec = recipe.data
    stats = stats if stats is not None else Counter()
    data_dir = shared_data_dir(spec.shared_dir)
    needs_shared = [s for s in spec.sources if s in ("rlog", "bgl")]
    if needs_shared and not data_dir.is_dir():
        raise DataError(f"sources {needs_shared} need the shared data folder {data_dir} (set data.shared_dir or "
                        "$RLOG_SHARED_DATA), or train on the simulator alone: data.sources: [sim]")
    corrections = load_corrections(data_dir) if needs_shared else {}
    stats["corrections"] = len(corrections)
    tasks = ["anomaly"] if variant == "fast" else list(spec.tasks)
    examples: list[Example] = []
    if "rlog" in spec.sources:
        for task in tasks:
            examples.extend(trajectory_examples(load_trajectories(data_dir, task), variant, corrections=corrections,
                                                val=spec.val_fraction, test=spec.test_fraction, stats=stats,
                                                count=count))
    if "anomaly" in tasks and "bgl" in spec.sources:
        examples.extend(bgl_examples(data_dir, variant, window=spec.bgl_window, corrections=corrections,
                                     val=spec.val_fraction, test=spec.test_fraction, count=count))
    if "anomaly" in tasks and "sim" in spec.sources:
        for k, seed in enumerate(sim_seeds(spec.sim_seed, spec.sim_runs)):
            window = spec.sim_windows[k % len(spec.sim_windows)] if spec.sim_windows else None
            examples.extend(sim_examples(variant, seed=seed, lines=spec.sim_lines, fault_gap_s=spec.sim_fault_gap_s,
                                         benign_gap_s=spec.sim_benign_gap_s, val=spec.val_fraction,
                                         test=spec.test_fraction, window=window, count=count))
    if "anomaly" in tasks and "lab" in spec.sources:
        from train.lab_data import lab_examples

        examples.extend(lab_examples(spec.lab_corpus, variant, runs=spec.lab_runs, exclude=spec.lab_exclude,
                                     val=spec.val_fraction, test=spec.test_fraction, count=count))
    if variant == "full" and spec.explain_trajectories and "rlog" in spec.sources:
        examples.extend(explain_examples(data_dir, val=spec.val_fraction, test=spec.test_fraction, count=count))
    if variant == "fast":
        examples = [replace(e, completion=shorten_fast(e.completion, spec.fast_rationale_chars)) for e in examples]
    elif spec.full_analysis == "placeholder":
        examples = [replace(e, completion=placeholder_analysis(e.completion)) if e.task == "anomaly" else e
                    for e in examples]
        if spec.full_think_chars is not None:
            examples = [e if e.task == "anomaly" else replace(e, completion=shorten_full(e.completion,
                                                                                         spec.full_think_chars))
                        for e in examples]
    elif spec.full_think_chars is not None:
        examples = [replace(e, completion=shorten_full(e.completion, spec.full_think_chars)) for e in examples]
    out: dict[str, list[Example]] = {}
    for split in SPLITS:
        part = [e for e in examples if e.split == split]
        if split == "train":
            part = cap_per_category(balance(part, spec.max_normal_ratio, recipe.seed), spec.max_per_category,
                                    recipe.seed)
            part = cap_per_task(part, spec.train_caps, recipe.seed)
            if variant == "full" and spec.category_drills:
                incidents = [e for e in part if e.task == "anomaly" and e.category and e.label == "abnormal"]
                rng = random.Random(recipe.seed + 2)
                chosen = rng.sample(incidents, min(spec.category_drills, len(incidents)))
                part = part + [category_drill(e) for e in chosen]
        else:
            part = cap_per_task(part, spec.eval_caps, recipe.seed + 1)
        out[split] = sorted(part, key=lambda e: (TASKS.index(e.task), e.source, e.key))
    return out


def fits(examples: Iterable[Example], tokenizer, max_prompt_tokens: int, stats: Counter | None = None,
         render=None) -> list[Example]:
    """Drop examples whose rendered prompt exceeds ``max_prompt_tokens`` (counted in ``stats``)."""
    from rlog.backends.transformers_backend import render_chat

    render = render or render_chat
    kept = []
    for e in examples:
        n = len(tokenizer(render(tokenizer, e.prompt), add_special_tokens=False)["input_ids"])
        if n <= max_prompt_tokens:
            kept.append(e)
        elif stats is not None:
            stats["too_long"] += 1
    return kept
