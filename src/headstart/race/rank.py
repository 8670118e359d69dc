"""``rank``: which backbones to race, from frozen features of the pool only, in about a minute each.

Each candidate (a registered name or ``hf:`` id, with its options: ``mobilenetv2[image_size=64]``)
embeds the same stratified subset of the pool once, and three signals are computed on those features:

- **LogME** (You et al., ICML 2021; the advisor's implementation): the evidence that a linear model on the
  features explains the labels, per example;
- **regularised H-score** (Bao et al., ICIP 2019, with the Ledoit-Wolf shrinkage of Ibrahim et al., ICLR 2022,
  which keeps it stable when there are more feature dimensions than examples, as here): how much of the
  features' variance the class means explain;
- **probe accuracy**: 5-fold cross-validated logistic regression on the features (what a probe would reach).

The candidates are ordered by the probe's cross-validated accuracy (``by="probe_acc"``), and the two best
are the ones to race. That is a measurement, not a guess: over 8 packaged vision candidates on mnist-5k,
digits and fashion-mnist (BENCHMARKS.md, "Choosing the backbone"), the probe's accuracy ordered them best
(mean Kendall τ +0.68 against the probe's test accuracy, +0.24 against ``full``'s; the mean rank over the
three signals, the earlier order, +0.48 and −0.05; LogME −0.07 and −0.17), and its top two always held a
candidate at least as good as the mean rank's (on fashion-mnist, ``full`` 0.803 against 0.784; the best of
all 8 reached 0.814). ``by="mean_rank"``, ``"logme"`` or ``"hscore"`` order by another score; every score
is printed whatever the order. The selection and test
parts of the split are never looked at, not even their labels. TLlib (``tllib.ranking``) implements LogME,
H-score, LEEP and NCE but is not on PyPI; LEEP and NCE need the source task's classifier, which a sentence
encoder does not have, so they are left out.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..backbones import create_backbone
from ..backbones.options import candidate_label, parse_candidate
from ..data import Task, budget_indices, make_splits
from ..errors import HeadstartError
from ..train import AdaptedModel, FeatureCache
from .advisor import _cv_probe, logme

__all__ = ["Candidate", "format_ranking", "hscore", "parse_candidate", "rank_backbones"]

SIGNALS = ("logme", "hscore", "probe_acc")
#: what ``rank`` can order the candidates by (each best first), and the words its table says it with
ORDERS = {"probe_acc": "the best probe accuracy (5-fold, on frozen features)",
          "mean_rank": "the best mean rank over LogME, H-score and probe accuracy",
          "logme": "the best LogME", "hscore": "the best H-score"}
DEFAULT_ORDER = "probe_acc"  # measured best on the packaged vision backbones (BENCHMARKS.md, "Choosing the backbone")


def hscore(features: np.ndarray, labels: np.ndarray) -> float:
    """Regularised H-score: ``tr(cov_α(f)⁻¹ (1 − α) cov(E[f | y]))`` with Ledoit-Wolf's shrunk covariance."""
    from sklearn.covariance import LedoitWolf

    f = features.astype(np.float64)
    f = f - f.mean(0)
    lw = LedoitWolf(assume_centered=True).fit(f)
    alpha = float(lw.shrinkage_)
    g = np.zeros_like(f)
    for c in np.unique(labels):
        g[labels == c] = f[labels == c].mean(0)
    cov_g = g.T @ g / len(f)
    return float(np.trace(lw.precision_ @ ((1 - alpha) * cov_g)))


@dataclass
class Candidate:
    backbone: str
    options: dict[str, Any]
    examples: int = 0
    feature_dim: int = 0
    logme: float | None = None
    hscore: float | None = None
    probe_acc: float | None = None
    mean_rank: float | None = None
    seconds: float = 0.0
    error: str | None = None

    @property
    def label(self) -> str:
        return candidate_label(self.backbone, self.options)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "label": self.label}


def _features(task: Task, sample: Task, name: str, options: dict[str, Any], cache: FeatureCache) -> np.ndarray:
    backbone = create_backbone(name, **options)
    if backbone.modality != task.modality:
        raise HeadstartError(f"{name} is a {backbone.modality} model but the data are {task.modality}s.")
    model = AdaptedModel(backbone, len(task.classes))
    states = cache.states(model, model.features_start, sample, range(len(sample)))
    return np.stack([s["features"].numpy() for s in states])


def rank_backbones(task: Task, candidates: list[str | tuple[str, dict[str, Any]]], *, subset: int = 1000,
                   seed: int = 0, cache: FeatureCache | None = None, pool: np.ndarray | None = None,
                   on_candidate: Any = None, by: str = DEFAULT_ORDER) -> list[Candidate]:
    """Every candidate scored on the same subset of the pool (``pool``, or the race's pool for split ``seed``),
    best first by ``by`` (one of ``ORDERS``); a candidate that cannot be used here keeps its row with the
    sentence saying why."""
    if by not in ORDERS:
        raise HeadstartError(f"rank orders candidates by one of {', '.join(ORDERS)}; got {by!r}.")
    if not candidates:
        raise HeadstartError("rank needs at least one backbone (--backbones minilm-l6,hf:org/model).")
    parsed = [parse_candidate(c) if isinstance(c, str) else (c[0], dict(c[1])) for c in candidates]
    labels = [Candidate(n, o).label for n, o in parsed]
    if len(set(labels)) != len(labels):
        twice = next(label for label in labels if labels.count(label) > 1)
        raise HeadstartError(f"The backbone {twice} is listed twice; give each candidate once.")
    pool = make_splits(task, seed=seed).pool if pool is None else np.asarray(pool)
    counts = np.bincount(task.labels[pool], minlength=len(task.classes))
    per_class = max(2, min(int(counts.min()), subset // len(task.classes)))
    sample = task.subset(budget_indices(task, pool, per_class, seed=seed))
    cache = cache or FeatureCache()
    out = []
    for name, options in parsed:
        row = Candidate(name, options, examples=len(sample))
        tic = time.perf_counter()
        try:
            feats = _features(task, sample, name, options, cache)
        except HeadstartError as exc:
            row.error = str(exc)
        else:
            y = sample.labels
            row.feature_dim = int(feats.shape[1])
            row.logme, row.hscore, row.probe_acc = logme(feats, y), hscore(feats, y), _cv_probe(feats, y, seed)
        row.seconds = time.perf_counter() - tic
        out.append(row)
        if on_candidate is not None:
            on_candidate(row)
    scored = [r for r in out if r.error is None]
    for signal in SIGNALS:  # rank 1 = best on that signal; ties share the better rank
        values = sorted({getattr(r, signal) for r in scored}, reverse=True)
        for r in scored:
            r.mean_rank = (r.mean_rank or 0.0) + (values.index(getattr(r, signal)) + 1) / len(SIGNALS)
    return sorted(scored, key=lambda r: _order_key(r, by)) + [r for r in out if r.error]


def _order_key(row: Candidate, by: str) -> tuple[float, ...]:
    """Best first on ``by``; ties broken by the mean rank, then the probe's accuracy."""
    first = row.mean_rank if by == "mean_rank" else -getattr(row, by)
    return first, row.mean_rank or 0.0, -(row.probe_acc or 0.0)


def format_ranking(rows: list[Candidate], data: str | None = None, by: str = DEFAULT_ORDER) -> str:
    """The table ``headstart rank`` prints (``rows`` as ``rank_backbones`` ordered them by ``by``), ending with the
    two to race (and, given ``data``, the command)."""
    import shlex

    scored = [r for r in rows if r.error is None]
    lines = [f"{'backbone':<32} {'LogME':>8} {'H-score':>8} {'probe acc':>9} {'mean rank':>9} {'seconds':>8}"]
    for r in scored:
        lines.append(f"{r.label:<32} {r.logme:>8.3f} {r.hscore:>8.3f} {r.probe_acc:>9.3f} {r.mean_rank:>9.2f} "
                     f"{r.seconds:>8.1f}")
    for r in rows:
        if r.error:
            lines.append(f"{r.label:<32} not usable: {r.error}")
    if scored:
        examples = scored[0].examples
        best = [r.label for r in scored[:2]]
        lines.append(f"\non {examples} examples of the pool (the selection and test parts untouched). Race "
                     + (f"{best[0]} and {best[1]}" if len(best) == 2 else best[0])
                     + f": {ORDERS[by]}"
                     + (" (the score that ordered our vision candidates best: BENCHMARKS.md)." if by == DEFAULT_ORDER
                        else "."))
        if data is not None and len(best) == 2:
            lines.append("  " + shlex.join(["headstart", "compare", data, "--backbones", ",".join(best),
                                            "--out", "runs/backbones"]))
    return "\n".join(lines)
