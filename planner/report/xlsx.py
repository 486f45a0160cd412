"""Report -> XLSX: a summary sheet, then one sheet per table, written with XlsxWriter.

Headers carry units ("capex (USD)"); numbers are stored as numbers with a display format;
totals are a last row whose first cell says "total". Text from the inputs is always
stored as text, never as a formula or a link (a workload named "=1+1" stays that string):
every text cell is written with `write_string`, and the workbook is opened with XlsxWriter's
string conversions off. XlsxWriter streams the cells out (the example report's workbook
takes under 0.1 s, import included; openpyxl, which builds a cell object per value, about
twice that) and, with the plan's creation time as the workbook's, the same report gives
the same bytes.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from planner.report.fmt import is_number, number_format
from planner.report.model import Report, ReportTable, column_label, plain, split_unit

if TYPE_CHECKING:
    from xlsxwriter.format import Format
    from xlsxwriter.workbook import Workbook
    from xlsxwriter.worksheet import Worksheet

HEADER_FILL = "#DDE6F0"
MAX_WIDTH = 60
# XML 1.0 cannot hold most control characters; they are dropped from text cells.
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
# The workbook's creation date when the plan records none (XlsxWriter would write "now").
FIXED_CREATED = datetime(2000, 1, 1, tzinfo=UTC)


def excel_format(key: str) -> str:
    spec = number_format(key)
    unit = split_unit(key)[1]
    if spec == ",.0f":
        return "#,##0"
    if spec in (",.2f",):
        return "#,##0.00"
    if spec == ",.1f":
        return "#,##0.0"
    if unit == "MW":
        return "0.0000"
    return "General"


class Formats:
    """The workbook's cell formats, one XlsxWriter Format per distinct style."""

    def __init__(self, wb: Workbook) -> None:
        self.wb = wb
        self._cache: dict[tuple[Any, ...], Format] = {}

    def get(self, num: str = "General", *, bold: bool = False, size: float | None = None,
            fill: bool = False, wrap: bool = False) -> Format:  # fmt: skip
        key = (num, bold, size, fill, wrap)
        if key not in self._cache:
            props: dict[str, Any] = {}
            if num != "General":
                props["num_format"] = num
            if bold:
                props["bold"] = True
            if size:
                props["font_size"] = size
            if fill:
                props.update(pattern=1, bg_color=HEADER_FILL)
            if wrap:
                props.update(text_wrap=True, valign="top")
            self._cache[key] = self.wb.add_format(props)
        return self._cache[key]


def _put(ws: Worksheet, row: int, col: int, value: Any, fmt: Format | None = None,
         text_fmt: Format | None = None) -> None:  # fmt: skip
    """One cell (0-based row and column): numbers as numbers with `fmt`, booleans as yes/no,
    everything else as literal text with `text_fmt`; None, NaN and "" leave a blank (styled
    if `text_fmt` is given)."""
    value = plain(value)  # numpy scalars -> Python; NaN / inf -> None
    if isinstance(value, bool):
        value = "yes" if value else "no"
    if is_number(value):
        ws.write_number(row, col, value, fmt)
    elif value is None or value == "":
        if text_fmt is not None:
            ws.write_blank(row, col, None, text_fmt)
    else:
        ws.write_string(row, col, _ILLEGAL.sub("", str(value)), text_fmt)


def _set_widths(ws: Worksheet, widths: dict[int, int]) -> None:
    for col, width in widths.items():
        ws.set_column(col, col, min(MAX_WIDTH, max(8, width + 2)))


def sheet_name(key: str, used: set[str]) -> str:
    name = key[:31]
    n = 2
    while name in used:
        name = f"{key[:28]}_{n}"
        n += 1
    used.add(name)
    return name


def write_table(ws: Worksheet, t: ReportTable, formats: Formats) -> None:
    columns = t.columns
    header = formats.get(bold=True, fill=True, wrap=True)
    widths: dict[int, int] = {}
    for j, c in enumerate(columns):
        label = column_label(c)
        _put(ws, 0, j, label, text_fmt=header)
        widths[j] = min(len(label), 24)
    nums = [excel_format(c) for c in columns]
    cell_formats = [None if n == "General" else formats.get(n) for n in nums]
    records = t.records()
    for i, rec in enumerate(records, start=1):
        for j, c in enumerate(columns):
            v = rec[c]
            _put(ws, i, j, v, cell_formats[j])
            widths[j] = max(widths[j], len(str(v)) if v is not None else 1)
    if t.total is not None:
        r = len(records) + 1
        for j, c in enumerate(columns):
            if c in t.total:
                bold = formats.get(nums[j], bold=True)
                _put(ws, r, j, t.total[c], bold, formats.get(bold=True))
    ws.freeze_panes(1, 0)
    _set_widths(ws, widths)


def write_summary(ws: Worksheet, report: Report, formats: Formats) -> None:
    _put(ws, 0, 0, report.title, text_fmt=formats.get(bold=True, size=14))
    row = 2
    for label, text in report.meta:
        _put(ws, row, 0, label)
        _put(ws, row, 1, text)
        row += 1
    row += 1
    head = formats.get(bold=True, fill=True)
    for j, text in enumerate(("figure", "value", "unit", "note")):
        _put(ws, row, j, text, text_fmt=head)
    usd = formats.get("#,##0")
    for f in report.figures:
        row += 1
        _put(ws, row, 0, f.label)
        _put(ws, row, 1, f.value, usd if f.unit == "USD" else None)
        _put(ws, row, 2, f.unit)
        _put(ws, row, 3, f.note)
    row += 2
    wrap = formats.get(wrap=True)
    for text in [*report.warnings, *report.sections[0].paragraphs]:
        ws.merge_range(row, 0, row, 3, "", wrap)
        _put(ws, row, 0, text, text_fmt=wrap)  # over the merge: text, never a formula
        ws.set_row(row, 15 * max(1, len(text) // 110 + 1))
        row += 1
    _set_widths(ws, {0: 40, 1: 40, 2: 10, 3: 40})


def _created(report: Report) -> datetime:
    """The plan's creation time, so that the same plan gives the same workbook."""
    for label, text in report.meta:
        if label == "Plan created":
            try:
                return datetime.fromisoformat(text)
            except ValueError:
                break
    return FIXED_CREATED


def write_xlsx(report: Report, path: Path) -> Path:
    from xlsxwriter import Workbook

    options = {
        "in_memory": True,  # no temporary files; fixed timestamps inside the zip
        "strings_to_formulas": False,
        "strings_to_urls": False,
        "strings_to_numbers": False,
    }
    with Workbook(str(path), options) as wb:
        wb.set_properties({"author": "fleet planner", "created": _created(report)})
        formats = Formats(wb)
        write_summary(wb.add_worksheet("summary"), report, formats)
        used = {"summary"}
        for key, t in report.tables.items():
            write_table(wb.add_worksheet(sheet_name(key, used)), t, formats)
    return path


__all__ = ["excel_format", "sheet_name", "write_summary", "write_table", "write_xlsx"]
