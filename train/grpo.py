"""GRPO with TRL's GRPOTrainer and R-Log's joint reward (format + task).

The stage starts from the SFT model. With LoRA, the SFT adapter is loaded trainable and
GRPO keeps training it, so one adapter holds both stages; TRL then uses the base with the
adapter disabled as the KL reference, which is why the CPU recipe sets ``beta: 0`` (no
reference pass) and the paper recipe, which fine-tunes every weight, keeps KL 0.001 against
a copy of the SFT model.

Prompts are the served prompts as plain text (chat template + prefill); completions are
scored by :class:`train.rewards.JointReward` from the dataset's task/mode/label/category
columns. On GPUs ``grpo.use_vllm`` generates with vLLM (colocated or a server).
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

from rlog.backends.transformers_backend import render_chat
from train.recipe import Recipe
from train.rewards import JointReward, RewardWeights
from train.runs import final_dir, last_checkpoint, load_for_training, prepared_examples, stage_dir, write_meta

log = logging.getLogger(__name__)


def grpo_rows(examples, tokenizer) -> list[dict]:
    return [{"prompt": render_chat(tokenizer, e.prompt), "task": e.task, "mode": e.mode, "label": e.label,
             "category": e.category or ""} for e in examples]


def grpo_args(recipe: Recipe, variant: str, out: str | Path, *, progress: bool = True) -> dict:
    """TRL ``GRPOConfig`` arguments of a variant's recipe: what ``run_grpo`` trains with and what
    ``rlog train plan`` validates and prints. With ``use_vllm`` in colocate mode, TRL runs a vLLM
    engine inside the training process, sharing the GPU (``vllm_gpu_memory_utilization``)."""
    g = recipe.grpo
    args = dict(
        output_dir=str(out), learning_rate=g.learning_rate, max_steps=g.max_steps,
        per_device_train_batch_size=g.num_generations * g.prompts_per_step, gradient_accumulation_steps=g.grad_accum,
        num_generations=g.num_generations, max_completion_length=recipe.completion_tokens(variant),
        temperature=g.temperature, beta=g.beta, save_steps=g.save_steps, save_total_limit=2,
        logging_steps=g.logging_steps, report_to="none", seed=recipe.seed, data_seed=recipe.seed, bf16=g.bf16,
        use_cpu=recipe.device == "cpu", disable_tqdm=not progress, use_vllm=g.use_vllm, vllm_mode=g.vllm_mode,
        log_completions=False, dataloader_num_workers=0)
    if g.use_vllm and g.vllm_mode == "colocate":
        args["vllm_gpu_memory_utilization"] = g.vllm_gpu_memory_utilization
    return args


def run_grpo(recipe: Recipe, variant: str, run: str | Path, *, start: str | Path | None = None, resume: bool = False,
             progress: bool = True) -> Path:
    """Train the GRPO stage of one variant from ``start`` (default: the run's SFT model)."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    recipe = recipe.for_variant(variant)
    g = recipe.grpo
    start = Path(start) if start else final_dir(run, variant, "sft")
    if not start.is_dir():
        raise FileNotFoundError(f"GRPO starts from an SFT model; {start} does not exist. Run "
                                f"`rlog train sft --variant {variant}` first or pass --start")
    out = stage_dir(run, variant, "grpo")
    tok, model, _ = load_for_training(recipe, start)
    splits, stats = prepared_examples(recipe, variant, tok, g.max_prompt_tokens)
    train = [e for e in splits["train"] if not e.meta.get("drill")]  # drills teach one token: nothing to sample
    if g.max_train_prompts and len(train) > g.max_train_prompts:
        train = random.Random(recipe.seed).sample(train, g.max_train_prompts)
    log.info("GRPO %s: %d prompts (%s)", variant, len(train), dict(stats))
    weights = RewardWeights(missed_anomaly=g.missed_anomaly_penalty, false_alarm=g.false_alarm_penalty)
    args = GRPOConfig(**grpo_args(recipe, variant, out, progress=progress))
    trainer = GRPOTrainer(model=model, reward_funcs=JointReward(weights), args=args,
                          train_dataset=Dataset.from_list(grpo_rows(train, tok)), processing_class=tok)
    ckpt = last_checkpoint(out) if resume else None
    result = trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
    final = final_dir(run, variant, "grpo")
    trainer.save_model(str(final))
    tok.save_pretrained(str(final))
    rewards = [h.get("reward") for h in trainer.state.log_history if "reward" in h]
    write_meta(final, stage="grpo", variant=variant, recipe=recipe.model_dump(), base_model=recipe.base_model,
               started_from=str(start), prompts=len(train), data_stats=dict(stats), steps=result.global_step,
               reward_first=rewards[0] if rewards else None, reward_last=rewards[-1] if rewards else None,
               log_history=trainer.state.log_history, resumed_from=str(ckpt) if ckpt else None)
    return final
