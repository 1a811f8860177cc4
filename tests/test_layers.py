"""The one-way layers (docs/ARCHITECTURE.md): import-linter contracts hold, can fail, and the CLI stays light.

The contracts live in pyproject.toml ([tool.importlinter]); every import counts, the lazy
ones inside functions included.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rlog", "stream", "train", "benchmarks")
LINT = Path(sys.executable).with_name("lint-imports")


def lint(cwd: Path) -> subprocess.CompletedProcess:
    if not LINT.exists():
        pytest.fail(f"{LINT} not found: import-linter is in the dev extra (pip install -e '.[dev]')")
    return subprocess.run([str(LINT), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={"PATH": str(LINT.parent), "PYTHONPATH": str(cwd), "HOME": str(cwd)})


def copy_tree(dst: Path) -> None:
    """The four packages' sources and pyproject.toml (no model weights, no caches)."""
    for pkg in PACKAGES:
        for src in (ROOT / pkg).rglob("*.py"):
            out = dst / src.relative_to(ROOT)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out)
    shutil.copyfile(ROOT / "pyproject.toml", dst / "pyproject.toml")


def test_contracts_hold():
    r = lint(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout


def test_contracts_catch_imports_against_the_flow(tmp_path):
    """The same contracts on a copy with three wrong-way imports, one per kind of rule."""
    copy_tree(tmp_path)
    with open(tmp_path / "rlog/pipeline/formats.py", "a") as f:  # core -> stream (and so -> the broker binary)
        f.write("\n\ndef _wrong_way():\n    from stream.broker import free_port\n\n    return free_port\n")
    with open(tmp_path / "rlog/pipeline/lines.py", "a") as f:  # pipeline -> cascade, inside the core
        f.write("\nfrom rlog.cascade.alerts import Alert  # noqa: E402,F401\n")
    with open(tmp_path / "train/sft.py", "a") as f:  # train -> stream
        f.write("\nimport stream.replay  # noqa: E402,F401\n")
    r = lint(tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "rlog.pipeline.formats -> stream.broker" in out
    assert "rlog.pipeline.lines -> rlog.cascade.alerts" in out
    assert "train.sft -> stream.replay" in out
    assert "3 broken" in out  # exactly these three rules; the CLI's own rule still holds


HEAVY = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "faust", "aiokafka", "kafka", "drain3",
         "sklearn", "matplotlib", "stream", "train")


@pytest.mark.parametrize("argv", [["--help"], ["formats"], ["config"]])
def test_cli_imports_heavy_parts_only_inside_commands(argv):
    """`rlog --help` and the light commands load no model, Kafka, Faust or training library."""
    code = ("import sys\nfrom rlog.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            f"print('LOADED', sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))")
    r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "LOADED []"
