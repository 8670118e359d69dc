"""The probe fits in the examples' row space when they are fewer than the feature dimensions: the same head, the
same predictions and the same chosen C as the plain fit in the full space."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from headstart.strategies import create_strategy
from headstart.strategies.probe import _RowSpace
from headstart.train import AdaptedModel

from .conftest import tiny_backbone


def _features(n: int, d: int, classes: int, seed: int = 0, noise: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    centres = rng.normal(size=(classes, d))
    return centres[y] + rng.normal(scale=noise, size=(n, d)), y


@pytest.mark.parametrize(("n", "d", "classes"), [(40, 300, 4), (24, 200, 2), (10, 50, 5)])
def test_a_fit_in_the_row_space_equals_the_fit_in_the_full_space(n, d, classes):
    x, y = _features(n, d, classes)
    rows = _RowSpace(x)
    assert rows.basis is not None and rows.basis.shape == (n, d)
    reduced = rows.expand(LogisticRegression(C=1.0, max_iter=3000, tol=1e-10).fit(rows.reduce(x), y))
    plain = LogisticRegression(C=1.0, max_iter=3000, tol=1e-10).fit(x, y)
    assert reduced.coef_.shape == plain.coef_.shape
    np.testing.assert_allclose(reduced.coef_, plain.coef_, atol=1e-5)
    np.testing.assert_allclose(reduced.intercept_, plain.intercept_, atol=1e-5)
    new, _ = _features(30, d, classes, seed=1)  # examples the fit never saw: outside the row space
    np.testing.assert_allclose(reduced.predict_proba(new), plain.predict_proba(new), atol=1e-6)


def test_no_reduction_with_more_examples_than_dimensions_or_all_zero_features():
    x, _ = _features(60, 20, 3)
    assert _RowSpace(x).basis is None
    zeros = np.zeros((5, 30))
    assert _RowSpace(zeros).basis is None and _RowSpace(zeros).reduce(zeros) is zeros


def test_a_rank_deficient_row_space_keeps_only_its_rank():
    x, _ = _features(6, 40, 2)
    x = np.concatenate([x, x[:3] * 2.0])  # 9 rows of rank 6
    assert _RowSpace(x).basis.shape == (6, 40)


@pytest.mark.parametrize("selection", ["cv", "val"])
def test_the_probe_chooses_the_same_c_and_head_as_the_plain_fit(monkeypatch, selection):
    from headstart.strategies import probe as probe_module

    x, y = _features(48, 384, 3, noise=12.0)  # hard enough that no C separates it: a loss L-BFGS settles
    xt, yt, xv, yv = torch.from_numpy(x[:36]), y[:36], torch.from_numpy(x[36:]), y[36:]
    fitted = []
    for plain in (False, True):
        if plain:  # the same probe with the reduction turned off
            monkeypatch.setattr(probe_module._RowSpace, "__init__", lambda self, x: setattr(self, "basis", None))
        model = AdaptedModel(tiny_backbone("minilm-l6"), 3)
        model.head = torch.nn.Linear(384, 3)
        chosen = create_strategy("probe", selection=selection).solve(model, xt, yt, xv, yv)
        fitted.append((chosen, model.head.weight.detach().clone(), model.head.bias.detach().clone()))
    (a, wa, ba), (b, wb, bb) = fitted
    assert a["C"] == b["C"] and 0.2 < b["val_loss"]
    assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-3)
    torch.testing.assert_close(wa, wb, atol=2e-3, rtol=0)
    torch.testing.assert_close(ba, bb, atol=2e-3, rtol=0)
