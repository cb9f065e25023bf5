"""PyTorch tracking: `watch(model, optimizer=..., loss_fn=...)` and `autolog()`.

PyTorch has no single `fit`, so mlkeep hooks where it is honest to hook:

- the loss: a forward hook on `loss_fn` when it is an `nn.Module` (a plain
  function is wrapped: use `watch(...).loss_fn`); a loss computed with gradients
  on is a training loss, one computed under `no_grad` an evaluation loss;
- the optimizer: a step post-hook counts steps and logs the training loss and
  the learning rate of each parameter group (so schedules are a metric series),
  and, with `grad_norm=True`, a step pre-hook logs the global gradient norm;
- the DataLoader: iterating it to the end is an epoch (per-epoch loss, examples/s,
  checkpoints); its dataset is fingerprinted as a Dataset when it holds tensors or
  arrays (`TensorDataset`, or `data`/`targets` attributes);
- seeds and determinism flags, the optimizer's and scheduler's hyperparameters
  as params; the module tree as the Model's Transforms; `checkpoint_every=N`
  commits the weights every N epochs as versions of repository `repo`.

Training is never broken by tracking: failures become an `AutologWarning` and
a run tag `autolog.skipped.<what>`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import random
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from mlkeep.integrations._common import log_dataset, skipped, skipping

if TYPE_CHECKING:
    from mlkeep.store import Store
    from mlkeep.tracking.active_run import ActiveRun
    from mlkeep.tracking.entities import Dataset, Model, Transform

__all__ = ["watch", "Watch", "autolog", "Autolog"]

_loader_lock = threading.Lock()
_loader_watches: dict[int, Watch] = {}  # id(DataLoader) -> the watch that counts its epochs
_loader_patch: Any = None  # the original DataLoader.__iter__ while patched


class Watch:
    """Hooks on one model's training, recording into one run; `close()` (or leaving `with`) removes them."""

    def __init__(
        self,
        model: Any,
        *,
        optimizer: Any = None,
        loss_fn: Any = None,
        scheduler: Any = None,
        dataloader: Any = None,
        checkpoint_every: int | None = None,
        repo: str | None = None,
        grad_norm: bool = False,
        run: ActiveRun | None = None,
        store: Store | None = None,
        experiment: str = "Default",
        name: str | None = None,
    ) -> None:
        import mlkeep

        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.checkpoint_every, self.grad_norm = checkpoint_every, grad_norm
        self.repo_name = repo or (type(model).__name__ if model is not None else "model")
        self._created = False
        if run is None:
            run = mlkeep.active_run()
        if run is None:
            store = store or mlkeep._default_store()
            run = store.start_run(experiment, name=name or type(model).__name__, tags={"autolog": "torch"})
            self._created = True
        self.run = run
        self.step = 0
        self.epoch = 0
        self.dataset: Dataset | None = None
        self.commits: list[str] = []
        self._handles: list[Any] = []
        self._epoch_losses: list[float] = []
        self._eval_losses: list[float] = []
        self._last_loss: float | None = None
        self._first_values: dict[int, dict[str, float]] = {}  # per parameter group, at the first step
        self._moved: set[str] = set()  # metric names of hyperparameters that changed: logged every step since
        self._examples = 0
        self._epoch_start = time.perf_counter()
        self._closed = False
        self.loss_fn = self._hook_loss(loss_fn) if loss_fn is not None else None
        with skipping(run, "params"):
            run.log_params(_training_params(optimizer, scheduler))
        with skipping(run, "seeds"):
            run.log_params(seeds_and_flags())
        if optimizer is not None:
            self._hook_optimizer(optimizer)
        if dataloader is not None:
            self.watch_loader(dataloader)

    # -- hooks --------------------------------------------------------------------------------------------
    def _hook_loss(self, loss_fn: Any) -> Any:
        import torch

        if isinstance(loss_fn, torch.nn.Module):
            self._handles.append(loss_fn.register_forward_hook(lambda _m, _i, out: self.observe_loss(out)))
            return loss_fn

        def tracked_loss(*args: Any, **kwargs: Any) -> Any:
            out = loss_fn(*args, **kwargs)
            self.observe_loss(out)
            return out

        return tracked_loss

    def observe_loss(self, loss: Any) -> None:
        """Record a loss value: training (gradients on) or evaluation (under `no_grad`)."""
        import torch

        try:
            value = float(loss.detach()) if isinstance(loss, torch.Tensor) and loss.numel() == 1 else None
        except Exception:  # a loss that is not a scalar: not ours to interpret
            value = None
        if value is None:
            return
        if torch.is_grad_enabled():
            self._last_loss = value
        else:
            self._eval_losses.append(value)

    def _hook_optimizer(self, optimizer: Any) -> None:
        if self.grad_norm:
            self._handles.append(optimizer.register_step_pre_hook(lambda opt, a, k: self._log_grad_norm(opt)))
        self._handles.append(optimizer.register_step_post_hook(lambda opt, a, k: self._after_step(opt)))

    def _log_grad_norm(self, optimizer: Any) -> None:
        import torch

        with skipping(self.run, "grad_norm"):
            grads = [p.grad.detach() for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
            if grads:
                norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
                self.run.log_metric("grad_norm", float(norm), step=self.step)

    def _after_step(self, optimizer: Any) -> None:
        with skipping(self.run, "step"):
            values = self._scheduled(optimizer)
            if self._last_loss is not None:
                values["loss"] = self._last_loss
                self._epoch_losses.append(self._last_loss)
                self._last_loss = None
            self.run.log_metrics(values, step=self.step)
        self.step += 1

    def _scheduled(self, optimizer: Any) -> dict[str, float]:
        """The learning rate of each parameter group, and any other hyperparameter once it has changed.

        Schedulers move more than the learning rate (OneCycleLR cycles SGD's `momentum`
        or Adam's `betas`): a value that differs from the one at the first step becomes a
        metric series from then on, so every change during training is on record.
        """
        values: dict[str, float] = {}
        for i, group in enumerate(optimizer.param_groups):
            suffix = "" if i == 0 else f".group{i}"
            numbers = _numeric_hyperparameters(group)
            first = self._first_values.setdefault(i, numbers)
            for key, value in numbers.items():
                name = key + suffix
                if key == "lr" or name in self._moved or first.get(key) != value:
                    self._moved.add(name)
                    values[name] = value
        return values

    def watch_loader(self, loader: Any) -> None:
        """Count epochs of `loader` (a full pass is an epoch) and fingerprint its dataset."""
        _patch_loader()
        with _loader_lock:
            _loader_watches[id(loader)] = self
        if self.dataset is None:
            with skipping(self.run, "dataset"):
                X, y = dataset_arrays(loader.dataset)
                self.dataset = log_dataset(self.run.db, self.run.objects, X, y, run_id=self.run.id)

    def count_batch(self, batch: Any) -> None:
        first = batch[0] if isinstance(batch, (list, tuple)) and batch else batch
        self._examples += len(first) if hasattr(first, "__len__") else 1

    # -- epochs and checkpoints -------------------------------------------------------------------------------
    def epoch_end(self) -> None:
        """Close an epoch: per-epoch loss and throughput, a checkpoint every `checkpoint_every` epochs.

        Called for you when a watched DataLoader is iterated to the end.
        """
        elapsed = time.perf_counter() - self._epoch_start
        with skipping(self.run, "epoch"):
            values = {"epoch_duration_s": elapsed}
            if self._epoch_losses:
                values["epoch_loss"] = sum(self._epoch_losses) / len(self._epoch_losses)
            if self._eval_losses:
                values["epoch_eval_loss"] = sum(self._eval_losses) / len(self._eval_losses)
            if self._examples and elapsed > 0:
                values["examples_per_s"] = self._examples / elapsed
            self.run.log_metrics(values, step=self.epoch)
        self.epoch += 1
        self._epoch_losses, self._eval_losses, self._examples = [], [], 0
        if self.checkpoint_every and self.model is not None and self.epoch % self.checkpoint_every == 0:
            self.checkpoint(f"epoch {self.epoch}")
        self._epoch_start = time.perf_counter()

    def checkpoint(self, message: str) -> str | None:
        """Commit the model's weights now as a version of `repo`; the commit id (None if skipped)."""
        with skipping(self.run, "checkpoint"):
            commit = self._repository().commit(
                self.model, message, run=self.run, datasets=[self.dataset] if self.dataset else [],
            )
            self.commits.append(commit.id)
            self.run.set_tag("autolog.last_checkpoint", commit.id)
            return commit.id
        return None

    def _repository(self) -> Any:
        from mlkeep.tensors import TensorStore
        from mlkeep.versioning import Repository

        if not hasattr(self, "_repo"):
            self._repo = Repository(self.run.db, self.run.objects, TensorStore(self.run.objects), self.repo_name)
        return self._repo

    # -- the end ----------------------------------------------------------------------------------------------
    def close(self, failed: BaseException | None = None) -> Model | None:
        """Remove the hooks, log the trained Model (module tree as Transforms), end the run if watch made it."""
        if self._closed:
            return None
        self._closed = True
        for handle in self._handles:
            handle.remove()
        with _loader_lock:
            for key in [k for k, w in _loader_watches.items() if w is self]:
                del _loader_watches[key]
        if self._eval_losses:  # an evaluation after the last epoch
            with skipping(self.run, "epoch"):
                self.run.log_metric("epoch_eval_loss", sum(self._eval_losses) / len(self._eval_losses),
                                    step=self.epoch)
        model = None
        if self.model is not None and failed is None:
            with skipping(self.run, "model"):
                model = record_module(self.run, self.model, self.dataset)
        if self._created:
            if failed is None:
                self.run.end()
            else:
                self.run.__exit__(type(failed), failed, failed.__traceback__)
        return model

    def __enter__(self) -> Watch:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(exc)


def watch(model: Any, **kwargs: Any) -> Watch:
    """Hook the training of `model` (see `Watch`): `with mlkeep.torch.watch(net, optimizer=opt, loss_fn=loss): ...`.

    Keyword arguments: `optimizer`, `loss_fn`, `scheduler`, `dataloader`, `checkpoint_every`
    (epochs), `repo` (repository name for checkpoints), `grad_norm`, `run`, `store`,
    `experiment`, `name`.
    """
    return Watch(model, **kwargs)


# -- autolog: watch whatever trains ---------------------------------------------------------------------------


class Autolog:
    """Global hooks: every optimizer that steps gets a watch on the model its parameters belong to."""

    def __init__(self, store: Store | None, experiment: str, checkpoint_every: int | None) -> None:
        from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
        from torch.optim.optimizer import register_optimizer_step_post_hook

        self.store, self.experiment, self.checkpoint_every = store, experiment, checkpoint_every
        self.watches: dict[int, Watch] = {}
        self._top: Any = None
        self._last_loss: Any = None
        self._depth = 0
        self._handles = [
            register_module_forward_pre_hook(self._pre_forward),
            register_module_forward_hook(self._post_forward),
            register_optimizer_step_post_hook(self._after_step),
        ]
        _patch_loader()
        _state.autolog = self
        from mlkeep.tracking import environment

        environment.prefetch()  # the first watched model's run then does not wait for git and the package list

    def _pre_forward(self, module: Any, _inputs: Any) -> None:
        import torch

        if self._depth == 0 and not isinstance(module, torch.nn.modules.loss._Loss):
            self._top = module
        self._depth += 1

    def _post_forward(self, module: Any, _inputs: Any, output: Any) -> None:
        import torch

        self._depth -= 1
        if isinstance(module, torch.nn.modules.loss._Loss):
            self._last_loss = output.detach() if hasattr(output, "detach") else output  # for a watch made next step
            for w in self.watches.values():
                w.observe_loss(output)

    def _after_step(self, optimizer: Any, _args: Any, _kwargs: Any) -> None:
        w = self.watches.get(id(optimizer))
        if w is None:
            with skipping(None, "watch"):
                model = self._top if _owns(self._top, optimizer) else None
                w = Watch(model, store=self.store, experiment=self.experiment,
                          checkpoint_every=self.checkpoint_every, name=type(model).__name__ if model else "torch")
                w.optimizer = optimizer
                with skipping(w.run, "params"):
                    w.run.log_params(_training_params(optimizer, None))
                self.watches[id(optimizer)] = w
                if self._last_loss is not None:
                    w.observe_loss(self._last_loss)
        if w is not None:
            w._after_step(optimizer)

    def watch_for(self, loader: Any) -> Watch | None:
        """The watch an unregistered DataLoader's epochs count for: the newest one."""
        return next(reversed(self.watches.values()), None) if self.watches else None

    def disable(self) -> None:
        """Remove the hooks, log each watched model and end the runs autologging started."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        for w in self.watches.values():
            w.close()
        self.watches.clear()
        if _state.autolog is self:
            _state.autolog = None

    def __enter__(self) -> Autolog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.disable()


class _State:
    autolog: Autolog | None = None


_state = _State()


def autolog(
    *, store: Store | None = None, experiment: str = "Default", checkpoint_every: int | None = None,
    disable: bool = False,
) -> Autolog | None:
    """Watch every model trained from now on: the first `optimizer.step()` of each optimizer starts a watch.

    The model is the outermost module called before that step whose parameters the
    optimizer holds. Use as a context manager, or call `.disable()` (or
    `autolog(disable=True)`) to log the models, end the runs and remove the hooks.
    """
    if _state.autolog is not None:
        _state.autolog.disable()
    if disable:
        return None
    return Autolog(store, experiment, checkpoint_every)


# -- what gets recorded ---------------------------------------------------------------------------------------


def record_module(run: ActiveRun, module: Any, dataset: Dataset | None) -> Model:
    """Log the module as a Model: `torch.save` blob, one Transform per leaf module, trained on `dataset`."""
    from mlkeep.ids import new_id
    from mlkeep.tracking import describe_model, models
    from mlkeep.tracking.lineage import add_links

    oid, flavor = None, "torch"
    try:
        flavor, payload = models.serialize(module)
        oid = run.objects.put_bytes(payload)
    except Exception as exc:
        skipped(run, "model.serialized", exc)
    model_id = new_id()
    entity = describe_model.describe(module, model_id=model_id, name=None, flavor=flavor, object_id=oid,
                                     run_id=run.id, dataset=dataset)
    entity = dataclasses.replace(entity, transforms=module_transforms(module, model_id))
    with run.db.begin() as conn:
        models.insert_model(conn, entity)
        add_links(conn, [(entity.trained_on_dataset_id, "dataset", run.id, "run", "input")])
    return entity


def module_transforms(module: Any, model_id: str) -> list[Transform]:
    """Every leaf module in registration order: type, parameter count and shapes, trainable or frozen."""
    from importlib import metadata

    from mlkeep.tracking.entities import Transform

    version = metadata.version("torch")
    out: list[Transform] = []
    previous: list[str] = []
    for qualified, child in module.named_modules():
        if any(True for _ in child.children()):
            continue
        params = list(child.named_parameters(recurse=False))
        count = sum(p.numel() for _, p in params)
        trainable = sum(p.numel() for _, p in params if p.requires_grad)
        tid = f"{model_id}/{qualified or type(child).__name__}"
        out.append(Transform(
            id=tid, name=f"{qualified or 'module'}:{type(child).__name__}", framework="torch",
            framework_version=version,
            parameters={
                "type": f"{type(child).__module__}.{type(child).__qualname__}", "parameters": str(count),
                "trainable": "frozen" if params and not trainable else "true" if params else "none",
                **{f"shape.{n}": str(tuple(p.shape)) for n, p in params},
                **({"extra": child.extra_repr()} if child.extra_repr() else {}),
            },
            input_transforms=previous,
        ))
        previous = [tid]
    return out


def dataset_arrays(dataset: Any) -> tuple[Any, Any]:
    """(X, y) numpy arrays behind a torch dataset: a TensorDataset, or `data` / `targets` attributes."""
    import numpy as np
    import torch

    def array(t: Any) -> Any:
        return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)

    while isinstance(dataset, torch.utils.data.Subset):  # a split: the rows it selects
        indices = np.asarray(dataset.indices)
        X, y = dataset_arrays(dataset.dataset)
        return X[indices], (y[indices] if y is not None else None)
    if isinstance(dataset, torch.utils.data.TensorDataset):
        tensors = dataset.tensors
        return array(tensors[0]), (array(tensors[1]) if len(tensors) > 1 else None)
    if hasattr(dataset, "data"):
        return array(dataset.data), (array(dataset.targets) if hasattr(dataset, "targets") else None)
    raise TypeError(f"cannot fingerprint a {type(dataset).__name__} without iterating it "
                    "(give a TensorDataset, or a dataset with `data` and `targets`)")


def _training_params(optimizer: Any, scheduler: Any) -> dict[str, str]:
    params: dict[str, str] = {}
    for label, obj in (("optimizer", optimizer), ("scheduler", scheduler)):
        if obj is None:
            continue
        params[label] = f"{type(obj).__module__}.{type(obj).__qualname__}"
        source = obj.defaults if label == "optimizer" else {
            k: v for k, v in obj.state_dict().items() if not k.startswith("_") and k not in ("last_epoch",)
        }
        for key, value in source.items():
            if isinstance(value, (int, float, str, bool, tuple, list)) or value is None:
                params[f"{label}.{key}"] = str(value)
    return params


def _numeric_hyperparameters(group: dict[str, Any]) -> dict[str, float]:
    """A parameter group's numbers (not its parameters); a tuple such as Adam's `betas` as `betas.0`, `betas.1`."""
    out: dict[str, float] = {}
    for key, value in group.items():
        if key == "params" or isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            out[key] = float(value)
        elif isinstance(value, tuple) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            out.update({f"{key}.{j}": float(v) for j, v in enumerate(value)})
        elif hasattr(value, "item") and getattr(value, "numel", lambda: 0)() == 1:  # a tensor learning rate
            out[key] = float(value.item())
    return out


def seeds_and_flags() -> dict[str, str]:
    """torch's seed, digests of the `random` and numpy states, and the determinism flags in force.

    `random` and numpy keep no record of the seed they were given, only their state;
    two runs whose state digests match at the same point drew the same numbers.
    """
    import numpy as np
    import torch

    out = {
        "seed.torch": str(torch.initial_seed()),
        "seed.python_state_sha256": hashlib.sha256(pickle.dumps(random.getstate())).hexdigest()[:16],
        "seed.numpy_state_sha256": hashlib.sha256(pickle.dumps(np.random.get_state())).hexdigest()[:16],
        "determinism.algorithms": str(torch.are_deterministic_algorithms_enabled()),
        "determinism.cudnn_deterministic": str(torch.backends.cudnn.deterministic),
        "determinism.cudnn_benchmark": str(torch.backends.cudnn.benchmark),
        "determinism.num_threads": str(torch.get_num_threads()),
    }
    for var in ("PYTHONHASHSEED", "CUBLAS_WORKSPACE_CONFIG"):
        if var in os.environ:
            out[f"determinism.{var}"] = os.environ[var]
    return out


def _owns(module: Any, optimizer: Any) -> bool:
    if module is None:
        return False
    mine = {id(p) for p in module.parameters()}
    return any(id(p) in mine for g in optimizer.param_groups for p in g["params"])


def _patch_loader() -> None:
    """Make iterating a DataLoader to its end an epoch of the watch it belongs to (patched once)."""
    global _loader_patch
    import torch

    with _loader_lock:
        if _loader_patch is not None:
            return
        loader_cls = torch.utils.data.DataLoader
        original = loader_cls.__iter__
        _loader_patch = original

        def __iter__(self: Any) -> Any:
            it = original(self)
            w = _loader_watches.get(id(self))
            if w is None and _state.autolog is not None and torch.is_grad_enabled():
                w = _state.autolog.watch_for(self)
            if w is None or w._closed:
                return it
            return _epoch(it, w)

        loader_cls.__iter__ = __iter__  # type: ignore[method-assign]


def _epoch(it: Any, w: Watch) -> Any:
    for batch in it:
        w.count_batch(batch)
        yield batch
    w.epoch_end()
