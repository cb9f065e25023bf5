"""Experiment tags: set, overwrite, delete, read back with the experiment, on every database."""

from __future__ import annotations

import pytest

from mlkeep.errors import InvalidInputError, NotFoundError
from mlkeep.store import Store
from mlkeep.tracking import experiments


def test_tags_are_set_overwritten_deleted_and_read_with_the_experiment(store: Store) -> None:
    made = store.create_experiment("tagged", tags={"team": "vision", "budget": 3})
    assert made.tags == {"team": "vision", "budget": "3"}  # values kept as text, like run tags
    assert store.set_experiment_tags("tagged", {"team": "nlp", "owner": "ana"}).tags == {
        "team": "nlp", "budget": "3", "owner": "ana"}
    store.delete_experiment_tag(made.id, "budget")
    assert store.get_experiment("tagged").tags == {"owner": "ana", "team": "nlp"}
    with pytest.raises(NotFoundError, match="budget"):
        store.delete_experiment_tag("tagged", "budget")
    with pytest.raises(NotFoundError):
        store.set_experiment_tags("no-such-experiment", {"a": "b"})
    assert {e.name: e.tags for e in store.list_experiments()}["tagged"] == {"owner": "ana", "team": "nlp"}
    assert store.get_experiment("tagged").to_dict()["tags"] == {"owner": "ana", "team": "nlp"}


def test_tags_of_one_experiment_are_not_anothers_and_survive_delete_and_restore(store: Store) -> None:
    store.create_experiment("a", tags={"k": "a"})
    store.create_experiment("b")
    assert store.get_experiment("b").tags == {}
    experiments.delete_experiment(store.db, "a")
    assert experiments.list_experiments(store.db, "deleted")[0].tags == {"k": "a"}
    experiments.restore_experiment(store.db, "a")
    assert store.get_experiment("a").tags == {"k": "a"}


def test_a_bad_tag_is_refused_before_anything_is_written(store: Store) -> None:
    with pytest.raises(InvalidInputError):
        store.create_experiment("bad", tags={"ok": "1", "": "empty key"})
    with pytest.raises(NotFoundError):
        store.get_experiment("bad")  # the experiment was not created either: one transaction
    store.create_experiment("good")
    with pytest.raises(InvalidInputError):
        store.set_experiment_tags("good", {"ok": "1", "x" * 300: "too long"})
    assert store.get_experiment("good").tags == {}
    with pytest.raises(InvalidInputError):
        store.set_experiment_tags("good", ["not", "a", "mapping"])  # type: ignore[arg-type]


def test_describe_experiment_replaces_and_removes_the_description(store: Store) -> None:
    store.create_experiment("d", "first")
    assert experiments.describe_experiment(store.db, "d", "second").description == "second"
    assert experiments.describe_experiment(store.db, "d", None).description is None
