"""What binds, how the plan compares with simpler fleets, and what is unserved and why.

These render what the plan records (`inputs.binding`, `inputs.comparisons`, and the
unserved diagnosis `planner plan` writes); the report never re-solves to fill a gap, it
says the figure was not computed.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from planner.report.model import ReportTable
from planner.report.view import TOL, PlanView

NOT_COMPUTED = "not computed for this plan"


BINDING_ORDER = ["constraint", "index", "period", "value", "limit", "unit", "binds",
                 "saving_if_lifted_usd", "unserved_rps_if_lifted", "dual_usd_per_unit", "note"]  # fmt: skip
BINDING_HIDDEN = {"row"}  # the solver's row name; "index" says the same for people


def recorded_binding(view: PlanView) -> ReportTable | None:
    """The planner's record of what binds (inputs.binding), or None if it has none."""
    raw = view.inputs.get("binding")
    if raw is None:
        return None
    frame = pd.DataFrame(list(raw))
    keys = [k for k in BINDING_ORDER if k in frame.columns]
    keys += [k for k in frame.columns if k not in keys and k not in BINDING_HIDDEN]
    frame = frame.reindex(columns=keys or ["constraint", "note"])
    frame = _limits_first(frame)
    if "saving_if_lifted_usd" in frame and "unserved_rps_if_lifted" in frame:
        frame.insert(
            frame.columns.get_loc("saving_if_lifted_usd") + 1,
            "cost_change_if_lifted_usd",
            [
                lifted_cost_change_usd(view, r)
                if pd.notna(r.get("saving_if_lifted_usd"))
                else math.nan
                for r in frame.to_dict(orient="records")
            ],
        )
    return ReportTable(
        "binding",
        "Constraints at their limit, and what relaxing each is worth",
        frame.reset_index(drop=True),
        note="As the planner recorded them. saving if lifted: the plan re-solved with that limit "
        "removed (objective including the unserved penalty); cost change if lifted: the same "
        "without the penalty (real money; positive where serving more costs more). dual: the change in the "
        "objective per unit of the limit, from the LP with the integer decisions fixed; for "
        '"serving one more request/s" it is the marginal cost of demand (it equals the '
        "unserved penalty where demand is unserved, or where the period's instances are full: "
        "with them held, one more request/s could only go unserved).",
        empty_text="No limit binds: the plan is limited by demand and prices only.",
    )


def lifted_cost_change_usd(view: PlanView, b: dict[str, Any]) -> float:
    """Cost (without the unserved penalty) of the plan re-solved with the limit lifted,
    minus this plan's; the planner records the saving in objective terms (with penalty)."""
    penalty = view.plan.penalty_usd_per_rps
    base = view.plan.total_cost_usd + penalty * view.plan.unserved_rps
    lost_after = float(b.get("unserved_rps_if_lifted") or 0.0)
    return base - float(b["saving_if_lifted_usd"]) - penalty * lost_after - view.plan.total_cost_usd


def _limits_first(frame: pd.DataFrame) -> pd.DataFrame:
    """Re-solved limits (largest saving first), then LP duals (largest magnitude first)."""
    nan = pd.Series(math.nan, index=frame.index)
    saving = frame.get("saving_if_lifted_usd", nan)
    dual = frame.get("dual_usd_per_unit", nan)
    keys = pd.DataFrame({"dual_row": saving.isna(), "saving": -saving.fillna(0.0),
                         "dual": -dual.abs().fillna(0.0)})  # fmt: skip
    order = keys.sort_values(["dual_row", "saving", "dual"], kind="stable").index
    return frame.loc[order].reset_index(drop=True)


def limits_at_bound(view: PlanView) -> ReportTable:
    """Limits the plan itself shows at their bound (no shadow prices: those need the solver)."""
    st, p = view.plan.settings, view.plan
    rows: list[dict[str, Any]] = []
    for r in p.power.itertuples(index=False):
        if math.isfinite(r.budget_mw) and r.facility_mw >= r.budget_mw * (1 - 1e-6) - 1e-9:
            rows.append(_at("power budget", r.period, r.facility_mw, r.budget_mw, "MW"))
    if st.peak_power_cap_mw is not None:
        peak = float(p.power["facility_mw"].max()) if len(p.power) else 0.0
        if peak >= st.peak_power_cap_mw * (1 - 1e-6):
            rows.append(_at("peak power cap", "all", peak, st.peak_power_cap_mw, "MW"))
    paid = p.purchases.groupby("period")["capex_usd"].sum()
    if st.capex_budget_usd is not None and paid.sum() >= st.capex_budget_usd * (1 - 1e-6) - 1:
        rows.append(_at("capex budget", "all", float(paid.sum()), st.capex_budget_usd, "USD"))
    if st.capex_budget_usd_per_period is not None:
        for t, v in paid.items():
            if v >= st.capex_budget_usd_per_period * (1 - 1e-6) - 1:
                rows.append(_at("capex budget per period", str(t), float(v),
                                st.capex_budget_usd_per_period, "USD"))  # fmt: skip
    caps = (view.inputs.get("scenario") or {}).get("supply_cap_units_per_period") or {}
    for b in p.purchases.itertuples(index=False):
        if b.sku in caps and b.units >= caps[b.sku] - 1e-9:
            rows.append(
                _at(f"supply cap {b.sku}", b.period, float(b.units), float(caps[b.sku]), "units")
            )
    at_cap = p.utilization[p.utilization["busy_fraction"] >= st.util_max - 1e-6]
    if len(p.utilization):
        rows.append(_at("utilization cap (pools at it)", "all", float(len(at_cap)),
                        float(len(p.utilization)), "pool-periods"))  # fmt: skip
    frame = pd.DataFrame(rows, columns=["constraint", "period", "value", "limit", "unit"])
    return ReportTable(
        "limits_at_bound",
        "Limits at their bound in this plan",
        frame,
        note="Read from the plan's own tables. What relaxing each would save (its shadow "
        f"price) is {NOT_COMPUTED}.",
        empty_text="No budget, power or supply limit is at its bound.",
    )


def _at(name: str, period: str, value: float, limit: float, unit: str) -> dict[str, Any]:
    return {"constraint": name, "period": period, "value": value, "limit": limit, "unit": unit}


def comparisons_table(view: PlanView) -> ReportTable | None:
    raw = view.inputs.get("comparisons")
    if raw is None:
        return None
    frame = pd.DataFrame(list(raw)).reindex(
        columns=["fleet", "status", "total_cost_usd", "peak_facility_mw", "unserved_rps", "skus"]
    )
    frame["skus"] = frame["skus"].map(
        lambda v: ", ".join(map(str, v)) if isinstance(v, list) else v
    )
    mine = view.plan.total_cost_usd
    frame["extra_cost_vs_this_plan_usd"] = frame["total_cost_usd"].astype(float) - mine
    frame["extra_cost_vs_this_plan_pct"] = (
        100.0 * frame["extra_cost_vs_this_plan_usd"] / mine if mine else math.nan
    )
    return ReportTable(
        "comparisons",
        "Comparison with simpler fleets",
        frame,
        note="As the planner recorded them: the same demand and settings, solved with one SKU "
        "only (the best such) and with GPUs only. A fleet that leaves demand unserved is not a "
        "like-for-like saving.",
        empty_text="The planner recorded no comparison fleets.",
    )


# --------------------------------------------------------------------------------------
# Unserved
# --------------------------------------------------------------------------------------


def unserved_table(view: PlanView, explanation: pd.DataFrame | None) -> ReportTable:
    """Per workload left (partly) unserved: how much, when, and why."""
    rows = _no_solution_rows(view) if not view.has_solution else _unserved_rows(view, explanation)
    frame = pd.DataFrame(
        rows,
        columns=["workload", "periods", "unserved_peak_rps", "unserved_share_pct", "cause", "why"],
    )
    return ReportTable(
        "unserved",
        "Unserved demand",
        frame,
        note="unserved peak: the largest unserved rate in any of the periods listed; share: of "
        "that period's demand.",
        empty_text="All demand is served.",
    )


def _no_solution_rows(view: PlanView) -> list[dict[str, Any]]:
    why = f"the solver returned no plan (status {view.plan.status}: {view.plan.message})"
    rows = []
    for w, g in view.demand.groupby("workload", sort=False):
        rows.append({
            "workload": w, "periods": ", ".join(g["period"]), "unserved_peak_rps": float(g["requests_per_s"].max()),
            "unserved_share_pct": 100.0, "cause": "no solution", "why": why,
        })  # fmt: skip
    return rows


def _unserved_rows(view: PlanView, explanation: pd.DataFrame | None) -> list[dict[str, Any]]:
    u = view.plan.unserved[view.plan.unserved["requests_per_s"] > TOL]
    recorded = _recorded_explanation(view, explanation)
    rows = []
    for w, g in u.groupby("workload", sort=False):
        worst = g.loc[g["requests_per_s"].idxmax()]
        causes = recorded.get(str(w)) or [_infer_cause(view, str(w), list(g["period"]))]
        for cause, why in causes:
            rows.append({
                "workload": w, "periods": ", ".join(g["period"]),
                "unserved_peak_rps": float(worst["requests_per_s"]),
                "unserved_share_pct": 100.0 * float(worst["share"]), "cause": cause, "why": why,
            })  # fmt: skip
    return rows


def _recorded_explanation(
    view: PlanView, explanation: pd.DataFrame | None
) -> dict[str, list[tuple[str, str]]]:
    """workload -> [(cause, detail)] from the diagnosis `planner plan` made, if any."""
    frame = explanation
    if (frame is None or frame.empty) and view.inputs.get("unserved_explained"):
        frame = pd.DataFrame(view.inputs["unserved_explained"])
    if frame is None or frame.empty or "workload" not in frame:
        return {}
    out: dict[str, list[tuple[str, str]]] = {}
    for r in frame.to_dict(orient="records"):
        cause = str(r.get("cause") or "")
        detail = str(r.get("detail") or "")
        if r.get("periods") and isinstance(r["periods"], str):
            detail = f"{detail} ({r['periods']})"
        out.setdefault(str(r["workload"]), []).append((cause, detail))
    return out


def _infer_cause(view: PlanView, workload: str, periods: list[str]) -> tuple[str, str]:
    """What the plan file alone can say about why a workload is unserved."""
    wl = view.workloads.get(workload, {})
    for best in view.inputs.get("best_reachable", []):
        if best.get("workload") != workload:
            continue
        misses = []
        if best.get("best_tpot_ms") is not None and best["best_tpot_ms"] > float(
            wl.get("tpot_ms", math.inf)
        ):
            misses.append(f"the best TPOT any SKU reaches is {best['best_tpot_ms']:.3g} ms "
                          f"({best.get('tpot_where')}) against the {wl['tpot_ms']:g} ms SLA")  # fmt: skip
        if best.get("best_ttft_ms") is not None and best["best_ttft_ms"] > float(
            wl.get("ttft_ms", math.inf)
        ):
            misses.append(f"the best zero-load TTFT (prefill + serving overhead) any SKU reaches is {best['best_ttft_ms']:.3g} ms "
                          f"({best.get('ttft_where')}) against the {wl['ttft_ms']:g} ms TTFT SLA")  # fmt: skip
        if misses:
            return "no_candidate", "no hardware meets the SLA: " + "; ".join(misses)
    binding = [r["constraint"] for r in limits_at_bound(view).records()
               if r["period"] in (*periods, "all") and not r["constraint"].startswith("utilization")]  # fmt: skip
    if binding:
        return "limit", "at its bound in these periods: " + ", ".join(sorted(set(binding)))
    return (
        "not diagnosed",
        "the plan file records no diagnosis; `planner plan` writes unserved_explained.csv "
        "(lead times and availability are the usual cause in the first periods)",
    )
