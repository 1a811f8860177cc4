"""The benchmark suite: baselines, splits, stage timing, reports, the CLI, the streaming path."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml

from benchmarks.baselines import DeepLogDetector, DrainNovelty, IForestDetector, Keywords, PCADetector
from benchmarks.report import render_markdown, write_outputs
from benchmarks.run import score_row
from benchmarks.spec import BenchSpec, load_spec, preset_names
from rlog.config import ConfigError
from rlog.pipeline.sessions import Session, SessionLine
from tests.conftest import need_data


def session(sid: str, events: list[int], raw: str = "INFO ok", label: bool = False) -> Session:
    lines = [SessionLine(i, None, raw, f"T{e}", f"event {e} <*>", label, e) for i, e in enumerate(events)]
    return Session(sid, "app", "window", lines)


def normal_sessions(n: int = 80) -> list[Session]:
    # a steady workflow: open, read 1-4 times, close; sometimes one retry before a read
    rng = random.Random(0)
    out = []
    for i in range(n):
        reads = [2] * rng.randint(1, 4)
        ev = [1, *reads, 3] if i % 4 else [1, 4, *reads, 3]
        out.append(session(f"n{i}", ev))
    return out


def test_score_row_leaves_undefined_scores_empty():
    r = score_row("m", "d", "session", [False, False, False], [True, False, False])
    assert r["f1"] is None and r["recall"] is None and r["precision"] == 0.0 and r["fpr"] == pytest.approx(1 / 3, abs=1e-4)
    r = score_row("m", "d", "session", [True, False], [True, False])
    assert (r["precision"], r["recall"], r["f1"], r["fpr"]) == (1.0, 1.0, 1.0, 0.0)


def test_bootstrap_intervals_hold_the_point_score_and_narrow_with_more_sessions():
    from rlog.metrics import binary_scores, bootstrap_intervals

    rng = random.Random(3)
    truth = [rng.random() < 0.3 for _ in range(60)]
    pred = [t if rng.random() < 0.8 else not t for t in truth]  # a detector right 80% of the time
    f1 = binary_scores(zip(truth, pred, strict=True)).f1
    small = bootstrap_intervals(truth, pred)
    assert small["f1"][0] < f1 < small["f1"][1]
    big = bootstrap_intervals(truth * 10, pred * 10)  # same rates, ten times the sessions
    assert big["f1"][0] < f1 < big["f1"][1]
    assert big["f1"][1] - big["f1"][0] < (small["f1"][1] - small["f1"][0]) / 2
    assert bootstrap_intervals(truth, pred) == small  # seeded: the same resamples every run
    r = score_row("m", "d", "session", [False] * 5, [True] + [False] * 4)
    assert r["f1_ci"] is None and r["fpr_ci"][0] == 0.0 and r["fpr_ci"][1] > 0.2  # no anomalies: FPR only
    perfect = score_row("m", "d", "session", truth, truth)
    assert perfect["f1_ci"] == [1.0, 1.0]


def test_drain_novelty_and_keywords():
    fit = normal_sessions()
    d = DrainNovelty()
    d.fit(fit, [False] * len(fit))
    assert d.predict([session("a", [1, 2, 3]), session("b", [1, 9, 3])]) == [False, True]
    k = Keywords()
    k.fit([], [])
    assert k.predict([session("a", [1], raw="2026 INFO all good"), session("b", [1], raw="2026 ERROR disk"),
                      session("c", [1], raw="2026 WARN x")]) == [False, True, False]
    failing = Session("d", "app", "window", [SessionLine(0, None, "x", "T1", "connection refused by <*>", None, 1)])
    assert k.predict([failing]) == [True]


@pytest.mark.parametrize("detector", [PCADetector(), IForestDetector(contamination=0.05, seed=0)],
                         ids=["pca", "iforest"])
def test_count_vector_detectors_flag_a_session_unlike_the_fit_sessions(detector):
    fit = normal_sessions()
    detector.fit(fit, [False] * len(fit))
    # a burst of retries is far from every fit vector; a normal session is not
    pred = detector.predict([session("ok", [1, 2, 2, 3]), session("storm", [1] + [4] * 30 + [2] * 12 + [3])])
    assert pred == [False, True]


def test_deeplog_flags_an_unseen_transition_and_an_unknown_template():
    fit = normal_sessions()
    dl = DeepLogDetector(window=3, top_g=2, hidden=16, epochs=60, seed=0)
    dl.fit(fit + [session("bad", [9, 9], label=True)], [False] * len(fit) + [True])  # trained on normal ones only
    assert 9 not in {k[1] for k in dl.index}
    pred = dl.predict([session("ok", [1, 2, 2, 3]), session("reversed", [3, 2, 2, 1]), session("new", [1, 2, 7, 3])])
    assert pred == [False, True, True]


def test_presets_validate_and_errors_are_clear(tmp_path):
    assert {"quick", "standard"} <= set(preset_names())
    for name in preset_names():
        spec = load_spec(name)
        # a preset measures detection (with at least one stream replay), explanations, or the fault lab
        assert ((spec.datasets and any(d.stream for d in spec.datasets)) or spec.explain is not None
                or spec.faultlab is not None), name
    with pytest.raises(ConfigError, match="no benchmark preset 'nope'"):
        load_spec("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "x", "datasets": [{"name": "a", "kind": "loghub"}],
                                   "baselines": {"methods": ["pca", "magic"]}}))
    with pytest.raises(ConfigError) as e:
        load_spec(str(bad))
    assert "needs `system`" in str(e.value) and "magic" in str(e.value)


def test_bgl_split_is_exactly_what_training_held_out():
    """The shipped adapters trained on BGL's first 70% (sessions and templates): the benchmark
    must score only the rest, or the LLM rows would be inflated by training data."""
    data_dir = need_data("loghub", "BGL").parents[1]
    from benchmarks.datasets import load_dataset
    from benchmarks.spec import DatasetSpec
    from rlog.config import load_config
    from rlog.loghub import load_corrections
    from train.data import bgl_examples

    cfg = load_config(env={})
    data = load_dataset(DatasetSpec(name="bgl", kind="loghub", system="BGL", templates=True), cfg,
                        Path("/tmp/rlog-test-bench-bgl"), data_dir)
    ex = bgl_examples(data_dir, "fast", corrections=load_corrections(data_dir))
    held = {e.key for e in ex if e.split != "train"}
    trained = {e.key for e in ex if e.split == "train"}
    scored = {f"bgl:{s.session_id}" for s in data.test}
    assert scored == {k for k in held if k.startswith("bgl:")}
    assert not scored & trained
    scored_templates = {f"bgl-template:{s.lines[0].template}" for s in data.templates}
    assert scored_templates == {k for k in held if k.startswith("bgl-template:")}
    assert len(data.test) == 30 and sum(data.test_labels) > 0 and sum(data.template_labels) > 0
    assert data.stream_file is not None and data.stream_file.read_text().count("\n") == data.test_lines


def _spec(tmp_path: Path, **dataset) -> Path:
    spec = {"name": "t", "seed": 3, "probe_sessions": 2, "parsing_systems": ["HDFS"],
            "baselines": {"deeplog_epochs": 2},
            "datasets": [{"name": "sim", "kind": "sim", "fit_lines": 600,
                          "sim": {"seed": 3, "lines": 300, "rate": 3, "fault_gap_s": 15, "warmup_s": 5}, **dataset}]}
    p = tmp_path / "spec.yaml"
    p.write_text(yaml.safe_dump(spec))
    return p


def test_bench_cli_without_models_scores_every_baseline_on_the_same_sessions(tmp_path, capsys):
    from rlog.cli import main

    out = tmp_path / "out"
    assert main(["bench", "--preset", str(_spec(tmp_path)), "--out", str(out), "--no-llm", "-q",
                 "--data-dir", str(tmp_path / "absent")]) == 0
    r = json.loads((out / "results.json").read_text())
    rows = [x for x in r["detection"] if x["dataset"] == "sim"]
    assert {x["method"] for x in rows} == {"drain3-novelty", "keywords", "pca", "iforest", "deeplog"}
    n = r["datasets"]["sim"]["test_sessions"]
    assert n > 3 and all(x["n"] == n for x in rows)
    assert r["datasets"]["sim"]["test_abnormal"] > 0
    st = r["stages"]["sim"]["lines_per_s"]
    assert all(st[k] > 0 for k in ("parse", "mine", "sessionize", "pipeline", "drain3_alone"))
    assert r["skipped"]["parsing"].startswith("needs Loghub") and r["parsing"] == []
    assert r["environment"]["packages"]["scikit-learn"] and r["environment"]["cpu_count"] >= 1
    md = (out / "results.md").read_text()
    assert "| sim | deeplog |" in md and "Skipped" in md
    for png in ("f1.png", "throughput.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Detection quality" in capsys.readouterr().out


def test_bench_on_your_own_file_with_line_labels(tmp_path):
    """`rlog bench --file`: a simulation folder (per-line truth) and a plain file whose format
    carries the label (BGL's first field) are both scored, with no shared data needed."""
    from rlog.cli import main
    from rlog.sim.engine import SimConfig
    from rlog.sim.output import simulate

    sim = tmp_path / "mysim"
    simulate(SimConfig(seed=5, lines=400, fault_gap_s=15, warmup_s=5), sim, progress=False)
    out = tmp_path / "out"
    assert main(["bench", "--file", str(sim), "--out", str(out), "--no-llm", "-q"]) == 0
    r = json.loads((out / "results.json").read_text())
    (name, info), = r["datasets"].items()
    assert info["test_abnormal"] > 0 and info["fit_sessions"] > 0 and r["parsing"] == []
    assert {x["method"] for x in r["detection"]} == {"drain3-novelty", "keywords", "pca", "iforest", "deeplog"}

    bgl_like = tmp_path / "ras.log"
    ok = "- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 RAS KERNEL INFO "
    bad = "KERNDTLB 1117838575 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.55.675872 R02-M1-N0-C:J12-U11 RAS KERNEL FATAL "
    rows = [ok + f"generating core.{i}" if i % 37 else bad + "data TLB error interrupt" for i in range(1, 400)]
    bgl_like.write_text("\n".join(rows) + "\n")
    out2 = tmp_path / "out2"
    assert main(["bench", "--file", str(bgl_like), "--format", "bgl", "--window", "10", "--out", str(out2),
                 "--no-llm", "-q"]) == 0
    r = json.loads((out2 / "results.json").read_text())
    info = r["datasets"]["ras"]
    assert info["session"]["size"] == 10 and info["test_abnormal"] > 0
    kw = next(x for x in r["detection"] if x["method"] == "keywords")
    assert kw["recall"] == 1.0  # FATAL and "error" are in every abnormal window


def test_bench_on_id_sessions_with_a_labels_csv(tmp_path):
    """HDFS-style: sessions by block id, labels from an (id, label) CSV, as Loghub ships them."""
    from rlog.cli import main

    lines, labels = [], ["BlockId,Label"]
    for b in range(60):
        blk = f"blk_{1000 + b}"
        bad = b % 6 == 5
        lines += [f"081109 2036{b % 60:02d} 148 INFO dfs.DataNode$DataXceiver: Receiving block {blk} src: /10.0.0.{b % 9}",
                  f"081109 2036{b % 60:02d} 149 INFO dfs.DataNode$PacketResponder: Received block {blk} of size 67108864"]
        if bad:
            lines.append(f"081109 2036{b % 60:02d} 150 WARN dfs.DataNode: writeBlock {blk} received exception "
                         "java.io.IOException: Connection reset by peer")
        lines.append(f"081109 2036{b % 60:02d} 151 INFO dfs.FSNamesystem: BLOCK* NameSystem.addStoredBlock: {blk}")
        labels.append(f"{blk},{'Anomaly' if bad else 'Normal'}")
    log = tmp_path / "hdfs.log"
    log.write_text("\n".join(lines) + "\n")
    csv_path = tmp_path / "anomaly_label.csv"
    csv_path.write_text("\n".join(labels) + "\n")
    out = tmp_path / "out"
    assert main(["bench", "--file", str(log), "--format", "hdfs", "--id-pattern", "hdfs", "--labels", str(csv_path),
                 "--out", str(out), "--no-llm", "-q"]) == 0
    r = json.loads((out / "results.json").read_text())
    info = r["datasets"]["hdfs"]
    assert info["session"]["mode"] == "id" and info["fit_sessions"] == 42 and info["test_sessions"] == 18
    assert info["test_abnormal"] == 3
    kw = next(x for x in r["detection"] if x["method"] == "keywords")
    assert (kw["tp"], kw["fp"]) == (3, 0)  # "exception" is in exactly the abnormal blocks


def test_bench_with_models_and_the_streaming_path(tmp_path, tiny_model_dir):
    """Offline cascade, the fast-vs-full probe and the real streaming path (embedded broker,
    worker process, kafka-python replay) on a tiny random model that fails open, so every
    session becomes an alert whose produce-to-alert latency is measured."""
    from benchmarks.run import run_bench
    from rlog.config import load_config

    model = {"model": str(tiny_model_dir), "max_new_tokens": 6, "batch_size": 8}
    cfg = load_config(env={}, overrides={"cascade": {"fast": model, "full": {**model, "max_new_tokens": 8},
                                                     "alert_on_unknown": True, "max_wait_s": 0.5, "scoring": "generate",
                                                     "explain": {"structured": "off"}}})
    spec = BenchSpec.model_validate(yaml.safe_load(_spec(tmp_path, stream=True, stream_rate=200).read_text()))
    r = run_bench(spec, cfg, tmp_path / "out", data_dir=None, progress=False)
    rows = {x["method"]: x for x in r["detection"] if x["dataset"] == "sim"}
    assert {"rlog-fast", "rlog", "rlog (stream)"} <= set(rows)
    n = r["datasets"]["sim"]["test_sessions"]
    assert rows["rlog"]["n"] == rows["rlog-fast"]["n"] == n
    cost = r["cost"]["sim"]
    assert cost["sessions"] == n and cost["fast_calls"] + round(cost["cache_hit_ratio"] * n) == n
    assert cost["model_calls_per_1k_lines"] > 0
    assert cost["warmed_on"]["sessions"] == r["datasets"]["sim"]["fit_sessions"] > 0  # not in the scored counts
    assert r["probe"]["sessions"] == 2 and len(r["probe"]["full_ms_all"]) == 2 and r["probe"]["speedup_mean"] > 0
    s = r["stream"]["sim"]
    assert s["completed"], s["error"]
    assert s["unexpected_alerts"] == 0
    assert s["alerts"] == s["sessions"] > 0  # fail-open: one alert per session, no more
    assert s["latency_ms"]["n"] == s["alerts"] and s["latency_ms"]["p50"] > 0
    assert s["worker_peak_rss_mb"] > 50
    assert r["memory"]["bench_peak_rss_mb_with_models"] >= r["memory"]["bench_peak_rss_mb_without_models"]
    assert (tmp_path / "out" / "latency.png").is_file()


def test_markdown_renders_from_saved_results(tmp_path):
    r = {"preset": "p", "description": "", "elapsed_s": 1.0, "skipped": {}, "cost": {}, "root_cause": {},
         "probe": None, "stages": {}, "stream": {}, "parsing": [], "memory": {}, "datasets": {},
         "environment": {"time": "now", "cpu": "cpu", "cpu_count": 2, "gpu": None, "python": "3.11",
                         "packages": {}, "verdict_policy": "either",
                         "models": {"fast": {"model": "m", "adapter": None}, "full": {"model": "m", "adapter": "/a/rlog"}}},
         "detection": [score_row("rlog", "d", "session", [True, False], [True, True]),
                       score_row("keywords", "d", "session", [True, False], [False, False])]}
    md = render_markdown(r)
    assert md.index("| d | keywords |") < md.index("| d | rlog |")  # baselines first, rlog last
    assert "| 1.000 [" in md or "| 0.667 [" in md  # F1 shown with its interval
    made = write_outputs(r, tmp_path)
    assert [p.name for p in made] == ["results.md", "f1.png"]


@pytest.mark.slow
def test_quick_preset_runs_every_method_and_both_paths_with_the_shipped_models(tmp_path):
    """CI's smoke run of `rlog bench --preset quick` (real SmolLM2 + shipped adapters): no
    timing is asserted, only that every figure the README quotes is produced."""
    need_data("loghub", "BGL")
    from rlog.cli import main

    out = tmp_path / "quick"
    assert main(["bench", "--preset", "quick", "--out", str(out), "-q"]) == 0
    r = json.loads((out / "results.json").read_text())
    baselines = {"drain3-novelty", "keywords", "pca", "iforest", "deeplog"}
    by = {(x["dataset"], x["level"]): set() for x in r["detection"]}
    for x in r["detection"]:
        by[(x["dataset"], x["level"])].add(x["method"])
    assert by[("bgl", "session")] == baselines | {"rlog-fast", "rlog", "rlog (stream)"}
    assert by[("sim", "session")] == baselines | {"rlog-fast", "rlog"}
    assert by[("bgl", "template")] == {"drain3-novelty", "keywords", "rlog-fast", "rlog"}
    assert r["stream"]["bgl"]["completed"], r["stream"]["bgl"]["error"]
    assert r["stream"]["bgl"]["unexpected_alerts"] == 0
    assert r["probe"]["sessions"] == 2 and r["probe"]["speedup_mean"] > 0
    assert r["cost"]["sim"]["fast_calls"] > 0 and "sim" in r["root_cause"]
    e = r["explanations"]
    assert e["incidents"] == 3 and e["readable_rate"] == 1.0 and len(e["by_scenario"]) == 3
    assert {k: v["n"] for k, v in e["trajectories"].items()} == {"interpretation": 1, "root_cause": 1, "solution": 1}
    assert "Explanations (simulated incidents)" in (out / "results.md").read_text()
    assert [p["system"] for p in r["parsing"]] == ["HDFS", "BGL", "Thunderbird", "OpenSSH"]
    assert r["environment"]["models"]["fast"]["adapter"].endswith("rlog-fast")
    for name in ("results.md", "f1.png", "latency.png", "throughput.png", "explanations.png"):
        assert (out / name).stat().st_size > 0


def test_prompt_token_figures_stay_within_the_cap(tmp_path, capsys):
    """The served fast prompt of every simulated window stays within the view's token cap plus the
    fixed instructions (the figures the README quotes come from this module)."""
    from benchmarks.prompt_tokens import main
    from rlog.config import ViewConfig

    out = tmp_path / "tokens.json"
    assert main(["--data-dir", str(tmp_path / "no-data"), "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    (name, sim), = figures.items()
    assert name.startswith("simulation") and sim["sessions"] > 50 and "p50" in capsys.readouterr().out
    assert sim["p50"] <= sim["p90"] <= sim["max"] <= ViewConfig().max_tokens + 250


def _incident_session(sid: str, incident: str, scenario: str, category: str, failing: str, n_bad: int):
    from rlog.pipeline.sessions import Session, SessionLine
    from rlog.truth import LineTruth

    s = Session(sid, "dn-1", "window")
    for i in range(10):
        bad = i < n_bad
        s.lines.append(SessionLine(i, 100.0 + i, failing if bad else f"heartbeat {i}", "T9" if bad else "T1",
                                   failing if bad else "heartbeat <*>",
                                   truth=LineTruth(True, incident, scenario, category) if bad else LineTruth(False)))
    return s


def test_explanations_pick_each_incidents_most_telling_session_and_score_it(tiny_backend):
    from benchmarks.explain import evaluate_explanations, incident_sessions
    from rlog.cascade.cascade import Cascade
    from rlog.config import CascadeConfig

    sessions = [_incident_session("a1", "F1", "disk_failure", "storage", "disk sda failed: I/O error", 2),
                _incident_session("a2", "F1", "disk_failure", "storage", "disk sda failed: I/O error", 5),
                _incident_session("b1", "F2", "network_partition", "network", "connection to nn-1 refused", 3),
                _incident_session("c1", "F3", "disk_failure", "storage", "disk sdc failed: I/O error", 1)]
    chosen = incident_sessions(sessions)
    assert [s.session_id for s in chosen] == ["a2", "b1", "c1"]  # most abnormal lines; fault types interleaved
    assert [s.session_id for s in incident_sessions(sessions, 2)] == ["a2", "b1"]
    cas = Cascade(tiny_backend, tiny_backend, CascadeConfig(explain={"think_tokens": 4, "field_tokens": 4}))
    incidents = {"F1": {"cause": "the disk sda failed", "action": "replace disk sda"},
                 "F2": {"cause": "a link went down", "action": "fix the link"}}
    res = evaluate_explanations(cas, chosen, incidents, progress=False)
    assert res["incidents"] == 3 and res["readable_rate"] == 1.0
    assert res["rule_category_accuracy"] == 1.0  # the failing lines' words name storage / network
    assert 0.0 <= res["category_accuracy"] <= 1.0 and set(res["by_scenario"]) == {"disk_failure", "network_partition"}
    lo, hi = res["category_interval"]
    assert 0.0 <= lo <= res["category_accuracy"] <= hi <= 1.0 and res["category_by"] == "fitted"
    assert all(r["alert_category"] is not None and r["rlog_category"] is not None for r in res["rows"])
    assert res["ms"]["p50"] > 0
    assert cas.stats.escalations == 3


def test_soak_run_keeps_templates_at_their_bound_through_giant_lines(tmp_path):
    """The soak script at a small size: far more templates than the bound, giant lines mixed in;
    the worker survives, holds its template bound and reports every stretch."""
    from benchmarks.soak import run_soak

    res = run_soak(lines=6000, templates=3000, big_every=2500, big_mb=2, report_every=2000, out=tmp_path,
                   max_clusters=50)
    assert res["big_lines"] == 2 and [r["lines"] for r in res["rows"]][-1] == 6000
    # the bound is per source (Drain3 miner per record key); the soak writes under 8 keys
    assert all(r["templates"] <= 8 * 50 for r in res["rows"]) and res["rows"][-1]["templates"] >= 8 * 40
    assert (tmp_path / "soak.md").is_file() and (tmp_path / "soak.png").is_file()


def test_cost_floor_runs_the_real_memories_with_the_labels_as_models():
    """Perfect models still pay for news: a normal session once, an incident once (both stages),
    and nothing for what the memories already hold."""
    from benchmarks.cost_floor import cost_floor
    from rlog.config import CascadeConfig, ModelSpec
    from rlog.pipeline.sessions import Session, SessionLine

    def s(sid, templates, t0):
        return Session(sid, "db", "window", [SessionLine(i, t0 + i, t, "T" + t, t) for i, t in enumerate(templates)])

    fit = [s("f1", ["heartbeat", "served <*>"], 0.0)]
    test = [s("t1", ["heartbeat", "served <*>"], 10.0),  # known-normal after the warm-up: no call
            s("t2", ["heartbeat", "disk failed <*>"], 20.0),  # news: R-Log-fast, then R-Log
            # holds the incident: in the same R-Log-fast batch as t2 it is scored, but not explained again
            s("t3", ["served <*>", "disk failed <*>", "io error <*>"], 30.0),
            s("t4", ["heartbeat", "gc pause <*>"], 40.0)]  # a new normal template: R-Log-fast once
    labels = [False, True, True, False]
    floor = cost_floor(CascadeConfig(), fit, [False], test, labels, lines=1000)
    assert (floor["fast_calls"], floor["full_calls"], floor["explanations_reused"]) == (3, 1, 1)
    assert floor["model_calls_per_1k_lines"] == 4.0
    one_by_one = CascadeConfig(fast=ModelSpec(max_new_tokens=48, adapter="rlog-fast", batch_size=1))
    apart = cost_floor(one_by_one, fit, [False], test, labels, lines=1000)  # t3 in a batch after t2's
    assert (apart["fast_calls"], apart["full_calls"], apart["incident_hits"]) == (2, 1, 1)
    cold = cost_floor(CascadeConfig(), fit, [False], test, labels, lines=1000, warm=False)
    assert cold["fast_calls"] == 4  # t1 is news too without the warm-up


def test_real_incidents_are_the_joined_trajectories_training_held_out(tiny_backend, tmp_path):
    import json

    from benchmarks.explain import real_incident_overlap
    from rlog.config import CascadeConfig
    from train.data import explain_examples

    rows = {"LogInterpretation_with_reason.json": [], "RootCauseAnalysis_with_reason.json": [],
            "SolutionRecommendation_with_reason.json": []}
    for i in range(24):
        line = f"AH0{i:04d}: worker {i} failed to bind port {8000 + i}"
        rows["LogInterpretation_with_reason.json"].append({"input": line, "label": f"Worker {i} could not start.",
                                                           "instruction": "", "reasoning": ""})
        rows["RootCauseAnalysis_with_reason.json"].append({"input": line, "label": f"The root cause is port {8000 + i} "
                                                           "being taken.", "instruction": "", "reasoning": ""})
        rows["SolutionRecommendation_with_reason.json"].append({"input": line, "label": f"Free port {8000 + i}.",
                                                                "instruction": "", "reasoning": ""})
    (tmp_path / "rlog").mkdir()
    for name, r in rows.items():
        (tmp_path / "rlog" / name).write_text(json.dumps(r))
    cfg = CascadeConfig(explain={"field_tokens": 4})
    every = explain_examples(tmp_path, cascade=cfg, val=0.15, test=0.15)
    held = [e for e in every if e.split != "train"]
    assert len(every) == 24 and 0 < len(held) < 24
    res = real_incident_overlap(tiny_backend, cfg, tmp_path, progress=False)
    assert res["n"] == len(held) and res["ms"]["p50"] > 0
    assert {r["key"] for r in res["rows"]} == {e.key for e in held}  # only what training never saw
    assert all(0.0 <= r["cause_rouge_l"] <= 1.0 for r in res["rows"])
