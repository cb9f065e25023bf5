"""Running a model while catching what each layer or stage outputs.

Two runners with one contract: `run(model, X, layers, emit, ...)` calls
`emit(layer, start_row, values)` with 2-D float32 rows (a map flattened
channel by channel) as they are produced, and returns `RunTimes`: the
seconds the model took (capture work excluded) up to each layer, which the
cost model uses as Σ t_fwd.

* PyTorch: forward hooks on named submodules, in batches, under `no_grad`;
  `layers="all"` means every leaf module. With `stop_after`, the forward pass
  stops after that layer (recomputing an early layer does not run the rest).
* scikit-learn: the output of every stage of a Pipeline, FeatureUnion or
  ColumnTransformer, nested names joined by `/`; the last step of a pipeline
  outputs `predict_proba` (else `decision_function`, else `predict`).

torch and scikit-learn are imported only by the runner that needs them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlkeep.errors import InvalidInputError, LayerNotFoundError

Emit = Callable[[str, int, np.ndarray], None]
Progress = Callable[[int, int], None]


@dataclass
class RunTimes:
    """Measured model time: the whole run, up to (and including) each captured layer, and the time spent
    taking each layer's output (copying it out of the model, which a recompute pays too)."""

    total: float = 0.0
    upto: dict[str, float] = field(default_factory=dict)
    taking: dict[str, float] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)


class _Stop(Exception):
    """Raised inside a hook to end a forward pass early."""


def framework(model: Any) -> str:
    """'torch' or 'sklearn'; `InvalidInputError` for anything else."""
    from mlkeep.tracking.describe_model import is_torch_module

    if is_torch_module(model):
        return "torch"
    if hasattr(model, "fit") and hasattr(model, "get_params"):
        return "sklearn"
    raise InvalidInputError(
        f"Cannot capture intermediates of a {type(model).__name__}: give a PyTorch module, a scikit-learn "
        "estimator or pipeline, or a model version (commit)."
    )


def layer_names(model: Any, *, leaves_only: bool = True) -> list[str]:
    """The names `layers="all"` captures (every leaf module / every stage), in execution order for stages."""
    if framework(model) == "torch":
        return [n for n, m in model.named_modules() if n and (not leaves_only or not list(m.children()))]
    names: list[str] = []
    _sk_walk(model, "", names)
    return names


def resolve_layers(model: Any, layers: str | Sequence[str]) -> list[str]:
    """The layers to capture; `LayerNotFoundError` (listing the valid names) for an unknown one."""
    if layers == "all":
        return layer_names(model)
    if isinstance(layers, str):
        layers = [layers]
    known = layer_names(model, leaves_only=False)
    for name in layers:
        if name not in known:
            shown = ", ".join(known[:40]) + (" ..." if len(known) > 40 else "")
            raise LayerNotFoundError(f"The model has no layer {name!r}. Its layers are: {shown}.", known)
    if not layers:
        raise InvalidInputError("Name at least one layer, or pass layers='all'.")
    return list(dict.fromkeys(layers))


def run(model: Any, X: Any, layers: Sequence[str], emit: Emit, *, batch_size: int = 256,
        progress: Progress | None = None, stop_after: str | None = None) -> RunTimes:
    """Run `model` on `X`, emitting the outputs of `layers`; see the module docstring."""
    if framework(model) == "torch":
        return _run_torch(model, X, layers, emit, batch_size, progress, stop_after)
    return _run_sklearn(model, X, layers, emit, progress, stop_after)


def take_rows(X: Any, rows: np.ndarray | slice | None) -> Any:
    """`X` restricted to row ids or a range of rows (arrays and DataFrames alike)."""
    if rows is None:
        return X
    return X.iloc[rows] if hasattr(X, "iloc") else np.asarray(X)[rows]


def n_rows(X: Any) -> int:
    return int(X.shape[0]) if hasattr(X, "shape") else len(X)


# ----------------------------------------------------------------------- torch
def _run_torch(module: Any, X: Any, layers: Sequence[str], emit: Emit, batch_size: int,
               progress: Progress | None, stop_after: str | None) -> RunTimes:
    import torch

    times = RunTimes()
    state = {"start": 0.0, "overhead": 0.0, "row": 0}
    wanted = set(layers)

    def hook(name: str) -> Callable[..., None]:
        def on_output(_mod: Any, _inp: Any, out: Any) -> None:
            t0 = time.perf_counter()
            times.upto[name] = times.upto.get(name, 0.0) + (t0 - state["start"] - state["overhead"])
            tensor = out[0] if isinstance(out, (tuple, list)) else out
            if not isinstance(tensor, torch.Tensor):
                raise InvalidInputError(f"Layer {name!r} outputs a {type(tensor).__name__}, not a tensor.")
            times.shapes.setdefault(name, tuple(tensor.shape[1:]))
            # copy: a later in-place op (ReLU(inplace=True)) would change a shared buffer
            values = tensor.detach().to("cpu", torch.float32).reshape(tensor.shape[0], -1).numpy().copy()
            times.taking[name] = times.taking.get(name, 0.0) + time.perf_counter() - t0
            emit(name, int(state["row"]), values)
            state["overhead"] += time.perf_counter() - t0
            if name == stop_after:
                raise _Stop

        return on_output

    handles = [module.get_submodule(n).register_forward_hook(hook(n)) for n in wanted]
    was_training = module.training
    module.eval()
    data = np.asarray(X)
    n = len(data)
    try:
        with torch.no_grad():
            for start in range(0, n, batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(data[start : start + batch_size], dtype=np.float32))
                state.update(start=time.perf_counter(), overhead=0.0, row=start)
                try:
                    module(batch)
                except _Stop:
                    pass
                times.total += time.perf_counter() - state["start"] - state["overhead"]
                if progress is not None:
                    progress(min(start + batch_size, n), n)
    finally:
        for h in handles:
            h.remove()
        module.train(was_training)
    return times


# ----------------------------------------------------------------------- sklearn
def _sk_walk(est: Any, prefix: str, out: list[str]) -> None:
    for name, child in _sk_children(est):
        full = f"{prefix}{name}"
        _sk_walk(child, full + "/", out)
        out.append(full)
    if not prefix and not _sk_children(est):
        out.append("output")


def _sk_children(est: Any) -> list[tuple[str, Any]]:
    kind = type(est).__name__
    if kind == "Pipeline":
        return [(n, s) for n, s in est.steps if s not in (None, "passthrough")]
    if kind == "FeatureUnion":
        return [(n, t) for n, t in est.transformer_list if t not in (None, "drop", "passthrough")]
    if kind == "ColumnTransformer":
        found = getattr(est, "transformers_", est.transformers)
        return [(n, t) for n, t, _ in found if t not in ("drop", "passthrough")]
    return []


def _run_sklearn(model: Any, X: Any, layers: Sequence[str], emit: Emit, progress: Progress | None,
                 stop_after: str | None) -> RunTimes:
    times = RunTimes()
    wanted = set(layers)
    clock = {"start": time.perf_counter(), "overhead": 0.0}

    def out(name: str, value: Any) -> None:
        t0 = time.perf_counter()
        if name in wanted:
            times.upto[name] = t0 - clock["start"] - clock["overhead"]
            arr = _as_rows(value, name)
            times.taking[name] = time.perf_counter() - t0
            times.shapes[name] = tuple(arr.shape[1:])
            emit(name, 0, arr)
        clock["overhead"] += time.perf_counter() - t0
        if name == stop_after:
            raise _Stop

    try:
        if _sk_children(model):
            _sk_apply(model, X, "", out, last=True)
        else:
            out("output", _predict(model, X))
    except _Stop:
        pass
    times.total = time.perf_counter() - clock["start"] - clock["overhead"]
    if progress is not None:
        progress(n_rows(X), n_rows(X))
    return times


def _sk_apply(est: Any, X: Any, prefix: str, out: Callable[[str, Any], None], last: bool) -> Any:
    kind = type(est).__name__
    if kind == "Pipeline":
        steps = _sk_children(est)
        for i, (name, step) in enumerate(steps):
            X = _sk_apply(step, X, f"{prefix}{name}/", out, last and i == len(steps) - 1)
            out(f"{prefix}{name}", X)
        return X
    if kind == "FeatureUnion":
        for name, t in _sk_children(est):
            out(f"{prefix}{name}", _sk_apply(t, X, f"{prefix}{name}/", out, False))
        return est.transform(X)
    if kind == "ColumnTransformer":
        for name, t, cols in est.transformers_:
            if t in ("drop", "passthrough"):
                continue
            part = X[cols] if hasattr(X, "iloc") else np.asarray(X)[:, cols]
            out(f"{prefix}{name}", _sk_apply(t, part, f"{prefix}{name}/", out, False))
        return est.transform(X)
    if hasattr(est, "transform") and not (last and _has_predict(est)):
        return est.transform(X)
    return _predict(est, X)


def _has_predict(est: Any) -> bool:
    return any(hasattr(est, m) for m in ("predict_proba", "decision_function", "predict"))


def _predict(est: Any, X: Any) -> Any:
    for method in ("predict_proba", "decision_function"):
        if hasattr(est, method):
            try:
                return getattr(est, method)(X)
            except (AttributeError, NotImplementedError):
                continue
    if hasattr(est, "transform"):
        return est.transform(X)
    y = est.predict(X)
    classes = getattr(est, "classes_", None)
    if classes is not None and np.asarray(y).dtype.kind in "OUS":
        return np.searchsorted(np.asarray(classes), y)
    return y


def _as_rows(value: Any, name: str) -> np.ndarray:
    if hasattr(value, "toarray"):
        value = value.toarray()
    if hasattr(value, "to_numpy"):
        value = value.to_numpy()
    arr = np.asarray(value)
    try:
        arr = arr.astype(np.float32)
    except (TypeError, ValueError):
        raise InvalidInputError(f"Stage {name!r} outputs non-numeric values ({arr.dtype}); it cannot be stored.") from None
    return arr.reshape(len(arr), -1) if arr.ndim != 2 else np.ascontiguousarray(arr)
