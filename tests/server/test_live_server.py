"""A real `mlkeep server` on a loopback port, driven by a training script in another process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import mlkeep
from mlkeep import errors
from mlkeep.client import RemoteStore

SCRIPT = textwrap.dedent("""
    import numpy as np
    import mlkeep
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(50, 3)), rng.integers(0, 3, 50)
    with mlkeep.start_run("remote-exp", "tree") as run:      # MLKEEP_URI points at the server
        data = run.log_dataset(X, name="toy", targets=y)
        run.log_params({"depth": 3})
        for i in range(1000):
            run.log_metric("loss", 1 / (i + 1))
        model = run.log_model(DecisionTreeClassifier(max_depth=3).fit(X, y), trained_on=data)
        run.log_artifact("big.bin", "blobs")
    print(run.id, model.id)
""")


def test_a_training_script_logs_to_a_real_server_with_no_code_change(live_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "train.py").write_text(SCRIPT)
    big = os.urandom(5 * 1024 * 1024 + 17)  # a multi-MB artifact, streamed both ways
    (tmp_path / "big.bin").write_bytes(big)
    env = {**os.environ, "MLKEEP_URI": live_server.url}
    out = subprocess.run([sys.executable, "train.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    run_id, model_id = out.stdout.split()
    remote = mlkeep.open(live_server.url)
    assert isinstance(remote, RemoteStore)
    run = remote.get_run(run_id)
    assert run.status == "FINISHED" and run.metrics["loss"].count == 1000 and run.params == {"depth": "3"}
    files = remote.download_artifacts(run_id, tmp_path / "back")
    assert files[0].read_bytes() == big
    assert remote.load_model(model_id).get_params()["max_depth"] == 3
    with mlkeep.open(live_server.root) as local:  # the server's own store holds it all
        assert local.get_run(run_id).metrics["loss"].value == pytest.approx(1 / 1000)
    with pytest.raises(errors.FilterSyntaxError):
        remote.search_runs("metrics.loss <")
    with pytest.raises(errors.NotFoundError):
        remote.get_run("0" * 32)
    remote.close()
