"""Inference backends behind one interface; heavy engines are imported only when chosen."""

from __future__ import annotations

from rlog.backends.base import Backend, BackendError, Generation, GenerationParams, can_score
from rlog.config import CascadeConfig, ModelSpec

__all__ = ["Backend", "BackendError", "can_score", "Generation", "GenerationParams", "load_backend", "load_stage_backends"]

# what makes two stages one backend (the decoding settings are the cascade's, per call)
_IDENTITY = {"model", "adapter", "backend", "device", "dtype", "gpu_memory_utilization", "max_lora_rank", "base_url",
             "served_model", "api_key_env", "timeout_s",
             "concurrency", "request_retries"}


def load_backend(spec: ModelSpec) -> Backend:
    """Instantiate the engine a model spec asks for."""
    if spec.backend == "transformers":
        from rlog.backends.transformers_backend import TransformersBackend

        return TransformersBackend.from_spec(spec)
    if spec.backend == "vllm":
        try:
            import vllm  # noqa: F401
        except ImportError:
            raise BackendError("backend 'vllm' needs the gpu extra: pip install 'rlog[gpu]' (on a CUDA machine)") from None
        from rlog.backends.vllm_backend import VLLMBackend

        return VLLMBackend.from_spec(spec)
    if spec.backend == "openai":
        from rlog.backends.openai_backend import OpenAIBackend

        return OpenAIBackend.from_spec(spec)
    raise BackendError(f"unknown backend {spec.backend!r}")


def load_stage_backends(cascade: CascadeConfig, *, fast: bool | Backend = True, full: bool | Backend = True
                        ) -> tuple[Backend | None, Backend | None]:
    """The backends of R-Log-fast and R-Log: ``True`` loads a stage, ``False`` leaves it None, a
    backend is used as given (R-Log is None when nothing escalates). Stages on one base share its
    loaded weights (``rlog.backends.shared_model``); stages with the same model and adapter are
    one backend."""
    f = fast if not isinstance(fast, bool) else load_backend(cascade.fast) if fast else None
    if not isinstance(full, bool):
        e = full
    elif full and cascade.escalate:
        same = cascade.full.model_dump(include=_IDENTITY) == cascade.fast.model_dump(include=_IDENTITY)
        e = f if (same and f is not None) else load_backend(cascade.full)
    else:
        e = None
    release_free_memory()
    return f, e


def release_free_memory() -> None:
    """Hand the heap that loading freed back to the system (glibc keeps it otherwise: ~90 MB of the
    resident memory of a worker after both stages load). A no-op where the C library has no
    ``malloc_trim``."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass
