"""What a benchmark run measures, in one validated object (a preset YAML, or built by the CLI).

Every method is scored on the same test sessions of a dataset. Each dataset is split in
time: the first part (``fit``) is what the trained baselines may learn from, as a deployed
detector would have seen it before; everything is scored on the rest. For Loghub BGL the
split is the training recipe's own, so the shipped adapters are never scored on lines they
were trained on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

PRESETS_DIR = Path(__file__).parent / "presets"
BASELINES = ("drain3-novelty", "keywords", "pca", "iforest", "deeplog")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetSpec(_Spec):
    """One labelled log set and how to cut it into sessions."""

    name: str
    kind: Literal["sim", "loghub", "file"]
    # sim: the simulator config of the scored logs; the fit logs use seed + 1000 and fit_lines
    sim: dict[str, Any] = Field(default_factory=dict)
    fit_lines: int = Field(4000, ge=0, description="sim: simulated lines the baselines may learn from")
    # loghub: a system folder under <data>/loghub with per-line labels (BGL, Thunderbird)
    system: str | None = None
    corrections: bool = Field(True, description="loghub BGL: apply the RationAnomaly label corrections")
    # file: a log file (or an `rlog simulate` folder) with a format preset
    path: str | None = None
    format: str | None = None
    labels: str | None = Field(None, description="file: CSV of (session id, label) for id sessions")
    truth: str | None = Field(None, description="file: a truth.csv with one row per line")
    # a `session` config section; unset: the data's own (a simulation's 40-line windows per
    # component), else 20-line count windows
    session: dict[str, Any] | None = None
    fit_fraction: float = Field(0.7, ge=0, lt=1, description="loghub/file: first share of sessions for fitting")
    max_test_sessions: int | None = Field(None, ge=1, description="score only the first N test sessions (all methods)")
    templates: bool = Field(False, description="also score unique templates (template-level F1)")
    max_test_templates: int | None = Field(None, ge=1)
    llm: bool = Field(True, description="judge with R-Log-fast and the cascade (the costly part)")
    stream: bool = Field(False, description="also replay the scored logs through the streaming path")
    stream_rate: float | None = Field(None, gt=0, description="replay pace in lines/s (unset: as fast as possible)")

    @model_validator(mode="after")
    def _complete(self) -> DatasetSpec:
        if self.kind == "loghub" and not self.system:
            raise ValueError(f"dataset {self.name}: kind loghub needs `system` (e.g. BGL)")
        if self.kind == "file" and not self.path:
            raise ValueError(f"dataset {self.name}: kind file needs `path`")
        return self


class BaselineSpec(_Spec):
    methods: list[str] = Field(default_factory=lambda: list(BASELINES))
    pca_variance: float = Field(0.95, gt=0, le=1, description="PCA: variance kept in the normal subspace")
    pca_alpha: float = Field(0.001, gt=0, lt=1, description="PCA: Q-statistic significance for the SPE threshold")
    iforest_trees: int = Field(100, ge=10)
    iforest_contamination: float | Literal["auto"] = Field(0.03, description="expected share of anomalies "
                                                           "(loglizer's 0.03; 'auto' flags almost nothing here)")
    deeplog_window: int = Field(10, ge=1)
    deeplog_top_g: int = Field(9, ge=1, description="DeepLog: a next template outside the top g is an anomaly")
    deeplog_hidden: int = Field(64, ge=4)
    deeplog_epochs: int = Field(30, ge=1)

    @model_validator(mode="after")
    def _known(self) -> BaselineSpec:
        unknown = set(self.methods) - set(BASELINES)
        if unknown:
            raise ValueError(f"unknown baseline(s) {', '.join(sorted(unknown))}; known: {', '.join(BASELINES)}")
        return self


class ExplainSpec(_Spec):
    """Simulated incidents R-Log explains (``benchmarks.explain``): a seed no training run uses."""

    sim: dict[str, Any] = Field(default_factory=dict, description="simulator config of the incidents' logs")
    fit_lines: int = Field(3000, ge=0, description="lines read first (seed + 1000), so novelty marks are as in "
                                                   "production")
    incidents: int | None = Field(None, ge=1, description="explain at most this many (fault types interleaved)")
    trajectories: int = Field(0, ge=0, description="validation trajectories per text task (root cause, "
                                                   "interpretation, solution) R-Log answers; 0: none")
    trajectory_tokens: int = Field(192, ge=16, description="budget of each trajectory answer")
    real_incidents: bool = Field(True, description="also explain the real Apache incidents the training recipe "
                                                   "held out (trajectories joined across the three text tasks), "
                                                   "written as the stream writes escalations")


class LabSpec(_Spec):
    """The fault lab's corpus scored leave-one-daemon-out (``benchmarks.lodo``)."""

    corpus: Path = Field(Path("out/lab/corpus"), description="a folder built by `rlog lab corpus`")
    daemons: list[str] | None = Field(None, description="score these daemons (unset: every daemon of the corpus)")
    fit_runs: int = Field(14, ge=1, description="each daemon's first runs (by seed): its past, never scored")
    max_test_sessions: int | None = Field(None, ge=1, description="score only a daemon's first N scored sessions")
    fusion_c: float = Field(0.1, gt=0, description="L2 strength of the per-daemon fusion refit (as calibration's)")
    fusion_sessions: int | None = Field(400, ge=20, description="per other daemon, scored sessions (a seeded "
                                                               "sample) a daemon's fusion and threshold are fitted "
                                                               "on; null: all")
    fast_adapters: dict[str, str] = Field(default_factory=dict, description="per daemon, an R-Log-fast adapter "
                                          "trained without it (`train/make_lab_adapters.sh`): scored on that daemon "
                                          "as `rlog-fast +lab` / `rlog +lab` beside the configured model")
    full_adapters: dict[str, str] = Field(default_factory=dict, description="per daemon, an R-Log adapter trained "
                                          "without it: its explanations of that daemon's incidents are scored "
                                          "beside the configured R-Log's (needs explain_incidents)")
    explain_incidents: int = Field(0, ge=0, description="per daemon, incidents R-Log explains (fault types "
                                                        "interleaved), scored against the injector's cause and fix")


class BenchSpec(_Spec):
    name: str
    description: str = ""
    seed: int = 0
    datasets: list[DatasetSpec]
    baselines: BaselineSpec = Field(default_factory=BaselineSpec)
    parsing_systems: list[str] | Literal["all"] = Field("all", description="Loghub systems for parsing accuracy")
    probe_sessions: int = Field(8, ge=0, description="sessions timed one by one through R-Log-fast and R-Log")
    explain: ExplainSpec | None = Field(None, description="score R-Log's explanations on simulated incidents")
    faultlab: LabSpec | None = Field(None, description="score a fault-lab corpus, leave one daemon out")
    stream_timeout_s: float = Field(1800, gt=0)
    warm_memory: bool = Field(True, description="before scoring, run R-Log-fast over each dataset's fit part so the "
                              "cascade's verdict and known-normal memories hold what a running stream would have "
                              "learnt from earlier traffic; cost and detection are then steady-state figures "
                              "(false: every scored session meets an empty memory)")

    @model_validator(mode="after")
    def _unique(self) -> BenchSpec:
        names = [d.name for d in self.datasets]
        if len(set(names)) != len(names):
            raise ValueError(f"dataset names must be unique: {names}")
        return self


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_spec(preset: str) -> BenchSpec:
    """A preset by name (``quick``, ``standard``) or a path to a spec YAML."""
    from rlog.config import ConfigError

    path = Path(preset)
    if not path.is_file():
        path = PRESETS_DIR / f"{preset}.yaml"
        if not path.is_file():
            raise ConfigError(f"no benchmark preset {preset!r}: use one of {', '.join(preset_names())} or a YAML path")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return BenchSpec.model_validate(data)
    except (yaml.YAMLError, ValueError) as e:
        raise ConfigError(f"benchmark spec {path}: {e}") from None
