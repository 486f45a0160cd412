"""The planning run end to end: scenario + demand + catalog -> verified Plan with its inputs.

    scenario (YAML or flags) --+
    demand CSV ----------------+--> candidates --> MIP --> Plan --> verify --> explain
    catalogs (+ overrides) ----+

`run_planning` is what `planner plan` and `planner sweep` call. It records, inside the Plan,
everything needed to re-check and report it later without the candidate table: the
workloads and demand, the periods, the serving configuration of every candidate the plan
uses, the scenario, and the catalog overrides.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from planner.candidates import CandidateSet, build_candidates, candidate_options
from planner.catalog import Catalog, load_catalog
from planner.demand import Demand, catalog_model_ids, load_demand
from planner.errors import InputProblem, PlannerInputError
from planner.formulation import build_model
from planner.model_data import Settings
from planner.plan import Plan
from planner.plan_read import explain_unserved
from planner.scenario import Scenario, apply_overrides
from planner.solve import (
    TIME_SPENT,
    SolveResult,
    SolverProfile,
    copy_values,
    load_profile,
    run_deadline,
    run_seconds_left,
    solve,
    time_for_follow_up,
)
from planner.verify import Verification, verify_plan


class PlanInputs(BaseModel):
    """What a plan was built from, recorded in plan.json for verify and reports."""

    model_config = ConfigDict(extra="forbid")

    demand_source: str
    created_utc: str
    scenario: dict[str, Any]
    workloads: list[dict[str, Any]]
    demand: list[dict[str, Any]]
    periods: list[dict[str, Any]]
    existing: list[dict[str, Any]]
    candidates: list[dict[str, Any]]  # only those the plan uses
    rows: list[dict[str, Any]]  # (candidate, workload, phase) of used candidates, with configs
    best_reachable: list[dict[str, Any]]
    uncalibrated_skus: list[str]
    candidate_pairs: int  # (candidate, workload, phase) rows the MIP chose from
    timings: dict[str, float]
    # Constraints at their limit, with the LP dual (USD of objective per unit of limit).
    binding: list[dict[str, Any]] = Field(default_factory=list)
    # The same demand on restricted fleets: best single SKU, GPU only (None: not computed).
    comparisons: list[dict[str, Any]] | None = None
    # Per workload left unserved: why (see plan.explain_unserved), with the best TTFT/TPOT.
    unserved_explained: list[dict[str, Any]] = Field(default_factory=list)


@dataclass
class PlanRun:
    plan: Plan
    inputs: PlanInputs
    candidates: CandidateSet
    catalog: Catalog
    verification: Verification
    explanation: pd.DataFrame


# --------------------------------------------------------------------------------------


def _horizon(demand: Demand, sc: Scenario, source: str) -> Demand:
    if not sc.horizon:
        return demand
    names = list(demand.periods.index)
    bad = [p for p in sc.horizon if p not in names]
    if bad or len(sc.horizon) != 2:
        raise PlannerInputError(
            [
                InputProblem(
                    source, "field horizon", sc.horizon, f"[first, last] periods among {names}"
                )
            ]
        )
    i, j = names.index(sc.horizon[0]), names.index(sc.horizon[1])
    keep = names[i : j + 1]
    rates = demand.rates[demand.rates["period"].isin(keep)].reset_index(drop=True)
    periods = demand.periods.loc[keep]
    workloads = demand.workloads.loc[
        sorted(set(rates["workload"]), key=list(demand.workloads.index).index)
    ]
    return Demand(
        workloads=workloads,
        rates=rates,
        periods=periods,
        source=demand.source,
        period_freq=demand.period_freq,
    )


def _existing(sc: Scenario, periods: list[str], source: str) -> pd.DataFrame:
    rows, problems = [], []
    for e in sc.existing_fleet:
        retire = len(periods)
        if e.retire_period is not None:
            if e.retire_period not in periods:
                problems.append(
                    InputProblem(
                        source,
                        f"existing_fleet {e.sku}.retire_period",
                        e.retire_period,
                        f"one of {periods}",
                    )
                )
                continue
            retire = periods.index(e.retire_period)
        rows.append({"sku": e.sku, "chips": float(e.chips), "retire_period": retire})
    if problems:
        raise PlannerInputError(problems)
    return pd.DataFrame(rows, columns=["sku", "chips", "retire_period"])


def prepare(
    demand_path: Path, sc: Scenario, catalog: Catalog | None = None
) -> tuple[Catalog, Demand, CandidateSet]:
    """Validated inputs and the candidate set (no solving)."""
    source = "scenario"
    catalog = apply_overrides(catalog or load_catalog(), sc, source)
    targets, drafts = catalog_model_ids(catalog)
    demand = _horizon(load_demand(demand_path, targets, draft_ids=drafts), sc, source)
    opts = candidate_options(sc, catalog)
    existing = _existing(sc, list(demand.periods.index), source)
    cs = build_candidates(catalog, demand, sc.settings(), opts, existing=existing)
    if sc.supply_cap_units_per_period:
        skus = cs.data.skus.copy()
        for sku, cap in sc.supply_cap_units_per_period.items():
            if sku in skus.index:
                skus.loc[sku, "supply_cap_units_per_period"] = cap
        from dataclasses import replace

        cs = CandidateSet(data=replace(cs.data, skus=skus), table=cs.table, best_reachable=cs.best_reachable,
                          skus_uncalibrated=cs.skus_uncalibrated)  # fmt: skip
    return catalog, demand, cs


# What run_planning reports to `on_stage` as each stage starts, in this order (the ones that
# do not apply to a run are skipped).
STAGES = {
    "candidates": "generating serving candidates",
    "solve": "solving the planning MIP ({pairs} candidate rates; time limit {limit:g} s)",
    "limits": "re-solving with each budget lifted",
    "compare": "solving the comparison fleets",
    "verify": "verifying the plan",
    "explain": "explaining unserved demand",
}


def run_planning(
    demand_path: Path, sc: Scenario, *, catalog: Catalog | None = None,
    profile: SolverProfile | None = None, explain: bool = True, compare: bool = False,
    on_solved: Callable[[Plan], None] | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> PlanRun:  # fmt: skip
    """Plan `demand_path` under `sc`: candidates, MIP, the plan with its inputs recorded,
    comparison fleets (compare), independent verification, the unserved diagnosis.

    on_solved: called with the plan as soon as it is solved and its inputs recorded, before
    the comparisons, verification and diagnosis add to it (`planner plan` hands it to its
    report worker to draw the charts meanwhile).
    on_stage: called with a few words as each stage starts (STAGES), for a status line: a
    large or hard MIP runs for a minute with nothing else to show."""
    stage = on_stage or (lambda _text: None)
    t0 = time.perf_counter()
    stage(STAGES["candidates"])
    catalog, demand, cs = prepare(demand_path, sc, catalog)
    t_cand = time.perf_counter() - t0
    profile = profile or load_profile(sc.solver_profile)
    if sc.time_limit_s is not None:
        profile = profile.model_copy(update={"time_limit_s": sc.time_limit_s})
    stage(STAGES["solve"].format(pairs=len(cs.data.rates), limit=profile.time_limit_s))
    model = build_model(cs.data)
    # The time limit is the run's: the plan's solve may use all of it, and the follow-up
    # solves (limits lifted, comparison fleets, the unserved diagnosis) share what it
    # leaves, each skipped, and said so, once too little is left (time_for_follow_up).
    with run_deadline(profile.time_limit_s):
        return _plan_and_explain(
            model, demand, cs, catalog, sc, profile, t_cand,
            explain=explain, compare=compare, on_solved=on_solved, stage=stage,
        )  # fmt: skip


def _plan_and_explain(
    model: Any, demand: Demand, cs: CandidateSet, catalog: Catalog, sc: Scenario,
    profile: SolverProfile, t_cand: float, *, explain: bool, compare: bool,
    on_solved: Callable[[Plan], None] | None, stage: Callable[[str], None],
) -> PlanRun:  # fmt: skip
    """run_planning from the solve on, inside the run's deadline."""
    backed = sc.objective == "cost" and sc.pruning_mode != "frontier"  # frontier_start's case
    t_start = time.perf_counter()
    started = backed and frontier_start(model, cs, sc, profile)
    start_s = time.perf_counter() - t_start
    if sc.objective == "cost":
        result = cheapest_at_shortfall(model, profile, known_plan=started)
    else:
        result = solve(model, profile, duals=True)
    plan = Plan.from_solution(model, cs.data, result)
    timings = {"candidates_s": t_cand, **result.timings}
    if backed:
        timings["frontier_start_s"] = start_s
    inputs = record_inputs(plan, demand, cs, sc, timings=timings)
    inputs.binding = binding_constraints(result.duals or {}, plan, cs.data)
    if result.has_solution:
        if limits_set(cs.data.settings):
            stage(STAGES["limits"])  # one re-solve or more
        inputs.binding += limit_savings(plan, cs.data, profile, model)
    if on_solved is not None and result.has_solution:
        on_solved(dataclasses.replace(plan, inputs=inputs.model_dump(mode="json")))
    if compare and result.has_solution:
        stage(STAGES["compare"])
        t1 = time.perf_counter()
        # The plan's own model is reused unless the shortfall stage changed its objective.
        plain = model if not hasattr(model, "c_shortfall_cap") else None
        inputs.comparisons = comparison_fleets(plan, cs.data, catalog, profile, model=plain)
        inputs.timings["comparisons_s"] = time.perf_counter() - t1
    plan = dataclasses.replace(plan, inputs=inputs.model_dump(mode="json"))
    if result.has_solution:
        stage(STAGES["verify"])
    verification = (
        verify_plan(plan, inputs, catalog, raise_on_mismatch=False)
        if result.has_solution
        else Verification()
    )
    explanation = pd.DataFrame()
    if explain and result.has_solution and plan.unserved_rps > 1e-6:
        stage(STAGES["explain"])
        explanation = explain_unserved(plan, cs.data, profile)
        explanation = add_best_reachable(explanation, cs.best_reachable, demand)
        inputs.unserved_explained = [
            {k: _plain(v) for k, v in r.items()} for r in explanation.to_dict(orient="records")
        ]
        plan = dataclasses.replace(plan, inputs=inputs.model_dump(mode="json"))
    return PlanRun(plan, inputs, cs, catalog, verification, explanation)


# Share of the run's time limit the frontier-pruned plan may take when it backs a wider
# candidate set's MIP (frontier_start). Most of it: the frontier plan is the floor the
# wider MIP must beat, and it usually ends well inside its share (1.3 s of default.csv's
# 300 s), so the wider MIP still gets the rest. A quarter, as before session 22, cut the
# frontier solve short under `--exhaustive --time-limit 3` (0.75 s): 1,387,297 USD where
# the frontier plan is 1,354,612. Three quarters leave the wider MIP a quarter at least.
FRONTIER_START_SHARE = 0.75


def frontier_start(model: Any, cs: CandidateSet, sc: Scenario, profile: SolverProfile) -> bool:
    """With `--pruning cover` or `none`: solve the frontier-pruned candidates first and
    leave that plan in `model`'s variables (every other variable at 0), the known plan the
    wider MIP's answer is never dearer than (cheapest_at_shortfall's `known_plan`). True
    when it did.

    Those candidate sets contain the frontier's, so its plan is feasible in them; a run
    that stops at its time limit then never returns a plan dearer than `--pruning
    frontier` would have. On the default forecast, `--exhaustive --time-limit 3` stopped
    at an 81 % gap, short of demand, without it. The frontier solve gets at most
    FRONTIER_START_SHARE of the time limit (2.25 s of 3 s; it needs 1.3 s on the default
    forecast)."""
    from planner.candidates import prune_frontier_keeping_covers, sunk_skus

    data = cs.data
    if sc.pruning_mode == "frontier" or profile.solver != "highs" or not len(cs.table):
        return False
    kept = prune_frontier_keeping_covers(
        cs.table, data.skus, data.settings, list(data.periods.index), None,
        sunk_skus(data.existing),
    )  # fmt: skip
    keep = set(kept["candidate"])
    if not keep or len(keep) >= len(data.candidates):
        return False
    sub = build_model(with_candidates(data, keep))
    share = profile.model_copy(update={"time_limit_s": FRONTIER_START_SHARE * profile.time_limit_s})
    if not cheapest_at_shortfall(sub, share, duals=False).has_solution:
        return False
    copy_values(sub, model)
    return True


def cheapest_at_shortfall(
    model: Any, profile: SolverProfile, *, duals: bool = True, known_plan: bool = False
) -> SolveResult:
    """Solve objective "cost": the least unserved demand first, then the least cost at it.

    One implementation with the sweep (planner.shortfall.least_unserved_then_cheapest, on
    the compiled arrays): with a shortfall the penalty dominates the objective, so the
    solver's relative gap would let real cost drift; the second stage caps unserved and
    minimises cost alone. The solution is written back into the model, and the duals (if
    asked) come from the LP of the last stage with its integers fixed (as `solve`).
    `known_plan`: the model's variable values are a feasible plan, the answer where the
    solve finds nothing cheaper (planner.solve.solve_compiled's `incumbent`)."""
    from planner.shortfall import cost_per_column, least_unserved_then_cheapest
    from planner.solve import compile_model, fixed_lp_duals, write_back

    if profile.solver != "highs":  # the array path is HiGHS's
        return _cheapest_at_shortfall_pyomo(model, profile, solve(model, profile, duals=duals))
    t0 = time.perf_counter()
    cm = compile_model(model)
    transfer_s = time.perf_counter() - t0
    unserved = np.flatnonzero(cm.column_group == "v_unserved")
    known = (
        np.array([0.0 if v.value is None else float(v.value) for v in cm.columns])
        if known_plan
        else None
    )
    out = least_unserved_then_cheapest(
        cm, unserved, lambda: cost_per_column(model, cm), profile, incumbent=known
    )
    result = SolveResult(out.status, out.objective, out.bound, out.gap, "highs", out.message,
                         shortfall_proven=out.shortfall_proven)  # fmt: skip
    t1 = time.perf_counter()
    if out.x is not None:
        write_back(cm, out.x)
        if duals:
            result.duals = fixed_lp_duals(out.cm or cm, profile, out.x, False)
    transfer_s += time.perf_counter() - t1
    result.timings = {"build_s": 0.0, "transfer_s": transfer_s, **out.timings}
    result.model = model
    return result


def _cheapest_at_shortfall_pyomo(model: Any, profile: SolverProfile, first: Any) -> Any:
    """The second stage through Pyomo, for profiles whose solver is not HiGHS (the array
    path cannot run them): cap total unserved at what the penalised solve reached and
    minimise cost alone; keep the first result if this fails."""
    from planner.pyomo_env import pyo

    if not first.has_solution:
        return first
    shortfall = float(pyo.value(model.e_unserved_rps))
    if shortfall <= 1e-6:
        return first
    model.c_shortfall_cap = pyo.Constraint(
        expr=model.e_unserved_rps <= shortfall * (1 + 1e-7) + 1e-7
    )
    model.o_cost.deactivate()
    model.o_cost_at_shortfall = pyo.Objective(expr=model.e_cost_usd, sense=pyo.minimize)
    # The first stage's answer meets the cap: it is the second stage's MIP start (without
    # one, HiGHS spent tens of seconds re-finding a plan at that shortfall).
    second = solve(model, profile, duals=True, warm_start=True)
    if second.has_solution:
        second.timings = {k: first.timings.get(k, 0.0) + v for k, v in second.timings.items()}
        second.message = (
            second.message + " (cost minimised at the smallest shortfall found)"
        ).strip()
        if first.status != "optimal":
            second.status = "feasible_at_limit"  # the shortfall itself is not proven least
        return second
    # Restore the first model and its solution values.
    model.del_component(model.o_cost_at_shortfall)
    model.del_component(model.c_shortfall_cap)
    model.o_cost.activate()
    return solve(model, profile, duals=True)


def add_best_reachable(expl: pd.DataFrame, best: pd.DataFrame, demand: Demand) -> pd.DataFrame:
    """For workloads no candidate serves: the best TPOT / TTFT any SKU reaches, vs the SLA."""
    if expl.empty or best.empty:
        return expl
    b = best.set_index("workload")
    details = []
    for r in expl.itertuples():
        detail = r.detail
        if r.cause == "no_candidate" and r.workload in b.index:
            w = demand.workloads.loc[r.workload]
            row = b.loc[r.workload]
            parts = []
            if (
                "best_tpot_ms" in row
                and pd.notna(row["best_tpot_ms"])
                and row["best_tpot_ms"] > w["tpot_ms"]
            ):
                parts.append(
                    f"best TPOT any SKU reaches is {row['best_tpot_ms']:.2f} ms ({row['tpot_where']}) vs the {w['tpot_ms']:g} ms SLA"
                )
            if (
                "best_ttft_ms" in row
                and pd.notna(row["best_ttft_ms"])
                and row["best_ttft_ms"] > w["ttft_ms"]
            ):
                parts.append(
                    f"best zero-load TTFT (prefill + serving overhead) any SKU reaches is {row['best_ttft_ms']:.1f} ms ({row['ttft_where']}) vs the {w['ttft_ms']:g} ms TTFT SLA"
                )
            if parts:
                detail = f"{detail}; " + "; ".join(parts)
        details.append(detail)
    return expl.assign(detail=details)


def record_inputs(
    plan: Plan, demand: Demand, cs: CandidateSet, sc: Scenario, timings: dict[str, float]
) -> PlanInputs:
    used = sorted(set(plan.instances.loc[plan.instances["count"] > 1e-9, "candidate"]))
    t = cs.table[cs.table["candidate"].isin(used)]
    rows = []
    for r in t.to_dict(orient="records"):
        rows.append(
            {
                k: _plain(v)
                for k, v in r.items()
                if k not in ("description", "units", "topology", "power_w")
            }
        )
    cands = []
    if len(t):
        for c, g in t.groupby("candidate", sort=True):
            first = g.iloc[0]
            cands.append({"candidate": c, "topology": first["topology"], "description": first["description"],
                          "power_w": float(first["power_w"]), "units": {k: int(v) for k, v in first["units"].items()}})  # fmt: skip
    periods_df, demand_df = demand.to_planning_tables()
    w = demand.workloads.reset_index().rename(columns={"index": "workload"})
    if "workload" not in w.columns:
        w = w.rename(columns={w.columns[0]: "workload"})
    return PlanInputs(
        demand_source=str(demand.source),
        created_utc=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        scenario=sc.model_dump(mode="json"),
        workloads=[{k: _plain(v) for k, v in r.items()} for r in w.to_dict(orient="records")],
        demand=[{k: _plain(v) for k, v in r.items()} for r in demand_df.to_dict(orient="records")],
        periods=[
            {"period": str(p), **{k: _plain(v) for k, v in r.items()}}
            for p, r in periods_df.iterrows()
        ],
        existing=[
            {k: _plain(v) for k, v in r.items()} for r in cs.data.existing.to_dict(orient="records")
        ],
        candidates=cands,
        rows=rows,
        best_reachable=[
            {k: _plain(v) for k, v in r.items()}
            for r in cs.best_reachable.to_dict(orient="records")
        ],
        uncalibrated_skus=sorted(
            {s for c in cands for s in c["units"]} & set(cs.skus_uncalibrated)
        ),
        candidate_pairs=len(cs.table),
        timings={k: float(v) for k, v in timings.items()},
    )


def _plain(v: Any) -> Any:
    """JSON-friendly scalars (numpy -> python, Timestamp -> ISO, NaN -> None)."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and v != v:
        return None
    return v


def trace_pareto(
    demand_path: Path, sc: Scenario, n: int, *, catalog: Catalog | None = None
) -> pd.DataFrame:
    """Cost versus peak facility power: the two ends (minimum power, minimum cost), then
    minimum cost under n - 2 evenly spaced peak-power caps between them (epsilon constraint)."""
    from planner.plan_read import solve_plan

    # Candidates as for a power-capped plan (the covers rank fillers by watts too, as
    # candidates.covers_fill_by_watts does under a limit): every point but one is capped
    # or minimizes power. Otherwise the objective does not change which candidates exist.
    _, _, cs = prepare(demand_path, sc.model_copy(update={"objective": "power"}), catalog)
    profile = load_profile(sc.solver_profile)
    if sc.time_limit_s is not None:
        profile = profile.model_copy(update={"time_limit_s": sc.time_limit_s})
    base = cs.data.settings

    with run_deadline(profile.time_limit_s):
        # The time limit is the frontier's, as a plan's is the run's: each point gets an equal
        # share of what is left (the later ones more if the earlier ones finish sooner).
        todo = max(n, 2)

        def run(settings: Settings) -> Plan:
            nonlocal todo
            share = run_seconds_left() / todo
            todo -= 1
            limited = profile.model_copy(update={"time_limit_s": min(profile.time_limit_s, share)})
            return solve_plan(dataclasses.replace(cs.data, settings=settings), limited)

        def row(label: str, cap: float | None, p: Plan) -> dict[str, Any]:
            return {
                "point": label, "peak_cap_mw": cap, "status": p.status,
                "total_cost_usd": p.total_cost_usd if p.has_solution else float("nan"),
                "peak_facility_mw": float(p.power["facility_mw"].max()) if len(p.power) else 0.0,
                "capex_usd": float(p.costs["capex_usd"].sum()) if len(p.costs) else 0.0,
                "unserved_rps": p.unserved_rps, "gap": p.gap,
            }  # fmt: skip

        cheapest = run(base.model_copy(update={"objective": "cost", "peak_power_cap_mw": None}))
        leanest = run(base.model_copy(update={"objective": "power", "peak_power_cap_mw": None}))
        hi = float(cheapest.power["facility_mw"].max()) if len(cheapest.power) else 0.0
        lo = float(leanest.power["facility_mw"].max()) if len(leanest.power) else 0.0
        rows = [row("min cost", None, cheapest)]
        for k in range(1, n - 1):
            cap = hi - (hi - lo) * k / (n - 1)
            if cap <= 0:
                continue
            rows.append(
                row(
                    f"cap {k}",
                    cap,
                    run(base.model_copy(update={"objective": "cost", "peak_power_cap_mw": cap})),
                )
            )
        rows.append(row("min power", None, leanest))
        return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------
# What binds, and what the heterogeneous fleet saves
# --------------------------------------------------------------------------------------

_LIMIT_ROWS = {
    "c_power_budget": ("power budget", "MW"),
    "c_capex_budget": ("capex budget (horizon)", "USD"),
    "c_capex_budget_per_period": ("capex budget (per period)", "USD"),
    "c_peak_power": ("peak power cap", "MW"),
    "c_demand_served": ("serving one more request/s", "req/s"),
}


def binding_constraints(duals: dict[str, float], plan: Plan, data: Any) -> list[dict[str, Any]]:
    """Limits with a non-zero dual in the LP with the integer decisions fixed.

    The dual is d(objective)/d(limit): for a budget, USD saved per extra unit of budget;
    for demand, the marginal USD of serving one more request/s in that period.
    """
    out = []
    penalty = plan.penalty_usd_per_rps
    for name, dual in sorted(duals.items()):
        base, _, index = name.partition("[")
        if base not in _LIMIT_ROWS or abs(dual) < 1e-9:
            continue
        what, unit = _LIMIT_ROWS[base]
        where = f"in {index.rstrip(']')}, " if index else ""
        # Per kW, not per MW: a shadow price holds only for small moves, and one more MW
        # can be several times a small fleet's whole budget.
        step, per = (1e-3, "kW") if unit == "MW" else (1.0, unit)
        change = f"{'saves' if dual < 0 else 'costs'} {_usd(abs(dual) * step)}"
        out.append({
            "constraint": what, "row": name, "index": index.rstrip("]"), "unit": unit,
            "dual_usd_per_unit": float(dual),
            "note": (f"{where}one more {per} of this limit {change} (shadow price)"
                     if base != "c_demand_served" else _demand_note(where, dual, penalty)),
        })  # fmt: skip
    return out


def _demand_note(where: str, dual: float, penalty: float | None) -> str:
    """A demand row's shadow price in words. With the integers held, a period whose
    instances are full can only leave one more request/s unserved, so its price is the
    unserved penalty: not a cost of serving, which needs another instance."""
    if penalty and abs(dual) >= (1 - 1e-6) * penalty:
        return (f"{where}at capacity: with the instances held one more request/s would go "
                "unserved (the price is the unserved penalty); serving it needs another instance")  # fmt: skip
    return f"{where}marginal cost {_usd(abs(dual))} per request/s over the period"


def _usd(v: float) -> str:
    return f"{v:,.0f} USD" if v >= 100 else f"{v:,.4g} USD"


def restrict_to(data: Any, allowed: set[str]) -> Any:
    """PlanningData with only the candidates whose SKUs are all in `allowed`."""
    skus_of = data.units.groupby("candidate")["sku"].agg(set)
    keep = {c for c, ss in skus_of.items() if ss <= allowed}
    existing = data.existing
    if len(existing):
        existing = existing[existing["sku"].isin(allowed)]
    return with_candidates(data, keep, existing)


def with_candidates(data: Any, keep: set[str], existing: pd.DataFrame | None = None) -> Any:
    """PlanningData with only the candidates in `keep`, and the SKUs they (or `existing`,
    by default the data's own existing fleet) need."""
    existing = data.existing if existing is None else existing
    units = data.units[data.units["candidate"].isin(keep)]
    return dataclasses.replace(
        data,
        candidates=data.candidates.loc[sorted(keep & set(data.candidates.index))],
        units=units.reset_index(drop=True),
        rates=data.rates[data.rates["candidate"].isin(keep)].reset_index(drop=True),
        skus=data.skus.loc[sorted(set(units["sku"]) | set(existing["sku"]))],
        existing=existing,
    )


def comparison_fleets(
    plan: Plan, data: Any, catalog: Catalog, profile: SolverProfile, *, model: Any = None
) -> list[dict[str, Any]]:
    """This plan against the cheapest single-SKU fleet and the GPU-only fleet, on the same
    demand, candidates and settings. Unserved demand is reported, not hidden: a fleet that
    cannot serve everything is compared with its penalty-free cost and its shortfall.

    One model serves every restriction (`only_skus` fixes the columns of other SKUs at
    zero) and is solved as the plan is (`cheapest_at_shortfall`). The best single SKU is the
    one with the lowest cost plus unserved penalty (serving more comes first); the SKUs are
    tried in order of their LP relaxation bound, and once a solved SKU's value is at or
    below the next bound no later SKU can beat it, so it is not solved (exact up to the MIP
    gap).

    `model`: the plan's model built from `data` with its cost objective, if at hand (one
    build fewer); `only_skus` leaves it as it found it."""
    from planner.formulation import build_model, only_skus, outside_skus
    from planner.plan import Plan
    from planner.solve import compile_model, lp_optimum, solve

    def row(label: str, p: Plan) -> dict[str, Any]:
        ok = p.has_solution
        return {
            "fleet": label, "status": p.status,
            "total_cost_usd": p.total_cost_usd if ok else None,
            "peak_facility_mw": float(p.power["facility_mw"].max()) if ok and len(p.power) else None,
            "unserved_rps": p.unserved_rps if ok else None,
            "skus": sorted(set(p.purchases["sku"]) | set(p.rentals["sku"])) if ok else [],
        }  # fmt: skip

    def skipped(label: str) -> dict[str, Any]:
        """A fleet the run's time limit left no time to solve (planner.solve.run_deadline)."""
        return {"fleet": label, "status": "skipped", "total_cost_usd": None,
                "peak_facility_mw": None, "unserved_rps": None, "skus": [], "note": TIME_SPENT}  # fmt: skip

    this = row("this plan", plan)
    rows = [this]
    fleet = plan.fleet
    used = set(this["skus"]) | set(fleet.loc[fleet["used_chips"] > 0, "sku"])  # existing too
    proven = plan.status == "optimal"

    def the_model() -> Any:
        """The plan's model if given, else one built on first need (every restriction
        shares it)."""
        nonlocal model
        if model is None:
            model = build_model(data)
        return model

    def restricted(skus: set[str]) -> tuple[dict[str, Any], float]:
        """The restricted optimum as a row, and its objective (inf without a solution)."""
        # The plan already lives inside the restriction: it is feasible there, and the
        # restriction cannot do better than the unrestricted optimum, so it is the
        # restricted optimum (within the same gap) without a second solve.
        if proven and used <= skus:
            return this, -math.inf
        if not time_for_follow_up(profile):
            return skipped(""), math.inf
        m = the_model()
        cost = data.settings.objective == "cost"
        with only_skus(m, data, skus):
            # As the plan itself: with a shortfall, the least unserved and then the least
            # cost at it (much faster there than the penalised MIP; see planner.shortfall).
            result = cheapest_at_shortfall(m, profile, duals=False) if cost else solve(m, profile)
            found_plan = Plan.from_solution(m, data, result)
        if not result.has_solution:
            return row("", found_plan), math.inf
        if not cost:
            return row("", found_plan), result.objective or 0.0
        # Ranked on cost + penalty x unserved, what the LP bounds bound (less the buy-late
        # tie-break, which is below any solver tolerance).
        penalised = (
            found_plan.total_cost_usd + found_plan.penalty_usd_per_rps * found_plan.unserved_rps
        )
        return row("", found_plan), penalised

    compiled: list[tuple[Any, dict[int, int]]] = []  # arrays + column of each variable, once

    def lp_bound(skus: set[str]) -> float:
        """The restriction's LP relaxation: the compiled arrays with the columns outside
        `skus` held at zero (the model restricted by only_skus, without a compile each)."""
        if (proven and used <= skus) or data.settings.objective != "cost":
            return -math.inf  # solved anyway (the power objective is lexicographic)
        m = the_model()
        if not compiled:
            cm = compile_model(m)
            compiled.append((cm, {id(v): j for j, v in enumerate(cm.columns)}))
        cm, col_of = compiled[0]
        out = [col_of[id(v)] for v in outside_skus(m, data, skus) if id(v) in col_of]
        lower, upper = cm.col_lower.copy(), cm.col_upper.copy()
        lower[out] = upper[out] = 0.0
        restricted_cm = dataclasses.replace(cm, col_lower=lower, col_upper=upper)
        bound = lp_optimum(restricted_cm, profile, profile.time_limit_s)
        return -math.inf if bound is None else bound

    all_skus = set(data.skus.index)
    gpus = {s for s in all_skus if catalog.hardware[s].kind == "gpu"}
    if gpus and gpus != all_skus:
        rows.append({**restricted(gpus)[0], "fleet": "GPU only"})
    bounds = {s: lp_bound({s}) for s in sorted(all_skus)}
    best: tuple[float, str, dict[str, Any]] | None = None
    stopped = False
    for s in sorted(all_skus, key=lambda s: (bounds[s], s)):
        if best is not None and bounds[s] >= best[0]:
            break  # this and every later SKU's optimum is no better than the best
        found, objective = restricted({s})
        if found["status"] == "skipped":
            stopped = True  # the SKUs not tried might have been cheaper: say so
            break
        if found["total_cost_usd"] is not None and (best is None or objective < best[0]):
            best = (objective, s, found)
    if best is not None:
        label = f"best single SKU ({best[1]})"
        if stopped:
            label = f"best single SKU solved before the time limit ({best[1]})"
        rows.append({**best[2], "fleet": label})
    elif stopped:
        rows.append(skipped("best single SKU"))
    return rows


_LIFTABLE = {
    "power_budget_mw": "power budget (MW per period)",
    "capex_budget_usd": "capex budget (USD over the horizon)",
    "capex_budget_usd_per_period": "capex budget (USD per period)",
    "peak_power_cap_mw": "peak power cap (MW)",
}


def _lift_note(plan: Plan, lifted: Plan, saving: float) -> str:
    """What lifting a limit does, in the unit that matters: requests served when it frees
    unserved demand (a saving in penalty dollars would mean nothing), else USD saved."""
    served_more = plan.unserved_rps - lifted.unserved_rps
    if served_more > 1e-6:
        extra = lifted.total_cost_usd - plan.total_cost_usd
        return f"lifting it serves {served_more:,.4g} req/s more (total cost {extra:+,.0f} USD)"
    if saving > 1.0:
        return f"lifting it saves {saving:,.0f} USD"
    return "set but not binding: lifting it changes nothing"


def limits_set(settings: Settings) -> list[tuple[str, str]]:
    """(settings field, label) of each liftable limit the scenario sets."""
    return [(f, label) for f, label in _LIFTABLE.items() if getattr(settings, f) is not None]


def limit_savings(
    plan: Plan, data: Any, profile: SolverProfile, solved: Any | None = None
) -> list[dict[str, Any]]:
    """For each limit the scenario sets: re-solve with it lifted and report what it costs.

    A MIP has no duals, and the LP duals with integers fixed miss the value of buying a
    different mix; the re-solve measures it. Only limits actually set are tried. With two
    or more set, every one is lifted at once first: lifting one at a time lands between
    the plan and that (base >= lifting one >= lifting all), so when lifting all changes
    nothing no single limit binds, and one re-solve answers for all of them (the shipped
    power_capped scenario: two budgets that do not bind, 30 -> 15 s).

    `solved`: the plan's solved model. Its plan is feasible with any limit lifted, so each
    re-solve starts from it (solve_plan's start_from): a lifted plan is then never dearer
    than the plan even when its re-solve stops at the time limit, and HiGHS proves the
    lifted optimum sooner (power_capped's lifted MIP: 8.1-18.6 s without, 4.5-11.5 s with,
    over three HiGHS seeds). It is handed to HiGHS as the MIP start, not only kept aside as
    frontier_start's plan is: that plan is built on fewer candidates and sent HiGHS
    strong-branching on the exhaustive forecast, while this one is the same model's
    optimum under tighter rows, usually the lifted optimum or close to it."""
    from planner.plan_read import solve_plan

    set_limits = limits_set(data.settings)
    base_obj = plan.total_cost_usd + plan.penalty_usd_per_rps * plan.unserved_rps

    def lift(fields: list[str]) -> Plan:
        update = dict.fromkeys(fields, None)
        lifted = dataclasses.replace(data, settings=data.settings.model_copy(update=update))
        return solve_plan(lifted, profile, start_from=solved)

    def saving_of(lifted: Plan) -> float:
        return base_obj - (lifted.total_cost_usd + lifted.penalty_usd_per_rps * lifted.unserved_rps)

    def row(field_name: str, label: str, lifted: Plan | None) -> dict[str, Any]:
        """The limit's row; lifted None: its re-solve did not run (the time limit)."""
        head = {"constraint": label, "row": field_name, "index": "", "unit": "USD",
                "limit": getattr(data.settings, field_name)}  # fmt: skip
        if lifted is None:
            return {**head, "binds": None, "saving_if_lifted_usd": None,
                    "unserved_rps_if_lifted": None, "note": TIME_SPENT}  # fmt: skip
        saving = saving_of(lifted)
        return {
            **head, "binds": saving > _binding_usd(base_obj), "saving_if_lifted_usd": saving,
            "unserved_rps_if_lifted": lifted.unserved_rps,
            "note": _lift_note(plan, lifted, saving) + _unproven(lifted),
        }  # fmt: skip

    if len(set_limits) > 1 and time_for_follow_up(profile):
        every = lift([f for f, _ in set_limits])
        if (
            every.has_solution
            and saving_of(every) <= _binding_usd(base_obj)
            and every.unserved_rps >= plan.unserved_rps - 1e-6
        ):
            return [row(f, label, every) for f, label in set_limits]
    out = []
    for field_name, label in set_limits:
        if not time_for_follow_up(profile):
            out.append(row(field_name, label, None))
            continue
        lifted = lift([field_name])
        if lifted.has_solution:
            out.append(row(field_name, label, lifted))
    return out


def _unproven(lifted: Plan) -> str:
    """A re-solve stopped at its time limit found a plan, not the best: the saving it shows
    is a lower bound on what lifting the limit saves."""
    if lifted.status == "optimal":
        return ""
    gap = "" if lifted.gap is None else f", gap {lifted.gap:.2%}"
    return f" (re-solve stopped at its time limit{gap}: lifting it saves at least this)"


def _binding_usd(base_obj: float) -> float:
    """A lifted limit that saves more than this binds (USD; noise below it)."""
    return max(1.0, 1e-6 * abs(base_obj))
