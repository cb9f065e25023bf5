"""What every command shares: opening the store, printing JSON, formatting values.

Kept free of heavy imports (no `mlkeep.store`, SQLAlchemy or pandas) so that
`mlkeep --help` stays fast; the store is opened inside a command, on demand.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from mlkeep.store import Store

T = TypeVar("T")
SHORT = 8
JSON_HELP = "Print JSON (machine-readable) instead of tables."


@dataclass
class State:
    """Options of the root command, handed to every subcommand through the click context."""

    store: str | None = None


def open_store(ctx: typer.Context) -> Store:
    """The store named by `--store` / MLKEEP_URI (or found above the cwd), closed when the command ends."""
    import mlkeep

    state = ctx.find_object(State)
    store = mlkeep.open(state.store if state else None)
    ctx.call_on_close(store.close)
    return store


def console() -> Console:
    """A rich console on stdout; made per command so it sees the current stdout and COLUMNS."""
    from rich.console import Console

    return Console(highlight=False)


def print_json(data: Any) -> None:
    """Strict JSON on stdout: no rich markup, non-finite floats as null."""
    typer.echo(json.dumps(_jsonable(data), indent=2, sort_keys=False, default=str))


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "to_dict"):
        return _jsonable(value.to_dict())
    return value


def listing(items: Sequence[T], json_: bool, columns: Sequence[str], row: Callable[[T], Sequence[Any]], *,
            noun: str | None = None) -> None:
    """The list commands' one output rule: JSON of every item with `--json`, else a table of `row(item)` cells
    (captioned with the count when `noun` is given)."""
    if json_:
        print_json(items)
        return
    from rich.table import Table

    caption = count(len(items), noun) if noun else None
    table = Table(*columns, caption=caption, caption_justify="left")
    for item in items:
        table.add_row(*cells(*row(item)))
    console().print(table)


def short(entity_id: str | None) -> str:
    """The first characters of an id, enough to tell entities apart on screen."""
    return entity_id[:SHORT] if entity_id else ""


def when(ms: int | None) -> str:
    """A millisecond timestamp as local date and time."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def duration(start_ms: int | None, end_ms: int | None) -> str:
    """Elapsed time between two millisecond timestamps, e.g. `1.2s`, `3m 04s`, `2h 05m`."""
    if start_ms is None or end_ms is None:
        return ""
    seconds = max(end_ms - start_ms, 0) / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def number(value: Any) -> str:
    """A metric or statistic compactly (4 significant digits), anything else as text."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def size(nbytes: int) -> str:
    """A byte count for humans (`812 B`, `4.1 KiB`)."""
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # unreachable; keeps type checkers happy


STATUS_STYLE = {"FINISHED": "green", "RUNNING": "cyan", "FAILED": "red", "KILLED": "yellow"}


def status(value: str) -> Any:
    """A run status as rich `Text` in its colour."""
    from rich.text import Text

    return Text(value, style=STATUS_STYLE.get(value, ""))


def key_value_table(title: str, rows: dict[str, Any]) -> Any:
    """A two-column rich table of names and values; a `Text` value keeps its style, others print verbatim."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left", title_style="bold", show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows.items():
        table.add_row(Text(str(key)), value if isinstance(value, Text) else Text(number(value)))
    return table


def cells(*values: Any) -> list[Any]:
    """Table cells: a `Text` (or other renderable) as is, any other value as verbatim text (never markup)."""
    from rich.text import Text

    return [v if hasattr(v, "__rich_console__") else Text(number(v)) for v in values]


def count(n: int, noun: str) -> str:
    """`1 run`, `3 runs`."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
