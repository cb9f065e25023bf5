"""MLflow compatibility: the MLflow tracking REST API on `mlkeep server`, and `import-mlflow`.

The official `mlflow` client talks to `mlkeep server` unchanged: experiments,
runs, params, metrics, tags, artifacts (through the `mlflow-artifacts` proxy),
MLflow 3 logged models, the model registry with aliases. Every call maps onto
mlkeep's own API, so what MLflow logs is an ordinary mlkeep run, searchable,
in lineage and in the UI. Modules:

- `messages`: mlkeep entities rendered as MLflow's JSON messages;
- `filters`: MLflow's search syntax (filter, order_by, view type) in mlkeep's filter language;
- `tracking`: the MLflow calls that need more than one mlkeep call (ids, log-batch);
- `datasets`: MLflow datasets and their context as mlkeep Datasets linked into runs;
- `logged_models`: MLflow 3 LoggedModels as mlkeep Models whose files are artifacts of their run;
- `registry`: the registry calls, stages as aliases;
- `commit`: `commit_logged_model(store, repository, ref)`, a model logged through MLflow into a repository;
- `routes`: the FastAPI router `mlkeep server` mounts;
- `importer`: `import_mlflow(store, source)`, migrating an MLflow store in.
"""
