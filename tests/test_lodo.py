"""The fault lab as training data and as a leave-one-daemon-out benchmark, on a small corpus written here
in the exact layout `rlog lab corpus` builds (the real daemons are exercised in test_faultlab.py)."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from rlog.labcorpus import CorpusError, read_corpus
from rlog.truth import TRUTH_COLUMNS

READ_AS = {"parse": {"format": "raw"}, "session": {"mode": "fixed", "by": "count", "size": 10}}
NORMAL = {"alpha": ["client {n} connected from 127.0.0.1 port {p}", "client {n} sent {p} bytes",
                    "client {n} disconnected"],
          "beta": ["GET /item/{n} 200 {p}", "GET /static/app.css 200 {p}", "health check ok in {n} ms"],
          "gamma": ["session {n} opened for user app", "session {n} closed", "rotated log {n} of {p}"]}
FAULT = {"alpha": ("store_denied", "permissions", "storage", "error: cannot write /var/lib/alpha/db.{n}: permission denied",
                   "the store directory was made read-only", "give the daemon write access to its store"),
         "beta": ("upstream_down", "network", "network", "upstream {n} unreachable: connection refused",
                  "the upstream server stopped listening", "restart the upstream and check its port"),
         "gamma": ("auth_scan", "authentication", "security", "failed password for invalid user u{n} from 10.0.0.{p}",
                   "an address tries many user names", "block the address and allow keys only")}


def write_run(root: Path, daemon: str, seed: int, lines: int = 120) -> dict:
    """One run folder as `runner.run_lab` writes it: the log, a truth row per line, the manifest."""
    rng = random.Random(seed * 31 + len(daemon))
    folder = root / daemon / f"seed-{seed}"
    folder.mkdir(parents=True)
    fault, category, root_cat, text, cause, fix = FAULT[daemon]
    start = rng.randint(30, 60)
    rows, out = [], []
    for i in range(1, lines + 1):
        bad = start <= i < start + 12 and i % 2 == 0
        t = (text if bad else rng.choice(NORMAL[daemon])).format(n=rng.randint(1, 999), p=rng.randint(1, 65000))
        out.append(t)
        rows.append([i, f"{1000.0 + i:.6f}", daemon, "localhost", int(bad), f"{fault}#1" if bad else "",
                     fault if bad else "", root_cat if bad else ""])
    (folder / f"{daemon}.log").write_text("".join(x + "\n" for x in out), encoding="utf-8")
    with open(folder / "truth.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(TRUTH_COLUMNS)
        w.writerows(rows)
    manifest = {"kind": "rlog.faultlab.run/v1", "daemon": daemon, "seed": seed, "version": "test 1.0",
                "lines": lines, "files": {"logs": f"{daemon}.log", "truth": "truth.csv"}, "config": READ_AS,
                "injections": [{"incident": f"{fault}#1", "fault": fault, "category": category, "root": root_cat,
                                "start": 0.0, "end": 1.0, "cause": cause, "fix": fix, "detail": {}}]}
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return {"daemon": daemon, "seed": seed, "folder": f"{daemon}/seed-{seed}"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    runs = [write_run(root, d, s) for d in FAULT for s in (1, 2, 3, 4)]
    (root / "corpus.json").write_text(json.dumps({"kind": "rlog.faultlab.corpus/v1", "runs": runs}))
    return root


def test_reading_a_corpus_makes_incidents_unique_per_run(corpus):
    runs = read_corpus(corpus)
    assert sorted(runs) == ["alpha", "beta", "gamma"] and [r.seed for r in runs["beta"]] == [1, 2, 3, 4]
    r = runs["alpha"][1]
    lines = list(r.lines())
    assert len(lines) == 120
    bad = [t for _, t in lines if t.label]
    assert bad and {t.incident for t in bad} == {"alpha/seed-2/store_denied#1"}
    inc = r.incidents["alpha/seed-2/store_denied#1"]
    assert (inc.category, inc.root, inc.fix) == ("permissions", "storage", "give the daemon write access to its store")
    assert all(t.incident is None and t.category is None for _, t in lines if not t.label)


def test_a_missing_or_broken_corpus_is_a_clear_error(corpus, tmp_path):
    with pytest.raises(CorpusError, match="rlog lab corpus -o"):
        read_corpus(tmp_path / "nowhere")
    with pytest.raises(CorpusError, match="no run of delta"):
        read_corpus(corpus, ["alpha", "delta"])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "corpus.json").write_text(json.dumps({"runs": [write_run(bad, "alpha", 1)]}))
    truth = bad / "alpha" / "seed-1" / "truth.csv"
    truth.write_text("\n".join(truth.read_text().splitlines()[:-5]) + "\n")
    with pytest.raises(CorpusError, match="differ in length"):
        list(read_corpus(bad)["alpha"][0].lines())
    (bad / "alpha" / "seed-1" / "manifest.json").write_text("{")
    with pytest.raises(CorpusError, match="unreadable"):
        read_corpus(bad)


def test_lab_examples_leave_out_a_daemon_and_the_scored_runs(corpus):
    from train.lab_data import lab_examples

    ex = lab_examples(corpus, "full", runs=2, exclude=["gamma"])
    assert {e.source for e in ex} == {"lab-alpha", "lab-beta"}
    assert all(e.key.split(":")[1].split("/")[1] in ("seed-1", "seed-2") for e in ex)  # runs 3-4 are never read
    assert {e.split for e in ex} == {"train", "val", "test"}
    abnormal = [e for e in ex if e.label == "abnormal"]
    assert abnormal and all(e.category in ("storage", "network") for e in abnormal)
    a = next(e for e in abnormal if e.source == "lab-beta")
    assert "category: network" in a.completion and "upstream" in a.completion.lower()
    assert "restart the upstream" in a.completion  # the injector's fix is the action R-Log learns
    assert "unreachable" in a.completion  # the failing line it saw is quoted
    assert a.meta["scenario"] == "upstream_down" and set(a.meta["evidence"]) >= {"any_failure", "new_lines"}
    normal = next(e for e in ex if e.label == "normal")
    assert normal.category is None and "verdict: normal" in normal.completion
    fast = lab_examples(corpus, "fast", runs=1)
    assert all(e.completion.startswith(("abnormal</answer>", "normal</answer>")) for e in fast)


def test_a_recipe_trains_on_the_lab_next_to_the_simulator(corpus):
    from train.data import build_examples
    from train.recipe import load_recipe

    recipe = load_recipe("tiny", {"data": {"sources": ["sim", "lab"], "lab_corpus": str(corpus), "lab_runs": 3,
                                           "lab_exclude": ["alpha"], "sim_runs": 1, "sim_lines": 600}})
    splits = build_examples(recipe.for_variant("fast"), "fast")
    sources = {e.source for part in splits.values() for e in part}
    assert {"sim", "lab-beta", "lab-gamma"} <= sources and "lab-alpha" not in sources
    with pytest.raises(Exception, match="lab"):
        load_recipe("tiny", {"data": {"sources": ["labs"]}})


def test_memo_scores_reads_each_prompt_once_and_delegates_the_rest():
    from benchmarks.lodo import MemoScores
    from rlog.contract.prompts import ChatPrompt

    class Backend:
        calibration = "shipped"
        model_id = "m"

        def __init__(self):
            self.seen = []

        def score(self, prompts):
            self.seen.append(len(prompts))
            return [len(p.messages[0]["content"]) / 10 for p in prompts]

    b = Backend()
    m = MemoScores(b)
    p1, p2 = ChatPrompt(({"role": "user", "content": "abc"},), "<answer>"), ChatPrompt(({"role": "user",
                                                                                         "content": "abcdef"},))
    assert m.score([p1, p2, p1]) == [0.3, 0.6, 0.3] and b.seen == [2]
    other = MemoScores(b, m.memo, calibration=None)
    assert other.score([p2]) == [0.6] and b.seen == [2]  # shared memory: no model call
    assert m.calibration == "shipped" and other.calibration is None and other.model_id == "m"
    assert m.model_calls == 2 and other.model_calls == 0


def _spec(corpus: Path, **lab):
    from benchmarks.spec import BenchSpec

    return BenchSpec.model_validate({"name": "lab-test", "seed": 1, "datasets": [], "parsing_systems": [],
                                     "probe_sessions": 0, "baselines": {"deeplog_epochs": 2},
                                     "faultlab": {"corpus": str(corpus), "fit_runs": 2, **lab}})


def test_faultlab_preset_scores_every_baseline_per_daemon_without_models(corpus, tmp_path):
    from benchmarks.run import run_bench
    from benchmarks.spec import load_spec
    from rlog.config import load_config

    assert load_spec("faultlab").faultlab is not None
    r = run_bench(_spec(corpus), load_config(env={}), tmp_path / "out", data_dir=None, llm=False, progress=False)
    rows = r["detection"]
    assert {x["dataset"] for x in rows} == {"lab-alpha", "lab-beta", "lab-gamma", "lab-all"}
    for d in ("alpha", "beta", "gamma"):
        info = r["datasets"][f"lab-{d}"]
        mine = [x for x in rows if x["dataset"] == f"lab-{d}"]
        assert {x["method"] for x in mine} == {"drain3-novelty", "keywords", "pca", "iforest", "deeplog"}
        assert all(x["n"] == info["test_sessions"] > 0 for x in mine) and info["test_abnormal"] > 0
        assert r["faultlab"]["daemons"][d] == {"fit_seeds": [1, 2], "test_seeds": [3, 4]}
    pooled = next(x for x in rows if x["dataset"] == "lab-all" and x["method"] == "keywords")
    assert pooled["n"] == sum(r["datasets"][f"lab-{d}"]["test_sessions"] for d in ("alpha", "beta", "gamma"))
    cats = {(c["method"], c["category"]): c for c in r["faultlab"]["categories"]}
    kw = cats[("keywords", "network")]
    assert kw["recall"] == 1.0 and kw["abnormal"] == kw["flagged"] > 0  # "unreachable", "refused": failure words
    assert cats[("keywords", "authentication")]["recall"] == 1.0  # "failed"
    assert "Fault lab: leave one daemon out" in (tmp_path / "out" / "results.md").read_text()
    assert (tmp_path / "out" / "faultlab_categories.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(Exception, match="leaves none to score"):
        run_bench(_spec(corpus, fit_runs=4), load_config(env={}), tmp_path / "o2", data_dir=None, llm=False,
                  progress=False)


def test_faultlab_with_a_model_refits_the_scorer_without_the_daemon_it_scores(corpus, tmp_path, tiny_model_dir):
    """The configured model on every daemon, and a lab-trained adapter (here: a random LoRA on the tiny
    model) on the daemon it was made without; each scorer fitted on the other daemons' scored runs."""
    from benchmarks.run import run_bench
    from rlog.config import load_config
    from tests.test_shared_model import _adapter

    lora = _adapter(tiny_model_dir, tmp_path / "without-beta", 3, ["q_proj", "v_proj"])
    model = {"model": str(tiny_model_dir), "batch_size": 8, "adapter": None}
    cfg = load_config(env={}, overrides={"cascade": {"fast": model, "full": {**model, "max_new_tokens": 8},
                                                     "scoring": "logits"}})
    full_lora = _adapter(tiny_model_dir, tmp_path / "full-without-gamma", 4, ["q_proj", "o_proj"])
    spec = _spec(corpus, explain_incidents=1, fusion_sessions=20, fast_adapters={"beta": str(lora)},
                 full_adapters={"gamma": str(full_lora), "alpha": str(tmp_path / "not-trained")})
    r = run_bench(spec, cfg, tmp_path / "out", data_dir=None, progress=False)
    fl = r["faultlab"]
    for d in ("alpha", "beta", "gamma"):
        cal = fl["daemons"][d]["calibration"]
        assert d not in cal["fitted_on"] and len(cal["fitted_on"]) == 2 and cal["sessions"] == 40
        methods = {x["method"] for x in r["detection"] if x["dataset"] == f"lab-{d}"}
        assert {"rlog-fast", "rlog", "rlog-fast (model alone)", "rlog-fast (shipped calibration)"} <= methods
        assert ({"rlog-fast +lab", "rlog +lab"} <= methods) == (d == "beta")
        assert fl["explanations"][d]["incidents"] == 1
    assert set(fl["explanations_lab"]) == {"gamma"} and fl["explanations_lab"]["gamma"]["incidents"] == 1
    assert "not-trained" in fl["skipped"]["R-Log +lab alpha"]  # said, not fatal
    lab = fl["daemons"]["beta"]["lab_calibration"]
    assert lab["fitted_on"] == ["alpha", "gamma"] and lab["adapter"] == str(lora)
    # the configured model read each scored session once, whatever the rows and refits that reuse its score
    total = sum(r["datasets"][f"lab-{d}"]["test_sessions"] for d in ("alpha", "beta", "gamma"))
    assert 0 < fl["model"]["model_calls"] <= total
    assert 0 < fl["daemons"]["beta"]["lab_adapter_model_calls"] <= r["datasets"]["lab-beta"]["test_sessions"] + 40
    assert {(t["daemon"], t["method"]) for t in fl["targets"]} == {("alpha", "rlog"), ("beta", "rlog"),
                                                                   ("gamma", "rlog"), ("beta", "rlog +lab")}
    # both on the same sessions
    plain = next(x for x in r["detection"] if x["dataset"] == "lab-beta" and x["method"] == "rlog-fast")
    assert plain["n"] == next(x["n"] for x in r["detection"] if x["dataset"] == "lab-beta"
                              and x["method"] == "rlog-fast +lab")
    md = (tmp_path / "out" / "results.md").read_text()
    assert "Target (issue 31)" in md and "R-Log on incidents of each daemon" in md
