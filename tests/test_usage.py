"""`du`: every object of the store is counted once, and each group's bytes are those of the objects only it names."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from mlkeep.errors import InvalidInputError
from mlkeep.intermediates.storage import get_manifest
from mlkeep.store import Store
from mlkeep.usage import UsageReport, du

sys.path.insert(0, str(Path(__file__).parent / "cli"))


def _on_disk(store: Store) -> dict[str, int]:
    """Object id -> size of its file, straight from the folder (not through mlkeep)."""
    root = Path(store.objects.root)
    return {d.name + f.name: f.stat().st_size for d in root.iterdir() if len(d.name) == 2
            for f in d.iterdir() if len(f.name) == 62}


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(64, 96), torch.nn.ReLU(), torch.nn.Linear(96, 10))


@pytest.fixture
def filled(folder_store: Store, tmp_path: Path) -> dict[str, Any]:
    """Two experiments sharing an artifact, a torch model committed twice (and once more elsewhere), intermediates."""
    store = folder_store
    X, y = load_digits(return_X_y=True)
    shared = tmp_path / "labels.txt"
    shared.write_text("\n".join(map(str, range(10))))
    runs = {}
    for exp, c in (("a", 1.0), ("b", 0.1)):
        own = tmp_path / f"notes-{exp}.txt"
        own.write_bytes(os.urandom(3000))
        with store.start_run(exp) as run:
            run.log_artifact(shared)
            run.log_artifact(own)
            run.log_model(LogisticRegression(max_iter=40, C=c).fit(X[:300], y[:300]), "clf")
        runs[exp] = run.id
    net = _net()
    first = {k: v.clone() for k, v in net.state_dict().items()}
    repo = store.repo("mlp")
    c1 = repo.commit(net, "v1")
    with torch.no_grad():
        net[2].weight.add_(0.01)  # only the head changes: the first layer's chunks are shared with v1
    c2 = repo.commit(net, "v2")
    c3 = store.repo("mlp-copy").commit(first, "same weights as mlp v1")
    images = (X[:400] / 16.0).astype(np.float32)
    inter = store.intermediates
    inter.block_rows, inter.chunk_bytes = 128, 8 * 1024
    captured = inter.capture(net, images, layers=["0", "2"], codec="exact", repo="mlp", dedup="exact")
    return {"runs": runs, "commits": {"mlp": [c1, c2], "mlp-copy": [c3]}, "state_bytes": sum(
        t.numel() * t.element_size() for t in first.values()), "intermediates": captured}


def _adds_up(report: UsageReport, disk: dict[str, int]) -> None:
    parts = [report.shared, report.other, report.unreferenced]
    assert report.total.objects == len(disk) and report.total.stored_bytes == sum(disk.values())
    assert sum(g.objects for g in report.groups) + sum(p.objects for p in parts) == len(disk)
    assert sum(g.stored_bytes for g in report.groups) + sum(p.stored_bytes for p in parts) == sum(disk.values())
    assert report.missing == 0


def _commit_objects(store: Store, commit: Any) -> set[str]:
    skeleton = {v for k, v in commit.extra.items() if k == "skeleton"}
    return store.tensors.tree_objects(commit.tree) | {commit.id} | skeleton


def test_by_repo_shared_chunks_are_counted_once(filled: dict[str, Any], folder_store: Store) -> None:
    store, disk = folder_store, _on_disk(folder_store)
    report = du(store, by="repo")
    _adds_up(report, disk)
    history = {name: store.repo(name).log() for name in ("mlp", "mlp-copy")}  # the capture committed once more
    assert [c.id for c in history["mlp"][-2:]] == [c.id for c in reversed(filled["commits"]["mlp"])]
    named = {name: set().union(*(_commit_objects(store, c) for c in cs)) for name, cs in history.items()}
    groups = {g.label: g for g in report.groups}
    assert set(groups) == {"mlp", "mlp-copy"}
    both = named["mlp"] & named["mlp-copy"]
    assert both, "the first layer's chunks are the same objects in both repositories"
    for name, other in (("mlp", "mlp-copy"), ("mlp-copy", "mlp")):
        own = named[name] - named[other]
        assert groups[name].objects == len(own)
        assert groups[name].stored_bytes == sum(disk[o] for o in own)
        assert groups[name].shared_bytes == sum(disk[o] for o in both)
    assert report.shared.stored_bytes == sum(disk[o] for o in both)
    # logical: every commit's tensors, uncompressed, plus its commit object; v1 and v2 share chunks, so
    # storing both took far less than their logical size
    commits = [c for cs in history.values() for c in cs]
    commit_bytes = sum(len(store.objects.get_bytes(c.id)) for c in commits)
    skeleton_bytes = sum(len(store.objects.get_bytes(v)) for c in commits for k, v in c.extra.items() if k == "skeleton")
    assert sum(g.logical_bytes for g in report.groups) == len(commits) * filled["state_bytes"] + commit_bytes + skeleton_bytes
    assert groups["mlp"].stored_bytes + groups["mlp"].shared_bytes < groups["mlp"].logical_bytes


def test_by_experiment_a_shared_artifact_is_counted_apart(filled: dict[str, Any], folder_store: Store) -> None:
    store, disk = folder_store, _on_disk(folder_store)
    report = du(store, by="experiment")
    _adds_up(report, disk)

    def objects(run_id: str) -> set[str]:
        run = store.get_run(run_id)
        named = {a.object for a in store.list_artifacts(run_id)} | {m.object for m in store.list_models(run_id)}
        return named | {run.environment["object"]}

    a, b = (objects(filled["runs"][e]) for e in ("a", "b"))
    groups = {g.label: g for g in report.groups}
    assert groups["a"].stored_bytes == sum(disk[o] for o in a - b)
    assert groups["b"].stored_bytes == sum(disk[o] for o in b - a)
    assert report.shared.objects == len(a & b) >= 2  # the labels file and the environment document
    assert groups["a"].entities == 4  # two artifacts, a model, the run's environment
    artifact_bytes = sum(a.size for a in store.list_artifacts(filled["runs"]["a"]))
    assert groups["a"].logical_bytes > artifact_bytes


def test_by_intermediate_and_by_kind(filled: dict[str, Any], folder_store: Store) -> None:
    store, disk = folder_store, _on_disk(folder_store)
    report = du(store, by="intermediate")
    _adds_up(report, disk)
    groups = {g.group: g for g in report.groups}
    for item in filled["intermediates"].values():
        doc = get_manifest(store.objects, item.manifest)
        own = {item.manifest, *(o for block in doc["chunks"] for o in block)}
        assert groups[item.id].objects == len(own) and groups[item.id].stored_bytes == sum(disk[o] for o in own)
        skeleton = store.objects.get_bytes(item.document["skeleton"])  # the module, to recompute it
        assert groups[item.id].logical_bytes == item.raw_bytes + len(skeleton)
        assert groups[item.id].label == item.name and item.layer in item.name
    assert report.shared.objects == 1  # the skeleton, named by both layers
    kinds = {g.label: g for g in du(store).groups}
    artifacts = [a for r in filled["runs"].values() for a in store.list_artifacts(r)]
    assert kinds["artifacts"].logical_bytes == sum(a.size for a in artifacts)
    assert kinds["artifacts"].entities == 4
    assert {"artifacts", "models", "environments", "model versions", "intermediates"} <= set(kinds)
    _adds_up(du(store), disk)


def test_unreferenced_and_missing_objects_and_bad_input(filled: dict[str, Any], folder_store: Store) -> None:
    store = folder_store
    orphan = store.objects.put_bytes(os.urandom(5000))
    report = du(store, by="kind")
    _adds_up(report, _on_disk(store))
    assert report.unreferenced.objects == 1 and report.unreferenced.stored_bytes == _on_disk(store)[orphan]
    artifact = store.list_artifacts(filled["runs"]["a"])[1]
    os.chmod(store.objects.path(artifact.object), 0o644)
    store.objects.remove(artifact.object)
    assert du(store).missing == 1
    with pytest.raises(InvalidInputError, match="experiment"):
        du(store, by="color")


def test_cli_du(filled: dict[str, Any], folder_store: Store) -> None:
    from cli_support import invoke

    root = ["--store", str(Path(folder_store.objects.root).parent)]
    out = invoke(*root, "du", "--by", "repo", "--json")
    assert out.exit_code == 0, out.stderr
    assert out.json() == du(folder_store, by="repo").to_dict()
    table = invoke(*root, "du", "--by", "experiment")
    assert table.exit_code == 0 and "shared by several groups" in table.stdout and "total" in table.stdout
    bad = invoke(*root, "du", "--by", "color")
    assert bad.exit_code == 1 and bad.stderr.startswith("error: Cannot group by 'color'")


def test_every_grouping_adds_up_on_both_databases(store: Store, tmp_path: Path) -> None:
    X, y = load_digits(return_X_y=True)
    with store.start_run("e") as run:
        run.log_model(LogisticRegression(max_iter=20).fit(X[:200], y[:200]), "clf")
        run.log_dataset(X[:50], name="d", targets=y[:50])
    store.repo("mlp").commit(_net(), "v1", run=run.id)
    sizes = {oid: size for oid, size, _ in store.objects.entries()}
    for by in ("kind", "experiment", "repo", "intermediate"):
        _adds_up(du(store, by=by), sizes)
    by_experiment = {g.label: g for g in du(store, by="experiment").groups}
    assert by_experiment["e"].entities == 3  # the model, the environment, and the commit made in the run
