"""R-Log's reference answers in the exact shape the stream writes them.

Served, R-Log's escalation answer is written in steps (``rlog.cascade.explain``): a forced
analysis line, the verdict and the category as scored choices, then each text field after
its forced lead-in ("root_cause: the most likely root cause is", "action: the recommended
fix is to"), each stopping at the end of its line. A model trained on other text (a long
analysis, causes that start with "The disk …") is asked to continue a transcript it has
never seen: that is why the first R-Log wrote little that was right. So every escalation
reference is written here as the transcript serving builds, with the reference's own
sentences bent to follow the lead-ins, and capped so they end within the field budget.

Two sources of such references:

- simulated incidents (``train.environment.reference_answer``): the injected fault's cause
  and action, naming the real hosts, devices and services of the session;
- the published R-Log trajectories whose one input appears in the interpretation, root-cause
  and solution tasks alike (201 real Apache incidents): their three answers joined into one
  escalation answer on real logs, so R-Log is not taught the simulator's voice alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from rlog.cascade.explain import LEAD_INS, NO_ANALYSIS
from rlog.cascade.fallback import category_of

# Words kept per field: they must end within the served budget (``explain.field_tokens``, 24 tokens; a host
# name or a path is several tokens a word).
FIELD_WORDS = 12

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`'\"(\[])")
_CAUSE_STEM = re.compile(
    r"^(?:the\s+)?(?:(?:primary|main|underlying|likely|most\s+likely)\s+)?root\s+cause\s+"
    r"(?:of\s+(?:the|this|these)\s+[^,.]{0,120}?\s+)?(?:is|was|lies\s+in|stems\s+from|arises\s+from|"
    r"appears\s+to\s+be|seems\s+to\s+be)\s+", re.IGNORECASE)
_ACTION_STEM = re.compile(
    r"^(?:to\s+(?:resolve|fix|address|solve|correct|prevent|mitigate)\b[^,]{0,160},\s*)?"
    r"(?:(?:it\s+is|it's)\s+(?:recommended|advisable|necessary|best)\s+to\s+|(?:the\s+)?(?:solution|resolution|fix)"
    r"(?:\s+to\s+[^,.]{0,80}?)?\s+(?:is|would\s+be)\s+to\s+)?"
    r"(?:(?:the\s+)?(?:user|you|one|administrators?|they)\s+(?:should|can|could|must|needs?\s+to|may\s+need\s+to|"
    r"would\s+need\s+to|has\s+to|have\s+to)\s+)?(?:(?:first\s+)?(?:consider\s+|try\s+(?:to\s+)?)?)", re.IGNORECASE)
_MARKDOWN = re.compile(r"\*\*|__|`+|^#+\s*|^\s*(?:\d+\.|[-*])\s+", re.MULTILINE)
# A fix that starts this way is an instruction; anything else ("The solution involves …") is not, and is
# not used: the action's lead-in needs a verb.
_IMPERATIVE = re.compile(
    r"^(?:add|adjust|allow|apply|block|change|check|clear|configure|correct|create|disable|downgrade|edit|enable|"
    r"ensure|fix|grant|increase|install|limit|make|modify|move|open|raise|reduce|reinstall|remove|rename|renew|"
    r"replace|reset|restart|restore|review|roll|run|set|specify|stop|switch|update|upgrade|use|verify|"
    r"investigate|inspect|examine|confirm|rewrite|reconfigure|free|kill|start|correctly|properly)\b", re.IGNORECASE)


def first_sentence(text: str) -> str:
    """The first sentence of a reference, markdown and layout removed."""
    flat = " ".join(_MARKDOWN.sub("", text).split())
    head = _SENTENCE_END.split(flat, maxsplit=1)[0].strip()
    return head.split(":\n", 1)[0].strip()


_DANGLING = {"a", "an", "and", "as", "at", "by", "for", "from", "in", "its", "of", "on", "or", "that", "the", "to",
             "with", "which", "while", "is", "are", "was", "were", "be"}


def cap_words(text: str, words: int = FIELD_WORDS) -> str:
    """At most ``words`` words, ending with a full stop: cut back to a clause when one ends far enough
    in, else to the last content word (never "… the process on.")."""
    toks = text.split()
    if len(toks) > words:
        text = " ".join(toks[:words])
        if text.count("(") > text.count(")"):
            text = text[: text.rfind("(")]
        cut = max(text.rfind(", "), text.rfind("; "))
        if cut > len(text) // 3:
            text = text[:cut]
        else:
            kept = text.split()
            while len(kept) > 1 and kept[-1].lower().strip(",;:") in _DANGLING:
                kept.pop()
            text = " ".join(kept)
    text = text.rstrip(" ,;:-(")
    return text if text.endswith((".", "!", "?")) else text + "."


def lower_first(text: str) -> str:
    """``The disk …`` → ``the disk …``; an acronym or a path stays as it is."""
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        return text[0].lower() + text[1:]
    return text


def as_root_cause(sentence: str) -> str:
    """A cause sentence as it reads after the lead-in ``the most likely root cause is``."""
    s = sentence.strip()
    m = _CAUSE_STEM.match(s)
    if m:
        return cap_words(s[m.end():])
    return cap_words("that " + lower_first(s))


def as_action(sentence: str) -> str | None:
    """A fix as it reads after ``the recommended fix is to``; None when it is not an instruction."""
    s = sentence.strip()
    m = _ACTION_STEM.match(s)
    rest = s[m.end():] if m else s
    if not _IMPERATIVE.match(rest):
        return None
    return cap_words(lower_first(rest))


# What a reference says of a value the session does not show (a host, a device, an address the logs'
# templates mask): training to name it would teach R-Log to invent names.
UNSEEN = {"host": "the host", "device": "", "volume": "", "switch": "", "service": "the service", "property": "",
          "dependency": "dependency", "certificate": "the service", "source_ip": "one address"}


def grounded(text: str, values: dict[str, str], shown: str) -> str:
    """``text`` with each of ``values`` that ``shown`` (the prompt's session) lacks said generically.

    A list of hosts keeps the ones shown. A version always reads as "a new version" unless shown.
    """
    seen = shown.lower()
    for name, value in sorted(values.items(), key=lambda kv: -len(kv[1])):
        if not value or value.lower() in seen or value not in text:
            continue
        if name == "version":
            text = re.sub(rf"\bVersion {re.escape(value)}", "A new version", text)
            text = re.sub(rf"\bversion {re.escape(value)}", "a new version", text)
            text = text.replace(value, "the new version")
            continue
        parts = [p for p in value.split(", ") if p.lower() in seen]
        generic = UNSEEN.get(name)
        if generic is None:
            continue  # not a value the texts name
        text = text.replace(value, ", ".join(parts) if parts else ("the hosts" if name == "host" and ", " in value
                                                                   else generic))
    text = re.sub(r"\b([Tt]he) the\b", r"\1", text)
    return re.sub(r"\s+([,.;])", r"\1", re.sub(r"\s{2,}", " ", text)).strip()


def served_answer(verdict: str, category: str | None = None, interpretation: str = "", root_cause: str = "",
                  action: str = "", *, analysis: str = NO_ANALYSIS) -> str:
    """The completion after ``<think>`` that serving's steps write, field values as given.

    ``root_cause`` and ``action`` are the text after their lead-ins (``as_root_cause``,
    ``as_action``). A normal verdict ends after the verdict: serving never explains one.
    ``analysis``: what precedes ``</think>`` (serving forces ``NO_ANALYSIS`` when it writes none).
    """
    head = f"{analysis}</think><answer>\nverdict: {verdict}\n"
    if verdict != "abnormal":
        return head + "</answer>"
    return (f"{head}category: {category}\ninterpretation: {interpretation}\n"
            f"root_cause:{LEAD_INS['root_cause']} {root_cause}\naction:{LEAD_INS['action']} {action}\n</answer>")


def placeholder_analysis(completion: str) -> str:
    """A think-first completion with its analysis replaced by the one serving forces, and a bare
    ``<answer>verdict</answer>`` written in the served ``verdict:`` shape."""
    head, sep, rest = completion.partition("</think>")
    if not sep:
        return completion
    m = re.match(r"^\s*<answer>\s*(normal|abnormal)\s*\.?\s*</answer>\s*$", rest, re.IGNORECASE)
    if m:
        rest = f"<answer>\nverdict: {m.group(1).lower()}\n</answer>"
    return f"{NO_ANALYSIS}{sep}{rest}"


def joined_incidents(rows_by_task: dict[str, Iterable[dict]]) -> Iterator[dict]:
    """The trajectories' inputs answered in all three text tasks, as one incident each.

    ``rows_by_task``: task name (interpretation, root_cause, solution) -> rows with ``input``
    and ``label``. Yields ``{input, lines, category, interpretation, root_cause, action}`` for
    each input whose three answers fit the served shape; the category is what the failing
    lines' words point at (the trajectories carry none).
    """
    def key(text: str) -> str:
        return " ".join(text.strip().strip("`").split())

    by_input: dict[str, dict[str, str]] = {}
    for task, rows in rows_by_task.items():
        for r in rows:
            by_input.setdefault(key(r["input"]), {})[task] = r["label"]
    for text, labels in by_input.items():
        if not all(t in labels for t in ("interpretation", "root_cause", "solution")):
            continue
        action = as_action(first_sentence(labels["solution"]))
        if action is None:
            continue
        lines = [ln.strip().strip("`").strip() for ln in text.strip().strip("`").splitlines()]
        lines = [ln for ln in lines if ln]
        if not lines:
            continue
        evidence = [{"line": ln, "template": ln, "marks": ["failure"]} for ln in lines]
        yield {"input": text, "lines": lines, "category": category_of(evidence),
               "interpretation": cap_words(first_sentence(labels["interpretation"])),
               "root_cause": as_root_cause(first_sentence(labels["root_cause"])), "action": action}
