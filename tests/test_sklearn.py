"""The scikit-learn contract: parameters in the constructor, clone, Pipeline, GridSearchCV, cross_val_score."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline

from headstart import Adapter, TrainConfig
from headstart.errors import NotFittedError

from .conftest import tiny_backbone


def text(pretrained):
    return tiny_backbone("minilm-l6", pretrained)


def _data():
    pos = ["good movie", "great film", "love this fun plot", "a great actor", "very good", "so fun"]
    neg = ["bad movie", "awful film", "hate this dull plot", "a bad actor", "very awful", "so dull"]
    X = [t for pair in zip(pos * 3, neg * 3) for t in pair]
    return X, np.array([1, 0] * (len(X) // 2))


def test_every_training_option_is_a_constructor_parameter_with_the_same_default():
    signature = inspect.signature(Adapter.__init__).parameters
    for f in dataclasses.fields(TrainConfig):
        assert f.name in signature and signature[f.name].default == f.default, f.name


def test_get_params_set_params_and_clone_keep_every_option():
    clf = Adapter(text, "lora", epochs=3, lr=1e-3, rank=4, feature_cache=None)
    params = clf.get_params()
    assert params["epochs"] == 3 and params["lr"] == 1e-3 and params["strategy_options"] == {"rank": 4}
    copy = clone(clf)
    assert copy.get_params()["strategy_options"] == {"rank": 4} and copy.epochs == 3
    copy.set_params(epochs=5, strategy_options={"rank": 2})
    assert (copy.epochs, copy.strategy_options, clf.epochs) == (5, {"rank": 2}, 3)
    assert Adapter().get_params()["strategy_options"] is None  # stored as given


def test_labels_come_back_with_their_original_type():
    X, y = _data()
    clf = Adapter(text, "probe", feature_cache=None).fit(X, y)
    pred = clf.predict(X)
    assert pred.dtype.kind == "i" and set(pred) <= {0, 1} and clf.classes_.tolist() == [0, 1]
    assert clf.score(X, y) >= 0.75
    with pytest.raises(NotFittedError):
        Adapter(text).predict(X)


def test_pipeline_grid_search_and_cross_validation():
    X, y = _data()
    pipe = Pipeline([("clf", Adapter(text, "probe", feature_cache=None))])
    assert pipe.fit(X, y).score(X, y) >= 0.75
    search = GridSearchCV(Adapter(text, "full", epochs=2, feature_cache=None, precision="fp32"),
                          {"lr": [1e-4, 3e-3]}, cv=2).fit(X, y)
    assert search.best_params_["lr"] in (1e-4, 3e-3) and len(search.cv_results_["mean_test_score"]) == 2
    scores = cross_val_score(Adapter(text, "probe", feature_cache=None), X, y, cv=3)
    assert len(scores) == 3 and scores.mean() >= 0.6
