"""The `rlog` command as a user runs it: a real subprocess where it matters, real files."""

import json
import subprocess
import sys

import pytest

from rlog.cli import main

LOG = b"""2024-05-01 10:00:00 INFO: request req-1 started by user alice
2024-05-01 10:00:01 INFO: request req-1 finished in 12 ms
2024-05-01 10:00:02 ERROR: request req-2 failed: connection refused to db-3
Traceback (most recent call last):
  File "app.py", line 7, in handler
ConnectionRefusedError: [Errno 111]
2024-05-01 10:00:03 INFO: request req-3 started by user bob
this line has no header and looks like no continuation, so it is a dead letter

2024-05-01 10:00:04 INFO: request req-3 finished in 9 ms \xff\xfe
2024-05-01 10:00:05 WARN: request req-2 retry 1
"""


@pytest.fixture
def logfile(tmp_path):
    p = tmp_path / "app.log"
    p.write_bytes(b"orphan continuation before any header\n" + LOG + b"2024-05-01 10:00:06 INFO: " + b"y" * 1_000_000 + b"\n")
    return p


def test_help_explains_each_subcommand():
    out = subprocess.run([sys.executable, "-m", "rlog.cli", "--help"], capture_output=True, text=True, check=True).stdout
    for cmd in ("analyze", "formats", "config", "model"):
        assert cmd in out
    sub = subprocess.run([sys.executable, "-m", "rlog.cli", "analyze", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "--format" in sub and "--labels" in sub and "--id-pattern" in sub


def test_formats_and_config(capsys, monkeypatch):
    assert main(["formats"]) == 0
    assert "thunderbird" in capsys.readouterr().out
    monkeypatch.setenv("RLOG_SESSION__TIMEOUT_S", "42")
    assert main(["config"]) == 0
    assert "timeout_s: 42" in capsys.readouterr().out


def test_parse_only_with_id_sessions_bad_input_and_outputs(logfile, tmp_path, capsys):
    rc = main(["analyze", str(logfile), "-f", "<Date> <Time> <Level>: <Content>", "--id-pattern", r"(req-\d+)",
               "--parse-only", "-q", "--dead-letters", str(tmp_path / "dead.jsonl"), "--report", str(tmp_path / "r.json")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "templates" in out and "dead letters" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["records"] == 7 and report["sessions"] == 3  # req-1, req-2, req-3
    assert report["flags"] == {"non_utf8": 1, "truncated": 1}
    assert report["dead_letters"] == {"line does not match log format 'custom'": 2, "empty line": 1}
    dead = [json.loads(x) for x in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert [d["seq"] for d in dead] == [1, 9, 10] and dead[0]["raw"].startswith("orphan")
    assert "does not look like a continuation" in dead[1]["reason"]


def test_bgl_style_labels_give_scores(tmp_path, capsys):
    p = tmp_path / "bgl.log"
    rows = []
    for i in range(40):
        label = "KERNDTLB" if i in (5, 25) else "-"
        msg = "data TLB error interrupt" if label != "-" else f"generating core.{i}"
        rows.append(f"{label} {1117838570 + i} 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 "
                    f"R02-M1-N0-C:J12-U11 RAS KERNEL INFO {msg}")
    p.write_text("\n".join(rows) + "\n")
    assert main(["analyze", str(p), "-f", "bgl", "--window-size", "10", "--parse-only", "-q",
                 "--report", str(tmp_path / "r.json")]) == 0
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["sessions"] == 4 and r["verdicts"] == {"unjudged": 4}


def test_analyze_with_tiny_model_and_labels_csv(logfile, tiny_model_dir, tmp_path, capsys):
    labels = tmp_path / "labels.csv"
    labels.write_text("BlockId,Label\nreq-1,Normal\nreq-2,Anomaly\nreq-3,Normal\n")
    args = ["analyze", str(logfile), "-f", "<Date> <Time> <Level>: <Content>", "--id-pattern", r"(req-\d+)", "-q",
            "--fast-model", str(tiny_model_dir), "--full-model", str(tiny_model_dir), "--fast-max-new-tokens", "4",
            "--full-max-new-tokens", "4", "--labels", str(labels), "--alerts", str(tmp_path / "a.jsonl"),
            "--report", str(tmp_path / "r.json")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "scores over 3 labelled sessions" in out and "model calls fast / full" in out
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["cascade"]["fast_calls"] == 3 and r["cascade"]["malformed_fast"] == 0  # scored in one pass: nothing to misread
    assert r["scores"]["tp"] + r["scores"]["fn"] == 1
    assert (tmp_path / "a.jsonl").exists()


@pytest.mark.parametrize("args,msg", [
    (["analyze", "/nonexistent.log"], "log file not found"),
    (["analyze", "{log}", "-f", "klingon"], "unknown log format"),
    (["analyze", "{log}", "--session", "id"], "needs session.id_patterns"),
    (["analyze", "{log}", "--fast-model", "/no/such/model"], "never downloaded"),
    (["analyze", "{log}", "--labels", "{bad}"], "neither normal nor anomaly"),
])
def test_user_errors_are_one_clear_line(args, msg, logfile, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,label\nreq-1,normal\nreq-2,purple\n")
    argv = [a.format(log=logfile, bad=bad) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("rlog: error:") and msg in err and "Traceback" not in err
