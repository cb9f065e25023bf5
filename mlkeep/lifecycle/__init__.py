"""The lifecycle after training: registry (versions, aliases, transitions), serving, monitoring, model cards.

`store.registry` is the entry point; `mlkeep.load_model("models:/name@alias")`
resolves through it, `serving.create_serving_app` puts a version behind HTTP,
`monitor_report` measures drift and live accuracy of what it was asked, and
`store.registry.model_card` writes what the store knows about a version.
"""

from mlkeep.lifecycle.drift import FeatureDrift, Thresholds
from mlkeep.lifecycle.entities import ModelVersion, RegisteredModel, Transition
from mlkeep.lifecycle.monitoring import MonitorReport, monitor_report
from mlkeep.lifecycle.registry import Registry, parse_uri

__all__ = ["FeatureDrift", "ModelVersion", "MonitorReport", "RegisteredModel", "Registry", "Thresholds",
           "Transition", "monitor_report", "parse_uri"]
