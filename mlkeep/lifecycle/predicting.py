"""Running a loaded model on a frame of inputs: the one code path serving and monitoring share.

Monitoring predicts the training data with the served version to get the
reference distribution of predictions, so it must compute them exactly as
the server does (same conversion of inputs, same shape of outputs).
"""

from __future__ import annotations

import math
from typing import Any


def flavor_of(model: Any) -> str:
    """"torch" for a `torch.nn.Module` (put in eval mode by the loader), else "python" (`.predict`)."""
    return "torch" if hasattr(model, "state_dict") and hasattr(model, "forward") else "python"


def predict_frame(model: Any, flavor: str, rows: Any) -> list[Any]:
    """The model's outputs for `rows` (a DataFrame, or a 2-D array of numeric rows), as JSON-able lists
    (non-finite floats become None)."""
    import numpy as np

    array = rows if isinstance(rows, np.ndarray) else None
    if flavor == "torch":
        import torch

        with torch.no_grad():
            out = model(torch.from_numpy(np.asarray(rows if array is not None else rows.to_numpy(), np.float32)))
        return _jsonable(out.detach().cpu().numpy().tolist())
    x = rows if array is not None or hasattr(model, "feature_names_in_") else rows.to_numpy()
    return _jsonable(np.asarray(model.predict(x)).tolist())


def output_frame(outputs: list[Any]) -> Any:
    """Outputs as a frame with the columns `output_columns` names."""
    import pandas as pd

    if outputs and isinstance(outputs[0], list):
        return pd.DataFrame(outputs, columns=output_columns(len(outputs[0])))
    return pd.DataFrame({"prediction": outputs})


def output_columns(width: int) -> list[str]:
    """One `prediction` column, or `y0..yK` for models with several outputs (e.g. class scores)."""
    return ["prediction"] if width == 1 else [f"y{i}" for i in range(width)]


def _jsonable(values: list[Any]) -> list[Any]:
    return [(_jsonable(v) if isinstance(v, list) else (None if isinstance(v, float) and not math.isfinite(v) else v))
            for v in values]
