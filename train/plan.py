"""The plan of a recipe, validated without training: ``rlog train plan`` / ``--dry-run``.

The paper recipe needs GPUs (a 7B model, SFT then GRPO with vLLM generating in the
training process). Before renting them an operator wants to know the recipe is sound and
what will run: this builds the exact TRL ``SFTConfig`` / ``GRPOConfig`` arguments the
stages use (``train.sft.sft_args``, ``train.grpo.grpo_args``), lets TRL validate them (on
a machine without a GPU with bfloat16 and the GPU turned off, the rest as the GPU run gets
them), checks what TRL's GRPO needs of the batch shape, and prints each stage's command,
then how to export the models and serve them with ``vllm serve`` for the stream.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from train.recipe import Recipe


@dataclass
class Plan:
    recipe: str
    variants: list[str]
    run: str
    steps: list[dict] = field(default_factory=list)  # {stage, variant, command, args, notes}
    checks: list[str] = field(default_factory=list)  # what was validated, said plainly
    warnings: list[str] = field(default_factory=list)  # what will stop the real run here
    serve: dict = field(default_factory=dict)  # export + model server commands and the rlog config for them

    def to_json(self) -> dict:
        return dict(self.__dict__)


def _gpu() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        return False


def _validate(config_cls, args: dict, name: str, on_gpu: bool) -> str:
    """Build TRL's own config from ``args``; returns what was checked. Off a GPU, bf16 and the device
    are switched off for the check (TRL refuses bf16 without the hardware), and said so."""
    args = dict(args)
    how = "as given"
    if not on_gpu and not args.get("use_cpu"):  # a GPU run checked here
        args.update(bf16=False, use_cpu=True)
        how = "with bf16 off and use_cpu on (no GPU here); every other argument as the GPU run gets it"
    config_cls(**args)
    return f"{name}: TRL accepted the arguments ({how})"


def build_plan(recipe: Recipe, variants: list[str], run: str | Path, *, recipe_ref: str = "") -> Plan:
    """Validate ``recipe`` for ``variants`` and lay out the stages; raises ``ValueError`` on what TRL refuses."""
    from trl import GRPOConfig, SFTConfig

    from train.grpo import grpo_args
    from train.sft import sft_args

    ref = recipe_ref or recipe.name
    run = Path(run)
    on_gpu = _gpu()
    plan = Plan(recipe=recipe.name, variants=list(variants), run=str(run))
    base_flag = f" --base-model {recipe.base_model}"
    common = f"--recipe {ref} --run {run}{base_flag}"
    base = Path(recipe.base_model).expanduser()
    if recipe.base_model.strip().lower() != "smollm2-135m-instruct" and not (base / "config.json").is_file():
        plan.warnings.append(f"base model {recipe.base_model!r} is not a model folder here: pass --base-model "
                             "/path/to/local/model on the training machine (nothing is downloaded)")
    if recipe.device.startswith("cuda") and not on_gpu:
        plan.warnings.append(f"device {recipe.device}: no CUDA GPU on this machine; run the plan's commands on one")
    for variant in variants:
        r = recipe.for_variant(variant)
        sft = sft_args(r, run / variant / "sft", eos_token="<eos>", progress=True)
        plan.checks.append(_validate(SFTConfig, sft, f"SFT {variant}", on_gpu))
        eff = r.sft.batch_size * r.sft.grad_accum
        plan.steps.append({"stage": "sft", "variant": variant, "command": f"rlog train sft --variant {variant} {common}",
                           "args": _shown(sft), "notes": [f"effective batch {eff} per GPU (divide grad_accum by the "
                                                          "GPU count to keep it)", "resumable: add --resume"]})
        g = r.grpo
        grpo = grpo_args(r, variant, run / variant / "grpo", progress=True)
        group = grpo["per_device_train_batch_size"] * grpo["gradient_accumulation_steps"]
        if group % g.num_generations:
            raise ValueError(f"GRPO {variant}: the generation batch ({group}) is not a multiple of num_generations "
                             f"({g.num_generations})")
        plan.checks.append(_validate(GRPOConfig, grpo, f"GRPO {variant}", on_gpu))
        plan.checks.append(f"GRPO {variant}: {g.prompts_per_step} prompts x {g.num_generations} completions per step, "
                           f"generation batch {group} divisible by the group")
        notes = []
        if g.use_vllm:
            notes.append(f"TRL generates with vLLM in {g.vllm_mode} mode" + (
                f" inside the training process ({g.vllm_gpu_memory_utilization:.0%} of the GPU)"
                if g.vllm_mode == "colocate" else "; start `trl vllm-serve --model <sft model>` first"))
            if importlib.util.find_spec("vllm") is None and not any("vLLM is not installed" in w for w in plan.warnings):
                plan.warnings.append("grpo.use_vllm: vLLM is not installed here (pip install 'rlog[gpu]' on the GPU "
                                     "machine)")
        if r.lora.enabled and g.beta > 0:
            notes.append("KL reference: the base with the adapter disabled")
        plan.steps.append({"stage": "grpo", "variant": variant,
                           "command": f"rlog train grpo --variant {variant} {common}", "args": _shown(grpo),
                           "notes": [*notes, "resumable: add --resume"]})
        plan.steps.append({"stage": "pick+calibrate+eval", "variant": variant, "command": " && ".join(
            [f"rlog train pick --variant {variant} --stage grpo {common}"]
            + ([f"rlog train calibrate --stage grpo {common}"] if variant == "fast" else [])
            + [f"rlog train eval --variant {variant} --stage grpo {common}"]), "args": {}, "notes": []})
    plan.serve = serving_plan(recipe, variants, run, ref)
    return plan


def _shown(args: dict) -> dict:
    skip = {"output_dir", "report_to", "disable_tqdm", "dataloader_num_workers", "eos_token", "log_completions"}
    return {k: v for k, v in args.items() if k not in skip}


def serving_plan(recipe: Recipe, variants: list[str], run: Path, ref: str) -> dict:
    """How the trained models reach the stream: export, ``vllm serve``, and the rlog config that points at it."""
    out = {"export": [], "servers": [], "rlog_config": {}}
    common = f"--recipe {ref} --run {run} --base-model {recipe.base_model}"
    names = {"fast": "rlog-fast", "full": "rlog"}
    if recipe.lora.enabled:
        for v in variants:
            out["export"].append(f"rlog train export --variant {v} --stage grpo {common} --out /models/{names[v]}")
        modules = " ".join(f"{names[v]}=/models/{names[v]}" for v in variants)
        out["servers"].append(f"vllm serve {recipe.base_model} --enable-lora --max-loras 2 --max-lora-rank "
                              f"{max(16, recipe.lora.r)} --lora-modules {modules} --enable-prefix-caching --port 8000")
        url = {v: "http://MODEL-SERVER:8000/v1" for v in variants}
    else:  # full fine-tuning: two models, two servers (or one GPU each)
        url = {}
        for i, v in enumerate(variants):
            port = 8001 + i
            out["export"].append(f"rlog train export --variant {v} --stage grpo {common} --out /models/{names[v]} "
                                 "--dtype bfloat16")
            out["servers"].append(f"vllm serve /models/{names[v]} --served-model-name {names[v]} "
                                  f"--enable-prefix-caching --port {port}")
            url[v] = f"http://MODEL-SERVER:{port}/v1"
    for v in variants:
        out["rlog_config"][v] = {"backend": "openai", "base_url": url[v], "served_model": names[v],
                                 "model": f"/models/{names[v]}" if not recipe.lora.enabled else recipe.base_model,
                                 "adapter": f"/models/{names[v]}" if recipe.lora.enabled else None}
    out["in_process"] = ("or load them in the worker itself: cascade.fast/full backend: vllm, model and adapter as "
                         "above (one engine serves both LoRA adapters)")
    return out


def render_plan(plan: Plan) -> str:
    import yaml

    lines = [f"plan of recipe {plan.recipe!r} ({', '.join(plan.variants)}), run folder {plan.run}", ""]
    for i, s in enumerate(plan.steps, 1):
        lines.append(f"{i}. {s['stage']} [{s['variant']}]: {s['command']}")
        if s["args"]:
            lines.append("   " + ", ".join(f"{k}={v}" for k, v in s["args"].items()))
        lines += [f"   - {n}" for n in s["notes"]]
    lines += ["", "serve the models:"]
    lines += [f"   {c}" for c in plan.serve["export"]]
    lines += [f"   {c}" for c in plan.serve["servers"]]
    lines += ["   rlog config (cascade):"]
    cfg = yaml.safe_dump({"cascade": plan.serve["rlog_config"]}, sort_keys=False).rstrip().splitlines()
    lines += [f"     {x}" for x in cfg]
    lines += [f"   {plan.serve['in_process']}", "", "checked:"]
    lines += [f"   ok  {c}" for c in plan.checks]
    if plan.warnings:
        lines += ["", "before the real run:"]
        lines += [f"   !   {w}" for w in plan.warnings]
    return "\n".join(lines)
