"""Integer columns fixed at zero when one unit costs more than a known plan
(planner.solve.fix_unaffordable_units): the fixing removes no optimum."""

from __future__ import annotations

import time

import numpy as np
import pytest
from helpers_planning import both, candidate, make_data, random_data, sku

from planner.formulation import build_model
from planner.model_data import PlanningData
from planner.solve import (
    CompiledModel,
    SolverProfile,
    _run,
    compile_model,
    fix_unaffordable_units,
    lp_optimum,
    make_highs,
    solve_compiled,
    unit_cost_floor,
)

EXACT = SolverProfile(solver="highs", mip_rel_gap=0.0, time_limit_s=60)


def lp_bound(cm: CompiledModel) -> float:
    bound = lp_optimum(cm, EXACT, 30)
    assert bound is not None
    return bound


def mip_solution(cm: CompiledModel) -> np.ndarray:
    """The exact MIP optimum's columns, HiGHS on the arrays as given (no fixing)."""
    mip = make_highs(cm, EXACT, integral=True, log=False)
    _run(mip, 30)
    return np.asarray(mip.getSolution().col_value)


def mip_objective(cm: CompiledModel) -> float:
    return float(cm.cost @ mip_solution(cm) + cm.offset)


def rack_or_server(n_instances: int) -> PlanningData:
    """A 72-chip rack at 10 k USD a chip (720 k) and an 8-chip server at 12.5 k a chip
    (100 k), no rentals; one chip per instance, demand for `n_instances` instances."""
    return make_data(
        skus=[
            sku("rack", chips_per_unit=72, price_usd=720_000),
            sku("server", chips_per_unit=8, price_usd=100_000),
        ],
        candidates=[
            candidate("on-rack", units={"rack": 1}, rates=both("w", 9, 9)),
            candidate("on-server", units={"server": 1}, rates=both("w", 9, 9)),
        ],
        demand={"w": 0.9 / (2 / 9) * n_instances},
        n_periods=2,
    )


def test_a_rack_dearer_than_a_whole_server_plan_is_fixed_out() -> None:
    """Three instances: the relaxation buys 3/72 of the cheaper-per-chip rack (30 k USD);
    the relaxation without the rack, rounded, buys one server (100 k + energy), and a rack
    alone costs 720 k, so both rack purchases are fixed at 0; the server's are not (one
    server costs less than that plan). The MIP optimum is unchanged: one server."""
    cm = compile_model(build_model(rack_or_server(3)))
    bound = lp_bound(cm)
    fixed, n = fix_unaffordable_units(cm, EXACT, bound, time.perf_counter() + 30)
    buys = np.flatnonzero(cm.column_group == "v_buy")
    rack = buys[cm.buy_sku[buys] == "rack"]
    server = buys[cm.buy_sku[buys] == "server"]
    assert n == len(rack) == 2
    assert (fixed.col_upper[rack] == 0).all()
    assert (fixed.col_upper[server] == cm.col_upper[server]).all()
    assert mip_objective(fixed) == pytest.approx(mip_objective(cm), rel=1e-9)
    x = mip_solution(cm)
    assert x[server].sum() == pytest.approx(1.0) and x[rack].sum() == pytest.approx(0.0)


def test_nothing_is_fixed_when_the_rack_is_the_cheapest_plan() -> None:
    """Seventy instances: nine servers (900 k) cost more than one rack (720 k), so the
    rack is the optimum and must stay free."""
    cm = compile_model(build_model(rack_or_server(70)))
    fixed, n = fix_unaffordable_units(cm, EXACT, lp_bound(cm), time.perf_counter() + 30)
    assert n == 0 and fixed is cm
    assert solve_compiled(cm, EXACT).result.objective == pytest.approx(mip_objective(cm))


def test_unit_cost_floor_is_a_lower_bound_on_every_plan_using_the_column() -> None:
    """On a solved plan, each column at >= 1 has an objective at least its floor."""
    cm = compile_model(build_model(rack_or_server(3)))
    floor = unit_cost_floor(cm)
    assert floor is not None
    x = mip_solution(cm)
    used = x >= 1 - 1e-9
    assert used.any()
    assert (floor[used] <= float(cm.cost @ x + cm.offset) + 1e-6).all()


def test_the_fixing_never_changes_the_optimum() -> None:
    """On 12 seeded fleets with a 72-chip rack at 1.0-3.2 M USD: solve_compiled (which
    fixes) reaches the exact optimum of the unfixed model. Both sides are exercised: the
    rack is fixed out on some seeds and bought by the optimum on others."""
    fixed_somewhere = rack_bought = 0
    for seed in range(12):
        data = random_data(seed, n_skus=2, n_cands=4, n_periods=3, rack_usd=1e6 + 2e5 * seed)
        cm = compile_model(build_model(data))
        x = mip_solution(cm)
        buys = np.flatnonzero(cm.column_group == "v_buy")
        rack_bought += x[buys[cm.buy_sku[buys] == "rack"]].sum() > 0.5
        _, n = fix_unaffordable_units(cm, EXACT, lp_bound(cm), time.perf_counter() + 30)
        fixed_somewhere += n > 0
        solved = solve_compiled(cm, EXACT)
        assert solved.result.status == "optimal", seed
        assert solved.result.objective == pytest.approx(float(cm.cost @ x + cm.offset), rel=1e-7)
        assert ("fixed at 0" in solved.result.message) == (n > 0), seed
    assert fixed_somewhere >= 3 and rack_bought >= 3
