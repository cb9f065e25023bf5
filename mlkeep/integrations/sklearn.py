"""scikit-learn autologging: every `fit` recorded, with no bookkeeping by hand.

`autolog()` patches `fit`, `fit_transform` and `fit_predict` of every estimator
class (every subclass of `BaseEstimator`, those imported later included, through
a hook on `BaseEstimator.__init_subclass__`), plus `predict`, `predict_proba`,
`transform` and `score`, plus the common functions of `sklearn.metrics`. Only the
outermost call acts: the fits a Pipeline or a search makes inside its own fit
record nothing of their own.

An outermost fit records, in the active run or in a new one it starts and ends:
the training Dataset (described once per content), the Model (algorithm, every
`get_params(deep=True)` hyperparameter with `nonDefault` and `trackedByUser`,
the transforms graph, the pickled estimator), the fit duration, training scores,
and for GridSearchCV / RandomizedSearchCV one child run per candidate.
`predict` / `predict_proba` / `transform` of a model fitted so log a Prediction;
`score` and metric functions on its predictions log an Evaluation.

Never changes what a patched call returns or raises: tracking failures become an
`AutologWarning` and a run tag `autolog.skipped.<what>`.

The training thread only snapshots (`_snapshot.py`) and queues: the records are
written by a background recorder (`_recorder.py`), in order, and are all in the
store when `flush()`, a run's `flush()` or end, the end of a `with autolog():`
block or interpreter exit returns. A run autologging started for a fit ends when
its records are written.

Limits: metric functions are recognised when looked up on `sklearn.metrics` after
`autolog()` (a `from sklearn.metrics import f1_score` made before it keeps the
original function); fits in joblib worker processes are not seen (their
estimators are the search's internals, which are not logged anyway).
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from mlkeep.integrations import _sklearn_record as record
from mlkeep.integrations._common import (
    IdentityMap,
    classification_scores,
    log_dataset,
    regression_scores,
    skipped,
    skipping,
)
from mlkeep.integrations._recorder import recorder
from mlkeep.integrations._snapshot import ModelSnapshot, frozen_copy

if TYPE_CHECKING:
    from mlkeep.store import Store
    from mlkeep.tracking.active_run import ActiveRun

__all__ = ["autolog", "Autolog", "flush", "tracked_model"]

FIT_METHODS = ("fit", "fit_transform", "fit_predict")
PREDICT_METHODS = ("predict", "predict_proba", "transform")
SCORE_METHODS = ("score",)
METRICS = {
    # function name -> the standard score it equals when called with default arguments
    "accuracy_score": "accuracy", "precision_score": None, "recall_score": None, "f1_score": None,
    "fbeta_score": None, "balanced_accuracy_score": None, "confusion_matrix": None, "classification_report": None,
    "precision_recall_fscore_support": None, "matthews_corrcoef": None, "roc_auc_score": None, "log_loss": None,
    "mean_absolute_error": "mae", "mean_squared_error": "mse", "r2_score": "r2", "root_mean_squared_error": None,
    "mean_absolute_percentage_error": None, "median_absolute_error": None, "explained_variance_score": None,
}
Y_PRED_NAMES = ("y_pred", "y_score", "y_proba", "y_prob")


@dataclass
class _Config:
    store: Store | None = None
    experiment: str = "Default"
    log_models: bool = True
    log_datasets: bool = True
    log_predictions: bool = True
    log_evaluations: bool = True
    log_training_score: bool = True
    max_tuning_runs: int | None = None


@dataclass
class TrackedModel:
    """What autologging knows about a fitted estimator: its Model, run, dataset and store.

    The ids are chosen when `fit` returns; the records behind them are written by the
    background recorder (`tracked_model()` and `flush()` wait for it).
    """

    model_id: str
    run_id: str
    dataset_id: str | None
    kind: str | None  # "classifier", "regressor" or None
    db: Any
    objects: Any


@dataclass
class _TrackedPrediction:
    """A prediction autologging recorded; its ids are filled in when the recorder has written it."""

    model: TrackedModel
    method: str
    prediction_id: str | None = None
    dataset_id: str | None = None
    evaluated: set[tuple[int, str]] = field(default_factory=set)


class _State(threading.local):
    depth = 0
    captured: list[Any] | None = None


_config: _Config | None = None
_state = _State()
_patches: list[tuple[Any, str, Any, bool]] = []  # (owner, attribute, original, was in owner.__dict__)
_patched_classes: set[type] = set()
_patched_attrs: set[tuple[type, str]] = set()
_lock = threading.RLock()
_models: IdentityMap[TrackedModel] = IdentityMap()
_predictions: IdentityMap[_TrackedPrediction] = IdentityMap()


class Autolog:
    """The handle `autolog()` returns: patching is on until `disable()` or the end of a `with` block."""

    def __enter__(self) -> Autolog:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.disable()

    def disable(self) -> None:
        """Undo every patch (estimators and metric functions are scikit-learn's own again), then `flush()`."""
        _unpatch()
        recorder.settle()

    @property
    def enabled(self) -> bool:
        return _config is not None


def autolog(
    *,
    store: Store | None = None,
    experiment: str = "Default",
    log_models: bool = True,
    log_datasets: bool = True,
    log_predictions: bool = True,
    log_evaluations: bool = True,
    log_training_score: bool = True,
    max_tuning_runs: int | None = None,
    disable: bool = False,
) -> Autolog:
    """Record every scikit-learn fit from now on (see the module docstring for what is recorded).

    Runs go to the active run, else to a new run in `experiment` of `store` (default:
    `mlkeep.open()`'s store). `max_tuning_runs` keeps only the best N candidates of a
    search as child runs. Use as `with mlkeep.sklearn.autolog(): ...` to undo the
    patching at the end of the block; `autolog(disable=True)` undoes it too.
    Calling it again while on changes the settings.
    """
    global _config
    if disable:
        Autolog().disable()
        return Autolog()
    with _lock:
        _config = _Config(store=store, experiment=experiment, log_models=log_models, log_datasets=log_datasets,
                          log_predictions=log_predictions, log_evaluations=log_evaluations,
                          log_training_score=log_training_score, max_tuning_runs=max_tuning_runs)
        if not _patches:
            _patch()
            from mlkeep.tracking import environment

            environment.prefetch()  # the first fit's run then does not wait for git and the package list
    return Autolog()


def tracked_model(estimator: Any) -> TrackedModel | None:
    """The Model autologging recorded for this fitted estimator object, if any (written when this returns)."""
    found = _models.get(estimator)
    if found is not None:
        recorder.settle()
    return found


def flush() -> None:
    """Return when everything autologging recorded so far is in the store.

    Fits are recorded in a background thread; a run's `flush()` and end, the
    end of a `with autolog():` block and interpreter exit wait for it too.
    Problems the background met are issued here as `AutologWarning`s.
    """
    recorder.settle()


# -- patching -------------------------------------------------------------------------------------------------


def _patch() -> None:
    from sklearn.base import BaseEstimator

    stack: list[type] = [BaseEstimator]
    seen: set[type] = set()
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.add(cls)
        _patch_class(cls)
        stack.extend(cls.__subclasses__())
    _install_subclass_hook(BaseEstimator)
    _patch_metrics()


def _patch_class(cls: type) -> None:
    """Patch the methods `cls` uses, where they are defined: mixins such as ClassifierMixin included."""
    if cls in _patched_classes:
        return
    _patched_classes.add(cls)
    for name in FIT_METHODS + PREDICT_METHODS + SCORE_METHODS:
        owner = next((c for c in cls.__mro__ if name in c.__dict__), object)
        if owner is object or (owner, name) in _patched_attrs:
            continue
        _patched_attrs.add((owner, name))
        original = owner.__dict__[name]
        if getattr(original, "_mlkeep_autolog", False):
            continue
        wrapper = _fit_wrapper if name in FIT_METHODS else _score_wrapper if name in SCORE_METHODS else _predict_wrapper
        replacement = _wrap(original, name, wrapper)
        if replacement is not None:
            _patches.append((owner, name, original, True))
            setattr(owner, name, replacement)


def _wrap(original: Any, name: str, make: Any) -> Any:
    """A function wrapping a plain method, or a descriptor wrapping `available_if`-style descriptors.

    Descriptors are kept as descriptors so `hasattr(pipeline, "predict_proba")` answers as before.
    """
    if isinstance(original, (staticmethod, classmethod)):
        return None
    if callable(original) and hasattr(original, "__code__"):
        wrapped = make(original, name)
        wrapped._mlkeep_autolog = True
        return wrapped
    if hasattr(original, "__get__"):
        return _WrappedDescriptor(original, name, make)
    return None


class _WrappedDescriptor:
    _mlkeep_autolog = True

    def __init__(self, original: Any, name: str, make: Any) -> None:
        self.original = original
        self.call = make(lambda obj, *a, **k: original.__get__(obj, type(obj))(*a, **k), name)

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        bound = self.original.__get__(obj, owner)  # raises AttributeError where the original would
        if obj is None:
            return bound
        call = self.call

        def method(*args: Any, **kwargs: Any) -> Any:
            return call(obj, *args, **kwargs)

        return functools.update_wrapper(method, bound)


def _install_subclass_hook(base: type) -> None:
    """Patch classes defined (or imported) after `autolog()` as they are created."""
    previous = base.__dict__.get("__init_subclass__")

    def __init_subclass__(cls: type, **kwargs: Any) -> None:
        if previous is not None:
            previous.__get__(None, cls)(**kwargs)
        else:
            super(base, cls).__init_subclass__(**kwargs)  # type: ignore[misc,arg-type]
        if _config is not None:
            _patch_class(cls)

    _patches.append((base, "__init_subclass__", previous, previous is not None))
    base.__init_subclass__ = classmethod(__init_subclass__)  # type: ignore[assignment]


def _patch_metrics() -> None:
    import sklearn.metrics as metrics

    for name in METRICS:
        original = getattr(metrics, name, None)
        if original is None or getattr(original, "_mlkeep_autolog", False):
            continue
        wrapped = _metric_wrapper(original, name)
        wrapped._mlkeep_autolog = True  # type: ignore[attr-defined]
        _patches.append((metrics, name, original, True))
        setattr(metrics, name, wrapped)


def _unpatch() -> None:
    global _config
    with _lock:
        _config = None
        for owner, name, original, existed in reversed(_patches):
            if existed:
                setattr(owner, name, original)
            else:
                try:
                    delattr(owner, name)
                except AttributeError:
                    pass
        _patches.clear()
        _patched_classes.clear()
        _patched_attrs.clear()


# -- the wrappers -----------------------------------------------------------------------------------------------


def _fit_wrapper(original: Any, method: str) -> Any:
    @functools.wraps(original)
    def fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        config = _config
        if config is None or _state.depth:
            _state.depth += 1
            try:
                return original(self, *args, **kwargs)
            finally:
                _state.depth -= 1
        _state.depth += 1
        try:
            return _tracked_fit(config, original, method, self, args, kwargs)
        finally:
            _state.depth -= 1

    return fit


def _tracked_fit(config: _Config, original: Any, method: str, est: Any, args: tuple, kwargs: dict) -> Any:
    run, created = _run_for(config, est)
    start = time.perf_counter()
    try:
        result = original(est, *args, **kwargs)
    except BaseException as exc:
        if run is not None and created:
            with skipping(None, "run"):
                run.__exit__(type(exc), exc, exc.__traceback__)
        raise
    duration = time.perf_counter() - start
    if run is None:
        return result
    fit = None
    try:
        fit = _capture(config, run, created, est, method, args, kwargs, duration)
    except Exception as exc:  # this fit goes unrecorded (said in a tag and a warning); the fit itself stands
        skipped(run, "fit", exc)
    if fit is not None and fit.snapshot is not None:
        if created:
            run._leave()  # no longer this thread's active run; the recorder ends it once its records are written
        _submit(_record_fit, fit)
        return result
    try:  # an estimator pickle refuses: recorded here, from the live object
        if fit is not None:
            _record_fit(fit)
    finally:
        if created:
            with skipping(None, "run"):
                run.__exit__(None, None, None)
    return result


def _run_for(config: _Config, est: Any) -> tuple[ActiveRun | None, bool]:
    """The active run, else a new one entered as active; (None, False) when no store can be had."""
    import mlkeep

    current = mlkeep.active_run()
    if current is not None:
        return current, False
    try:
        store = config.store or mlkeep._default_store()
        run = store.start_run(config.experiment, name=type(est).__name__, tags={"autolog": "sklearn"})
        return run.__enter__(), True
    except Exception as exc:
        skipped(None, "run", exc)
        return None, False


@dataclass
class _Fit:
    """One outermost fit as the training thread hands it to the recorder: snapshots, never live objects.

    `live` is the estimator itself only when it cannot be snapshotted; it is then recorded at once.
    """

    config: _Config
    run: ActiveRun
    created: bool
    method: str
    duration: float
    X: Any
    y: Any
    tracked: TrackedModel | None
    snapshot: ModelSnapshot | None
    live: Any = None

    def estimator(self) -> Any:
        return self.snapshot.load() if self.snapshot is not None else self.live


def _capture(
    config: _Config, run: ActiveRun, created: bool, est: Any, method: str, args: tuple, kwargs: dict, duration: float
) -> _Fit:
    """What the records of this fit need, taken now (the caller may change `est` or its data next)."""
    from mlkeep.ids import new_id

    X = args[0] if args else kwargs.get("X")
    y = args[1] if len(args) > 1 else kwargs.get("y", kwargs.get("Y"))
    tracked = None
    if config.log_models:
        tracked = TrackedModel(new_id(), run.id, None, record.kind_of(est), run.db, run.objects)
        _models.put(est, tracked)  # predictions may point to the model before the recorder has written it
    try:
        snapshot = ModelSnapshot(est)
        X_copy, y_copy = frozen_copy(X), frozen_copy(y)
    except Exception:  # unpicklable, or no memory for copies: recorded now from the live objects
        return _Fit(config, run, created, method, duration, X, y, tracked, None, live=est)
    return _Fit(config, run, created, method, duration, X_copy, y_copy, tracked, snapshot)


def _record_fit(fit: _Fit) -> None:
    """Write everything a fit produced (in the recorder; inline for an estimator without a snapshot)."""
    config, run = fit.config, fit.run
    try:
        est = fit.estimator()
        X, y = fit.X, fit.y
        run.log_metric("fit_duration_s", fit.duration)
        dataset = None
        if config.log_datasets and X is not None:
            with skipping(run, "dataset"):
                dataset = log_dataset(run.db, run.objects, X, y, run_id=run.id)
        hyper = None
        with skipping(run, "hyperparameters"):
            user = {} if fit.created else run.info.params
            hyper = record.deep_hyperparameters(est, user)
            texts = {k: v for k, v in record.param_texts(hyper).items() if k not in user}
            try:
                run.log_params(texts)
            except Exception as exc:  # e.g. a second fit in one run with other values: the Model keeps them
                skipped(run, "params", exc)
        if fit.tracked is not None:
            with skipping(run, "model"):
                fit.tracked.dataset_id = dataset.id if dataset else None
                record.record_model(run, est, dataset, hyper, model_id=fit.tracked.model_id,
                                    payload=fit.snapshot.payload() if fit.snapshot is not None else None)
        if config.log_training_score and fit.method == "fit":
            with skipping(run, "training_score"):
                record.training_scores(run, est, X, y)
        results = getattr(est, "cv_results_", None)
        if isinstance(results, dict) and "params" in results:  # GridSearchCV, RandomizedSearchCV, halving searches
            with skipping(run, "search"):
                record.record_search(run, est, run.info.experiment, dataset, config.max_tuning_runs)
    except Exception as exc:  # each part is guarded; this is the last line of defence
        skipped(run, "fit", exc)
    finally:
        if fit.created and fit.snapshot is not None:
            with skipping(None, "run"):
                run.end()


def _submit(job: Any, *args: Any) -> None:
    """Queue `job(*args)` for the recorder, where patched scikit-learn calls act as the originals."""

    def run_job() -> None:
        _state.depth += 1
        try:
            job(*args)
        finally:
            _state.depth -= 1

    recorder.submit(run_job)


def _predict_wrapper(original: Any, method: str) -> Any:
    @functools.wraps(original)
    def predict(self: Any, *args: Any, **kwargs: Any) -> Any:
        config = _config
        if config is None or _state.depth:
            _state.depth += 1
            try:
                result = original(self, *args, **kwargs)
            finally:
                _state.depth -= 1
            if _state.captured is not None and method == "predict" and not _state.captured:
                _state.captured.append(result)
            return result
        _state.depth += 1
        try:
            result = original(self, *args, **kwargs)
            tracked = _models.get(self)
            if tracked is not None and config.log_predictions:
                with skipping(_current_run(), f"prediction.{method}"):
                    _record_prediction(tracked, args[0] if args else kwargs.get("X"), result, method)
            return result
        finally:
            _state.depth -= 1

    return predict


def _record_prediction(tracked: TrackedModel, X: Any, result: Any, method: str) -> _TrackedPrediction:
    """Remember `result` as a prediction of `tracked` now; the recorder writes it (and fills in its ids)."""
    run = _current_run()
    entry = _TrackedPrediction(tracked, method)
    _predictions.put(result, entry)
    _submit(_write_prediction, entry, frozen_copy(X), frozen_copy(result), run)
    return entry


def _write_prediction(entry: _TrackedPrediction, X: Any, result: Any, run: ActiveRun | None) -> None:
    from mlkeep.tracking import predictions

    model = entry.model
    with skipping(run, f"prediction.{entry.method}"):
        dataset = log_dataset(model.db, model.objects, X, run_id=None)
        p = predictions.log_predictions(model.db, model.objects, model.model_id, dataset, result,
                                        name=entry.method, run_id=run.id if run else model.run_id)
        entry.dataset_id, entry.prediction_id = dataset.id, p.id


def _score_wrapper(original: Any, method: str) -> Any:
    @functools.wraps(original)
    def score(self: Any, *args: Any, **kwargs: Any) -> Any:
        config = _config
        tracked = _models.get(self) if config is not None and not _state.depth else None
        if tracked is None or not config or not config.log_evaluations:
            _state.depth += 1
            try:
                return original(self, *args, **kwargs)
            finally:
                _state.depth -= 1
        _state.depth += 1
        _state.captured = []
        try:
            result = original(self, *args, **kwargs)
            captured = _state.captured
            _state.captured = None
            X = args[0] if args else kwargs.get("X")
            y = args[1] if len(args) > 1 else kwargs.get("y")
            _record_score(tracked, X, y, captured[0] if captured else None, result)
            return result
        finally:
            _state.captured = None
            _state.depth -= 1

    return score


def _record_score(tracked: TrackedModel, X: Any, y: Any, predicted: Any, value: Any) -> None:
    with skipping(_current_run(), "evaluation"):
        extra = {"score": float(value)}
        if predicted is not None and y is not None:
            _evaluate(_record_prediction(tracked, X, predicted, "predict"), y, predicted, extra, name="score")
        else:  # a score that did not go through predict: the value alone
            _submit(_write_score, tracked, frozen_copy(X), extra, _current_run())


def _write_score(tracked: TrackedModel, X: Any, scores: dict[str, float], run: ActiveRun | None) -> None:
    from mlkeep.tracking import predictions

    with skipping(run, "evaluation"):
        dataset = log_dataset(tracked.db, tracked.objects, X, run_id=None)
        predictions.log_evaluation(tracked.db, tracked.objects, tracked.model_id, dataset, scores, name="score",
                                   run_id=run.id if run else tracked.run_id)


def _evaluate(entry: _TrackedPrediction, y_true: Any, y_pred: Any, extra: dict[str, float], name: str) -> None:
    """Log the standard scores of a prediction against `y_true` once, plus `extra` ones not logged yet.

    The scores are computed here (the labels may change next); the recorder writes them.
    """
    model = entry.model
    ident = id(y_true)
    standard_done = (ident, "") in entry.evaluated
    scores: dict[str, float] = {}
    matrix, labels = None, None
    if not standard_done and entry.method == "predict":
        if model.kind == "classifier":
            scores, matrix, labels = classification_scores(y_true, y_pred)
        elif model.kind == "regressor":
            scores = regression_scores(y_true, y_pred)
        entry.evaluated.add((ident, ""))
    for key, value in extra.items():
        if (ident, key) not in entry.evaluated:
            scores.setdefault(key, value)
            entry.evaluated.add((ident, key))
    if scores:
        _submit(_write_evaluation, entry, scores, matrix, labels, name, _current_run())


def _write_evaluation(
    entry: _TrackedPrediction, scores: dict[str, float], matrix: Any, labels: list[str] | None, name: str,
    run: ActiveRun | None,
) -> None:
    from mlkeep.tracking import predictions

    model = entry.model
    with skipping(run, "evaluation"):
        if entry.prediction_id is None or entry.dataset_id is None:
            raise ValueError("the prediction it scores was not recorded")
        predictions.log_evaluation(
            model.db, model.objects, model.model_id, entry.dataset_id, scores, confusion_matrix=matrix,
            class_labels=labels, prediction=entry.prediction_id, name=name,
            run_id=run.id if run else model.run_id,
        )


def _metric_wrapper(original: Any, name: str) -> Any:
    @functools.wraps(original)
    def metric(*args: Any, **kwargs: Any) -> Any:
        config = _config
        if config is None or _state.depth or not config.log_evaluations:
            return _nested(original, args, kwargs)
        y_true = args[0] if args else kwargs.get("y_true")
        y_pred = args[1] if len(args) > 1 else next((kwargs[k] for k in Y_PRED_NAMES if k in kwargs), None)
        entry = _prediction_of(y_pred)
        result = _nested(original, args, kwargs)
        if entry is not None and y_true is not None:
            with skipping(_current_run(), "evaluation"):
                options = {k: v for k, v in kwargs.items() if k not in ("y_true", *Y_PRED_NAMES)}
                extra: dict[str, float] = {}
                if isinstance(result, (int, float)) or getattr(result, "ndim", None) == 0:
                    standard = METRICS.get(name)
                    if standard is None or options or entry.method != "predict" or entry.model.kind is None:
                        label = name + ("(" + ",".join(f"{k}={v}" for k, v in sorted(options.items())) + ")"
                                        if options else "")
                        extra[label] = float(result)
                _evaluate(entry, y_true, y_pred, extra, name=name)
        return result

    return metric


def _nested(original: Any, args: tuple, kwargs: dict) -> Any:
    _state.depth += 1
    try:
        return original(*args, **kwargs)
    finally:
        _state.depth -= 1


def _prediction_of(values: Any) -> _TrackedPrediction | None:
    """The tracked prediction `values` is (or is a view of, such as `proba[:, 1]`)."""
    seen = 0
    while values is not None and seen < 4:
        entry = _predictions.get(values)
        if entry is not None:
            return entry
        values = getattr(values, "base", None)
        seen += 1
    return None


def _current_run() -> ActiveRun | None:
    from mlkeep.tracking.active_run import active_run

    return active_run()
