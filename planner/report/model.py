"""The report as data: tidy tables with units in their column names, plus text.

Every renderer (HTML, Markdown, XLSX, JSON, PDF) draws from one `Report`, so the formats
cannot disagree. Column keys are snake_case with a unit suffix (`capex_usd`, `ttft_ms`);
`column_label` turns a key into the header a person reads ("capex (USD)").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pandas as pd

# Longest suffix first: "_usd_per_mtok" must win over "_usd".
UNIT_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("_usd_per_mtok", "USD per million output tokens"),
    ("_usd_per_chip_hour", "USD per chip-hour"),
    ("_usd_per_kw_month", "USD per kW-month"),
    ("_usd_per_kwh", "USD per kWh"),
    ("_usd_per_unit", "USD per unit"),
    ("_usd_per_rps", "USD per req/s"),
    ("_tok_s_per_mw", "output tokens/s per MW"),
    ("_tok_s_per_user", "output tokens/s per user"),
    ("_mtok", "million output tokens"),
    ("_usd", "USD"),
    ("_mw", "MW"),
    ("_ms", "ms"),
    ("_pct", "%"),
    ("_rps", "req/s"),
    ("_w", "W"),
    ("_days", "days"),
    ("_years", "years"),
    ("_hours", "hours"),
    ("_s", "s"),
)


def split_unit(key: str) -> tuple[str, str]:
    """`capex_usd` -> ("capex", "USD"); a key without a known unit suffix -> (key, "")."""
    for suffix, unit in UNIT_SUFFIXES:
        if key.endswith(suffix) and len(key) > len(suffix):
            return key[: -len(suffix)], unit
    return key, ""


def column_label(key: str) -> str:
    """Header text: words from the key, the unit in parentheses."""
    stem, unit = split_unit(key)
    words = stem.replace("_", " ")
    return f"{words} ({unit})" if unit else words


@dataclass(frozen=True)
class ReportTable:
    """One tidy table. `total` is a totals row (same keys; the first column says "total")."""

    key: str  # machine name: HTML id, XLSX sheet, JSON key
    title: str
    frame: pd.DataFrame
    note: str = ""
    total: dict[str, Any] | None = None
    empty_text: str = "None."
    in_documents: bool = True  # False: XLSX and JSON only (long, tidy detail)

    @property
    def columns(self) -> list[str]:
        return [str(c) for c in self.frame.columns]

    def records(self) -> list[dict[str, Any]]:
        """Rows as plain Python values, NaN as None. Computed once (HTML, Markdown, XLSX and
        JSON all read it): treat the rows as read-only."""
        return self._records

    @cached_property
    def _records(self) -> list[dict[str, Any]]:
        # Column by column: DataFrame.to_dict(orient="records") boxes every cell through
        # pandas and cost ~0.1 s over a report's tables.
        columns = self.columns
        values = [[plain(v) for v in col.tolist()] for _name, col in self.frame.items()]
        return [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]


@dataclass(frozen=True)
class Figure:
    """A headline number of the executive summary."""

    label: str
    value: float | None
    unit: str
    note: str = ""


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)  # keys into Report.tables
    charts: list[str] = field(default_factory=list)  # keys into Report.charts


@dataclass(frozen=True)
class Report:
    title: str
    meta: list[tuple[str, str]]  # (label, text) lines under the title
    figures: list[Figure]
    warnings: list[str]
    sections: list[Section]
    tables: dict[str, ReportTable]
    # chart key -> the data it is drawn from (see charts.render_charts); no matplotlib here
    charts: dict[str, dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        """Everything a machine needs: text, figures and every table with column units."""
        return {
            "title": self.title,
            "meta": [{"label": k, "text": v} for k, v in self.meta],
            "figures": [
                {"label": f.label, "value": plain(f.value), "unit": f.unit, "note": f.note}
                for f in self.figures
            ],
            "warnings": list(self.warnings),
            "sections": [
                {"key": s.key, "title": s.title, "paragraphs": s.paragraphs, "tables": s.tables}
                for s in self.sections
            ],
            "tables": {
                key: {
                    "title": t.title,
                    "note": t.note,
                    "columns": [
                        {"key": c, "label": column_label(c), "unit": split_unit(c)[1]}
                        for c in t.columns
                    ],
                    "rows": t.records(),
                    "total": None if t.total is None else {k: plain(v) for k, v in t.total.items()},
                }
                for key, t in self.tables.items()
            },
        }


def plain(v: Any) -> Any:
    """A JSON-friendly scalar: numpy -> Python, NaN / inf -> None."""
    if hasattr(v, "item") and not isinstance(v, str | bytes):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if v is pd.NaT:
        return None
    return v
