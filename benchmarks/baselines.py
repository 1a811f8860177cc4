"""The detectors rlog is compared with, on the same sessions: no LLM, trained on the fit part.

- ``drain3-novelty``: Drain3 alone. A session is abnormal when it holds a template cluster
  never seen while fitting (what a parser-only pipeline can flag).
- ``keywords``: severity and failure words (ERROR, FATAL, "failed", "refused", ...).
- ``pca``: loglizer's PCA on TF-IDF-weighted, zero-mean session template-count vectors; a
  session whose squared prediction error (SPE) exceeds the Q-statistic threshold is abnormal.
- ``iforest``: scikit-learn's IsolationForest on the same count vectors (contamination 0.03,
  loglizer's setting).
- ``deeplog``: a next-template LSTM trained on normal fit sessions; a session is abnormal
  when a template falls outside the top-g predictions (or was never seen).

Templates are keyed by (source, Drain cluster id): stable while Drain generalises a
cluster's text, which changes the template id.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from statistics import NormalDist
from typing import Protocol

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest

from benchmarks.spec import BaselineSpec
from rlog.pipeline.sessions import Session

Key = tuple[str, int]


def events(s: Session) -> list[Key]:
    return [(s.source, ln.cluster_id) for ln in s.lines]


class Detector(Protocol):
    name: str
    session_level_only: bool

    def fit(self, sessions: Sequence[Session], labels: Sequence[bool | None]) -> None: ...

    def predict(self, sessions: Sequence[Session]) -> list[bool]: ...


class DrainNovelty:
    name, session_level_only = "drain3-novelty", False

    def __init__(self) -> None:
        self.seen: set[Key] = set()

    def fit(self, sessions: Sequence[Session], labels: Sequence[bool | None]) -> None:
        self.seen = {e for s in sessions for e in events(s)}

    def predict(self, sessions: Sequence[Session]) -> list[bool]:
        return [any(e not in self.seen for e in events(s)) for s in sessions]


_SEVERITY = re.compile(r"\b(FATAL|ERROR|ERR|SEVERE|CRITICAL|CRIT|PANIC|EMERG|EMERGENCY|ALERT)\b")
_FAILURE = re.compile(r"\b(errors?|fail(s|ed|ure|ing)?|fatal|exception|panic|crash(ed|es)?|refused|timed out|timeout|"
                      r"denied|corrupt(ed|ion)?|unreachable|killed|abort(ed|ing)?|segfault|out of memory|oom)\b",
                      re.IGNORECASE)


class Keywords:
    """Severity words in the raw line, failure words in the template (no labels needed)."""

    name, session_level_only = "keywords", False

    def fit(self, sessions: Sequence[Session], labels: Sequence[bool | None]) -> None:
        return None

    def predict(self, sessions: Sequence[Session]) -> list[bool]:
        return [any(_SEVERITY.search(ln.raw) or _FAILURE.search(ln.template) for ln in s.lines) for s in sessions]


class CountVectors:
    """Session → template-count vector over the fit vocabulary (unseen templates: one extra column)."""

    def __init__(self, sessions: Sequence[Session]) -> None:
        self.index: dict[Key, int] = {}
        for s in sessions:
            for e in events(s):
                self.index.setdefault(e, len(self.index))

    def __call__(self, sessions: Sequence[Session]) -> np.ndarray:
        x = np.zeros((len(sessions), len(self.index) + 1), dtype=np.float64)
        for i, s in enumerate(sessions):
            for e in events(s):
                x[i, self.index.get(e, len(self.index))] += 1
        return x


class PCADetector:
    name, session_level_only = "pca", True

    def __init__(self, variance: float = 0.95, alpha: float = 0.001) -> None:
        self.variance, self.alpha = variance, alpha

    def _features(self, x: np.ndarray) -> np.ndarray:
        return x * self.idf - self.mean

    def fit(self, sessions: Sequence[Session], labels: Sequence[bool | None]) -> None:

        self.vec = CountVectors(sessions)
        x = self.vec(sessions)
        df = (x > 0).sum(axis=0)
        self.idf = np.log(len(x) / np.maximum(df, 1))
        self.mean = (x * self.idf).mean(axis=0)
        y = self._features(x)
        pca = PCA(svd_solver="full").fit(y)
        lam = pca.explained_variance_
        total = lam.sum()
        k = int(np.searchsorted(np.cumsum(lam) / total, self.variance) + 1) if total > 0 else 0
        k = min(k, len(lam))
        p = pca.components_[:k].T
        self.residual = np.eye(y.shape[1]) - p @ p.T
        rest = lam[k:]
        phi = [float((rest ** i).sum()) for i in (1, 2, 3)]
        spe_fit = self._spe(y)
        if phi[0] <= 0 or phi[1] <= 0:
            self.threshold = float(spe_fit.max()) if len(spe_fit) else 0.0
            return
        h0 = 1 - 2 * phi[0] * phi[2] / (3 * phi[1] ** 2)
        c = NormalDist().inv_cdf(1 - self.alpha)
        if h0 <= 0:  # degenerate spectrum: fall back to the largest error seen while fitting
            self.threshold = float(spe_fit.max())
            return
        self.threshold = phi[0] * (c * math.sqrt(2 * phi[1] * h0 ** 2) / phi[0] + 1
                                   + phi[1] * h0 * (h0 - 1) / phi[0] ** 2) ** (1 / h0)

    def _spe(self, y: np.ndarray) -> np.ndarray:
        r = y @ self.residual.T
        return (r * r).sum(axis=1)

    def predict(self, sessions: Sequence[Session]) -> list[bool]:
        return [bool(v > self.threshold) for v in self._spe(self._features(self.vec(sessions)))]


class IForestDetector:
    name, session_level_only = "iforest", True

    def __init__(self, trees: int = 100, contamination: float | str = 0.03, seed: int = 0) -> None:
        self.trees, self.contamination, self.seed = trees, contamination, seed

    def fit(self, sessions: Sequence[Session], labels: Sequence[bool | None]) -> None:

        self.vec = CountVectors(sessions)
        self.model = IsolationForest(n_estimators=self.trees, contamination=self.contamination, random_state=self.seed)
        self.model.fit(self.vec(sessions))

    def predict(self, sessions: Sequence[Session]) -> list[bool]:
        return [bool(v == -1) for v in self.model.predict(self.vec(sessions))]


class DeepLogDetector:
    """DeepLog's execution-path model, small: 2-layer LSTM over an embedding, trained on normal sessions."""

    name, session_level_only = "deeplog", True

    def __init__(self, window: int = 10, top_g: int = 9, hidden: int = 64, epochs: int = 30, seed: int = 0) -> None:
        self.window, self.top_g, self.hidden, self.epochs, self.seed = window, top_g, hidden, epochs, seed

    def _ids(self, s: Session) -> list[int]:
        unk = len(self.index) + 1
        return [self.index.get(e, unk) for e in events(s)]

    def _windows(self, ids: list[int]) -> tuple[list[list[int]], list[int]]:
        padded = [0] * self.window + ids  # 0: before the session starts, so the first lines are predicted too
        return [padded[i: i + self.window] for i in range(len(ids))], ids

    def fit(self, sessions: Sequence[Session], labels: Sequence[bool | None]) -> None:
        normal = [s for s, lab in zip(sessions, labels, strict=True) if not lab]
        self.index: dict[Key, int] = {}
        for s in normal:
            for e in events(s):
                self.index.setdefault(e, len(self.index) + 1)
        xs: list[list[int]] = []
        ys: list[int] = []
        for s in normal:
            w, y = self._windows(self._ids(s))
            xs.extend(w)
            ys.extend(y)
        torch.manual_seed(self.seed)
        n = len(self.index) + 2
        self.model = _NextTemplate(n, self.hidden)
        if not xs:
            return
        x, y = torch.tensor(xs), torch.tensor(ys)
        opt = torch.optim.Adam(self.model.parameters(), lr=2e-3)
        gen = torch.Generator().manual_seed(self.seed)
        self.model.train()
        for _ in range(self.epochs):
            order = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), 256):
                b = order[i: i + 256]
                loss = torch.nn.functional.cross_entropy(self.model(x[b]), y[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
        self.model.eval()

    def predict(self, sessions: Sequence[Session]) -> list[bool]:
        unk = len(self.index) + 1
        out = []
        with torch.no_grad():
            for s in sessions:
                ids = self._ids(s)
                if not ids:
                    out.append(False)
                    continue
                if unk in ids:
                    out.append(True)
                    continue
                w, y = self._windows(ids)
                top = self.model(torch.tensor(w)).topk(min(self.top_g, len(self.index) + 2), dim=1).indices
                out.append(bool((top != torch.tensor(y)[:, None]).all(dim=1).any()))
        return out


class _NextTemplate(torch.nn.Module):
    def __init__(self, n: int, hidden: int) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(n, 16)
        self.lstm = torch.nn.LSTM(16, hidden, num_layers=2, batch_first=True)
        self.out = torch.nn.Linear(hidden, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(self.emb(x))
        return self.out(h[:, -1])


def make_baselines(spec: BaselineSpec, seed: int = 0) -> list[Detector]:
    made: dict[str, Detector] = {
        "drain3-novelty": DrainNovelty(),
        "keywords": Keywords(),
        "pca": PCADetector(spec.pca_variance, spec.pca_alpha),
        "iforest": IForestDetector(spec.iforest_trees, spec.iforest_contamination, seed),
        "deeplog": DeepLogDetector(spec.deeplog_window, spec.deeplog_top_g, spec.deeplog_hidden, spec.deeplog_epochs,
                                   seed),
    }
    return [made[m] for m in spec.methods]
