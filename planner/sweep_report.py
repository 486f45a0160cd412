"""A self-contained HTML summary of a sweep: what varied, outcomes, charts, the table.

One file, charts embedded as PNG data URIs, every piece of text escaped. It reads a
`SweepResult`; it never solves.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

import pandas as pd

from planner.report.sweep_charts import sweep_charts

TABLE_COLUMNS = ["status", "total_cost_usd", "capex_usd", "opex_usd", "peak_facility_mw",
                 "unserved_rps", "binding", "path"]  # fmt: skip
MAX_ROWS = 500


def write_report(result: Any, out_dir: Path) -> Path:
    """Charts (PNG) and summary.html in out_dir; returns the HTML path."""
    params = [a.name for a in result.axes]
    charts = sweep_charts(result.table, params, result.mode, out_dir)
    path = out_dir / "summary.html"
    path.write_text(render(result, charts))
    return path


def render(result: Any, charts: list[Path]) -> str:
    meta = result.meta
    title = f"Sweep of {meta.get('demand', '')}"
    parts = [
        f"<h1>{_e(title)}</h1>",
        _definition(result),
        _outcomes(result.table),
        *(_figure(p) for p in charts),
        "<h2>Scenarios</h2>",
        _table(result),
    ]
    return _page(title, "\n".join(parts))


def _definition(result: Any) -> str:
    meta = result.meta
    items = [(a.name, ", ".join(_num(v) for v in a.values)) for a in result.axes]
    items += [("mode", result.mode), ("applies to", result.workload or "every workload"),
              ("workers", f"{meta.get('workers')} ({meta.get('executor')})"),
              ("time", f"{meta.get('total_s', 0):.1f} s (candidates {meta.get('tables_s', 0):.1f} s, "
                       f"scenarios {meta.get('solve_s', 0):.1f} s)"),
              ("solver", f"gap {meta.get('profile', {}).get('mip_rel_gap')}, "
                         f"limit {meta.get('profile', {}).get('time_limit_s')} s per scenario")]  # fmt: skip
    items += [("note", n) for n in meta.get("persistent_notes", [])]
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in items)
    return f"<h2>What varied</h2><table class='kv'>{rows}</table>"


def _outcomes(table: pd.DataFrame) -> str:
    counts = table["status"].value_counts().sort_index()
    items = "".join(f"<li>{_e(k)}: {int(v)}</li>" for k, v in counts.items())
    solved = table[table["status"].isin(["optimal", "feasible_at_limit"])]
    extra = ""
    if len(solved):
        lo, hi = solved["total_cost_usd"].min(), solved["total_cost_usd"].max()
        short = int((solved["unserved_rps"] > 1e-6).sum())
        extra = (f"<p>Total cost from {_e(_usd(lo))} to {_e(_usd(hi))}; "
                 f"{short} scenario(s) leave demand unserved.</p>")  # fmt: skip
    failed = table[~table["status"].isin(["optimal", "feasible_at_limit"])]
    if len(failed):
        lis = "".join(f"<li>scenario {int(r.scenario)}: {_e(r.status)} — {_e(r.message)}</li>"
                      for r in failed.head(20).itertuples())  # fmt: skip
        extra += f"<p>Scenarios without a plan:</p><ul>{lis}</ul>"
    return f"<h2>Outcomes</h2><ul>{items}</ul>{extra}"


def _figure(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f"<figure><img alt='{_e(path.stem)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{_e(path.stem.replace('_', ' '))}</figcaption></figure>")  # fmt: skip


def _table(result: Any) -> str:
    t = result.table
    place = [c for c in t.columns if c.endswith((".topology", ".prefill", ".decode"))]
    cols = ["scenario", *[a.name for a in result.axes], *TABLE_COLUMNS, *place]
    cols = [c for c in cols if c in t.columns]
    head = "".join(f"<th>{_e(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_e(_cell(r[c]))}</td>" for c in cols) + "</tr>"
                   for r in t.head(MAX_ROWS).to_dict(orient="records"))  # fmt: skip
    more = f"<p>{len(t) - MAX_ROWS} more rows in sweep.csv</p>" if len(t) > MAX_ROWS else ""
    return f"<table class='rows'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return str(v)


def _num(v: Any) -> str:
    return "none" if v is None else f"{v:g}"


def _usd(v: float) -> str:
    return f"{v:,.0f} USD"


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _page(title: str, body: str) -> str:
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}"
        "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}"
        "table.rows td{text-align:right}figure{display:inline-block;margin:1em}"
        "img{max-width:560px}th{background:#f3f3f3}"
    )
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<style>{style}</style></head><body>{body}</body></html>\n")  # fmt: skip
