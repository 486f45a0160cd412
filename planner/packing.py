"""MIP starts from purchases first, then instances period by period into the fleet they
buy (planner.solve.solve_compiled calls them): for large models the relaxation's purchases
rounded up (pack_into_rounded_fleet, below); for small ones the purchases of the MIP with
only purchases integer (purchases_then_periods).

Why: on the pipeline benchmark (benchmarks/plan_scale.py, 34,569 columns) the rounded
relaxation (mip_start_from_relaxation) rounds instances up first and buys whatever fleet
they then need: 4 racks where the relaxation buys 2.99, 53.6 M USD against its 46.3 M.
Neither the support sub-MIP nor HiGHS on the whole model got below 51.8 M in 60 s. Rounded
the other way round, the relaxation's purchases cost little: with each SKU's running total
of purchases rounded up, the LP costs only 0.25 % more (46.43 M). And once purchases are
fixed the periods decouple (a period's loads, instances, rentals and unserved meet only in
that period's rows), so the integer instances are a dozen small MIPs of ~30 integers each,
one per period, not one MIP of 3,800. Those reach 48.5 M in ~33 s: the plan the benchmark
reports (4.6 % above the LP bound, which is weak there: benchmarks/HISTORY.md).

What each period's MIP may use: the candidates the relaxation or the LP with purchases
fixed runs in that period (the others' instances are fixed at zero), which keeps it small
(25-40 integers there). Offering every candidate that any period runs (~75 integers) found
48.2 M with 3 s per period but, with the 2.5 s a 60 s limit leaves, incumbents that left
demand unserved. Rentals stay free, so a period whose rounded instances overflow the fleet
rents the rest (or, with nothing to rent, leaves it unserved at the penalty: the MIP that
follows may still buy more).
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

import highspy
import numpy as np

if TYPE_CHECKING:
    from planner.solve import CompiledModel, SolverProfile

# Columns decided per period; every other column is fixed at the value the LP with
# purchases fixed gives it (the fleet each purchase puts in service, for one).
PACKED_GROUPS = ("v_load", "v_instances", "v_unserved", "v_rent")
# A period gets at least this long even when the periods before it used up the share:
# HiGHS overruns a period's limit a little, and the solve's later stages absorb it.
MIN_PERIOD_S = 0.5


def pack_into_rounded_fleet(
    cm: CompiledModel, profile: SolverProfile, x_lp: np.ndarray, deadline: float
) -> np.ndarray | None:
    """A feasible solution with purchases at the relaxation's running totals rounded up
    and each period's instances from its own small MIP; None when the model has no
    purchases or periods to work with, the LP with those purchases is infeasible, a row
    ties two periods' columns together, or a period's MIP finds no solution."""
    from planner.solve import INT_TOL, SUPPORT_GROUPS, _cumulative_round_up, _fixed_lp, make_highs

    period, buy_period = cm.column_period, cm.buy_period
    if period is None or buy_period is None:
        return None
    buys = np.flatnonzero(cm.integer & (buy_period >= 0)).astype(np.int32)
    rounded = _cumulative_round_up(cm, buys, x_lp)
    if rounded is None:
        return None
    lp = make_highs(cm, profile, integral=False, log=False)
    if not _fixed_lp(lp, buys, rounded, deadline):
        return None
    y = np.asarray(lp.getSolution().col_value)
    x = y.copy()
    x[buys] = rounded
    # Instances of candidates neither relaxation runs (as in solve.support_neighbourhood).
    unused = (
        np.isin(cm.column_group, SUPPORT_GROUPS)
        & (np.abs(y) <= INT_TOL)
        & (np.abs(x_lp) <= INT_TOL)
    )
    return _by_period(cm, profile, x, unused, deadline, improve=False)


def purchases_then_periods(
    cm: CompiledModel, profile: SolverProfile, deadline: float
) -> np.ndarray | None:
    """A MIP start for small models: purchases from the MIP with only the purchases integer
    (instances, loads and rentals relaxed), then each period's integer instances from its
    own MIP with those purchases held (`_by_period`). None when the model has no integer
    purchases or periods, either step finds nothing, or a row ties two periods together.

    Why: on the bundled forecasts HiGHS, on the whole model, often finds the optimum late
    (default.csv: a 1,359 k USD incumbent at 0.3 s, the 1,323 k optimum at 1.4 s, and the
    bound closed the moment it did) because it branches on six quarters in one tree; with
    the purchases fixed each quarter is a small MIP solved in about 0.05 s. The purchases-only
    MIP is about as quick (0.03-0.14 s), and its purchases are close to the optimum's: the
    start comes within 0-6 % of the optimum (it is the optimum on batch_summarization), and
    the MIP given it proves the optimum sooner. Summed over three HiGHS seeds, heuristic
    included: default.csv 5.1 -> 4.3 s, agentic_coding 5.4 -> 4.4 s, batch_summarization
    10.4 -> 8.4 s, power_capped.yaml 33 -> 22 s; the smallest files (voice, hourly) gain
    nothing and pay 0.05-0.1 s. Not everywhere a gain: the 50 points the sweep benchmark
    solves took 69 s against 62 s without it (benchmarks/sweep_scale.py, session 21).
    """
    from planner.solve import _fixed_lp, _run, make_highs

    buy_period = cm.buy_period
    if cm.column_period is None or buy_period is None:
        return None
    buys = np.flatnonzero(cm.integer & (buy_period >= 0)).astype(np.int32)
    if not len(buys):
        return None
    h = make_highs(cm, profile, integral=True, log=False)
    only_buys = np.zeros(cm.n_cols, dtype=np.int32)
    only_buys[buys] = 1  # HiGHS: 0 continuous, 1 integer
    h.changeColsIntegrality(cm.n_cols, np.arange(cm.n_cols, dtype=np.int32), only_buys)
    _run(h, deadline - time.perf_counter())
    if h.getInfo().primal_solution_status != highspy.SolutionStatus.kSolutionStatusFeasible:
        return None
    purchases = np.round(np.asarray(h.getSolution().col_value)[buys])
    lp = make_highs(cm, profile, integral=False, log=False)
    if not _fixed_lp(lp, buys, purchases, deadline):
        return None
    x = np.asarray(lp.getSolution().col_value).copy()
    x[buys] = purchases
    return _by_period(cm, profile, x, np.zeros(cm.n_cols, bool), deadline, improve=False)


def improve_period_by_period(
    cm: CompiledModel, profile: SolverProfile, x: np.ndarray, deadline: float
) -> np.ndarray | None:
    """`x` (a feasible solution) with each period's instances re-chosen among every
    candidate, purchases held; None when no period improves.

    The packing offers each period only the candidates the relaxations run, and its
    purchases are sized for fractional instances; the best whole instances on that fleet
    may use others. Each period's MIP starts from x's own choice and keeps it unless it
    finds a cheaper one, so the result is never dearer than x. On the pipeline benchmark
    (60 s) the support sub-MIP (improve_on_support) spent 15.6 s and the whole MIP 8.3 s
    without improving on the packing's 54.69 M USD; this took it to 54.65 M in its 17 s
    (1.4 s per quarter), and to 54.57 M with 1.8 s per quarter.
    """
    if cm.column_period is None:
        return None
    improved = _by_period(cm, profile, x, np.zeros(cm.n_cols, bool), deadline, improve=True)
    if improved is None or cm.cost @ improved >= cm.cost @ x:
        return None
    return improved


def _by_period(
    cm: CompiledModel,
    profile: SolverProfile,
    x: np.ndarray,
    unused: np.ndarray,
    deadline: float,
    *,
    improve: bool,
) -> np.ndarray | None:
    """x with each period's PACKED_GROUPS columns from that period's own MIP (`unused`
    instance columns fixed at zero), the rest of x held; the periods share what is left
    until `deadline`. improve: each MIP starts from x and a period keeps x's columns
    unless its MIP finds cheaper ones; else every period must find a solution (None if
    one does not, or if a row ties two periods together)."""
    from planner.solve import _feasible_or_none, solve_compiled

    period = cm.column_period
    assert period is not None
    x = x.copy()
    packed = np.isin(cm.column_group, PACKED_GROUPS) & (period >= 0)
    matrix = cm.matrix().tocsr()  # rows x columns
    fixed_activity = matrix @ np.where(packed, 0.0, x)  # per row, what the fixed columns use
    periods = sorted(set(period[packed].tolist()))
    for i, t in enumerate(periods):
        cols = packed & (period == t)
        sub = period_model(cm, matrix, cols, packed, fixed_activity, unused)
        if sub is None:
            return None
        seconds = max((deadline - time.perf_counter()) / (len(periods) - i), MIN_PERIOD_S)
        solved = solve_compiled(
            sub,
            profile.model_copy(update={"time_limit_s": seconds}),
            start=x[cols] if improve else None,
        )
        found = solved.result.has_solution and solved.x is not None
        if improve:
            if found and sub.cost @ solved.x < sub.cost @ x[cols]:
                x[cols] = solved.x
        elif found:
            x[cols] = solved.x
        else:
            return None
    return _feasible_or_none(cm, x)  # integers rounded as HiGHS leaves them a hair off


def period_model(
    cm: CompiledModel,
    matrix: Any,
    cols: np.ndarray,
    packed: np.ndarray,
    fixed_activity: np.ndarray,
    unused: np.ndarray,
) -> CompiledModel | None:
    """The model over `cols` (one period's packed columns), its rows' bounds less what the
    columns outside `packed` use (`fixed_activity`, per row), and its `unused` instance
    columns fixed at zero. None if one of its rows also holds another period's packed
    column (the periods do not decouple)."""
    idx = np.flatnonzero(cols)
    rows = np.unique(matrix[:, idx].tocoo().row)
    block = matrix[rows]
    if block[:, np.flatnonzero(packed & ~cols)].nnz:
        return None
    shift = fixed_activity[rows]
    inner = block[:, idx].tocsc()
    upper = np.where(unused[idx], np.maximum(cm.col_lower[idx], 0.0), cm.col_upper[idx])
    return dataclasses.replace(
        cm,
        columns=range(len(idx)),
        rows=range(len(rows)),
        cost=cm.cost[idx],
        offset=0.0,
        col_lower=cm.col_lower[idx],
        col_upper=upper,
        row_lower=cm.row_lower[rows] - shift,
        row_upper=cm.row_upper[rows] - shift,
        a_start=inner.indptr.astype(np.int32),
        a_index=inner.indices.astype(np.int32),
        a_value=inner.data.astype(float),
        integer=cm.integer[idx],
        column_group=cm.column_group[idx],
        buy_sku=None,
        column_period=None,
        row_group=None if cm.row_group is None else cm.row_group[rows],
    )
