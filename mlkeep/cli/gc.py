"""`mlkeep gc` and `mlkeep retention`: what the store keeps, and deleting what it does not.

Each wraps one library call: `mlkeep.gc.gc` and `mlkeep.retention.get_policy` / `set_policy`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from mlkeep.cli import _common
from mlkeep.cli._common import JSON_HELP

if TYPE_CHECKING:
    from mlkeep.retention import RetentionPolicy

retention_app = typer.Typer(help="The store's retention policy, applied by `mlkeep gc`.", no_args_is_help=True)


def gc(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would be deleted; delete nothing.")] = False,
    grace: Annotated[float, typer.Option("--grace", min=0, metavar="SECONDS",
                                         help="Keep objects younger than this, reachable or not (concurrent writers).")] = 3600.0,
    retention: Annotated[bool, typer.Option("--retention/--no-retention",
                                            help="Apply the retention policy first (see `mlkeep retention`).")] = True,
    json_: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Apply the retention policy, then delete unreachable objects older than --grace seconds (default one hour)."""
    from mlkeep.gc import gc as run_gc

    report = run_gc(_common.open_store(ctx), dry_run=dry_run, grace_seconds=grace, retention=retention)
    if json_:
        _common.print_json(report.to_dict())
        return
    verb = "would delete" if dry_run else "deleted"
    kept = report.retention
    if kept is not None and (kept.runs_purged or kept.runs_kept or kept.versions_pruned):
        typer.echo(f"retention: {'would purge' if dry_run else 'purged'} {_common.count(len(kept.runs_purged), 'run')}, "
                   f"{'would drop' if dry_run else 'dropped'} the weights of "
                   f"{_common.count(len(kept.versions_pruned), 'version')}")
        for run_id, why in sorted(kept.runs_kept.items()):
            typer.echo(f"  kept run {_common.short(run_id)}: {why}")
    typer.echo(
        f"{report.objects} objects: {report.reachable} reachable, {report.unreachable} unreachable "
        f"({report.too_young} younger than {grace:g}s kept); {verb} {len(report.deleted)} "
        f"({_common.size(report.bytes_freed)})"
    )
    if report.incomplete_uploads:
        typer.echo(f"{'would abort' if dry_run else 'aborted'} {_common.count(len(report.incomplete_uploads), 'incomplete upload')} "
                   f"left by killed writers ({_common.size(report.upload_bytes_freed)})")


@retention_app.command("set")
def set_(
    ctx: typer.Context,
    failed_runs: Annotated[Optional[float], typer.Option("--failed-runs", min=0, metavar="DAYS",
                                                         help="Purge FAILED and KILLED runs that ended this many days ago.")] = None,
    deleted_runs: Annotated[Optional[float], typer.Option("--deleted-runs", min=0, metavar="DAYS",
                                                          help="Purge deleted runs that ended this many days ago.")] = None,
    keep_versions: Annotated[Optional[int], typer.Option("--keep-versions", min=1, metavar="N",
                                                         help="Keep the weights of the newest N commits per branch "
                                                              "(plus tagged, registered and captured ones).")] = None,
    json_: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Change the rules given (the others stay as they are); `mlkeep gc` applies them."""
    from dataclasses import replace

    from mlkeep import retention

    store = _common.open_store(ctx)
    given: dict[str, Any] = {"failed_runs_days": failed_runs, "deleted_runs_days": deleted_runs,
                             "keep_versions": keep_versions}
    policy = retention.set_policy(store, replace(retention.get_policy(store),
                                                 **{k: v for k, v in given.items() if v is not None}))
    _print(policy, json_)


@retention_app.command("show")
def show(ctx: typer.Context, json_: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False) -> None:
    """Print the retention policy."""
    from mlkeep import retention

    _print(retention.get_policy(_common.open_store(ctx)), json_)


@retention_app.command("clear")
def clear(ctx: typer.Context) -> None:
    """Remove every rule: keep everything (what gc already deleted stays deleted)."""
    from mlkeep import retention

    retention.set_policy(_common.open_store(ctx), retention.RetentionPolicy())
    typer.echo("Retention policy cleared: everything is kept.")


def _print(policy: RetentionPolicy, json_: bool) -> None:
    if json_:
        _common.print_json(policy.to_dict())
        return
    rules = [
        f"purge FAILED and KILLED runs {policy.failed_runs_days:g} days after they end"
        if policy.failed_runs_days is not None else None,
        f"purge deleted runs {policy.deleted_runs_days:g} days after they end"
        if policy.deleted_runs_days is not None else None,
        f"keep the weights of the newest {policy.keep_versions} commits per branch, and of every tagged, "
        "registered or captured one" if policy.keep_versions is not None else None,
    ]
    typer.echo("\n".join(r for r in rules if r) if not policy.empty else "No retention policy: everything is kept.")


def register(app: typer.Typer) -> None:
    app.command("gc")(gc)
    app.add_typer(retention_app, name="retention")
