"""`RemoteStore`: `Store`'s methods (tracking, repositories, registry, intermediates) answered by a server."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mlkeep.client._http import Http
from mlkeep.client._intermediates import RemoteIntermediates
from mlkeep.client._registry import RemoteRegistry
from mlkeep.client._run import RemoteRun, active_remote_run
from mlkeep.errors import CorruptObjectError, InvalidInputError
from mlkeep.tracking.entities import Artifact, Dataset, Evaluation, Experiment, Metric, Model, Prediction, Run
from mlkeep.tracking.experiments import DEFAULT_EXPERIMENT
from mlkeep.tracking.lineage import LineageGraph, Link, Node

PAGE = 1000


class RemoteStore:
    """A store reached over HTTP; same methods and return types as `Store` for tracking.

    `client` plugs in another httpx client (e.g. FastAPI's `TestClient` to call an app in-process).
    """

    def __init__(self, url: str, *, token: str | None = None, client: Any = None) -> None:
        self.http = Http(url, token, client)

    @property
    def uri(self) -> str:
        return self.http.url

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> RemoteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<mlkeep.RemoteStore {self.uri}>"

    # -- experiments and runs ----------------------------------------------------
    def create_experiment(self, name: str, description: str | None = None, *,
                          tags: Mapping[str, Any] | None = None) -> Experiment:
        body = {"name": name, "description": description, "tags": {k: str(v) for k, v in (tags or {}).items()}}
        return Experiment.from_dict(self.http.post("/experiments", body))

    def get_experiment(self, name_or_id: str) -> Experiment:
        return Experiment.from_dict(self.http.get(f"/experiments/{quote(name_or_id, safe='')}"))

    def set_experiment_tags(self, name_or_id: str, tags: Mapping[str, Any]) -> Experiment:
        path = f"/experiments/{quote(name_or_id, safe='')}/tags"
        return Experiment.from_dict(self.http.request("PATCH", path, json={"values": {k: str(v) for k, v in tags.items()}}))

    def delete_experiment_tag(self, name_or_id: str, key: str) -> None:
        self.http.request("DELETE", f"/experiments/{quote(name_or_id, safe='')}/tags/{quote(key, safe='')}")

    def list_experiments(self) -> list[Experiment]:
        return [Experiment.from_dict(e) for e in self.http.get("/experiments")]

    def start_run(self, experiment: str = DEFAULT_EXPERIMENT, name: str | None = None, *,
                  parent: RemoteRun | str | None = None, tags: Mapping[str, Any] | None = None) -> RemoteRun:
        """Start a RUNNING run on the server; inside another remote run it becomes a child."""
        from mlkeep.tracking.environment import capture_environment

        if parent is None:
            parent = active_remote_run()
        parent_id = parent.id if isinstance(parent, RemoteRun) else parent
        body = {"experiment": experiment, "name": name, "parent_run_id": parent_id,
                "tags": {k: str(v) for k, v in (tags or {}).items()}, "environment": capture_environment()}
        return RemoteRun(self, Run.from_dict(self.http.post("/runs", body)))

    def get_run(self, run_id: str) -> Run:
        return Run.from_dict(_nan(self.http.get(f"/runs/{run_id}")))

    def get_runs(self, run_ids: Sequence[str]) -> list[Run]:
        out: list[Run] = []
        for i in range(0, len(run_ids), PAGE):
            out += [Run.from_dict(_nan(r)) for r in self.http.post("/runs/get", {"ids": list(run_ids[i:i + PAGE])})]
        return out

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Every point of one metric of one run, by step then time."""
        h = self.metric_history(run_id, key)
        return [Metric(key=key, value=float("nan") if v is None else v, step=s, timestamp=t)
                for s, v, t in zip(h["steps"], h["values"], h["timestamps"])]

    def metric_history(self, run_id: str, key: str, *, max_points: int = 0, min_step: float | None = None,
                       max_step: float | None = None) -> dict[str, Any]:
        """The series as columns, downsampled by the server to `max_points` (0: every point)."""
        return self.http.get(f"/runs/{run_id}/metrics/{key}/history", max_points=max_points, min_step=min_step,
                             max_step=max_step)  # type: ignore[no-any-return]

    def search_runs(self, filter: str = "", order_by: str | Sequence[str] | None = None, limit: int | None = None,
                    *, offset: int = 0, experiments: Sequence[str] | None = None) -> list[Run]:
        """Runs matching a filter, sorted by the server, from `offset` on; pages are fetched until `limit`."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise InvalidInputError(f"limit must be a positive integer, not {limit!r}.")
        out: list[Run] = []
        token = None
        while True:
            size = PAGE if limit is None else min(PAGE, limit - len(out))
            runs, token = self.search_page(filter, order_by, page_size=size, page_token=token,
                                           experiments=experiments, offset=offset)
            out += runs
            if token is None or (limit is not None and len(out) >= limit):
                return out

    def search_page(self, filter: str = "", order_by: str | Sequence[str] | None = None, *, page_size: int = 50,
                    page_token: str | None = None, experiments: Sequence[str] | None = None,
                    offset: int = 0) -> tuple[list[Run], str | None]:
        """One page of runs (from `page_token`, else `offset`) and the token of the next (None on the last page)."""
        body = {"filter": filter, "order_by": order_by, "page_size": page_size, "page_token": page_token,
                "experiments": list(experiments) if experiments is not None else None, "offset": offset,
                "total": False}  # not read here: spare the server a count per page
        page = self.http.post("/search/runs", body)
        return [Run.from_dict(_nan(r)) for r in page["runs"]], page["next_page_token"]

    # -- artifacts -------------------------------------------------------------------
    def list_artifacts(self, run_id: str, path: str = "") -> list[Artifact]:
        return [Artifact(**a) for a in self.http.get(f"/runs/{run_id}/artifacts", path=path)]

    def download_artifacts(self, run_id: str, dest: str | os.PathLike[str], path: str = "") -> list[Path]:
        """Stream the artifacts under `path` into folder `dest`; returns the written files."""
        from mlkeep.errors import NotFoundError, UnsafePathError
        from mlkeep.tracking.artifacts import safe_relpath

        found = self.list_artifacts(run_id, path)
        if not found:
            raise NotFoundError(f"Run {run_id} has no artifact at {path!r}.")
        root = Path(dest).resolve()
        out = []
        for art in found:
            target = (root / safe_relpath(art.path)).resolve()
            if root != target and root not in target.parents:
                raise UnsafePathError(f"Artifact {art.path!r} would be written outside {root}.")
            self.http.download(f"/runs/{run_id}/artifacts/{art.path}", target)
            out.append(target)
        return out

    def put_object(self, source: bytes | str | os.PathLike[str]) -> str:
        """Upload a blob (bytes, or a file streamed); returns its id, checked against our own hash."""
        oid = self.http.upload("/objects", source)["id"]
        if isinstance(source, bytes) and oid != hashlib.sha256(source).hexdigest():
            raise CorruptObjectError(f"The server stored the upload as {oid}, which is not its hash.")
        return str(oid)

    # -- entities of the schema ----------------------------------------------------------
    def get_dataset(self, dataset_id: str) -> Dataset:
        return Dataset.from_dict(self.http.get(f"/datasets/{dataset_id}"))

    def list_datasets(self, name: str | None = None) -> list[Dataset]:
        return [Dataset.from_dict(d) for d in self.http.get("/datasets", name=name)]

    def get_model(self, model_id: str) -> Model:
        return Model.from_dict(self.http.get(f"/models/{model_id}"))

    def list_models(self, run_id: str | None = None) -> list[Model]:
        return [Model.from_dict(m) for m in self.http.get("/models", run_id=run_id)]

    def load_model(self, model_id: str) -> Any:
        """The fitted model, downloaded and unpickled here: load only from a server you trust.

        `models:/NAME@ALIAS` and `models:/NAME/VERSION` resolve through the server's registry.
        """
        from mlkeep.tracking.models import deserialize

        if model_id.startswith("models:/"):
            return self.registry.load(model_id)
        with tempfile.TemporaryDirectory(prefix="mlkeep-model-") as tmp:
            path, headers = self.http.download(f"/models/{model_id}/object", Path(tmp) / "model")
            return deserialize(headers.get("x-mlkeep-flavor", "pickle"), path.read_bytes())

    def get_prediction(self, prediction_id: str) -> Prediction:
        return Prediction.from_dict(self.http.get(f"/predictions/{prediction_id}"))

    def load_predictions(self, prediction_id: str) -> Any:
        """The predicted values as a pandas DataFrame."""
        import pandas as pd

        with tempfile.TemporaryDirectory(prefix="mlkeep-pred-") as tmp:
            path, _ = self.http.download(f"/predictions/{prediction_id}/values", Path(tmp) / "p.parquet")
            return pd.read_parquet(path)

    def get_evaluation(self, evaluation_id: str) -> Evaluation:
        return Evaluation.from_dict(self.http.get(f"/evaluations/{evaluation_id}"))

    # -- lineage, versioning ----------------------------------------------------------------
    def lineage(self, entity_id: str, direction: str = "up", depth: int | None = None) -> LineageGraph:
        """Everything upstream or downstream of an entity, as the local `Store.lineage` returns it."""
        if direction not in ("up", "down"):
            raise InvalidInputError(f"Lineage direction must be 'up' or 'down', not {direction!r}.")
        g = self.http.get(f"/lineage/{entity_id}", direction=direction, depth=depth)
        return LineageGraph(root=g["root"], direction=g["direction"],
                            nodes={k: Node.from_dict(n) for k, n in g["nodes"].items()},
                            links=[Link.from_dict(l) for l in g["links"]], depth=g["depth"])

    def repo(self, name: str) -> Any:
        """The repository `name` on the server (log, diff, checkout, refs)."""
        from mlkeep.client._repo import RemoteRepository

        return RemoteRepository(self, name)

    def repositories(self) -> list[str]:
        return [r["name"] for r in self.http.get("/repositories")]

    @property
    def registry(self) -> RemoteRegistry:
        """The server's model registry: registered models, versions, aliases, history, model cards."""
        return RemoteRegistry(self)

    @property
    def intermediates(self) -> RemoteIntermediates:
        """The server's model intermediates: list them and ask diagnostic queries."""
        if self.__dict__.get("_intermediates") is None:
            self._intermediates = RemoteIntermediates(self)
        return self._intermediates


def _nan(run: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN: the server sends null for a NaN metric; the entity holds NaN as locally."""
    for m in run.get("metrics", {}).values():
        for k in ("value", "min", "max"):
            if m.get(k) is None:
                m[k] = float("nan")
    return run
