"""Cold-start SFT with TRL's SFTTrainer: loss on the completion only.

Each example is a prompt-completion pair of *strings*: the prompt is rendered by the very
function the serving backend uses (the model's chat template plus the assistant prefill),
so the model is trained on exactly the text it will be shown; the completion is the
reference answer after the prefill, ended by the end-of-turn token.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rlog.backends.transformers_backend import render_chat
from train.recipe import Recipe
from train.runs import final_dir, last_checkpoint, load_for_training, prepared_examples, stage_dir, write_meta

log = logging.getLogger(__name__)


def sft_rows(examples, tokenizer) -> list[dict]:
    eos = tokenizer.eos_token or ""
    return [{"prompt": render_chat(tokenizer, e.prompt), "completion": e.completion + eos} for e in examples]


def sft_args(recipe: Recipe, out: str | Path, *, eos_token: str | None = None, progress: bool = True) -> dict:
    """TRL ``SFTConfig`` arguments of a recipe (one variant's): what ``run_sft`` trains with and
    what ``rlog train plan`` validates and prints."""
    s = recipe.sft
    return dict(
        output_dir=str(out), learning_rate=s.learning_rate, num_train_epochs=s.epochs, max_steps=s.max_steps,
        per_device_train_batch_size=s.batch_size, gradient_accumulation_steps=s.grad_accum, max_length=s.max_length,
        completion_only_loss=True, warmup_steps=s.warmup_ratio, lr_scheduler_type=s.lr_scheduler,
        save_steps=s.save_steps, save_total_limit=s.keep_checkpoints, logging_steps=s.logging_steps, report_to="none",
        seed=recipe.seed, data_seed=recipe.seed, bf16=s.bf16, gradient_checkpointing=s.gradient_checkpointing,
        use_cpu=recipe.device == "cpu", disable_tqdm=not progress, dataloader_num_workers=0, eos_token=eos_token)


def run_sft(recipe: Recipe, variant: str, run: str | Path, *, resume: bool = False, progress: bool = True) -> Path:
    """Train the SFT stage of one variant; returns the folder of the final model."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    recipe = recipe.for_variant(variant)
    out = stage_dir(run, variant, "sft")
    tok, model, peft_cfg = load_for_training(recipe)
    max_prompt = min(recipe.data.max_prompt_tokens, recipe.sft.max_length - 16)
    splits, stats = prepared_examples(recipe, variant, tok, max_prompt)
    train = splits["train"]
    log.info("SFT %s: %d training examples (%s)", variant, len(train), dict(stats))
    args = SFTConfig(**sft_args(recipe, out, eos_token=tok.eos_token, progress=progress))
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(sft_rows(train, tok)),
                         processing_class=tok, peft_config=peft_cfg)
    ckpt = last_checkpoint(out) if resume else None
    if resume and ckpt is None:
        log.info("no checkpoint under %s: starting from the beginning", out)
    result = trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
    final = final_dir(run, variant, "sft")
    trainer.save_model(str(final))
    tok.save_pretrained(str(final))
    write_meta(final, stage="sft", variant=variant, recipe=recipe.model_dump(), base_model=recipe.base_model,
               examples=len(train), data_stats=dict(stats), train_loss=result.training_loss,
               steps=result.global_step, log_history=trainer.state.log_history, resumed_from=str(ckpt) if ckpt else None,
               runtime_s=round(result.metrics.get("train_runtime", 0.0), 1))  # this chunk's wall time
    return final
