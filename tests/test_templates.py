from rlog.pipeline.formats import get_format
from rlog.pipeline.templates import TemplateStore, template_id

RAW = get_format("raw")
MSGS = [
    "Receiving block blk_-1608999687919862906 src: /10.250.19.102:54106 dest: /10.250.19.102:50010",
    "Receiving block blk_7503483334202473044 src: /10.251.215.16:55695 dest: /10.251.215.16:50010",
    "PacketResponder 1 for block blk_38865049064139660 terminating",
    "PacketResponder 0 for block blk_-6952295868487656571 terminating",
    "Deleting block blk_1781953582842324563 file /mnt/hadoop/dfs/data/current/subdir5/blk_1781953582842324563",
    "instance 0c1a5b2e-1111-4a2b-9c3d-0123456789ab spawned in 12.5 seconds",
]


def test_masking_and_templates():
    s = TemplateStore(RAW)
    for m in MSGS:
        s.mine(m)
    tpls = {t for _, t, _ in s.templates()}
    assert "Receiving block <*> src: /<*> dest: /<*>" in tpls
    assert "PacketResponder <*> for block <*> terminating" in tpls
    assert "Deleting block <*> file <*>" in tpls
    assert "instance <*> spawned in <*> seconds" in tpls


def test_ids_are_stable_across_processes_and_orders():
    a, b = TemplateStore(RAW), TemplateStore(RAW)
    for m in MSGS:
        a.mine(m)
    for m in reversed(MSGS):
        b.mine(m)
    assert {(i, t) for i, t, _ in a.templates()} == {(i, t) for i, t, _ in b.templates()}
    assert template_id("x <*>") == template_id("x <*>") != template_id("x <*> y")


def test_snapshot_restore_keeps_clusters_and_ids():
    a = TemplateStore(RAW)
    ms = [a.mine(m) for m in MSGS]
    state = a.snapshot()
    assert isinstance(state, bytes) and state
    b = TemplateStore(RAW)
    b.restore(state)
    assert b.templates() == a.templates()
    again = b.mine(MSGS[0])
    assert again.cluster_id == ms[0].cluster_id and again.template_id == ms[0].template_id


def test_cluster_count_is_bounded():
    s = TemplateStore(RAW, max_clusters=10)
    for i in range(200):
        s.mine(f"event{'abcdefghijklmnopqrstuvwxyz'[i % 26]}{i // 26} happened with code{chr(65 + i % 26)}")
    assert len(s) <= 10


def test_current_template_after_generalisation():
    s = TemplateStore(RAW)
    m1 = s.mine("user alice logged in from office")
    s.mine("user bob logged in from office")
    tid, tpl = s.current(m1.cluster_id, m1.template_id, m1.template)
    assert tpl == "user <*> logged in from office" and tid == template_id(tpl) != m1.template_id


def test_a_list_of_ids_of_any_length_is_one_variable():
    # Drain3 groups by token count: without the list mask every list length was a new template
    # (Thunderbird's gmetad lines made one "new" template per line).
    s = TemplateStore(RAW)
    ids = {s.mine(f"Warning: we failed to resolve data source name {' '.join(f'an{i}' for i in range(398, 398 + n))}"
                  ).template_id for n in (3, 7, 18)}
    assert len(ids) == 1
    assert s.templates()[0][1] == "Warning: we failed to resolve data source name <*>"
    # two id-like words are not a list: they stay words Drain3 can tell apart
    assert s.mine("link eth0 up on ib0").template == "link eth0 up on ib0"


def _churn(i):
    return f"job {chr(97 + i % 7)}{i % 13} step {i % 5} on worker {i % 3} took {i} ms"


def test_a_restored_miner_continues_exactly_as_the_uninterrupted_one():
    # the tree, the clusters' recency and the counter all come back: the same lines then land
    # in the same clusters, and eviction under the bound drops the same ones
    a = TemplateStore(RAW, max_clusters=20)
    for i in range(300):
        a.mine(_churn(i))
    b = TemplateStore(RAW, max_clusters=20)
    b.restore(a.snapshot())
    assert b.lines == a.lines and len(b) == len(a)
    for i in range(300, 700):
        ma, mb = a.mine(_churn(i * 7)), b.mine(_churn(i * 7))
        assert (ma.cluster_id, ma.template_id, ma.change, ma.prior) == (mb.cluster_id, mb.template_id, mb.change,
                                                                         mb.prior)
    assert a.templates() == b.templates()


def test_a_forged_or_corrupt_snapshot_runs_nothing_and_changes_nothing(tmp_path):
    import base64
    import zlib

    import orjson
    import pytest

    from rlog.pipeline.templates import SnapshotError

    marker = tmp_path / "pwned"
    # what Drain3's own load_state would unpickle: a reduce that calls os.system
    evil = orjson.dumps({"py/reduce": [{"py/function": "os.system"}, {"py/tuple": [f"touch {marker}"]}]})
    forged = base64.b64encode(zlib.compress(evil))
    s = TemplateStore(RAW)
    s.mine(MSGS[0])
    before = s.templates()
    for bad in (forged, b"", b"not zlib", zlib.compress(b"[1,2]"),
                zlib.compress(orjson.dumps({"format": "rlog-drain/1", "counter": 1, "lines": 1,
                                            "clusters": [[1, "not a list", 1]], "tree": [[], []]})),
                zlib.compress(orjson.dumps({"format": "rlog-drain/1", "counter": 1, "lines": 1, "clusters": [],
                                            "tree": [[], [[7, [[], []]]]]}))):
        with pytest.raises(SnapshotError):
            s.restore(bad)
        assert s.templates() == before
    assert not marker.exists()
    with pytest.raises(SnapshotError, match="jsonpickle"):
        s.restore(forged)
    # a genuine snapshot of Drain3's own (what rlog wrote before): refused the same way, by its form
    from drain3 import TemplateMiner
    from drain3.memory_buffer_persistence import MemoryBufferPersistence
    from drain3.template_miner_config import TemplateMinerConfig

    cfg, buf = TemplateMinerConfig(), MemoryBufferPersistence()
    cfg.snapshot_compress_state = True
    miner = TemplateMiner(buf, cfg)
    miner.add_log_message(MSGS[0])
    miner.save_state("test")
    with pytest.raises(SnapshotError, match="jsonpickle"):
        s.restore(buf.state)


def test_a_pipeline_with_a_bad_template_state_keeps_the_rest(caplog):
    import base64

    from rlog.config import RlogConfig
    from rlog.pipeline.lines import Line
    from rlog.pipeline.pipeline import Pipeline

    p = Pipeline(RlogConfig())
    for i, m in enumerate(MSGS, 1):
        p.feed("app", Line(i, m))
    state = p.state()
    state["sources"][0][2] = base64.b64encode(b"forged").decode()
    q = Pipeline(RlogConfig())
    with caplog.at_level("WARNING"):
        q.load_state(state)
    assert "template state not restored" in caplog.text
    assert q.sessionizer.state() == p.sessionizer.state()  # open sessions and the rest are kept
    assert len(q.templates()["app"]) == 0
