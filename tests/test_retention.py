"""Retention: expired failed and deleted runs are purged with their blobs, old versions lose their weights,
and nothing live is touched; a dry run changes nothing."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.tree import DecisionTreeClassifier
from sqlalchemy import func, select, update

from mlkeep import retention
from mlkeep.errors import InvalidInputError, MlkeepError, NotFoundError
from mlkeep.gc import gc
from mlkeep.metadata.tables import links, metrics, runs
from mlkeep.retention import RetentionPolicy
from mlkeep.store import Store
from mlkeep.tracking.runs import delete_run

sys.path.insert(0, str(Path(__file__).parent / "cli"))

DAY_MS = 86_400_000


def _age(store: Store, run_id: str, days: float) -> None:
    """Pretend the run started and ended `days` ago."""
    then = time.time_ns() // 1_000_000 - int(days * DAY_MS)
    with store.db.begin() as conn:
        conn.execute(update(runs).where(runs.c.id == run_id).values(start_time=then, end_time=then))


def _failed_run(store: Store, tmp: Path, name: str, *, parent: str | None = None) -> str:
    X, y = load_digits(return_X_y=True)
    (tmp / f"{name}.txt").write_text(f"only {name} has this")
    with pytest.raises(RuntimeError):
        with store.start_run("ret", name, parent=parent) as run:
            run.log_params({"C": 1.0})
            run.set_tag("who", name)
            run.log_metric("loss", 0.5)
            data = run.log_dataset(X[:40], name="digits", targets=y[:40])
            model = run.log_model(DecisionTreeClassifier(max_depth=2).fit(X[:40], y[:40]), trained_on=data)
            pred = run.log_predictions(model, data, y[:40])
            run.log_evaluation(model, data, {"acc": 1.0}, prediction=pred)
            run.log_artifact(tmp / f"{name}.txt")
            raise RuntimeError("training diverged")
    return run.id


def _snapshot(store: Store, run_id: str) -> tuple:
    r = store.get_run(run_id)
    arts = {a.path: a.object for a in store.list_artifacts(run_id)}
    return r.status, r.params, r.tags, r.metrics["loss"].count, arts, [m.id for m in store.list_models(run_id)]


def _count(store: Store, table, *where) -> int:  # type: ignore[no-untyped-def]
    with store.db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def test_policy_is_stored_and_checked(store: Store) -> None:
    assert retention.get_policy(store).empty
    policy = retention.set_policy(store, RetentionPolicy(failed_runs_days=30, keep_versions=3))
    assert retention.get_policy(store) == policy
    for bad in ({"failed_runs_days": -1}, {"deleted_runs_days": "soon"}, {"keep_versions": 0},
                {"keep_versions": 2.5}, {"keep_versions": True}):
        with pytest.raises(InvalidInputError):
            RetentionPolicy(**bad)  # type: ignore[arg-type]


def test_expired_failed_and_deleted_runs_are_purged_and_nothing_live_is_touched(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retention, "PURGE_BATCH", 1)  # a transaction per run: a child must go before its parent
    old_failed = _failed_run(store, tmp_path, "old-failed")
    old_child = _failed_run(store, tmp_path, "old-child", parent=old_failed)
    recent_failed = _failed_run(store, tmp_path, "recent-failed")
    kept_by_child = _failed_run(store, tmp_path, "has-live-child")
    with store.start_run("ret", "live-child", parent=kept_by_child) as child:
        child.log_metric("loss", 0.1)
    registered = _failed_run(store, tmp_path, "registered")
    store.registry.register("clf", store.list_models(registered)[0].id)
    with store.start_run("ret", "finished") as finished:
        finished.log_metric("loss", 0.2)
        (tmp_path / "f.txt").write_text("finished")
        finished.log_artifact(tmp_path / "f.txt")
    with store.start_run("ret", "deleted") as deleted:
        deleted.log_metric("loss", 0.3)
        (tmp_path / "d.txt").write_text("deleted")
        deleted.log_artifact(tmp_path / "d.txt")
    delete_run(store.db, deleted.id)
    for run_id in (old_failed, old_child, kept_by_child, child.id, registered, finished.id, deleted.id):
        _age(store, run_id, 40)
    live = [recent_failed, kept_by_child, child.id, registered, finished.id]
    before = {r: _snapshot(store, r) for r in live}
    doomed_objects = {a.object for r in (old_failed, old_child, deleted.id) for a in store.list_artifacts(r)}
    retention.set_policy(store, RetentionPolicy(failed_runs_days=30, deleted_runs_days=7))

    dry = gc(store, dry_run=True, grace_seconds=0)
    assert dry.retention is not None and set(dry.retention.runs_purged) == {old_failed, old_child, deleted.id}
    assert dry.retention.runs_kept == {kept_by_child: "a child run stays",
                                       registered: "a registered model version comes from it"}
    assert store.get_run(old_failed).status == "FAILED" and all(store.objects.exists(o) for o in doomed_objects)

    report = gc(store, grace_seconds=0)
    assert report.retention is not None and set(report.retention.runs_purged) == {old_failed, old_child, deleted.id}
    for gone in (old_failed, old_child, deleted.id):
        with pytest.raises(NotFoundError):
            store.get_run(gone)
        assert _count(store, metrics, metrics.c.run_id == gone) == 0
        assert _count(store, links, (links.c.src_id == gone) | (links.c.dst_id == gone)) == 0
    assert doomed_objects <= set(report.deleted) and not any(store.objects.exists(o) for o in doomed_objects)
    assert {r: _snapshot(store, r) for r in live} == before
    assert all(store.objects.verify(o) for r in live for o in before[r][4].values())
    assert store.fsck().ok
    assert gc(store, grace_seconds=0).retention.runs_purged == []  # type: ignore[union-attr]


def test_old_versions_lose_their_weights_and_kept_ones_stay_bit_exact(store: Store) -> None:
    repo = store.repo("net")
    rng = np.random.default_rng(0)
    states = [{"w": rng.standard_normal(30_000).astype("float32")} for _ in range(7)]
    ids = [repo.commit(s, f"v{i}").id for i, s in enumerate(states)]  # ids[6] is main
    repo.tag("first", ids[0])
    repo.branch("exp", at=ids[3])
    store.registry.register("net-model", f"net@{ids[1]}")
    retention.set_policy(store, RetentionPolicy(keep_versions=1))

    report = gc(store, dry_run=True, grace_seconds=0)
    assert report.retention is not None and set(report.retention.versions_pruned) == {ids[2], ids[4], ids[5]}
    report = gc(store, grace_seconds=0)
    assert set(report.retention.versions_pruned) == {ids[2], ids[4], ids[5]}  # type: ignore[union-attr]
    assert report.bytes_freed > 0
    store.tensors.blobs.forget()
    for i in (0, 1, 3, 6):  # tagged, registered, the heads of exp and main
        assert np.array_equal(store.repo("net").checkout(ids[i])["w"], states[i]["w"])
    for i in (2, 4, 5):
        with pytest.raises(MlkeepError):
            store.repo("net").checkout(ids[i])
    assert [c.id for c in store.repo("net").log("main")] == ids[::-1]  # history is whole
    assert store.fsck().ok
    assert gc(store, grace_seconds=0).retention.versions_pruned == []  # type: ignore[union-attr]


def test_cli_retention_and_gc(folder_store: Store, tmp_path: Path) -> None:
    from cli_support import invoke

    root = ["--store", str(Path(folder_store.objects.root).parent)]
    assert "everything is kept" in invoke(*root, "retention", "show").stdout
    out = invoke(*root, "retention", "set", "--failed-runs", "30", "--keep-versions", "5", "--json")
    assert out.exit_code == 0, out.stderr
    assert out.json() == {"failed_runs_days": 30.0, "deleted_runs_days": None, "keep_versions": 5}
    invoke(*root, "retention", "set", "--deleted-runs", "7")
    shown = invoke(*root, "retention", "show").stdout
    assert "FAILED and KILLED runs 30 days" in shown and "deleted runs 7 days" in shown and "newest 5" in shown
    assert invoke(*root, "retention", "set", "--keep-versions", "0").exit_code != 0
    run_id = _failed_run(folder_store, tmp_path, "cli")
    _age(folder_store, run_id, 31)
    dry = invoke(*root, "gc", "--dry-run", "--grace", "0")
    assert dry.exit_code == 0 and "would purge 1 run" in dry.stdout
    assert folder_store.get_run(run_id).status == "FAILED"
    out = invoke(*root, "gc", "--grace", "0", "--json")
    assert out.exit_code == 0 and out.json()["retention"]["runs_purged"] == [run_id]
    assert invoke(*root, "retention", "clear").exit_code == 0
    assert retention.get_policy(folder_store).empty
