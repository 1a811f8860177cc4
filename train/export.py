"""Export a trained stage as a folder both serving backends load.

Two shapes:

- base + LoRA adapter (default): ``adapter_config.json`` + ``adapter_model.safetensors`` +
  tokenizer. Set it as ``cascade.<stage>.adapter`` with the base as ``model``; transformers
  merges it at load time, vLLM serves it as a LoRA request (``enable_lora``).
- merged (``--merged``): the adapter folded into the base weights, a plain HF model folder
  to set as ``cascade.<stage>.model``; nothing else needed by either engine.

The adapter's ``base_model_name_or_path`` is rewritten to the recipe's base model name
(e.g. ``smollm2-135m-instruct``) rather than a cache path of the training machine, so the
folder stays valid when copied elsewhere.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from rlog.models import CALIBRATION_FILE, ModelNotFound, resolve_model

_DTYPES = {"float32", "float16", "bfloat16"}
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                    "vocab.json", "merges.txt", "tokenizer.model")


def _torch_dtype(name: str):
    import torch

    if name not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {name!r}")
    return getattr(torch, name)


def _copy_tokenizer(src: Path, dst: Path) -> None:
    for name in _TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)


def export_model(src: str | Path, out: str | Path, *, base_model: str, merged: bool = False,
                 dtype: str = "float32") -> Path:
    """Write ``src`` (a stage's adapter or full model) to ``out`` atomically; returns ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise ModelNotFound(f"nothing to export: {src} does not exist")
    td = _torch_dtype(dtype)
    adapter = (src / "adapter_config.json").is_file()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    try:
        if adapter and not merged:
            from safetensors.torch import load_file, save_file

            cfg = json.loads((src / "adapter_config.json").read_text(encoding="utf-8"))
            cfg["base_model_name_or_path"] = base_model
            (tmp / "adapter_config.json").write_text(json.dumps(cfg, indent=2), encoding="utf-8")
            weights = load_file(src / "adapter_model.safetensors")
            save_file({k: v.to(td).contiguous() for k, v in weights.items()}, tmp / "adapter_model.safetensors",
                      metadata={"format": "pt"})
            _copy_tokenizer(src, tmp)
        else:
            base = resolve_model(base_model) if adapter else src
            model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
            if adapter:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, src).merge_and_unload()
            model = model.to(td)
            model.save_pretrained(tmp)
            tok_src = src if (src / "tokenizer_config.json").is_file() else base
            AutoTokenizer.from_pretrained(tok_src).save_pretrained(tmp)
        meta = {"exported_from": str(src), "base_model": base_model, "merged": merged or not adapter, "dtype": dtype}
        for name in ("rlog_train.json", CALIBRATION_FILE):  # the calibration travels with the weights it fits
            if (src / name).is_file():
                shutil.copy2(src / name, tmp / name)
        (tmp / "rlog_export.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
