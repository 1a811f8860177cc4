"""Security basics: no pickled weights or remote code, a loopback health server by default,
and Kafka secrets that never reach the config printout or the worker's output."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rlog.config import load_config
from rlog.models import ModelNotFound, resolve_adapter, resolve_model
from stream.broker import EmbeddedBroker, free_port


def test_pickled_weights_are_refused_with_the_reason(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (model / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelNotFound, match=r"pytorch_model.bin is pickled"):
        resolve_model(str(model))
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelNotFound, match=r"no .safetensors weights \(adapter_model.bin is pickled"):
        resolve_adapter(adapter)
    assert resolve_adapter("rlog-fast") is not None  # the shipped adapters are safetensors


def test_health_and_metrics_listen_on_loopback_unless_told(tmp_path, monkeypatch):
    from stream.app import build_app

    monkeypatch.setenv("RLOG_CACHE_DIR", str(tmp_path / "cache"))
    app = build_app(load_config(env={}, overrides={"stream": {"web_port": free_port()}}), "127.0.0.1:9", ("parse",))
    assert app.conf.web_bind == "127.0.0.1"
    cfg = load_config(env={"RLOG_STREAM__WEB_BIND": "0.0.0.0", "RLOG_STREAM__WEB_PORT": str(free_port())})
    assert build_app(cfg, "127.0.0.1:9", ("parse",)).conf.web_bind == "0.0.0.0"


def test_kafka_secrets_never_appear_in_output(tmp_path):
    secret = "s3cr3t-Pa55word-do-not-print"
    env = {**os.environ, "RLOG_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "RLOG_KAFKA_SASL_MECHANISM": "PLAIN",
           "RLOG_KAFKA_SASL_PLAIN_USERNAME": "svc-rlog", "RLOG_KAFKA_SASL_PLAIN_PASSWORD": secret,
           "RLOG_CACHE_DIR": str(tmp_path / "cache")}
    shown = subprocess.run([sys.executable, "-m", "rlog.cli", "config"], env=env, capture_output=True, text=True,
                           timeout=60)
    assert shown.returncode == 0 and secret not in shown.stdout + shown.stderr
    # the Kafka client's own debug lines print its whole configuration: made the way rlog makes one (the
    # redaction rlog's CLI installs, the RLOG_KAFKA_* settings), against a real broker without SASL
    client = ("import logging, os, sys\nfrom rlog import redact\nfrom kafka import KafkaConsumer\n"
              "from stream.kafka_io import security_settings\n"
              "logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)\n"
              "redact.install(redact.secrets_from_env())\n"
              "try:\n    KafkaConsumer(bootstrap_servers=sys.argv[1], **security_settings())\n"
              "except Exception as e:\n    print('failed:', type(e).__name__, file=sys.stderr)\n")
    with EmbeddedBroker() as broker:  # the handshake fails, logged at debug level
        run = subprocess.run([sys.executable, "-m", "rlog.cli", "-vv", "run", "--broker", broker.bootstrap,
                              "--role", "parse"], env=env, capture_output=True, text=True, timeout=180)
        direct = subprocess.run([sys.executable, "-c", client, broker.bootstrap], env=env, capture_output=True,
                                text=True, timeout=180)
    out = run.stdout + run.stderr
    assert run.returncode == 2 and "does not accept SASL mechanism PLAIN" in out  # refused before any client
    assert secret not in out
    verbose = direct.stdout + direct.stderr
    assert "SaslHandshake failed" in verbose and "failed:" in verbose  # the verbose path was taken
    assert secret not in verbose


def test_log_records_are_redacted_wherever_they_are_made(caplog):
    import logging

    from rlog import redact

    env = {"RLOG_KAFKA_SASL_PLAIN_PASSWORD": "hunter2-secret", "RLOG_KAFKA_SASL_PLAIN_USERNAME": "svc",
           "OTHER_PASSWORD": "not-ours"}
    assert redact.secrets_from_env(env) == ["hunter2-secret"]
    before = logging.getLogRecordFactory()
    try:
        redact.install(redact.secrets_from_env(env))
        with caplog.at_level(logging.DEBUG):
            logging.getLogger("kafka.conn").debug("config %s", {"sasl_plain_password": "hunter2-secret"})
            logging.getLogger("x").info("plain %d", 3)
        assert "hunter2-secret" not in caplog.text and "'sasl_plain_password': '***'" in caplog.text
        assert "plain 3" in caplog.text
    finally:
        logging.setLogRecordFactory(before)
