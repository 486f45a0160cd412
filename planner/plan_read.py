"""Reading a solved planning model into a `Plan`, and explaining what a plan leaves unserved.

Kept apart from planner.plan because it needs Pyomo and the solver, and a saved plan does
not: `planner report` reads plan.json without loading either.

`explain_unserved` says, per workload left unserved, why: no candidate serves a phase, no
SKU it needs can be in the fleet by then, or a budget / power / supply limit binds (found
by re-solving with that limit lifted, and sized by re-solving for the smallest value of the
limit that serves everything the lifted plan serves).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd

from planner.formulation import PHASES, ModelSets, build_model, prepare_sets, usable_rates
from planner.model_data import PlanningData, Settings
from planner.plan import TABLE_SCHEMAS, TOL, Plan, finite_or_none, schema_table
from planner.pyomo_env import pyo
from planner.solve import (
    TIME_SPENT,
    SolveResult,
    SolverProfile,
    copy_values,
    load_profile,
    solve,
    time_for_follow_up,
)


def read_plan(model: pyo.ConcreteModel, data: PlanningData, result: SolveResult) -> Plan:
    """Read the solved model's variables into a Plan's tables."""
    s: ModelSets = model.sets
    tables: dict[str, pd.DataFrame]
    if result.has_solution:
        tables = _tables(model, data, s)
    else:
        tables = {name: schema_table(name, []) for name in TABLE_SCHEMAS}
    return Plan(
        status=result.status,
        objective=finite_or_none(result.objective),
        bound=finite_or_none(result.bound),
        gap=finite_or_none(result.gap),
        message=result.message,
        timings=dict(result.timings),
        settings=data.settings,
        penalty_usd_per_rps=s.penalty_usd_per_rps,
        instances_relaxed=data.settings.relax_instances,
        shortfall_proven=result.shortfall_proven,
        **tables,
    )


def solve_plan(
    data: PlanningData,
    profile: SolverProfile | str = "default",
    *,
    start_from: pyo.ConcreteModel | None = None,
) -> Plan:
    """Build, solve and read a Plan in one call.

    `start_from`: a solved model whose plan is feasible in `data` too (the same candidates
    under looser limits, as planning.limit_savings lifts them); its values are the MIP
    start (solve's warm_start). An infeasible start is dropped, so it only ever helps."""
    if start_from is None:
        result = solve(data, profile)
    else:
        model = build_model(data)
        copy_values(start_from, model)
        result = solve(model, profile, warm_start=True)
    assert result.model is not None
    return Plan.from_solution(result.model, data, result)


# --------------------------------------------------------------------------------------
# Reading the model
# --------------------------------------------------------------------------------------


def rounded_off(x: float | None, tol: float = 1e-9) -> float:
    """0 for solver noise around zero (and no value): an expression that nets chips against
    each other (facility power less provider-powered rentals) lands at -1e-12, which
    prints as -0."""
    return 0.0 if x is None or abs(x) < tol else float(x)


def _val(v: Any) -> float:
    return rounded_off(v.value)


def _values(var: Any) -> list[tuple[Any, float]]:
    return [(k, _val(v)) for k, v in var.items()]


def _tables(m: pyo.ConcreteModel, data: PlanningData, s: ModelSets) -> dict[str, pd.DataFrame]:
    counts = np.array([_val(v) for v in m.v_instances.values()], dtype=float)
    instances = dict(zip(s.instances_ct, counts.tolist(), strict=True))
    return {
        "purchases": _purchases(m, s),
        "rentals": _rentals(m, s),
        "fleet": _fleet(m, data, s, counts),
        "instances": schema_table(
            "instances", [(c, t, n) for (c, t), n in instances.items() if n > TOL]
        ),
        "routing": _routing(m, s),
        "unserved": schema_table(
            "unserved",
            [(w, t, u, u / s.demand_wt[(w, t)]) for (w, t), u in _values(m.v_unserved) if u > TOL],
        ),
        "costs": _costs(m, s),
        "power": _power(m, s),
        "utilization": _utilization(m, s, counts),
        "rounding": _rounding(s, instances),
    }


def _power(m: pyo.ConcreteModel, s: ModelSets) -> pd.DataFrame:
    budget = s.settings.power_budget_mw
    rows = []
    for t in s.periods:
        mw = rounded_off(pyo.value(m.e_power_mw[t]))
        rows.append((t, mw / s.settings.pue, mw, math.nan if budget is None else budget))
    return schema_table("power", rows)


def _purchases(m: pyo.ConcreteModel, s: ModelSets) -> pd.DataFrame:
    rows = []
    for (h, t), units in _values(m.v_buy):
        if units > TOL:
            n = round(units)
            rows.append((h, t, n, n * s.chips_per_unit_h[h], n * s.price_h[h]))
    return schema_table("purchases", rows)


def _rentals(m: pyo.ConcreteModel, s: ModelSets) -> pd.DataFrame:
    return schema_table(
        "rentals",
        [
            (h, t, chips, chips * s.rent_usd_per_chip_hour_h[h] * s.hours_t[t])
            for (h, t), chips in _values(m.v_rent)
            if chips > TOL
        ],
    )


def _fleet(
    m: pyo.ConcreteModel, data: PlanningData, s: ModelSets, counts: np.ndarray
) -> pd.DataFrame:
    rented = dict(_values(m.v_rent))
    rows = []
    for (h, t), owned in _values(m.v_fleet):
        pos, chips = s.fit_ht.get((h, t), (np.zeros(0, int), np.zeros(0)))
        rows.append((h, t, owned, rented.get((h, t), 0.0), float(chips @ counts[pos])))
    # Existing chips of SKUs no candidate uses are still owned: show them, unused.
    in_model = {h for h, _ in s.fleet_ht}
    for h, group in data.existing.groupby("sku", sort=True):
        if h in in_model:
            continue
        for i, t in enumerate(s.periods):
            owned = float(group.loc[group["retire_period"] > i, "chips"].sum())
            if owned > 0:
                rows.append((h, t, owned, 0.0, 0.0))
    return schema_table("fleet", rows)


def _routing(m: pyo.ConcreteModel, s: ModelSets) -> pd.DataFrame:
    rows = [
        (w, p, t, c, x, x / s.demand_wt[(w, t)]) for (c, w, p, t), x in _values(m.v_load) if x > TOL
    ]
    return schema_table("routing", rows)


def _costs(m: pyo.ConcreteModel, s: ModelSets) -> pd.DataFrame:
    rows = []
    for t in s.periods:
        parts = [
            rounded_off(pyo.value(e[t]), 1e-6)
            for e in (m.e_capex_usd, m.e_rental_usd, m.e_energy_usd, m.e_hosting_usd)
        ]
        rows.append((t, *parts, sum(parts)))
    return schema_table("costs", rows)


def _utilization(m: pyo.ConcreteModel, s: ModelSets, counts: np.ndarray) -> pd.DataFrame:
    """Busy fraction = time used / time of the instances deployed (util_max is the cap)."""
    load = np.array([_val(v) for v in m.v_load.values()], dtype=float)
    busy_time = load * s.inv_rate_cwpt
    rows = []
    for i, (c, t) in enumerate(s.instances_ct):
        if counts[i] > TOL:
            pos = s.load_pos_by_ct.get((c, t), np.zeros(0, int))
            rows.append((c, t, float(busy_time[pos].sum()) / counts[i]))
    return schema_table("utilization", rows)


def _rounding(s: ModelSets, instances: dict[Any, float]) -> pd.DataFrame:
    if not s.settings.relax_instances:
        return schema_table("rounding", [])
    return schema_table(
        "rounding",
        [
            (c, t, n, math.ceil(n - TOL))
            for (c, t), n in instances.items()
            if abs(n - round(n)) > TOL
        ],
    )


# --------------------------------------------------------------------------------------
# Why is demand unserved?
# --------------------------------------------------------------------------------------

EXPLAIN_COLUMNS = [
    "workload",
    "periods",
    "unserved_rps",
    "cause",
    "limit",
    "current",
    "needed",
    "move",
    "unit",
    "unserved_after_rps",
    "detail",
]
# limit name -> unit
LIMITS: dict[str, str] = {
    "capex_budget_usd": "USD",
    "capex_budget_usd_per_period": "USD",
    "power_budget_mw": "MW",
    "peak_power_cap_mw": "MW",
    "supply_cap_units_per_period": "units",
}


def explain_unserved(
    plan: Plan, data: PlanningData, profile: SolverProfile | str = "default"
) -> pd.DataFrame:
    """Per workload with unserved demand: why, and how far a limit must move.

    Causes: "no_candidate" (no candidate serves a phase inside the SLA; a later layer adds
    the best TTFT/TPOT reachable), "not_available" (candidates exist, but no SKU they need
    can be owned or rented in those periods), "limit" (lifting that one limit serves all of
    it), "limit_partial" (lifting it serves some; other limits bind too), "limits_combined"
    (no single limit helps, lifting all of them together does), "solver_stopped" (none
    of these, and the plan is not proven optimal: its time limit stopped the solver),
    "unexplained".
    For a limit, `needed` is its smallest value that serves everything the plan with the
    limit lifted serves (found by minimising the resource itself), `move` = needed - current.
    `unserved_rps` and `unserved_after_rps` are the largest per-period amounts, before and
    with the limit lifted. Costs one or two extra solves per active limit, inside the run's
    deadline (planner.solve.run_deadline): when too little of it is left for the next one,
    the workloads not yet explained are "unexplained" and say why.
    """
    if plan.unserved.empty:
        return pd.DataFrame(columns=EXPLAIN_COLUMNS)
    sets = prepare_sets(data)
    rows: list[dict[str, Any]] = []
    pending: dict[str, dict[str, Any]] = {}
    for w, group in plan.unserved.groupby("workload", sort=True):
        periods = group["period"].tolist()
        base = {
            "workload": w,
            "periods": ",".join(periods),
            "unserved_rps": float(group["requests_per_s"].max()),
        }
        structural, blocked = _structural_cause(w, periods, data, sets)
        if structural:
            rows.append({**base, "periods": ",".join(blocked), **structural})
        if len(blocked) < len(periods):
            pending[str(w)] = base
    before = _peak_unserved(plan)
    active = _active_limits(data)
    helped_by: dict[str, list[str]] = {}
    if not isinstance(profile, SolverProfile):
        profile = load_profile(profile)
    spent = False  # the run's time limit stopped the re-solves (planner.solve.run_deadline)
    for limit in active:
        if not time_for_follow_up(profile):
            spent = True
            break
        lifted = solve_plan(_lift(data, [limit]), profile)
        after = _peak_unserved(lifted)
        helped = [w for w in pending if after.get(w, 0.0) < before[w] - TOL]
        if not helped:
            continue
        current, needed = _limit_values(limit, data, lifted, profile)
        for w in helped:
            helped_by.setdefault(w, []).append(limit)
            left = after.get(w, 0.0)
            full = left <= TOL
            rows.append(
                {
                    **pending[w],
                    "cause": "limit" if full else "limit_partial",
                    "limit": limit,
                    "current": current,
                    "needed": needed,
                    "move": needed - current,
                    "unit": LIMITS[limit],
                    "unserved_after_rps": left,
                    "detail": f"{limit} binds: {current:.6g} -> {needed:.6g} {LIMITS[limit]} "
                    + (
                        "serves it"
                        if full
                        else f"leaves {left:.6g} req/s unserved (other limits bind too)"
                    ),
                }
            )
    rest = [w for w in pending if w not in helped_by]
    spent = spent or bool(rest and len(active) > 1 and not time_for_follow_up(profile))
    if rest and len(active) > 1 and not spent:
        after = _peak_unserved(solve_plan(_lift(data, active), profile))
        for w in rest:
            if after.get(w, 0.0) < before[w] - TOL:
                helped_by[w] = active
                rows.append(
                    {
                        **pending[w],
                        "cause": "limits_combined",
                        "limit": "+".join(active),
                        "unserved_after_rps": after.get(w, 0.0),
                        "detail": "no single limit helps; lifting these together does",
                    }
                )
    for w in rest:
        if w not in helped_by:
            rows.append({**pending[w], **_unexplained(plan, spent)})
    out = pd.DataFrame(rows).reindex(columns=EXPLAIN_COLUMNS)
    return out.sort_values(["workload", "cause", "limit"], kind="stable").reset_index(drop=True)


def _unexplained(plan: Plan, spent: bool) -> dict[str, str]:
    """Why no limit explains a shortfall: the re-solves that would say did not run, or the
    plan itself stopped at the solver's time limit (the unserved penalty outweighs every
    cost of serving, so a proven optimum serves whatever it can: an unproven one may just
    not have found that plan yet), or neither, which points at the penalty. A plan whose
    least shortfall is proven and only the cost at it is not (`shortfall_proven`) could
    not serve more with more time."""
    if spent:
        detail = (
            f"{TIME_SPENT} (the re-solves with each limit lifted that would say which one binds)"
        )
        return {"cause": "unexplained", "detail": detail}
    if plan.status != "optimal" and not plan.shortfall_proven:
        gap = f" with a {plan.gap:.1%} gap" if plan.gap is not None else ""
        return {
            "cause": "solver_stopped",
            "detail": f"the plan is not proven optimal (the solver stopped at its time "
            f"limit{gap}): a longer --time-limit may find one that serves it",
        }
    return {"cause": "unexplained", "detail": "no limit explains it; check the unserved penalty"}


def _peak_unserved(plan: Plan) -> pd.Series:
    return plan.unserved.groupby("workload")["requests_per_s"].max()


def _structural_cause(
    w: str, periods: list[str], data: PlanningData, sets: ModelSets
) -> tuple[dict[str, Any] | None, list[str]]:
    """No candidate for a phase at all, or none that can exist in some of these periods.

    Returns the cause (or None) and the periods it covers.
    """
    rates = usable_rates(data)
    served_phases = set(rates.loc[rates["workload"] == w, "phase"])
    missing = [p for p in PHASES if p not in served_phases]
    if missing:
        return {
            "cause": "no_candidate",
            "limit": "",
            "detail": f"no candidate serves its {'/'.join(missing)} phase inside the SLA",
        }, periods
    blocked = [t for t in periods if any((w, p, t) not in sets.load_pos_by_wpt for p in PHASES)]
    if blocked:
        return {
            "cause": "not_available",
            "limit": "",
            "detail": "no SKU its candidates need can be owned or rented in "
            + ",".join(blocked)
            + " (availability, lead time or retirement)",
        }, blocked
    return None, []


def _active_limits(data: PlanningData) -> list[str]:
    st = data.settings
    active = [
        name
        for name in (
            "capex_budget_usd",
            "capex_budget_usd_per_period",
            "power_budget_mw",
            "peak_power_cap_mw",
        )
        if getattr(st, name) is not None
    ]
    caps = data.skus["supply_cap_units_per_period"]
    if caps.notna().any():
        active.append("supply_cap_units_per_period")
    return active


def _lift(data: PlanningData, limits: list[str]) -> PlanningData:
    updates = {name: None for name in limits if name in Settings.model_fields}
    skus = data.skus
    if "supply_cap_units_per_period" in limits:
        skus = skus.assign(supply_cap_units_per_period=math.nan)
    return dataclasses.replace(data, skus=skus, settings=data.settings.model_copy(update=updates))


def _limit_values(
    limit: str, data: PlanningData, lifted: Plan, profile: SolverProfile | str
) -> tuple[float, float]:
    """(current value, smallest value that serves what the lifted plan serves)."""
    st = data.settings
    if limit == "supply_cap_units_per_period":
        caps = data.skus["supply_cap_units_per_period"].dropna()
        bought = lifted.purchases[lifted.purchases["sku"].isin(caps.index)]
        need = float(bought["units"].max()) if not bought.empty else 0.0
        return float(caps.min()), need
    current = float(getattr(st, limit))
    return current, _smallest_limit(limit, _lift(data, [limit]), profile)


def _smallest_limit(limit: str, lifted: PlanningData, profile: SolverProfile | str) -> float:
    """Minimise the resource itself (+ the unserved penalty) with the limit lifted."""
    m = build_model(lifted)
    s: ModelSets = m.sets
    for obj in m.component_data_objects(pyo.Objective, active=True):
        obj.deactivate()
    m.v_need = pyo.Var(domain=pyo.NonNegativeReals)
    if limit == "capex_budget_usd":
        m.c_need = pyo.Constraint(
            expr=pyo.quicksum(m.e_capex_paid_usd[t] for t in s.periods) <= m.v_need
        )
        penalty = s.penalty_usd_per_rps
    elif limit == "capex_budget_usd_per_period":
        m.c_need = pyo.Constraint(s.periods, rule=lambda m, t: m.e_capex_paid_usd[t] <= m.v_need)
        penalty = s.penalty_usd_per_rps
    else:  # power budget or peak cap: the peak facility MW
        m.c_need = pyo.Constraint(s.periods, rule=lambda m, t: m.e_power_mw[t] <= m.v_need)
        penalty = s.penalty_mw_per_rps
    m.o_need = pyo.Objective(expr=m.v_need + penalty * m.e_unserved_rps)
    result = solve(m, profile)
    return float(m.v_need.value) if result.has_solution else math.nan
