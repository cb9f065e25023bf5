"""What a fitted model is, in the schema's words: algorithm, framework, hyperparameters, transforms.

scikit-learn estimators are described from `get_params` (with `nonDefault`
from the constructor's signature) and pipelines (Pipeline, ColumnTransformer,
FeatureUnion) become a graph of Transforms. PyTorch modules become one
Transform per child module. Anything else is described by its class.
"""

from __future__ import annotations

import functools
import inspect
from importlib import metadata
from typing import Any

from mlkeep.ids import now_ms
from mlkeep.tracking.entities import Dataset, Hyperparameter, Model, Transform

DISTRIBUTIONS = {"sklearn": "scikit-learn", "torch": "torch", "xgboost": "xgboost", "lightgbm": "lightgbm"}


def describe(
    model: Any,
    *,
    model_id: str,
    name: str | None,
    flavor: str,
    object_id: str | None,
    run_id: str | None,
    dataset: Dataset | None,
) -> Model:
    cls = type(model)
    framework = framework_of(model)
    return Model(
        id=model_id,
        name=name or cls.__name__,
        learning_algorithm=f"{cls.__module__}.{cls.__qualname__}",
        creation_time=now_ms(),
        run_id=run_id,
        trained_on_dataset_id=dataset.id if dataset else None,
        framework=framework,
        framework_version=_version(framework),
        object=object_id,
        hyperparameters=hyperparameters(model),
        transforms=transforms(model, model_id),
        input=[c for c in dataset.columns if c["name"] != dataset.targets] if dataset else [],
        flavor=flavor,
    )


def framework_of(model: Any) -> str:
    """The framework a model belongs to, also for user subclasses (a `Net(nn.Module)` is torch)."""
    for cls in type(model).__mro__:
        root = cls.__module__.split(".", 1)[0]
        if root in DISTRIBUTIONS:
            return root
    return type(model).__module__.split(".", 1)[0]


def is_torch_module(obj: Any) -> bool:
    return any(c.__name__ == "Module" and c.__module__ == "torch.nn.modules.module" for c in type(obj).__mro__)


def hyperparameters(model: Any) -> list[Hyperparameter]:
    """Shallow params of an estimator, marked `non_default` where the constructor default differs."""
    get_params = getattr(model, "get_params", None)
    if not callable(get_params):
        return []
    try:
        params = get_params(deep=False)
    except Exception:  # a get_params that is not scikit-learn's
        return []
    defaults = _defaults(type(model))
    out = []
    for key in sorted(params):
        value = params[key]
        default = defaults.get(key, inspect.Parameter.empty)
        non_default = None if default is inspect.Parameter.empty else not _same(value, default)
        out.append(Hyperparameter(name=key, value=_text(value), typing=_typing(value), non_default=non_default))
    return out


def transforms(model: Any, model_id: str) -> list[Transform]:
    """The transform graph: pipeline steps in order, parallel branches of unions and column transformers."""
    out: list[Transform] = []
    _walk(model, f"{model_id}/", [], out)
    return out


def _walk(obj: Any, prefix: str, inputs: list[str], out: list[Transform]) -> list[str]:
    """Append the transforms of `obj` fed by `inputs`; return the ids that produce its output."""
    kind = type(obj).__name__
    steps = getattr(obj, "steps", None)
    if kind == "Pipeline" and isinstance(steps, list):
        current = inputs
        for step_name, step in steps:
            if step is None or step == "passthrough":
                continue
            current = _walk(step, f"{prefix}{step_name}/", current, out)
        return current
    branches = _branches(obj)
    if branches is not None:
        ends: list[str] = []
        for branch_name, branch, columns in branches:
            if branch in (None, "drop"):
                continue
            if branch == "passthrough":
                continue
            first = len(out)
            ends += _walk(branch, f"{prefix}{branch_name}/", inputs, out)
            if columns is not None and len(out) > first:
                head = out[first]
                out[first] = Transform(**{**head.__dict__, "input": [{"name": str(c), "typing": "UNKNOWN"} for c in columns]})
        return ends
    module_children = _torch_children(obj)
    if module_children:
        current = inputs
        for child_name, child in module_children:
            current = [_add(child, f"{prefix}{child_name}", child_name, current, out)]
        return current
    return [_add(obj, prefix.rstrip("/"), prefix.rstrip("/").rsplit("/", 1)[-1], inputs, out)]


def _add(obj: Any, tid: str, name: str, inputs: list[str], out: list[Transform]) -> str:
    framework = framework_of(obj)
    params = {h.name: h.value for h in hyperparameters(obj)}
    if framework == "torch":
        params.update(_torch_params(obj))
    out.append(
        Transform(
            id=tid, name=f"{name}:{type(obj).__name__}", framework=framework, framework_version=_version(framework),
            parameters=params, input_transforms=list(inputs), input=_columns(obj, "feature_names_in_"),
            output=_output_columns(obj),
        )
    )
    return tid


def _branches(obj: Any) -> list[tuple[str, Any, Any]] | None:
    kind = type(obj).__name__
    if kind == "ColumnTransformer":
        fitted = getattr(obj, "transformers_", None) or obj.transformers
        return [(n, t, c if isinstance(c, (list, tuple)) else [c]) for n, t, c in fitted if n != "remainder" or t != "drop"]
    if kind == "FeatureUnion":
        return [(n, t, None) for n, t in obj.transformer_list]
    return None


def _torch_children(obj: Any) -> list[tuple[str, Any]]:
    """Children of a torch module, in registration order (the forward order for most nets)."""
    return list(obj.named_children()) if is_torch_module(obj) else []


def _torch_params(module: Any) -> dict[str, str]:
    params = list(module.parameters())
    return {
        "parameters": str(sum(p.numel() for p in params)),
        "trainable": str(any(p.requires_grad for p in params)).lower(),
        "shapes": ";".join(f"{n}={tuple(p.shape)}" for n, p in module.named_parameters()),
    }


def _columns(obj: Any, attr: str) -> list[dict[str, str]]:
    names = getattr(obj, attr, None)
    return [] if names is None else [{"name": str(n), "typing": "UNKNOWN"} for n in names]


def _output_columns(obj: Any) -> list[dict[str, str]]:
    get_names = getattr(obj, "get_feature_names_out", None)
    if not callable(get_names) or not hasattr(obj, "n_features_in_"):
        return []
    try:
        return [{"name": str(n), "typing": "DOUBLE"} for n in get_names()]
    except Exception:  # not every fitted transformer can name its outputs
        return []


def _defaults(cls: type) -> dict[str, Any]:
    try:
        sig = inspect.signature(cls.__init__)  # type: ignore[misc]
    except (TypeError, ValueError):
        return {}
    return {n: p.default for n, p in sig.parameters.items() if n != "self"}


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if isinstance(a, bool) != isinstance(b, bool) or not (type(a) is type(b) or _numbers(a, b)):
        return False
    try:
        return bool(a == b)
    except Exception:  # arrays and other values without a truthy ==
        return False


def _numbers(a: Any, b: Any) -> bool:
    return isinstance(a, (int, float)) and isinstance(b, (int, float))


def _text(value: Any) -> str:
    if hasattr(value, "get_params") and not isinstance(value, type):
        return f"{type(value).__module__}.{type(value).__qualname__}"
    text = repr(value) if not isinstance(value, str) else value
    return text if text else "''"


def _typing(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "LONG"
    if isinstance(value, float):
        return "DOUBLE"
    if isinstance(value, str) or value is None:
        return "STRING"
    return "UNKNOWN"


@functools.lru_cache(maxsize=64)  # importlib.metadata reads files: milliseconds a call
def _version(framework: str | None) -> str | None:
    if not framework:
        return None
    try:
        return metadata.version(DISTRIBUTIONS.get(framework, framework))
    except metadata.PackageNotFoundError:
        return None
