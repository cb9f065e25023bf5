"""PyTorch tracking: a real MLP trained on the digits images, watched and autologged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import mlkeep  # noqa: E402
import mlkeep.torch  # noqa: E402
from mlkeep.store import Store  # noqa: E402

SCHEMA = Path(__file__).resolve().parents[2].parent / "shared" / "ml-experiments-schema" / "schema.json"


@pytest.fixture(scope="module")
def digits_tensors() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y.astype(np.int64)


def _loader(X: np.ndarray, y: np.ndarray) -> torch.utils.data.DataLoader:
    data = torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(y))
    return torch.utils.data.DataLoader(data, batch_size=128, shuffle=True,
                                       generator=torch.Generator().manual_seed(0))


def _train(net: nn.Module, loader, optimizer, loss_fn, epochs: int, scheduler=None) -> None:  # type: ignore[no-untyped-def]
    for _ in range(epochs):
        for xb, yb in loader:
            optimizer.zero_grad()
            loss_fn(net(xb), yb).backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()


def test_watch_records_losses_lr_schedule_dataset_checkpoints_and_model(store: Store, digits_tensors) -> None:
    X, y = digits_tensors
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    net[0].weight.requires_grad_(False)  # a frozen tensor shows as such... only when the layer is all frozen
    net[0].bias.requires_grad_(False)
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.2, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    loss_fn = nn.CrossEntropyLoss()
    loader = _loader(X, y)
    with mlkeep.torch.watch(net, optimizer=opt, loss_fn=loss_fn, scheduler=sched, dataloader=loader,
                            checkpoint_every=1, repo="digits-mlp", grad_norm=True, store=store) as w:
        _train(net, loader, opt, loss_fn, epochs=3, scheduler=sched)
        with torch.no_grad():
            eval_loss = float(loss_fn(net(torch.from_numpy(X)), torch.from_numpy(y)))
    run = store.get_run(w.run.id)
    assert run.status == "FINISHED" and run.tags["autolog"] == "torch"
    steps_per_epoch = len(loader)
    assert run.metrics["loss"].count == 3 * steps_per_epoch
    assert run.metrics["grad_norm"].count == 3 * steps_per_epoch and run.metrics["grad_norm"].min > 0
    lrs = [m.value for m in store.get_metric_history(run.id, "lr")]
    assert lrs[0] == 0.2 and lrs[-1] == pytest.approx(0.05)  # the schedule, step by step
    epoch_loss = [m.value for m in store.get_metric_history(run.id, "epoch_loss")]
    assert len(epoch_loss) == 3 and epoch_loss[-1] < epoch_loss[0]
    assert run.metrics["epoch_eval_loss"].value == pytest.approx(eval_loss)
    assert run.metrics["examples_per_s"].value > 0
    assert run.params["optimizer"] == "torch.optim.sgd.SGD" and run.params["optimizer.momentum"] == "0.9"
    assert run.params["scheduler.gamma"] == "0.5" and run.params["seed.torch"] == "1"
    assert run.params["determinism.algorithms"] == "False"

    dataset = store.get_dataset(w.dataset.id)
    assert dataset.num_rows == len(X)
    with store.start_run() as other:  # the same arrays are the same Dataset
        assert other.log_dataset(X, targets=y).id == dataset.id

    repo = store.repo("digits-mlp")
    history = repo.log()
    assert [c.message for c in history] == ["epoch 3", "epoch 2", "epoch 1"] and len(w.commits) == 3
    assert history[0].run_id == run.id and history[0].datasets == (dataset.id,)
    fresh = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    repo.checkout("main", into=fresh)
    for a, b in zip(fresh.state_dict().values(), net.state_dict().values()):
        assert torch.equal(a, b)

    (model,) = store.list_models(run.id)
    assert model.trained_on_dataset_id == dataset.id and model.framework == "torch"
    first, relu, last = model.transforms
    assert first.name == "0:Linear" and first.parameters["trainable"] == "frozen"
    assert first.parameters["shape.weight"] == "(32, 64)" and first.parameters["parameters"] == str(64 * 32 + 32)
    assert relu.parameters["trainable"] == "none" and last.input_transforms == [relu.id]
    loaded = mlkeep.load_model(model.id, store)
    assert torch.equal(loaded(torch.from_numpy(X[:5])), net(torch.from_numpy(X[:5])))


def test_watch_wraps_a_plain_loss_function(store: Store, digits_tensors) -> None:
    X, y = digits_tensors
    net = nn.Linear(64, 10)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    loader = _loader(X[:512], y[:512])
    with mlkeep.torch.watch(net, optimizer=opt, loss_fn=nn.functional.cross_entropy, dataloader=loader,
                            store=store) as w:
        _train(net, loader, opt, w.loss_fn, epochs=2)
    run = store.get_run(w.run.id)
    assert run.metrics["loss"].count == 2 * len(loader) and run.metrics["epoch_loss"].count == 2


def test_every_hyperparameter_a_scheduler_moves_is_a_metric_series(store: Store, digits_tensors) -> None:
    X, y = digits_tensors
    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    loader = _loader(X, y)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=2 * len(loader))  # cycles momentum
    loss_fn = nn.CrossEntropyLoss()
    in_force = []  # the momentum each step ran with
    with mlkeep.torch.watch(net, optimizer=opt, loss_fn=loss_fn, dataloader=loader, store=store) as w:
        for _ in range(2):
            for xb, yb in loader:
                opt.zero_grad()
                loss_fn(net(xb), yb).backward()
                in_force.append(opt.param_groups[0]["momentum"])
                opt.step()
                sched.step()
    lr = [m.value for m in store.get_metric_history(w.run.id, "lr")]
    assert len(lr) == len(in_force) and max(lr) == pytest.approx(0.1, rel=0.05)
    history = store.get_metric_history(w.run.id, "momentum")
    first_change = next(i for i, m in enumerate(in_force) if m != in_force[0])
    assert history[0].step == first_change > 0  # unchanged at first: not logged
    assert [m.value for m in history] == pytest.approx(in_force[first_change:])  # then every step
    assert "weight_decay" not in store.get_run(w.run.id).metrics  # never moved


def test_a_failing_training_loop_ends_the_run_failed(store: Store) -> None:
    net = nn.Linear(4, 2)
    with pytest.raises(RuntimeError, match="diverged"):
        with mlkeep.torch.watch(net, optimizer=torch.optim.SGD(net.parameters(), lr=0.1), store=store) as w:
            raise RuntimeError("diverged")
    assert store.get_run(w.run.id).status == "FAILED"


def test_autolog_finds_the_model_behind_the_optimizer(store: Store, digits_tensors) -> None:
    X, y = digits_tensors
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))  # a small CNN
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    images = X.reshape(-1, 1, 8, 8)
    data = torch.utils.data.TensorDataset(torch.from_numpy(images), torch.from_numpy(y))
    loader = torch.utils.data.DataLoader(data, batch_size=256)
    with mlkeep.torch.autolog(store=store, experiment="auto"):
        _train(net, loader, opt, nn.CrossEntropyLoss(), epochs=3)
    (run,) = store.search_runs("attributes.experiment = 'auto'")
    assert run.status == "FINISHED" and run.params["optimizer"] == "torch.optim.adam.Adam"
    assert run.metrics["loss"].count == 3 * len(loader)
    assert run.metrics["epoch_loss"].count >= 2  # epochs are counted from the first optimizer step on
    (model,) = store.list_models(run.id)
    assert model.learning_algorithm == "torch.nn.modules.container.Sequential"
    assert [t.name for t in model.transforms] == ["0:Conv2d", "1:ReLU", "2:Flatten", "3:Linear"]


def test_watched_documents_validate_against_the_schema(store: Store, digits_tensors, tmp_path: Path) -> None:
    if not SCHEMA.is_file():
        pytest.skip(f"no schema at {SCHEMA}")
    X, y = digits_tensors
    net = nn.Linear(64, 10)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()
    loader = _loader(X[:256], y[:256])
    with mlkeep.torch.watch(net, optimizer=opt, loss_fn=loss_fn, dataloader=loader, store=store):
        _train(net, loader, opt, loss_fn, epochs=1)
    counts = store.export(tmp_path, schema=SCHEMA)
    assert counts["models"] == 1 and counts["datasets"] == 1
