"""Plan (+ catalog) -> Report: the tables and text every format renders. Never solves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from planner.catalog import Catalog, load_catalog
from planner.plan import Plan
from planner.report import diagnosis, economics, narrative, placement, procurement, provenance
from planner.report.model import Report, ReportTable, Section
from planner.report.operating import FrontierCache, frontier_curves
from planner.report.speculation import acceptance_table
from planner.report.view import PlanView


def report_catalog(plan: Plan, catalog: Catalog | None) -> tuple[Catalog | None, list[str]]:
    """The catalog with the plan's scenario overrides applied (prices it was planned with)."""
    notes: list[str] = []
    if catalog is None:
        try:
            catalog = load_catalog()
        except Exception as exc:  # the report still renders the plan's own numbers
            return None, [f"catalog not loaded ({exc}); provenance and frontier omitted"]
    scenario = (plan.inputs or {}).get("scenario")
    if scenario:
        from planner.scenario import Scenario, apply_overrides

        try:
            catalog = apply_overrides(catalog, Scenario.model_validate(scenario), "plan.json")
        except Exception as exc:
            notes.append(f"scenario overrides not applied to catalog figures ({exc})")
    return catalog, notes


def build_report(
    plan: Plan,
    catalog: Catalog | None = None,
    *,
    explanation: pd.DataFrame | None = None,
    verification: dict[str, Any] | None = None,
    calibration_path: Path | None = None,
    frontier_cache: FrontierCache | None = None,
) -> Report:
    """Every table and paragraph of the report, from the plan (and the catalog for sources).

    explanation: the unserved diagnosis `planner plan` computes (unserved_explained.csv);
    verification: verify.json's summary. Both optional; the report says what it lacks.
    frontier_cache: curves computed for an earlier build with the same decode pools.
    """
    catalog, notes = report_catalog(plan, catalog)
    view = PlanView(plan, catalog)
    cached = frontier_cache.curves if frontier_cache is not None else frontier_curves
    frontier, frontier_notes = cached(view)
    speculation = (
        frontier_cache.speculation.table(view)
        if frontier_cache is not None
        else acceptance_table(view)
    )
    cost_per_token, cost_per_token_by_period = economics.cost_per_token_tables(view)
    tables = [
        procurement.buy_schedule_table(view),
        cost_per_token,
        diagnosis.unserved_table(view, explanation),
        procurement.bom_table(view),
        procurement.rentals_table(view),
        procurement.existing_table(view),
        procurement.fleet_schedule_table(view),
        placement.placement_table(view),
        placement.sla_table(view),
        placement.utilization_table(view),
        economics.power_table(view),
        economics.costs_table(view),
        diagnosis.recorded_binding(view) or diagnosis.limits_at_bound(view),
        diagnosis.comparisons_table(view),
        speculation,
        provenance.settings_table(view),
        provenance.solver_table(view),
        provenance.catalog_table(view),
        provenance.calibration_table(view, provenance.load_calibration(calibration_path)),
        placement.routing_table(view),
        cost_per_token_by_period,
        frontier,
    ]
    by_key = {t.key: t for t in tables if t is not None}
    return Report(
        title=f"Fleet plan: {Path(str(view.inputs.get('demand_source', 'plan'))).name}",
        meta=_meta(view),
        figures=narrative.figures(view),
        warnings=narrative.warnings(view, notes + frontier_notes),
        sections=_sections(view, by_key, verification),
        tables=by_key,
        charts=_charts(view, by_key),
    )


def chart_specs(
    plan: Plan, catalog: Catalog | None = None, *, frontier_cache: FrontierCache | None = None
) -> dict[str, dict[str, Any]]:
    """Report.charts alone: the four tables the charts draw, none of the rest (the report
    worker draws the charts from a draft of the plan while the parent still verifies)."""
    catalog, _ = report_catalog(plan, catalog)
    view = PlanView(plan, catalog)
    curves = frontier_cache.curves if frontier_cache is not None else frontier_curves
    tables = [
        procurement.fleet_schedule_table(view),
        economics.costs_table(view),
        economics.power_table(view),
        curves(view)[0],
    ]
    return _charts(view, {t.key: t for t in tables})


def _meta(view: PlanView) -> list[tuple[str, str]]:
    p = view.plan
    horizon = (
        f"{view.periods[0]} to {view.periods[-1]} ({len(view.periods)} periods)"
        if view.periods
        else "-"
    )
    gap = f", gap {p.gap:.2%}" if p.gap is not None else ""
    return [
        ("Demand", str(view.inputs.get("demand_source", "not recorded"))),
        ("Scenario", str(view.inputs.get("scenario", {}).get("name", "-"))),
        ("Horizon", horizon),
        ("Objective", f"minimum {p.settings.objective} ({p.settings.cost_basis} cost basis)"),
        ("Solver", f"{p.status}{gap}"),
        ("Plan created", str(view.inputs.get("created_utc", "-"))),
    ]


def _sections(
    view: PlanView, t: dict[str, ReportTable], verification: dict[str, Any] | None
) -> list[Section]:
    has = [k for k in ("binding", "limits_at_bound") if k in t]
    binding_text = (
        []
        if "binding" in t
        else [
            f"Which constraints bind and what relaxing each would save: {diagnosis.NOT_COMPUTED} "
            "(the planner records shadow prices as inputs.binding). The limits the plan's "
            "own tables show at their bound are listed below."
        ]
    )
    comparison_text = (
        []
        if "comparisons" in t
        else [
            f"Comparison with the best single-SKU fleet and a GPU-only fleet: {diagnosis.NOT_COMPUTED}."
        ]
    )
    return [
        Section("summary", "Executive summary",
                [narrative.status_paragraph(view, verification), narrative.why_this_mix(view)],
                ["buy_schedule", "cost_per_token", "unserved"]),
        Section("bom", "Bill of materials", [], ["bom", "rentals", "existing_fleet", "fleet_schedule"],
                ["fleet"]),
        Section("placement", "Placement and SLA", [], ["placement", "sla", "speculation"],
                ["frontier"]),
        Section("utilization", "Utilization and power", [], ["utilization", "power"], ["power"]),
        Section("costs", "Costs", [], ["costs"], ["costs"]),
        Section("binding", "What binds", binding_text, has),
        Section("comparisons", "Comparison with simpler fleets", comparison_text,
                ["comparisons"] if "comparisons" in t else []),
        Section("assumptions", "Assumptions and provenance", [], ["assumptions", "solver", "catalog", "calibration"]),
    ]  # fmt: skip


def _charts(view: PlanView, t: dict[str, ReportTable]) -> dict[str, dict[str, Any]]:
    """Chart key -> the data it is drawn from (charts.render_charts draws them)."""
    return {
        "fleet": {"title": "Chips in service per period, by SKU",
                  "frame": t["fleet_schedule"].frame, "periods": view.periods},
        "costs": {"title": "Cost per period", "frame": t["costs"].frame, "periods": view.periods},
        "power": {"title": "Facility power against the budget", "frame": t["power"].frame,
                  "periods": view.periods},
        "frontier": {"title": "Token economics of the decode pools (stars: chosen operating points)",
                     "frame": t["frontier"].frame},
    }  # fmt: skip
