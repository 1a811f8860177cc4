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


@pytest.fixture(scope="module")
def window_900_model(tmp_path_factory):
    """A real tiny Llama whose 900-position window holds a plain session's prompt but not one of
    many long distinct templates."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from rlog.models import builtin_gguf, load_gguf_tokenizer

    out = tmp_path_factory.mktemp("llama-900")
    tok = load_gguf_tokenizer(builtin_gguf())
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=900,
                                 bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                 pad_token_id=tok.pad_token_id, tie_word_embeddings=True)).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_one_over_long_prompt_is_a_dead_letter_offline_as_in_the_stream(window_900_model, tmp_path, capsys,
                                                                        monkeypatch):
    """Issue 30 item 5: ``rlog analyze`` aborted the whole run (rc 2, 0 alerts) on one prompt over the
    model's context, where the stream isolates that session. Now it is a dead letter with the
    reason, the other sessions are judged, and the summary counts it."""
    import random

    rng = random.Random(2)

    def word() -> str:
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randrange(4, 10)))

    lines = ["INFO worker request served ok"] * 20
    lines += [f"ERROR {word()} " + " ".join(word() for _ in range(8 + i * 2)) for i in range(10)]  # 10 templates
    log = tmp_path / "long.log"
    log.write_text("\n".join(lines) + "\n")
    for k, v in {"VIEW__MAX_TOKENS": "3000", "ESCALATE": "false", "RETRIES": "0"}.items():
        monkeypatch.setenv(f"RLOG_CASCADE__{k}", v)
    dead, alerts = tmp_path / "dead.jsonl", tmp_path / "alerts.jsonl"
    rc = main(["analyze", str(log), "-f", "raw", "--session", "fixed", "--window-size", "10", "-q",
               "--fast-model", str(window_900_model), "--full-model", str(window_900_model),
               "--dead-letters", str(dead), "--alerts", str(alerts)])
    out = capsys.readouterr().out
    assert rc == 0, out
    rows = [json.loads(x) for x in dead.read_text().splitlines()]
    assert [r["session_id"] for r in rows] == ["long.log:lines10/10:20"]
    assert "exceeds the 900-token context" in rows[0]["reason"]
    assert "model stage failed: 1" in out and "verdicts                 2" in out


def test_a_damaged_adapter_and_an_output_that_fails_are_one_clear_line(logfile, tiny_model_dir, tmp_path, capsys):
    """Issue 30 item 6: a corrupt adapter ``.safetensors`` was a raw traceback that did not name the
    file; ``--alerts /dev/full`` was ``OSError: [Errno 28]`` and no summary."""
    import shutil

    from rlog.models import resolve_adapter

    bad = tmp_path / "adapter"
    shutil.copytree(resolve_adapter("rlog-fast"), bad)
    weights = bad / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:3000])
    assert main(["analyze", str(logfile), "-q", "--fast-adapter", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("rlog: error: weights file") and str(weights) in err and "damaged" in err
    assert main(["analyze", str(logfile), "-q", "--parse-only", "--dead-letters", "/dev/full", "--report",
                 "/dev/full"]) == 2
    out = capsys.readouterr()
    assert "dead letters" in out.out  # the summary printed
    assert "rlog: error: writing dead letters to /dev/full failed (No space left on device)" in out.err
    assert "rlog: error: writing the report to /dev/full failed" in out.err
    assert main(["analyze", str(logfile), "-q", "--parse-only", "--alerts", str(tmp_path / "no" / "dir.jsonl")]) == 2
    assert "cannot write alerts to" in capsys.readouterr().err
