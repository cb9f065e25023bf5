"""Environment and code capture: stored once per content, summarized on the run, compared between runs."""

from __future__ import annotations

import json
import sys
import uuid

import pytest

from mlkeep.store import Store
from mlkeep.tracking import environment, runs


def test_a_run_points_to_its_full_environment_stored_once(store: Store) -> None:
    with store.start_run("env") as a:
        pass
    with store.start_run("env") as b:
        pass
    env_a, env_b = store.get_run(a.id).environment, store.get_run(b.id).environment
    assert env_a["object"] == env_b["object"]  # identical environments: one object
    assert env_a["python"] == sys.version.split()[0] and all(isinstance(v, str) for v in env_a.values())
    doc = environment.load_environment(store.db, store.objects, a.id)
    assert doc["format"] == environment.FORMAT
    assert doc["cpu"]["count"] >= 1 and doc["cpu"]["model"]
    assert doc["packages"]["numpy"] and doc["packages"]["scikit-learn"]
    assert doc["code"]["argv"] == sys.argv and isinstance(doc["gpu"], list)
    if doc["git"]:
        assert env_a["git.commit"] == doc["git"]["commit"] and "diff" in doc["git"]
    assert store.diff_environments(a.id, b.id).identical


def test_only_allow_listed_variables_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    secret = f"secret-{uuid.uuid4().hex}"  # made here: the source (and so the git diff) cannot hold it
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    environment._capture.cache_clear()
    try:
        doc = environment.environment_document()
    finally:
        environment._capture.cache_clear()
    assert doc["env"]["OMP_NUM_THREADS"] == "3"
    assert secret not in json.dumps(doc)


def test_diff_environments_names_what_changed(store: Store) -> None:
    with store.start_run("env") as a:
        pass
    doc = json.loads(json.dumps(environment.environment_document()))
    doc["packages"]["numpy"] = "0.0.1"
    doc["packages"]["left-pad"] = "1.0"
    doc["env"]["OMP_NUM_THREADS"] = "64"
    doc["code"]["source"] = "print('hello')\n"
    oid = store.objects.put_bytes(json.dumps(doc, sort_keys=True).encode())
    b_id = runs.create_run(store.db, "env", "elsewhere", environment={**store.get_run(a.id).environment, "object": oid})
    diff = store.diff_environments(a.id, b_id)
    assert not diff.identical
    assert diff.changed["packages.numpy"] == (environment.environment_document()["packages"]["numpy"], "0.0.1")
    assert diff.changed["packages.left-pad"] == (None, "1.0")
    assert diff.changed["env.OMP_NUM_THREADS"][1] == "64"
    assert "+print('hello')" in diff.text["code.source"]

    from typer.testing import CliRunner

    from mlkeep.cli import app

    # the CLI over the same store needs a URI; a memory store cannot be shared, so check the JSON shape only
    assert set(diff.to_dict()) == {"run_a", "run_b", "same_object", "changed", "text"}
    assert CliRunner().invoke(app, ["runs", "diff-env", "--help"]).exit_code == 0


def test_cli_diff_env_on_a_folder_store(folder_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from mlkeep.cli import app

    with folder_store.start_run("env") as a:
        pass
    doc = json.loads(json.dumps(environment.environment_document()))
    doc["packages"]["numpy"] = "0.0.1"
    oid = folder_store.objects.put_bytes(json.dumps(doc, sort_keys=True).encode())
    b_id = runs.create_run(folder_store.db, "env", "b", environment={"python": "3", "object": oid})
    uri = str(folder_store.location.uri)
    result = CliRunner().invoke(app, ["--store", uri, "runs", "diff-env", a.id, b_id, "--json"],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["changed"]["packages.numpy"][1] == "0.0.1"
    table = CliRunner().invoke(app, ["--store", uri, "runs", "diff-env", a.id, b_id], env={"COLUMNS": "200"})
    assert "packages.numpy" in table.stdout and "0.0.1" in table.stdout
    same = CliRunner().invoke(app, ["--store", uri, "runs", "diff-env", a.id, a.id])
    assert "same environment" in same.stdout
