"""Inference backends behind one interface; heavy engines are imported only when chosen."""

from __future__ import annotations

from rlog.backends.base import Backend, BackendError, Generation, GenerationParams
from rlog.config import ModelSpec

__all__ = ["Backend", "BackendError", "Generation", "GenerationParams", "load_backend"]


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
    raise BackendError(f"unknown backend {spec.backend!r}")
