"""`mlkeep repo ...`: model versions like git — log, diff, checkout, branch, tag, merge, commit, plan."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mlkeep.cli import _common
from mlkeep.cli._common import JSON_HELP, cells, short

app = typer.Typer(help="Version models like git: commits, branches, tags, diff, merge, checkout.", no_args_is_help=True)

NAME = Annotated[str, typer.Argument(metavar="NAME", help="The repository (one per model).")]


@app.command("list")
def list_(ctx: typer.Context, json_: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False) -> None:
    """List the repositories of the store."""
    names = _common.open_store(ctx).repositories()
    if json_:
        _common.print_json(names)
        return
    for name in names:
        typer.echo(name)


@app.command("commit")
def commit(
    ctx: typer.Context,
    name: NAME,
    model: Annotated[Path, typer.Argument(help="A .safetensors file to commit.")],
    message: Annotated[str, typer.Option("--message", "-m", help="What changed.")] = "",
    branch: Annotated[str, typer.Option("--branch", help="Branch to commit on.")] = "main",
    json_: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Commit the weights in a safetensors file on BRANCH."""
    c = _common.open_store(ctx).repo(name).commit(model, message, branch=branch)
    if json_:
        _common.print_json(c.to_dict())
        return
    typer.echo(f"[{branch} {short(c.id)}] {message}")


@app.command("log")
def log(
    ctx: typer.Context,
    name: NAME,
    ref: Annotated[str, typer.Argument(help="Branch, tag or commit to start from.")] = "main",
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Show at most N commits.")] = None,
    json_: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Show the history of REF, newest first."""
    _common.listing(_common.open_store(ctx).repo(name).log(ref, limit=limit), json_,
                    ("commit", "time", "author", "kind", "message", "parents"),
                    lambda c: (short(c.id), _common.when(c.time), c.author or "", c.kind, c.message,
                               " ".join(short(p) for p in c.parents)))


@app.command("diff")
def diff(
    ctx: typer.Context,
    name: NAME,
    a: Annotated[str, typer.Argument(help="The older ref.")],
    b: Annotated[str, typer.Argument(help="The newer ref.")] = "main",
    json_: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """What changed from A to B: tensors (how much), hyperparameters, architecture, datasets, code."""
    d = _common.open_store(ctx).repo(name).diff(a, b)
    if json_:
        _common.print_json(d.to_dict())
        return
    from rich.table import Table

    table = Table("tensor", "change", "shape", "changed", "L2", "max |Δ|",
                  caption=f"{d.unchanged} tensors unchanged", caption_justify="left")
    for t in d.tensors:
        shape = str(t.shape_b or t.shape_a) if t.shape_a == t.shape_b or not t.shape_a else f"{t.shape_a} → {t.shape_b}"
        table.add_row(*cells(t.name, t.status, shape, _pct(t.fraction_changed), _num(t.l2), _num(t.max_abs)))
    con = _common.console()
    con.print(table)
    for key, (old, new) in {**d.hyperparameters, **{f"code.{k}": v for k, v in d.code.items()}}.items():
        con.print(f"[yellow]{key}[/]: {old} → {new}")
    for line in d.architecture:
        con.print(line, markup=False)
    for ds in d.datasets_added:
        con.print(f"[green]+ dataset {ds}[/]")
    for ds in d.datasets_removed:
        con.print(f"[red]- dataset {ds}[/]")


@app.command("checkout")
def checkout(
    ctx: typer.Context,
    name: NAME,
    ref: Annotated[str, typer.Argument(help="Branch, tag, commit, or e.g. main~2.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write: .safetensors, or .pkl for estimators.")],
) -> None:
    """Write version REF to a file, verified bit for bit against the commit."""
    path = _common.open_store(ctx).repo(name).checkout_file(ref, output)
    typer.echo(str(path))


@app.command("branch")
def branch(
    ctx: typer.Context,
    name: NAME,
    branch_name: Annotated[Optional[str], typer.Argument(metavar="BRANCH", help="Branch to create; none lists.")] = None,
    at: Annotated[str, typer.Option("--at", help="Where the new branch starts.")] = "main",
    json_: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """List branches, or create BRANCH at --at."""
    repo = _common.open_store(ctx).repo(name)
    if branch_name is not None:
        repo.branch(branch_name, at=at)
    _print_refs(repo.branches(), json_)


@app.command("tag")
def tag(
    ctx: typer.Context,
    name: NAME,
    tag_name: Annotated[Optional[str], typer.Argument(metavar="TAG", help="Tag to create; none lists.")] = None,
    ref: Annotated[str, typer.Argument(help="What the tag names.")] = "main",
    json_: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """List tags, or tag REF as TAG (tags never move)."""
    repo = _common.open_store(ctx).repo(name)
    if tag_name is not None:
        repo.tag(tag_name, ref)
    _print_refs(repo.tags(), json_)


@app.command("merge")
def merge(
    ctx: typer.Context,
    name: NAME,
    ours: Annotated[str, typer.Argument(help="The branch (or ref) to merge into.")],
    theirs: Annotated[str, typer.Argument(help="The ref to merge.")],
    strategy: Annotated[str, typer.Option("--strategy", help="Where both changed a tensor: ours, theirs, average, fail.")] = "fail",
    message: Annotated[Optional[str], typer.Option("--message", "-m", help="Commit message.")] = None,
    json_: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Merge THEIRS into OURS tensor by tensor and commit the result."""
    c = _common.open_store(ctx).repo(name).merge(ours, theirs, strategy=strategy, message=message)
    if json_:
        _common.print_json(c.to_dict())
        return
    typer.echo(f"{short(c.id)} {c.message}")


@app.command("plan")
def plan(
    ctx: typer.Context,
    name: NAME,
    ref: Annotated[str, typer.Argument(help="Branch, tag or commit to start from.")] = "main",
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Show at most N commits.")] = None,
    json_: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """How each version keeps its weights (full, delta or provenance), its bytes, recovery time and chain depth."""
    entries = _common.open_store(ctx).repo(name).plan(ref, limit=limit)
    if json_:
        _common.print_json([e.to_dict() for e in entries])
        return
    from rich.table import Table

    table = Table("commit", "storage", "new bytes", "raw", "recovery s (est.)", "chain depth", "re-runs", "message")
    for e in entries:
        table.add_row(*cells(short(e.commit), e.storage, _common.size(e.stored_bytes), _common.size(e.nbytes),
                             f"{e.recovery_seconds:.3f}", str(e.chain_depth), str(e.reruns), e.message))
    _common.console().print(table)


def _print_refs(found: dict[str, str], json_: bool) -> None:
    if json_:
        _common.print_json(found)
        return
    for ref, commit_id in found.items():
        typer.echo(f"{ref}\t{short(commit_id)}")


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.4g}"
