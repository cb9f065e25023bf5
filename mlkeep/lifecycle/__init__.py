"""The lifecycle after training: registry (versions, aliases, transitions), serving, model cards.

`store.registry` is the entry point; `mlkeep.load_model("models:/name@alias")`
resolves through it, and `serving.create_serving_app` puts a version behind HTTP.
"""

from mlkeep.lifecycle.entities import ModelVersion, RegisteredModel, Transition
from mlkeep.lifecycle.registry import Registry, parse_uri

__all__ = ["ModelVersion", "RegisteredModel", "Registry", "Transition", "parse_uri"]
