"""A real OpenAI-compatible model server on this machine: ``transformers serve`` over local folders.

The HTTP backend is tested and measured against a real server, not a mock. ``transformers
serve`` (the ``transformers[serving]`` extra) loads models by hub name from the Hugging
Face cache and lists that cache at ``/v1/models``; nothing may be downloaded here, so local
model folders are entered into a private cache under names of our choosing (files linked,
not copied) and the server runs offline on it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from stream.broker import free_port


def register(cache: Path, name: str, folder: Path) -> str:
    """Enter the model ``folder`` into the hub cache at ``cache`` as ``name`` (``org/model``); returns name.

    The layout the hub client writes: blobs named by content, a snapshot of links to them and
    a ``refs/main`` naming the snapshot. Blobs here are links to the folder's files.
    """
    repo = cache / f"models--{name.replace('/', '--')}"
    rev = hashlib.sha1(f"{name}:{folder.resolve()}".encode()).hexdigest()
    snap, blobs = repo / "snapshots" / rev, repo / "blobs"
    for d in (snap, blobs, repo / "refs"):
        d.mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(rev, encoding="utf-8")
    for f in sorted(folder.iterdir()):
        if not f.is_file():
            continue
        blob = blobs / hashlib.sha256(str(f.resolve()).encode()).hexdigest()
        if not blob.exists():
            blob.symlink_to(f.resolve())
        link = snap / f.name
        if not link.exists():
            link.symlink_to(os.path.relpath(blob, snap))
    return name


def build_tiny_model(out: Path) -> Path:
    """A real Llama-architecture model with random weights and SmolLM2's real chat tokenizer (2 layers,
    hidden 32): the exact code paths of the 135M model at a fraction of its cost, for tests and for
    measuring what surrounds a model call."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from rlog.models import builtin_gguf, load_gguf_tokenizer

    out = Path(out)
    tok = load_gguf_tokenizer(builtin_gguf())
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      tie_word_embeddings=True, initializer_range=0.2)  # varied, input-dependent text
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def serve_command() -> list[str]:
    """``transformers serve`` of this interpreter's environment, or a clear error."""
    exe = Path(sys.executable).parent / "transformers"
    if not exe.exists() and shutil.which("transformers") is None:
        raise RuntimeError("`transformers serve` is missing: pip install 'transformers[serving]'")
    return [str(exe) if exe.exists() else "transformers", "serve"]


class ModelServer:
    """``transformers serve`` on a free loopback port, serving ``models`` ({name: folder}) from a private cache."""

    def __init__(self, models: dict[str, Path], workdir: Path, *, dtype: str = "auto", log_file: Path | None = None):
        self.models, self.workdir, self.dtype = models, Path(workdir), dtype
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.log_file = log_file or self.workdir / "server.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> ModelServer:
        cache = self.workdir / "hub"
        for name, folder in self.models.items():
            register(cache, name, Path(folder))
        env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "HF_HUB_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false"}
        self.workdir.mkdir(parents=True, exist_ok=True)
        out = open(self.log_file, "wb")  # noqa: SIM115 - lives as long as the server
        cmd = [*serve_command(), "--host", "127.0.0.1", "--port", str(self.port), "--device", "cpu",
               "--dtype", self.dtype, "--log-level", "warning"]
        self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"transformers serve did not answer within {timeout:.0f}s: {self.log_tail()}")

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_file.read_text(encoding="utf-8", errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
