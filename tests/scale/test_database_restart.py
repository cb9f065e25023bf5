"""PostgreSQL stopped (as by a crash) under a writer, then started again.

Within the patience (`MLKEEP_DB_PATIENCE`) the writer waits and carries on:
no error, nothing lost. Past it, the writer stops with one clear
`DatabaseUnavailableError`; either way the store passes fsck once the
database is back, with every acknowledged run whole.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import mlkeep
import postgres_server
from scale_team import WORKERS

pytestmark = pytest.mark.slow  # a PostgreSQL cluster of its own, stopped and started


class RestartableCluster(postgres_server.Cluster):
    """The test cluster, plus stopping it the hard way and starting it again on the same port."""

    def halt(self) -> None:
        self._run(str(postgres_server.BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def resume(self) -> None:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self._run(str(postgres_server.BIN / "pg_ctl"), "-D", str(self.data), "-o", options,
                  "-l", str(self.base / "log"), "-w", "start")


@pytest.fixture
def cluster() -> Iterator[RestartableCluster]:
    if not postgres_server.available():
        pytest.skip("no PostgreSQL binaries")
    c = RestartableCluster()
    c.start()
    yield c
    c.stop()


def _writer(url: str, objects: Path, seconds: float, patience: float) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLKEEP_")}
    env.update(MLKEEP_URI=url, MLKEEP_OBJECTS=str(objects), MLKEEP_DB_PATIENCE=str(patience))
    return subprocess.Popen([sys.executable, str(WORKERS), "steady", str(seconds)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _outage(cluster: RestartableCluster, tmp_path: Path, *, patience: float, down: float) -> tuple[int, str]:
    """A writer logging for 8 s with the database down for `down` seconds early on; (exit code, stdout)."""
    objects = tmp_path / "objects"
    mlkeep.open(cluster.url, objects=str(objects)).close()  # the schema, before the writer starts
    proc = _writer(cluster.url, objects, 8, patience)
    assert proc.stdout is not None
    run_id = proc.stdout.readline().split()[-1]
    assert proc.stdout.readline().startswith("flushed"), proc.stderr.read() if proc.stderr else ""
    cluster.halt()
    time.sleep(down)
    cluster.resume()
    out, err = proc.communicate(timeout=120)
    assert "database is locked" not in err
    acknowledged = max([100] + [int(line.split()[1]) for line in out.splitlines() if line.startswith("flushed")])
    with mlkeep.open(cluster.url, objects=str(objects)) as store:
        assert store.fsck().ok
        history = store.get_metric_history(run_id, "v")
        # every acknowledged value is there; a flush cut off by the outage is written again, so at most a
        # flush caught at the instant of its commit (written, but unconfirmed) is there twice
        values = [m.value for m in history]
        assert sorted(set(values)) == [float(i) for i in range(len(set(values)))]
        assert len(set(values)) >= acknowledged and len(values) - len(set(values)) <= 100
    return proc.returncode, out


def test_a_restart_within_the_patience_is_ridden_out(cluster: RestartableCluster, tmp_path: Path) -> None:
    code, out = _outage(cluster, tmp_path, patience=60, down=3)
    assert code == 0 and out.rstrip().endswith("done"), out[-2000:]


def test_an_outage_past_the_patience_is_one_clear_error(cluster: RestartableCluster, tmp_path: Path) -> None:
    code, out = _outage(cluster, tmp_path, patience=1, down=6)
    assert code == 1
    assert "error DatabaseUnavailableError: The metadata database stayed unreachable for 1 s" in out, out[-2000:]
