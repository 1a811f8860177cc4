"""train/ end to end on a tiny random model: SFT, GRPO, resume, eval, export, serving load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from rlog.backends import GenerationParams, load_backend
from rlog.cli import main
from rlog.config import CascadeConfig, ConfigError, ModelSpec
from rlog.contract.representation import prompt_for, view_of_templates
from train.data import Example
from train.evaluate import score_outputs
from train.recipe import load_recipe


def session_prompt(templates, mode):
    """The served prompt of bare templates."""
    return prompt_for(view_of_templates(templates), mode, CascadeConfig())


@pytest.fixture(scope="module")
def recipe_file(tmp_path_factory, tiny_model_dir) -> Path:
    """The tiny recipe shrunk to seconds: simulator data only, two optimizer steps per stage."""
    data = yaml.safe_load((Path(__file__).resolve().parents[1] / "train" / "recipes" / "tiny.yaml").read_text())
    data.update(name="ci", base_model=str(tiny_model_dir))
    data["data"].update(sources=["sim"], sim_lines=900, sim_fault_gap_s=15, sim_benign_gap_s=20,
                        train_caps={"anomaly": 6}, eval_caps={"anomaly": 4})
    # the fast variant's own data overrides stay exercised, at test size
    data["variants"]["fast"]["data"] = {"sim_runs": 2, "sim_windows": [40, 20], "train_caps": {"anomaly": 6},
                                        "eval_caps": {"anomaly": 12}}
    data["sft"].update(max_steps=2, grad_accum=1, save_steps=1, logging_steps=1)
    data["variants"]["fast"]["sft"]["save_steps"] = 1  # a checkpoint per step: the pick has candidates
    data["grpo"].update(max_steps=2, num_generations=2, save_steps=1, max_train_prompts=2, fast_completion_tokens=12,
                        full_completion_tokens=16)
    data["eval"].update(batch_size=4, fast_max_new_tokens=8, full_max_new_tokens=16)
    path = tmp_path_factory.mktemp("recipe") / "ci.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, recipe_file) -> Path:
    run = tmp_path_factory.mktemp("run")
    assert main(["train", "sft", "--recipe", str(recipe_file), "--variant", "fast", "--run", str(run)]) == 0
    assert main(["train", "grpo", "--recipe", str(recipe_file), "--variant", "fast", "--run", str(run)]) == 0
    return run


def test_sft_then_grpo_write_adapters_checkpoints_and_records(trained_run):
    sft, grpo = trained_run / "fast" / "sft", trained_run / "fast" / "grpo"
    for stage in (sft, grpo):
        assert (stage / "final" / "adapter_config.json").is_file()
        assert (stage / "final" / "adapter_model.safetensors").is_file()
        assert list(stage.glob("checkpoint-*")), "checkpoints are what --resume continues from"
    meta = json.loads((grpo / "final" / "rlog_train.json").read_text())
    assert meta["stage"] == "grpo" and meta["steps"] == 2 and meta["started_from"].endswith("sft/final")
    assert meta["reward_first"] is not None  # the joint reward was computed on sampled completions
    sft_meta = json.loads((sft / "final" / "rlog_train.json").read_text())
    losses = [h["loss"] for h in sft_meta["log_history"] if "loss" in h]
    assert losses and all(loss == loss for loss in losses)  # finite, logged every step


def test_resume_continues_from_the_newest_checkpoint(trained_run, recipe_file, capsys):
    assert main(["train", "sft", "--recipe", str(recipe_file), "--variant", "fast", "--run", str(trained_run),
                 "--resume", "--set", "sft.max_steps=3"]) == 0
    meta = json.loads((trained_run / "fast" / "sft" / "final" / "rlog_train.json").read_text())
    assert meta["resumed_from"].endswith("checkpoint-2")
    assert meta["steps"] == 3


def test_eval_reports_detection_scores_and_latency(trained_run, recipe_file, capsys):
    assert main(["train", "eval", "--recipe", str(recipe_file), "--variant", "fast", "--run", str(trained_run),
                 "--stage", "grpo", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "F1" in out and "s/sample" in out
    report = json.loads((trained_run / "fast" / "eval-grpo-val.json").read_text())
    a = report["anomaly"]
    assert a["n"] == report["examples"] > 0
    assert a["tp"] + a["fp"] + a["fn"] + a["tn"] == a["n"]
    assert report["latency"]["per_sample_mean_s"] > 0
    assert report["model_spec"]["adapter"].endswith("grpo/final")


def test_exports_load_through_the_serving_backend(trained_run, recipe_file, tiny_model_dir, tmp_path):
    adapter_out, merged_out = tmp_path / "adapter", tmp_path / "merged"
    assert main(["train", "export", "--recipe", str(recipe_file), "--variant", "fast", "--run", str(trained_run),
                 "--out", str(adapter_out), "--dtype", "float16"]) == 0
    assert main(["train", "export", "--recipe", str(recipe_file), "--variant", "fast", "--run", str(trained_run),
                 "--out", str(merged_out), "--merged"]) == 0
    cfg = json.loads((adapter_out / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(tiny_model_dir)
    assert (merged_out / "config.json").is_file() and not (merged_out / "adapter_config.json").exists()
    prompt = session_prompt(["Receiving block blk_<*> src: <*> dest: <*>"], "fast")
    params = GenerationParams(6, 0.0, ("</answer>",))
    via_adapter = load_backend(ModelSpec(model=str(tiny_model_dir), adapter=str(adapter_out))).generate([prompt], params)
    via_merged = load_backend(ModelSpec(model=str(merged_out))).generate([prompt], params)
    assert via_adapter[0].completion_tokens > 0
    assert via_adapter[0].text == via_merged[0].text  # the same model either way (fp16 adapter, greedy)


def test_pick_calibrate_and_reship_fast_only(trained_run, recipe_file, tmp_path, capsys):
    """The SFT checkpoint with the best validation AP becomes final; R-Log-fast is calibrated
    and re-shipped alone, keeping the shipped R-Log folder and its record."""
    import shutil

    from rlog.models import ADAPTERS_DIR, load_calibration

    sft = trained_run / "fast" / "sft"
    assert main(["train", "pick", "--recipe", str(recipe_file), "--variant", "fast", "--stage", "sft",
                 "--run", str(trained_run), "--quiet"]) == 0
    rec = json.loads((sft / "picked.json").read_text())
    names = [r["candidate"] for r in rec["candidates"]]
    assert names[-1] == "final" and all(n.startswith("checkpoint-") for n in names[:-1]) and len(names) >= 2
    best = max(rec["candidates"], key=lambda r: r["average_precision"])
    assert best["average_precision"] == next(r for r in rec["candidates"] if r["candidate"] == rec["picked"])[
        "average_precision"]
    if rec["picked"] != "final":  # the picked weights are now final; the last step's are kept aside
        assert (sft / "final-last" / "adapter_model.safetensors").is_file()
        assert (sft / "final" / "adapter_model.safetensors").read_bytes() == \
            (sft / rec["picked"] / "adapter_model.safetensors").read_bytes()
    assert main(["train", "calibrate", "--recipe", str(recipe_file), "--variant", "fast", "--stage", "sft",
                 "--run", str(trained_run), "--quiet"]) == 0
    cal = load_calibration(sft / "final")
    assert cal is not None and 0 < cal.threshold < 1
    # fused with the session's evidence the examples carry; the features are the served ones
    from rlog.contract.evidence import FEATURES

    assert cal.fusion is not None and tuple(cal.fusion.weights) == FEATURES
    assert cal.fit["held_out_sources"] == ["bgl-session", "bgl-template"] and cal.fit["stage"] == "sft"
    out = tmp_path / "adapters"
    capsys.readouterr()
    assert main(["train", "ship", "--recipe", str(recipe_file), "--run", str(trained_run), "--out", str(out),
                 "--variant", "fast", "--stage", "fast=sft"]) == 2
    assert "has no shipped rlog to keep: ship both variants" in capsys.readouterr().err
    out.mkdir()
    shutil.copytree(ADAPTERS_DIR / "rlog", out / "rlog")
    shutil.copy(ADAPTERS_DIR / "metrics.json", out / "metrics.json")
    kept = (out / "rlog" / "adapter_model.safetensors").read_bytes()
    assert main(["train", "ship", "--recipe", str(recipe_file), "--run", str(trained_run), "--out", str(out),
                 "--variant", "fast", "--stage", "fast=sft"]) == 0
    assert (out / "rlog" / "adapter_model.safetensors").read_bytes() == kept
    assert load_calibration(out / "rlog-fast").threshold == cal.threshold  # travels with the export
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["results"]["fast"]["shipped_stage"] == "sft" and metrics["results"]["full"]["kept_from"]
    card = (out / "MODEL_CARD.md").read_text()
    assert f"threshold **{cal.threshold}**" in card and f"**{rec['picked']}**" in card
    assert "fused with the session's evidence" in card
    assert (out / "rlog" / "rlog_category.json").is_file() and "### Category model" in card  # kept with R-Log
    assert card.index("### Category model") < card.index("## Results")
    # R-Log re-shipped alone, with its explain benchmark: the kept R-Log-fast's card reads its own folder's
    # calibration, and R-Log's section carries the benchmark's figures
    run2 = tmp_path / "run2"
    shutil.copytree(sft / "final", run2 / "full" / "sft" / "final")  # any LoRA adapter exercises the ship
    bench = tmp_path / "explain.json"
    bench.write_text(json.dumps({"explanations": {
        "incidents": 50, "source": "simulated, seed 23", "category_accuracy": 0.8, "category_interval": [0.67, 0.89],
        "written_rate": 1.0, "readable_rate": 1.0, "cause_rouge_l": 0.2, "action_rouge_l": 0.1,
        "ms": {"p50": 2500.0, "p95": 3500.0}}}))
    assert main(["train", "ship", "--recipe", str(recipe_file), "--run", str(run2), "--out", str(out),
                 "--variant", "full", "--stage", "full=sft", "--explain-results", str(bench)]) == 0
    card = (out / "MODEL_CARD.md").read_text()
    assert f"threshold **{cal.threshold}**" in card and "kept when R-Log was re-shipped" in card
    assert "50 held-out simulated incidents" in card and "0.800 [0.670–0.890]" in card
    assert json.loads((out / "metrics.json").read_text())["results"]["full"]["explain_bench"]["incidents"] == 50


def test_average_precision():
    from train.pick import average_precision

    assert average_precision([0.9, 0.8, 0.7, 0.6], [True, False, True, False]) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision([0.5] * 4, [True, False, False, False]) == pytest.approx(0.25)  # ties: prevalence
    assert average_precision([0.1, 0.9], [True, False]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="at least one abnormal"):
        average_precision([0.1], [False])


def test_pick_candidates_in_step_order_and_the_last_n(tmp_path):
    from train.pick import ADAPTER_FILES, candidates

    for i, name in enumerate(["checkpoint-40", "checkpoint-120", "checkpoint-80", "final", "checkpoint-x"]):
        (tmp_path / name).mkdir()
        for f in ADAPTER_FILES:
            (tmp_path / name / f).write_bytes(b"w%d" % i)
    (tmp_path / "checkpoint-160").mkdir()  # no weights: not a candidate
    names = [p.name for p in candidates(tmp_path)]
    assert names == ["checkpoint-40", "checkpoint-80", "checkpoint-120", "final"]
    assert [p.name for p in candidates(tmp_path, 2)] == ["checkpoint-120", "final"]
    (tmp_path / "final" / ADAPTER_FILES[1]).write_bytes(b"w1")  # final = checkpoint-120's weights: scored once
    assert [p.name for p in candidates(tmp_path, 2)] == ["checkpoint-80", "final"]
    with pytest.raises(ValueError, match="at least 1"):
        candidates(tmp_path, 0)


def test_lora_on_the_top_layers_only(tiny_model_dir):
    from train.runs import load_for_training

    recipe = load_recipe("tiny", {"base_model": str(tiny_model_dir), "lora": {"top_layers": 1}})
    _, model, cfg = load_for_training(recipe)
    n = model.config.num_hidden_layers
    assert n > 1 and cfg.layers_to_transform == [n - 1]
    assert load_for_training(load_recipe("tiny", {"base_model": str(tiny_model_dir)}))[2].layers_to_transform is None
    assert load_recipe("tiny").for_variant("fast").lora.top_layers == 10


def test_recipes_load_and_bad_recipes_are_clear(tmp_path):
    tiny, paper = load_recipe("tiny"), load_recipe("paper")
    assert tiny.lora.enabled and tiny.base_model == "smollm2-135m-instruct"
    assert (paper.sft.learning_rate, paper.sft.epochs, paper.sft.max_length) == (2e-5, 6, 2048)
    assert paper.sft.batch_size * paper.sft.grad_accum == 16
    assert (paper.grpo.num_generations, paper.grpo.temperature, paper.grpo.learning_rate, paper.grpo.beta) == \
        (8, 0.8, 4e-7, 0.001)
    assert (paper.grpo.max_prompt_tokens, paper.grpo.full_completion_tokens, paper.grpo.use_vllm) == (2000, 1000, True)
    assert tiny.for_variant("full").sft.epochs == 1 and tiny.for_variant("fast").sft.bf16 and not tiny.sft.bf16
    with pytest.raises(ConfigError, match="variant 'full'"):
        load_recipe("tiny", {"variants": {"full": {"grpo": {"num_generations": 1}}}})
    with pytest.raises(ConfigError, match="not found"):
        load_recipe("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsft: {epochs: -1}\n")
    with pytest.raises(ConfigError, match="sft.epochs"):
        load_recipe(bad)
    assert main(["train", "sft", "--recipe", "nope"]) == 2


def _ex(task, label, mode="fast", source="sim"):
    return Example(task, mode, session_prompt(["x"], mode), "", label, source)


def test_score_outputs_counts_what_it_should():
    outs = [(_ex("anomaly", "abnormal"), "abnormal</answer>"), (_ex("anomaly", "abnormal"), "normal</answer>"),
            (_ex("anomaly", "normal"), "abnormal</answer>"), (_ex("anomaly", "normal"), "gibberish")]
    r = score_outputs(outs, "fast")["anomaly"]
    assert (r["tp"], r["fn"], r["fp"], r["tn"]) == (1, 1, 1, 1)
    assert r["precision"] == 0.5 and r["recall"] == 0.5 and r["malformed_rate"] == 0.25
    full = [(_ex("parsing", "Receiving block blk_<*>", "full", "rlog"), "t</think><answer>Receiving block blk_<*></answer>"),
            (_ex("parsing", "Receiving block blk_<*>", "full", "rlog"), "t</think><answer>Receiving block blk_1</answer>"),
            (_ex("root_cause", "the disk failed", "full", "rlog"), "t</think><answer>the disk failed</answer>")]
    r = score_outputs(full, "full")
    assert r["parsing"]["accuracy"] == 0.5 and 0.5 < r["parsing"]["token_f1"] < 1
    assert r["root_cause"]["rouge1"] == 1.0


def test_full_fine_tuning_path_without_lora(recipe_file, tmp_path, tiny_model_dir):
    """lora.enabled: false trains every weight; GRPO continues from the full SFT model."""
    run = tmp_path / "run"
    flags = ["--recipe", str(recipe_file), "--variant", "full", "--run", str(run), "--set", "lora.enabled=false"]
    assert main(["train", "sft", *flags, "--set", "sft.max_steps=1"]) == 0
    sft = run / "full" / "sft" / "final"
    assert (sft / "config.json").is_file() and not (sft / "adapter_config.json").exists()
    assert main(["train", "grpo", *flags, "--set", "grpo.max_steps=1"]) == 0
    grpo = run / "full" / "grpo" / "final"
    assert (grpo / "config.json").is_file()
    out = tmp_path / "export"
    assert main(["train", "export", *flags[:-2], "--out", str(out)]) == 0
    gen = load_backend(ModelSpec(model=str(out))).generate([session_prompt(["x"], "full")], GenerationParams(4))
    assert gen[0].completion_tokens > 0


def test_full_eval_answers_detection_as_the_stream_does(tiny_backend):
    """R-Log's detection examples are written under constraint (never malformed, always a category);
    its other tasks are still decoded."""
    from rlog.config import ExplainConfig
    from rlog.contract.prompts import CATEGORIES, build_prompt, task_prompt
    from train.data import Example
    from train.evaluate import evaluate_examples

    prompt = build_prompt("<logs>\n1. disk sda failed\n</logs>", "full")
    examples = [Example("anomaly", "full", prompt, "x</think><answer>abnormal</answer>", "abnormal", "sim",
                        category="storage"),
                Example("anomaly", "full", prompt, "x</think><answer>normal</answer>", "normal", "sim"),
                Example("root_cause", "full", task_prompt("root_cause", "Why?", "disk sda failed"),
                        "x</think><answer>a worn disk</answer>", "a worn disk", "rlog")]
    r = evaluate_examples(tiny_backend, examples, "full", batch_size=2, max_new_tokens=8,
                          structured=ExplainConfig(think_tokens=4, field_tokens=4), progress=False)
    a = r["anomaly"]
    assert a["n"] == 2 and a["malformed_rate"] == 0.0 and a["category_n"] == 1
    assert "root_cause" in r and r["latency"]["per_sample_by_task_s"].keys() == {"anomaly", "root_cause"}
    written = [s["output"] for s in r["samples"] if s["task"] == "anomaly"]
    assert all("\ncategory: " in w and w.split("\ncategory: ")[1].split("\n")[0] in CATEGORIES for w in written)


def test_paper_recipe_dry_run_validates_and_prints_the_gpu_plan(tmp_path, capsys):
    """The paper recipe (GPUs, vLLM in GRPO) is checked by TRL's own config classes here, without training."""
    out = tmp_path / "plan.json"
    assert main(["train", "plan", "--recipe", "paper", "--base-model", "/models/Qwen2.5-7B-Instruct",
                 "--run", str(tmp_path / "run"), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "rlog train grpo --variant full" in text and "use_vllm=True" in text and "vllm_mode=colocate" in text
    assert "vllm serve /models/rlog-fast --served-model-name rlog-fast" in text  # full fine-tuning: a server each
    plan = json.loads(out.read_text())
    grpo = [s for s in plan["steps"] if s["stage"] == "grpo"]
    assert [s["variant"] for s in grpo] == ["fast", "full"]
    assert grpo[1]["args"]["max_completion_length"] == 1000 and grpo[1]["args"]["learning_rate"] == 4e-7
    assert grpo[0]["args"]["per_device_train_batch_size"] * grpo[0]["args"]["gradient_accumulation_steps"] == 128
    assert sum("TRL accepted" in c for c in plan["checks"]) == 4
    assert any("not a model folder" in w for w in plan["warnings"])
    assert plan["serve"]["rlog_config"]["full"]["backend"] == "openai"
    # --dry-run on a stage is the same plan, and trains nothing
    assert main(["train", "grpo", "--dry-run", "--recipe", "tiny", "--variant", "fast", "--run", str(tmp_path / "t")]) == 0
    text = capsys.readouterr().out
    assert "--enable-lora" in text and "rlog-fast=/models/rlog-fast" in text  # LoRA: one base, both adapters
    assert not (tmp_path / "t").exists()


def test_a_recipe_trl_refuses_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "plan", "--recipe", "paper", "--set", "sft.lr_scheduler=bogus", "--run", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert "does not validate" in err and "SchedulerType" in err
