"""``glompo-hpc report``: the HTML file opened in headless Chromium (Debian's ``chromium``, driven by
Playwright's client without its own browsers: never ``playwright install``)."""

from __future__ import annotations

import shutil

import pytest

from support.runs import cli, finished_run, requeued_run, tree_digest

pytestmark = pytest.mark.slow

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    from playwright import sync_api  # the test extra installs it
    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is installed by .ci/run"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def requeued(tmp_path_factory):
    return requeued_run(tmp_path_factory.mktemp("report_requeued"))


def open_report(browser, path):
    """The page, the console errors and page errors it raised, and every URL it asked for."""
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.resolve().as_uri())
    page.wait_for_function("window.glompoReport !== undefined")
    return page, errors, requests


def column(page, index):
    return page.eval_on_selector_all(f"#opt-table tbody tr td:nth-child({index})", "tds => tds.map(t => t.textContent)")


def test_report_of_a_requeued_run_renders_sorts_zooms_offline(browser, requeued, tmp_path):
    before = tree_digest(requeued)
    out = tmp_path / "report.html"
    made = cli("report", requeued, "-o", out)
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == str(out)
    assert tree_digest(requeued) == before  # read only
    page, errors, requests = open_report(browser, out)
    try:
        assert requests == [out.resolve().as_uri()]  # nothing fetched: no CDN, no server
        for chart in ("best-chart", "traj-chart"):
            assert int(page.get_attribute(f"#{chart}", "data-points-drawn")) > 1
            inked = page.evaluate(f"""() => {{ const c = document.getElementById('{chart}');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n; }}""")
            assert inked > 2000, chart  # lines and axes were drawn
        # the sortable table: numbers sort as numbers, both ways
        page.click("#opt-table th[data-key=evals]")
        evals = [int(v.replace(",", "")) for v in column(page, 5)]
        assert evals == sorted(evals) and len(set(evals)) > 1
        page.click("#opt-table th[data-key=evals]")
        assert [int(v.replace(",", "")) for v in column(page, 5)] == sorted(evals, reverse=True)
        assert page.get_attribute("#opt-table th[data-key=evals]", "aria-sort") == "descending"
        page.click("#opt-table th[data-key=id]")
        ids = [int(v) for v in column(page, 1)]
        assert ids == sorted(ids)
        assert any(v.startswith("stopper: ") for v in column(page, 8))  # the stopper that fired
        # the exact counts: the table's evaluations add up to the run's
        assert sum(evals) == int(page.text_content("#outcome dd:nth-of-type(5)").replace(",", ""))
        # zoom: a drag over the best-so-far plot narrows its x range; double-click restores it
        page.locator("#best-chart").scroll_into_view_if_needed()  # the clicks above scrolled to the table
        box = page.locator("#best-chart").bounding_box()
        full = page.get_attribute("#best-chart", "data-view")
        page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2, steps=5)
        page.mouse.up()
        zoomed = [float(v) for v in page.get_attribute("#best-chart", "data-view").split(",")]
        lo, hi = (float(v) for v in full.split(","))
        assert lo < zoomed[0] < zoomed[1] < hi
        page.dblclick("#best-chart")
        assert page.get_attribute("#best-chart", "data-view") == full
        # log scale redraws; hover shows the nearest point
        page.check("#traj-log")
        assert int(page.get_attribute("#traj-chart", "data-points-drawn")) > 1
        # sessions (the requeue) and checkpoints on the timeline and in the list
        assert page.locator("#timeline .session-line").count() == 2
        assert page.locator("#timeline .checkpoint-line").count() >= 1
        assert "(resumed: requeue)" in page.text_content("#events")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        assert (tmp_path / "report.png").stat().st_size > 10_000
        assert errors == []
    finally:
        page.close()


def test_hover_shows_the_value_under_the_pointer(browser, requeued, tmp_path):
    out = tmp_path / "report.html"
    assert cli("report", requeued, "-o", out).returncode == 0
    page, errors, _ = open_report(browser, out)
    try:
        page.locator("#best-chart").scroll_into_view_if_needed()
        # the pointer on the last point of the best-so-far curve (its screen position from the chart itself)
        x, y = page.evaluate("""() => { const c = window.glompoReport.charts.best, s = c.series[0], i = s.x.length - 1;
            const r = c.canvas.getBoundingClientRect();
            return [r.left + c.sx(s.x[i]) * r.width / c.canvas.width, r.top + c.sy(s.y[i]) * r.height / c.canvas.height]; }""")
        page.mouse.move(x, y)
        tip = page.text_content("#best-tip")
        assert tip.startswith("best so far: evaluation ") and "fx" in tip
        assert page.is_visible("#best-tip")
        assert errors == []
    finally:
        page.close()
