"""Model cards: Markdown (or HTML) written from what the store knows about a registered version.

Sections: model details (version, aliases, source, owner, description),
intended use (the registered model's description), training run (params,
metrics), training data (schema, statistics), evaluations (scores, confusion
matrix), lineage, environment, known drift (a monitoring report over the
newest logged predictions), alias history. A section with nothing known
says so rather than disappearing, so a reader sees what is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlkeep.errors import InvalidInputError, MlkeepError, NoDataError
from mlkeep.lifecycle.entities import utc
from mlkeep.lifecycle.registry import parse_uri

if TYPE_CHECKING:
    from mlkeep.store import Store

ENVIRONMENT_KEYS = ("python", "platform", "packages.numpy", "packages.scikit-learn", "packages.torch", "git.commit")
FORMATS = ("md", "html")


def model_card(store: Store, ref: str, version: int | None = None, *, format: str = "md") -> str:
    """The card of the version `ref` names (`NAME@ALIAS`, `NAME/3`, `models:/...`; `NAME` alone: the latest,
    or `version` when given) as Markdown (`format="md"`) or a standalone HTML page (`"html"`).

    Raises `NotFoundError` when there is no such version, `InvalidInputError` for another format.
    """
    if format not in FORMATS:
        raise InvalidInputError(f"A model card is written as {' or '.join(FORMATS)}, not {format!r}.")
    registry = store.registry
    v = registry.get_version(parse_uri(ref)[0], version) if version is not None else registry.resolve(ref)
    name = v.name
    rm = registry.get(name)
    run = store.get_run(v.run_id) if v.run_id else None
    lines = [f"# Model card: {name} version {v.version}", ""]
    lines += _details(rm, v)
    lines += ["## Intended use", "", rm.description or "_No description: set one with `update_model`._", ""]
    lines += _run(run)
    lines += _data(store, v.dataset_id)
    lines += _evaluations(store, v.model_id)
    lines += _lineage(store, v.id)
    lines += _environment(run, store, v)
    lines += _drift(store, v)
    lines += _history(registry.history(name))
    text = "\n".join(lines).rstrip() + "\n"
    return text if format == "md" else _html(f"Model card: {name} version {v.version}", text)


def _html(title: str, markdown: str) -> str:
    """A standalone page; raw HTML in descriptions is shown as text, never run."""
    from html import escape

    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    style = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:960px;color:#222}"
             "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:3px 8px}th{background:#f4f4f4}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{style}</style></head><body>{body}</body></html>\n")


def _drift(store: Store, v: Any) -> list[str]:
    """Drift over the newest logged predictions of this version (see `monitoring.monitor_report`)."""
    from mlkeep.lifecycle.monitoring import monitor_report

    out = ["## Known drift", ""]
    try:
        r = monitor_report(store, f"{v.name}/{v.version}", window="all")
    except NoDataError:
        return out + ["_No predictions of this version have been logged, so no drift is known._", ""]
    except MlkeepError as exc:
        return out + [f"_Drift cannot be measured: {exc}_", ""]
    out += [f"Over {r.predictions} logged predictions ({r.rows} rows) from {utc(r.start)} "
            f"to {utc(r.end)}; a column is drifted when p < {r.thresholds.p_value:g} and PSI ≥ {r.thresholds.psi:g}.",
            ""]
    out += [f"**Drifted:** {', '.join(f'`{d}`' for d in r.drifted)}." if r.drifted else "No column has drifted.", ""]
    if r.performance is not None:
        p = r.performance
        out += _table(["live score", "value", "offline"], [(k, _num(val), _num(p.offline.get(k)))
                                                           for k, val in p.live.items()])
        out += ["", f"Live scores on {p.labelled_rows} labelled rows.", ""]
    shown = sorted(r.features + r.outputs, key=lambda d: -d.psi if d.psi == d.psi else 0)[:10]
    return out + _table(["column", "test", "p-value", "PSI", "drifted"], [
        (d.feature, d.test, _num(d.p_value), _num(d.psi), "yes" if d.drifted else "") for d in shown]) + [""]


def _details(rm: Any, v: Any) -> list[str]:
    rows = [("Registered model", rm.name), ("Version", str(v.version)),
            ("Aliases", ", ".join(v.aliases) or "none"), ("Source", f"{v.source_kind} `{v.source}`"),
            ("Model record", f"`{v.model_id}`"), ("Owner", v.owner or rm.owner or "unknown"),
            ("Registered", utc(v.creation_time))]
    rows += [(f"Tag `{k}`", val) for k, val in {**rm.tags, **v.tags}.items()]
    out = ["## Model details", "", *_table(["", ""], rows), ""]
    if v.description:
        out += [v.description, ""]
    return out


def _run(run: Any) -> list[str]:
    out = ["## Training run", ""]
    if run is None:
        return out + ["_No training run is recorded for this version._", ""]
    out += [f"Run `{run.id}` ({run.name}) in experiment {run.experiment}, status {run.status}.", ""]
    if run.params:
        out += ["### Hyperparameters", "", *_table(["param", "value"], sorted(run.params.items())), ""]
    if run.metrics:
        out += ["### Metrics", "", *_table(["metric", "last", "min", "max"], [
            (k, _num(m.value), _num(m.min), _num(m.max)) for k, m in sorted(run.metrics.items())]), ""]
    return out


def _data(store: Store, dataset_id: str | None) -> list[str]:
    out = ["## Training data", ""]
    if not dataset_id:
        return out + ["_The training dataset is not recorded._", ""]
    ds = store.get_dataset(dataset_id)
    out += [f"Dataset **{ds.name}** version {ds.version} (`{ds.id}`), {ds.num_rows} rows, "
            f"{len(ds.columns)} columns" + (f", target column `{ds.targets}`." if ds.targets else "."), ""]
    rows = []
    for c in ds.columns:
        st = ds.statistics.get(c["name"], {})
        rows.append((c["name"], c["typing"], _num(st.get("mean")), _num(st.get("std")), _num(st.get("min")),
                     _num(st.get("max")), str(st.get("nulls", ""))))
    return out + _table(["column", "type", "mean", "std", "min", "max", "nulls"], rows) + [""]


def _evaluations(store: Store, model_id: str) -> list[str]:
    from mlkeep.tracking.predictions import list_evaluations

    found = [e for e in list_evaluations(store.db) if e.model_id == model_id]
    out = ["## Evaluation", ""]
    if not found:
        return out + ["_No evaluation is recorded for this version._", ""]
    for e in found:
        out += [f"### {e.name or 'evaluation'} on dataset `{e.dataset_id}`", ""]
        out += _table(["score", "value"], [(k, _num(v)) for k, v in sorted(e.scores.items())]) + [""]
        if e.confusion_matrix:
            labels = e.class_labels or [str(i) for i in range(len(e.confusion_matrix))]
            out += ["Confusion matrix (rows: true, columns: predicted):", ""]
            out += _table(["true \\ predicted", *labels],
                          [(labels[i], *(str(x) for x in row)) for i, row in enumerate(e.confusion_matrix)]) + [""]
    return out


def _lineage(store: Store, version_id: str) -> list[str]:
    graph = store.lineage(version_id, "up")
    rows = [(n.kind, n.name, f"`{n.id}`", str(graph.depth.get(n.id, ""))) for n in graph.nodes.values()
            if n.id != version_id]
    rows.sort(key=lambda r: (int(r[3] or 0), r[0]))
    out = ["## Lineage (upstream)", ""]
    return out + (_table(["kind", "name", "id", "steps"], rows) if rows else ["_Nothing upstream is recorded._"]) + [""]


def _environment(run: Any, store: Store, v: Any) -> list[str]:
    env = dict(run.environment) if run is not None and run.environment else {}
    if not env and v.source_kind == "commit":
        repo, _, commit_id = v.source.rpartition("@")
        env = dict(store.repo(repo).get(commit_id).environment)
    out = ["## Environment", ""]
    if not env:
        return out + ["_No environment is recorded._", ""]
    keys = [k for k in ENVIRONMENT_KEYS if k in env] or sorted(env)[:15]
    return out + _table(["", ""], [(k, str(env[k])) for k in keys]) + [""]


def _history(transitions: list[Any]) -> list[str]:
    out = ["## Alias history", ""]
    if not transitions:
        return out + ["_No alias has been set._", ""]
    rows = [(utc(t.time), t.alias, _v(t.from_version), _v(t.to_version), t.user or "", t.reason or "")
            for t in transitions]
    return out + _table(["when", "alias", "from", "to", "who", "why"], rows) + [""]


def _table(header: list[str], rows: list[tuple[str, ...]] | list[Any]) -> list[str]:
    def cell(x: Any) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    return (["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
            + ["| " + " | ".join(cell(x) for x in row) + " |" for row in rows])


def _num(x: Any) -> str:
    return "" if x is None else f"{x:.4g}" if isinstance(x, float) else str(x)


def _v(x: int | None) -> str:
    return "—" if x is None else str(x)

