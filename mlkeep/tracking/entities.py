"""The tracked entities, as frozen dataclasses.

They mirror the ml-experiments-schema (Dataset, Model, TrainingRun as `Run`,
Prediction, Evaluation, Transform) plus mlkeep's Experiment and Metric.
Database rows never leave the store layer: readers get these.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

E = TypeVar("E", bound="Entity")


class Entity:
    """`to_dict` / `from_dict` for every entity (plain JSON-able values)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload,no-any-return]

    @classmethod
    def from_dict(cls: type[E], data: dict[str, Any]) -> E:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})


class LifecycleStage:
    """Whether an experiment or run is live or deleted (hidden, restorable), as in MLflow."""

    ACTIVE = "active"
    DELETED = "deleted"
    ALL = (ACTIVE, DELETED)


class RunStatus:
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"
    ALL = (RUNNING, FINISHED, FAILED, KILLED)


@dataclass(frozen=True)
class Experiment(Entity):
    id: str
    name: str
    creation_time: int
    description: str | None = None
    lifecycle_stage: str = LifecycleStage.ACTIVE
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Metric(Entity):
    """One point of a metric series."""

    key: str
    value: float
    step: int
    timestamp: int


@dataclass(frozen=True)
class MetricSummary(Entity):
    """The latest value of a metric in a run, with its min, max and length."""

    key: str
    value: float
    step: int
    timestamp: int
    min: float
    max: float
    count: int


@dataclass(frozen=True)
class Run(Entity):
    """A training run: the schema's TrainingRun, plus params, tags and latest metrics."""

    id: str
    experiment_id: str
    experiment: str
    name: str
    status: str
    start_time: int
    end_time: int | None = None
    parent_run_id: str | None = None
    creator: str | None = None
    failure: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, MetricSummary] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    lifecycle_stage: str = LifecycleStage.ACTIVE

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        data = dict(data)
        data["metrics"] = {
            k: v if isinstance(v, MetricSummary) else MetricSummary.from_dict(v)
            for k, v in data.get("metrics", {}).items()
        }
        return super().from_dict(data)


@dataclass(frozen=True)
class Artifact(Entity):
    run_id: str
    path: str
    object: str
    size: int


@dataclass(frozen=True)
class Column(Entity):
    """A typed column (the schema's TypedColumn); `typing` is a schema TypeHint."""

    name: str
    typing: str


@dataclass(frozen=True)
class Dataset(Entity):
    """The schema's DatasetMetadata: one distinct content, fingerprinted."""

    id: str
    name: str
    fingerprint: str
    version: str
    location: str
    creation_time: int
    derived_from_id: str | None = None
    num_rows: int = 0
    columns: list[dict[str, str]] = field(default_factory=list)
    statistics: dict[str, dict[str, Any]] = field(default_factory=dict)
    histograms: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    targets: str | None = None


@dataclass(frozen=True)
class Transform(Entity):
    """One pipeline stage or network layer; `input_transforms` make the graph."""

    id: str
    name: str
    framework: str | None = None
    framework_version: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    input_transforms: list[str] = field(default_factory=list)
    input: list[dict[str, str]] = field(default_factory=list)
    output: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Hyperparameter(Entity):
    """The schema's Parameter: a value with its type and where it came from."""

    name: str
    value: str
    typing: str
    non_default: bool | None = None
    tracked_by_user: bool = False


@dataclass(frozen=True)
class Model(Entity):
    """The schema's ModelMetadata."""

    id: str
    name: str
    learning_algorithm: str
    creation_time: int
    run_id: str | None = None
    trained_on_dataset_id: str | None = None
    framework: str | None = None
    framework_version: str | None = None
    object: str | None = None
    hyperparameters: list[Hyperparameter] = field(default_factory=list)
    transforms: list[Transform] = field(default_factory=list)
    input: list[dict[str, str]] = field(default_factory=list)
    flavor: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Model:
        data = dict(data)
        data["hyperparameters"] = [
            h if isinstance(h, Hyperparameter) else Hyperparameter.from_dict(h)
            for h in data.get("hyperparameters", [])
        ]
        data["transforms"] = [
            t if isinstance(t, Transform) else Transform.from_dict(t) for t in data.get("transforms", [])
        ]
        return super().from_dict(data)


@dataclass(frozen=True)
class Prediction(Entity):
    """The schema's PredictionMetadata; the values live in a Parquet blob."""

    id: str
    model_id: str
    dataset_id: str
    creation_time: int
    name: str | None = None
    run_id: str | None = None
    object: str | None = None
    num_rows: int = 0
    columns: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Evaluation(Entity):
    """The schema's Evaluation: scores and an optional confusion matrix."""

    id: str
    model_id: str
    dataset_id: str
    creation_time: int
    name: str | None = None
    run_id: str | None = None
    prediction_id: str | None = None
    scores: dict[str, float] = field(default_factory=dict)
    confusion_matrix: list[list[int]] | None = None
    class_labels: list[str] | None = None
