"""Committing a model logged through MLflow to an mlkeep repository.

MLflow has no versions of weights, only files per logged model. Once one is
in mlkeep, `commit_logged_model` puts it under version control like any
model: tensors chunked and de-duplicated against earlier commits, the
commit linked to the run that logged it and the dataset it was trained on,
checkouts verified bit for bit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlkeep.compat.mlflow import logged_models
from mlkeep.errors import UnsupportedError

if TYPE_CHECKING:
    from mlkeep.store import Store
    from mlkeep.versioning.commit import Commit


def commit_logged_model(store: Store, repository: str, ref: str, message: str = "", *,
                        branch: str = "main") -> Commit:
    """Commit the model `ref` names (see `logged_models.resolve`) onto `branch` of `repository`.

    The model object is read from its verified blob; raises `NotFoundError` if `ref` names no model and
    `UnsupportedError` if MLflow logged it in a form mlkeep cannot load (it loads scikit-learn pickles).
    """
    model = logged_models.resolve(store, ref)
    if model.object is None:
        raise UnsupportedError(
            f"Model {model.id} has no form mlkeep can load: mlkeep reads scikit-learn models MLflow logged with "
            "serialization_format='cloudpickle' or 'pickle'. Log it so, or commit the loaded object yourself: "
            f"store.repo({repository!r}).commit(mlflow.sklearn.load_model(uri), run={model.run_id!r})."
        )
    datasets = [model.trained_on_dataset_id] if model.trained_on_dataset_id else []
    return store.repo(repository).commit(store.load_model(model.id), message or f"MLflow model {model.id}",
                                         branch=branch, run=model.run_id, datasets=datasets)
