"""Procurement reports: content equals the plan, formats round-trip, text is escaped,
the HTML renders in a real headless browser, and unserved demand is explained."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from planner.errors import PlannerInputError
from planner.plan import TABLE_SCHEMAS, Plan
from planner.planning import PlanRun, Scenario, run_planning
from planner.report import parse_formats, write_reports
from planner.report.browser import dump_dom, find_chromium, screenshot
from planner.report.build import build_report
from planner.report.html import templates_dir

XSS = "<script>alert('x')</script> \"chat\""
FORMULA = "=SUM(1,2) & 'quoted'"
IMPOSSIBLE = "impossible <b>fast</b>"

DEMAND = f"""period,workload,model,precision,prompt_tokens,output_tokens,ttft_ms,tpot_ms,percentile,requests_per_s,mean_requests_per_s,notes
2027Q1,"{XSS.replace('"', '""')}",llama-3.1-8b,,800,150,500,20,99,900,500,
2027Q2,"{XSS.replace('"', '""')}",llama-3.1-8b,,800,150,500,20,99,1500,900,
2027Q1,"{FORMULA}",llama-3.1-70b,fp8,1500,350,1000,40,99,20,12,
2027Q2,"{FORMULA}",llama-3.1-70b,fp8,1500,350,1000,40,99,30,18,
2027Q1,{IMPOSSIBLE},llama-3.1-70b,fp8,1500,350,1000,0.5,99,5,3,
2027Q2,{IMPOSSIBLE},llama-3.1-70b,fp8,1500,350,1000,0.5,99,5,3,
"""


def _need_chromium() -> str:
    """Chromium's path; in CI (CI=true) its absence fails the test, locally it skips."""
    found = find_chromium()
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed; .ci/run installs Debian's chromium")
        pytest.skip("chromium not installed (apt-get install chromium); CI runs this test")
    return found


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> PlanRun:
    """A small real plan: an existing fleet, purchases with lead time, partly unserved in the
    first period, and a workload no hardware can serve (0.5 ms TPOT)."""
    folder = tmp_path_factory.mktemp("demand")
    path = folder / "tiny.csv"
    path.write_text(DEMAND)
    sc = Scenario(
        allowed_skus=["b200", "h100-sxm"],
        allow_rent=False,
        existing_fleet=[{"sku": "b200", "chips": 8}],  # type: ignore[list-item]
        time_limit_s=20,
    )
    return run_planning(path, sc)


@pytest.fixture(scope="module")
def reports(run: PlanRun, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("reports")
    paths = write_reports(
        run.plan, out, ["html", "md", "xlsx", "json"], run.catalog,
        explanation=run.explanation, verification=run.verification.summary(),
    )  # fmt: skip
    return {p.suffix.lstrip("."): p for p in paths}


def test_fixture_plan_has_what_the_tests_need(run: PlanRun) -> None:
    plan = run.plan
    assert plan.status in ("optimal", "feasible_at_limit")
    assert run.verification.passed
    assert plan.purchases["units"].sum() > 0
    assert IMPOSSIBLE in set(plan.unserved["workload"])
    # run_planning records whether the least shortfall is proven (plan_read._unexplained)
    assert plan.shortfall_proven is not None
    assert plan.shortfall_proven or plan.status != "optimal"


# -- content equals the plan -------------------------------------------------------------


def test_bom_rows_and_total_equal_the_plans_purchases(run: PlanRun) -> None:
    report = build_report(run.plan, run.catalog)
    bom = report.tables["bom"]
    buys = run.plan.purchases[run.plan.purchases["units"] > 0]
    got = sorted(
        zip(bom.frame["sku"], bom.frame["period"], bom.frame["purchase_units"], strict=True)
    )
    assert got == sorted(zip(buys["sku"], buys["period"], buys["units"], strict=True))
    assert bom.total is not None
    assert bom.total["extended_price_usd"] == pytest.approx(float(buys["capex_usd"].sum()))
    unit = bom.frame["unit_price_usd"] * bom.frame["purchase_units"]
    assert np.allclose(unit, bom.frame["extended_price_usd"])
    # b200 has a 90-day lead time: bought in the first quarter, in service in the second
    assert set(bom.frame.loc[bom.frame["period"] == "2027Q1", "in_service_from"]) <= {"2027Q2"}


def test_existing_fleet_is_shown_apart_from_purchases(run: PlanRun) -> None:
    report = build_report(run.plan, run.catalog)
    existing = report.tables["existing_fleet"].frame
    assert existing.to_dict(orient="records") == [
        {
            "sku": "b200",
            "unit": "HGX B200 8-GPU server",
            "chips": 8.0,
            "in_service_until": "end of horizon",
        }
    ]
    fleet = report.tables["fleet_schedule"].frame
    assert (fleet["existing_chips"] == 8.0).all()
    owned = run.plan.fleet.set_index(["sku", "period"])["owned_chips"]
    for r in fleet.itertuples():
        assert r.existing_chips + r.purchased_chips == pytest.approx(owned[(r.sku, r.period)])


def test_costs_and_attribution_add_up_to_the_plan_total(run: PlanRun) -> None:
    report = build_report(run.plan, run.catalog)
    costs = report.tables["costs"]
    assert costs.total is not None
    assert costs.total["total_usd"] == pytest.approx(run.plan.total_cost_usd)
    per_token = report.tables["cost_per_token"].frame.set_index("workload")
    assert per_token["attributed_cost_usd"].sum() == pytest.approx(
        run.plan.total_cost_usd, rel=1e-9
    )
    # Tokens: mean rate x served share x output tokens x hours, computed here independently.
    inputs = run.plan.inputs or {}
    hours = {p["period"]: p["hours"] for p in inputs["periods"]}
    out_tokens = {w["workload"]: w["output_tokens"] for w in inputs["workloads"]}
    lost = run.plan.unserved.set_index(["workload", "period"])["share"]
    for w in (XSS, FORMULA):
        mtok = sum(
            d["mean_requests_per_s"] * (1 - lost.get((w, d["period"]), 0.0)) * out_tokens[w]
            * hours[d["period"]] * 3600 / 1e6
            for d in inputs["demand"] if d["workload"] == w
        )  # fmt: skip
        assert per_token.loc[w, "output_mtok"] == pytest.approx(mtok)
        assert per_token.loc[w, "cost_usd_per_mtok"] == pytest.approx(
            per_token.loc[w, "attributed_cost_usd"] / mtok
        )
    assert math.isnan(per_token.loc[IMPOSSIBLE, "cost_usd_per_mtok"])  # serves no tokens


def test_sla_table_meets_targets_and_queueing_only_adds(run: PlanRun) -> None:
    sla = build_report(run.plan, run.catalog).tables["sla"].frame.set_index("workload")
    for w in (XSS, FORMULA):
        row = sla.loc[w]
        assert row["meets_sla"] == "yes"
        assert 0 < row["ttft_predicted_ms"] <= row["ttft_target_ms"]
        assert 0 < row["tpot_predicted_ms"] <= row["tpot_target_ms"]
        assert row["ttft_headroom_pct"] == pytest.approx(
            100 * (1 - row["ttft_predicted_ms"] / row["ttft_target_ms"])
        )
    zero_load = min(r["ttft0_ms"] for r in (run.plan.inputs or {})["rows"]
                    if r["workload"] == XSS and r["phase"] == "prefill")  # fmt: skip
    assert sla.loc[XSS, "ttft_predicted_ms"] >= zero_load
    assert sla.loc[IMPOSSIBLE, "meets_sla"] == "unserved"


def test_reports_never_solve(run: PlanRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import planner.plan_read
    import planner.solve

    def boom(*_a: Any, **_k: Any) -> None:
        raise AssertionError("a report called the solver")

    monkeypatch.setattr(planner.solve, "solve", boom)
    monkeypatch.setattr(planner.plan_read, "solve_plan", boom)
    monkeypatch.setattr(planner.plan_read, "explain_unserved", boom)
    paths = write_reports(run.plan, tmp_path, ["json", "md"])
    assert [p.name for p in paths] == ["report.json", "report.md"]


def test_planner_report_does_not_load_the_solver(run: PlanRun, tmp_path: Path) -> None:
    """`planner report` on a saved plan loads neither Pyomo nor HiGHS (nor our solve
    layer): a report reads plan.json, so it cannot solve, and starts faster."""
    import subprocess
    import sys

    run.plan.write_tables(tmp_path / "plan")
    probe = (
        "import sys; from planner.cli import main\n"
        f"sys.argv = ['planner', 'report', {str(tmp_path / 'plan' / 'plan.json')!r}, "
        f"'--out', {str(tmp_path / 'out')!r}, '--format', 'md,json']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print(sorted(m for m in ('pyomo', 'highspy', 'planner.solve', 'planner.planning')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "out" / "report.md").read_text().count("|") > 10


# -- XLSX ---------------------------------------------------------------------------------


def test_xlsx_totals_equal_the_plan(run: PlanRun, reports: dict[str, Path]) -> None:
    sheets = pd.read_excel(reports["xlsx"], sheet_name=None)
    for name in ("summary", "bom", "fleet_schedule", "placement", "sla", "costs", "assumptions"):
        assert name in sheets
    bom = sheets["bom"]
    total = bom[bom["period"] == "total"]
    assert len(total) == 1
    assert total["extended price (USD)"].iloc[0] == pytest.approx(
        run.plan.purchases["capex_usd"].sum()
    )
    assert total["purchase units"].iloc[0] == run.plan.purchases["units"].sum()
    rows = bom[bom["period"] != "total"]
    assert pd.api.types.is_numeric_dtype(rows["unit price (USD)"])  # numbers, not text
    costs = sheets["costs"]
    assert costs.loc[costs["period"] == "total", "total (USD)"].iloc[0] == pytest.approx(
        run.plan.total_cost_usd
    )
    assert costs.loc[costs["period"] != "total", "capex (USD)"].sum() == pytest.approx(
        run.plan.costs["capex_usd"].sum()
    )


def test_xlsx_keeps_input_text_as_text(reports: dict[str, Path]) -> None:
    from openpyxl import load_workbook

    sla = load_workbook(reports["xlsx"])["sla"]
    cells = [c for c in sla["A"] if c.value in (XSS, FORMULA)]
    assert {c.value for c in cells} == {XSS, FORMULA}
    assert all(c.data_type == "s" for c in cells)  # "=SUM(...)" is not a formula


# -- escaping -----------------------------------------------------------------------------


def test_html_and_markdown_escape_input_text(reports: dict[str, Path]) -> None:
    html = reports["html"].read_text()
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &#34;chat&#34;" in html
    assert "<b>fast</b>" not in html and "&lt;b&gt;fast&lt;/b&gt;" in html
    assert 'src="http' not in html and 'href="http' not in html  # self-contained
    md = reports["md"].read_text()
    assert "<script" not in md and "<b>" not in md
    assert "&lt;script&gt;alert('x')&lt;/script&gt;" in md
    data = json.loads(reports["json"].read_text())
    names = {r["workload"] for r in data["tables"]["sla"]["rows"]}
    assert {XSS, FORMULA, IMPOSSIBLE} <= names  # JSON keeps the raw text


def test_chart_labels_from_inputs_are_inert(run: PlanRun) -> None:
    from planner.report.charts import render_charts

    report = build_report(run.plan, run.catalog)
    svgs = render_charts(report.charts)
    assert set(svgs) == {"fleet", "costs", "power", "frontier"}
    frontier = svgs["frontier"].decode()
    assert "<script" not in frontier and "&lt;script&gt;" in frontier


# -- unserved and no plan -----------------------------------------------------------------


def test_unserved_report_says_what_and_why(run: PlanRun, reports: dict[str, Path]) -> None:
    table = build_report(run.plan, run.catalog, explanation=run.explanation).tables["unserved"]
    row = table.frame.set_index("workload").loc[IMPOSSIBLE]
    assert row["unserved_peak_rps"] == pytest.approx(5.0)
    assert row["cause"] == "no_candidate"
    assert "0.5 ms" in row["why"]
    # The plan file alone carries the diagnosis (inputs.unserved_explained): same answer.
    alone = build_report(run.plan, run.catalog).tables["unserved"].frame.set_index("workload")
    assert "best TPOT any SKU reaches" in alone.loc[IMPOSSIBLE, "why"]
    assert "0.5 ms" in alone.loc[IMPOSSIBLE, "why"]
    md = reports["md"].read_text()
    assert "Unserved demand" in md and "0.5 ms" in md


def test_report_of_a_plan_with_no_solution(run: PlanRun, tmp_path: Path) -> None:
    from planner.plan import schema_table

    empty = {name: schema_table(name, []) for name in TABLE_SCHEMAS}
    failed = dataclasses.replace(
        run.plan, status="infeasible", message="model infeasible", objective=None, bound=None,
        gap=None, **empty,
    )  # fmt: skip
    report = build_report(failed, run.catalog)
    unserved = report.tables["unserved"].frame
    assert set(unserved["workload"]) == {XSS, FORMULA, IMPOSSIBLE}
    assert (unserved["unserved_share_pct"] == 100.0).all()
    assert unserved["why"].str.contains("no plan").all()
    (html,) = write_reports(failed, tmp_path, ["html"], run.catalog)
    text = html.read_text()
    assert "No plan: the solver returned status infeasible" in text


def test_plan_without_recorded_inputs_still_reports(run: PlanRun, tmp_path: Path) -> None:
    bare = dataclasses.replace(run.plan, inputs=None)
    paths = write_reports(bare, tmp_path, ["html", "xlsx"], run.catalog)
    assert "plan.json records no inputs" in paths[0].read_text()
    costs = pd.read_excel(paths[1], sheet_name="costs")
    assert costs.loc[costs["period"] == "total", "total (USD)"].iloc[0] == pytest.approx(
        run.plan.total_cost_usd
    )


# -- binding constraints and comparisons ----------------------------------------------------


def test_recorded_binding_and_comparisons_are_rendered(run: PlanRun, tmp_path: Path) -> None:
    mine = run.plan.total_cost_usd
    inputs = dict(run.plan.inputs or {})
    lost = run.plan.unserved_rps
    inputs["binding"] = [  # the shapes planning.binding_constraints / limit_savings record
        {"constraint": "serving one more request/s", "row": "c_demand_served[w,decode,2027Q1]",
         "index": "w,decode,2027Q1", "unit": "req/s", "dual_usd_per_unit": 321.0, "note": "marginal"},
        {"constraint": "power budget (MW per period)", "row": "power_budget_mw", "index": "",
         "unit": "USD", "limit": 0.5, "binds": True, "saving_if_lifted_usd": 12345.0,
         "unserved_rps_if_lifted": lost, "note": "lifting it saves 12,345 USD"},
        # serves everything for 5,000 USD more: the saving is the penalty avoided, less that
        {"constraint": "capex budget (USD over the horizon)", "row": "capex_budget_usd", "index": "",
         "unit": "USD", "limit": 1e6, "binds": True,
         "saving_if_lifted_usd": run.plan.penalty_usd_per_rps * lost - 5000.0,
         "unserved_rps_if_lifted": 0.0, "note": "lifting it saves a lot"},
    ]  # fmt: skip
    inputs["comparisons"] = [
        {"fleet": "this plan", "total_cost_usd": mine, "peak_facility_mw": 0.1, "status": "optimal", "unserved_rps": lost, "skus": ["b200"]},
        {"fleet": "best single SKU (h100-sxm)", "total_cost_usd": mine * 1.25, "peak_facility_mw": 0.2, "status": "optimal", "unserved_rps": lost, "skus": ["h100-sxm"]},
        {"fleet": "GPU only", "total_cost_usd": mine, "peak_facility_mw": 0.1, "status": "optimal", "unserved_rps": lost, "skus": ["b200"]},
    ]  # fmt: skip
    plan = run.plan.with_inputs(inputs)
    report = build_report(plan, run.catalog)
    binding = report.tables["binding"].frame.set_index("constraint")
    assert binding.index[-1] == "serving one more request/s"  # re-solved limits first
    assert binding.loc[
        "power budget (MW per period)", "cost_change_if_lifted_usd"
    ] == pytest.approx(-12345.0)
    assert binding.loc[
        "capex budget (USD over the horizon)", "cost_change_if_lifted_usd"
    ] == pytest.approx(5000.0, abs=1e-3)
    assert "row" not in binding.columns
    comp = report.tables["comparisons"].frame.set_index("fleet")
    assert comp.loc["best single SKU (h100-sxm)", "extra_cost_vs_this_plan_pct"] == pytest.approx(
        25.0
    )
    why = report.sections[0].paragraphs[1]
    assert "saves" in why and "(20%)" in why  # 0.25 m / 1.25 m
    assert "brings no saving" in why
    assert "Lifting the power budget (MW per period) would save $12,345" in why
    assert (
        f"Lifting the capex budget (USD over the horizon) would serve {lost:.3g} req/s more" in why
    )
    assert "(total cost +5,000 USD)" in why
    (html,) = write_reports(plan, tmp_path, ["html"], run.catalog)
    assert "not computed for this plan" not in html.read_text()


def test_absent_binding_and_comparisons_say_not_computed(run: PlanRun, tmp_path: Path) -> None:
    inputs = {
        k: v for k, v in (run.plan.inputs or {}).items() if k not in ("binding", "comparisons")
    }
    (html,) = write_reports(run.plan.with_inputs(inputs), tmp_path, ["html"], run.catalog)
    text = html.read_text()
    assert text.count("not computed for this plan") >= 3  # binding, comparisons, summary
    assert "Limits at their bound in this plan" in text  # what the plan's own tables show


def test_recorded_empty_binding_says_nothing_binds(run: PlanRun) -> None:
    plan = run.plan.with_inputs({**(run.plan.inputs or {}), "binding": []})
    table = build_report(plan, run.catalog).tables["binding"]
    assert table.frame.empty and "No limit binds" in table.empty_text


# -- formats, CLI, packaging ------------------------------------------------------------------


def test_format_list_is_checked() -> None:
    assert parse_formats("html, PDF,html") == ["html", "pdf"]
    with pytest.raises(PlannerInputError, match="docx"):
        parse_formats("html,docx")


def test_pdf_without_a_renderer_says_how_to_get_one(
    run: PlanRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import planner.report.pdf as pdf

    monkeypatch.setattr(pdf, "pdf_renderer", lambda: None)
    with pytest.raises(PlannerInputError, match="apt-get install chromium"):
        write_reports(run.plan, tmp_path, ["pdf"], run.catalog)


def test_templates_are_found() -> None:
    assert (templates_dir() / "report.html.j2").is_file()
    assert (templates_dir() / "report.css").is_file()


def test_report_command(run: PlanRun, tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from planner.cli_report import register

    app = typer.Typer()

    @app.callback()
    def _root() -> None: ...

    register(app)
    folder = run.plan.write_tables(tmp_path / "plan")
    run.explanation.to_csv(folder / "unserved_explained.csv", index=False)
    result = CliRunner().invoke(app, ["report", str(folder / "plan.json"), "--format", "md,json"])
    assert result.exit_code == 0, result.output
    assert (folder / "report.md").is_file() and (folder / "report.json").is_file()
    assert "0.5 ms" in (folder / "report.md").read_text()  # read the sidecar diagnosis
    bad = CliRunner().invoke(app, ["report", str(folder / "plan.json"), "--format", "doc"])
    assert bad.exit_code == 2
    missing = CliRunner().invoke(app, ["report", str(tmp_path / "nope.json")])
    assert missing.exit_code == 2
    (tmp_path / "junk.json").write_text("{}")
    junk = CliRunner().invoke(app, ["report", str(tmp_path / "junk.json")])
    assert junk.exit_code == 2 and "plan.json written by" in junk.output


def test_report_command_takes_the_plan_folder_and_keeps_reports_already_there(
    run: PlanRun, tmp_path: Path
) -> None:
    """`planner plan` prints the folder it wrote: PLAN_JSON may be that folder. A report
    already in the target folder is not overwritten without --force."""
    import typer
    from typer.testing import CliRunner

    from planner.cli_report import register

    app = typer.Typer()

    @app.callback()
    def _root() -> None: ...

    register(app)
    folder = run.plan.write_tables(tmp_path / "plan")
    edited = folder / "report.md"
    edited.write_text("my notes")
    kept = CliRunner().invoke(app, ["report", str(folder), "--format", "md,json"])
    assert kept.exit_code == 2 and "report.md" in kept.output and "--force" in kept.output
    assert edited.read_text() == "my notes" and not (folder / "report.json").exists()
    elsewhere = CliRunner().invoke(app, ["report", str(folder), "--format", "md", "--out",
                                         str(tmp_path / "other")])  # fmt: skip
    assert elsewhere.exit_code == 0, elsewhere.output
    assert edited.read_text() == "my notes" and (tmp_path / "other" / "report.md").is_file()
    forced = CliRunner().invoke(app, ["report", str(folder), "--format", "md", "--force"])
    assert forced.exit_code == 0, forced.output
    assert edited.read_text() == (tmp_path / "other" / "report.md").read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = CliRunner().invoke(app, ["report", str(empty)])
    assert nothing.exit_code == 2 and "no such file" in nothing.output
    assert str(empty / "plan.json") in nothing.output.replace("\n", "")


def test_plan_round_trip_reports_the_same(run: PlanRun, tmp_path: Path) -> None:
    again = Plan.from_json(run.plan.to_json())
    a = build_report(run.plan, run.catalog).to_dict()
    b = build_report(again, run.catalog).to_dict()
    assert a == b


# -- a real browser ---------------------------------------------------------------------------


def test_html_renders_in_headless_chromium(
    run: PlanRun, reports: dict[str, Path], tmp_path: Path
) -> None:
    _need_chromium()
    import matplotlib.image as mpimg

    png = screenshot(reports["html"], tmp_path / "shot.png", 1280, 2000)
    pixels = mpimg.imread(png)[..., :3]
    assert pixels.shape[:2] == (2000, 1280)
    ink = (pixels.mean(axis=2) < 0.9).mean()
    assert ink > 0.02, f"screenshot is nearly blank ({ink:.2%} of pixels not white)"
    assert pixels.std() > 0.05

    dom = dump_dom(reports["html"])
    assert "<script" not in dom.lower()
    bom_html = dom[dom.index('id="bom"') : dom.index("</table>", dom.index('id="bom"'))]
    buys = run.plan.purchases[run.plan.purchases["units"] > 0]
    for r in buys.itertuples():
        assert f">{r.sku}<" in bom_html and f">{r.period}<" in bom_html
    total = f"{run.plan.purchases['capex_usd'].sum():,.0f}"
    assert f">{total}<" in bom_html.split("<tfoot>")[1]


def test_pdf_prints_from_the_html(run: PlanRun, tmp_path: Path) -> None:
    _need_chromium()
    (pdf,) = write_reports(run.plan, tmp_path, ["pdf"], run.catalog)
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 20_000
    assert not (tmp_path / "report.html").exists()  # only what was asked for


# -- the report worker `planner plan` runs beside the solve ------------------------------------


def test_chart_cache_reuses_unchanged_charts_and_redraws_changed_ones(run: PlanRun) -> None:
    from planner.report.build import chart_specs
    from planner.report.charts import ChartCache, render_charts, same_spec

    specs = build_report(run.plan, run.catalog).charts
    alone = chart_specs(run.plan, run.catalog)  # what the worker draws from its draft
    assert alone.keys() == specs.keys()
    assert all(same_spec(alone[k], specs[k]) for k in specs)
    cache = ChartCache()
    first = cache.render(specs)
    assert set(first) == set(specs)
    again = cache.render(specs)
    assert all(again[k] is first[k] for k in first)  # the same bytes object: not redrawn
    power = specs["power"]
    doubled = {**specs, "power": {**power, "frame": power["frame"].assign(it_mw=power["frame"]["it_mw"] * 2)}}  # fmt: skip
    third = cache.render(doubled)
    assert third["fleet"] is first["fleet"]
    assert third["power"] != first["power"]
    assert third["power"] == render_charts({"power": doubled["power"]})["power"]


def test_report_worker_writes_the_reports_planner_plan_would_write_in_process(
    run: PlanRun, tmp_path: Path
) -> None:
    """The worker reads the saved folder and its sidecars (unserved_explained.csv,
    verify.json) where the in-process writer has them in memory, and draws its charts from
    a draft. Given a stale draft (its fleet doubled), it must still write byte-identical
    HTML and Markdown to the in-process fallback."""
    from planner.cli_plan import _write_plan_folder
    from planner.cli_report import write_plan_reports
    from planner.report_worker import ReportWorker

    worker_dir, here_dir = tmp_path / "worker", tmp_path / "here"
    for folder in (worker_dir, here_dir):
        _write_plan_folder(run, folder)
    assert (worker_dir / "unserved_explained.csv").is_file()  # the sidecar path is exercised
    stale = dataclasses.replace(
        run.plan, fleet=run.plan.fleet.assign(owned_chips=run.plan.fleet["owned_chips"] * 2)
    )
    worker = ReportWorker.start()
    assert worker is not None
    with worker:
        worker.draft(stale)
        worker.submit(worker_dir)
        paths = worker.result()
    assert paths is not None, worker.error
    assert sorted(p.name for p in paths) == ["report.html", "report.md", "report.xlsx"]
    write_plan_reports(run, here_dir)
    for name in ("report.html", "report.md"):
        assert (worker_dir / name).read_bytes() == (here_dir / name).read_bytes(), name


def test_report_worker_never_asked_is_stopped_at_once() -> None:
    from planner.report_worker import ReportWorker

    worker = ReportWorker.start()
    assert worker is not None and worker.returncode is None
    worker.close()
    assert worker.returncode is not None


@pytest.mark.parametrize(
    ("argv", "starts"),
    [
        (["plan"], True),
        (["--debug", "plan", "demand.csv", "--out", "x"], True),
        (["plan", "--no-report"], False),
        (["plan", "--no-write"], False),
        (["plan", "--pareto=3"], False),
        (["plan", "--pareto", "3"], False),
        (["plan", "-h"], False),
        (["report", "plan.json"], False),
        ([], False),
    ],
)
def test_launcher_prestarts_a_worker_only_for_a_plan_that_writes_reports(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], starts: bool
) -> None:
    from planner import report_worker

    started: list[object] = []
    monkeypatch.setattr(report_worker.ReportWorker, "start", classmethod(
        lambda cls: started.append(1) or None))  # fmt: skip
    report_worker.prestart(argv)
    assert bool(started) is starts
    monkeypatch.setenv(report_worker.ENV_SWITCH, "0")
    report_worker.prestart(argv)  # switched off: never
    assert len(started) == int(starts)


def test_prestarted_worker_is_taken_once_and_an_untaken_one_is_stopped() -> None:
    from planner import report_worker

    report_worker.prestart(["plan"])
    taken = report_worker.take_prestarted()
    assert taken is not None and taken.returncode is None
    assert report_worker.take_prestarted() is None  # handed over once
    taken.close()
    report_worker.prestart(["plan"])
    (untaken,) = report_worker._prestarted
    report_worker.discard_prestarted()
    assert untaken.returncode is not None and not report_worker._prestarted


def test_planner_command_writes_reports_with_the_prestarted_worker(tmp_path: Path) -> None:
    """`python -m planner plan` (the launcher, as the `planner` script) end to end: the
    worker it starts before the CLI loads writes the three reports; a usage error exits 2
    without waiting on it."""
    import subprocess
    import sys

    demand = tmp_path / "tiny.csv"
    demand.write_text(DEMAND)
    out = tmp_path / "plan"
    done = subprocess.run(
        [sys.executable, "-m", "planner", "plan", str(demand), "--out", str(out), "--no-compare"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr  # the impossible workload stays unserved
    assert "report worker" not in done.stderr  # written by the worker, no fallback
    assert {"report.html", "report.md", "report.xlsx"} <= {p.name for p in out.iterdir()}
    bad = subprocess.run(
        [sys.executable, "-m", "planner", "plan", "--objective-typo", "cost"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and "objective-typo" in bad.stderr


def test_planner_plan_writes_the_reports_itself_when_the_worker_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sys

    from typer.testing import CliRunner

    from planner import report_worker
    from planner.cli import app

    monkeypatch.setattr(report_worker, "COMMAND", [sys.executable, "-c", "import sys; sys.exit(7)"])
    demand = tmp_path / "tiny.csv"
    demand.write_text(DEMAND)
    out = tmp_path / "plan"
    res = CliRunner().invoke(app, ["plan", str(demand), "--out", str(out), "--no-compare"])
    assert res.exit_code == 3, res.output  # the impossible workload stays unserved
    assert "report worker" in res.output + (res.stderr if hasattr(res, "stderr") else "")
    assert {"report.html", "report.md", "report.xlsx"} <= {p.name for p in out.iterdir()}
    assert "buy" in (out / "report.md").read_text().lower()


def test_frontier_cache_recomputes_only_when_a_drawn_pool_changes(
    run: PlanRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    import copy

    from planner.report import operating
    from planner.report.view import PlanView

    calls: list[int] = []
    real = operating.frontier_curves
    monkeypatch.setattr(operating, "frontier_curves", lambda v: calls.append(1) or real(v))
    cache = operating.FrontierCache()
    first = cache.curves(PlanView(run.plan, run.catalog))
    again = cache.curves(PlanView(run.plan, run.catalog))
    assert len(calls) == 1 and again[0] is first[0]
    assert not first[0].frame.empty  # the fixture plan has decode pools to draw
    inputs = copy.deepcopy(run.plan.inputs)
    drawn = {(c, w) for c, w in operating._decode_pools(PlanView(run.plan, run.catalog))}
    row = next(
        r
        for r in inputs["rows"]
        if (r["candidate"], r["workload"]) in drawn and r["phase"] == "decode"
    )
    row["batch"] = max(1, int(row["batch"]) // 2)  # the plan runs that pool at another batch
    changed = cache.curves(PlanView(dataclasses.replace(run.plan, inputs=inputs), run.catalog))
    assert len(calls) == 2
    assert changed[0].frame.equals(
        real(PlanView(dataclasses.replace(run.plan, inputs=inputs), run.catalog))[0].frame
    )


def test_placement_names_the_draft_acceptance_each_workload_is_planned_at(tmp_path: Path) -> None:
    """Speculative decode rows say which acceptance their rate assumes: the workload's own
    (demand CSV spec_acceptance) or the scenario's."""
    rows = [{"period": p, "workload": w, "model": m, "requests_per_s": r, "prompt_tokens": 1000,
             "output_tokens": 200, "ttft_ms": 2000, "tpot_ms": 30, "percentile": 99,
             "precision": "fp8", "spec_acceptance": a}
            for p in ("2027Q1", "2027Q2")
            for w, m, r, a in (("chat", "llama-3.1-70b", 6, 0.9), ("small", "llama-3.1-8b", 20, ""))]  # fmt: skip
    path = tmp_path / "acc.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    sc = Scenario(topologies=["spec"], allowed_skus=["h100-sxm", "b200"], spec_acceptance=0.6)
    planned = run_planning(path, sc, explain=False)
    assert planned.verification.passed
    placement = build_report(planned.plan, planned.catalog).tables["placement"].frame
    decode = placement[placement["phase"] == "decode"].set_index("workload")["draft"]
    assert decode.loc[["chat"]].str.contains(" a=0.9").all()
    assert decode.loc[["small"]].str.contains(" a=0.6").all()


def test_a_workload_counts_as_split_when_any_of_its_load_crosses_hardware() -> None:
    """Fluid routing: requests can keep both phases on one SKU only if, per hardware set,
    prefill and decode loads are equal. 86 % of chat in a PD split (prefill pool on b200,
    decode on b300) beside 14 % colocated on b200 is split, though both phases touch b200."""
    from types import SimpleNamespace

    from planner.report.narrative import _split_workloads

    units = {"col-b200": {"b200": 1}, "pre-b200": {"b200": 1}, "dec-b300": {"b300": 1},
             "col-b300": {"b300": 2}, "dec-b200": {"b200": 1}}  # fmt: skip
    rows = [
        ("chat", "q1", "prefill", "col-b200", 8.8), ("chat", "q1", "decode", "col-b200", 8.8),
        ("chat", "q1", "prefill", "pre-b200", 56.2), ("chat", "q1", "decode", "dec-b300", 56.2),
        # same SKU on both sides of a PD split: not split
        ("code", "q1", "prefill", "pre-b200", 5.0), ("code", "q1", "decode", "dec-b200", 5.0),
        ("voice", "q1", "prefill", "col-b300", 3.0), ("voice", "q1", "decode", "col-b300", 3.0),
    ]  # fmt: skip
    routing = pd.DataFrame(rows, columns=["workload", "period", "phase", "candidate", "load_rps"])
    view = SimpleNamespace(plan=SimpleNamespace(routing=routing), units=lambda c: units[c])
    assert _split_workloads(view) == (1, 3)
    # half of code's decode moves to b300: its b200 prefill now feeds b300 decode too
    moved = routing.copy()
    moved.loc[(moved["workload"] == "code") & (moved["phase"] == "decode"), "load_rps"] = 2.5
    extra = pd.DataFrame([("code", "q1", "decode", "dec-b300", 2.5)], columns=routing.columns)
    view.plan.routing = pd.concat([moved, extra], ignore_index=True)
    assert _split_workloads(view) == (2, 3)


def test_status_paragraph_of_an_unproven_power_plan_bounds_the_peak_in_mw(run: PlanRun) -> None:
    """Objective "power": objective and bound are the peak stage's MW, not dollars."""
    from planner.report.narrative import status_paragraph
    from planner.report.view import PlanView

    settings = run.plan.settings.model_copy(update={"objective": "power"})
    plan = dataclasses.replace(
        run.plan, settings=settings, status="feasible_at_limit", objective=0.0150, bound=0.0123,
        gap=0.18, message="time limit",
    )  # fmt: skip
    text = status_paragraph(PlanView(plan, run.catalog), None)
    assert "no plan peaks below 0.0123 MW" in text
    assert "USD" not in text and "costs less" not in text
    cost = status_paragraph(
        PlanView(dataclasses.replace(plan, settings=run.plan.settings), None), None
    )
    assert "no plan costs less than" in cost
