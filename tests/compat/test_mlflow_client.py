"""The official `mlflow` client, unchanged, against a real `mlkeep server`: what it logs is mlkeep's."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import mlkeep
from mlkeep.errors import NotFoundError, UnsupportedError

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag, ViewType  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

REQS = ["scikit-learn"]  # skip MLflow's slow requirement inference (it imports every module in a subprocess)


@pytest.fixture(scope="module")
def client(mlkeep_server: Any) -> MlflowClient:
    return MlflowClient(mlkeep_server.url, mlkeep_server.url)


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    data = load_iris()
    return data.data, data.target


def test_experiments_create_get_search_rename_delete_restore(client: MlflowClient) -> None:
    exp_id = client.create_experiment("exp-life")
    assert client.get_experiment(exp_id).name == "exp-life"
    assert client.get_experiment_by_name("exp-life").experiment_id == exp_id
    assert client.get_experiment_by_name("no-such-experiment") is None
    with pytest.raises(MlflowException, match="already exists"):
        client.create_experiment("exp-life")
    assert [e.name for e in client.search_experiments(filter_string="name LIKE 'exp-l%'")] == ["exp-life"]
    client.rename_experiment(exp_id, "exp-life-2")
    assert client.get_experiment(exp_id).name == "exp-life-2"
    client.delete_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "deleted"
    assert "exp-life-2" not in [e.name for e in client.search_experiments()]
    assert "exp-life-2" in [e.name for e in client.search_experiments(view_type=ViewType.DELETED_ONLY)]
    with pytest.raises(MlflowException, match="deleted"):
        client.create_run(exp_id)
    client.restore_experiment(exp_id)
    assert client.create_run(exp_id).info.lifecycle_stage == "active"


def test_experiment_tags_set_read_deleted_searched_and_kept_by_mlkeep(mlkeep_server: Any,
                                                                      client: MlflowClient) -> None:
    exp_id = client.create_experiment("tagged", tags={"team": "vision", "mlflow.note.content": "about"})
    client.set_experiment_tag(exp_id, "stage", "dev")
    mlflow.set_experiment("tagged")
    mlflow.set_experiment_tags({"owner": "ana", "stage": "prod"})
    assert client.get_experiment(exp_id).tags == {"team": "vision", "stage": "prod", "owner": "ana",
                                                  "mlflow.note.content": "about"}
    client.delete_experiment_tag(exp_id, "team")
    assert "team" not in client.get_experiment_by_name("tagged").tags
    with pytest.raises(MlflowException, match="no tag"):
        client.delete_experiment_tag(exp_id, "team")
    client.create_experiment("tagged-too", tags={"stage": "dev"})
    names = lambda f: sorted(e.name for e in client.search_experiments(filter_string=f))  # noqa: E731
    assert names("tags.stage = 'prod'") == ["tagged"]
    assert names("tags.stage LIKE '%d%' and name != 'tagged'") == ["tagged-too"]
    assert names("tags.`mlflow.note.content` ILIKE 'ABOUT'") == ["tagged"]
    assert "tagged-too" in names("tags.owner IS NULL") and "tagged" not in names("tags.owner IS NULL")
    with pytest.raises(MlflowException, match="tags"):
        client.search_experiments(filter_string="params.x = '1'")
    with mlkeep.open(mlkeep_server.root) as store:  # what the client set is mlkeep's own
        mine = store.get_experiment("tagged")
        assert (mine.tags, mine.description) == ({"stage": "prod", "owner": "ana"}, "about")
    client.delete_experiment_tag(exp_id, "mlflow.note.content")
    assert "mlflow.note.content" not in client.get_experiment(exp_id).tags


def test_params_metrics_with_steps_batches_and_tags(mlkeep_server: Any, client: MlflowClient) -> None:
    mlflow.set_experiment("logging")
    with mlflow.start_run(run_name="logger") as run:
        mlflow.log_param("lr", 0.1)
        mlflow.log_params({"depth": 3, "model": "tree"})
        for step in range(20):
            mlflow.log_metric("loss", 1 / (step + 1), step=step)
        mlflow.log_metrics({"acc": 0.75, "f1": 0.5}, step=3)
        mlflow.log_metric("odd", float("nan"))
        mlflow.set_tags({"team": "vision", "stage": "dev"})
        mlflow.set_tag("temp", "x")
        client.log_batch(run.info.run_id, metrics=[Metric("batched", i * 0.5, 1_700_000_000_000 + i, i)
                                                   for i in range(100)],
                         params=[Param("batch_param", "p")], tags=[RunTag("batch_tag", "t")])
    client.delete_tag(run.info.run_id, "temp")
    got = client.get_run(run.info.run_id)
    assert got.info.status == "FINISHED" and got.info.run_name == "logger" and got.info.end_time
    assert got.data.params == {"lr": "0.1", "depth": "3", "model": "tree", "batch_param": "p"}
    assert got.data.metrics["loss"] == pytest.approx(1 / 20) and got.data.metrics["acc"] == 0.75
    assert math.isnan(got.data.metrics["odd"])
    assert {"team": "vision", "stage": "dev", "batch_tag": "t"}.items() <= got.data.tags.items()
    assert "temp" not in got.data.tags
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(s, 1 / (s + 1)) for s in range(20)]
    assert [m.timestamp for m in client.get_metric_history(run.info.run_id, "batched")][:2] == [
        1_700_000_000_000, 1_700_000_000_001]
    with pytest.raises(MlflowException, match="lr"):  # params never change, as in MLflow
        client.log_param(run.info.run_id, "lr", 0.2)
    # the same run is an ordinary mlkeep run
    with mlkeep.open(mlkeep_server.root) as store:
        native = store.get_run(run.info.run_id)
        assert native.experiment == "logging" and native.params["depth"] == "3"
        assert native.metrics["loss"].count == 20 and native.metrics["batched"].count == 100
        assert [r.id for r in store.search_runs("params.model = 'tree'")] == [run.info.run_id]


def test_search_runs_filters_order_and_views(client: MlflowClient) -> None:
    exp_id = client.create_experiment("search")
    made = {}
    for i in range(6):
        run = client.create_run(exp_id, run_name=f"r{i}", tags={"parity": "even" if i % 2 == 0 else "odd"})
        client.log_batch(run.info.run_id, metrics=[Metric("acc", i / 10, 0, 0)], params=[Param("n", str(i))])
        client.set_terminated(run.info.run_id)
        made[i] = run.info.run_id
    found = client.search_runs([exp_id], "metrics.acc >= 0.2 and tags.parity = 'even'",
                               order_by=["metrics.acc DESC"])
    assert [r.info.run_name for r in found] == ["r4", "r2"]
    asc = client.search_runs([exp_id], "params.n != '0'", order_by=["metrics.acc ASC"], max_results=2)
    assert [r.info.run_name for r in asc] == ["r1", "r2"]
    assert [r.info.run_name for r in client.search_runs([exp_id], "attributes.run_name LIKE 'r_'",
                                                        order_by=["attributes.run_name DESC"])][:2] == ["r5", "r4"]
    everything = mlflow.search_runs([exp_id], order_by=["metrics.acc DESC"])  # pandas, paging inside
    assert list(everything["tags.mlflow.runName"]) == [f"r{i}" for i in range(5, -1, -1)]
    client.delete_run(made[5])
    assert made[5] not in {r.info.run_id for r in client.search_runs([exp_id])}
    deleted = client.search_runs([exp_id], run_view_type=ViewType.DELETED_ONLY)
    assert [r.info.run_id for r in deleted] == [made[5]]
    client.restore_run(made[5])
    assert len(client.search_runs([exp_id], run_view_type=ViewType.ALL)) == 6
    with pytest.raises(MlflowException, match="INVALID_PARAMETER_VALUE"):
        client.search_runs([exp_id], "metrics.acc >>> 1")
    client.log_inputs(made[2], [DatasetInput(Dataset("iris", "d1", "local", "/data/iris.csv"),
                                             [InputTag("mlflow.data.context", "training")])])
    client.log_inputs(made[3], [DatasetInput(Dataset("iris", "d1", "local", "/data/iris.csv"))])
    by_dataset = client.search_runs([exp_id], "datasets.name = 'iris' AND datasets.context = 'training'")
    assert [r.info.run_id for r in by_dataset] == [made[2]]
    (shown,) = by_dataset[0].inputs.dataset_inputs  # search results carry their datasets, as MLflow's do
    assert (shown.dataset.digest, [(t.key, t.value) for t in shown.tags]) == ("d1", [("mlflow.data.context",
                                                                                   "training")])
    assert {r.info.run_name for r in client.search_runs([exp_id], "datasets.digest = 'd1'")} == {"r2", "r3"}


def test_artifacts_upload_list_download(client: MlflowClient, tmp_path: Path) -> None:
    folder = tmp_path / "outputs"
    (folder / "nested").mkdir(parents=True)
    (folder / "a.txt").write_text("alpha")
    (folder / "nested" / "b.bin").write_bytes(bytes(range(256)) * 40)
    mlflow.set_experiment("artifacts")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(folder / "a.txt"))
        mlflow.log_artifacts(str(folder), artifact_path="all")
        mlflow.log_text("some text", "notes/readme.md")
        mlflow.log_dict({"k": [1, 2]}, "config.json")
    listed = {f.path: f.is_dir for f in client.list_artifacts(run.info.run_id)}
    assert listed == {"a.txt": False, "all": True, "notes": True, "config.json": False}
    assert [(f.path, f.file_size) for f in client.list_artifacts(run.info.run_id, "all/nested")] == [
        ("all/nested/b.bin", 10240)]
    back = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="all",
                                                    dst_path=str(tmp_path / "back")))
    assert (back / "a.txt").read_text() == "alpha"
    assert (back / "nested" / "b.bin").read_bytes() == (folder / "nested" / "b.bin").read_bytes()
    assert mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/config.json") == {"k": [1, 2]}


@pytest.mark.slow  # MLflow's model saving imports skops, sklearn's estimator list, torch: ~30 s once
def test_sklearn_log_model_then_load_model_predicts_the_same(mlkeep_server: Any, iris: Any) -> None:
    X, y = iris
    model = LogisticRegression(max_iter=300).fit(X, y)
    mlflow.set_experiment("models")
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(model, name="clf", pip_requirements=REQS)
        pickled = mlflow.sklearn.log_model(model, name="clf-pickle", pip_requirements=REQS,
                                           serialization_format="cloudpickle")
    assert info.model_id.startswith("m-") and info.run_id == run.info.run_id
    for uri in (info.model_uri, f"runs:/{run.info.run_id}/clf", pickled.model_uri):
        np.testing.assert_array_equal(mlflow.sklearn.load_model(uri).predict(X), model.predict(X))
    np.testing.assert_array_equal(mlflow.pyfunc.load_model(info.model_uri).predict(X), model.predict(X))
    assert mlflow.get_logged_model(info.model_id).status.to_proto() == 2  # READY
    with mlkeep.open(mlkeep_server.root) as store:  # a model logged through MLflow is an mlkeep Model
        assert {m.id for m in store.list_models(run.info.run_id)} == {info.model_id, pickled.model_id}
        np.testing.assert_array_equal(store.load_model(pickled.model_id).predict(X), model.predict(X))
        assert pickled.model_id in {n.id for n in store.lineage(run.info.run_id, "down").of_kind("model")}


@pytest.mark.slow  # MLflow's model saving imports skops, sklearn's estimator list, torch: ~30 s once
def test_a_model_logged_through_mlflow_commits_to_a_repository_bit_for_bit(mlkeep_server: Any, iris: Any) -> None:
    from mlkeep.compat.mlflow.commit import commit_logged_model

    X, y = iris
    models = [LogisticRegression(C=c, max_iter=300).fit(X, y) for c in (0.1, 1.0)]
    mlflow.set_experiment("to-repository")
    logged = []
    for m in models:
        with mlflow.start_run():
            logged.append(mlflow.sklearn.log_model(m, name="clf", pip_requirements=REQS,
                                                   serialization_format="cloudpickle"))
            skops_info = mlflow.sklearn.log_model(m, name="clf-skops", pip_requirements=REQS)
    with mlkeep.open(mlkeep_server.root) as store:
        first = commit_logged_model(store, "iris-mlflow", logged[0].model_uri, "from MLflow")
        second = commit_logged_model(store, "iris-mlflow", f"runs:/{logged[1].run_id}/clf")
        repo = store.repo("iris-mlflow")
        assert [c.id for c in repo.log()] == [second.id, first.id] and second.parents == (first.id,)
        for commit, info, fitted in zip((first, second), logged, models):
            assert commit.run_id == info.run_id
            assert commit.id in store.lineage(info.run_id, "down").nodes
            out = repo.checkout(commit.id)
            for attr in ("coef_", "intercept_", "classes_"):
                assert getattr(out, attr).tobytes() == getattr(fitted, attr).tobytes()
            np.testing.assert_array_equal(out.predict_proba(X), fitted.predict_proba(X))
        with pytest.raises(UnsupportedError, match="cloudpickle"):  # skops: mlkeep does not read it itself
            commit_logged_model(store, "iris-mlflow", skops_info.model_uri)
        store.registry.register("iris-mlflow-reg", logged[0].model_id)
        third = commit_logged_model(store, "iris-mlflow", "models:/iris-mlflow-reg/1", branch="from-registry")
        assert repo.checkout(third.id).coef_.tobytes() == models[0].coef_.tobytes()
        with pytest.raises(NotFoundError):
            commit_logged_model(store, "iris-mlflow", f"runs:/{logged[0].run_id}/no-such-model")


@pytest.mark.slow  # MLflow's model saving imports skops, sklearn's estimator list, torch: ~30 s once
def test_registry_versions_aliases_tags_and_models_uri(client: MlflowClient, iris: Any) -> None:
    X, y = iris
    models = [LogisticRegression(C=c, max_iter=300).fit(X, y) for c in (0.01, 10.0)]
    mlflow.set_experiment("registry")
    for m in models:
        with mlflow.start_run():
            mlflow.sklearn.log_model(m, name="model", registered_model_name="iris-clf", pip_requirements=REQS)
    rm = client.get_registered_model("iris-clf")
    assert rm.name == "iris-clf" and [v.version for v in rm.latest_versions] == ["2"]
    client.set_registered_model_alias("iris-clf", "champion", "1")
    client.set_registered_model_alias("iris-clf", "challenger", 2)
    assert client.get_model_version_by_alias("iris-clf", "champion").version == "1"
    assert client.get_registered_model("iris-clf").aliases == {"champion": "1", "challenger": "2"}
    for alias, m in (("champion", models[0]), ("challenger", models[1])):
        loaded = mlflow.sklearn.load_model(f"models:/iris-clf@{alias}")
        np.testing.assert_array_equal(loaded.predict(X), m.predict(X))
    np.testing.assert_array_equal(mlflow.sklearn.load_model("models:/iris-clf/2").predict(X), models[1].predict(X))
    client.set_registered_model_alias("iris-clf", "champion", "2")  # a move, recorded as a transition
    client.delete_registered_model_alias("iris-clf", "challenger")
    assert client.get_registered_model("iris-clf").aliases == {"champion": "2"}
    client.set_registered_model_tag("iris-clf", "team", "vision")
    client.set_model_version_tag("iris-clf", "1", "validated", "yes")
    client.update_model_version("iris-clf", "1", description="the first")
    v1 = client.get_model_version("iris-clf", "1")
    assert v1.tags == {"validated": "yes"} and v1.description == "the first"
    assert [m.name for m in client.search_registered_models("name = 'iris-clf'")] == ["iris-clf"]
    assert sorted(v.version for v in client.search_model_versions("name = 'iris-clf'")) == ["1", "2"]
    client.create_registered_model("empty-model", description="no versions yet")
    assert client.get_registered_model("empty-model").description == "no versions yet"
    with pytest.raises(MlflowException, match="already exists"):
        client.create_registered_model("empty-model")
    client.delete_registered_model_tag("iris-clf", "team")
    client.delete_model_version_tag("iris-clf", "1", "validated")
    assert client.get_registered_model("iris-clf").tags == {} and client.get_model_version("iris-clf", "1").tags == {}

    # Stages are the aliases `staging` and `production`: a transition moves the alias.
    assert client.transition_model_version_stage("iris-clf", "1", "Staging").current_stage == "Staging"
    client.transition_model_version_stage("iris-clf", "2", "Production")
    assert {v.version: v.current_stage for v in client.get_latest_versions("iris-clf")} == {
        "1": "Staging", "2": "Production"}
    assert [v.version for v in client.get_latest_versions("iris-clf", stages=["Production"])] == ["2"]
    client.transition_model_version_stage("iris-clf", "2", "Staging")  # takes the stage from version 1
    assert [client.get_model_version("iris-clf", n).current_stage for n in "12"] == ["None", "Staging"]
    assert client.transition_model_version_stage("iris-clf", "2", "Archived").current_stage == "None"
    client.transition_model_version_stage("iris-clf", "1", "Production")
    np.testing.assert_array_equal(mlflow.sklearn.load_model("models:/iris-clf@production").predict(X),
                                  models[0].predict(X))
    with pytest.raises(MlflowException, match="stage is one of"):
        client.transition_model_version_stage("iris-clf", "1", "Testing")

    # Rename, delete a version (its number is never given again), delete the model.
    client.rename_registered_model("iris-clf", "iris-classifier")
    assert client.get_model_version("iris-classifier", "2").name == "iris-classifier"
    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
        client.get_registered_model("iris-clf")
    client.delete_model_version("iris-classifier", "2")
    assert [v.version for v in client.search_model_versions("name = 'iris-classifier'")] == ["1"]
    assert client.get_registered_model("iris-classifier").aliases == {"production": "1"}  # champion was on 2
    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
        client.get_model_version("iris-classifier", "2")
    again = client.create_model_version("iris-classifier", client.get_model_version("iris-classifier", "1").source)
    assert again.version == "3"
    client.delete_registered_model("iris-classifier")
    assert "iris-classifier" not in [m.name for m in client.search_registered_models()]


@pytest.mark.slow  # MLflow's model saving imports skops, sklearn's estimator list, torch: ~30 s once
def test_autolog_records_a_sklearn_fit(mlkeep_server: Any, client: MlflowClient, iris: Any) -> None:
    X, y = iris
    mlflow.set_experiment("autolog")
    mlflow.sklearn.autolog(log_input_examples=False, log_model_signatures=False, log_datasets=True)
    try:
        with mlflow.start_run() as run:
            LogisticRegression(C=0.5, max_iter=200).fit(X, y)
    finally:
        mlflow.sklearn.autolog(disable=True)
    got = client.get_run(run.info.run_id)
    assert got.data.params["C"] == "0.5" and got.data.params["max_iter"] == "200"
    assert 0.9 < got.data.metrics["training_accuracy_score"] <= 1.0
    assert got.outputs.model_outputs, "autolog logged the fitted model"
    assert got.inputs.dataset_inputs, "autolog logged the training data as a dataset"
    with mlkeep.open(mlkeep_server.root) as store:
        assert store.get_run(run.info.run_id).params["C"] == "0.5"


def _every_mlflow_endpoint() -> list[tuple[str, str]]:
    """(method, path) of every REST call in the client's protocol definitions (path parameters filled in)."""
    import re

    from mlflow.protos.mlflow_artifacts_pb2 import MlflowArtifactsService
    from mlflow.protos.model_registry_pb2 import ModelRegistryService
    from mlflow.protos.service_pb2 import MlflowService
    from mlflow.utils.rest_utils import _REST_API_PATH_PREFIX, extract_api_info_for_service

    return sorted({(method, re.sub(r"<[^>]+>", "x", path))
                   for service in (MlflowService, ModelRegistryService, MlflowArtifactsService)
                   for path, method in extract_api_info_for_service(service, _REST_API_PATH_PREFIX).values()
                   if re.match(r"/api/\d\.\d/", path)})  # 3.17.2 lists search-datasets as "/api/2.0mlflow/..."


def test_every_call_of_the_client_protocol_answers_in_mlflow_format_never_500(mlkeep_server: Any) -> None:
    endpoints = _every_mlflow_endpoint()
    assert len(endpoints) > 80
    with httpx.Client(base_url=mlkeep_server.url, timeout=30) as http:
        for method, path in endpoints:
            response = http.request(method, path) if method in ("GET", "DELETE") else http.request(method, path, json={})
            assert response.status_code != 500 and response.status_code < 600, (method, path, response.text)
            if response.status_code >= 400:
                body = response.json()
                assert body.get("error_code") and body.get("message"), (method, path, body)
                if response.status_code == 501:  # says what mlkeep does not do (and what to do instead)
                    assert body["error_code"] == "NOT_IMPLEMENTED" and "mlkeep" in body["message"], (method, path)


def test_unsupported_calls_answer_in_mlflow_format_never_500(mlkeep_server: Any) -> None:
    for method, path in (("GET", "/api/2.0/mlflow/traces"), ("POST", "/api/2.0/mlflow/no/such/call"),
                         ("GET", "/api/2.0/mlflow-artifacts/mpu/create/x")):
        response = httpx.request(method, mlkeep_server.url + path)
        assert response.status_code == 501
        body = response.json()
        assert body["error_code"] == "NOT_IMPLEMENTED" and "mlkeep" in body["message"]
    missing = httpx.get(mlkeep_server.url + "/api/2.0/mlflow/runs/get", params={"run_id": "0" * 32})
    assert missing.status_code == 404 and missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    search = httpx.post(mlkeep_server.url + "/api/2.0/mlflow/runs/search", json={"experiment_ids": ["f" * 32]})
    assert search.status_code == 404 and search.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    bad = httpx.post(mlkeep_server.url + "/api/2.0/mlflow/runs/log-metric", content=b"{not json")
    assert bad.status_code == 400 and bad.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    escape = httpx.get(mlkeep_server.url + f"/api/2.0/mlflow-artifacts/artifacts/runs/{'0' * 32}/../../etc/passwd")
    assert escape.status_code in (400, 404) and "error_code" in escape.json()



def test_import_mlflow_reads_an_http_server_too(mlkeep_server: Any, tmp_path: Path) -> None:
    """The importer's http:// source, pointed at this module's server: what it serves comes across."""
    from mlkeep.compat.mlflow.importer import import_mlflow

    with mlkeep.init(tmp_path) as store, mlkeep.open(mlkeep_server.root) as served:
        report = import_mlflow(store, mlkeep_server.url)
        assert report.verified, report.mismatches
        source = served.search_runs("")
        assert report.runs == len(source) > 0
        for exp in served.list_experiments():
            assert store.get_experiment(exp.name).tags == exp.tags
        for run in source:
            mine = store.get_run(run.id)
            assert (mine.params, mine.tags, mine.status) == (run.params, run.tags, run.status)
            for key in run.metrics:
                assert store.get_metric_history(run.id, key) == served.get_metric_history(run.id, key)
