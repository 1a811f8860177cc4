"""Every record a worker reads back is untrusted (issue 30), on a real broker: a corrupt or
forged parse-state record, a corrupt verdict memory, and a worker told to stop while a stage
is stuck. Workers run as ``rlog run`` subprocesses, as operators run them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import orjson
import pytest
import yaml
from test_stream import (
    PausableProxy,
    _all_saved,
    _assert_published_as_offline,
    _closed_offline,
    _committed,
    _count_only_config,
    _health,
    _metrics,
    expected_sessions,
    produce_sim,
    published_after,
    start_worker,
    stop,
    wait_for,
    worker_config,
)

from rlog.config import load_config
from rlog.pipeline.lines import Line
from rlog.wire import StateKeys, seal
from stream.broker import EmbeddedBroker, free_port
from stream.checkpoint import MEMORY_KEY, PartitionState, memory_fingerprint, seal_name, snapshot_state
from stream.kafka_io import ensure_topics, make_producer, read_topic
from stream.runner import create_topics

KEY = "k3y-for-the-state-topic-0123456789"


def _write(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    p = make_producer(bootstrap)
    for k, v in records:
        p.send(topic, key=k, value=v)
    p.flush()
    p.close()


def _forged_checkpoint(rcfg, source: str = "forged") -> bytes:
    """A well-formed checkpoint holding open sessions of lines nobody produced."""
    st = PartitionState(rcfg)
    for i in range(1, 8):
        st.pipe.feed(source, Line(i, orjson.dumps({"source": source, "message": f"ERROR forged failure {i}"}).decode()))
    st.offset = 0
    assert st.pipe.sessionizer.open_count > 0
    return snapshot_state(st)


def test_corrupt_and_forged_parse_state_never_stop_the_parse_role(broker, sim_dir, tiny_model_dir, tmp_path,
                                                                  monkeypatch):
    """Issue 30 items 1 and 3. Before: ``RLCM{not json`` under key 0 crash-looped the parse worker
    (0 of 50 lines sessioned, on every restart: the compacted topic keeps the record), and a
    forged checkpoint's open sessions were published as real. Now, with a state key, both are
    refused (logged with key and offset, counted, set aside on the dead-letter topic), the
    partitions start fresh, every line is sessioned exactly as offline, and nothing forged is
    published; corrupted again while the worker is down, the restart starts cold and goes on."""
    monkeypatch.setenv("RLOG_STATE_KEY", KEY)
    cfg_path, cfg, rcfg = _count_only_config(tmp_path, tiny_model_dir, "hostile")
    create_topics(load_config(cfg_path, env={}), broker.bootstrap)
    state = "hostile.parse-state"
    _write(broker.bootstrap, state, [(b"0", b"RLCM{not json"), (b"1", _forged_checkpoint(rcfg))])
    log = tmp_path / "worker.log"
    proc = start_worker(broker.bootstrap, cfg_path, log, "--role", "parse")
    try:
        produce_sim(broker.bootstrap, "hostile.raw", sim_dir, stop_at=300)
        _all_saved(broker.bootstrap, "hostile", rcfg)
        want = _closed_offline(broker.bootstrap, "hostile.raw", cfg)
        recs = wait_for(broker.bootstrap, "hostile.sessions", len(want), distinct=True)
        text = log.read_text(errors="replace")
        _assert_published_as_offline(recs, want, text[-3000:])  # every line, nothing forged
        assert "crash" not in text.lower() and proc.poll() is None, text[-3000:]
        assert "refused" in text and "offset" in text
        m = _metrics(cfg["stream"]["web_port"])
        assert m['rlog_records_refused_total{kind="checkpoint",reason="malformed"}'] == 1
        assert m['rlog_records_refused_total{kind="parse-state",reason="unauthentic"}'] == 1
        dead = [orjson.loads(r.value) for r in read_topic(broker.bootstrap, "hostile.dead-letters", timeout_s=10)]
        assert sorted(d["key"] for d in dead if d["stage"] == "restore") == ["0", "1"], dead
    finally:
        stop(proc)
    committed = _committed(broker.bootstrap, "hostile.parse", "hostile.raw")
    ends = {r.partition: r.offset + 1 for r in read_topic(broker.bootstrap, "hostile.sessions", timeout_s=10)}
    # down: a sealed record whose payload is garbage (a buggy writer with the key) and a bad seal
    keys = StateKeys(KEY.encode())
    _write(broker.bootstrap, state, [(b"0", seal(keys, seal_name(state, b"0"), b"\x78garbage")),
                                     (b"1", seal(StateKeys(b"another key entirely!"), seal_name(state, b"1"),
                                                 _forged_checkpoint(rcfg)))])
    produce_sim(broker.bootstrap, "hostile.raw", sim_dir, start=300)
    want = _closed_offline(broker.bootstrap, "hostile.raw", cfg, since=committed)
    start = log.stat().st_size
    proc = start_worker(broker.bootstrap, cfg_path, log, "--role", "parse")
    try:
        after = published_after(broker.bootstrap, "hostile.sessions", ends, want)
        text = log.read_bytes()[start:].decode(errors="replace")
        _assert_published_as_offline(after, want, text[-3000:])
        assert proc.poll() is None and "crash" not in text.lower(), text[-3000:]
        m = _metrics(cfg["stream"]["web_port"])
        assert m['rlog_records_refused_total{kind="parse-state",reason="malformed"}'] == 1
        assert m['rlog_records_refused_total{kind="parse-state",reason="unauthentic"}'] == 1
        assert m["rlog_state_cold_starts_total"] == sum(1 for p in (0, 1) if committed.get(p, 0) > 0)
    finally:
        stop(proc)


def test_a_corrupt_verdict_memory_never_stops_detection(broker, sim_dir, tiny_model_dir, tmp_path):
    """Issue 30 item 2. Before: a memory record with the right fingerprint and a garbage entry
    crashed the detect agent every few seconds (0 alerts while parsing went on). Now it is
    refused, the worker starts with an empty memory and every session is judged and alerted."""
    cfg_path, cfg = worker_config(tmp_path, tiny_model_dir, "badmem")
    cfg["cascade"]["memory"] = {"persist": 100, "save_interval_s": 1}
    cfg_path.write_text(yaml.safe_dump(cfg))
    wcfg = load_config(cfg_path, env={})
    create_topics(wcfg, broker.bootstrap)
    body = {"v": 1, "fingerprint": memory_fingerprint(wcfg), "memory": {"cache": [["k", "not a verdict"]],
                                                                        "known": [["api", "t", 1]]}}
    _write(broker.bootstrap, "badmem.parse-state", [(MEMORY_KEY, zlib.compress(orjson.dumps(body)))])
    want = expected_sessions(sim_dir, cfg)
    log = tmp_path / "worker.log"
    proc = start_worker(broker.bootstrap, cfg_path, log)
    try:
        produce_sim(broker.bootstrap, "badmem.raw", sim_dir)
        alerts = wait_for(broker.bootstrap, "badmem.alerts", len(want), distinct=True)
        text = log.read_text(errors="replace")
        assert {orjson.loads(r.value)["session_id"] for r in alerts} == want, text[-3000:]
        assert "crash" not in text.lower() and "restored verdict memory" not in text
        assert "verdict memory at offset 0 of badmem.parse-state refused" in text
        m = _metrics(cfg["stream"]["web_port"])
        assert m['rlog_records_refused_total{kind="memory",reason="malformed"}'] == 1
        assert m["rlog_alerts_total"] == len(want)
    finally:
        stop(proc)


def _stopped_within(proc: subprocess.Popen, bound_s: float) -> float:
    """Seconds from SIGTERM to exit; fails when the worker outlives ``bound_s``."""
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(bound_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        pytest.fail(f"the worker was still running {bound_s:.0f}s after SIGTERM")
    return time.monotonic() - t0


STOP_S = 8.0  # stream.stop_timeout_s in these tests
BOUND_S = STOP_S + 12  # the deadline, plus the interpreter's own start of the exit


def _stuck_config(tmp_path: Path, model: Path, name: str, **stream) -> tuple[Path, dict]:
    cfg_path, cfg = worker_config(tmp_path, model, name, stop_timeout_s=STOP_S, **stream)
    cfg["cascade"].update(retries=1, retry_backoff_s=0.1)
    cfg_path.write_text(yaml.safe_dump(cfg))
    return cfg_path, cfg


def test_sigterm_stops_a_worker_holding_a_model_outage_within_the_bound(broker, sim_dir, short_context_model,
                                                                          tmp_path):
    cfg_path, cfg = _stuck_config(tmp_path, short_context_model, "stopout")
    log = tmp_path / "worker.log"
    proc = start_worker(broker.bootstrap, cfg_path, log)
    try:
        produce_sim(broker.bootstrap, "stopout.raw", sim_dir, stop_at=200)
        _wait_health(cfg, "model_failing", log)
        took = _stopped_within(proc, BOUND_S)
        print(f"stopped {took:.1f}s after SIGTERM while holding a model outage")
    finally:
        stop(proc)


def test_sigterm_stops_a_worker_whose_sends_are_retrying_within_the_bound(sim_dir, tiny_model_dir, tmp_path):
    proxy_port = free_port()
    with EmbeddedBroker(advertised_port=proxy_port) as b:
        proxy = PausableProxy(proxy_port, b.port)
        proxy.resume()
        bootstrap = f"127.0.0.1:{proxy_port}"
        cfg_path, cfg = _stuck_config(tmp_path, tiny_model_dir, "stopsend", send_timeout_s=3)
        cfg["session"]["timeout_s"] = 4  # open tails close on wall time, during the outage
        cfg_path.write_text(yaml.safe_dump(cfg))
        ensure_topics(bootstrap, {"stopsend.raw": 2})
        log = tmp_path / "worker.log"
        proc = start_worker(bootstrap, cfg_path, log, "--role", "parse")
        try:
            produce_sim(bootstrap, "stopsend.raw", sim_dir, stop_at=200)
            assert len(wait_for(bootstrap, "stopsend.sessions", 2, timeout_s=90)) >= 2
            proxy.pause()
            _wait_health(cfg, "publish_failing", log)
            took = _stopped_within(proc, BOUND_S)
            print(f"stopped {took:.1f}s after SIGTERM while sends were retrying")
        finally:
            stop(proc)
            proxy.pause()


def test_sigterm_stops_a_worker_with_a_crashed_agent_within_the_bound(broker, sim_dir, tiny_model_dir, tmp_path):
    """A bug some input finds in a stage (injected here: the session decoder raises an error that
    is not a ``RecordError``) crashes its agent; SIGTERM still stops the worker within the bound."""
    cfg_path, cfg = _stuck_config(tmp_path, tiny_model_dir, "stopcrash")
    log = tmp_path / "worker.log"
    code = ("import sys, stream.app\n"
            "def boom(*a, **k):\n    raise RuntimeError('injected bug in the detect stage')\n"
            "stream.app.decode_session = boom\n"
            "from rlog.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-c", code, "-v", "run", "--broker", broker.bootstrap, "--config",
                                 str(cfg_path)], stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        produce_sim(broker.bootstrap, "stopcrash.raw", sim_dir, stop_at=200)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "injected bug" not in log.read_text(errors="replace"):
            time.sleep(1)
        assert "injected bug" in log.read_text(errors="replace"), log.read_text(errors="replace")[-3000:]
        if proc.poll() is None:
            took = _stopped_within(proc, BOUND_S)
            print(f"stopped {took:.1f}s after SIGTERM with a crashed agent")
        else:  # the crash ended the worker by itself, within the bound of its own shutdown
            assert proc.returncode != 0
    finally:
        stop(proc)


def _wait_health(cfg: dict, name: str, log: Path, timeout_s: float = 120) -> None:
    """Until /health reports ``name`` (the stuck state the test wants the worker in)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if _health(cfg["stream"]["web_port"])[1].get(name):
                return
        except OSError:
            pass
        time.sleep(1)
    raise AssertionError(f"/health never said {name}: {log.read_text(errors='replace')[-3000:]}")


def test_a_sasl_mechanism_the_broker_does_not_take_is_named_not_called_unreachable(broker):
    """Issue 30 item 7: a SASL mechanism mismatch read as "cannot reach a Kafka broker" (and was a raw
    traceback in ``rlog alerts``). The broker answers; the message now says what it refused."""
    env = {**os.environ, "RLOG_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "RLOG_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
           "RLOG_KAFKA_SASL_PLAIN_USERNAME": "svc", "RLOG_KAFKA_SASL_PLAIN_PASSWORD": "pw"}
    for cmd in (["topics"], ["alerts", "--limit", "1"]):
        r = subprocess.run([sys.executable, "-m", "rlog.cli", *cmd, "--broker", broker.bootstrap], env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
        last = r.stderr.strip().splitlines()[-1]
        assert last.startswith("rlog: error: the Kafka broker at") and "does not accept SASL mechanism SCRAM-SHA-512" \
            in last and "cannot reach" not in last, last


def test_the_sasl_handshake_codec_reads_what_a_broker_answers():
    import struct

    from stream.sasl_probe import handshake_request, handshake_response

    req = handshake_request("PLAIN", correlation_id=7)
    assert struct.unpack(">i", req[:4])[0] == len(req) - 4 and req[4:8] == struct.pack(">hh", 17, 1)
    assert req.endswith(b"\x00\x05PLAIN")
    frame = struct.pack(">ihi", 7, 33, 2) + b"\x00\x05PLAIN\x00\x0dSCRAM-SHA-256"
    assert handshake_response(frame) == (33, ["PLAIN", "SCRAM-SHA-256"])
    with pytest.raises(ValueError):
        handshake_response(b"\x00")


def test_a_state_key_too_short_to_protect_anything_stops_the_worker_at_once():
    r = subprocess.run([sys.executable, "-m", "rlog.cli", "run", "--broker", "127.0.0.1:9"],
                       env={**os.environ, "RLOG_STATE_KEY": "short"}, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("rlog: error: RLOG_STATE_KEY is 5 bytes")
