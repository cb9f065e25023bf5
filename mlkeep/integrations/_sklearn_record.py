"""What a fitted scikit-learn estimator becomes in the store: a Model, params, scores, search children.

Kept apart from the patching (`sklearn.py`) so each reads on its own: these
functions take a run and an estimator, and know nothing about how they were called.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlkeep.integrations._common import classification_scores, regression_scores, skipped, skipping

if TYPE_CHECKING:
    from mlkeep.tracking.active_run import ActiveRun
    from mlkeep.tracking.entities import Dataset, Hyperparameter, Model

SEARCH_METRIC_PREFIXES = ("mean_", "std_", "split", "rank_")


def deep_hyperparameters(estimator: Any, user_params: Mapping[str, str]) -> list[Hyperparameter]:
    """Every key of `get_params(deep=True)`, `non_default` against the owning estimator's constructor.

    `trackedByUser` is true for a key the user logged as a param of the run themselves.
    """
    from mlkeep.tracking.describe_model import _text, _typing
    from mlkeep.tracking.entities import Hyperparameter

    params = estimator.get_params(deep=True)
    out = []
    for key in sorted(params):
        value = params[key]
        owner_key, _, name = key.rpartition("__")
        owner = params.get(owner_key) if owner_key else estimator
        default = _defaults(type(owner)).get(name, inspect.Parameter.empty) if owner is not None else None
        non_default = None if default is inspect.Parameter.empty or owner is None else not _same(value, default)
        out.append(Hyperparameter(name=key, value=_text(value), typing=_typing(value), non_default=non_default,
                                  tracked_by_user=key in user_params))
    return out


def param_texts(hyper: list[Hyperparameter]) -> dict[str, str]:
    return {h.name: h.value for h in hyper}


def record_model(
    run: ActiveRun,
    estimator: Any,
    dataset: Dataset | None,
    hyper: list[Hyperparameter] | None,
    name: str | None = None,
    model_id: str | None = None,
    payload: bytes | None = None,
) -> Model:
    """Describe and store the estimator; if it cannot be pickled, the description alone (tagged).

    `model_id` is the id chosen when the fit returned (predictions may already point to it);
    `payload`, the estimator already serialized (a snapshot's blob).
    """
    from mlkeep.ids import new_id
    from mlkeep.tracking import describe_model, models
    from mlkeep.tracking.lineage import add_links

    oid, flavor = None, "sklearn"
    try:
        if payload is None:
            flavor, payload = models.serialize(estimator)
        elif describe_model.framework_of(estimator) != "sklearn":
            flavor = "pickle"
        oid = run.objects.put_bytes(payload)
    except Exception as exc:
        skipped(run, "model.serialized", exc)
    entity = describe_model.describe(estimator, model_id=model_id or new_id(), name=name, flavor=flavor, object_id=oid,
                                     run_id=run.id, dataset=dataset)
    if hyper is not None:
        entity = dataclasses.replace(entity, hyperparameters=hyper)
    with run.db.begin() as conn:  # as `models.log_model` does, with the deep hyperparameters
        models.insert_model(conn, entity)
        add_links(conn, [(entity.trained_on_dataset_id, "dataset", run.id, "run", "input")])
    return entity


def kind_of(estimator: Any) -> str | None:
    """"classifier", "regressor" or None, as scikit-learn's tags say (searches delegate to their estimator)."""
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(estimator):
        return "classifier"
    if is_regressor(estimator):
        return "regressor"
    return None


def training_scores(run: ActiveRun, estimator: Any, X: Any, y: Any) -> None:
    """One `predict` on the training data, scored as classification or regression (run metrics)."""
    kind = kind_of(estimator)
    if kind is None or y is None or not hasattr(estimator, "predict"):
        return
    pred = estimator.predict(X)
    if kind == "classifier":
        scores, _, _ = classification_scores(y, pred)
        keep = {k: v for k, v in scores.items() if "_class_" not in k}
        run.log_metrics({"training_score": keep["accuracy"], **{f"training_{k}": v for k, v in keep.items()}})
    else:
        scores = regression_scores(y, pred)
        run.log_metrics({"training_score": scores["r2"], **{f"training_{k}": v for k, v in scores.items()}})


def record_search(
    run: ActiveRun, search: Any, experiment: str, dataset: Dataset | None, max_runs: int | None
) -> None:
    """One child run per candidate of a fitted search: its params, cross-validation scores, the best tagged."""
    import numpy as np

    results = search.cv_results_
    candidates = results["params"]
    best = getattr(search, "best_index_", None)
    order = list(range(len(candidates)))
    rank_key = next((k for k in results if k.startswith("rank_test_")), None)
    if max_runs is not None and rank_key is not None:
        order = sorted(order, key=lambda i: int(results[rank_key][i]))[:max_runs]
    numeric = [k for k in results if k.startswith(SEARCH_METRIC_PREFIXES)
               and np.asarray(results[k]).dtype.kind in "iuf"]
    from mlkeep.tracking.active_run import ActiveRun
    from mlkeep.tracking.describe_model import _text

    for i in order:
        child = ActiveRun.start(run.db, run.objects, experiment=experiment, name=f"candidate-{i}", parent=run,
                                tags={"autolog.candidate": i, "autolog.best": str(i == best).lower()})
        try:
            with skipping(child, "params"):
                child.log_params({k: _text(v) for k, v in candidates[i].items()})
            with skipping(child, "cv_scores"):
                values = {k: float(results[k][i]) for k in numeric}
                child.log_metrics({k: v for k, v in values.items() if v == v})  # NaN: a failed fold
            if i == best and hasattr(search, "best_estimator_"):
                with skipping(child, "model"):
                    best_est = search.best_estimator_
                    record_model(child, best_est, dataset, _hyper_or_none(child, best_est), name="best_estimator")
        finally:
            child.end()
        if i == best:
            run.set_tags({"autolog.best_run": child.id})
    if best is not None and hasattr(search, "best_score_"):
        run.log_metric("best_cv_score", float(search.best_score_))


def _hyper_or_none(run: ActiveRun, estimator: Any) -> list[Hyperparameter] | None:
    with skipping(run, "hyperparameters"):
        return deep_hyperparameters(estimator, {})
    return None


_DEFAULTS: dict[type, dict[str, Any]] = {}


def _defaults(cls: type) -> dict[str, Any]:
    found = _DEFAULTS.get(cls)
    if found is None:
        from mlkeep.tracking.describe_model import _defaults as read

        found = _DEFAULTS[cls] = read(cls)
    return found


def _same(a: Any, b: Any) -> bool:
    from mlkeep.tracking.describe_model import _same as same

    return same(a, b)
