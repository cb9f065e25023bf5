"""A real `mlkeep server` on loopback per module, and the official `mlflow` client pointed at it."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mlflow")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no phoning home from tests
os.environ.setdefault("DO_NOT_TRACK", "true")


def _live_server_class() -> type:
    """`LiveServer` of tests/server/conftest.py, loaded under its own name (every conftest is "conftest")."""
    path = Path(__file__).resolve().parents[1] / "server" / "conftest.py"
    spec = importlib.util.spec_from_file_location("server_conftest", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.LiveServer  # type: ignore[no-any-return]


LiveServer = _live_server_class()


@pytest.fixture(scope="module")
def mlkeep_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One server per module (starting one costs a second), with the mlflow client aimed at it."""
    import mlflow

    server = LiveServer(tmp_path_factory.mktemp("mlflow-compat"))
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = server.url
    mlflow.set_tracking_uri(server.url)
    mlflow.set_registry_uri(server.url)
    try:
        yield server
    finally:
        if mlflow.active_run():
            mlflow.end_run()
        mlflow.set_tracking_uri(previous or "")
        os.environ.pop("MLFLOW_TRACKING_URI", None) if previous is None else os.environ.update(
            MLFLOW_TRACKING_URI=previous)
        server.stop()
