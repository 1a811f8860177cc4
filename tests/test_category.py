"""The alert's category model: features, fit, storage, and how the cascade uses it."""

from __future__ import annotations

import json
import math

import jsonschema
import orjson
import pytest

from rlog.cascade.alerts import alert_schema, pick_evidence
from rlog.cascade.cascade import Cascade
from rlog.cascade.category import (
    CATEGORY_FILE,
    FEATURES,
    CategoryModel,
    CategoryModelError,
    category_features,
    category_model_for,
    load_category_model,
    save_category_model,
)
from rlog.cascade.explain import structured_answer, written_budget
from rlog.config import CascadeConfig, ExplainConfig, ModelSpec
from rlog.contract.prompts import CATEGORIES, build_prompt
from rlog.contract.representation import view_of
from tests.test_explain import crafted
from train.category import CategoryExample, accuracy, fit_category_model, fit_report


def ev(*lines: tuple[str, bool]) -> list[dict]:
    """Evidence entries in log order: (line, failing)."""
    return [{"line": text, "template": text, "marks": ["failure"] if failing else [], "template_id": f"T{i}",
             "count": 1, "first_ts": None, "last_ts": None} for i, (text, failing) in enumerate(lines)]


def test_features_read_the_earliest_failing_line_apart_from_its_consequences():
    x = category_features(ev(("GC pause took 3000ms, heap 97% used", False),
                             ("java.lang.OutOfMemoryError: Java heap space", True),
                             ("Upstream orders-1 refused connection: Connection refused", True),
                             ("Upstream orders-2 refused connection: Connection refused", True)))
    mem, net = CATEGORIES.index("memory"), CATEGORIES.index("network")
    first_failing, first_named, failing_share, other_share = (FEATURES.index(f) for f in FEATURES)
    assert x[mem][first_failing] == 1.0 and x[net][first_failing] == 0.0  # the cause comes first
    assert x[net][failing_share] == pytest.approx(2 / 3) and x[mem][failing_share] == pytest.approx(1 / 3)
    assert x[mem][other_share] == 1.0 and x[mem][first_named] == 1.0
    assert category_features([]) == [[0.0] * len(FEATURES) for _ in CATEGORIES]


def _examples() -> list[CategoryExample]:
    """A convention the words alone get wrong: a disk's I/O errors are a hardware fault (plus plain cases)."""
    out = []
    for i in range(12):
        out.append(CategoryExample("hardware", "disk", ev((f"sd{i}: I/O error, sector {i}", True),
                                                          ("re-replicating blocks", False))))
        out.append(CategoryExample("storage", "slow", ev((f"volume /data/{i} is slow", False),
                                                         (f"disk write to volume {i} timed out", True))))
        out.append(CategoryExample("memory", "oom", ev((f"Out of memory: Killed process {i}", True),)))
        out.append(CategoryExample("network", "link", ev((f"link down on eth{i}", True),
                                                         ("connection refused", True))))
    return out


def test_the_fit_learns_a_convention_the_rule_misses_and_is_deterministic():
    examples = _examples()
    model = fit_category_model(examples, l2=0.001, iters=1500)
    assert model == fit_category_model(examples, l2=0.001, iters=1500)
    assert accuracy(model, examples) == 1.0
    assert model.choose(ev(("sdq: I/O error, sector 7", True)))[0] == "hardware"
    p = model.probs(ev(("Out of memory: Killed process 9", True)))
    assert math.isclose(sum(p), 1.0) and max(p) == p[CATEGORIES.index("memory")]
    rep = fit_report(examples, l2=0.001, iters=300)
    assert rep.fit["n"] == 48 and rep.fit["rule_accuracy"] < 1.0
    loso = rep.fit["leave_one_fault_type_out"]
    assert set(loso) == {"disk", "slow", "oom", "link"} and not loso["oom"]["category_seen"]
    # a category no other example shows is still named from its own words (the feature weights are shared)
    assert loso["oom"]["fitted_without"] == 1.0


def test_a_model_round_trips_and_a_broken_file_says_what_to_do(tmp_path):
    model = fit_category_model(_examples(), iters=200)
    save_category_model(tmp_path, model)
    assert load_category_model(tmp_path) == model
    assert load_category_model(tmp_path / "none") is None and load_category_model(None) is None
    assert category_model_for(tmp_path) == model
    with pytest.raises(CategoryModelError, match="holds no rlog_category.json.*rlog train category --adapter"):
        category_model_for(tmp_path / "none")
    d = json.loads((tmp_path / CATEGORY_FILE).read_text())
    d["categories"] = d["categories"][:-1]
    (tmp_path / CATEGORY_FILE).write_text(json.dumps(d))
    with pytest.raises(CategoryModelError, match="another taxonomy.*rlog train category"):
        load_category_model(tmp_path)
    (tmp_path / CATEGORY_FILE).write_text("{")
    with pytest.raises(CategoryModelError, match="not a category model"):
        load_category_model(tmp_path)


def test_the_shipped_model_names_plain_incidents_right():
    model = category_model_for("rlog")
    assert isinstance(model, CategoryModel) and model.fit["n"] >= 500
    assert model.choose(ev(("heartbeat ok", False), ("java.lang.OutOfMemoryError: Java heap space", True),
                           ("Upstream a refused connection: Connection refused", True)))[0] == "memory"
    assert model.choose(ev(("Failed password for invalid user admin from 10.0.0.9 port 22 ssh2", True),))[0] == \
        "security"


def test_structured_answers_are_written_under_the_named_category(tiny_backend):
    cfg = ExplainConfig(think_tokens=4, field_tokens=4)
    prompt = build_prompt("<logs>\n1. Out of memory: Killed process 7\n</logs>", "full")
    with tiny_backend.transcript(prompt, written_budget(cfg)) as t:
        ans = structured_answer(t, cfg, continue_as="abnormal", category=("memory", 0.9))
        written = t.text
    assert ans.category == "memory" and ans.category_p == 0.9 and "\ncategory: memory\n" in written
    assert ans.fields["category"] in CATEGORIES  # R-Log's own choice, kept


@pytest.mark.parametrize("who", ["fitted", "rule", "rlog"])
def test_the_cascade_says_who_named_the_category(tiny_backend, who):
    cfg = CascadeConfig(fast=ModelSpec(max_new_tokens=4), full=ModelSpec(batch_size=1), scoring="logits",
                        threshold=0.01, band=0.0, explain={"think_tokens": 4, "field_tokens": 4, "category": who})
    cas = Cascade(tiny_backend, tiny_backend, cfg)
    s = crafted("a", "java.lang.OutOfMemoryError: Java heap space", source="app-1")
    (alert,) = cas.alerts(cas.judge([s]))
    jsonschema.validate(orjson.loads(alert.to_json()), alert_schema())
    assert alert.category_by == who and alert.category in CATEGORIES
    evidence = pick_evidence(s, view_of(s, cfg.view), cfg.evidence_lines)
    if who == "fitted":
        assert (alert.category, alert.category_confidence) == (
            lambda c: (c[0], round(c[1], 4)))(cas.categories.choose(evidence))
        assert "category" not in alert.fallback
    elif who == "rule":
        assert alert.category == "memory" and "category" in alert.fallback and alert.category_confidence is None
    else:
        assert cas.categories is None and "category" not in alert.fallback and alert.category_confidence > 0


def test_the_model_card_section_reports_the_fit():
    from train.ship import category_section, insert_before_results

    rep = fit_report(_examples(), l2=0.001, iters=300)
    section = category_section({**rep.fit, "seeds": [11, 111]})
    assert "| oom | memory | no | 12 |" in section and "simulated runs 11, 111" in section
    card = insert_before_results("# card\n\n## How\n\ntext\n\n## Results\n\nnumbers\n", section)
    assert card.index("### Category model") < card.index("## Results") and card.startswith("# card")
    assert insert_before_results("# card\n", "X\n").endswith("X\n")
