"""The fault lab (benchmarks/faultlab): labels from the injector's record, the MQTT codec the
workload speaks, and one real daemon run (Mosquitto from Debian) in which the daemon really
starts, each injected fault really leaves its trace, and the labels line up with it."""

from __future__ import annotations

import csv
import shutil

import orjson
import pytest

from benchmarks.faultlab import mqtt
from benchmarks.faultlab.labels import label_lines, traced
from benchmarks.faultlab.model import FaultSpec, Injection, LogLine


def _spec(name: str, *trace: str) -> FaultSpec:
    return FaultSpec(name, "authentication", "cause", "fix", trace, "security")


def test_a_line_is_abnormal_only_inside_its_faults_window_and_matching_its_trace():
    specs = {"auth": _spec("auth", r"not authorised"), "crash": _spec("crash", r"starting")}
    injections = [Injection("auth#1", "auth", "authentication", "security", 10.0, 20.0, "c", "f"),
                  Injection("crash#2", "crash", "crash", "software", 15.0, 30.0, "c", "f")]
    lines = [LogLine(1, 5.0, "Client x disconnected, not authorised."),  # before the window: a routine failure
             LogLine(2, 12.0, "Client y disconnected, not authorised."),
             LogLine(3, 16.0, "mosquitto starting"),
             LogLine(4, 17.0, "Client z connected"),  # in both windows, in neither trace
             LogLine(5, 25.0, "Client w disconnected, not authorised.")]  # after auth's window
    got = label_lines(lines, injections, specs)
    assert [(lb.label, lb.fault) for lb in got] == [(0, ""), (1, "auth"), (1, "crash"), (0, ""), (0, "")]
    assert traced(got) == {"auth": 1, "crash": 1}


def test_a_fault_spec_names_known_categories():
    with pytest.raises(ValueError, match="category"):
        FaultSpec("x", "weather", "c", "f", ("a",), "security")
    with pytest.raises(ValueError, match="root category"):
        FaultSpec("x", "crash", "c", "f", ("a",), "bad-luck")


def test_mqtt_packets_round_trip_through_the_reader():
    p = mqtt.connect("dev-1", keepalive=30, username="u", password="p")
    kind, body, used = mqtt.read_packet(p + b"tail")
    assert kind == mqtt.CONNECT and used == len(p) and body[:6] == b"\x00\x04MQTT" and body.endswith(b"\x00\x01p")
    big = mqtt.publish("t", b"x" * 300, qos=1, packet_id=7)
    kind, body, used = mqtt.read_packet(big)
    assert kind == mqtt.PUBLISH and used == len(big) and body[3:5] == b"\x00\x07"  # two-byte remaining length
    assert mqtt.read_packet(big[:-1]) is None  # not all there yet


@pytest.mark.skipif(shutil.which("mosquitto") is None,
                    reason="needs Debian's mosquitto (apt-get install mosquitto; .ci/run installs it)")
def test_a_real_mosquitto_run_leaves_each_faults_trace_and_labels_line_up(tmp_path, monkeypatch):
    from benchmarks.faultlab.corpus import count_sessions
    from benchmarks.faultlab.daemons import make_daemon
    from benchmarks.faultlab.runner import run_lab
    from rlog.sim.output import read_manifest

    d = make_daemon("mosquitto")
    monkeypatch.chdir(tmp_path.parent)  # a relative run folder, as `rlog lab run -o out/lab/mq` gives it
    m = run_lab(d, tmp_path.name, seed=5, faults=["malformed_packets", "auth_bruteforce", "crash_restart"],
                warmup_s=1.5, gap_s=1.0, rate_per_s=6.0, progress=False)
    log = (tmp_path / "mosquitto.log").read_text().splitlines()
    assert any("mosquitto version" in ln and "running" in ln for ln in log[:10])  # it really started
    assert m["untraced"] == [] and m["workload"]["visits"] > 10
    assert any("New client connected" in ln and "as sensor-" in ln for ln in log)  # the workload really ran
    with open(tmp_path / "truth.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(log) == m["lines"]
    windows = {i["fault"]: (i["start"], i["end"]) for i in m["injections"]}
    for r in rows:
        if r["label"] == "1":  # inside its fault's window, matching its trace
            start, end = windows[r["scenario"]]
            assert start <= float(r["ts"]) <= end and d.faults[r["scenario"]].matches(log[int(r["line"]) - 1])
            assert r["category"] == d.faults[r["scenario"]].root and r["incident"].startswith(r["scenario"] + "#")
    labelled = {r["scenario"] for r in rows if r["label"] == "1"}
    assert labelled == {"malformed_packets", "auth_bruteforce", "crash_restart"}
    assert any("not authorised" in log[int(r["line"]) - 1] for r in rows if r["scenario"] == "auth_bruteforce")
    assert sum(r["label"] == "1" for r in rows) < len(rows) / 4  # mostly normal, as a daemon is
    manifest = read_manifest(tmp_path)  # `rlog analyze FOLDER` reads a run as a simulation
    assert manifest["files"] == {"logs": "mosquitto.log", "truth": "truth.csv"}
    assert orjson.loads((tmp_path / "manifest.json").read_bytes())["sha256"]["truth.csv"]
    sessions = count_sessions(tmp_path, manifest)  # cut as `rlog analyze` cuts them: each fault in one at least
    assert set(sessions["by_fault"]) == labelled and 0 < sessions["abnormal"] < sessions["sessions"]


def test_every_daemon_brings_four_to_six_faults_of_different_categories():
    from benchmarks.faultlab.daemons import DAEMONS

    assert len(DAEMONS) >= 4 and sum(len(cls().faults) for cls in DAEMONS.values()) >= 20
    for name, cls in DAEMONS.items():
        d = cls()
        assert 4 <= len(d.faults) <= 6, name
        assert len({f.category for f in d.faults.values()}) >= 4, name
        assert all(hasattr(d, f"_{f}") for f in d.faults), name  # every fault has its injector
        assert d.packages, name


def test_rlog_lab_lists_the_daemons_and_refuses_an_unknown_one(capsys):
    from rlog.cli import main

    assert main(["lab", "list"]) == 0
    out = capsys.readouterr().out
    assert all(d in out for d in ("mosquitto", "haproxy", "openssh", "apache")) and "auth_bruteforce" in out
    assert main(["lab", "run", "-d", "nginx-but-not-really", "-o", "/tmp/nowhere"]) == 2
    assert "no daemon 'nginx-but-not-really'" in capsys.readouterr().err


def test_a_corpus_build_keeps_finished_runs_and_redoes_damaged_ones(tmp_path):
    import hashlib

    from benchmarks.faultlab.corpus import finished_run

    run = tmp_path / "mosquitto" / "seed-1"
    run.mkdir(parents=True)
    (run / "mosquitto.log").write_text("a\n")
    (run / "truth.csv").write_text("line\n")
    sha = {n: hashlib.sha256((run / n).read_bytes()).hexdigest() for n in ("mosquitto.log", "truth.csv")}
    (run / "manifest.json").write_bytes(orjson.dumps({"daemon": "mosquitto", "seed": 1, "sha256": sha,
                                                      "settings": {"rate_per_s": 4.0}}))
    assert finished_run(run, "mosquitto", 1, {"rate_per_s": 4.0}) is not None
    assert finished_run(run, "mosquitto", 1, {"rate_per_s": 8.0}) is None  # another workload
    assert finished_run(run, "mosquitto", 2) is None  # another seed
    (run / "truth.csv").write_text("line\n1\n")  # cut short or edited since
    assert finished_run(run, "mosquitto", 1) is None
    assert finished_run(tmp_path / "nothing", "mosquitto", 1) is None


def test_the_corpus_table_says_per_daemon_and_fault_what_was_built():
    from benchmarks.faultlab.corpus import corpus_table

    run = {"daemon": "mosquitto", "version": "mosquitto 2.0.11", "lines": 800, "sessions": 40, "abnormal": 9,
           "untraced": []}
    m = {"runs": [run, {**run, "untraced": ["crash_restart"]}], "seeds": [1, 2], "rate_per_s": 6.0, "built_s": 120,
         "read_as": {"session": {"size": 20}}, "totals": {"runs": 2, "sessions": 80, "abnormal_sessions": 18},
         "abnormal_sessions_by_fault": {"mosquitto/auth_bruteforce": 4}, "skipped": {"apache": "not installed"}}
    text = corpus_table(m)
    assert "2 runs, 80 sessions (18 abnormal)" in text and "| mosquitto | mosquitto 2.0.11 | 2 | 1,600 | 80 | 18 | 1 |" \
        in text and "| mosquitto/auth_bruteforce | 4 |" in text and "apache not run: not installed" in text
