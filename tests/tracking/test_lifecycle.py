"""Deleting and restoring experiments and runs, renaming them, and keeping another tracker's ids and times."""

from __future__ import annotations

import pytest

from mlkeep.errors import ConflictError, InvalidInputError, NotFoundError, RunStateError
from mlkeep.store import Store
from mlkeep.tracking import experiments, runs


def test_a_deleted_run_is_kept_hidden_from_search_and_restorable(store: Store) -> None:
    with store.start_run("life", "a") as a:
        a.log_metric("m", 1.0)
    with store.start_run("life", "b"):
        pass
    store.delete_run(a.id)
    assert store.get_run(a.id).lifecycle_stage == "deleted"
    assert store.get_run(a.id).metrics["m"].value == 1.0  # nothing is lost
    assert [r.name for r in store.search_runs()] == ["b"]
    assert [r.name for r in store.search_runs(stage="deleted")] == ["a"]
    assert sorted(r.name for r in store.search_runs(stage=None)) == ["a", "b"]
    assert [r.name for r in store.search_runs("attributes.lifecycle_stage = 'deleted'", stage=None)] == ["a"]
    with pytest.raises(InvalidInputError):
        store.search_runs(stage="gone")
    store.delete_run(a.id)  # deleting twice changes nothing
    store.restore_run(a.id)
    assert store.get_run(a.id).lifecycle_stage == "active"
    assert sorted(r.name for r in store.search_runs()) == ["a", "b"]
    with pytest.raises(NotFoundError):
        runs.delete_run(store.db, "0" * 32)


def test_a_deleted_experiment_is_hidden_refuses_new_runs_and_comes_back(store: Store) -> None:
    with store.start_run("old", "r"):
        pass
    experiments.delete_experiment(store.db, "old")
    assert "old" not in [e.name for e in experiments.list_experiments(store.db)]
    assert [e.name for e in experiments.list_experiments(store.db, "deleted")] == ["old"]
    assert store.get_experiment("old").lifecycle_stage == "deleted"
    with pytest.raises(RunStateError, match="deleted"):
        store.start_run("old", "again")
    experiments.restore_experiment(store.db, "old")
    with store.start_run("old", "again") as run:
        pass
    assert store.get_run(run.id).experiment == "old"
    with pytest.raises(InvalidInputError, match="Default"):
        experiments.delete_experiment(store.db, store.create_experiment("Default").id)
    with pytest.raises(InvalidInputError, match="view"):
        experiments.list_experiments(store.db, "sometimes")


def test_rename_and_create_without_taking_an_existing_name(store: Store) -> None:
    exp = store.create_experiment("first")
    store.create_experiment("second")
    assert experiments.rename_experiment(store.db, exp.id, "renamed").name == "renamed"
    with pytest.raises(ConflictError):
        experiments.rename_experiment(store.db, "renamed", "second")
    with pytest.raises(ConflictError):
        experiments.create_experiment(store.db, "second", exist_ok=False)
    assert experiments.create_experiment(store.db, "second").name == "second"  # the default: get or create
    with store.start_run("second", "old name") as run:
        pass
    runs.rename_run(store.db, run.id, "new name")
    assert store.get_run(run.id).name == "new name"
    with pytest.raises(InvalidInputError):
        runs.rename_run(store.db, run.id, " ")


def test_an_import_keeps_ids_times_and_creators_and_tags_can_be_deleted(store: Store) -> None:
    run_id = runs.create_run(store.db, "imported", "theirs", run_id="a1b2c3", start_time=1_000, creator="ada",
                             tags_={"k": "v", "gone": "x"})
    runs.end_run(store.db, run_id, "FAILED", end_time=2_000)
    run = store.get_run(run_id)
    assert (run.id, run.start_time, run.end_time, run.creator, run.status) == ("a1b2c3", 1_000, 2_000, "ada", "FAILED")
    runs.delete_tag(store.db, run_id, "gone")
    assert store.get_run(run_id).tags == {"k": "v"}
    with pytest.raises(NotFoundError, match="gone"):
        runs.delete_tag(store.db, run_id, "gone")
    with pytest.raises(InvalidInputError):
        runs.create_run(store.db, "imported", run_id="../escape")
