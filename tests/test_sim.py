"""The log simulator: determinism, parseable realistic logs, consistent ground truth, Kafka output."""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict

import orjson
import pytest

from rlog.cli import main
from rlog.config import load_config
from rlog.pipeline.envelope import unwrap
from rlog.pipeline.formats import get_format
from rlog.pipeline.lines import read_lines
from rlog.pipeline.pipeline import Pipeline
from rlog.sim.engine import Injection, SimConfig, Simulator
from rlog.sim.output import analysis_config, read_manifest, simulate
from rlog.sim.scenarios import BENIGN, FAULTS, SCENARIOS
from rlog.sim.world import FORMATS
from stream.replay import KafkaSink


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def read_jsonl(path):
    return [orjson.loads(x) for x in path.read_bytes().splitlines() if x.strip()]


@pytest.fixture(scope="module")
def every_scenario(tmp_path_factory):
    """Each fault and look-alike injected once, 300 s apart, nothing random."""
    out = tmp_path_factory.mktemp("sim-all")
    names = [*FAULTS, *BENIGN]
    cfg = SimConfig(seed=11, lines=None, duration_s=300 * len(names) + 240, rate=4, fault_gap_s=0, benign_gap_s=0,
                    inject=[Injection(scenario=n, at_s=60 + 300 * i) for i, n in enumerate(names)])
    manifest = simulate(cfg, out, progress=False)
    return out, manifest


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim-default")
    return out, simulate(SimConfig(seed=5, lines=20_000), out, progress=False)


def test_same_seed_same_bytes_other_seed_other_logs(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for d, seed in ((a, 1), (b, 1), (c, 2)):
        simulate(SimConfig(seed=seed, lines=3000), d, progress=False)
    for name in ("logs.jsonl", "truth.csv", "incidents.jsonl", "sessions.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "logs.jsonl").read_bytes() != (c / "logs.jsonl").read_bytes()
    assert len((a / "logs.jsonl").read_bytes().splitlines()) == 3000


def test_every_line_parses_in_its_component_format_at_the_truth_time(default_run):
    out, manifest = default_run
    truth = read_csv(out / "truth.csv")
    logs = read_jsonl(out / "logs.jsonl")
    assert len(truth) == len(logs) == manifest["lines"] == 20_000
    last = None
    for row, rec in zip(truth, logs, strict=True):
        fmt = get_format(FORMATS[rec["source"]])
        fields = fmt.match(rec["message"])
        assert fields is not None, rec["message"]
        assert abs(fmt.timestamp(fields) - float(row["ts"])) < 1e-6, (rec["message"], row["ts"])
        assert row["source"] == rec["source"] and row["host"] == rec["host"]
        assert last is None or rec["ts"] >= last  # interleaved in event-time order
        last = rec["ts"]
    assert set(manifest["lines_by_source"]) == set(FORMATS)


def test_variety_is_realistic_no_template_dominates(default_run):
    out, manifest = default_run
    cfg = load_config(env={}, base=manifest["config"])
    pipe = Pipeline(cfg)
    per_template: Counter = Counter()
    raw = set()
    dead = 0
    with open(out / "logs.jsonl", "rb") as f:
        for line in read_lines(f, 65536):
            sessions, d = pipe.feed("sim", line)
            dead += len(d)
            raw.add(unwrap(line.text).message)
    sessions, d = pipe.flush()
    dead += len(d)
    stores = pipe.templates()
    for name, store in stores.items():
        for _, template, size in store.templates():
            per_template[(name, template)] = size
    total = sum(per_template.values())
    assert dead == 0
    assert total == 20_000
    assert 80 <= len(per_template) <= 800, len(per_template)
    assert max(per_template.values()) / total < 0.08  # no template dominates
    for name, store in stores.items():
        assert len(store) >= 12, name  # every component has a vocabulary of its own
    assert len(raw) / total > 0.97  # parameters vary: not a handful of fixed strings


def test_every_fault_has_abnormal_sessions_and_lookalikes_stay_normal(every_scenario):
    out, manifest = every_scenario
    incidents = {i["scenario"]: i for i in read_jsonl(out / "incidents.jsonl")}
    assert set(incidents) == set(SCENARIOS)
    truth = read_csv(out / "truth.csv")
    lines_by_incident = defaultdict(list)
    for row in truth:
        if row["incident"]:
            lines_by_incident[row["incident"]].append(row)
    sessions = read_csv(out / "sessions.csv")
    for name, inc in incidents.items():
        rows = lines_by_incident[inc["id"]]
        assert len(rows) == inc["lines"] == inc["planned_lines"]
        assert {r["scenario"] for r in rows} == {name}
        if inc["kind"] == "fault":
            assert inc["abnormal_lines"] > 0 and inc["category"] == SCENARIOS[name].category
            assert all(r["category"] == inc["category"] for r in rows)
            hit = [s for s in sessions if s["incident"] == inc["id"] and s["label"] == "1"]
            assert hit, f"{name} produced no abnormal session"
            assert all(s["category"] == inc["category"] and s["action"] == inc["action"] for s in hit)
            assert "{" not in inc["action"] and "{" not in inc["cause"]  # every placeholder filled
        else:
            assert inc["abnormal_lines"] == 0 and not any(r["label"] == "1" for r in rows)
            assert inc["category"] is None
            quiet = [s for s in sessions if s["scenario"] == name]
            assert quiet and all(s["label"] == "0" and s["action"] == "" for s in quiet)
    # a session is abnormal exactly when it holds an abnormal line
    abnormal_lines = {int(r["line"]) for r in truth if r["label"] == "1"}
    for s in sessions:
        assert s["label"] in ("0", "1")
    assert manifest["abnormal_lines"] == len(abnormal_lines)
    assert manifest["sessions"]["abnormal"] == sum(s["label"] == "1" for s in sessions)


def test_generation_streams_in_bounded_memory():
    def peak(lines: int) -> tuple[int, int]:
        sim = Simulator(SimConfig(seed=3, lines=lines))
        heap = incidents = 0
        for ln in sim.lines():
            if ln.n % 500 == 0:
                heap = max(heap, len(sim._heap))
                incidents = max(incidents, len(sim.incidents))
        assert sim.written == lines
        return heap, incidents

    small, big = peak(10_000), peak(100_000)
    assert big[0] <= 1.5 * small[0] + 100, (small, big)  # pending lines do not grow with run length
    assert big[1] <= 4


def test_duration_stops_the_run_and_injection_needs_a_time():
    sim = Simulator(SimConfig(seed=1, lines=None, duration_s=120, rate=5))
    lines = list(sim.lines())
    assert 300 < len(lines) < 1000
    assert (lines[-1].t_ms - lines[0].t_ms) / 1000 < 120
    with pytest.raises(ValueError, match="SCENARIO@SECONDS"):
        Injection.parse("disk_failure")
    with pytest.raises(ValueError, match="unknown scenario"):
        Injection.parse("disk_fire@10")


def test_cli_simulate_reports_and_validates(tmp_path, capsys):
    assert main(["simulate", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in SCENARIOS)
    out = tmp_path / "sim"
    assert main(["simulate", "-o", str(out), "-n", "2500", "--seed", "4", "--faults", "slow_io,disk_failure",
                 "--benign", "none", "--fault-gap", "30", "-q"]) == 0
    text = capsys.readouterr().out
    assert "2,500 lines" in text and "rlog analyze" in text
    m = read_manifest(out)
    assert set(m["incidents"]) <= {"slow_io", "disk_failure"} and m["incidents"]
    assert main(["simulate", "-o", str(tmp_path / "x"), "--faults", "disk_fire"]) == 2
    assert "unknown scenario 'disk_fire'" in capsys.readouterr().err
    assert main(["simulate", "-n", "10"]) == 2
    assert "--out" in capsys.readouterr().err


def test_unreachable_broker_is_a_clear_error(capsys):
    from stream.broker import free_port

    port = free_port()
    assert main(["simulate", "-n", "10", "--to-kafka", "logs", "--broker", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert f"cannot reach a Kafka broker at 127.0.0.1:{port}" in err and "--broker" in err


@pytest.fixture(scope="module")
def broker():
    from stream.broker import EmbeddedBroker

    with EmbeddedBroker() as b:
        yield b


def test_to_kafka_produces_every_line_keyed_by_component(broker, tmp_path):
    from stream.kafka_io import read_topic

    out = tmp_path / "sim"
    assert main(["simulate", "-o", str(out), "-n", "1500", "--seed", "9", "--to-kafka", "sim-logs",
                 "--broker", broker.bootstrap, "--speedup", "0", "-q"]) == 0
    records = read_topic(broker.bootstrap, "sim-logs", timeout_s=30, max_records=1500)
    assert len(records) == 1500
    logs = (out / "logs.jsonl").read_bytes().splitlines()
    per_key = defaultdict(list)
    for r in records:
        per_key[r.key.decode()].append(r.value)
    expected = defaultdict(list)
    for raw in logs:
        expected[orjson.loads(raw)["source"]].append(raw)
    assert per_key == expected  # same envelopes, in order within each component


def test_kafka_pacing_follows_accelerated_event_time(broker):
    slept: list[float] = []
    now = [0.0]

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    sink = KafkaSink("paced", broker.bootstrap, speedup=30, sleep=sleep, clock=lambda: now[0])
    sim = Simulator(SimConfig(seed=2, lines=300, rate=5))
    first = last = None
    for ln in sim.lines():
        first = ln.t_ms if first is None else first
        last = ln.t_ms
        sink.send(ln)
    sink.close()
    assert sink.sent == 300
    assert sum(slept) == pytest.approx((last - first) / 1000 / 30, rel=1e-6)


def test_analysis_config_reads_each_component_in_its_format():
    cfg = load_config(env={}, base=analysis_config())
    assert cfg.parse.formats == FORMATS and cfg.parse.envelope == "json"
    assert cfg.session.mode == "fixed" and cfg.session.size == 40
    # flags and files still win over the manifest
    cfg2 = load_config(env={"RLOG_SESSION__SIZE": "25"}, base=analysis_config())
    assert cfg2.session.size == 25


def test_analyze_simulation_folder_scores_against_the_truth(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "sim"
    simulate(SimConfig(seed=8, lines=1200, fault_gap_s=20, benign_gap_s=40, warmup_s=5), out, progress=False)
    report = tmp_path / "report.json"
    rc = main(["analyze", str(out), "--fast-model", str(tiny_model_dir), "--full-model", str(tiny_model_dir),
               "--full-max-new-tokens", "24", "--report", str(report), "--alerts", str(tmp_path / "alerts.jsonl"), "-q"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "scores over" in text and "sessions by injected scenario" in text
    r = json.loads(report.read_text())
    sessions = read_csv(out / "sessions.csv")
    assert r["sessions"] == len(sessions) == r["labelled_sessions"]
    s = r["scores"]
    assert s["tp"] + s["fn"] == sum(x["label"] == "1" for x in sessions) > 0
    expected = Counter(x["scenario"] or "normal" for x in sessions)
    assert {k: v["sessions"] for k, v in r["by_scenario"].items()} == dict(expected)
    rc_ = r["root_cause"]
    assert rc_["caught"] == s["tp"] and 0 <= rc_["correct"] <= rc_["answered"] <= rc_["caught"]


def test_time_windows_in_the_manifest_match_what_analyze_cuts(tmp_path, capsys):
    out = tmp_path / "sim"
    assert main(["simulate", "-o", str(out), "-n", "3000", "--seed", "6", "--window-by", "time", "--window-size", "30",
                 "-q"]) == 0
    report = tmp_path / "r.json"
    assert main(["analyze", str(out), "--parse-only", "--report", str(report), "-q"]) == 0
    r = json.loads(report.read_text())
    sessions = read_csv(out / "sessions.csv")
    assert r["sessions"] == len(sessions) and r["dead_letters"] == {} and r["lines"] == 3000
    assert all(s["session_id"].split(":")[1] == "30s/30s" for s in sessions)
