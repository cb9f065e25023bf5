"""Model intermediates: records, and diagnostic queries answered by reading or recomputing."""

from __future__ import annotations

from typing import Annotated, Any, Optional

from fastapi import APIRouter, Query
from pydantic import Field

from mlkeep.intermediates import Intermediate
from mlkeep.server.app import CTX, JSON
from mlkeep.server.schemas import MAX_INDEX
from mlkeep.server.services import intermediates as service

router = APIRouter(prefix="/intermediates", tags=["intermediates"])
Source = Annotated[str, Query(pattern="^(auto|read|rerun)$", description="auto: whichever the cost model says.")]
Index = Annotated[int, Query(ge=0, le=MAX_INDEX)]
Item = Annotated[int, Field(ge=0, le=MAX_INDEX)]
Indices = Annotated[Optional[list[Item]], Query(description="Repeatable; all when absent.")]


@router.get("", response_model=list[Intermediate])
def list_intermediates(ctx: CTX, capture_id: Optional[str] = None, commit_id: Optional[str] = None,
                       layer: Optional[str] = None, dataset_id: Optional[str] = None,
                       repository: Optional[str] = None) -> Any:
    """Intermediates matching every given filter, oldest first."""
    return JSON(service.intermediates(ctx.store, ctx.principal).list(
        capture_id=capture_id, commit_id=commit_id, layer=layer, dataset_id=dataset_id, repository=repository))


@router.get("/compare")
def compare(ctx: CTX, a: str, b: str, method: Annotated[str, Query(pattern="^(cka|svcca|col_diff|row_diff)$")] = "cka",
            source: Source = "auto") -> Any:
    """Two layers over the same rows (e.g. of two versions): similarity, or per-column / per-row differences."""
    return JSON(service.compare(ctx.store, ctx.principal, a, b, method, source))


@router.get("/{ref}", response_model=Intermediate)
def info(ref: str, ctx: CTX) -> Any:
    """The record of an intermediate, by id, unique id prefix or name."""
    return JSON(service.intermediates(ctx.store, ctx.principal).info(ref))


@router.get("/{ref}/values")
def values(ref: str, ctx: CTX, rows: Indices = None, columns: Indices = None, source: Source = "auto") -> Any:
    """Values of the selected rows (dataset row ids) and columns, as rows of numbers."""
    return JSON(service.values(ctx.store, ctx.principal, ref, rows, columns, source))


@router.get("/{ref}/topk")
def topk(ref: str, ctx: CTX, neuron: Index, k: Annotated[int, Query(ge=1, le=10_000)] = 10,
         largest: bool = True, source: Source = "auto") -> Any:
    """The `k` examples that activate column `neuron` most (or least, with largest=false)."""
    return JSON(service.topk(ctx.store, ctx.principal, ref, neuron, k, largest, source))


@router.get("/{ref}/knn")
def knn(ref: str, ctx: CTX, row: Index, k: Annotated[int, Query(ge=1, le=10_000)] = 10,
        metric: Annotated[str, Query(pattern="^(euclidean|cosine)$")] = "euclidean", source: Source = "auto") -> Any:
    """The `k` examples nearest example `row` in this layer's space."""
    return JSON(service.knn(ctx.store, ctx.principal, ref, row, k, metric, source))


@router.get("/{ref}/stats")
def stats(ref: str, ctx: CTX, by_targets: bool = True, columns: Indices = None, source: Source = "auto") -> Any:
    """Per class (the dataset's targets) or overall, per column: count, mean, std, sparsity."""
    return JSON(service.stats(ctx.store, ctx.principal, ref, by_targets, columns, source))


@router.get("/{ref}/inputs")
def inputs(ref: str, ctx: CTX, rows: Annotated[list[Item], Query()]) -> Any:
    """The dataset's input rows (and targets) the intermediate was computed from, e.g. top-k examples."""
    return JSON(service.inputs(ctx.store, ctx.principal, ref, rows))
