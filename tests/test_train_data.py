"""Training data: served prompts, answer-first conversion, corrections, chronological splits."""

from __future__ import annotations

from collections import Counter

import pytest

from rlog.config import CascadeConfig
from rlog.contract.answers import check_format
from rlog.contract.representation import prompt_for, view_of_templates
from rlog.loghub import load_corrections
from tests.conftest import need_data
from train.data import (
    DataError,
    bgl_examples,
    build_examples,
    chrono_split,
    load_trajectories,
    short_rationale,
    shorten_fast,
    sim_examples,
    stable_split,
    to_answer_first,
    trajectory_examples,
)
from train.recipe import load_recipe


def session_prompt(templates, mode):
    """The served prompt of bare templates."""
    return prompt_for(view_of_templates(templates), mode, CascadeConfig())


def test_answer_first_conversion_moves_the_verdict_before_a_short_rationale():
    trace = ("<think>The line mentions a kernel panic. Panics stop the node. Therefore, this log is abnormal."
             "</think><answer>abnormal</answer>")
    fast = to_answer_first(trace)
    assert fast is not None and fast.startswith("<answer>abnormal</answer><think>")
    assert check_format(fast, "fast")
    assert "Therefore, this log is abnormal." in fast
    assert to_answer_first("<answer>abnormal</answer>") is None
    assert to_answer_first("<think>a</think><answer>b</answer><answer>c</answer>") is None
    long = " ".join(f"Sentence {i} is here." for i in range(100))
    assert len(short_rationale(long, 120)) <= 120
    cut = shorten_fast("abnormal</answer><think>" + "x" * 500 + "</think>", 50)
    assert check_format("<answer>" + cut, "fast") and len(cut) < 100


def test_splits_are_stable_and_chronological():
    assert stable_split("anomaly:foo", 0.1, 0.1) == stable_split("anomaly:foo", 0.1, 0.1)
    counts = Counter(stable_split(f"k{i}", 0.1, 0.2) for i in range(5000))
    assert 0.07 < counts["val"] / 5000 < 0.13 and 0.17 < counts["test"] / 5000 < 0.23
    parts = chrono_split(20, 0.15, 0.15)
    assert parts == ["train"] * 14 + ["val"] * 3 + ["test"] * 3


def test_sim_examples_use_the_served_prompt_and_reference_answers():
    cfg = CascadeConfig()
    fast = sim_examples("fast", seed=3, lines=1500, fault_gap_s=20, benign_gap_s=30)
    full = sim_examples("full", seed=3, lines=1500, fault_gap_s=20, benign_gap_s=30)
    assert len(fast) == len(full) > 10
    assert {e.label for e in fast} == {"normal", "abnormal"}
    splits = [e.split for e in fast]
    assert splits == sorted(splits, key=["train", "val", "test"].index)  # past trains, future tests
    from rlog.sim.engine import SimConfig
    from train.environment import SimEnvironment

    episodes = list(SimEnvironment(SimConfig(seed=3, lines=1500, fault_gap_s=20, benign_gap_s=30)).episodes())
    assert [e.prompt for e in fast] == [ep.prompt("fast", cfg) for ep in episodes]  # the stream's own prompts
    for e in fast:
        assert check_format("<answer>" + e.completion, "fast")
    for e in full:
        assert check_format("<think>" + e.completion, "full")
        if e.label == "abnormal":
            assert e.category and f"category: {e.category}" in e.completion


def test_build_examples_from_the_simulator_alone_needs_no_shared_data(tmp_path):
    recipe = load_recipe("tiny", {"data": {"sources": ["sim"], "sim_lines": 1500, "shared_dir": str(tmp_path / "none"),
                                           "train_caps": {"anomaly": 10}}})
    splits = build_examples(recipe, "fast")
    assert 0 < len(splits["train"]) <= 10 and splits["val"]
    labels = Counter(e.label for e in splits["train"])
    assert labels["abnormal"] > 0  # balancing keeps every incident
    with pytest.raises(DataError, match="shared data folder"):
        build_examples(load_recipe("tiny", {"data": {"shared_dir": str(tmp_path / "none")}}), "fast")


@pytest.mark.data
def test_trajectories_load_all_five_tasks_with_corrections():
    data = need_data()
    counts = {t: len(load_trajectories(data, t)) for t in ("anomaly", "parsing", "interpretation", "root_cause",
                                                           "solution")}
    assert counts == {"anomaly": 332, "parsing": 1400, "interpretation": 300, "root_cause": 300, "solution": 300}
    corrections = load_corrections(data)
    assert len(corrections) >= 200
    stats: Counter = Counter()
    fast = list(trajectory_examples(load_trajectories(data, "anomaly"), "fast", corrections=corrections, stats=stats))
    assert stats["corrected"] > 0
    by_input = {e.key.split(":", 1)[1]: e for e in fast}
    fixed = next(k for k, v in corrections.items() if k in by_input)
    assert by_input[fixed].label == corrections[fixed]  # the expert's label wins
    for e in fast:
        assert check_format("<answer>" + e.completion, "fast")
        template = e.key.split(":", 1)[1]
        assert e.prompt == session_prompt([template], "fast")  # the stream's own prompt
    parsing = list(trajectory_examples(load_trajectories(data, "parsing")[:50], "full"))
    assert parsing and all(check_format("<think>" + e.completion, "full") for e in parsing)
    assert "<*>" in parsing[0].label
    assert not list(trajectory_examples(load_trajectories(data, "solution")[:5], "fast"))  # fast: detection only


@pytest.mark.data
def test_bgl_sessions_and_templates_with_corrected_labels():
    data = need_data()
    corrections = load_corrections(data)
    plain = bgl_examples(data, "fast", window=20)
    fixed = bgl_examples(data, "fast", window=20, corrections=corrections)
    sessions = [e for e in fixed if e.source == "bgl-session"]
    assert len(sessions) == 100
    n_abn = sum(e.label == "abnormal" for e in sessions)
    assert n_abn > sum(e.label == "abnormal" for e in plain if e.source == "bgl-session")
    hummer = [e for e in fixed if e.source == "bgl-template" and "double-hummer" in e.key]
    assert hummer and all(e.label == "abnormal" for e in hummer)  # a RationAnomaly correction
    order = [e.split for e in sessions]
    assert order == sorted(order, key=["train", "val", "test"].index)
    assert all(check_format("<answer>" + e.completion, "fast") for e in fixed)


@pytest.mark.data
def test_tiny_recipe_builds_balanced_capped_splits():
    need_data()
    recipe = load_recipe("tiny", {"variants": {"fast": {"data": {"sim_runs": 2, "train_caps": {"anomaly": 160}}}}})
    fast = build_examples(recipe.for_variant("fast"), "fast")
    full = build_examples(recipe, "full")
    assert len(fast["train"]) == recipe.data.train_caps["anomaly"]
    assert {e.task for e in full["train"]} == {"anomaly", "parsing", "interpretation", "root_cause", "solution"}
    assert {e.source for e in fast["train"]} == {"rlog", "bgl-session", "bgl-template", "sim"}
    keys = {split: {e.key for e in part} for split, part in fast.items()}
    assert not keys["train"] & keys["val"] and not keys["train"] & keys["test"]


def _incident(key: str, category: str | None, label: str = "abnormal"):
    from train.data import Example

    think = f'The line "disk failed": a disk failure. The immediate cause: worn disk. Category: {category}.'
    answer = f"\nverdict: {label}\ncategory: {category or 'none'}\ninterpretation: x\nroot_cause: y\naction: z\n"
    return Example("anomaly", "full", session_prompt(["disk <*> failed"], "full"), f"{think}</think><answer>{answer}"
                   "</answer>", label, "sim", category=category, key=key)


def test_category_drill_ends_at_the_scored_choice_without_the_answer_in_its_analysis():
    from rlog.backends.transformers_backend import render_chat
    from rlog.models import load_gguf_tokenizer
    from train.data import category_drill

    d = category_drill(_incident("k1", "storage"))
    assert d.completion == " storage\n" and d.meta["drill"] == "category" and d.key == "k1#category"
    assert d.prompt.prefill.startswith("<think>The line \"disk failed\"") and "Category:" not in d.prompt.prefill
    assert d.prompt.prefill.endswith("</think><answer>\nverdict: abnormal\ncategory:")
    from rlog.models import builtin_gguf

    text = render_chat(load_gguf_tokenizer(builtin_gguf()), d.prompt)
    assert text.endswith("category:")  # the prompt the trainer renders stops where serving scores


def test_cap_per_category_keeps_every_category_and_passes_the_rest():
    from train.data import cap_per_category

    examples = [_incident(f"s{i}", "security") for i in range(10)] + [_incident("m", "memory"),
                                                                      _incident("n", None, "normal")]
    out = cap_per_category(examples, 3, seed=1)
    assert Counter(e.category for e in out) == {"security": 3, "memory": 1, None: 1}
    assert cap_per_category(examples, None, seed=1) == examples


def test_the_full_recipe_adds_drills_to_training_only():
    recipe = load_recipe("tiny").for_variant("full").model_copy(deep=True)
    recipe.data.sources = ["sim"]
    recipe.data.sim_runs = 2
    recipe.data.category_drills = 5
    splits = build_examples(recipe, "full")
    assert sum(bool(e.meta.get("drill")) for e in splits["train"]) == 5
    assert not any(e.meta.get("drill") for part in ("val", "test") for e in splits[part])
