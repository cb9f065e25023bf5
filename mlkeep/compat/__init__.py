"""Compatibility layers: other tools' APIs served over mlkeep's own store (MLflow's, in `compat.mlflow`)."""
