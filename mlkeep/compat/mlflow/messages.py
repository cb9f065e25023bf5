"""mlkeep entities as the JSON messages of MLflow's REST API (protobuf JSON: int64 as numbers, NaN as "NaN").

MLflow addresses artifacts by URI. mlkeep keeps them per run, so every URI
handed to a client points into the `mlflow-artifacts` proxy under the run:
`mlflow-artifacts:/runs/RUN_ID/PATH` (a logged model's files live at
`models/MODEL_ID` inside the run that logged it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from mlkeep.lifecycle.entities import ModelVersion, RegisteredModel
from mlkeep.tracking.entities import Experiment, Metric, Run

ARTIFACTS_SCHEME = "mlflow-artifacts:/"
RUNS_ROOT = "runs"
MODELS_FOLDER = "models"
NOTE_TAG = "mlflow.note.content"  # MLflow's experiment description, kept as mlkeep's `description`


def run_artifact_uri(run_id: str) -> str:
    return f"{ARTIFACTS_SCHEME}{RUNS_ROOT}/{run_id}"


def model_folder(model_id: str) -> str:
    """Where, inside its run's artifacts, a logged model's files live."""
    return f"{MODELS_FOLDER}/{model_id}"


def number(value: float) -> float | str:
    """A double as protobuf JSON has it: NaN and infinities are strings."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def key_values(pairs: Mapping[str, Any]) -> list[dict[str, str]]:
    return [{"key": k, "value": str(v)} for k, v in pairs.items()]


def experiment_tags(e: Experiment) -> dict[str, str]:
    """An experiment's tags as MLflow has them: its description is the `mlflow.note.content` tag."""
    return {**e.tags, NOTE_TAG: e.description} if e.description else e.tags


def experiment(e: Experiment) -> dict[str, Any]:
    return {
        "experiment_id": e.id, "name": e.name, "artifact_location": f"{ARTIFACTS_SCHEME}experiments/{e.id}",
        "lifecycle_stage": e.lifecycle_stage, "creation_time": e.creation_time,
        "last_update_time": e.creation_time, "tags": key_values(experiment_tags(e)),
    }


def run_info(r: Run) -> dict[str, Any]:
    return run_info_of(r.id, r.name, r.experiment_id, r.creator, r.status, r.start_time, r.end_time,
                       r.lifecycle_stage)


def run_info_of(run_id: str, name: str, experiment_id: str, creator: str | None, status: str, start_time: int,
                end_time: int | None, lifecycle_stage: str) -> dict[str, Any]:
    """A RunInfo message from a run's fields (a row of `runs`, or a `Run`)."""
    info: dict[str, Any] = {
        "run_id": run_id, "run_uuid": run_id, "run_name": name, "experiment_id": experiment_id,
        "user_id": creator or "", "status": status, "start_time": start_time,
        "artifact_uri": run_artifact_uri(run_id), "lifecycle_stage": lifecycle_stage,
    }
    if end_time is not None:
        info["end_time"] = end_time
    return info


def metric(m: Metric, run_id: str) -> dict[str, Any]:
    return {"key": m.key, "value": number(m.value), "timestamp": m.timestamp, "step": m.step, "run_id": run_id}


def registered_model(rm: RegisteredModel, latest: ModelVersion | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": rm.name, "creation_timestamp": rm.creation_time, "last_updated_timestamp": rm.last_updated_time,
        "user_id": rm.owner or "", "tags": key_values(rm.tags),
        "aliases": [{"alias": a, "version": str(v)} for a, v in sorted(rm.aliases.items())],
    }
    if rm.description is not None:
        out["description"] = rm.description
    if latest is not None:
        out["latest_versions"] = [model_version(latest)]
    return out


def stage(v: ModelVersion) -> str:
    """The MLflow stage of a version: Production or Staging when that alias points at it, else None."""
    return "Production" if "production" in v.aliases else "Staging" if "staging" in v.aliases else "None"


def model_version(v: ModelVersion) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": v.name, "version": str(v.version), "creation_timestamp": v.creation_time,
        "last_updated_timestamp": v.creation_time, "user_id": v.owner or "", "current_stage": stage(v),
        "source": f"models:/{v.model_id}", "run_id": v.run_id or "", "status": "READY",
        "tags": key_values(v.tags), "aliases": sorted(v.aliases), "model_id": v.model_id,
    }
    if v.description is not None:
        out["description"] = v.description
    return out
