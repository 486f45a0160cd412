"""Objective "cost" on compiled arrays: the least unserved demand first, then the least cost.

`least_unserved_then_cheapest` is the one implementation `planner plan`
(planning.cheapest_at_shortfall) and `planner sweep` (sweep_model.solve_scenario) both
call. The model's objective is cost + a penalty x unserved request/s, the penalty large
enough that serving always comes first. When demand must be left unserved, that penalty
dominates the objective and a relative MIP gap on it lets the real cost drift, so the
solve becomes two lexicographic stages: the least total unserved, then the least cost with
unserved capped there. `Outcome` is what a staged solve found, with every stage's solution
(the sweep's `reuse` checks them all).

The first stage ignores cost, so periods meet only through purchases and the limits on
them: it is solved as one small MIP per period where their answers combine into a plan
that reaches the sum of their bounds (`_least_unserved_by_period`), and the second stage
then caps each period's unserved at its least.

Time limits: every solve gets the profile's limit (each per-period MIP a fixed share of
it), never what is left of a shared deadline, so a busy machine makes a plan slower but
does not change which path it takes or what it proves.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from pyomo.repn.standard_repn import generate_standard_repn

from planner.pyomo_env import pyo
from planner.solve import (
    UNSERVED_TOL_RPS,
    CompiledModel,
    SolverProfile,
    has_integer_solution,
    leaves_unserved,
    lp_optimum,
    solve_compiled,
)

Status = Literal["optimal", "feasible_at_limit", "infeasible", "error"]


@dataclass
class Outcome:
    status: Status
    objective: float | None
    bound: float | None
    gap: float | None
    x: np.ndarray | None
    message: str = ""
    solve_s: float = 0.0
    # With a shortfall, the first stage's solution (most demand served): limits that cap
    # service are tight there, not necessarily in the cheapest plan at that shortfall.
    first_x: np.ndarray | None = None
    # Every solution the result rests on (each stage's), in order: `reuse` needs them all
    # feasible in another scenario before it can call the result that scenario's optimum.
    stages: tuple[np.ndarray, ...] = ()
    proven: bool = False  # every stage optimal (a first stage at its limit is not)
    shortfall_proven: bool = False  # the first stage (the least unserved) optimal
    timings: dict[str, float] = field(default_factory=dict)  # summed over the stages
    # The arrays the solution is optimal in (the last stage's: with the shortfall cap and
    # cost objective after a shortfall); None: the arrays solved.
    cm: CompiledModel | None = None
    # Least unserved per period position, where the first stage solved period by period.
    periods: dict[int, float] | None = None
    # A sweep point that took a looser point's answer (sweep_model.reuse): the looser
    # point's arrays. Only their limits can bind: the same plan is optimal under them.
    solved_in: CompiledModel | None = None

    @property
    def has_solution(self) -> bool:
        return self.status in ("optimal", "feasible_at_limit")


def solve_arrays(
    cm: CompiledModel,
    profile: SolverProfile,
    start: np.ndarray | None = None,
    incumbent: np.ndarray | None = None,
) -> Outcome:
    """The planner's HiGHS recipe on arrays (planner.solve.solve_compiled): LP relaxation,
    rounded MIP start (or `start`, a known feasible solution, where no worse), MIP, with
    the same watchdog and hard stop (and `incumbent` where the MIP finds nothing cheaper);
    integers rounded as planner.solve writes them back."""
    solved = solve_compiled(cm, profile, start=start, incumbent=incumbent)
    r, x = solved.result, solved.x
    if x is not None:
        x = np.where(cm.integer, np.round(x), x)
    return Outcome(r.status, r.objective, r.bound, r.gap, x, r.message, timings=dict(r.timings))


def linear_coefficients(expr: Any, col_of: dict[int, int], n: int) -> tuple[np.ndarray, float]:
    """Dense coefficient vector (and constant) of a linear expression over the columns."""
    out = np.zeros(n)
    if expr is None:
        return out, 0.0
    repn = generate_standard_repn(expr, compute_values=True, quadratic=False)
    for v, c in zip(repn.linear_vars, repn.linear_coefs, strict=True):
        j = col_of.get(id(v))
        if j is not None:
            out[j] += float(c)
    return out, float(pyo.value(repn.constant))


def least_unserved_then_cheapest(
    cm: CompiledModel,
    unserved_cols: np.ndarray,
    cost_usd: Callable[[], np.ndarray],
    profile: SolverProfile,
    incumbent: np.ndarray | None = None,
) -> Outcome:
    """Objective "cost" (`cm`: cost + penalty x unserved) as two lexicographic stages when
    demand is left unserved: the least total unserved, then the least cost at it.
    `incumbent`: a known feasible plan, the penalised MIP's answer where it finds nothing
    cheaper (solve_compiled).

    With a shortfall the penalty dominates the objective, so a relative gap on it lets the
    real cost drift; the second stage caps unserved at the first stage's and minimises cost
    alone (`cost_usd()`: e_cost_usd per column, asked for only then). Which first stage:

    * the LP relaxation already leaves demand unserved (`least_unserved_bound`), so every
      plan does: minimise unserved alone (`_least_unserved`: period by period where that
      is exact, else the whole model). On demand/default.csv x1.5 under a 0.041 MW budget
      the whole model proves 59.99 rps in 7-9 s, the periods in 1.1-1.5 s;
    * else, when a limit is set and no plan serving everything is found at once
      (`serves_everything`), the same per-period MIPs: a proven shortfall (integrality
      alone) is the first stage (`_proven_shortfall_by_period`);
    * else the penalised MIP (one solve when, as usual, it serves everything), with the
      second stage after it if integrality leaves a shortfall the relaxation did not.

    Status "optimal" only when both stages are proven within the profile's gap.
    """
    t0 = time.perf_counter()
    bound = least_unserved_bound(cm, unserved_cols, profile)
    bound_s = time.perf_counter() - t0
    if bound is not None and bound > UNSERVED_TOL_RPS:
        first = _least_unserved(cm, unserved_cols, profile)
    elif (
        _limited(cm)
        and not serves_everything(cm, unserved_cols, profile)
        and (split := _proven_shortfall_by_period(cm, unserved_cols, profile))
    ):
        first = split  # integrality under a limit leaves some unserved: no penalised MIP
    else:
        first = solve_arrays(cm, profile, incumbent=incumbent)
    first.timings = _summed(first.timings, {"shortfall_lp_s": bound_s, "solve_s": bound_s})
    first.stages = () if first.x is None else (first.x,)
    first.proven = first.shortfall_proven = first.status == "optimal"
    if first.x is None or not leaves_unserved(unserved_cols, first.x):
        return first
    return _cheapest_at_shortfall(cm, unserved_cols, cost_usd(), profile, first)


def least_unserved_bound(
    cm: CompiledModel, unserved_cols: np.ndarray, profile: SolverProfile
) -> float | None:
    """The LP relaxation's least total unserved: a lower bound on every plan's shortfall
    (None if the LP does not solve to optimality within half the time limit)."""
    if not len(unserved_cols) or not cm.integer.any():
        return None
    return lp_optimum(_unserved_objective(cm, unserved_cols), profile, 0.5 * profile.time_limit_s)


def _unserved_objective(cm: CompiledModel, unserved_cols: np.ndarray) -> CompiledModel:
    """The same arrays with objective: total unserved request/s (each column's weight 1)."""
    cost = np.zeros(cm.n_cols)
    cost[unserved_cols] = 1.0
    return dataclasses.replace(cm, cost=cost, offset=0.0)


# Each per-period MIP's time limit, as a fraction of the profile's (see
# _least_unserved_by_period). Those MIPs take 1-2 s where the whole model takes 7-20 s.
PERIOD_LIMIT_SHARE = 0.25

LIMIT_ROWS = ("c_power_budget", "c_capex_budget", "c_capex_budget_per_period", "c_peak_power")


def _limited(cm: CompiledModel) -> bool:
    """A power, capex or peak-power limit or a supply cap is set: the only ways a plan can
    leave unserved what the relaxation serves (without them more whole instances and units
    can always be bought)."""
    if cm.row_group is None:
        return False
    limit_rows = np.isin(cm.row_group, LIMIT_ROWS) & np.isfinite(cm.row_upper)
    capped_buys = (cm.column_group == "v_buy") & np.isfinite(cm.col_upper)
    capped_peak = (cm.column_group == "v_peak_mw") & np.isfinite(cm.col_upper)
    return bool(limit_rows.any() or capped_buys.any() or capped_peak.any())


# The feasibility MIP of serves_everything stops at this many nodes (where no plan serves
# everything, proving so can take a whole tree; the check it skips is then needed anyway)
# or a fixed share of the profile's limit, whichever comes first: the node cap, not the
# clock, decides in practice, so the path a solve takes does not depend on how busy the
# machine is.
SERVES_EVERYTHING_MAX_NODES = 200
SERVES_EVERYTHING_LIMIT_SHARE = 0.1


def serves_everything(cm: CompiledModel, unserved_cols: np.ndarray, profile: SolverProfile) -> bool:
    """Whether some integer plan serves all demand within the limits: the model with
    unserved fixed at zero and no objective, solved until its first solution (whose gap is
    then zero). False also when that is not settled within SERVES_EVERYTHING_MAX_NODES
    nodes or its share of the time limit.

    Where it is True, every period can be served in full, so the per-period shortfall
    check (`_proven_shortfall_by_period`) would find nothing: it is skipped. On the sweep
    benchmark's 40 points with a power budget, none short: 0.24 s for all 40 against
    2.33 s for the check, about 8 % of the sweep's solver time. With rented chips on
    facility power (tighter budgets), 9 of 21 such points certified; the 12 with a real
    shortfall spent about 0.5 s in all in it (at most 0.15 s each) before the check
    found it."""
    upper = cm.col_upper.copy()
    upper[unserved_cols] = 0.0
    feasibility = dataclasses.replace(cm, cost=np.zeros(cm.n_cols), offset=0.0, col_upper=upper)
    return has_integer_solution(
        feasibility,
        profile,
        SERVES_EVERYTHING_LIMIT_SHARE * profile.time_limit_s,
        max_nodes=SERVES_EVERYTHING_MAX_NODES,
    )


def _proven_shortfall_by_period(
    cm: CompiledModel, unserved_cols: np.ndarray, profile: SolverProfile
) -> Outcome | None:
    """Under a limit, the relaxation may serve everything while no plan does. Each
    period's least unserved (small MIPs, `_least_unserved_by_period`) tells, before the
    penalised MIP: a proven shortfall is the first stage, and the penalised MIP, which
    proves the same shortfall through a penalty-dominated objective, is skipped (tpot
    52.5 ms, demand/default.csv x1.5 under 0.0516 MW: 17.7 s for it, 1.4 s per period).
    None when every period can be served in full, or nothing is proven: solve as usual."""
    split = _least_unserved_by_period(cm, unserved_cols, profile)
    if split is None or split.x is None or split.status != "optimal":
        return None
    if not leaves_unserved(unserved_cols, split.x):
        return None
    return _as_first_stage(cm, split)


def _least_unserved(
    cm: CompiledModel, unserved_cols: np.ndarray, profile: SolverProfile
) -> Outcome:
    """Stage one: minimise total unserved alone, period by period where that is exact
    (`_least_unserved_by_period`), else in one MIP. Its objective is reported, like the
    penalised MIP's, as cost + penalty x unserved of its solution (`cm`'s objective)."""
    out = _least_unserved_by_period(cm, unserved_cols, profile)
    if out is None:  # the profile's whole limit, as every stage: not what the periods left
        out = solve_arrays(_unserved_objective(cm, unserved_cols), profile)
    return _as_first_stage(cm, out)


def _as_first_stage(cm: CompiledModel, out: Outcome) -> Outcome:
    """A least-unserved solve reported like the penalised MIP: its objective is `cm`'s
    (cost + penalty x unserved) at its solution; its bounds were on unserved, so none."""
    if out.x is not None:
        out.objective = float(cm.cost @ out.x + cm.offset)
    out.bound = out.gap = None
    out.message = f"least unserved: {out.message}".strip()
    return out


def _least_unserved_by_period(
    cm: CompiledModel, unserved_cols: np.ndarray, profile: SolverProfile
) -> Outcome | None:
    """The least total unserved as one small MIP per period; None where that cannot be
    shown exact here (the caller then solves the whole model).

    Cost plays no part in this stage, so periods interact only through purchases (a unit
    bought serves every later period of its life) and what limits them (capex budgets,
    supply caps). Each period's MIP holds every other period's loads and instances at
    zero: that frees purchases and budgets for it, so its optimum is a lower bound on that
    period's unserved in any plan, and the sum of the periods' bounds bounds the total.
    The periods' answers combined (instances and loads per period, each purchase the
    largest any period chose) and re-solved as an LP with integers fixed reach that sum
    unless a coupling limit binds; then this returns None. On demand/default.csv x1.5
    under 0.041 MW: 1.1-1.5 s against 7-9 s for the whole model, same 59.99 rps.

    `periods` on the Outcome: each period's least unserved (the cheapest-plan stage caps
    each, which it solves several times faster than a cap on the total alone).

    Every period's MIP gets the same fixed limit, PERIOD_LIMIT_SHARE of the profile's, not
    a share of the time left: then whether this stage succeeds depends on how hard each
    period is, not on how busy the machine is. (With a share of a shared deadline, a sweep
    point on 2 busy workers ran its early periods out of time, fell back to the whole
    model and ended feasible-at-limit after 68.6 s, where 1 worker proved it in 10.9 s.)"""
    period = cm.serving_period
    if period is None or len(unserved_cols) == 0:
        return None
    periods = sorted(set(period[unserved_cols].tolist()) - {-1})
    if len(periods) < 2:
        return None
    t0 = time.perf_counter()
    each = profile.model_copy(update={"time_limit_s": PERIOD_LIMIT_SHARE * profile.time_limit_s})
    serving = period >= 0
    unserved_mask = np.zeros(cm.n_cols, dtype=bool)
    unserved_mask[unserved_cols] = True
    combined = np.zeros(cm.n_cols)
    shared = ~serving & cm.integer  # purchases: the largest any period chose
    lower_bound, proven = 0.0, True
    for t in periods:
        others = serving & (period != t) & ~unserved_mask
        lower, upper = cm.col_lower.copy(), cm.col_upper.copy()
        lower[others] = upper[others] = 0.0
        cost = np.zeros(cm.n_cols)
        cost[unserved_mask & (period == t)] = 1.0
        one = solve_arrays(
            dataclasses.replace(cm, cost=cost, offset=0.0, col_lower=lower, col_upper=upper),
            each,
        )
        if one.x is None or one.objective is None:
            return None
        mine = period == t
        combined[mine] = one.x[mine]
        combined[shared] = np.maximum(combined[shared], one.x[shared])
        proven = proven and one.status == "optimal"
        lower_bound += one.bound if one.bound is not None else -np.inf
    # Integers fixed at the combination; the LP settles fleet, rentals and loads.
    fixed_lower, fixed_upper = cm.col_lower.copy(), cm.col_upper.copy()
    fixed_lower[cm.integer] = fixed_upper[cm.integer] = combined[cm.integer]
    joint = solve_arrays(  # an LP: integers fixed
        dataclasses.replace(
            _unserved_objective(cm, unserved_cols), col_lower=fixed_lower, col_upper=fixed_upper
        ),
        each,
    )
    found = float(combined[unserved_cols].sum())
    # Within solver tolerance of the periods' sum (HiGHS's row feasibility tolerance moves
    # a shortfall of ~6 rps by ~1e-6), else a limit the periods share binds.
    if joint.x is None or float(joint.x[unserved_cols].sum()) > found * (1 + 1e-6) + 1e-5:
        return None
    x = joint.x
    within = lower_bound > -np.inf and found <= lower_bound * (1 + profile.mip_rel_gap) + 1e-7
    status = "optimal" if proven and within else "feasible_at_limit"
    out = Outcome(status, None, None, None, x, "solved period by period",
                  timings={"solve_s": time.perf_counter() - t0})  # fmt: skip
    out.periods = {t: float(x[unserved_mask & (period == t)].sum()) for t in periods}
    return out


def cost_per_column(model: pyo.ConcreteModel, cm: CompiledModel) -> np.ndarray:
    """USD per unit of each of `cm`'s columns in the model's e_cost_usd (the real cost:
    no unserved penalty, no buy-late tie-break), as the second stage minimises it."""
    col_of = {id(v): j for j, v in enumerate(cm.columns)}
    return linear_coefficients(model.e_cost_usd.expr, col_of, cm.n_cols)[0]


def _cheapest_at_shortfall(
    cm: CompiledModel,
    unserved_cols: np.ndarray,
    cost_usd: np.ndarray,
    profile: SolverProfile,
    first: Outcome,
) -> Outcome:
    """Cap total unserved at what the first stage reached and minimise cost alone."""
    assert first.x is not None
    shortfall = float(first.x[unserved_cols].sum())
    capped = _with_row(cm, unserved_cols, _cap(shortfall), SHORTFALL_CAP)
    serving_period = cm.serving_period
    if first.periods and serving_period is not None:
        # Each period's unserved is at least its own least (see _least_unserved_by_period),
        # so capping the total at their sum caps each period at its least: said per
        # period, the MIP proves the cheapest plan several times faster (18.6 s -> 2.9 s
        # on demand/default.csv x1.5 under 0.041 MW).
        for t, least in first.periods.items():
            cols = unserved_cols[serving_period[unserved_cols] == t]
            capped = _with_row(capped, cols, _cap(least), SHORTFALL_CAP)
    # The first stage's answer meets the cap, so it is the MIP start (HiGHS may otherwise
    # find no plan at that shortfall in the time left).
    second = solve_arrays(
        dataclasses.replace(capped, cost=cost_usd, offset=0.0), profile, start=first.x
    )
    if not second.has_solution:
        first.proven = False  # the second stage failed: another scenario's might not
        first.status = "feasible_at_limit" if first.has_solution else first.status
        return first
    how = ", found period by period" if first.periods else ""
    second.message = f"{second.message} (cost minimised at the smallest shortfall{how})".strip()
    second.first_x = first.x
    second.stages = (*first.stages, *(() if second.x is None else (second.x,)))
    second.proven = first.proven and second.status == "optimal"
    second.shortfall_proven = first.proven
    # Optimal only if the shortfall is proven least too, not just the cost at it.
    second.status = "optimal" if second.proven else "feasible_at_limit"
    second.timings = _summed(first.timings, second.timings)
    second.cm = capped
    return second


def _cap(shortfall: float) -> float:
    """A cap on unserved request/s that the solution reaching `shortfall` meets."""
    return shortfall * (1 + 1e-7) + 1e-7


def _summed(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: a.get(k, 0.0) + b.get(k, 0.0) for k in a.keys() | b.keys()}


@dataclass(frozen=True)
class AddedConstraint:
    """Stands in for a Pyomo constraint behind a row the arrays add (named in duals)."""

    name: str


@dataclass(frozen=True)
class AddedRow:
    constraint: AddedConstraint


SHORTFALL_CAP = AddedRow(AddedConstraint("c_shortfall_cap"))


def _with_row(cm: CompiledModel, cols: np.ndarray, upper: float, label: Any) -> CompiledModel:
    """The model plus one row, `label`: sum of `cols` <= upper."""
    a = cm.matrix()
    row = sp.csr_matrix(
        (np.ones(len(cols)), (np.zeros(len(cols), dtype=int), cols)), shape=(1, cm.n_cols)
    )
    b = sp.vstack([a, row]).tocsc()
    b.sort_indices()
    row_group = None if cm.row_group is None else np.append(cm.row_group, label.constraint.name)
    return dataclasses.replace(
        cm, rows=[*cm.rows, label], row_group=row_group, row_lower=np.append(cm.row_lower, -np.inf),
        row_upper=np.append(cm.row_upper, upper), a_start=b.indptr.astype(np.int32),
        a_index=b.indices.astype(np.int32), a_value=b.data.astype(float),
    )  # fmt: skip
