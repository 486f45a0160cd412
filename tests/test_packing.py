"""The packing start (planner.packing): purchases rounded first, instances per period."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
import scipy.sparse as sp
from helpers_planning import both, candidate, make_data, random_data, sku

from planner.formulation import build_model
from planner.model_data import PlanningData
from planner.packing import (
    improve_period_by_period,
    pack_into_rounded_fleet,
    purchases_then_periods,
)
from planner.solve import (
    CompiledModel,
    SolverProfile,
    _feasible_or_none,
    _run,
    compile_model,
    make_highs,
    mip_start_from_relaxation,
    solve,
    solve_compiled,
)

EXACT = SolverProfile(solver="highs", mip_rel_gap=0.0, time_limit_s=60)


def relaxation(cm: CompiledModel) -> np.ndarray:
    lp = make_highs(cm, EXACT, integral=False, log=False)
    _run(lp, 30)
    return np.asarray(lp.getSolution().col_value)


def pack(cm: CompiledModel) -> np.ndarray | None:
    return pack_into_rounded_fleet(cm, EXACT, relaxation(cm), time.perf_counter() + 30)


def objective(cm: CompiledModel, x: np.ndarray) -> float:
    return float(cm.cost @ x + cm.offset)


def one_chip_per_request(periods: list[float]) -> PlanningData:
    """8-chip servers (100 k USD, no rentals), a one-chip candidate; per period demand for
    exactly `periods` instances ((1/9 + 1/9) / 0.9 of an instance per req/s)."""
    per_instance = 0.9 / (2 / 9)
    return make_data(
        skus=[sku("g", chips_per_unit=8, price_usd=100_000)],
        candidates=[candidate("c", units={"g": 1}, rates=both("w", 9, 9))],
        demand={"w": [per_instance * k for k in periods]},
        n_periods=len(periods),
    )


def test_purchases_are_the_rounded_running_total_and_instances_fill_each_period() -> None:
    """Demand of 1, 2 and 11 one-chip instances: the relaxation buys 11/8 servers in all
    (when is a tie: purchases cost the same in every period), so two are bought, the
    first by p0, and each period runs exactly its demand's instances. That is the optimum
    (solved exactly below)."""
    cm = compile_model(build_model(one_chip_per_request([1, 2, 11])))
    x = pack(cm)
    assert x is not None
    buys = np.flatnonzero(cm.column_group == "v_buy")
    assert x[buys].sum() == 2.0
    assert x[buys[cm.buy_period[buys] == 0]].sum() == 1.0
    inst = {
        cm.columns[j].index()[1]: x[j] for j in np.flatnonzero(cm.column_group == "v_instances")
    }
    assert inst == {"p0": 1.0, "p1": 2.0, "p2": 11.0}
    exact = solve(build_model(one_chip_per_request([1, 2, 11])), EXACT)
    assert exact.objective == pytest.approx(objective(cm, x), rel=1e-9)


@pytest.mark.parametrize("seed", range(8))
def test_packed_start_is_feasible_and_never_beats_the_optimum(seed: int) -> None:
    """On seeded random fleets: every row, bound and integrality holds, each SKU's running
    total of purchases is the relaxation's rounded up (as far as the bounds allow), and
    the objective is at least the exact MIP optimum."""
    data = random_data(seed, n_skus=3, n_cands=6, n_periods=4)
    cm = compile_model(build_model(data))
    x_lp = relaxation(cm)
    x = pack_into_rounded_fleet(cm, EXACT, x_lp, time.perf_counter() + 30)
    assert x is not None
    assert _feasible_or_none(cm, x) is not None
    buys = np.flatnonzero(cm.integer & (cm.buy_period >= 0))
    for h in set(cm.buy_sku[buys]):
        cols = buys[cm.buy_sku[buys] == h]
        cols = cols[np.argsort(cm.buy_period[cols])]
        want = np.ceil(np.cumsum(x_lp[cols]) - 1e-9)
        capped = np.cumsum(cm.col_upper[cols]) < want
        assert (np.cumsum(x[cols]) == want)[~capped].all()
    exact = solve(build_model(data), EXACT)
    assert exact.objective is not None
    assert objective(cm, x) >= exact.objective * (1 - 1e-9) - 1e-6


def test_improving_period_by_period_offers_every_candidate_and_holds_purchases() -> None:
    """Two one-chip candidates with the same rates, one drawing 4 kW and one 1 kW: a plan
    that runs the hot one (solved with the cool one switched off) is re-chosen period by
    period onto the cool one, purchases untouched, which is the exact optimum."""
    data = make_data(
        skus=[sku("g", chips_per_unit=8, price_usd=100_000)],
        candidates=[
            candidate("hot", units={"g": 1}, rates=both("w", 9, 9), power_w=4_000.0),
            candidate("cool", units={"g": 1}, rates=both("w", 9, 9), power_w=1_000.0),
        ],
        demand={"w": [4.0, 12.0, 30.0]},
        n_periods=3,
    )
    cm = compile_model(build_model(data))
    names = np.array([str(c.index()[0]) if c.parent_component().local_name == "v_instances" else ""
                      for c in cm.columns])  # fmt: skip
    upper = np.where(names == "cool", 0.0, cm.col_upper)
    hot = solve_compiled(dataclasses.replace(cm, col_upper=upper), EXACT).x
    assert hot is not None
    poor = _feasible_or_none(cm, hot)
    assert poor is not None and poor[names == "cool"].sum() == 0
    better = improve_period_by_period(cm, EXACT, poor, time.perf_counter() + 30)
    assert better is not None and _feasible_or_none(cm, better) is not None
    buys = cm.column_group == "v_buy"
    assert np.array_equal(better[buys], poor[buys])
    assert better[names == "hot"].sum() == 0 and better[names == "cool"].sum() > 0
    exact = solve(build_model(data), EXACT)
    assert exact.objective == pytest.approx(objective(cm, better), rel=1e-9)
    # From the optimum there is nothing left to improve.
    assert improve_period_by_period(cm, EXACT, better, time.perf_counter() + 30) is None


@pytest.mark.parametrize("seed", [4, 5, 9])
def test_improving_the_packed_start_never_costs_more(seed: int) -> None:
    """On seeded random fleets where the packing leaves a period dearer than it could be
    (seeds 4, 5 and 9), the improvement is found, is feasible, keeps the purchases, and
    costs less than the packed start and no less than the exact optimum."""
    data = random_data(seed, n_skus=3, n_cands=6, n_periods=4)
    cm = compile_model(build_model(data))
    x = pack(cm)
    assert x is not None
    better = improve_period_by_period(cm, EXACT, x, time.perf_counter() + 30)
    assert better is not None
    assert _feasible_or_none(cm, better) is not None
    buys = cm.column_group == "v_buy"
    assert np.array_equal(better[buys], x[buys])
    assert objective(cm, better) < objective(cm, x)
    exact = solve(build_model(data), EXACT)
    assert exact.objective is not None
    assert objective(cm, better) >= exact.objective * (1 - 1e-9) - 1e-6


def with_row(cm: CompiledModel, row: np.ndarray, upper: float) -> CompiledModel:
    """`cm` with one more row, row @ x <= upper."""
    a = sp.vstack([cm.matrix(), sp.csr_matrix(row)]).tocsc()
    return dataclasses.replace(
        cm,
        rows=[*cm.rows, None],
        row_lower=np.append(cm.row_lower, -np.inf),
        row_upper=np.append(cm.row_upper, upper),
        a_start=a.indptr.astype(np.int32),
        a_index=a.indices.astype(np.int32),
        a_value=a.data.astype(float),
        row_group=np.append(cm.row_group, "test_row"),
    )


def test_a_row_that_ties_two_periods_together_stops_the_packing() -> None:
    """Periods are solved one at a time only because no row holds two periods' loads,
    instances, rentals or unserved; a row that does (here: instances of p0 + p1 <= 100,
    slack at the optimum) makes the packing give up rather than break it."""
    cm = compile_model(build_model(one_chip_per_request([1, 2, 3])))
    assert pack(cm) is not None
    row = np.zeros(cm.n_cols)
    row[(cm.column_group == "v_instances") & (cm.column_period <= 1)] = 1.0
    assert pack(with_row(cm, row, 100.0)) is None


def test_large_model_recipe_starts_from_the_packing_when_it_is_cheaper(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three workloads, each 1.2 two-chip instances' worth, on 8-chip servers (100 k USD,
    or 5 USD per chip-hour rented: 14.6 k USD a chip over the four periods, dearer than
    12.5 k bought). The relaxation buys 0.9 of a server. Rounding instances up first
    needs 12 chips, and the LP then buys 1.5 servers, rounded up to 2 (200 k USD).
    Purchases rounded first buy one server, which holds four instances; the other two
    are rented (4 chips x 14.6 k = 58.4 k USD): cheaper, and the optimum. With every
    model treated as large, the solve starts from the packing and ends at the optimum."""
    from planner import solve as solve_module

    monkeypatch.setattr(solve_module, "ROUNDED_START_MIN_COLUMNS", 0)
    monkeypatch.setattr(solve_module, "PACK_MIN_COLUMNS", 0)
    per_instance = 0.9 / (2 / 9)
    workloads = ["w1", "w2", "w3"]
    data = make_data(
        skus=[sku("g", chips_per_unit=8, price_usd=100_000, rent_usd_per_chip_hour=5.0)],
        candidates=[candidate(f"c-{w}", units={"g": 2}, rates=both(w, 9, 9)) for w in workloads],
        demand={w: 1.2 * per_instance for w in workloads},
        n_periods=4,
    )
    cm = compile_model(build_model(data))
    packed = pack(cm)
    assert packed is not None
    assert packed[cm.column_group == "v_buy"].sum() == 1.0
    rented = packed[cm.column_group == "v_rent"]
    assert rented.tolist() == [4.0] * 4
    lp = make_highs(cm, EXACT, integral=False, log=False)
    _run(lp, 30)
    rounded = mip_start_from_relaxation(lp, cm, time.perf_counter() + 30)
    assert rounded is not None
    assert rounded[cm.column_group == "v_buy"].sum() == 2.0
    assert objective(cm, rounded) > objective(cm, packed)
    solved = solve_compiled(cm, EXACT)
    assert "instances packed into rounded purchases" in solved.result.message
    exact = solve(build_model(data), EXACT)
    assert exact.objective is not None
    assert solved.result.objective == pytest.approx(exact.objective, rel=1e-9)
    assert objective(cm, packed) == pytest.approx(exact.objective, rel=1e-9)


def test_periods_past_the_deadline_still_get_a_minimum_share() -> None:
    """HiGHS may overrun a period's limit; the periods after it are still solved (with
    MIN_PERIOD_S each) rather than the whole packing being thrown away."""
    cm = compile_model(build_model(one_chip_per_request([1, 2, 11])))
    late = pack_into_rounded_fleet(cm, EXACT, relaxation(cm), time.perf_counter() - 1.0)
    assert late is not None
    on_time = pack(cm)
    assert on_time is not None
    assert objective(cm, late) == pytest.approx(objective(cm, on_time), rel=1e-9)


# ---- small models: purchases from the purchases-only MIP, then instances per period ----


def test_purchases_only_mip_then_periods_is_the_optimum_when_purchases_decide() -> None:
    """Demand of 1, 2 and 11 one-chip instances on 8-chip servers (no rentals): the MIP with
    only purchases integer must buy 2 servers (11 chips in the last period), and with
    those each period's MIP runs exactly its demand's instances: the exact optimum."""
    data = one_chip_per_request([1, 2, 11])
    cm = compile_model(build_model(data))
    x = purchases_then_periods(cm, EXACT, time.perf_counter() + 30)
    assert x is not None and _feasible_or_none(cm, x) is not None
    buys = np.flatnonzero(cm.column_group == "v_buy")
    assert x[buys].sum() == 2.0
    inst = x[np.flatnonzero(cm.column_group == "v_instances")]
    assert sorted(inst.tolist()) == [1.0, 2.0, 11.0]
    exact = solve(build_model(data), EXACT)
    assert exact.objective == pytest.approx(objective(cm, x), rel=1e-9)


@pytest.mark.parametrize("seed", range(8))
def test_purchases_then_periods_start_is_feasible_and_never_beats_the_optimum(seed: int) -> None:
    """On seeded random fleets: the start satisfies every row, bound and integrality, its
    purchases are those of the MIP with only purchases integer, and it costs no less than
    the exact optimum; the small-model recipe, which starts from it (or from the rounded
    relaxation, see below), ends at that optimum."""
    data = random_data(seed, n_skus=3, n_cands=6, n_periods=4)
    cm = compile_model(build_model(data))
    x = purchases_then_periods(cm, EXACT, time.perf_counter() + 30)
    assert x is not None and _feasible_or_none(cm, x) is not None
    buys = np.flatnonzero(cm.integer & (cm.buy_period >= 0))
    h = make_highs(cm, EXACT, integral=False, log=False)
    only_buys = np.zeros(cm.n_cols, dtype=np.int32)
    only_buys[buys] = 1
    h.changeColsIntegrality(cm.n_cols, np.arange(cm.n_cols, dtype=np.int32), only_buys)
    _run(h, 30)
    assert np.array_equal(x[buys], np.round(np.asarray(h.getSolution().col_value)[buys]))
    exact = solve(build_model(data), EXACT)
    assert exact.objective is not None
    assert objective(cm, x) >= exact.objective * (1 - 1e-9) - 1e-6
    solved = solve_compiled(cm, EXACT)
    assert solved.result.objective == pytest.approx(exact.objective, rel=1e-9, abs=1e-6)
    # Where the start leaves demand unserved that the relaxation serves (seed 7: 2.1 rps),
    # the rounded relaxation is built too, and here it is the cheaper start.
    unserved = cm.column_group == "v_unserved"
    rounded_too = x[unserved].sum() > 1e-6 and relaxation(cm)[unserved].sum() <= 1e-6
    assert ("the rounded relaxation" if rounded_too else "purchases-only MIP") in (
        solved.result.message
    )


def test_small_model_recipe_starts_from_the_cheaper_of_a_given_plan_and_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every small solve builds the heuristic start and keeps the given one (a re-solve
    from a known plan) unless the heuristic's is cheaper: given the optimum it starts from
    the given plan; given a plan that buys a server too many, from its own. The heuristic
    returns None on a model with nothing to buy."""
    from planner import solve as solve_module

    calls: list[int] = []
    real = solve_module.purchases_then_periods

    def counted(cm, profile, deadline):  # type: ignore[no-untyped-def]
        calls.append(cm.n_cols)
        return real(cm, profile, deadline)

    monkeypatch.setattr(solve_module, "purchases_then_periods", counted)
    cm = compile_model(build_model(one_chip_per_request([1, 2, 3])))
    first = solve_compiled(cm, EXACT)
    assert calls == [cm.n_cols] and first.x is not None
    assert "purchases-only MIP" in first.result.message
    again = solve_compiled(cm, EXACT, start=first.x)
    assert len(calls) == 2 and "the given solution" in again.result.message
    buys = np.flatnonzero(cm.column_group == "v_buy")
    lower = cm.col_lower.copy()
    lower[buys[0]] = first.x[buys[0]] + 1  # one server more than the optimum buys
    dear = solve_compiled(dataclasses.replace(cm, col_lower=lower), EXACT).x
    assert dear is not None and objective(cm, dear) > objective(cm, first.x)
    third = solve_compiled(cm, EXACT, start=dear)
    assert "purchases-only MIP" in third.result.message
    assert third.result.objective == pytest.approx(first.result.objective, rel=1e-9)
    no_buys = dataclasses.replace(cm, integer=cm.integer & (cm.column_group != "v_buy"))
    assert real(no_buys, EXACT, time.perf_counter() + 30) is None


def test_a_small_solve_out_of_time_still_returns_a_plan_that_serves_everything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under a very short time limit the decomposed start finds nothing and HiGHS drops
    the start it has no time to read in (both simulated here): the small model then rounds
    its relaxation up, as large ones do, and returns that start, which serves all demand,
    rather than HiGHS's empty answer. (default.csv at --time-limit 0.3 left 63 rps
    unserved before; demand was servable, only the time was short.)"""
    from planner import solve as solve_module
    from planner.solve import SolveResult

    def out_of_time(cm, profile, start, deadline, lp_bound, log):  # type: ignore[no-untyped-def]
        return SolveResult("error", None, None, None, "highs", "Time limit reached"), None

    monkeypatch.setattr(solve_module, "purchases_then_periods", lambda *a: None)
    monkeypatch.setattr(solve_module, "_run_mip", out_of_time)
    cm = compile_model(build_model(one_chip_per_request([1, 2, 11])))
    solved = solve_compiled(cm, EXACT)
    assert solved.x is not None and solved.result.status == "feasible_at_limit"
    assert "the rounded relaxation" in solved.result.message
    assert "the MIP start" in solved.result.message
    assert _feasible_or_none(cm, solved.x) is not None
    unserved = solved.x[cm.column_group == "v_unserved"]
    assert np.all(unserved <= 1e-6)
    # a rounded-up plan: never below the optimum, and its bound is the relaxation's
    optimum = solve_compiled(compile_model(build_model(one_chip_per_request([1, 2, 11]))), EXACT)
    assert solved.result.objective >= optimum.result.objective - 1e-6
    assert solved.result.bound is not None
    assert solved.result.bound <= optimum.result.objective + 1e-6
