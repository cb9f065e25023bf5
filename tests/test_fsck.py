"""fsck: a whole store passes; corruption, missing objects and killed writers are reported."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

import mlkeep
from mlkeep.store import Store


def _fill(store: Store, tmp_path: Path) -> str:
    X, y = load_digits(return_X_y=True)
    (tmp_path / "notes.txt").write_text("hello")
    with store.start_run("digits") as run:
        ds = run.log_dataset(X, targets=y)
        model = LogisticRegression(max_iter=50).fit(X, y)
        m = run.log_model(model, trained_on=ds)
        run.log_artifact(tmp_path / "notes.txt")
        store.repo("lr").commit(model, "v1", run=run)
    return m.object  # type: ignore[return-value]


def test_whole_store_passes(folder_store: Store, tmp_path: Path) -> None:
    _fill(folder_store, tmp_path)
    report = folder_store.fsck()
    assert report.ok and report.objects_checked >= 5, report


def test_corrupt_and_missing_objects_are_found(folder_store: Store, tmp_path: Path) -> None:
    oid = _fill(folder_store, tmp_path)
    path = Path(folder_store.objects.path(oid))
    os.chmod(path, 0o644)
    path.write_bytes(b"garbage")
    report = folder_store.fsck()
    assert not report.ok and report.corrupt == [oid]
    path.unlink()
    report = folder_store.fsck()
    assert report.missing[0]["kind"] == "model" and report.missing[0]["object"] == oid


def test_repair_quarantines_a_corrupt_blob_and_names_what_it_affected(folder_store: Store, tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(os.urandom(50_000))
    with folder_store.start_run("q") as run:
        (art,) = run.log_artifact(tmp_path / "weights.bin")
    path = Path(folder_store.objects.path(art.object))
    os.chmod(path, 0o644)
    rotten = path.read_bytes()[:-10] + b"0123456789"  # bit rot
    path.write_bytes(rotten)
    report = folder_store.fsck()
    assert report.corrupt == [art.object]
    assert report.affected == [{"object": art.object, "kind": "artifact", "id": f"{run.id}/weights.bin"}]
    repaired = folder_store.fsck(repair=True)
    assert len(repaired.quarantined) == 1 and Path(repaired.quarantined[0]).read_bytes() == rotten
    assert not folder_store.objects.exists(art.object) and art.object not in set(folder_store.objects)
    with folder_store.start_run("q") as again:  # the same content logged again is stored afresh, good
        assert again.log_artifact(tmp_path / "weights.bin")[0].object == art.object
    assert folder_store.objects.verify(art.object) and folder_store.fsck().ok


WRITER = textwrap.dedent(
    """
    import os, sys, numpy as np, mlkeep
    store = mlkeep.open(sys.argv[1])
    rng = np.random.default_rng(0)
    i = 0
    while True:
        with store.start_run("crash") as run:
            run.log_metric("i", i)
            path = os.path.join(sys.argv[2], f"blob{i % 3}.bin")
            with open(path, "wb") as f:
                f.write(rng.bytes(4_000_000))
            run.log_artifact(path)
            store.repo("w").commit({"w": rng.standard_normal(200_000).astype("float32")}, f"c{i}")
        print(i, flush=True)
        i += 1
    """
)


@pytest.mark.slow
def test_kill_9_mid_write_leaves_a_store_fsck_passes(tmp_path: Path) -> None:
    mlkeep.init(tmp_path / "store")
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "store"), str(work)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.readline()  # one full iteration done
    time.sleep(0.37)  # then somewhere in the middle of the next writes
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = mlkeep.open(tmp_path / "store")
    report = store.fsck(repair=True)
    assert report.ok, report
    assert store.repo("w").checkout("main")["w"].shape == (200_000,)
    assert np.isfinite(store.repo("w").checkout("main")["w"]).all()


def test_intermediates_stored_as_deltas_pass_and_a_lost_chunk_is_named(folder_store: Store) -> None:
    """A manifest holds hashes that are not objects (a delta's content id, LSH sketches): fsck checks only the
    objects an intermediate really needs, and names the intermediate whose chunk is gone."""
    import torch

    X = (load_digits(return_X_y=True)[0][:300] / 16.0).astype(np.float32)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 48), torch.nn.ReLU(), torch.nn.Linear(48, 10))
    inter = folder_store.intermediates
    inter.block_rows, inter.chunk_bytes = 64, 4 * 1024
    first = inter.capture(net, X, layers=["2"], codec="kbit(8)", repo="mlp")["2"]
    with torch.no_grad():
        net[2].bias.add_(0.05)  # a near-identical output: its chunks are stored as deltas against the first's
    second = inter.capture(net, X, layers=["2"], codec="kbit(8)", repo="mlp")["2"]
    assert second.document["deltas"] > 0
    assert folder_store.fsck().ok
    from mlkeep.intermediates.storage import get_manifest

    chunk = get_manifest(folder_store.objects, second.manifest)["chunks"][0][0]
    os.chmod(folder_store.objects.path(chunk), 0o644)
    folder_store.objects.remove(chunk)
    report = folder_store.fsck()
    assert {"kind": "intermediate chunk", "id": second.id, "object": chunk} in report.missing
    assert first.id != second.id
