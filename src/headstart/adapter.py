"""``Adapter``: one strategy on one backbone, with a scikit-learn-like surface.

    >>> clf = Adapter("minilm-l6", "lora", rank=4).fit(texts, labels)
    >>> clf.predict(["what a film"])
    >>> clf.save("model/"); Adapter.load("model/").predict_proba(["what a film"])
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin

from .backbones import Backbone, resolve_backbone
from .backbones.hf_load import pin
from .data import Task, from_arrays, holdout
from .data.values import input_modality
from .errors import HeadstartError, NotFittedError
from .fetch import cache_dir
from .memory import refresh_memory
from .paths import given_path
from .strategies import Strategy, create_strategy, fit_model, prepare_model
from .strategies.runner import cached_source
from .train import AdaptedModel, Callback, FeatureCache, FitResult, ProgressBar, TrainConfig
from .train.loop import BatchSource, evaluate
from .warm_start import WarmStart, joined

__all__ = ["Adapter"]

log = logging.getLogger(__name__)

BackboneArg = str | Backbone | Callable[[bool], Backbone]


class Adapter(WarmStart, ClassifierMixin, BaseEstimator):
    """Adapt ``backbone`` to your labels with ``strategy``; a scikit-learn estimator.

    Every parameter is a constructor argument stored as given (``get_params``/``set_params``, ``clone``,
    ``Pipeline``, ``GridSearchCV`` and ``cross_val_score`` work); learned state ends in ``_``.

    Parameters
    ----------
    backbone:
        A registered name (``"minilm-l6"``, ``"mobilenetv2"``, ``"hf:<repo or dir>"``), a ``Backbone``, or a
        callable ``pretrained -> Backbone`` (needed for ``scratch`` with a custom backbone).
    strategy:
        Any registered strategy (``headstart.list_strategies()``: ``scratch``, ``scratch-small``, ``probe``,
        ``partial:K``, ``full``, ``lldr``, ``lora``, ``contrastive``...); ``headstart options STRATEGY`` lists
        its options.
    epochs, min_steps, batch_size, lr, head_lr, weight_decay, warmup, patience, min_epochs, monitor, batchnorm,
    grad_clip, seed, augment, cache_features, eval_batch_size, device, precision:
        How to train: see ``TrainConfig`` (``None`` means the strategy's default).
    strategy_options:
        The strategy's own options (``{"rank": 4}`` for lora, ``{"decay": 0.8}`` for lldr). Passing them as
        keywords (``Adapter("minilm-l6", "lora", rank=4)``) is the same and is what ``get_params`` reports.
    backbone_options:
        Passed to ``create_backbone`` (``image_size=128``, ``max_length=64``).
    feature_cache:
        A folder for the frozen-bottom cache, ``True`` (the user cache), a shared ``FeatureCache``, or
        ``None``/``False`` for memory only.
    callbacks, progress:
        Training callbacks; a progress bar over epochs.
    warm_start:
        As in scikit-learn: a fitted adapter's next ``fit`` starts from its current model (body, injected
        adapters and head) instead of a new one: continual learning, a second round on new labels. The
        strategy's guard (``guard="ewc"``, ``"lwf"``, ``"l2sp"``) then keeps what the model computed before this
        fit (its previous head's predictions). A head fitted in closed form (the probe, and LP-FT's first
        stage) keeps the rows of earlier classes this fit has no example of.
    incremental:
        What a continued fit does with classes the model has not learned: ``"class"`` (class-incremental
        learning: one head over every class seen, the new classes' rows added to it; the default) or ``"task"``
        (a new head for the new task, the old one kept with its classes under the earlier task's name,
        ``heads_``, saved and loaded with the model). The same classes again is domain-incremental learning:
        the head carries on.
    replay:
        Keep up to this many labelled examples per class after each fit (``memory_``, saved in the model
        folder) and rehearse them beside the next task's examples when the model continues (``warm_start``):
        class-balanced rehearsal (``headstart/memory.py``). 0: keep none.
    """

    def __init__(self, backbone: BackboneArg = "minilm-l6", strategy: str | Strategy = "probe", *,
                 epochs: int | None = None, min_steps: int | None = None, batch_size: int = 16,
                 lr: float | None = None, head_lr: float | None = None, weight_decay: float = 0.01,
                 warmup: float = 0.1, patience: int | None = None, min_epochs: int | None = None,
                 monitor: str | None = None, batchnorm: str | None = None, grad_clip: float | None = 1.0,
                 seed: int = 0, augment: bool = False,
                 cache_features: bool = True, eval_batch_size: int = 64, device: str = "auto",
                 precision: str = "auto", strategy_options: dict[str, Any] | None = None,
                 backbone_options: dict[str, Any] | None = None,
                 feature_cache: str | Path | FeatureCache | None | bool = True,
                 callbacks: Sequence[Callback] = (), progress: bool = False, warm_start: bool = False,
                 incremental: str = "class", replay: int = 0, **options: Any) -> None:
        self.backbone = backbone
        self.strategy = strategy
        self.epochs, self.min_steps, self.batch_size, self.lr, self.head_lr = epochs, min_steps, batch_size, lr, head_lr
        self.weight_decay, self.warmup, self.patience, self.min_epochs = weight_decay, warmup, patience, min_epochs
        self.monitor, self.batchnorm = monitor, batchnorm
        self.grad_clip, self.seed, self.augment, self.cache_features = grad_clip, seed, augment, cache_features
        self.eval_batch_size, self.device, self.precision = eval_batch_size, device, precision
        # keyword strategy options join strategy_options, so get_params (and clone) see them
        # (a non-dict strategy_options is kept as given and refused by fit, so set_params never raises)
        self.strategy_options = ({**(strategy_options or {}), **options}
                                 if options and isinstance(strategy_options, (dict, type(None))) else strategy_options)
        self.backbone_options = backbone_options
        self.feature_cache = feature_cache
        self.callbacks = callbacks
        self.progress = progress
        self.warm_start = warm_start
        self.incremental = incremental
        self.replay = replay

    def _train_config(self) -> TrainConfig:
        return TrainConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(TrainConfig)})

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, X: Task | Sequence[Any] | None, y: Sequence[Any] | None = None, *,
            val: Task | tuple[Sequence[Any], Sequence[Any]] | None = None,
            target: Task | Sequence[Any] | None = None, classes: Sequence[str] | None = None) -> Adapter:
        """Train on ``X`` (a ``Task``, or inputs with labels ``y``); validate on ``val``, or, for a strategy that keeps
        its best epoch by validation, on a quarter of each class held out of ``X`` (exact duplicates kept on one
        side; a strategy that chooses nothing on validation examples, such as the probe, trains on all of ``X``).
        ``target``: unlabelled examples of the deployment domain, for a domain-adaptation term (``coral``); their
        labels, if any, are never read.

        ``X=None`` with ``classes``: a strategy that learns nothing from labels (``zero-shot``), or makes its own
        examples from them (``contrastive`` with ``synthetic``), from the class names alone, e.g.
        ``Adapter("hf:openai/clip-vit-base-patch32", "zero-shot").fit(None, classes=["cat", "dog"])``."""
        self._check_params()
        if X is None:
            return self._fit_without_examples(classes)
        if classes is not None:
            raise HeadstartError("classes= is for a fit without examples (X=None, zero-shot); with examples the "
                                 "classes are their labels.")
        train = self._as_task(X, y, "X")
        continuing = self._continuing()
        if continuing:
            train = self._continued_task(train)
        sources = ({} if target is None else
                   {"target": self._unlabelled(target, "target", train.classes, train.modality)})
        cfg = self._train_config()
        if not isinstance(self.strategy_options, (dict, type(None))):
            raise HeadstartError(f"strategy_options must be a dict of the strategy's options (e.g. {{'rank': 4}}); "
                                 f"got {type(self.strategy_options).__name__}.")
        strategy = create_strategy(self.strategy, **(self.strategy_options or {}))
        val_task: Task | None
        if val is not None:
            val_task = self._as_task(*val, "val", min_classes=1) if isinstance(val, tuple) else val
            val_task = self._align_classes(val_task, train.classes)
        elif strategy.needs_validation(cfg.monitor):  # it keeps its best epoch by validation: hold some out
            tr, va = holdout(train, seed=int(self.seed))
            train, val_task = train.subset(tr), train.subset(va)
        else:  # it chooses nothing on validation examples (the probe's cross-validation): every example trains
            val_task = None
        learned = train if val_task is None else joined(train, val_task)  # every labelled example this fit sees
        memory = self._rehearsal(train) if continuing and self.replay else None
        if memory is not None:
            train, sources = joined(train, memory), {**sources, "replay": memory}
        train.require_classes()
        device = cfg.resolve_device()
        # The seed fixes everything the fit draws (a random init included) without touching the caller's
        # global random state: torch's generators are forked, seeded, and restored on the way out.
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            torch.manual_seed(cfg.seed)
            model, previous = self._model_for(strategy, train)
            prepare_model(model, strategy)
            callbacks = list(self.callbacks) + ([ProgressBar(strategy.spec)] if self.progress else [])
            self.result_: FitResult = fit_model(model, strategy, train, val_task, cfg, cache=self._cache(),
                                                callbacks=callbacks, sources=sources, previous=previous)
        model.fitted = True
        self.model_, self.strategy_, self.config_ = model.eval(), strategy, cfg
        self.classes_ = self._learned_classes(y, train, continuing)
        self.modality_ = train.modality
        self.task_name_ = train.name
        if self.replay:
            old = getattr(self, "memory_", None) if continuing else None
            self.memory_ = refresh_memory(old, learned, int(self.replay), int(self.seed))
        elif not continuing:
            self.__dict__.pop("memory_", None)
        return self

    def _fit_without_examples(self, classes: Sequence[str] | None) -> Adapter:
        from .strategies.runner import check_label_free, fit_without_examples

        if classes is None or isinstance(classes, str) or len(classes) < 2:
            raise HeadstartError("A fit without examples (X=None) needs the class names, at least two: "
                                 "classes=['cat', 'dog'].")
        names = tuple(str(c) for c in classes)
        if len(set(names)) != len(names):
            raise HeadstartError(f"The class names must differ; {names} repeats one.")
        if self._continuing():
            raise HeadstartError("warm_start continues a fitted model on new examples; a fit without examples "
                                 "builds a new one: set warm_start=False.")
        cfg = self._train_config()
        strategy = create_strategy(self.strategy, **(self.strategy_options or {}))
        check_label_free(strategy)  # before a backbone is loaded
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            model = self._new_model(strategy, len(names), None)
            prepare_model(model, strategy)
            self.result_ = fit_without_examples(model, strategy, names, cfg)
        model.fitted = True
        self.model_, self.strategy_, self.config_ = model.eval(), strategy, cfg
        self.classes_ = np.asarray(names)
        self.modality_ = model.backbone.modality
        self.task_name_ = "classes"
        return self

    def _new_model(self, strategy: Strategy, n_classes: int, modality: str | None) -> AdaptedModel:
        """A new model on a freshly built backbone (checked against the data's ``modality`` when there are data)."""
        name = pin(self.backbone)  # a hub id: the commit it resolves to now, which the saved model then names
        backbone = resolve_backbone(name, strategy.pretrained, **(self.backbone_options or {}))
        self.backbone_name_ = name if isinstance(name, str) else None
        if modality is not None and backbone.modality != modality:
            raise HeadstartError(f"{backbone.name} is a {backbone.modality} model but the data are "
                                 f"{modality}s; pick a {modality} backbone (`headstart backbones`).")
        self.backbone_identity_ = backbone.identity()
        self.heads_ = {}
        return AdaptedModel(backbone, n_classes)

    def _model_for(self, strategy: Strategy, train: Task) -> tuple[AdaptedModel, list[torch.nn.Module]]:
        """A new model on a freshly built backbone, or (``warm_start``) the fitted one continued (``warm_start.py``);
        and the frozen head(s) of what it learned before, which guards keep."""
        if self._continuing():
            return self._continued_model(train)
        return self._new_model(strategy, len(train.classes), train.modality), []

    def adapt(self, target: Task | Sequence[Any], method: str = "tent", *,
              source: Task | Sequence[Any] | None = None) -> Adapter:
        """Adjust this fitted model, in place, to unlabelled examples of the deployment domain (test-time adaptation,
        ``strategies/test_time.py``): ``"bn-adapt"`` recomputes BatchNorm statistics on them, ``"tent"`` trains the
        normalisation layers' scale and shift to make its predictions on them confident. ``source``: examples of the
        training data (labels not read); a conv net whose BatchNorm stayed frozen in training (the default for a
        pretrained body) needs them, to map the target's statistics onto those it was trained around. Returns
        ``self``; the step is in ``result_.notes``. A model adapted this way predicts; to save one, adapt it again
        after loading."""
        from .strategies.runner import run_test_time
        from .strategies.test_time import test_time_stage

        self._check_fitted()
        stage = test_time_stage(method)
        target_task = self._unlabelled(target, "target", self.classes_, self.modality_)
        source_task = None if source is None else self._unlabelled(source, "source", self.classes_, self.modality_)
        model = self.model_
        frozen = self.config_.resolve_batchnorm(model.backbone.pretrained) == "frozen"
        if source_task is None and frozen and any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                                                  for m in model.backbone.modules()):
            raise HeadstartError(f"{method} maps the target's BatchNorm statistics onto those the model was trained "
                                 f"around, and {model.backbone.name}'s stayed frozen at its pretraining statistics "
                                 "while it trained: pass examples of the training data as source= (headstart "
                                 "predict --source FILE); their labels are not read.")
        with torch.random.fork_rng(devices=[]):
            run_test_time(model, stage, target_task, self.config_, next(model.parameters()).device, self.result_,
                          source_task)
        model.eval()
        self.adapted_ = method
        return self

    # -- predicting ----------------------------------------------------------------------------
    def predict_proba(self, X: Task | Sequence[Any]) -> np.ndarray:
        """Class probabilities, columns in ``classes_`` order.

        For a ``Task`` (e.g. a test set scored again and again in a race), the output of blocks that
        never trained is taken from the feature cache, exactly as the uncached path would compute it.
        """
        self._check_fitted()
        inputs = X.inputs if isinstance(X, Task) else self._inputs(X, "predict")
        if len(inputs) == 0:
            return np.zeros((0, len(self.classes_)))
        if not isinstance(X, Task):
            input_modality(inputs, "X", self.modality_)  # a list of lists or a None is named, never opened as a path
        model, device = self.model_, next(self.model_.parameters()).device
        boundary = getattr(self, "result_", None) and self.result_.boundary
        if isinstance(X, Task) and boundary and self.feature_cache is not False:
            source = cached_source(model, self._cache(), boundary, X, batch_size=self.config_.eval_batch_size,
                                   device=device)
        else:
            boundary = 0
            source = BatchSource(inputs, np.zeros(len(inputs), dtype=np.int64), model.backbone.preprocess)
        _, _, logits = evaluate(model, source, boundary, device, self.config_.eval_batch_size)
        return torch.softmax(logits.double(), dim=1).numpy()

    def predict(self, X: Task | Sequence[Any]) -> np.ndarray:
        self._check_fitted()
        return self.classes_[self.predict_proba(X).argmax(1)]

    def score(self, X: Task | Sequence[Any], y: Sequence[Any] | None = None) -> float:
        """Accuracy on a labelled ``Task`` (or inputs and labels)."""
        task = self._align_classes(self._as_task(X, y, "X", min_classes=1), tuple(str(c) for c in self.classes_))
        return float((self.predict(task) == self.classes_[task.labels]).mean())

    # -- persistence ---------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        from .persist import save_adapter

        self._check_fitted()
        if getattr(self, "adapted_", None):
            raise HeadstartError(f"This model was adapted at test time ({self.adapted_}) to one set of target "
                                 "examples; save it before adapting, and adapt it again after loading.")
        return save_adapter(self, given_path(folder, "The folder to save in"))

    def merge_adapters(self) -> Adapter:
        """A copy with every parameter-efficient update folded into its base weights (LoRA: W + B·A·alpha/r;
        IA3: W scaled): the same predictions from the plain architecture; ``save`` then keeps the adapted
        blocks in full."""
        from .export import merge_adapters

        self._check_fitted()
        merged = copy.deepcopy(self)
        if merge_adapters(merged.model_) == 0:
            raise HeadstartError(f"This model ({self.strategy_.spec}) has no adapters to merge: nothing in it is a "
                                 "PEFT layer that folds into the weights; export it as it is (`headstart export "
                                 "--format onnx`).")
        merged.merged_ = True
        return merged

    merge_lora = merge_adapters  # the name it had when LoRA was the only method

    def export_onnx(self, folder: str | Path, *, examples: Sequence[Any] | None = None,
                    atol: float = 1e-4) -> dict[str, Any]:
        """ONNX for ONNX Runtime (``headstart.deploy.OnnxClassifier``), checked on ``examples``; see ``export``."""
        from .export import export_onnx

        return export_onnx(self, folder, examples=examples, atol=atol)

    @classmethod
    def load(cls, folder: str | Path, backbone: BackboneArg | None = None) -> Adapter:
        """Rebuild from ``save``; ``backbone`` is only needed when it was not a registered name."""
        from .persist import load_adapter

        return load_adapter(cls, given_path(folder, "The model folder"), backbone)

    # -- helpers -------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError("This Adapter is not fitted yet; call fit(...) or Adapter.load(folder) first.")

    def _cache(self) -> FeatureCache:
        if isinstance(self.feature_cache, FeatureCache):
            return self.feature_cache
        if self.feature_cache is True:
            return FeatureCache(cache_dir() / "features")
        return FeatureCache(None if self.feature_cache in (None, False) else self.feature_cache)

    def _check_params(self) -> None:
        """The parameters ``TrainConfig`` and the strategy do not own, by type (``fit`` checks, as scikit-learn's
        estimators do: ``__init__`` and ``set_params`` only store)."""
        wanted = {"strategy": ((str, Strategy), "a strategy name (e.g. 'lora') or a Strategy"),
                  "backbone_options": ((dict, type(None)), "a dict such as {'max_length': 64}, or None"),
                  "feature_cache": ((str, Path, FeatureCache, bool, type(None)), "a folder, True, False or a "
                                    "FeatureCache"),
                  "callbacks": ((list, tuple), "a list of headstart.train.Callback"),
                  "progress": ((bool,), "True or False"), "warm_start": ((bool,), "True or False"),
                  "incremental": ((str,), "'class' or 'task'")}
        for name, (types, words) in wanted.items():
            value = getattr(self, name)
            if not isinstance(value, types):
                raise HeadstartError(f"The {name!r} parameter of Adapter must be {words}. Got {value!r} instead.")
        if isinstance(self.replay, bool) or not isinstance(self.replay, (int, np.integer)) or self.replay < 0:
            raise HeadstartError(f"The 'replay' parameter of Adapter must be a non-negative integer (examples kept per "
                                 f"class). Got {self.replay!r} instead.")
        if self.incremental not in ("class", "task"):
            raise HeadstartError(f"The 'incremental' parameter of Adapter must be 'class' or 'task'. Got "
                                 f"{self.incremental!r} instead.")
        bad = [c for c in self.callbacks if not isinstance(c, Callback)]
        if bad:
            raise HeadstartError(f"The 'callbacks' parameter of Adapter must be a list of headstart.train.Callback. "
                                 f"Got {bad[0]!r} in it.")

    @staticmethod
    def _inputs(X: Any, what: str) -> Any:
        if isinstance(X, (str, bytes)):
            raise HeadstartError(f"{what} takes a list of inputs; wrap a single text as [text].")
        if not hasattr(X, "__len__") or not hasattr(X, "__getitem__"):
            raise HeadstartError(f"{what} must be a list of texts or images, an array of images, or a Task; got "
                                 f"{type(X).__name__}.")
        return X

    @staticmethod
    def _as_task(X: Any, y: Any, what: str, min_classes: int = 2) -> Task:
        if isinstance(X, Task):
            if y is not None:
                raise HeadstartError(f"{what} is a Task, which carries its labels; do not pass y as well.")
            return X
        if y is None:
            raise HeadstartError(f"Adapter requires y to be passed, but the target y is None: {what} needs labels "
                                 "(y=...), or pass a Task (headstart.data.load_task).")
        X = Adapter._inputs(X, what)
        if isinstance(y, (str, bytes)) or not hasattr(y, "__len__"):
            raise HeadstartError(f"y must be one label per example (a list or array); got {type(y).__name__}.")
        if len(X) != len(y):
            raise HeadstartError(f"{what} has {len(X)} inputs but {len(y)} labels.")
        return from_arrays(X, y, name=what, min_classes=min_classes)

    @staticmethod
    def _unlabelled(X: Task | Sequence[Any], name: str, classes: Sequence[Any], modality: str) -> Task:
        """Unlabelled examples (a ``Task`` or inputs) of ``modality`` as a task of ``classes`` (every label 0: never
        read)."""
        inputs = X.inputs if isinstance(X, Task) else X
        if isinstance(inputs, str) or not hasattr(inputs, "__len__") or len(inputs) == 0:
            raise HeadstartError(f"{name} takes a non-empty list of unlabelled inputs (or a Task).")
        inputs = inputs if isinstance(inputs, np.ndarray) else list(inputs)
        input_modality(inputs, name, modality)
        return Task(inputs, np.zeros(len(inputs), dtype=np.int64), tuple(str(c) for c in classes), modality, name,
                    getattr(X, "source", name))

    @staticmethod
    def _align_classes(task: Task, classes: tuple[str, ...]) -> Task:
        """Re-express ``task``'s labels in ``classes``; an unknown label is an error naming it."""
        if task.classes == classes:
            return task
        unknown = sorted(set(task.classes[i] for i in np.unique(task.labels)) - set(classes))
        if unknown:
            raise HeadstartError(f"Labels {unknown[:5]} do not occur in the training data (classes: {list(classes)}).")
        index = {c: i for i, c in enumerate(classes)}
        labels = np.array([index[task.classes[i]] for i in task.labels])
        return Task(task.inputs, labels, classes, task.modality, task.name, task.source, task.notes)
