"""The MLflow dashboard of a finished ragtune project in a real browser: ``ragtune ui``, its views, screenshots.

Shared by ``tests/e2e/test_dashboard.py`` (on a tiny project) and ``make screenshots`` (on the demo,
after ``make run``: the pictures in the README and docs/dashboard.md)::

    .venv/bin/python -m tests.e2e.dashboard --project . --out docs/img

The tour opens, as a team lead would: the leaderboard (the runs table's view ``ragtune-leaderboard``:
the cells sorted by rank), the pipeline run's leaderboard table, the recommended cell compared
question by question with the best cell of another family, one question's trace with its
assessments, and the Datasets page with a split's questions. Each view waits (bounded) until the
texts it must show are on the page, reads what a check needs from the page as drawn (element
widths, table rows), then is screenshot.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import free_port
from tests.e2e.browser import Page, browser
from tests.e2e.servers import spawn, stop, wait_http
from tests.tiny_project import project_env, ragtune_cmd

# The UI's first-visit panels (assistant, "detect issues" tip), closed as a returning user has them;
# localStorage keys of MLflow 3.17's UI.
QUIET = {
    "mlflow.assistant.panelOpen_v1": "false",
    "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true",
    "mlflow.detectIssues.guidanceShown_v1": "true",
}
SIZES = {  # view -> viewport (width, height)
    "runs": (1900, 800),
    "leaderboard": (1900, 1000),
    "compare": (2200, 1000),
    "trace": (1800, 1000),
    "datasets": (1600, 800),
}
PICTURES = ("runs", "leaderboard", "compare", "trace")  # the views docs/dashboard.md and the README show
# Per run-name cell of the runs table: the name, and each element holding it (the link, what is in it,
# what it is in up to the cell) whose content is wider than its box: the UI cuts such a name with an
# ellipsis, while innerText would still hold the whole name.
NAME_WIDTHS = """[...document.querySelectorAll('[role=gridcell][col-id="attributes.`Run Name`"]')].map(cell => {
  const name = cell.querySelector('a'); const holders = name ? [...name.querySelectorAll('*')] : [];
  for (let e = name; e && e !== cell.parentElement; e = e.parentElement) holders.push(e);
  const cut = holders.filter(e => e.scrollWidth > e.clientWidth + 1)
    .map(e => `${e.tagName} ${e.clientWidth}px < ${e.scrollWidth}px`);
  return {name: name ? name.textContent : null, cut};
})"""
TABLE_ROWS = "[...document.querySelectorAll('[role=row]')].filter(r => r.querySelector('[role=cell]')).length"


@contextlib.contextmanager
def ragtune_ui(project: Path, log: Path, timeout_s: float = 180) -> Iterator[tuple[str, str]]:
    """``ragtune ui`` on a free port in ``project``; yields its base URL and what it printed, stops it on exit."""
    port = free_port()
    proc = spawn(ragtune_cmd("ui", "--port", str(port)), log, env=project_env(project), cwd=project)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/health", timeout_s, proc)
        yield base, log.read_text(errors="replace")
    finally:
        stop(proc)


@dataclass(frozen=True)
class Tour:
    """What the tour visits: the experiment, its latest pipeline run and cell runs, two cells to compare, one trace."""

    experiment_id: str
    parent: str  # the pipeline run (its leaderboard table)
    names: dict[str, str]  # cell run id -> its run name, every split
    compare: tuple[str, str]  # dev run ids: the recommended cell, the best-ranked cell of another family
    trace_id: str  # a dev question of the best-ranked cell with retrieval (its trace has a retriever span)
    question: str
    datasets: dict[str, str]  # split -> its managed dataset's id (``question``, a dev question, is in dev's)


def plan(base: str, experiment: str) -> Tour:
    """Pick the tour's runs, trace and dataset through the UI server's REST API (the latest pipeline run's cells)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=base)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise LookupError(f"no experiment {experiment!r} at {base}: run the pipeline first")
    eid = found.experiment_id
    pipelines = "tags.`ragtune.kind` = 'pipeline'"
    (parent,) = client.search_runs([eid], pipelines, order_by=["attributes.start_time DESC"], max_results=1)
    children = client.search_runs([eid], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    runs = [r for r in children if r.data.tags.get("ragtune.split") == "dev"]  # the split that chose, ranked
    ranked = sorted(runs, key=lambda r: r.data.metrics.get("rank", 999))
    chosen = next((r for r in ranked if r.data.tags.get("ragtune.recommended") == "true"), ranked[0])
    family = chosen.data.tags.get("ragtune.family")
    others = [r for r in ranked if r.info.run_id != chosen.info.run_id]
    other = next((r for r in others if r.data.tags.get("ragtune.family") != family), others[0])
    rag = next((r for r in [chosen, *ranked] if r.data.params.get("retriever", "none") != "none"), chosen)
    trace = client.search_traces(locations=[eid], run_id=rag.info.run_id, max_results=1, include_spans=False)[0]
    datasets = {}
    for split in ("dev", "test"):
        found = client.search_datasets(experiment_ids=[eid], filter_string=f"name = 'qa-{split}'")
        if found:
            datasets[split] = max(found, key=lambda d: d.last_update_time).dataset_id  # the latest questions
    return Tour(
        eid,
        parent.info.run_id,
        {r.info.run_id: r.info.run_name for r in children},
        (chosen.info.run_id, other.info.run_id),
        trace.info.trace_id,
        trace.info.request_preview,
        datasets,
    )


def quiet(page: Page, base: str) -> None:
    """Load the UI once and close its first-visit panels for every later page."""
    page.open(f"{base}/#/")
    page.wait_for("Experiments")
    for key, value in QUIET.items():
        page.evaluate(f"localStorage.setItem({key!r}, {value!r})")


def show(page: Page, url: str, *texts: str, settle_s: float = 3, timeout_s: float = 90) -> str:
    """Load ``url`` afresh, wait until it shows every one of ``texts``, let charts settle; return its text."""
    page.open("about:blank")
    page.open(url)
    page.wait_for(*texts, timeout_s=timeout_s)
    time.sleep(settle_s)
    return page.text()


def click(page: Page, selector: str, label: str) -> None:
    """Click the first ``selector`` element whose text starts with ``label``."""
    found = page.evaluate(
        f"(() => {{ const e = [...document.querySelectorAll({selector!r})]"
        f".find(e => (e.innerText || '').trim().startsWith({label!r})); if (e) e.click(); return !!e; }})()"
    )
    if not found:
        raise LookupError(f"no {selector} labelled {label!r} on the page")


def take(base: str, tour: Tour, main_metric: str, out: Path | None) -> dict:
    """Visit the views in one headless Chromium; return what each showed (screenshots in ``out`` if given).

    Returns:
        view -> its visible text, and ``names`` (the runs table's name cells, as :data:`NAME_WIDTHS`
        measures them) and ``table_rows`` (the data rows drawn of the leaderboard table).
    """
    page_of = f"{base}/#/experiments/{tour.experiment_id}"
    shown: dict = {}
    with browser(*SIZES["runs"]) as page:
        quiet(page, base)
        for view, (width, height) in SIZES.items():
            size = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
            page.call("Emulation.setDeviceMetricsOverride", **size)
            if view == "runs":
                names = sorted(set(tour.names.values()))
                shown[view] = show(page, f"{page_of}/runs?viewStateShareKey=ragtune-leaderboard", *names, "rank")
                shown["names"] = page.evaluate(NAME_WIDTHS)
            elif view == "leaderboard":
                url = f"{page_of}/runs/{tour.parent}/artifacts/leaderboard.json"
                shown[view] = show(page, url, "View as table", "confirmation", "interval")
                shown["table_rows"] = page.evaluate(TABLE_ROWS)
            elif view == "compare":
                a, b = tour.compare
                url = f"{page_of}/evaluation-runs?selectedRunUuid={a}&compareToRunUuid={b}"
                shown[view] = show(page, url, "Comparing", tour.names[a], tour.names[b], "Assessments", "exact_match")
            elif view == "trace":
                show(page, f"{page_of}/traces?selectedEvaluationId={tour.trace_id}", "generate:", settle_s=1)
                click(page, "button", "Assess")
                shown[view] = page.wait_for("Feedback", main_metric, "expected", tour.question)
                time.sleep(1)
            else:
                listed = show(page, f"{page_of}/datasets", "qa-dev", "qa-test", settle_s=1)
                url = f"{page_of}/datasets/{tour.datasets['dev']}"
                shown[view] = listed + "\n" + show(page, url, tour.question[:30])
            if out is not None and view in PICTURES:
                shrink(page.screenshot(out / f"dashboard-{view}.png"))
    return shown


def shrink(path: Path) -> Path:
    """Re-save a screenshot with a 256-colour palette (octree: the runs' colour dots keep their hue), ~3x smaller."""
    from PIL import Image

    with Image.open(path) as shot:
        small = shot.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    small.save(path, optimize=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=Path("."), help="a project after `ragtune run`")
    parser.add_argument("--out", type=Path, default=Path("docs/img"), help="where the PNGs go")
    args = parser.parse_args()
    project = args.project.resolve()
    from components.config import load_params

    cfg = load_params(project / "params").evaluation
    args.out.mkdir(parents=True, exist_ok=True)
    with ragtune_ui(project, args.out / ".ragtune-ui.log") as (base, _):
        tour = plan(base, cfg.experiment)
        take(base, tour, cfg.main_metric, args.out)
    (args.out / ".ragtune-ui.log").unlink(missing_ok=True)
    for view in PICTURES:
        path = args.out / f"dashboard-{view}.png"
        print(f"{path} ({path.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
