"""mlkeep end to end on the embedded default store (SQLite + a local folder).

Trains a few scikit-learn models on the bundled digits dataset, tracks
everything (datasets, params, metrics over steps, models, predictions,
evaluations), then asks the questions mlkeep exists to answer: which run was
best (search), what a model was trained on (lineage up), and which models a
faulty dataset reached (lineage down). Run it with `make demo`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

import mlkeep
from mlkeep.errors import StoreNotFoundError

HERE = Path(os.environ.get("MLKEEP_DEMO_DIR", "demo-store")).resolve()


def open_store() -> mlkeep.Store:
    try:
        return mlkeep.open(HERE)
    except StoreNotFoundError:
        return mlkeep.init(HERE)


def main() -> int:
    store = open_store()
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    candidates = {
        "logreg": make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=1000)),
        "rf": RandomForestClassifier(n_estimators=100, random_state=0),
        "svm": make_pipeline(StandardScaler(), SVC(C=3.0, gamma="scale")),
    }

    print(f"mlkeep {mlkeep.__version__} demo, store at {store.uri}\n")
    with store.start_run("digits-demo", name="prepare-data") as prep:
        raw = prep.log_dataset(X, name="digits", targets=y)
        train = prep.log_dataset(X_train, name="digits-train", targets=y_train, derived_from=raw)
        test = prep.log_dataset(X_test, name="digits-test", targets=y_test, derived_from=raw)
    print(f"datasets: digits {raw.num_rows} rows -> train {train.num_rows}, test {test.num_rows}")

    for algo, estimator in candidates.items():
        with store.start_run("digits-demo", name=algo) as run:
            run.log_params({"model": algo, **_flat_params(estimator)})
            run.set_tag("team", "vision")
            for fraction in (0.25, 0.5, 1.0):  # a learning curve, logged as a metric series
                n = int(len(X_train) * fraction)
                estimator.fit(X_train[:n], y_train[:n])
                run.log_metric("val_accuracy", accuracy_score(y_test, estimator.predict(X_test)))
            model = run.log_model(estimator, name=f"digits-{algo}", trained_on=train)
            predicted = estimator.predict(X_test)
            prediction = run.log_predictions(model, test, predicted)
            scores = {"accuracy": accuracy_score(y_test, predicted), "f1_macro": f1_score(y_test, predicted, average="macro")}
            run.log_metrics(scores)
            run.log_evaluation(model, test, scores, confusion_matrix=confusion_matrix(y_test, predicted),
                               class_labels=list(range(10)), prediction=prediction)
        print(f"run {run.id[:8]} {algo:7s} accuracy {scores['accuracy']:.4f}  model {model.id[:8]}")

    query = "metrics.accuracy > 0.9 and attributes.status = 'FINISHED'"
    best = store.search_runs(query, order_by="metrics.accuracy DESC", limit=3, experiments=["digits-demo"])
    print(f"\nsearch: {query}  (best first)")
    for r in best:
        print(f"  {r.id[:8]} {r.name:7s} accuracy={r.metrics['accuracy'].value:.4f} model={r.params['model']}")

    top_model = store.list_models(best[0].id)[0]
    up = store.lineage(top_model.id, direction="up")
    print(f"\nlineage up from model {top_model.name}: trained on "
          + ", ".join(f"{n.name} (v{store.get_dataset(n.id).version})" for n in up.of_kind("dataset")))
    down = store.lineage(raw.id, direction="down")
    print(f"lineage down from dataset 'digits': {len(down.of_kind('model'))} models, "
          f"{len(down.of_kind('evaluation'))} evaluations would be affected if it were faulty")

    reloaded = store.load_model(top_model.id)
    same = np.array_equal(reloaded.predict(X_test), store.load_predictions(
        store.lineage(top_model.id, "down", depth=1).of_kind("prediction")[0].id)["prediction"].to_numpy())
    print(f"reloaded {top_model.name}: predictions identical to the logged ones: {same}")

    version_a_network(store, X_train, y_train)

    print("\nlook around:")
    print(f"  .venv/bin/mlkeep --store {HERE} runs search \"metrics.accuracy > 0.95\" --order-by 'metrics.accuracy DESC'")
    print(f"  .venv/bin/mlkeep --store {HERE} runs compare {' '.join(r.id for r in best[:2])}")
    print(f"  .venv/bin/mlkeep --store {HERE} lineage {raw.id} --down")
    print(f"  .venv/bin/mlkeep --store {HERE} export --format ml-experiments-schema exported/")
    print(f"  .venv/bin/mlkeep --store {HERE} repo log digits-mlp")
    print(f"  .venv/bin/mlkeep --store {HERE} fsck")
    print(f"  .venv/bin/mlkeep server --store {HERE}     # then open http://127.0.0.1:5000")
    return 0


def version_a_network(store: mlkeep.Store, X: np.ndarray, y: np.ndarray) -> None:
    """Git for models: a small PyTorch network, one commit per epoch, then log, diff and checkout."""
    import io

    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    Xt, yt = torch.tensor(X / 16.0, dtype=torch.float32), torch.tensor(y)
    repo = store.repo("digits-mlp")
    written_before = store.tensors.stats.bytes_written
    torch_save_bytes, states = 0, []
    with store.start_run("digits-demo", name="mlp") as run:
        for epoch in range(4):
            if epoch == 2:  # from here on only the head trains: the body is stored once
                net[0].requires_grad_(False)
            for i in range(0, len(Xt), 64):
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(net(Xt[i : i + 64]), yt[i : i + 64])
                loss.backward()
                opt.step()
            run.log_metric("loss", loss.item())
            repo.commit(net, f"epoch {epoch}", run=run)
            states.append({k: v.clone() for k, v in net.state_dict().items()})
            buf = io.BytesIO()
            torch.save(net.state_dict(), buf)
            torch_save_bytes += buf.tell()
    log = repo.log("main")
    stored = store.tensors.stats.bytes_written - written_before
    diff = repo.diff("main~1", "main")
    back = repo.checkout("main~2")
    exact = all(torch.equal(back[k], v) for k, v in states[1].items())
    print(f"\nrepository digits-mlp: {len(log)} commits, newest {log[0].id[:12]} ({log[0].message})")
    print(f"  diff main~1..main: {', '.join(t.name for t in diff.tensors)} changed, {diff.unchanged} unchanged")
    print(f"  weights stored: {stored / 1e6:.2f} MB for 4 versions vs {torch_save_bytes / 1e6:.2f} MB as 4 torch.save files")
    print(f"  checkout main~2 equals epoch 1 bit for bit: {exact}")


def _flat_params(estimator: object) -> dict[str, object]:
    params = estimator.get_params(deep=True)  # type: ignore[attr-defined]
    return {k: v for k, v in params.items() if isinstance(v, (int, float, str, bool)) or v is None}


if __name__ == "__main__":
    sys.exit(main())
