"""Redraw docs/img/{progress,watch,report}.png from a run: ``python tools/docs_screenshots.py RUN_DIR``.

The terminal views are recorded by rich as SVG and, like the HTML report, photographed by
headless Chromium (Debian's ``chromium`` through Playwright's client).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from rich.console import Console

from glompo_hpc.outputs.html_report import write_report
from glompo_hpc.outputs.progress import ProgressSnapshot, _History, _panel
from glompo_hpc.outputs.run_files import read_run
from glompo_hpc.outputs.watch import render_frame

IMG = Path(__file__).resolve().parents[1] / "docs" / "img"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def terminal_svg(renderable, path: Path, width: int = 80) -> None:
    console = Console(record=True, width=width, file=open("/dev/null", "w"), force_terminal=True)
    console.print(renderable)
    # inside an HTML page: Chromium's screenshot of a bare SVG document never completes
    path.write_text(f'<html><body style="margin:0">{console.export_svg(title="glompo-hpc")}</body></html>')


def progress_example(run) -> object:
    a = run.attrs
    snap = ProgressSnapshot(f_counter=run.evaluations, budget=run.evaluations + 1200, best_fx=float(a["best_fx"]),
                            best_opt_id=int(a["best_opt_id"]), started=len(run.optimizers), alive=2,
                            stopped=sum(o.category == "stopped" for o in run.optimizers), converged=0,
                            t_used=float(a["t_used"]), sessions=len(run.session_starts), checkpoints=len(run.checkpoints),
                            last_checkpoint=run.checkpoints[-1].name if run.checkpoints else None, exit_reason="",
                            taken_at=run.read_at)
    history = _History()
    history.add(ProgressSnapshot(**{**snap.__dict__, "f_counter": snap.f_counter - 900, "taken_at": snap.taken_at - 2}))
    history.add(snap)
    return _panel(snap, history)


def main(run_dir: str) -> None:
    from playwright.sync_api import sync_playwright

    run = read_run(run_dir)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        terminal_svg(progress_example(run), tmp / "progress.html", width=80)
        terminal_svg(render_frame(run, 80), tmp / "watch.html")
        write_report(run, tmp / "report.html")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
            for name, size in (("progress", (760, 300)), ("watch", (760, 560)), ("report", (1000, 1500))):
                page = browser.new_page(viewport={"width": size[0], "height": size[1]})
                page.goto((tmp / f"{name}.html").as_uri())
                target = page.locator("svg").first if name != "report" else page
                target.screenshot(path=str(IMG / f"{name}.png"))
                page.close()
            browser.close()


if __name__ == "__main__":
    main(sys.argv[1])
