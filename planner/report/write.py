"""`write_reports`: the one entry point that turns a Plan into report files."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from planner.catalog import Catalog
from planner.errors import InputProblem, PlannerInputError
from planner.plan import Plan
from planner.report.build import build_report
from planner.report.model import Report

if TYPE_CHECKING:
    from planner.report.charts import ChartCache
    from planner.report.operating import FrontierCache

# Each renderer is imported in _write_one, only when its format is asked for: jinja2 for
# HTML, a browser for PDF; `planner plan --no-report` loads none of them.

FORMATS: tuple[str, ...] = ("html", "pdf", "xlsx", "md", "json")
DEFAULT_FORMATS: tuple[str, ...] = ("html", "md", "xlsx")
BASENAME = "report"


def parse_formats(text: str | Iterable[str]) -> list[str]:
    """ "html,pdf" or ["html", "pdf"] -> ["html", "pdf"]; unknown names -> PlannerInputError."""
    items = text.split(",") if isinstance(text, str) else list(text)
    wanted = [s.strip().lower() for s in items if s.strip()]
    bad = [f for f in wanted if f not in FORMATS]
    if bad or not wanted:
        raise PlannerInputError(
            [InputProblem("--format", "", ",".join(bad) or str(text), f"a comma-separated list of {', '.join(FORMATS)}")]
        )  # fmt: skip
    return list(dict.fromkeys(wanted))


def write_reports(
    plan: Plan,
    out_dir: Path,
    formats: list[str] | tuple[str, ...] = DEFAULT_FORMATS,
    catalog: Catalog | None = None,
    *,
    explanation: pd.DataFrame | None = None,
    verification: dict[str, Any] | None = None,
    charts: ChartCache | None = None,
    frontier: FrontierCache | None = None,
) -> list[Path]:
    """Write report.<fmt> for each format into out_dir; returns the paths written.

    Reads only the plan (and the catalog, for provenance and perf curves); never solves.
    explanation: `planner plan`'s unserved diagnosis (unserved_explained.csv), if any;
    verification: the verify.json summary, if any; charts and frontier: SVGs and curves
    computed already (the report worker's, planner.report_worker), reused where their
    inputs are unchanged.
    """
    wanted = parse_formats(formats)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = build_report(plan, catalog, explanation=explanation, verification=verification,
                          frontier_cache=frontier)  # fmt: skip
    written: dict[str, Path] = {}
    for fmt in sorted(wanted, key=FORMATS.index):  # html before pdf: the PDF prints it
        written[fmt] = _write_one(report, out_dir, fmt, written.get("html"), charts)
    return [written[f] for f in wanted]


def report_path(out_dir: Path, fmt: str) -> Path:
    """Where write_reports puts the report in format `fmt`."""
    return Path(out_dir) / f"{BASENAME}.{fmt}"


def _write_one(
    report: Report, out_dir: Path, fmt: str, html: Path | None, charts: ChartCache | None
) -> Path:
    path = report_path(out_dir, fmt)
    if fmt == "html":
        from planner.report.html import write_html

        return write_html(report, path, charts)
    if fmt == "md":
        from planner.report.markdown import render_markdown

        path.write_text(render_markdown(report), encoding="utf-8")
        return path
    if fmt == "xlsx":
        from planner.report.xlsx import write_xlsx

        return write_xlsx(report, path)
    if fmt == "json":
        path.write_text(json.dumps(report.to_dict(), indent=1, allow_nan=False) + "\n")
        return path
    from planner.report.html import write_html
    from planner.report.pdf import write_pdf

    if html is not None:
        return write_pdf(html, path)
    with tempfile.TemporaryDirectory(prefix="planner-report-") as tmp:
        return write_pdf(write_html(report, report_path(Path(tmp), "html"), charts), path)
