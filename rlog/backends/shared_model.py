"""One loaded base model shared by every stage; each LoRA adapter is a set of merged weights.

R-Log-fast and R-Log are two LoRA adapters of the same base. Loading the base once per
stage doubled a worker's memory; keeping peft's LoRA layers unmerged would cost every
forward pass their extra matrix products (and change the scores the calibration was
fitted on). Instead each adapter is merged, once, into copies of only the weights it
touches (the projections of the layers it trained: a third of SmolLM2's for the shipped
adapters), and a stage switches by pointing those modules at its copies: a few dozen
attribute writes, no arithmetic. The merge is peft's own sum, ``W + (B @ A) * scaling`` in
float32 on the base weights as stored, then cast, so a stage reads exactly what a
``merge_and_unload`` model read.

The model serves one stage at a time: ``use(adapter)`` holds the lock for the whole call
(a transcript holds it while R-Log writes), so a switch never lands mid-pass.
"""

from __future__ import annotations

import json
import logging
import math
import struct
import threading
import weakref
from collections.abc import Container, Iterator
from contextlib import contextmanager
from pathlib import Path

from rlog.backends.base import BackendError

log = logging.getLogger(__name__)

BASE = ""  # the adapter key of the base weights themselves

# Adapter settings a merged weight copy cannot express (they change more than linear weights).
_UNSUPPORTED = ("use_dora", "modules_to_save", "trainable_token_indices", "layer_replication", "target_parameters",
                "lora_bias")


def _lora_scaling(cfg: dict, module: str) -> float:
    """peft's LoRA scale for one module: alpha / r (alpha / sqrt(r) with rsLoRA), per-module patterns applied."""
    r = cfg.get("r", 8)
    alpha = cfg.get("lora_alpha", r)
    for pattern, value in (cfg.get("rank_pattern") or {}).items():
        if module.endswith(pattern) or pattern in module:
            r = value
    for pattern, value in (cfg.get("alpha_pattern") or {}).items():
        if module.endswith(pattern) or pattern in module:
            alpha = value
    return alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r


def _unsupported(cfg: dict) -> list[str]:
    bad = [k for k in _UNSUPPORTED if cfg.get(k)]
    if cfg.get("peft_type", "LORA") != "LORA":
        bad.append(f"peft_type {cfg.get('peft_type')}")
    if cfg.get("bias", "none") != "none":
        bad.append(f"bias {cfg.get('bias')}")
    return bad


def adapter_shares(adapter: Path) -> bool:
    """Whether ``adapter`` is plain LoRA, which ``SharedModel.add_adapter`` can hold as merged weights."""
    try:
        cfg = json.loads((Path(adapter) / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True  # add_adapter says what is wrong with it
    return not _unsupported(cfg)


_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}


def _read_tensors(file: Path, only: Container[str] | None = None) -> Iterator[tuple[str, object]]:
    """(name, tensor) from a .safetensors file (those in ``only``), one tensor in memory at a time.

    Read with plain file reads, not a memory map: a mapped file's pages count in the
    process's resident memory until it is closed, so mapping a float32 checkpoint to load it
    in bfloat16 held the whole file (540 MB for SmolLM2) on top of the model at the peak.
    """
    import torch

    with open(file, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
        start = 8 + n
        for name, meta in header.items():
            if name == "__metadata__" or (only is not None and name not in only):
                continue
            dtype = _DTYPES.get(meta["dtype"])
            if dtype is None:
                raise ValueError(f"{file.name}: tensor {name} has dtype {meta['dtype']}, which the lean load does not read")
            a, b = meta["data_offsets"]
            fh.seek(start + a)
            buf = bytearray(b - a)
            if fh.readinto(buf) != b - a:
                raise ValueError(f"{file.name} is truncated (tensor {name})")
            t = torch.frombuffer(buf, dtype=getattr(torch, dtype)) if buf else torch.empty(0, dtype=getattr(torch, dtype))
            yield name, t.reshape(meta["shape"])


def unreadable_weights(file: Path, e: BaseException) -> BackendError:
    return BackendError(f"weights file {file} cannot be read ({type(e).__name__}: {str(e)[:200]}): it is damaged, cut "
                        "short or not safetensors; copy it again, reinstall rlog for the built-in adapters, or export "
                        "the model again (rlog train)")


def _checked(file: Path, tensors: Iterator[tuple[str, object]]) -> Iterator[tuple[str, object]]:
    """``tensors`` read from ``file``, a damaged file being a ``BackendError`` that names it."""
    try:
        yield from tensors
    except (OSError, ValueError, KeyError, TypeError, struct.error, RuntimeError) as e:
        raise unreadable_weights(file, e) from None


def lean_load(path: Path, dtype):
    """The model at ``path`` read straight into ``dtype``, holding one checkpoint tensor at a time;
    None where this cannot be done exactly (the caller then uses ``from_pretrained``).

    Same result as ``from_pretrained(path, dtype=dtype)`` (each weight is cast the same way;
    tested), without its peak: the worker's peak memory is what an operator sizes pods by.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # another transformers: the plain load
        return None
    files = sorted(path.glob("*.safetensors"))
    if not files:
        return None
    config = AutoConfig.from_pretrained(path, trust_remote_code=False)
    with no_init_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, trust_remote_code=False)
    params = dict(model.state_dict(keep_vars=True))
    seen: set[str] = set()
    with torch.no_grad():
        for f in files:
            for name, t in _checked(f, _read_tensors(f)):
                target = params.get(name)
                if target is None or tuple(target.shape) != tuple(t.shape):
                    return None  # names or shapes another layout maps: leave it to from_pretrained
                target.copy_(t)
                seen.add(name)
    model.tie_weights()
    params = dict(model.state_dict(keep_vars=True))  # tying may have replaced a parameter
    missing = {k for k in params if k not in seen and not k.endswith("inv_freq")}
    tied = {k for k in missing if any(params[k].data_ptr() == params[s].data_ptr() for s in seen)}
    if missing - tied:
        return None
    return model


def merged_weights(base_dir: Path, adapter_dir: Path, dtype=None) -> Iterator[tuple[str, object]]:
    """(module name, base weight + LoRA delta) for every module the adapter touches, one at a time.

    The sum is made in float32 on the base weights as stored, the one ``merge_and_unload``
    makes on a model loaded in float32, then cast to ``dtype`` (default: kept in float32).
    Raises ``BackendError`` for adapters that are not plain LoRA.
    """
    from safetensors import safe_open

    cfg = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    bad = _unsupported(cfg)
    if bad:
        raise BackendError(f"adapter {adapter_dir} uses {', '.join(bad)}: it cannot share a base as merged weights")
    files = sorted(adapter_dir.glob("*.safetensors"))
    if not files:
        raise BackendError(f"adapter folder {adapter_dir} has no .safetensors weights")
    lora: dict[str, dict[str, object]] = {}
    for f in files:  # adapters are small: a map is fine
        try:
            with safe_open(str(f), framework="pt") as st:
                for k in st.keys():  # noqa: SIM118 - safe_open has keys(), not iteration
                    for part in ("lora_A", "lora_B"):
                        marker = f".{part}."
                        if marker in k:
                            module = k.split(marker)[0].removeprefix("base_model.model.")
                            lora.setdefault(module, {})[part] = st.get_tensor(k).float()
        except Exception as e:  # noqa: BLE001 - safetensors raises its own error type for a damaged file
            raise unreadable_weights(f, e) from None
    if not lora:
        raise BackendError(f"adapter {adapter_dir} holds no LoRA weights")
    for module, ab in lora.items():
        if set(ab) != {"lora_A", "lora_B"}:
            raise BackendError(f"adapter {adapter_dir}: module {module} lacks {({'lora_A', 'lora_B'} - set(ab)).pop()}")
    wanted = {f"{m}.weight": m for m in lora}
    found = set()
    for f in sorted(base_dir.glob("*.safetensors")):
        for key, w in _checked(f, _read_tensors(f, wanted)):
            module = wanted[key]
            ab = lora[module]
            delta = (ab["lora_B"] @ ab["lora_A"]) * _lora_scaling(cfg, module)  # type: ignore[operator]
            if cfg.get("fan_in_fan_out"):
                delta = delta.T
            if delta.shape != w.shape:  # type: ignore[attr-defined]
                raise BackendError(f"adapter {adapter_dir}: {module} delta {tuple(delta.shape)} does not fit the base "
                                   f"weight {tuple(w.shape)}")  # type: ignore[attr-defined]
            merged = w.float() + delta  # type: ignore[attr-defined]
            found.add(key)
            yield module, merged if dtype is None else merged.to(dtype)
    lost = sorted(set(wanted) - found)
    if lost:
        raise BackendError(f"adapter {adapter_dir} targets {wanted[lost[0]]}, which the base model at {base_dir} "
                           "lacks: was it trained on another base?")


class SharedModel:
    """A base model loaded once, with the merged weights of each adapter added to it."""

    def __init__(self, path: Path, device: str, dtype, *, merge: Path | None = None) -> None:
        """``merge``: an adapter peft merges into this model for good (one that is not plain LoRA;
        such a model is not shared)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.path, self.device, self.dtype = Path(path), device, dtype
        try:
            # local files only, never code from the folder, never pickled weights
            self.tokenizer = AutoTokenizer.from_pretrained(self.path, trust_remote_code=False)
            model = None if merge is not None else lean_load(self.path, dtype)
            if model is None:
                model = AutoModelForCausalLM.from_pretrained(self.path, dtype=torch.float32 if merge else dtype,
                                                             use_safetensors=True, trust_remote_code=False)
        except (OSError, ValueError) as e:
            raise BackendError(f"cannot load model from {self.path}: {e}") from None
        if merge is not None:
            from peft import PeftModel

            try:
                model = PeftModel.from_pretrained(model, merge).merge_and_unload().to(dtype=dtype)
            except Exception as e:  # noqa: BLE001 - peft and safetensors raise their own types for a damaged adapter
                raise BackendError(f"cannot load the adapter at {merge} ({type(e).__name__}: {str(e)[:200]}): a "
                                   "damaged or incomplete adapter folder; copy or export it again") from None
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"
        # every floating tensor at the serving precision, buffers too: a rotary table read in float32
        # moves P(abnormal) by a few points from what the shipped calibrations were fitted on
        self.model = model.to(device=device, dtype=dtype).eval()
        self.lock = threading.RLock()
        self._weights: dict[str, dict[str, object]] = {}  # adapter key -> module name -> merged weight
        self._base: dict[str, object] = {}  # module name -> the base weight, for modules some adapter replaces
        self._modules = dict(self.model.named_modules())
        self.active = BASE
        self.switches = 0
        self._torch = torch

    def add_adapter(self, adapter: Path) -> str:
        """Merge ``adapter`` into weights of its own (once per folder); returns its key for ``use``."""
        key = str(Path(adapter).resolve())
        with self.lock:
            if key in self._weights:
                return key
            weights = {}
            for name, w in merged_weights(self.path, Path(adapter), self.dtype):
                module = self._modules.get(name)
                if module is None or not hasattr(module, "weight"):
                    raise BackendError(f"adapter {adapter} targets {name}, which {self.path.name} has no layer for")
                self._base.setdefault(name, module.weight)
                weights[name] = self._torch.nn.Parameter(w.to(device=self.device), requires_grad=False)  # type: ignore[attr-defined]
            self._weights[key] = weights
            log.info("adapter %s shares the loaded %s (%d modules merged)", Path(adapter).name, self.path.name,
                     len(weights))
            return key

    def _activate(self, key: str) -> None:
        if key == self.active:
            return
        # back to the base where the active adapter differs from the next, then the next one's weights
        for name in self._weights.get(self.active, {}):
            self._modules[name].weight = self._base[name]
        for name, w in self._weights.get(key, {}).items():
            self._modules[name].weight = w
        self.active = key
        self.switches += 1

    @contextmanager
    def use(self, key: str) -> Iterator[None]:
        """The model with ``key``'s weights in place, to this caller alone while the block runs."""
        with self.lock:
            self._activate(key)
            yield

    def memory_mb(self) -> float:
        """Parameter memory held: the base model and every adapter's merged copies."""
        n = sum(p.numel() * p.element_size() for p in self.model.parameters())
        n += sum(w.numel() * w.element_size() for ws in self._weights.values() for w in ws.values())  # type: ignore[attr-defined]
        return n / 2**20


# held weakly: a model no backend uses any more is freed
_SHARED: weakref.WeakValueDictionary[tuple[str, str, str], SharedModel] = weakref.WeakValueDictionary()
_SHARED_LOCK = threading.Lock()


def shared_model(path: Path, device: str, dtype) -> SharedModel:
    """The loaded model for (path, device, dtype), loading it the first time a stage asks."""
    key = (str(Path(path).resolve()), device, str(dtype))
    with _SHARED_LOCK:
        found = _SHARED.get(key)
        if found is None:
            found = _SHARED[key] = SharedModel(Path(path), device, dtype)
        return found


def forget_shared() -> None:
    """Drop the registry (tests; a process that reloads its models from changed files)."""
    with _SHARED_LOCK:
        _SHARED.clear()
