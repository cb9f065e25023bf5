"""Monitoring of registered versions: the drift report as JSON (for the web UI) or as an HTML page."""

from __future__ import annotations

from typing import Annotated, Any, Optional

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from mlkeep.server.app import CTX

router = APIRouter(tags=["monitoring"])
WINDOW = Annotated[str, Query(description="How far back: 90s, 30m, 1h, 7d, 2w or all.")]
ALIAS = Annotated[Optional[str], Query(description="The alias to monitor (default: the latest version).")]
VERSION = Annotated[Optional[int], Query(ge=1, description="A version number, instead of an alias.")]
PSI = Annotated[float, Query(gt=0, description="PSI at or above which a shift is large.")]
P_VALUE = Annotated[float, Query(gt=0, lt=1, description="p-value below which a shift is significant.")]


def _report(ctx: Any, name: str, alias: str | None, version: int | None, window: str, psi: float,
            p_value: float) -> Any:
    from mlkeep.lifecycle.drift import Thresholds
    from mlkeep.lifecycle.monitoring import monitor_report

    ctx.principal.require("read")
    ctx.principal.require_unscoped("registered models")
    ref = f"{name}@{alias}" if alias else f"{name}/{version}" if version else name
    return monitor_report(ctx.store, ref, window=window, thresholds=Thresholds(psi=psi, p_value=p_value))


@router.get("/monitoring/{name}/report")
def report(name: str, ctx: CTX, alias: ALIAS = None, version: VERSION = None, window: WINDOW = "24h",
           psi: PSI = 0.2, p_value: P_VALUE = 0.01) -> Any:
    """Input and prediction drift, live scores and drift over time of a version (see `monitor_report`)."""
    return _report(ctx, name, alias, version, window, psi, p_value)


@router.get("/monitoring/{name}/report.html", response_class=HTMLResponse)
def report_page(name: str, ctx: CTX, alias: ALIAS = None, version: VERSION = None, window: WINDOW = "24h",
                psi: PSI = 0.2, p_value: P_VALUE = 0.01) -> HTMLResponse:
    """The same report as a self-contained HTML page with plots (what `mlkeep monitor report --html` writes)."""
    from mlkeep.lifecycle.report_html import report_html

    return HTMLResponse(report_html(_report(ctx, name, alias, version, window, psi, p_value)))
