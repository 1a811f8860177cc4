"""What the model sees of a session: counts, novelty marks, examples, the token cap, signatures."""

import random

from rlog.config import CascadeConfig, MemoryConfig, ViewConfig, load_config
from rlog.contract.representation import (
    count_bucket,
    prompt_for,
    session_message,
    signature_key,
    view_of,
)
from rlog.pipeline.lines import Line
from rlog.pipeline.pipeline import Pipeline
from rlog.pipeline.sessions import Session, SessionLine


def _pipeline(size=6):
    cfg = load_config(env={}, overrides={"parse": {"format": "hdfs", "multiline": False},
                                         "session": {"mode": "fixed", "by": "count", "size": size}})
    return Pipeline(cfg)


def _hdfs(i, msg, level="INFO"):
    return Line(i, f"081109 2035{i % 60:02d} 1{i:03d} {level} dfs.DataNode: {msg}")


def _feed(pipe, lines):
    out = []
    for ln in lines:
        out.extend(pipe.feed("hdfs", ln)[0])
    return out


def test_view_counts_marks_levels_and_examples():
    pipe = _pipeline(size=6)
    warm = [_hdfs(i, f"Served block blk_{i} to /10.0.0.{i % 9}") for i in range(12)]
    sessions = _feed(pipe, warm)
    fresh = [_hdfs(100, "Served block blk_7 to /10.0.0.1"), _hdfs(101, "Served block blk_8 to /10.0.0.2"),
             _hdfs(102, "Disk /data/3 failed with exit code 137", "ERROR"),
             _hdfs(103, "Served block blk_9 to /10.0.0.3"), _hdfs(104, "Served block blk_9 to /10.0.0.3"),
             _hdfs(105, "Served block blk_9 to /10.0.0.3")]
    sessions += _feed(pipe, fresh)
    vc = ViewConfig(warmup_lines=10, example_lines=1)
    view = view_of(sessions[-1], vc)
    served, failed = view.entries
    assert view.lines == 6 and served.count == 5 and failed.count == 1
    assert served.novelty == "" and failed.novelty == "new"  # the source logged "Served" 12 times before
    assert failed.level == "ERROR" and served.level == ""
    assert "137" in failed.example and served.example == ""  # values shown for the rarest template only
    msg = session_message(view, vc)
    assert "1. ×5 Served block" in msg and "2. [new] [ERROR] Disk <*> failed" in msg and 'e.g. "Disk /data/3' in msg
    # before a source has history, nothing is new: no marks during warm-up
    assert all(e.novelty == "" for e in view_of(sessions[-1], ViewConfig(warmup_lines=1000)).entries)


def test_prompt_never_exceeds_its_token_cap(tiny_backend):
    rng = random.Random(3)
    words = ["disk", "error", "node", "kernel", "panic", "retry", "ok", "served", "block", "cache", "timeout", "42", "/var/log/x"]
    count = tiny_backend.count_tokens
    for cap in (64, 128, 256):
        cfg = CascadeConfig(view=ViewConfig(max_tokens=cap))
        for k in range(25):
            s = Session(f"s{k}", "src", "window")
            for i in range(rng.randint(1, 80)):
                t = " ".join(rng.choice(words) for _ in range(rng.randint(1, 40))) + " <*>"
                tid = f"T{rng.randint(0, 30)}"
                s.lines.append(SessionLine(i, None, t, tid, t + tid, None, content=t.replace("<*>", "7"),
                                           prior=rng.randint(0, 9), age=1000))
            user = prompt_for(view_of(s, cfg.view), "fast", cfg, count).messages[1]["content"]
            assert count(user) <= cap, (cap, count(user))
    # a session that fits is shown whole
    s = Session("w", "src", "window", [SessionLine(0, None, "a", "Ta", "kernel panic")])
    assert "kernel panic" in session_message(view_of(s), ViewConfig(max_tokens=64), count)


def test_signature_buckets_counts_and_ignores_order():
    def sess(templates, source="src"):
        return Session("x", source, "window",
                       [SessionLine(i, None, t, "T" + t, t) for i, t in enumerate(templates)])

    cfg = CascadeConfig()
    a = signature_key(sess(["a", "b", "a"]), cfg)
    assert a == signature_key(sess(["b", "a", "a"]), cfg)  # same set, same buckets, other order
    assert a == signature_key(sess(["a", "a", "a", "b"]), cfg)  # 2 and 3 share bucket 1
    assert a != signature_key(sess(["a"] * 4 + ["b"]), cfg)  # 4 crosses into bucket 2
    assert a != signature_key(sess(["a", "b", "a"], source="other"), cfg)
    assert [count_bucket(n) for n in (1, 2, 3, 4, 7, 8)] == [0, 1, 1, 2, 2, 3]
    exact = CascadeConfig(memory=MemoryConfig(key="sequence"))
    assert signature_key(sess(["a", "b", "a"]), exact) != signature_key(sess(["b", "a", "a"]), exact)


def test_signature_keys_are_stable_across_restarts():
    lines = [_hdfs(i, f"Served block blk_{i} to /10.0.0.{i % 9}" if i % 5 else "Disk /d/1 failed", "INFO")
             for i in range(30)]
    first = _pipeline()
    keys_a = [signature_key(s, CascadeConfig()) for s in _feed(first, lines[:12])]
    saved = first.state()
    again = _pipeline()  # another process: restored from the checkpoint, then fed the rest
    again.load_state(saved)
    rest_restored = [signature_key(s, CascadeConfig()) for s in _feed(again, lines[12:])]
    straight = _pipeline()
    keys_b = [signature_key(s, CascadeConfig()) for s in _feed(straight, lines)]
    assert keys_a + rest_restored == keys_b
    assert len(set(keys_b)) >= 2
