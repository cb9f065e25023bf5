"""The web UI in a real browser: Debian's Chromium driven by Playwright against a real server.

Set MLKEEP_SCREENSHOTS=docs/screenshots to keep the screenshots of the main pages.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mlkeep
from conftest import CHROMIUM, LiveServer

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"needs Debian's chromium at {CHROMIUM} "
                                "(apt-get install chromium; `make install` does it as root)")
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, dict[str, Any]]]:
    from ui_data import populate

    root = tmp_path_factory.mktemp("ui")
    server = LiveServer(root)
    with mlkeep.open(root) as store:
        ids = populate(store, root)
    yield server, ids
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    yield p
    context.close()
    assert errors == [], errors


def shot(page: Any, name: str, tmp_path: Path) -> None:
    folder = Path(os.environ.get("MLKEEP_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def rows(page: Any) -> list[str]:
    return page.locator("#runs tbody tr td:nth-child(2) a").all_inner_texts()


def test_runs_table_filters_sorts_and_shows_filter_errors_inline(site: Any, page: Any, tmp_path: Path) -> None:
    server, _ = site
    page.goto(server.url + "/#/runs")
    page.wait_for_selector("#runs tbody tr")
    assert len(rows(page)) == 25
    page.fill("#filter", "params.model = 'svm' and metrics.accuracy > 0")
    page.press("#filter", "Enter")
    page.wait_for_function("document.querySelectorAll('#runs tbody tr').length === 8")
    assert all(name.startswith("svm") for name in rows(page))
    page.click("th[data-sort='metrics.accuracy']")  # metrics sort descending first
    page.wait_for_selector("th[data-sort='metrics.accuracy'] .arrow")
    values = [float(v) for v in page.locator("#runs tbody tr td:nth-child(7)").all_inner_texts() if v]
    shown = page.locator("#runs thead th").all_inner_texts()
    acc = [i for i, t in enumerate(shown) if t.startswith("accuracy")][0]
    values = [float(v) for v in page.locator(f"#runs tbody tr td:nth-child({acc + 1})").all_inner_texts()]
    assert values == sorted(values, reverse=True) and len(values) == 8
    shot(page, "runs", tmp_path)
    page.fill("#filter", "metrics.accuracy >> 1")
    page.press("#filter", "Enter")
    error = page.wait_for_selector("#filter-error .error")
    assert "column" in error.inner_text() and error.get_attribute("data-code") == "FILTER_SYNTAX"
    assert "invalid" in (page.get_attribute("#filter", "class") or "")
    shot(page, "runs-filter-error", tmp_path)


def test_column_chooser_adds_a_tag_column(site: Any, page: Any) -> None:
    server, _ = site
    page.goto(server.url + "/#/runs")
    page.wait_for_selector("#runs tbody tr")
    page.click("#columns")
    page.check("input[data-col='tags.team']")
    assert page.locator("th[data-sort='tags.team']").count() == 1
    assert set(page.locator("#runs tbody tr td:last-child").all_inner_texts()) <= {"vision", "nlp"}


def test_run_page_draws_a_downsampled_chart_and_previews_artifacts(site: Any, page: Any, tmp_path: Path) -> None:
    server, ids = site
    page.goto(server.url + f"/#/run/{ids['best']}")
    chart = page.wait_for_selector("[data-metric='loss'][data-points]")
    drawn = int(chart.get_attribute("data-points"))
    assert 0 < drawn <= 6000  # 100,000 points, downsampled by the server
    assert "of 100,000 points" in page.inner_text("[data-metric='loss'] .chart-head")
    # the canvas really has ink on it
    inked = page.evaluate("""() => { const c = document.querySelector("[data-metric='loss'] canvas");
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] < 120 && d[i + 2] > 150) n++; return n; }""")
    assert inked > 200
    page.click("button[data-preview='notes.txt']")
    assert "Training notes" in page.wait_for_selector("pre.preview").inner_text()
    page.click("button[data-preview='plots/confusion.png']")
    img = page.wait_for_selector(".preview img")
    page.wait_for_function("document.querySelector('.preview img').naturalWidth === 64")
    assert img.is_visible()
    assert page.locator("[data-dataset]").count() == 1 and page.locator(".hist span").count() > 0
    assert page.locator("#lineage .node").count() >= 3
    # zoom: drag across the chart, the server sends the window
    box = page.locator("[data-metric='loss'] canvas").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + 50)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + 60, steps=5)
    page.mouse.up()
    page.wait_for_selector("[data-metric='loss'] [data-reset]:not([hidden])")
    shot(page, "run", tmp_path)


def test_compare_two_runs_highlights_differences_and_overlays_charts(site: Any, page: Any, tmp_path: Path) -> None:
    server, ids = site
    page.goto(server.url + "/#/runs")
    page.wait_for_selector("#runs tbody tr")
    page.locator("#runs tbody tr input.pick").nth(0).check()
    page.locator("#runs tbody tr input.pick").nth(1).check()
    page.click("#compare")
    page.wait_for_selector("#params table")
    assert page.locator("#params td.differs").count() >= 2
    page.wait_for_selector("[data-metric='loss'][data-points]")
    assert page.locator("#legend span").count() == 2
    assert page.locator("#pc svg polyline").count() == 2
    shot(page, "compare", tmp_path)


def test_lineage_graph_clicks_through(site: Any, page: Any, tmp_path: Path) -> None:
    server, ids = site
    page.goto(server.url + f"/#/lineage/{ids['dataset']}")
    page.wait_for_selector(".graph .node")
    kinds = set(page.locator(".graph .node").evaluate_all("ns => ns.map(n => n.dataset.kind)"))
    assert kinds >= {"dataset", "run", "model", "prediction", "evaluation"}
    shot(page, "lineage", tmp_path)
    page.locator(f".graph .node[data-id='{ids['model']}']").click()
    page.wait_for_function(f"location.hash.includes('{ids['model']}')")
    page.wait_for_selector("#detail h2")
    assert "Model" in page.inner_text("#detail")
    page.locator(f".graph .node[data-kind='run']").first.click()
    page.wait_for_function("location.hash.startsWith('#/lineage/')")


def test_repository_commit_graph_and_diff(site: Any, page: Any, tmp_path: Path) -> None:
    server, _ = site
    page.goto(server.url + "/#/repo/digits-net")
    page.wait_for_selector("#commits tr")
    assert page.locator("#commits tr").count() == 3 and page.locator("#lanes circle").count() == 3
    assert "v1" in page.inner_text("#commits")
    page.wait_for_selector("#diff-panel table")
    text = page.inner_text("#diff-panel")
    assert "encoder.bias" in text and "head.bias" in text and "added" in text
    shot(page, "repository", tmp_path)


def test_registry_lists_models_and_shows_versions_aliases_history_and_card(site: Any, page: Any,
                                                                          tmp_path: Path) -> None:
    server, _ = site
    page.goto(server.url + "/#/registry")
    page.wait_for_selector("#registered tr td a")
    assert page.locator("#registered td a").all_inner_texts() == ["digits-clf", "digits-net"]
    assert "@production → 1" in page.inner_text("#registered")
    page.fill("#rfilter", "tags.team = 'vision'")
    page.press("#rfilter", "Enter")
    page.wait_for_function("document.querySelectorAll('#registered td a').length === 1")
    page.fill("#rfilter", "colour = 'red'")
    page.press("#rfilter", "Enter")
    assert page.wait_for_selector("#rerror .error").get_attribute("data-code") == "FILTER_SYNTAX"
    page.goto(server.url + "/#/registry/digits-net")
    page.wait_for_selector("#versions tr[data-version]")
    assert page.locator("#versions tr[data-version]").count() == 2
    assert page.locator("#versions tr[data-version='2'] [data-alias='staging']").count() == 1
    assert page.locator("#versions tr[data-version='1'] [data-alias='production']").count() == 1
    history = page.inner_text("#history")
    assert "bias helps on validation" in history and "safe choice" in history
    assert page.locator("#history tr").count() == 4  # header and three moves
    card = page.wait_for_selector("iframe#card")
    page.wait_for_function(
        "document.querySelector('iframe#card').contentDocument.body.innerText.includes('Model card')")
    text = card.content_frame().inner_text("body")
    assert "digits-net version 2" in text and "Alias history" in text
    page.wait_for_selector("#monitor iframe, #monitor [data-code]")  # a report, or why there is none
    shot(page, "registry", tmp_path)
    page.click("#versions tr[data-version='1'] a")
    page.wait_for_function("document.querySelector('#versions tr.selected')?.dataset.version === '1'")


def test_intermediates_list_and_top_k_view(site: Any, page: Any, tmp_path: Path) -> None:
    server, ids = site
    page.goto(server.url + "/#/intermediates")
    page.wait_for_selector("#intermediates tr[data-id]")
    assert page.locator("#intermediates tr[data-id]").count() == 3
    pca = ids["intermediates"]["pca"]
    page.click(f"#intermediates tr[data-id='{pca.id}'] a")
    page.wait_for_selector("#topk-table tr[data-row]")
    page.fill("#neuron", "2")
    page.fill("#k", "5")
    page.click("#run")
    page.wait_for_function("location.hash.includes('neuron=2') && "
                           "document.querySelectorAll('#topk-table tr[data-row]').length === 5")
    page.wait_for_selector("#topk-table tr[data-row] canvas.digit")
    from mlkeep.client import RemoteStore

    with RemoteStore(server.url) as remote:
        expected = remote.intermediates.topk(pca.id, 2, k=5)["row"].tolist()
    shown = [int(r) for r in page.locator("#topk-table tr[data-row]").evaluate_all("rs => rs.map(r => r.dataset.row)")]
    assert shown == expected
    assert page.locator("#topk-table canvas.digit").count() == 5  # 8×8 digits drawn as images
    heat = page.wait_for_selector("canvas.heatmap")
    assert heat.get_attribute("data-rows") == "5" and heat.get_attribute("data-columns") == "16"
    page.wait_for_selector("#classes-table tbody tr")
    assert page.locator("#classes-table tbody tr").count() == 10  # one bar per digit class
    shot(page, "intermediates", tmp_path)
    box = heat.bounding_box()
    page.mouse.click(box["x"] + box["width"] * (7.5 / 16), box["y"] + 5)  # pick neuron 7 in the heatmap
    page.wait_for_function("location.hash.includes('neuron=7')")
