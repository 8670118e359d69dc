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


# check_estimator's checks that cannot apply: they generate numeric feature matrices, and an Adapter's inputs
# are texts or images (a numeric row is neither), or they test the **options keyword shortcut.
NUMERIC_INPUT = "sklearn's generated numeric matrices are not texts or images, the only inputs a backbone takes"
EXPECTED_FAILED = {name: NUMERIC_INPUT for name in (
    "check_fit_score_takes_y", "check_estimators_overwrite_params", "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self", "check_readonly_memmap_input", "check_n_features_in_after_fitting",
    "check_positive_only_tag_during_fit", "check_estimators_dtypes", "check_complex_data", "check_dtype_object",
    "check_estimators_empty_data_messages", "check_pipeline_consistency", "check_estimators_nan_inf",
    "check_estimator_sparse_array", "check_estimator_sparse_matrix", "check_estimators_pickle",
    "check_f_contiguous_array_estimator", "check_classifier_data_not_an_array", "check_classifiers_classes",
    "check_classifiers_train", "check_supervised_y_2d", "check_methods_sample_order_invariance",
    "check_methods_subset_invariance", "check_fit2d_1feature", "check_dict_unchanged", "check_fit_idempotent",
    "check_fit_check_is_fitted", "check_n_features_in", "check_fit1d", "check_fit2d_predict1d")}
EXPECTED_FAILED["check_do_not_raise_errors_in_init_or_set_params"] = (
    "it sets the **options keyword shortcut as if it were a parameter; get_params reports those options in "
    "strategy_options, which set_params accepts")


def test_check_estimator_passes_every_check_that_applies():
    from sklearn.utils.estimator_checks import check_estimator

    results = check_estimator(Adapter(text, "probe", feature_cache=None), on_fail=None,
                              expected_failed_checks=EXPECTED_FAILED)
    status = {}
    for r in results:
        status.setdefault(r["check_name"], set()).add(r["status"])
    unexpected = {name: s for name, s in status.items() if name not in EXPECTED_FAILED and s - {"passed", "skipped"}}
    assert not unexpected
    for name in ("check_estimator_cloneable", "check_no_attributes_set_in_init", "check_get_params_invariance",
                 "check_set_params", "check_parameters_default_constructible", "check_estimators_unfitted",
                 "check_classifiers_one_label", "check_requires_y_none", "check_supervised_y_no_nan",
                 "check_classifiers_regression_target", "check_decision_proba_consistency", "check_mixin_order"):
        assert status.get(name) == {"passed"}, name


def test_labels_that_are_not_classes_are_refused_in_one_sentence():
    from headstart.errors import HeadstartError

    X, _ = _data()
    n = len(X) // 2
    for y, message in (([0.5, 1.5] * n, "Labels are continuous"), ([0.0, float("nan")] * n, "labels are missing"),
                       (None, "requires y to be passed"), (np.zeros((2 * n, 2)), "one per example")):
        with pytest.raises(HeadstartError, match=message):
            Adapter(text, "probe", feature_cache=None).fit(X, y)
    whole = Adapter(text, "probe", feature_cache=None).fit(X, [1.0, 0.0] * n)  # whole numbers are classes
    assert whole.classes_.tolist() == [0.0, 1.0] and whole.predict(X).dtype.kind == "f"
