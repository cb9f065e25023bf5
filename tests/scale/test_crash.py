"""Writers killed with SIGKILL mid-write, again and again: fsck passes and nothing acknowledged is lost.

Three writers at once log metrics, store artifacts and commit model versions
(two of them to one repository, so commits also race on a branch head);
each prints a line after every call that returned. They are killed at random
moments, then the store is checked: `fsck` finds nothing missing or corrupt,
and every acknowledged metric series, artifact and commit is there, whole.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from scale_team import Team

WRITERS = 3


def _round(team: Team, workdir: Path, rng: random.Random) -> list[list[str]]:
    procs = [team.start("crash", w, workdir) for w in range(WRITERS)]
    first = [p.stdout.readline() for p in procs]  # type: ignore[union-attr]
    assert all(first), [p.stderr.read()[-2000:] for p in procs]  # type: ignore[union-attr]
    time.sleep(rng.uniform(0.05, 1.5))
    for p in procs:
        p.send_signal(signal.SIGKILL)
    lines = [first[i].split() for i in range(WRITERS)]
    for p in procs:
        out, err = p.communicate(timeout=30)
        assert "Traceback" not in err, err[-3000:]
        lines += [line.split() for line in out.splitlines()]
    return lines


def _check(team: Team, acknowledged: list[list[str]]) -> None:
    report = team.store.fsck(repair=True)
    assert report.ok, report.to_dict()
    store = team.store
    for line in acknowledged:
        if line[0] == "metrics":
            assert len(store.get_metric_history(line[1], "v")) == int(line[2])
        elif line[0] == "artifact":
            found = {a.path: a.object for a in store.list_artifacts(line[1])}
            assert found.get(line[2]) == line[3] and store.objects.verify(line[3])
        elif line[0] == "commit":
            for repo in ("crash0", "crash1"):
                try:
                    weights = store.repo(repo).checkout(line[1])
                except Exception:
                    continue
                assert weights["w"].shape == (100_000,)
                break
            else:
                raise AssertionError(f"acknowledged commit {line[1]} is gone")


def _kill_repeatedly(team: Team, tmp_path: Path, rounds: int) -> None:
    rng = random.Random(rounds)
    acknowledged: list[list[str]] = []
    for r in range(rounds):
        workdir = tmp_path / f"round{r}"
        workdir.mkdir()
        acknowledged += _round(team, workdir, rng)
        _check(team, acknowledged)
    assert sum(line[0] == "commit" for line in acknowledged) >= 1


def test_sigkill_writers_then_fsck_passes(team: Team, tmp_path: Path) -> None:
    _kill_repeatedly(team, tmp_path, rounds=2)


def test_sigkill_during_intermediate_capture_then_fsck_passes_and_gc_cleans(team: Team) -> None:
    """Writers capturing intermediates killed at random: fsck passes, every acknowledged capture reads
    back, and gc removes the chunks of the captures that never finished, nothing else."""
    rng = random.Random(7)
    acknowledged: list[str] = []
    for _ in range(2):
        procs = [team.start("capture", w) for w in range(2)]
        first = [p.stdout.readline() for p in procs]  # type: ignore[union-attr]
        assert all(ln.startswith("capture") for ln in first), [p.stderr.read()[-2000:] for p in procs]  # type: ignore[union-attr]
        time.sleep(rng.uniform(0.05, 1.0))
        for p in procs:
            p.send_signal(signal.SIGKILL)
        for p, line in zip(procs, first):
            out, err = p.communicate(timeout=30)
            assert "Traceback" not in err, err[-3000:]
            acknowledged += [i for ln in [line, *out.splitlines()] for i in ln.split()[1:]]
    store = team.store
    assert store.fsck(repair=True).ok
    values = {i: store.intermediates.get(i, source="read") for i in acknowledged}
    assert all(v.shape[0] == 3000 for v in values.values())
    before = set(store.objects)
    report = store.gc(grace_seconds=0)
    assert set(store.objects) == before - set(report.deleted)
    assert store.gc(grace_seconds=0).unreachable == 0  # what is left is exactly what something reaches
    assert store.fsck().ok
    for i, v in values.items():
        assert np.array_equal(store.intermediates.get(i, source="read"), v)


@pytest.mark.slow
def test_sigkill_writers_many_times(team: Team, tmp_path: Path) -> None:
    _kill_repeatedly(team, tmp_path, rounds=4)
