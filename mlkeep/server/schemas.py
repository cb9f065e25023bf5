"""Request and response bodies of the REST API (pydantic), beside the entities' own dataclasses."""

from __future__ import annotations

from typing import Annotated, Any, Optional, Union

from pydantic import BaseModel, Field

from mlkeep.tracking.entities import Run

MAX_INDEX = 2**31 - 1  # the largest row, column, version, offset or limit a request may name
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]  # what the database stores (steps, timestamps)
Version = Annotated[int, Field(ge=1, le=MAX_INDEX)]


class ExperimentIn(BaseModel):
    name: str = Field(min_length=1, max_length=250)
    description: Optional[str] = None
    tags: dict[str, str] = Field(default_factory=dict)


class RunIn(BaseModel):
    experiment: str = Field(default="Default", min_length=1, max_length=250)
    name: Optional[str] = Field(default=None, max_length=250)
    parent_run_id: Optional[str] = None
    tags: dict[str, str] = Field(default_factory=dict)
    environment: dict[str, str] = Field(default_factory=dict, description="What the run ran on (client side).")


class RunIds(BaseModel):
    ids: list[str] = Field(max_length=1000)


class Values(BaseModel):
    """Params or tags: names to values (params are kept as text; containers as sorted JSON)."""

    values: dict[str, Any]


class MetricBatch(BaseModel):
    """Points as [key, value (null for NaN), step, timestamp in ms]."""

    points: list[tuple[str, Optional[float], Int64, Int64]] = Field(max_length=100_000)


class EndIn(BaseModel):
    status: str = "FINISHED"
    failure: Optional[str] = None


class SearchIn(BaseModel):
    filter: str = ""
    order_by: Union[str, list[str], None] = None
    page_size: int = 50
    page_token: Optional[str] = None
    experiments: Optional[list[str]] = None
    offset: int = Field(default=0, ge=0, le=MAX_INDEX, description="Where to start when no page_token is given.")
    total: bool = Field(default=True, description="Also count every matching run (one more query).")


class RunPage(BaseModel):
    runs: list[Run]
    next_page_token: Optional[str] = None
    total: Optional[int] = Field(default=None, description="How many runs match in all (when asked for).")


class MetricHistory(BaseModel):
    """A series as parallel columns (null for NaN); `total` counts the points before downsampling."""

    key: str
    steps: list[int]
    values: list[Optional[float]]
    timestamps: list[int]
    total: int
    downsampled: bool


class DatasetIn(BaseModel):
    """A description made by the client's `describe` (mlkeep.tracking.describe), content uploaded as `object`."""

    object: Optional[str] = Field(default=None, min_length=64, max_length=64)
    description: dict[str, Any] = Field(default_factory=dict)
    dataset_id: Optional[str] = Field(default=None, description="Link an existing dataset instead.")
    name: Optional[str] = None
    derived_from: Optional[str] = None
    context: str = "input"


class ModelIn(BaseModel):
    """A Model entity described by the client; its serialized blob uploaded first as `object`."""

    model: dict[str, Any]


class PredictionsIn(BaseModel):
    model_id: str
    dataset_id: str
    object: str = Field(min_length=64, max_length=64, description="The predictions as an uploaded Parquet blob.")
    name: Optional[str] = None


class EvaluationIn(BaseModel):
    model_id: str
    dataset_id: str
    scores: dict[str, float]
    confusion_matrix: Optional[list[list[Int64]]] = None
    class_labels: Optional[list[Any]] = None
    prediction_id: Optional[str] = None
    name: Optional[str] = None


class ObjectOut(BaseModel):
    id: str
    size: int


class TokenIn(BaseModel):
    role: str = Field(pattern="^(read|write|admin)$")
    experiment: Optional[str] = None
    description: Optional[str] = None


class NewToken(BaseModel):
    token: dict[str, Any]
    secret: str = Field(description="Shown once: only its hash is stored.")


class RegisterIn(BaseModel):
    """A new version from a logged Model id, a commit id (prefix) or `repo@ref`."""

    source: str = Field(min_length=1, max_length=500)
    description: Optional[str] = None
    tags: dict[str, str] = Field(default_factory=dict)
    owner: Optional[str] = None


class RegistryUpdate(BaseModel):
    """Fields to change; tags are merged (an empty value deletes a tag)."""

    description: Optional[str] = None
    owner: Optional[str] = None
    tags: Optional[dict[str, str]] = None


class AliasIn(BaseModel):
    """Move an alias to `version`. With `expected` (null: the alias must not exist), a compare-and-swap."""

    version: Version
    reason: Optional[str] = None
    expected: Optional[Version] = Field(default=None, description="The version the alias must point at now.")


class ModelCard(BaseModel):
    name: str
    version: Optional[int]
    markdown: str

