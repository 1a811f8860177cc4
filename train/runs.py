"""Where a training run keeps its stages, and how models are loaded for training.

A run folder holds one sub-folder per variant, each with its stages::

    <run>/<variant>/sft/checkpoint-N/   Trainer checkpoints (resume)
    <run>/<variant>/sft/final/          the SFT model (LoRA adapter or full weights)
    <run>/<variant>/grpo/...            the same for GRPO, started from sft/final
    <run>/<variant>/eval-<stage>.json   evaluation reports
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from pathlib import Path

from rlog.models import resolve_model
from train.data import build_examples, fits
from train.recipe import Recipe

log = logging.getLogger(__name__)


def stage_dir(run: str | Path, variant: str, stage: str) -> Path:
    return Path(run) / variant / stage


def final_dir(run: str | Path, variant: str, stage: str) -> Path:
    return stage_dir(run, variant, stage) / "final"


def last_checkpoint(folder: Path) -> Path | None:
    """The newest ``checkpoint-N`` folder of a Trainer output dir, if any."""
    cks = sorted((p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
                 key=lambda p: int(p.name.split("-")[-1]))
    return cks[-1] if cks else None


def is_adapter(path: Path) -> bool:
    return (path / "adapter_config.json").is_file()


def load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_for_training(recipe: Recipe, start: Path | None = None):
    """(tokenizer, model, peft_config) for a stage.

    ``start`` is the previous stage's output: a LoRA adapter is loaded onto the base and kept
    trainable (so GRPO continues the SFT adapter), full weights are loaded as they are.
    Without ``start`` the base model is loaded and, with LoRA on, a fresh adapter config is
    returned for the trainer to attach.
    """
    import torch
    from transformers import AutoModelForCausalLM

    base = resolve_model(recipe.base_model)
    dtype = torch.bfloat16 if (recipe.sft.bf16 and recipe.device != "cpu") else torch.float32
    if start is not None and not is_adapter(start):
        tok = load_tokenizer(start)
        return tok, AutoModelForCausalLM.from_pretrained(start, dtype=dtype), None
    tok = load_tokenizer(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    if start is not None:
        from peft import PeftModel

        return tok, PeftModel.from_pretrained(model, start, is_trainable=True), None
    if not recipe.lora.enabled:
        return tok, model, None
    from peft import LoraConfig

    layers = {}
    if recipe.lora.top_layers is not None:
        n = model.config.num_hidden_layers
        layers = {"layers_to_transform": list(range(max(0, n - recipe.lora.top_layers), n))}
    cfg = LoraConfig(r=recipe.lora.r, lora_alpha=recipe.lora.alpha, lora_dropout=recipe.lora.dropout,
                     target_modules=list(recipe.lora.target_modules), task_type="CAUSAL_LM", **layers)
    return tok, model, cfg


def token_counter(tokenizer):
    """Tokens of a text inside a chat turn, as the serving backend counts them for prompt caps."""
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def prepared_examples(recipe: Recipe, variant: str, tokenizer, max_prompt_tokens: int) -> tuple[dict, Counter]:
    """The recipe's examples for a variant, long prompts left out; with counts for the record."""
    stats: Counter = Counter()
    splits = build_examples(recipe, variant, stats=stats, count=token_counter(tokenizer))
    out = {k: fits(v, tokenizer, max_prompt_tokens, stats) for k, v in splits.items()}
    if not out["train"]:
        from rlog.loghub import DataError

        raise DataError(f"no training examples for {variant!r} after filtering ({dict(stats)}); "
                        "check data.sources and data.max_prompt_tokens")
    return out, stats


def fit_examples(recipe: Recipe, splits: dict) -> list:
    """The validation detection sessions the checkpoint pick and the calibration fit on: the
    recipe's held-out sources (``eval.held_out_sources``, scored by a benchmark) left out, by one
    rule for both."""
    held_out = set(recipe.eval.held_out_sources)
    return [e for e in splits["val"] if e.task == "anomaly" and e.source not in held_out]


def write_meta(folder: Path, **fields) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    fields.setdefault("finished_at", time.strftime("%Y-%m-%dT%H:%M:%S"))
    (folder / "rlog_train.json").write_text(json.dumps(fields, indent=2, default=str), encoding="utf-8")
