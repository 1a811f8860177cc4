"""The joint reward of R-Log: format + task correctness. Pure functions, never raising.

GRPO ranks a group of completions of one prompt by these numbers, so every output, however
broken, gets a finite score: a malformed answer is the worst outcome short of a missed
anomaly, because the stream cannot act on it. The fast and full variants differ only in the
tag order they require (``rlog.contract.answers.check_format``).

Task rewards:

- anomaly detection: +1 for the right verdict; a false alarm costs ``false_alarm`` and a
  missed anomaly ``missed_anomaly`` (heavier by default: an SRE forgives a spurious page
  sooner than a silent outage); the full model earns ``category`` more for naming the
  right root-cause category of an abnormal session;
- log parsing: token-level F1 of the predicted template against the reference;
- interpretation, root cause, solution: overlap with the reference answer (the mean of
  BLEU-4 and ROUGE-1/2/L F-scores), in [0, 1].
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rlog.contract.answers import check_format, parse_fast, parse_full
from rlog.contract.prompts import CATEGORIES, PREFILL, TASK_NAMES, Mode

Task = Literal["anomaly", "parsing", "interpretation", "root_cause", "solution"]
TASKS: tuple[str, ...] = TASK_NAMES
OVERLAP_TASKS = ("interpretation", "root_cause", "solution")


@dataclass(frozen=True)
class RewardWeights:
    """Weights of the joint reward (defaults: the published R-Log values)."""

    format_ok: float = 0.1
    format_bad: float = -1.0
    correct: float = 1.0
    false_alarm: float = -1.0
    missed_anomaly: float = -1.5
    category: float = 0.5  # full model: right root-cause category on an abnormal session
    text: float = 1.0  # scale of the parsing F1 and the overlap scores


DEFAULT_WEIGHTS = RewardWeights()


@dataclass(frozen=True)
class Score:
    """A reward and what it was made of (for logging and evaluation)."""

    reward: float
    format_ok: bool
    verdict: str | None = None
    verdict_correct: bool | None = None
    category: str | None = None
    category_correct: bool | None = None  # None where no category is asked for
    task_score: float | None = None  # parsing F1 or overlap, in [0, 1]


# --------------------------------------------------------------------------- answers

def split_answer(text: str, mode: Mode) -> tuple[str, str] | None:
    """(think, answer) of a well-formed output, else None. ``text`` includes the prefill."""
    if not check_format(text, mode):
        return None
    think = re.search(r"<think>(.*?)</think>", text, re.DOTALL)
    answer = re.search(r"<answer>(.*?)</answer>", text, re.DOTALL)
    if answer is None:
        return None
    return (think.group(1).strip() if think else ""), answer.group(1).strip()


def format_reward(text: str, mode: Mode, weights: RewardWeights = RewardWeights()) -> float:
    return weights.format_ok if check_format(text, mode) else weights.format_bad


# --------------------------------------------------------------------------- text scores

_WORD = re.compile(r"<\*>|\w+|[^\w\s]", re.UNICODE)


def words(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens; ``<*>`` stays one token."""
    return [w.lower() for w in _WORD.findall(text)]


def template_f1(predicted: str, reference: str) -> float:
    """Token-level F1 of a template against the reference (multiset overlap of tokens).

    Tokens are whitespace-separated, so a variable left unmasked (``blk_123`` for
    ``blk_<*>``) costs precision and recall alike, and ``<*>`` counts as a token.
    """
    p, r = Counter(predicted.split()), Counter(reference.split())
    if not p and not r:
        return 1.0
    common = sum((p & r).values())
    if common == 0:
        return 0.0
    prec, rec = common / sum(p.values()), common / sum(r.values())
    return 2 * prec * rec / (prec + rec)


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def bleu4(candidate: Sequence[str], reference: Sequence[str]) -> float:
    """Sentence BLEU-4 with add-one smoothing of the higher orders and a brevity penalty."""
    if not candidate or not reference:
        return 0.0
    logs = 0.0
    for n in range(1, 5):
        c = _ngrams(candidate, n)
        total = sum(c.values())
        match = sum((c & _ngrams(reference, n)).values())
        if n == 1:
            if match == 0:
                return 0.0
            logs += math.log(match / total)
        else:
            logs += math.log((match + 1) / (total + 1))
    bp = 1.0 if len(candidate) > len(reference) else math.exp(1 - len(reference) / len(candidate))
    return bp * math.exp(logs / 4)


def _f(match: int, cand: int, ref: int) -> float:
    if match == 0 or cand == 0 or ref == 0:
        return 0.0
    p, r = match / cand, match / ref
    return 2 * p * r / (p + r)


def rouge_n(candidate: Sequence[str], reference: Sequence[str], n: int) -> float:
    c, r = _ngrams(candidate, n), _ngrams(reference, n)
    return _f(sum((c & r).values()), sum(c.values()), sum(r.values()))


def rouge_l(candidate: Sequence[str], reference: Sequence[str]) -> float:
    """ROUGE-L F-score from the longest common subsequence (O(n·m), rows only)."""
    if not candidate or not reference:
        return 0.0
    prev = [0] * (len(reference) + 1)
    for a in candidate:
        cur = [0]
        for j, b in enumerate(reference):
            cur.append(prev[j] + 1 if a == b else max(prev[j + 1], cur[j]))
        prev = cur
    return _f(prev[-1], len(candidate), len(reference))


@dataclass(frozen=True)
class Overlap:
    bleu4: float
    rouge1: float
    rouge2: float
    rougeL: float  # noqa: N815 - the metric's usual name

    @property
    def mean(self) -> float:
        return (self.bleu4 + self.rouge1 + self.rouge2 + self.rougeL) / 4


def overlap(candidate: str, reference: str, *, max_words: int = 600) -> Overlap:
    """BLEU-4 and ROUGE-1/2/L of two texts, each in [0, 1]; long texts are cut at ``max_words``."""
    c, r = words(candidate)[:max_words], words(reference)[:max_words]
    return Overlap(bleu4(c, r), rouge_n(c, r, 1), rouge_n(c, r, 2), rouge_l(c, r))


# --------------------------------------------------------------------------- task rewards

def anomaly_score(completion: str, label: str, mode: Mode, *, category: str | None = None,
                  prefill: str | None = None, weights: RewardWeights = RewardWeights()) -> Score:
    """Reward an anomaly verdict. ``label`` is 'normal' or 'abnormal'; ``category`` the true
    root-cause category of an abnormal session when known (full model only).

    An unreadable verdict counts as malformed and as wrong (a miss on abnormal sessions).
    """
    prefill = PREFILL[mode] if prefill is None else prefill
    got_cat = None
    if mode == "fast":
        verdict = parse_fast(completion, prefill).verdict
    else:
        full = parse_full(completion, prefill)
        verdict, got_cat = full.verdict, full.category
    fmt_ok = check_format(prefill + completion, mode) and verdict is not None
    reward = weights.format_ok if fmt_ok else weights.format_bad
    abnormal = label == "abnormal"
    correct = verdict == label
    if correct:
        reward += weights.correct
    else:
        reward += weights.missed_anomaly if abnormal else weights.false_alarm
    cat_ok: bool | None = None
    if mode == "full" and abnormal and category in CATEGORIES:
        cat_ok = correct and got_cat == category
        reward += weights.category if cat_ok else 0.0
    return Score(round(reward, 6), fmt_ok, verdict, correct, got_cat, cat_ok)


def text_score(completion: str, reference: str, task: str, *, prefill: str = "<think>",
               weights: RewardWeights = RewardWeights()) -> Score:
    """Reward a parsing, interpretation, root-cause or solution answer (think-first only)."""
    parts = split_answer(prefill + completion, "full")
    if parts is None:
        return Score(weights.format_bad, False, task_score=0.0)
    answer = parts[1]
    ref_parts = split_answer(reference, "full") if "<answer>" in reference else None
    ref = ref_parts[1] if ref_parts else reference.strip()
    value = template_f1(answer, ref) if task == "parsing" else overlap(answer, ref).mean
    return Score(round(weights.format_ok + weights.text * value, 6), True, task_score=round(value, 6))


def score(completion: str, *, task: str, mode: Mode, label: str, category: str | None = None,
          prefill: str | None = None, weights: RewardWeights = RewardWeights()) -> Score:
    """The joint reward of one completion (the text generated after the prompt's prefill).

    ``label`` is the verdict for anomaly detection and the reference answer otherwise.
    """
    if task == "anomaly":
        return anomaly_score(completion, label, mode, category=category, prefill=prefill, weights=weights)
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    return text_score(completion, label, task, prefill=PREFILL["full"] if prefill is None else prefill,
                      weights=weights)


def _text_of(completion) -> str:
    """TRL passes plain strings for text prompts and message lists for conversational ones."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    return str(completion)


class JointReward:
    """The GRPO reward function: TRL calls it with the completions and the dataset columns.

    Columns used: ``task``, ``mode``, ``label`` and (optional) ``category``; the prompt's
    prefill is the mode's. The mean of each component is reported through ``log_metric``.
    """

    __name__ = "joint_reward"

    def __init__(self, weights: RewardWeights = RewardWeights()) -> None:
        self.weights = weights

    def __call__(self, prompts=None, completions=(), *, task, mode, label, category=None, log_metric=None,
                 **_: object) -> list[float]:
        cats = category or [None] * len(completions)
        scores = [score(_text_of(c), task=t, mode=m, label=lab, category=cat or None, weights=self.weights)
                  for c, t, m, lab, cat in zip(completions, task, mode, label, cats, strict=True)]
        if log_metric is not None and scores:
            log_metric("format_ok", sum(s.format_ok for s in scores) / len(scores))
            verdicts = [s.verdict_correct for s in scores if s.verdict_correct is not None]
            if verdicts:
                log_metric("verdict_accuracy", sum(verdicts) / len(verdicts))
        return [s.reward for s in scores]
