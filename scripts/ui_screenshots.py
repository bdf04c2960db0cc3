#!/usr/bin/env python
"""Screenshots of what a user sees after the demo: MLflow's UI and the report, in Chromium.

    python scripts/ui_screenshots.py --url http://127.0.0.1:5000 --experiment temseg-demo \
        --report reports/temseg-demo/report.html --out docs/ui

Needs Playwright (``pip install playwright``; not a temseg dependency) and a Chromium
(``--chromium /usr/bin/chromium``), and an MLflow server or ``mlflow ui`` at ``--url``.
Writes ``mlflow_runs.png`` (the runs table: the sweep's parent run and its trials),
``mlflow_chart_grouped_by_rf.png`` (chart view, runs grouped by ``params.rf_px``: mean
curves with min/max bands) and ``report.png`` (the top of report.html).
"""

from __future__ import annotations

import argparse
import json
import urllib.request
from pathlib import Path


def experiment_id(url: str, name: str) -> str:
    req = urllib.request.Request(
        f"{url}/api/2.0/mlflow/experiments/get-by-name?experiment_name={name}"
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["experiment"]["experiment_id"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:5000")
    p.add_argument("--experiment", default="temseg-demo")
    p.add_argument("--report", default="reports/temseg-demo/report.html")
    p.add_argument("--out", default="docs/ui")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument(
        "--filter",
        default="",
        help='runs search for the chart, e.g. params.dataset = "hr-2.2nm-c0.090-s0_px0.04"',
    )
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    exp = experiment_id(args.url, args.experiment)
    page_url = f"{args.url}/#/experiments/{exp}/runs?workflowType=machine_learning"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=args.chromium, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(page_url)
        page.wait_for_timeout(5000)
        for name in ("Close", "Got it"):  # the assistant panel, a first-visit tip
            loc = page.get_by_role("button", name=name)
            if loc.count():
                loc.first.click()
                page.wait_for_timeout(500)
        # the table: expand the parent run to show its trials
        expand = page.locator("[role=gridcell] button[data-component-id*=runnamecellrenderer]")
        if expand.count():  # the [+] left of the parent's name
            expand.first.click()
            page.wait_for_timeout(1500)
        page.screenshot(path=str(out / "mlflow_runs.png"))
        if args.filter:  # one dataset only: each RF group is then one level's seeds
            box = page.get_by_placeholder('metrics.rmse < 1 and params.model = "tree"')
            box.fill(args.filter)
            box.press("Enter")
            page.wait_for_timeout(3000)
        # group by the receptive field, then the chart view
        page.get_by_role("button", name="Group by").click()
        page.wait_for_timeout(800)
        page.keyboard.type("rf_px")
        page.wait_for_timeout(800)
        page.get_by_role("menuitemcheckbox", name="rf_px").click()
        page.wait_for_timeout(1000)
        page.keyboard.press("Escape")
        page.wait_for_timeout(500)
        page.locator("label:has(input[value=CHART])").click()  # the view switch: the chart
        page.wait_for_timeout(3000)
        page.get_by_placeholder("Search metric charts").fill("hard_dice")  # the dice curves
        page.wait_for_timeout(4000)
        page.screenshot(path=str(out / "mlflow_chart_grouped_by_rf.png"))
        # the report
        page.goto(Path(args.report).resolve().as_uri())
        page.wait_for_timeout(1500)
        page.screenshot(path=str(out / "report.png"))
        browser.close()
    print(f"wrote {out}/mlflow_runs.png, mlflow_chart_grouped_by_rf.png, report.png")


if __name__ == "__main__":
    main()
