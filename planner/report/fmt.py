"""Number formatting shared by the HTML and Markdown renderers (XLSX keeps raw numbers)."""

from __future__ import annotations

import math
from typing import Any

from planner.report.model import Figure, split_unit

DASH = "-"


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def number_format(key: str) -> str:
    """A format spec for the column `key` (by its unit)."""
    _stem, unit = split_unit(key)
    if unit == "USD":
        return ",.0f"
    if unit.startswith("USD per"):
        return ",.2f"
    if unit in ("ms", "%"):
        return ",.1f"
    if unit == "MW":
        return ",.4g"
    if unit == "million output tokens":
        return ",.1f"
    return ""


def format_cell(key: str, v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return DASH
    if isinstance(v, bool):
        return "yes" if v else "no"
    if not is_number(v):
        return str(v)
    spec = number_format(key)
    if spec:
        return format(v, spec)
    if float(v).is_integer():
        return f"{int(v):,}"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def format_figure(f: Figure) -> str:
    if f.value is None or (isinstance(f.value, float) and math.isnan(f.value)):
        return DASH
    if f.unit == "USD":
        return f"${f.value:,.0f}"
    if f.unit == "MW":
        return f"{f.value:,.4g} MW"
    return f"{f.value:,.4g} {f.unit}"
