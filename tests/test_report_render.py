"""The report renderers that `planner plan` runs by default: matplotlib SVG charts, XLSX
(XlsxWriter), lazy imports.

These use small hand-made tables (no planning), except the import check, which renders the
checked-in example plan in a fresh interpreter. Charts are checked through their SVG: text
is kept as <text> (svg.fonttype none), each series is one <g id="PolyCollection_N"> (bars),
"line2d_N" (lines) or "PathCollection_N" (markers) group.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from itertools import pairwise
from pathlib import Path

import pandas as pd
import pytest

from planner.report import charts
from planner.report.model import Figure, Report, ReportTable, Section
from planner.report.xlsx import write_xlsx

ROOT = Path(__file__).resolve().parents[1]
SVG_NS = "{http://www.w3.org/2000/svg}"
PERIODS = ["2027Q1", "2027Q2", "2027Q3"]
HOSTILE = "<script>alert('x')</script> & $x$"


def _parse(data: bytes) -> ET.Element:
    root = ET.fromstring(data)  # well-formed XML, or this raises
    assert root.tag == f"{SVG_NS}svg"
    return root


def _texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{SVG_NS}text")]


def _groups(root: ET.Element, kind: str) -> list[ET.Element]:
    """matplotlib's group per artist, in drawing order: kind "PolyCollection", "line2d"..."""
    return [g for g in root.iter(f"{SVG_NS}g") if re.fullmatch(rf"{kind}_\d+", g.get("id", ""))]


def _items(group: ET.Element) -> int:
    """How many shapes a collection's group draws: matplotlib writes each as a <path>, or
    as <use> of paths defined once when that is shorter."""
    uses = list(group.iter(f"{SVG_NS}use"))
    return len(uses) or len(group.findall(f"{SVG_NS}path"))


def _points(d: str) -> list[list[tuple[float, float]]]:
    """A path's vertices, one list per subpath (each "M" starts one)."""
    out: list[list[tuple[float, float]]] = []
    for op, x, y in re.findall(r"([ML]) ([-\d.e]+) ([-\d.e]+)", d):
        if op == "M":
            out.append([])
        out[-1].append((float(x), float(y)))
    return out


def _fleet() -> pd.DataFrame:
    return pd.DataFrame({
        "period": PERIODS * 2, "sku": ["b200"] * 3 + [HOSTILE] * 3,
        "existing_chips": [8.0, 8.0, 8.0, 0.0, 0.0, 0.0],
        "purchased_chips": [0.0, 8.0, 8.0, 0.0, 16.0, 16.0],
        "rented_chips": [2.0, 0.0, 0.0, 14.0, 0.0, 4.0],
    })  # fmt: skip


def test_fleet_chart_draws_every_stack_and_keeps_text_inert() -> None:
    data = charts.plot_fleet(_fleet(), PERIODS, f"Chips {HOSTILE}")
    assert b"<script" not in data and b"&lt;script&gt;" in data
    root = _parse(data)
    texts = _texts(root)
    assert f"Chips {HOSTILE}" in texts  # the title, as written ($ is not mathtext here)
    assert {HOSTILE, f"{HOSTILE} (rented)", "b200", "b200 (rented)"} <= set(texts)
    assert set(PERIODS) <= set(texts)
    # One collection per series, one bar per period with chips in it. SKUs in name order
    # ("<script..." first), each owned then rented; colours from tab20 in that order.
    series = [g.findall(f"{SVG_NS}path") for g in _groups(root, "PolyCollection")]
    assert [len(bars) for bars in series] == [2, 2, 3, 1]
    b200_owned, b200_rented = series[2], series[3]
    assert all("fill: #aec7e8" in p.get("style", "") for p in b200_owned)
    assert all("url(#h" in p.get("style", "") and "fill-opacity: 0.55" in p.get("style", "")
               for p in [*series[1], *b200_rented])  # rented: hatched, lighter  # fmt: skip
    # Stacked: b200's owned bar in 2027Q2 stands on the 16 chips the other SKU owns there.
    (lower,) = _points(series[0][0].get("d", ""))
    (upper,) = _points(b200_owned[1].get("d", ""))
    assert min(y for _x, y in lower) == max(y for _x, y in upper)  # SVG y grows downwards


def test_costs_chart_has_both_panels() -> None:
    frame = pd.DataFrame({
        "period": PERIODS, "capex_usd": [1e6, 0.0, 0.0], "rental_usd": [2.5e5, 1e4, 7.7e4],
        "energy_usd": [5e3, 4e3, 4e3], "hosting_usd": [1e4, 1.2e4, 1.4e4],
    })  # fmt: skip
    root = _parse(charts.plot_costs(frame, PERIODS, "Cost per period"))
    texts = _texts(root)
    assert {"Cost per period", "all costs", "operating costs", "capex", "hosting"} <= set(texts)
    assert texts.count("million USD") == 2
    # Left panel capex, rental, energy, hosting; right panel the last three.
    bars = [_items(g) for g in _groups(root, "PolyCollection")]
    assert bars == [1, 3, 3, 3, 3, 3, 3]


def test_power_chart_budget_steps_and_gaps() -> None:
    frame = pd.DataFrame({
        "period": PERIODS, "it_mw": [1.0, math.nan, 1.5], "facility_mw": [1.3, 1.6, 1.95],
        "budget_mw": [2.0, 2.5, math.nan],
    })  # fmt: skip
    root = _parse(charts.plot_power(frame, PERIODS, "Power"))
    texts = _texts(root)
    assert {"Power", "budget", "IT", "facility (IT x PUE)"} <= set(texts)
    plotted = [p for p in root.iter(f"{SVG_NS}path") if p.get("clip-path")]  # not the legend
    (budget,) = [p for p in plotted if "stroke-dasharray" in p.get("style", "")]
    (steps,) = _points(budget.get("d", ""))
    segments = list(pairwise(steps))
    assert all(a[0] == b[0] or a[1] == b[1] for a, b in segments)  # steps, no slopes
    assert any(a[0] == b[0] and a[1] != b[1] for a, b in segments)  # the step up
    (it_line,) = [p for p in plotted if "stroke: #333333" in p.get("style", "")]
    assert len(_points(it_line.get("d", ""))) == 2  # broken at the missing period
    no_budget = _parse(charts.plot_power(frame.assign(budget_mw=math.nan), PERIODS, "Power"))
    assert "Power (no budget set)" in _texts(no_budget)
    assert not [p for p in no_budget.iter(f"{SVG_NS}path") if "dasharray" in p.get("style", "")]


def test_frontier_chart_log_axis_and_chosen_points() -> None:
    rows = []
    for k, name in enumerate(["a: colocated h100:tp1", HOSTILE]):
        for b in (1, 2, 4, 8, 16, 32):
            rows.append({"configuration": name, "output_tok_s_per_user": 200.0 / b + k,
                         "output_tok_s_per_mw": 1e5 * b * (k + 1), "chosen": False})  # fmt: skip
        rows.append({"configuration": name, "output_tok_s_per_user": 50.0,
                     "output_tok_s_per_mw": 4e5 * (k + 1), "chosen": True})  # fmt: skip
    data = charts.plot_operating_frontier(pd.DataFrame(rows), "Token economics")
    assert b"<script" not in data
    root = _parse(data)
    labels = _texts(root)
    assert {"a: colocated h100:tp1", HOSTILE} <= set(labels)
    # Log y axis, labelled in plain text: 1e5 to 6.4e6 is under two decades, so 2 and 5 x 10^k
    # are labelled too; a factor of 2 takes log10(2) of the height a factor of 10 takes.
    y = {t.text: float(t.get("y", "nan")) for t in root.iter(f"{SVG_NS}text")}
    assert {"100k", "200k", "500k", "1M", "2M", "5M"} <= set(y) and "10M" not in y
    assert (y["100k"] - y["200k"]) / (y["100k"] - y["1M"]) == pytest.approx(math.log10(2), rel=1e-4)
    assert y["1M"] - y["2M"] == pytest.approx(y["100k"] - y["200k"], rel=1e-4)
    curves = [g for g in _groups(root, "line2d") if g.find(f"{SVG_NS}path[@clip-path]") is not None
              and "stroke: #1f77b4" in (g.find(f"{SVG_NS}path") .get("style") or "")]  # fmt: skip
    assert curves  # the first configuration's curve, in the first tab10 colour
    (stars,) = _groups(root, "PathCollection")  # the chosen points: one series, two stars
    assert _items(stars) == 2


def test_empty_tables_draw_a_note() -> None:
    empty = pd.DataFrame(columns=["sku", "period"])
    for data in (charts.plot_fleet(empty, PERIODS, "Chips"),
                 charts.plot_costs(empty, PERIODS, "Cost"),
                 charts.plot_power(empty, PERIODS, "Power"),
                 charts.plot_operating_frontier(empty, "Frontier")):  # fmt: skip
        assert len(_texts(_parse(data))) == 1


def test_charts_are_deterministic() -> None:
    """Salted ids and no date: the same data gives the same bytes."""
    a = charts.plot_fleet(_fleet(), PERIODS, "Chips")
    assert a == charts.plot_fleet(_fleet(), PERIODS, "Chips")
    assert b"<dc:date>" not in a


# -- XLSX -------------------------------------------------------------------------------------


def _report() -> Report:
    frame = pd.DataFrame({
        "workload": ["=SUM(1,2)", "  padded ", "bell\x07"], "capex_usd": [1_000_000.0, 2.5, math.nan],
        "chips": [8, 16, 24], "ok": [True, False, True],
    })  # fmt: skip
    table = ReportTable("bom", "Bill of materials", frame,
                        total={"workload": "total", "capex_usd": 1_000_002.5, "chips": 48})  # fmt: skip
    return Report(
        title="Fleet plan: test", meta=[("Demand", "x.csv")],
        figures=[Figure("Capex", 1_000_002.5, "USD", "cash"), Figure("Peak", None, "MW")],
        warnings=["a warning"], sections=[Section("summary", "Summary", ["why"], ["bom"])],
        tables={"bom": table}, charts={},
    )  # fmt: skip


def test_xlsx_cells_styles_and_layout(tmp_path: Path) -> None:
    from openpyxl import load_workbook

    path = write_xlsx(_report(), tmp_path / "r.xlsx")
    wb = load_workbook(path)
    assert wb.sheetnames == ["summary", "bom"]
    ws = wb["bom"]
    assert ws.freeze_panes == "A2"
    assert [c.value for c in ws[1]] == ["workload", "capex (USD)", "chips", "ok"]
    assert ws["A1"].font.b and ws["A1"].fill.fgColor.rgb.endswith("DDE6F0")
    assert ws["A2"].value == "=SUM(1,2)" and ws["A2"].data_type == "s"  # text, not a formula
    assert ws["A3"].value == "  padded "  # whitespace kept
    assert ws["A4"].value == "bell"  # a control character XML cannot hold is dropped
    assert ws["B2"].value == 1_000_000 and ws["B2"].number_format == "#,##0"
    assert ws["B4"].value is None  # NaN: an empty cell
    assert ws["C3"].value == 16 and ws["D2"].value == "yes"
    assert ws["A5"].value == "total" and ws["A5"].font.b and ws["B5"].value == 1_000_002.5
    summary = wb["summary"]
    assert summary["A1"].font.sz == 14 and summary["B3"].value == "x.csv"
    assert summary["A5"].value == "figure" and summary["A5"].font.b
    assert summary["B6"].value == 1_000_002.5 and summary["B6"].number_format == "#,##0"
    assert summary["A7"].value == "Peak" and summary["B7"].value is None
    assert {str(r) for r in summary.merged_cells.ranges} == {"A9:D9", "A10:D10"}
    assert summary["A10"].value == "why" and summary["A10"].alignment.wrap_text


def test_xlsx_is_deterministic_and_pandas_reads_it(tmp_path: Path) -> None:
    a = write_xlsx(_report(), tmp_path / "a.xlsx").read_bytes()
    b = write_xlsx(_report(), tmp_path / "b.xlsx").read_bytes()
    assert a == b
    frame = pd.read_excel(tmp_path / "a.xlsx", sheet_name="bom")
    assert frame["capex (USD)"].iloc[:2].tolist() == [1_000_000, 2.5]


# -- what `planner plan` imports --------------------------------------------------------------


def test_default_reports_load_only_what_they_draw_with(tmp_path: Path) -> None:
    """Markdown, XLSX and JSON need no matplotlib (~0.6 s to import) and no jinja2; HTML
    draws its charts on matplotlib's SVG canvas; nothing needs openpyxl. (Not checked: that
    pyplot stays unloaded. The charts never import it, but once Pyomo is loaded, as
    planner.plan does, Pyomo's import hook loads pyplot whenever matplotlib is imported.)"""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from planner.cli_report import load_plan, sidecars\n"
        "from planner.report import write_reports\n"
        f"examples = Path({str(ROOT / 'reports' / 'examples')!r})\n"
        "plan = load_plan(examples / 'plan.json')\n"
        f"out = Path({str(tmp_path)!r})\n"
        "write_reports(plan, out, ['md', 'xlsx', 'json'], **sidecars(examples))\n"
        "heavy = sorted(m for m in ('matplotlib', 'openpyxl', 'jinja2') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
        "write_reports(plan, out, ['html'], **sidecars(examples))\n"
        "assert 'matplotlib.backends.backend_svg' in sys.modules\n"
        "assert 'openpyxl' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert {p.name for p in tmp_path.iterdir()} == {
        f"report.{x}" for x in ("html", "md", "xlsx", "json")
    }
