"""A MIP start for large models: purchases rounded first, then instances packed period by
period into the fleet that buys (planner.solve.solve_compiled calls it).

Why: on the pipeline benchmark (benchmarks/plan_scale.py, 34,569 columns) the rounded
relaxation (mip_start_from_relaxation) rounds instances up first and buys whatever fleet
they then need: 4 racks where the relaxation buys 2.99, 53.6 M USD against its 46.3 M.
Neither the support sub-MIP nor HiGHS on the whole model got below 51.8 M in 60 s. Rounded
the other way round, the relaxation's purchases cost little: with each SKU's running total
of purchases rounded up, the LP costs only 0.25 % more (46.43 M). And once purchases are
fixed the periods decouple (a period's loads, instances, rentals and unserved meet only in
that period's rows), so the integer instances are a dozen small MIPs of ~30 integers each,
one per period, not one MIP of 3,800. Those reach 48.5 M in ~33 s: the plan the benchmark
reports (4.6 % above the LP bound, which is weak there: README, "Measured").

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

import numpy as np

if TYPE_CHECKING:
    from planner.solve import CompiledModel, SolverProfile

# Columns decided per period; every other column is fixed at the value the LP with
# purchases fixed gives it (the fleet each purchase puts in service, for one).
PACKED_GROUPS = ("v_load", "v_instances", "v_unserved", "v_rent")
# Instance columns a period's MIP may use only where the relaxations run them.
SUPPORT_GROUPS = ("v_instances",)
SUPPORT_TOL = 1e-9
MIN_PERIOD_S = 0.5


def pack_into_rounded_fleet(
    cm: CompiledModel, profile: SolverProfile, x_lp: np.ndarray, deadline: float
) -> np.ndarray | None:
    """A feasible solution with purchases at the relaxation's running totals rounded up
    and each period's instances from its own small MIP; None when the model has no
    purchases or periods to work with, a row ties two periods' columns together, or a
    step fails or runs out of time."""
    from planner.solve import _cumulative_round_up, _feasible_or_none, _fixed_lp, make_highs

    period = cm.column_period
    if period is None or cm.buy_period is None:
        return None
    buys = np.flatnonzero(cm.integer & (cm.buy_period >= 0)).astype(np.int32)
    rounded = _cumulative_round_up(cm, buys, x_lp)
    if rounded is None:
        return None
    lp = make_highs(cm, profile, integral=False, log=False)
    if not _fixed_lp(lp, buys, rounded, deadline):
        return None
    y = np.asarray(lp.getSolution().col_value)
    x = y.copy()
    x[buys] = rounded
    packed = np.isin(cm.column_group, PACKED_GROUPS) & (period >= 0)
    periods = sorted(set(period[packed].tolist()))
    matrix = cm.matrix().tocsr()  # rows x columns
    support = (np.abs(y) > SUPPORT_TOL) | (np.abs(x_lp) > SUPPORT_TOL)
    for i, t in enumerate(periods):
        cols = packed & (period == t)
        sub = period_model(cm, matrix, cols, packed, x, support)
        if sub is None:
            return None
        # An even share of what is left; HiGHS may overrun a period's limit a little, so the
        # last periods still get MIN_PERIOD_S (the solve's later stages absorb the excess).
        seconds = max((deadline - time.perf_counter()) / (len(periods) - i), MIN_PERIOD_S)
        solved = _solve_period(sub, profile, seconds)
        if solved is None:
            return None
        x[cols] = solved
    return _feasible_or_none(cm, x)


def period_model(
    cm: CompiledModel,
    matrix: Any,
    cols: np.ndarray,
    packed: np.ndarray,
    x: np.ndarray,
    support: np.ndarray,
) -> CompiledModel | None:
    """The model over `cols` (one period's packed columns) with every column outside
    `packed` fixed at its value in `x` (moved to the right-hand sides), and the period's
    instance columns outside `support` fixed at zero. None if one of its rows also holds
    another period's packed column (the periods do not decouple)."""
    rows = np.unique(matrix[:, np.flatnonzero(cols)].tocoo().row)
    block = matrix[rows]
    if block[:, np.flatnonzero(packed & ~cols)].nnz:
        return None
    fixed = np.flatnonzero(~packed)
    shift = block[:, fixed] @ x[fixed]
    idx = np.flatnonzero(cols)
    inner = block[:, idx].tocsc()
    upper = cm.col_upper[idx].copy()
    unused = np.isin(cm.column_group[idx], SUPPORT_GROUPS) & ~support[idx]
    upper[unused] = np.maximum(cm.col_lower[idx][unused], 0.0)
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
        buy_period=None,
        serving_period=None,
        column_period=None,
        row_group=None if cm.row_group is None else cm.row_group[rows],
    )


def _solve_period(sub: CompiledModel, profile: SolverProfile, seconds: float) -> np.ndarray | None:
    """The period's MIP under the profile's gap, for at most `seconds`; its solution."""
    from planner.solve import solve_compiled

    solved = solve_compiled(sub, profile.model_copy(update={"time_limit_s": seconds}))
    if not solved.result.has_solution or solved.x is None:
        return None
    return np.where(sub.integer, np.round(solved.x), solved.x)
