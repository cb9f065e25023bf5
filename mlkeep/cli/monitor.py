"""`mlkeep monitor report NAME@ALIAS`: drift and live accuracy of a served version, in the terminal or HTML."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from mlkeep.cli import _common
from mlkeep.cli._common import JSON_HELP, cells

app = typer.Typer(help="Monitoring: input and prediction drift against the training data, live accuracy.",
                  no_args_is_help=True)
SHOWN = 20


@app.command("report")
def report(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="NAME@ALIAS", help="NAME@ALIAS, NAME/VERSION or models:/...")],
    window: Annotated[str, typer.Option("--window", help="How far back: 90s, 30m, 1h, 7d, 2w or all.")] = "24h",
    html: Annotated[Optional[Path], typer.Option("--html", help="Also write the report with plots to FILE.")] = None,
    psi: Annotated[float, typer.Option("--psi", help="PSI at or above which a shift is large.")] = 0.2,
    p_value: Annotated[float, typer.Option("--p-value", help="p-value below which a shift is significant.")] = 0.01,
    json_: Annotated[bool, typer.Option("--json", help=JSON_HELP)] = False,
) -> None:
    """Drift per feature and of the predictions over --window, and live accuracy when labels were logged."""
    from mlkeep.lifecycle.drift import Thresholds
    from mlkeep.lifecycle.monitoring import monitor_report

    found = monitor_report(_common.open_store(ctx), ref, window=window, thresholds=Thresholds(psi=psi, p_value=p_value))
    if html is not None:
        from mlkeep.lifecycle.report_html import report_html

        html.write_text(report_html(found), encoding="utf-8")
    if json_:
        _common.print_json(found)
    else:
        _print(found, html)


def _print(r: Any, html: Path | None) -> None:
    from rich.table import Table
    from rich.text import Text

    con = _common.console()
    con.print(f"[bold]{r.name}[/] version {r.version} ({r.ref}): {r.predictions} predictions, {r.rows} rows, "
              f"{_common.when(r.start)} → {_common.when(r.end)}" + (" (newest only)" if r.truncated else ""))
    if r.drifted:
        con.print(f"[bold red]{len(r.drifted)} drifted[/]: {', '.join(r.drifted)}")
    else:
        con.print("[green]no drift[/]")
    if r.performance is not None:
        p = r.performance
        scores = ", ".join(f"{k} {v:.4f}" + (f" (offline {p.offline[k]:.4f})" if k in p.offline else "")
                           for k, v in p.live.items())
        con.print(f"live on {p.labelled_rows} labelled rows: {scores}")
    table = Table("column", "kind", "test", "p-value", "PSI", "drifted")
    ranked = sorted(r.outputs + r.features, key=lambda d: (not d.drifted, -(d.psi if d.psi == d.psi else 0)))
    for d in ranked[:SHOWN]:
        table.add_row(*cells(d.feature, d.kind, d.test, f"{d.p_value:.3g}", f"{d.psi:.3f}",
                             Text("yes", style="red") if d.drifted else ""))
    con.print(table)
    if len(ranked) > SHOWN:
        con.print(f"{len(ranked) - SHOWN} more columns (see --json or --html).")
    if html is not None:
        con.print(f"HTML report: {html}")
