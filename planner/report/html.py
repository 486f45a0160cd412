"""Report -> one self-contained HTML file (inline CSS, charts as base64 SVG, no network).

Jinja2 renders reports/templates/report.html.j2 with autoescaping on, so any text from the
inputs (workload names, notes) is escaped; nothing in the page runs script.
"""

from __future__ import annotations

import base64
import functools
from pathlib import Path
from typing import Any

import jinja2

import planner
from planner.catalog import data_dir
from planner.report.charts import ChartCache, render_charts
from planner.report.fmt import format_cell, format_figure, is_number
from planner.report.model import Report, ReportTable, column_label

TEMPLATE = "report.html.j2"


def templates_dir() -> Path:
    """reports/templates in a checkout; planner/_data/reports/templates in a wheel."""
    return data_dir("reports/templates")


def template() -> jinja2.Template:
    """The report template, compiled on first use and kept (the report worker compiles it
    while the parent plans)."""
    return _environment().get_template(TEMPLATE)


@functools.cache
def _environment() -> jinja2.Environment:
    """One environment per process: it keeps the compiled template for the next report."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        autoescape=True,  # every template, whatever its extension
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
        lstrip_blocks=False,
    )


def _numeric_columns(t: ReportTable) -> set[str]:
    """Columns whose non-empty cells are all numbers (right-aligned, dashes too)."""
    records = t.records()  # NaN is None here
    if not records:
        return set()
    return {c for c in t.columns if all(is_number(r[c]) for r in records if r[c] is not None)}


def _cell(key: str, v: Any, numeric: bool) -> dict[str, str]:
    return {"text": format_cell(key, v), "cls": "num" if numeric or is_number(v) else ""}


def table_context(t: ReportTable) -> dict[str, Any]:
    numeric = _numeric_columns(t)
    total = None
    if t.total is not None:
        total = [_cell(c, t.total[c], c in numeric) if c in t.total else {"text": "", "cls": ""}
                 for c in t.columns]  # fmt: skip
    return {
        "key": t.key,
        "title": t.title,
        "note": t.note,
        "empty_text": t.empty_text,
        "headers": [
            {"label": column_label(c), "cls": "num" if c in numeric else ""} for c in t.columns
        ],
        "rows": [[_cell(c, row[c], c in numeric) for c in t.columns] for row in t.records()],
        "total": total,
    }


def render_html(report: Report, cache: ChartCache | None = None) -> str:
    """The page; charts through `cache` if given (drawn only where not drawn already)."""
    charts = cache.render(report.charts) if cache is not None else render_charts(report.charts)
    sections = []
    for s in report.sections:
        sections.append({
            "key": s.key, "title": s.title, "paragraphs": s.paragraphs,
            "tables": [table_context(report.tables[k]) for k in s.tables if k in report.tables],
            "charts": [
                {"key": k, "title": report.charts[k]["title"],
                 "data": base64.b64encode(charts[k]).decode("ascii")}
                for k in s.charts if k in charts
            ],
        })  # fmt: skip
    return template().render(
        title=report.title,
        meta=report.meta,
        warnings=report.warnings,
        figures=[
            {"label": f.label, "text": format_figure(f), "note": f.note} for f in report.figures
        ],
        sections=sections,
        version=planner.__version__,
    )


def write_html(report: Report, path: Path, cache: ChartCache | None = None) -> Path:
    path.write_text(render_html(report, cache), encoding="utf-8")
    return path
