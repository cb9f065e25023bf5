"""Monitoring a registered version: input and prediction drift, live accuracy, over a time window.

`monitor_report(store, "digits@production", window="1h")` compares what the
version was asked in the window (its logged Predictions: sampled requests of
`mlkeep serve`, or `log_predictions` calls) against its training Dataset:

- each input feature and each output column gets a `FeatureDrift` (PSI with
  KS or chi-square, see `drift`), the reference outputs being the version's
  own predictions on the training data;
- predictions whose true labels were logged (`store.log_labels`) give live
  accuracy (classifiers) or MAE/RMSE (regressors) beside the offline
  Evaluation's scores;
- the window cut into `TIMELINE_SLICES` slices gives drift over time.

Only the newest `max_predictions` Predictions of the window are read, so a
report's cost is bounded however busy the endpoint was (`truncated` says so).
"""

from __future__ import annotations

import io
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from mlkeep.errors import InvalidInputError, NoDataError, NotFoundError
from mlkeep.lifecycle.entities import utc
from mlkeep.lifecycle.predicting import flavor_of, output_columns, output_frame, predict_frame
from mlkeep.lifecycle.drift import FeatureDrift, Thresholds, category_keys, feature_drift, is_categorical
from mlkeep.metadata.tables import evaluations, predictions
from mlkeep.tracking.entities import Entity

if TYPE_CHECKING:
    from mlkeep.lifecycle.entities import ModelVersion
    from mlkeep.store import Store

DEFAULT_WINDOW = "24h"
MAX_REFERENCE_ROWS = 5000
TIMELINE_SLICES = 12
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class Performance(Entity):
    """Live scores on the labelled predictions of the window, beside the offline evaluation's."""

    metric: str  # the headline score: "accuracy" or "rmse"
    live: dict[str, float]
    offline: dict[str, float]
    labelled_rows: int
    offline_evaluation: str | None = None

    @property
    def change(self) -> float | None:
        """Live minus offline value of the headline score (None without an offline value)."""
        if self.metric not in self.offline:
            return None
        return self.live[self.metric] - self.offline[self.metric]


@dataclass(frozen=True)
class TimeSlice(Entity):
    """One slice of the window: its rows, each feature's PSI and the features drifted in it."""

    start: int
    end: int
    rows: int
    psi: dict[str, float]
    drifted: list[str]


@dataclass(frozen=True)
class MonitorReport(Entity):
    """Drift and live performance of one version over [start, end] (epoch milliseconds)."""

    ref: str
    name: str
    version: int
    model_id: str
    dataset_id: str
    start: int
    end: int
    predictions: int  # Predictions read
    rows: int  # input rows in them
    truncated: bool  # more Predictions were in the window than were read
    thresholds: Thresholds
    features: list[FeatureDrift]
    outputs: list[FeatureDrift]
    drifted: list[str]  # drifted input features, then drifted output columns
    performance: Performance | None = None
    timeline: list[TimeSlice] = field(default_factory=list)


def parse_window(window: str | int | float) -> float:
    """Seconds in a window such as `90s`, `30m`, `1h`, `7d`, `2w` (or a number of seconds); `all` is inf."""
    if isinstance(window, (int, float)) and not isinstance(window, bool):
        seconds = float(window)
    elif isinstance(window, str) and window.strip().lower() == "all":
        return float("inf")
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", str(window).lower())
        if m is None:
            raise InvalidInputError(f"{window!r} is not a window: write a number and a unit (s, m, h, d, w) such as "
                                    "`1h` or `30m`, or `all`.")
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if not seconds > 0:
        raise InvalidInputError(f"A window must be longer than zero, not {window!r}.")
    return seconds


def monitor_report(
    store: Store,
    ref: str,
    *,
    window: str | float = DEFAULT_WINDOW,
    until: int | None = None,
    thresholds: Thresholds | None = None,
    max_predictions: int = 2000,
) -> MonitorReport:
    """Drift of the inputs and outputs of the version `ref` names over `window` ending at `until` (ms, now).

    Raises `NotFoundError` for an unknown model, alias or version, or a version
    without a recorded training dataset; `NoDataError` when nothing was
    logged in the window; `InvalidInputError` for a malformed window.
    """
    thresholds = thresholds or Thresholds()
    seconds = parse_window(window)
    end = int(until if until is not None else time.time() * 1000)
    start = 0 if seconds == float("inf") else end - int(seconds * 1000)
    version = store.registry.resolve(ref)
    if not version.dataset_id:
        raise NotFoundError(f"{version.uri} has no recorded training dataset; drift is measured against it "
                            "(log the dataset in the run that logged the model, or commit with datasets=).")
    reference = _frame(store, version.dataset_id)
    live = _window(store, version, start, end, max_predictions, list(reference.columns))
    if seconds == float("inf"):
        start = int(live.times.min())  # "all": the window starts at the oldest row read
    if len(reference) > MAX_REFERENCE_ROWS:
        reference = reference.sample(MAX_REFERENCE_ROWS, random_state=0)
    names = [c for c in reference.columns if c in live.inputs.columns]
    if not names:
        raise InvalidInputError(f"The logged inputs of {version.uri} share no column with its training data "
                                f"({list(reference.columns)[:5]}...).")
    kinds = {c: is_categorical(reference[c]) for c in names}
    features = [feature_drift(c, reference[c], live.inputs[c], thresholds, categorical=kinds[c]) for c in names]
    ref_outputs = _reference_outputs(store, version, reference[names])
    out_names = [c for c in ref_outputs.columns if c in live.outputs.columns]
    out_kinds = {c: is_categorical(ref_outputs[c]) for c in out_names}
    outputs = [feature_drift(c, ref_outputs[c], live.outputs[c], thresholds, categorical=out_kinds[c])
               for c in out_names]
    return MonitorReport(
        ref=ref, name=version.name, version=version.version, model_id=version.model_id,
        dataset_id=version.dataset_id, start=start, end=end, predictions=live.count, rows=len(live.inputs),
        truncated=live.truncated, thresholds=thresholds, features=features, outputs=outputs,
        drifted=[d.feature for d in features + outputs if d.drifted],
        performance=_performance(store, version, live, out_kinds),
        timeline=_timeline(reference, live, names, kinds, thresholds),
    )


@dataclass
class _Live:
    """The window's rows: inputs, outputs, each row's time and (when known) its label."""

    inputs: Any
    outputs: Any
    times: Any
    labels: Any  # object array, None where no label was logged
    count: int
    truncated: bool


def _window(store: Store, version: ModelVersion, start: int, end: int, limit: int, names: list[str]) -> _Live:
    import numpy as np
    import pandas as pd

    from mlkeep.lifecycle.labels import labels_of

    query = (select(predictions.c.id, predictions.c.dataset_id, predictions.c.creation_time, predictions.c.object)
             .where(predictions.c.model_id == version.model_id, predictions.c.creation_time >= start,
                    predictions.c.creation_time <= end, predictions.c.object.is_not(None))
             .order_by(predictions.c.creation_time.desc()).limit(limit + 1))
    with store.db.connect() as conn:
        rows = conn.execute(query).all()
    if not rows:
        raise NoDataError(f"No predictions of {version.uri} were logged between {utc(start)} and {utc(end)}: "
                          "serve it with `mlkeep serve --log-rate` above 0, or widen --window.")
    truncated, rows = len(rows) > limit, rows[:limit][::-1]
    labels = labels_of(store, [r.id for r in rows])
    frames: dict[str, Any] = {}
    inputs, outputs, times, row_labels = [], [], [], []
    for r in rows:
        if r.dataset_id not in frames:
            frames[r.dataset_id] = _frame(store, r.dataset_id, names)
        x = frames[r.dataset_id]
        y = pd.read_parquet(io.BytesIO(store.objects.get_bytes(r.object)))
        y.columns = output_columns(y.shape[1])  # however they were logged, named as served outputs are
        if len(y) != len(x):
            continue  # not one output per input row: cannot be lined up, so not comparable
        inputs.append(x)
        outputs.append(y)
        times.append(np.full(len(x), r.creation_time, dtype=np.int64))
        found = labels.get(r.id)
        row_labels.append(found.astype(object) if found is not None else np.full(len(x), None, dtype=object))
    if not inputs:
        raise NoDataError(f"The predictions of {version.uri} in the window have no inputs to compare.")
    out = pd.concat(outputs, ignore_index=True)
    return _Live(pd.concat(inputs, ignore_index=True), out, np.concatenate(times), np.concatenate(row_labels),
                 len(rows), truncated)


def _frame(store: Store, dataset_id: str, names: list[str] | None = None) -> Any:
    """A dataset's content as a frame of its input columns (the target column dropped).

    An array's columns are named `names` when there are as many: served requests
    are logged as arrays in the schema's column order, as `inputs` rows are read.
    """
    import numpy as np
    import pandas as pd

    from mlkeep.tracking.datasets import dataset_document, load_dataset

    dataset = store.get_dataset(dataset_id)
    data = load_dataset(store.db, store.objects, dataset_id)
    own = [c["name"] for c in dataset.columns if c["name"] != dataset.targets]
    if isinstance(data, bytes):
        fmt = dataset_document(store.db, dataset_id).get("format")
        if fmt not in ("csv", "tsv", "parquet", "pq"):
            raise InvalidInputError(f"Dataset {dataset_id} is a {fmt} file: drift needs tabular data.")
        data = (pd.read_parquet(io.BytesIO(data)) if fmt in ("parquet", "pq")
                else pd.read_csv(io.BytesIO(data), sep="\t" if fmt == "tsv" else ","))
    if isinstance(data, tuple):
        data = data[0]
    if isinstance(data, pd.DataFrame):
        return data[[c for c in data.columns if c != dataset.targets]]
    table = np.asarray(data)
    table = table.reshape(len(table), -1)
    return pd.DataFrame(table, columns=names if names and len(names) == table.shape[1] else own)


def _reference_outputs(store: Store, version: ModelVersion, inputs: Any) -> Any:
    """The version's predictions on the reference inputs, shaped as served predictions are logged."""
    model = store.registry.load_version(version)
    flavor = flavor_of(model)
    if flavor == "torch":
        model.eval()
    return output_frame(predict_frame(model, flavor, inputs))


def _performance(store: Store, version: ModelVersion, live: _Live, out_kinds: dict[str, bool]) -> Performance | None:
    """Live scores on labelled rows: accuracy for a class column or class scores, else MAE and RMSE."""
    import numpy as np
    import pandas as pd

    known = np.array([v is not None for v in live.labels], dtype=bool)
    if not known.any():
        return None
    labels = pd.Series(live.labels[known])
    outputs = live.outputs[known].reset_index(drop=True)
    if outputs.shape[1] > 1:  # one score per class: the class is the index of the largest
        predicted = pd.Series(np.argmax(outputs.to_numpy(dtype=float), axis=1))
        live_scores = {"accuracy": _accuracy(predicted, labels)}
    elif out_kinds.get(outputs.columns[0], False):
        live_scores = {"accuracy": _accuracy(outputs.iloc[:, 0], labels)}
    else:
        error = pd.to_numeric(outputs.iloc[:, 0], errors="coerce").to_numpy(float) - pd.to_numeric(
            labels, errors="coerce").to_numpy(float)
        live_scores = {"mae": float(np.nanmean(np.abs(error))), "rmse": float(np.sqrt(np.nanmean(error ** 2)))}
    metric = "accuracy" if "accuracy" in live_scores else "rmse"
    name, offline = _offline(store, version.model_id)
    return Performance(metric=metric, live=live_scores, offline=offline, labelled_rows=int(known.sum()),
                       offline_evaluation=name)


def _accuracy(predicted: Any, labels: Any) -> float:
    return float((category_keys(predicted).to_numpy() == category_keys(labels).to_numpy()).mean())


def _offline(store: Store, model_id: str) -> tuple[str | None, dict[str, float]]:
    """(name, scores) of the newest Evaluation of the model, ({} when none was logged)."""
    import json

    with store.db.connect() as conn:
        row = conn.execute(select(evaluations.c.name, evaluations.c.document)
                           .where(evaluations.c.model_id == model_id)
                           .order_by(evaluations.c.creation_time.desc()).limit(1)).first()
    if row is None:
        return None, {}
    return row.name, {k: float(v) for k, v in json.loads(row.document)["scores"].items()}


def _timeline(reference: Any, live: _Live, names: list[str], kinds: dict[str, bool],
              thresholds: Thresholds) -> list[TimeSlice]:
    """Drift per slice of the span the rows cover (at most TIMELINE_SLICES slices)."""
    import numpy as np

    first, last = int(live.times.min()), int(live.times.max())
    count = min(TIMELINE_SLICES, len(np.unique(live.times)))
    edges = np.linspace(first, last + 1, count + 1).astype(np.int64)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        mask = (live.times >= lo) & (live.times < hi)
        if not mask.any():
            continue
        part = live.inputs[mask]
        drift = [feature_drift(c, reference[c], part[c], thresholds, categorical=kinds[c]) for c in names]
        out.append(TimeSlice(start=int(lo), end=int(hi), rows=int(mask.sum()),
                             psi={d.feature: d.psi for d in drift}, drifted=[d.feature for d in drift if d.drifted]))
    return out

