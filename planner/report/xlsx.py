"""Report -> XLSX: a summary sheet, then one sheet per table.

Headers carry units ("capex (USD)"); numbers are stored as numbers with a display format;
totals are a last row whose first cell says "total". Text from the inputs is always
stored as text, never as a formula (a workload named "=1+1" stays that string).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from planner.report.fmt import is_number, number_format
from planner.report.model import Report, ReportTable, column_label, split_unit

HEADER_FILL = PatternFill("solid", fgColor="DDE6F0")
BOLD = Font(bold=True)
MAX_WIDTH = 60


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


def _put(ws: Worksheet, row: int, col: int, value: Any, fmt: str = "General") -> None:
    """One cell: numbers as numbers, everything else as literal text."""
    cell = ws.cell(row=row, column=col)
    if value is None:
        return
    if isinstance(value, bool):
        cell.value = "yes" if value else "no"
        cell.data_type = "s"
    elif is_number(value):
        cell.value = value
        cell.number_format = fmt
    else:
        cell.value = str(value)
        cell.data_type = "s"  # never a formula, whatever the text starts with


def _widths(ws: Worksheet, widths: dict[int, int]) -> None:
    for col, width in widths.items():
        ws.column_dimensions[get_column_letter(col)].width = min(MAX_WIDTH, max(8, width + 2))


def sheet_name(key: str, used: set[str]) -> str:
    name = key[:31]
    n = 2
    while name in used:
        name = f"{key[:28]}_{n}"
        n += 1
    used.add(name)
    return name


def write_table(ws: Worksheet, t: ReportTable) -> None:
    columns = t.columns
    widths: dict[int, int] = {}
    for j, c in enumerate(columns, start=1):
        label = column_label(c)
        _put(ws, 1, j, label)
        ws.cell(row=1, column=j).font = BOLD
        ws.cell(row=1, column=j).fill = HEADER_FILL
        ws.cell(row=1, column=j).alignment = Alignment(wrap_text=True, vertical="top")
        widths[j] = min(len(label), 24)
    formats = {c: excel_format(c) for c in columns}
    records = t.records()
    for i, rec in enumerate(records, start=2):
        for j, c in enumerate(columns, start=1):
            _put(ws, i, j, rec[c], formats[c])
            widths[j] = max(widths[j], len(str(rec[c])) if rec[c] is not None else 1)
    if t.total is not None:
        r = len(records) + 2
        for j, c in enumerate(columns, start=1):
            if c in t.total:
                _put(ws, r, j, t.total[c], formats[c])
                ws.cell(row=r, column=j).font = BOLD
    ws.freeze_panes = "A2"
    _widths(ws, widths)


def write_summary(ws: Worksheet, report: Report) -> None:
    _put(ws, 1, 1, report.title)
    ws.cell(row=1, column=1).font = Font(bold=True, size=14)
    row = 3
    for label, text in report.meta:
        _put(ws, row, 1, label)
        _put(ws, row, 2, text)
        row += 1
    row += 1
    for j, head in enumerate(("figure", "value", "unit", "note"), start=1):
        _put(ws, row, j, head)
        ws.cell(row=row, column=j).font = BOLD
        ws.cell(row=row, column=j).fill = HEADER_FILL
    for f in report.figures:
        row += 1
        _put(ws, row, 1, f.label)
        _put(ws, row, 2, f.value, "#,##0" if f.unit == "USD" else "General")
        _put(ws, row, 3, f.unit)
        _put(ws, row, 4, f.note)
    row += 2
    for text in [*report.warnings, *report.sections[0].paragraphs]:
        _put(ws, row, 1, text)
        ws.cell(row=row, column=1).alignment = Alignment(wrap_text=True, vertical="top")
        ws.merge_cells(start_row=row, start_column=1, end_row=row, end_column=4)
        ws.row_dimensions[row].height = 15 * max(1, len(text) // 110 + 1)
        row += 1
    _widths(ws, {1: 40, 2: 40, 3: 10, 4: 40})


def write_xlsx(report: Report, path: Path) -> Path:
    wb = Workbook()
    summary = wb.active
    assert summary is not None
    summary.title = "summary"
    write_summary(summary, report)
    used = {"summary"}
    for key, t in report.tables.items():
        write_table(wb.create_sheet(sheet_name(key, used)), t)
    wb.save(path)
    return path
