import pytest

from rlog.config import ConfigError, env_overrides, load_config


def test_defaults_are_valid():
    cfg = load_config(env={})
    assert cfg.parse.format == "raw" and cfg.session.mode == "fixed"
    assert cfg.cascade.fast.model == "smollm2-135m-instruct"
    assert cfg.cascade.fast.max_new_tokens < cfg.cascade.full.max_new_tokens


def test_yaml_then_env_then_overrides(tmp_path):
    f = tmp_path / "rlog.yaml"
    f.write_text("parse:\n  format: hdfs\nsession:\n  mode: id\n  id_patterns: [hdfs]\n  timeout_s: 30\n"
                 "cascade:\n  fast:\n    batch_size: 4\n")
    cfg = load_config(f, env={"RLOG_SESSION__TIMEOUT_S": "60", "RLOG_CASCADE__FAST__BATCH_SIZE": "16",
                              "RLOG_KAFKA_BROKER": "ignored:9092"})
    assert cfg.parse.format == "hdfs" and cfg.session.id_patterns == ["hdfs"]
    assert cfg.session.timeout_s == 60 and cfg.cascade.fast.batch_size == 16
    cfg = load_config(f, env={}, overrides={"session": {"timeout_s": 5}})
    assert cfg.session.timeout_s == 5


def test_env_lists_are_parsed():
    assert env_overrides({"RLOG_SESSION__ID_PATTERNS": "[hdfs, 'req-\\d+']"}) == \
        {"session": {"id_patterns": ["hdfs", "req-\\d+"]}}


@pytest.mark.parametrize("env,needle", [
    ({"RLOG_SESSION__TIMEOUT_S": "soon"}, "session.timeout_s"),
    ({"RLOG_SESSION__TIMEOUT_S": "-1"}, "greater than 0"),
    ({"RLOG_PARSE__FORMAT": "klingon"}, "unknown log format 'klingon'"),
    ({"RLOG_SESSION__MODE": "id"}, "needs session.id_patterns"),
    ({"RLOG_SESSION__MODE": "hourly"}, "session.mode"),
    ({"RLOG_PARSE__EXTRA_MASKS": "['(']"}, "invalid regex"),
    ({"RLOG_SESSION__NOPE": "1"}, "Extra inputs are not permitted"),
    ({"RLOG_CASCADE__FAST__BACKEND": "tpu"}, "cascade.fast.backend"),
])
def test_bad_values_are_clear(env, needle):
    with pytest.raises(ConfigError) as e:
        load_config(env=env)
    assert needle in str(e.value)
    assert next(iter(env)) in str(e.value)  # the message names the variable to fix


def test_bad_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml", env={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("parse: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad, env={})
    bad.write_text("- a list")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad, env={})
    bad.write_text("session:\n  size: zero\n")
    with pytest.raises(ConfigError, match=r"session.size.*\[from .*bad.yaml\]"):
        load_config(bad, env={})
