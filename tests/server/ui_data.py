"""A store with something to look at: runs with params and metrics, one 100,000-point series,
datasets, a model with predictions and an evaluation, artifacts (text and PNG), a repository."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from mlkeep.store import Store


def png(width: int = 64, height: int = 48) -> bytes:
    """A small gradient PNG, written by hand (no imaging library needed)."""
    rows = b"".join(b"\x00" + bytes(v for x in range(width) for v in (x * 4 % 256, y * 5 % 256, 180))
                    for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def populate(store: Store, folder: Path, n_runs: int = 24, long_series: int = 100_000) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(7)
    ids: dict[str, Any] = {"runs": []}
    for i in range(n_runs):
        model = ["rf", "svm", "logreg"][i % 3]
        with store.start_run("digits", f"{model}-{i:02d}", tags={"team": "vision" if i % 2 else "nlp"}) as run:
            run.log_params({"model": model, "C": round(0.1 * (i + 1), 2), "depth": 2 + i % 5})
            acc = 0.7 + 0.25 * (i / n_runs) + rng.normal(0, 0.01)
            for step in range(60):
                run.log_metrics({"loss": float(np.exp(-step / (10 + i)) + rng.normal(0, 0.01)),
                                 "accuracy": float(acc * (1 - np.exp(-step / 8)))}, step=step)
        ids["runs"].append(run.id)
    X, y = rng.normal(size=(200, 6)), rng.integers(0, 3, 200)
    (folder / "notes.txt").write_text("Training notes\n==============\nlr warm-up for 5 epochs; early stop on val loss.\n")
    (folder / "confusion.png").write_bytes(png())
    with store.start_run("digits", "best-logreg", tags={"team": "vision"}) as run:
        run.log_params({"model": "logreg", "C": 0.5, "depth": 1})
        data = run.log_dataset(X, name="digits-train", targets=y)
        steps = np.arange(long_series)
        loss = np.exp(-steps / 20_000) + 0.05 * np.sin(steps / 300) + rng.normal(0, 0.01, long_series)
        loss[long_series * 7 // 9] = 2.5  # a spike the downsampling must keep
        for s in range(0, long_series, 10_000):
            for k in range(s, min(s + 10_000, long_series)):
                run.log_metric("loss", float(loss[k]), step=k)
            run.flush()
        run.log_metric("accuracy", 0.97, step=long_series - 1)
        est = LogisticRegression(C=0.5, max_iter=200).fit(X, y)
        model = run.log_model(est, trained_on=data)
        pred = run.log_predictions(model, data, est.predict(X))
        run.log_evaluation(model, data, {"accuracy": float((est.predict(X) == y).mean()), "f1": 0.61},
                           confusion_matrix=[[50, 8, 9], [7, 48, 10], [6, 9, 53]], prediction=pred)
        run.log_artifact(folder / "notes.txt")
        run.log_artifact(folder / "confusion.png", "plots")
    ids.update(best=run.id, dataset=data.id, model=model.id)
    repo = store.repo("digits-net")
    weights = {"encoder.weight": rng.normal(size=(64, 32)).astype(np.float32),
               "encoder.bias": np.zeros(64, dtype=np.float32),
               "head.weight": rng.normal(size=(10, 64)).astype(np.float32)}
    repo.commit(weights, "initial weights")
    weights["head.weight"] = weights["head.weight"] + 0.01
    repo.commit(weights, "fine-tune head")
    repo.tag("v1")
    weights["encoder.bias"] = weights["encoder.bias"] + 0.1
    weights["head.bias"] = np.ones(10, dtype=np.float32)
    repo.commit(weights, "train encoder bias, add head bias")
    ids.update(registry(store, model.id), intermediates=intermediates(store))
    return ids


def registry(store: Store, model_id: str) -> dict[str, Any]:
    """Two registered models: the logged classifier, and the repository's tagged and latest commits."""
    reg = store.registry
    reg.register("digits-clf", model_id, description="logistic regression on digits features")
    reg.update_model("digits-clf", description="Classifies the digits features into three groups.",
                     tags={"team": "vision"})
    reg.set_alias("digits-clf", "production", 1, reason="first release")
    reg.register("digits-net", "digits-net@v1")
    reg.register("digits-net", "digits-net@main", description="encoder bias trained")
    reg.set_alias("digits-net", "staging", 1)
    reg.set_alias("digits-net", "staging", 2, reason="bias helps on validation")
    reg.set_alias("digits-net", "production", 1, reason="safe choice")
    return {"registered": ["digits-clf", "digits-net"]}


def intermediates(store: Store) -> Any:
    """Every stage of a digits pipeline over 300 8×8 images (so the top-k examples are pictures)."""
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    X, y = X[:300] / 16.0, y[:300]
    model = Pipeline([("scale", StandardScaler()), ("pca", PCA(16, random_state=0)),
                      ("clf", LogisticRegression(max_iter=300))]).fit(X, y)
    return store.intermediates.capture(model, X, targets=y, name="digits-pipe", repo="digits-pipe")
