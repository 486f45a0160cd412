"""The solver adapter: profiles, statuses, HiGHS traps, brute force and properties."""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyomo.environ as pyo
import pytest
from helpers_planning import both, candidate, make_data, random_data, sku, with_settings

from planner.catalog import data_dir
from planner.errors import PlannerInputError
from planner.formulation import build_model, unserved_penalty
from planner.model_data import PlanningData
from planner.plan_read import solve_plan
from planner.planning import Scenario, prepare
from planner.solve import (
    SolverProfile,
    SolverUnavailableError,
    compile_model,
    lexicographic_gap,
    load_profile,
    make_highs,
    solve,
)

EXACT = SolverProfile(solver="highs", mip_rel_gap=0.0, time_limit_s=60)


@pytest.fixture(params=["auto", "rounded-start"])
def highs_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test on both "highs" recipes: as solve() picks (small models: no rounded
    start) and with the rounded-relaxation MIP start that large models get."""
    if request.param == "rounded-start":
        from planner import solve as solve_module

        monkeypatch.setattr(solve_module, "ROUNDED_START_MIN_COLUMNS", 0)
    return request.param


def micro(**settings: object) -> PlanningData:
    return make_data(
        skus=[sku("g", chips_per_unit=8, price_usd=800_000)],
        candidates=[candidate("c4", units={"g": 4}, rates=both("w", 10, 5))],
        demand={"w": 40},
        **settings,
    )


# -- profiles ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["default", "fast", "exact"])
def test_shipped_profiles_load(name: str) -> None:
    profile = load_profile(name)
    assert profile.solver == "highs"
    assert profile.time_limit_s > 0


def test_profiles_are_ordered_by_effort() -> None:
    fast, default, exact = (load_profile(n) for n in ("fast", "default", "exact"))
    assert fast.mip_rel_gap > default.mip_rel_gap > exact.mip_rel_gap == 0
    assert fast.time_limit_s < default.time_limit_s < exact.time_limit_s


def test_profile_rejects_unknown_fields(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("solver: highs\nmip_gap: 0.01\n")
    with pytest.raises(PlannerInputError) as info:
        load_profile(path)
    (problem,) = info.value.problems
    assert problem.source == str(path) and problem.location == "field mip_gap"
    assert problem.value == 0.01


@pytest.mark.parametrize(
    ("options", "field", "says"),
    [
        ("{mip_allow_restart: false, no_such_option: 1}", "highs_options", "no_such_option"),
        ("{threads: 2}", "highs_options", "profile's own field"),
        ("{mip_allow_restart: [1]}", "highs_options.mip_allow_restart", "valid"),
    ],
)
def test_profile_highs_options_are_checked_against_highs(tmp_path, options, field, says) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(f"solver: highs\nhighs_options: {options}\n")
    with pytest.raises(PlannerInputError) as info:
        load_profile(path)
    assert any(
        p.location.startswith(f"field {field}") and says in p.expected for p in info.value.problems
    ), info.value.render()


def test_profile_refuses_highs_options_for_another_solver(tmp_path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("solver: cbc\nhighs_options: {mip_allow_restart: false}\n")
    with pytest.raises(PlannerInputError, match="apply to solver 'highs' only, not 'cbc'"):
        load_profile(path)
    path.write_text("solver: cbc\n")
    assert load_profile(path).solver == "cbc"  # the same profile without them loads


def test_profile_highs_options_reach_highs(tmp_path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("solver: highs\nhighs_options: {mip_allow_restart: false, mip_max_nodes: 7}\n")
    h = make_highs(
        compile_model(build_model(micro())), load_profile(path), integral=True, log=False
    )
    assert h.getOptionValue("mip_allow_restart")[1] is False
    assert h.getOptionValue("mip_max_nodes")[1] == 7
    fast = make_highs(
        compile_model(build_model(micro())), load_profile("fast"), integral=True, log=False
    )
    assert fast.getOptionValue("mip_max_nodes")[1] != 7


def test_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(PlannerInputError, match="known: default, exact, fast"):
        load_profile("fastest")


def test_missing_solver_is_a_clear_error() -> None:
    with pytest.raises(SolverUnavailableError, match="not installed"):
        solve(micro(), SolverProfile(solver="no_such_solver"))


# -- statuses ----------------------------------------------------------------------------


def test_result_has_timings_and_status(highs_path: str) -> None:
    result = solve(micro(), EXACT)
    assert result.status == "optimal"
    assert result.gap == pytest.approx(0.0, abs=1e-9)
    assert {"build_s", "transfer_s", "solve_s"} <= set(result.timings)
    assert all(v >= 0 for v in result.timings.values())


def test_impossible_demand_is_optimal_with_unserved_not_an_exception(highs_path: str) -> None:
    plan = solve_plan(micro(capex_budget_usd=0.0), EXACT)
    assert plan.status == "optimal"
    assert plan.unserved_rps == pytest.approx(40.0)
    assert plan.objective == pytest.approx(40.0 * plan.penalty_usd_per_rps, rel=1e-9)


@pytest.mark.parametrize("objective", ["cost", "power"])
def test_nothing_to_serve_is_optimal(objective: str, highs_path: str) -> None:
    data = micro(objective=objective)
    plan = solve_plan(scaled_demand(data, 0.0), EXACT)
    assert plan.status == "optimal"
    assert plan.objective == 0.0 and plan.purchases.empty


def test_infeasible_model_returns_infeasible() -> None:
    m = pyo.ConcreteModel()
    m.x = pyo.Var(domain=pyo.NonNegativeIntegers)
    m.c1 = pyo.Constraint(expr=m.x >= 2)
    m.c2 = pyo.Constraint(expr=m.x <= 1)
    m.o = pyo.Objective(expr=m.x)
    result = solve(m, EXACT)
    assert result.status == "infeasible"
    assert result.objective is None


def test_time_limited_solve_returns_a_clean_status(highs_path: str) -> None:
    data = random_data(7, n_skus=3, n_cands=24, n_periods=6)
    start = time.perf_counter()
    result = solve(data, SolverProfile(mip_rel_gap=0.0, time_limit_s=0.02))
    assert time.perf_counter() - start < 30
    assert result.status in ("optimal", "feasible_at_limit", "error")
    if result.status == "feasible_at_limit":
        # A gap is known exactly when a finite bound is (the LP relaxation may not have
        # finished in 0.02 s either); when known, the bound is below the plan's cost.
        assert (result.gap is None) == (result.bound is None)
        if result.bound is not None:
            assert result.gap is not None and result.gap >= 0
            assert result.bound <= result.objective + 1e-6 * abs(result.objective)


def test_options_do_not_leak_between_solves() -> None:
    """HiGHS options persist on an object; every solve must start from its own profile."""
    data = random_data(3, n_skus=2, n_cands=6, n_periods=3)
    loose = solve(data, SolverProfile(mip_rel_gap=0.5, time_limit_s=30))
    exact = solve(data, EXACT)
    assert exact.status == "optimal" and exact.gap == pytest.approx(0.0, abs=1e-9)
    assert exact.objective <= loose.objective + 1e-6


def test_pyomo_solver_path_agrees_with_the_array_path() -> None:
    if not pyo.SolverFactory("appsi_highs").available(exception_flag=False):
        pytest.skip("appsi_highs not available")
    data = random_data(5, n_skus=2, n_cands=4, n_periods=2)
    ours = solve(data, EXACT)
    theirs = solve(data, SolverProfile(solver="appsi_highs", mip_rel_gap=0.0, time_limit_s=60))
    assert theirs.status == "optimal"
    assert theirs.objective == pytest.approx(ours.objective, rel=1e-7)


def test_lp_duals_price_one_more_request(highs_path: str) -> None:
    """Relaxed instances + rented chips: a pure LP whose demand duals are the marginal cost.

    One more req/s needs (1/10 + 1/5) / 0.9 = 1/3 instance: 4/3 chips rented for 730 h at
    2 USD, plus 1/3 of an instance's energy and hosting when the rented racks stand in our
    facility (none when the provider powers them).
    """
    for rented_power, ours in (("facility", 1.0), ("provider", 0.0)):
        data = make_data(
            skus=[sku("g", price_usd=math.nan, rent_usd_per_chip_hour=2.0)],
            candidates=[candidate("c4", units={"g": 4}, rates=both("w", 10, 5))],
            demand={"w": 40},
            relax_instances=True,
            rented_power=rented_power,
        )
        result = solve(data, EXACT, duals=True)
        running = (1 / 3) * 4_000 * 1.3e-3 * (730 * 0.08 + 130)
        marginal = (4 / 3) * 2.0 * 730 + ours * running
        rows = ("c_demand_served[w,prefill,p0]", "c_demand_served[w,decode,p0]")
        assert sum(result.duals[r] for r in rows) == pytest.approx(marginal, rel=1e-9)


def test_mip_duals_come_from_the_fixed_lp(highs_path: str) -> None:
    result = solve(micro(capex_budget_usd=4e6), EXACT, duals=True)
    assert result.status == "optimal"
    assert "c_capex_budget" in result.duals  # priced with integers fixed


def test_same_data_same_plan(highs_path: str) -> None:
    data = random_data(11, n_skus=3, n_cands=8, n_periods=3)
    assert solve_plan(data, EXACT) == solve_plan(data, EXACT)


# -- brute force ---------------------------------------------------------------------------


def brute_force(data: PlanningData) -> tuple[float, dict[str, int], dict[str, int]]:
    """Enumerate integer instance counts; purchases per SKU by their own enumeration.

    Candidates of random_data serve one phase each, so for given instance counts the served
    amount is min(demand, prefill capacity, decode capacity) and the rest is unserved.
    Returns (objective, max instances per candidate, max units per SKU) of the search box.
    """
    st = data.settings
    periods = list(data.periods.index)
    n_t = len(periods)
    hours = data.periods["hours"].to_numpy(float)
    d = data.demand.set_index("period").loc[periods, "requests_per_s"].to_numpy(float)
    penalty = unserved_penalty(data)[0]
    rates = data.rates.set_index("candidate")
    cands = list(data.candidates.index)
    units = data.units.set_index("candidate")
    n_max = {c: math.ceil(d.max() / (st.util_max * rates.loc[c, "rate_rps"]) - 1e-9) for c in cands}
    grid = np.array(
        list(itertools.product(*[range(n_max[c] + 1) for c in cands for _ in periods])), dtype=float
    )
    n = grid.reshape(len(grid), len(cands), n_t)  # (combo, candidate, period)

    def capacity(phase: str) -> np.ndarray:
        cols = [i for i, c in enumerate(cands) if rates.loc[c, "phase"] == phase]
        r = np.array([rates.loc[cands[i], "rate_rps"] for i in cols])
        return (n[:, cols, :] * r[None, :, None]).sum(axis=1) * st.util_max

    served = np.minimum(np.minimum(capacity("prefill"), capacity("decode")), d[None, :])
    run = np.array([data.candidates.loc[c, "power_w"] for c in cands]) * st.pue / 1e3
    usd_per_kw = (
        hours * 1.0 * st.electricity_usd_per_kwh + st.hosting_usd_per_kw_month * hours / 730
    )
    cost = (n * run[None, :, None] * usd_per_kw[None, None, :]).sum(axis=(1, 2))
    cost += penalty * (d[None, :] - served).sum(axis=1)
    b_max: dict[str, int] = {}
    for h, row in data.skus.iterrows():
        on_h = [i for i, c in enumerate(cands) if units.loc[c, "sku"] == h]
        chips = np.array([units.loc[cands[i], "chips"] for i in on_h])
        need = (n[:, on_h, :] * chips[None, :, None]).sum(axis=1)  # (combo, period)
        have = np.zeros(n_t)
        ex = data.existing[data.existing["sku"] == h]
        for _, e in ex.iterrows():
            have[: int(e["retire_period"])] += e["chips"]
        lead, life = int(row["lead_periods"]), int(row["lifetime_periods"])
        buyable = [t for t in range(int(row["first_buy_period"]), n_t) if t + lead < n_t]
        b_max[h] = math.ceil(max(need.max() - 0, 0) / row["chips_per_unit"])
        combos = list(itertools.product(range(b_max[h] + 1), repeat=len(buyable)))
        vectors = np.array(combos, dtype=float).reshape(len(combos), len(buyable))
        fleet = np.tile(have, (len(vectors), 1))
        for k, t in enumerate(buyable):
            fleet[:, t + lead : t + lead + life] += vectors[:, [k]] * row["chips_per_unit"]
        capex = vectors.sum(axis=1) * row["unit_price_usd"]
        ok = (fleet[None, :, :] >= need[:, None, :] - 1e-9).all(axis=2)  # (combo, vector)
        cost += np.where(ok, capex[None, :], np.inf).min(axis=1)
    return float(cost.min()), n_max, b_max


@pytest.mark.parametrize("seed", range(8))
def test_brute_force_oracle(seed: int, highs_path: str) -> None:
    data = random_data(seed)
    expected, n_max, b_max = brute_force(data)
    result = solve(data, EXACT)
    model = result.model
    assert result.status == "optimal"
    # The search box holds the MIP's answer, so the enumeration covers it.
    for (c, _), v in model.v_instances.items():
        assert round(v.value) <= n_max[c]
    for (h, _), v in model.v_buy.items():
        assert round(v.value) <= b_max[h]
    cost = pyo.value(model.e_cost_usd) + unserved_penalty(data)[0] * pyo.value(model.e_unserved_rps)
    assert cost == pytest.approx(expected, rel=1e-9, abs=1e-6)


# -- properties on random instances -------------------------------------------------------

SEEDS = range(4)


def objective(data: PlanningData) -> float:
    result = solve(data, EXACT)
    assert result.status == "optimal"
    return float(result.objective)


def scaled_demand(data: PlanningData, factor: float) -> PlanningData:
    demand = data.demand.assign(requests_per_s=data.demand["requests_per_s"] * factor)
    return dataclasses.replace(data, demand=demand)


@pytest.mark.parametrize("seed", SEEDS)
def test_more_demand_never_costs_less(seed: int) -> None:
    data = random_data(seed)
    assert objective(scaled_demand(data, 1.5)) >= objective(data) - 1e-6


@pytest.mark.parametrize("seed", SEEDS)
def test_adding_a_sku_never_costs_more(seed: int) -> None:
    data = random_data(seed)
    extra_sku = pd.DataFrame([sku("new", chips_per_unit=4, price_usd=150_000)]).set_index("sku")
    extra = PlanningData(
        periods=data.periods,
        skus=pd.concat([data.skus, extra_sku]),
        candidates=pd.concat(
            [
                data.candidates,
                pd.DataFrame(
                    {"topology": ["pd", "pd"], "power_w": [2_000.0, 2_000.0], "description": ""},
                    index=pd.Index(["new-pre", "new-dec"], name="candidate"),
                ),
            ]
        ),
        units=pd.concat(
            [
                data.units,
                pd.DataFrame(
                    {"candidate": ["new-pre", "new-dec"], "sku": "new", "chips": [2.0, 2.0]}
                ),
            ],
            ignore_index=True,
        ),
        rates=pd.concat(
            [
                data.rates,
                pd.DataFrame(
                    {
                        "candidate": ["new-pre", "new-dec"],
                        "workload": "w",
                        "phase": ["prefill", "decode"],
                        "rate_rps": [6.0, 6.0],
                    }
                ),
            ],
            ignore_index=True,
        ),
        demand=data.demand,
        existing=data.existing,
        settings=data.settings,
    )
    assert objective(extra) <= objective(data) + 1e-6


@pytest.mark.parametrize("seed", SEEDS)
def test_more_budget_never_costs_more(seed: int) -> None:
    data = random_data(seed)
    tight = with_settings(data, capex_budget_usd=300_000.0)
    loose = with_settings(data, capex_budget_usd=900_000.0)
    assert objective(loose) <= objective(tight) + 1e-6


@pytest.mark.parametrize("seed", SEEDS)
def test_removing_a_candidate_never_lowers_cost(seed: int) -> None:
    data = random_data(seed, n_cands=3)
    keep = [c for c in data.candidates.index if c != "c0"]
    fewer = dataclasses.replace(
        data,
        candidates=data.candidates.loc[keep],
        units=data.units[data.units["candidate"].isin(keep)],
        rates=data.rates[data.rates["candidate"].isin(keep)],
    )
    assert objective(fewer) >= objective(data) - 1e-6


def test_lexicographic_power_solve_restores_the_model(highs_path: str) -> None:
    data = micro(objective="power")
    model = build_model(data)
    result = solve(model, EXACT)
    assert result.status == "optimal"
    assert model.o_power.active and not model.o_cost.active
    assert model.v_peak_mw.ub is None


def test_lexicographic_gap_is_the_larger_stage_gap_with_a_proven_zero_peak_counting_zero() -> None:
    profile = SolverProfile(solver="highs", mip_rel_gap=1e-3)
    assert lexicographic_gap("optimal", 0.245, 8e-4, profile) == 8e-4  # abs. tolerance proved it
    assert lexicographic_gap("optimal", 5e-4, 8e-4, profile) == 8e-4
    assert lexicographic_gap("optimal", 9e-4, 2e-4, profile) == 9e-4
    assert lexicographic_gap("feasible_at_limit", 0.3, 1e-4, profile) == 0.3
    assert lexicographic_gap("optimal", None, None, profile) == 0.0


def test_power_plan_that_rents_everything_reports_a_gap_within_tolerance() -> None:
    """Rented chips draw no facility power (rented_power "provider"), so the least peak is
    0 MW and the peak stage's objective is only the tiny cost tie-break: HiGHS proves it by
    its absolute tolerance, at a relative gap that means nothing (24.5 % on the default
    forecast). An optimal plan must not report a gap above the profile's."""
    _, _, cs = prepare(Path(data_dir("demand")) / "default.csv", Scenario(objective="power"))
    profile = load_profile("default")
    result = solve(build_model(cs.data), profile)
    assert result.status == "optimal"
    assert result.gap is not None and result.gap <= profile.mip_rel_gap


def test_watchdog_cancels_a_run_that_overruns(monkeypatch: pytest.MonkeyPatch) -> None:
    """HiGHS can overrun its time limit (root heuristics); the watchdog stops it."""
    import highspy
    import scipy.sparse as sp

    from planner import solve as solve_module

    rng = np.random.default_rng(0)
    a = rng.integers(1, 100, size=(60, 300)).astype(float)  # a hard multi-knapsack
    ac = sp.csc_array(a)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.passModel(
        300,
        60,
        ac.nnz,
        1,
        -1,
        0.0,
        rng.integers(1, 100, 300).astype(float),
        np.zeros(300),
        np.ones(300),
        np.full(60, -highspy.kHighsInf),
        a.sum(1) / 3,
        ac.indptr.astype(np.int32),
        ac.indices.astype(np.int32),
        ac.data,
        np.ones(300, np.int32),
    )
    # Pretend HiGHS ignores a 60 s limit: the watchdog fires 59.5 s early, at 0.5 s.
    monkeypatch.setattr(solve_module, "WATCHDOG_GRACE_S", -59.5)
    start = time.perf_counter()
    assert solve_module._run(h, 60.0) is True
    assert time.perf_counter() - start < 10
    assert h.getModelStatus() == highspy.HighsModelStatus.kInterrupt


def test_mip_start_rounds_down_only_what_a_cap_blocks() -> None:
    """The LP runs 8/3 instances of 3 chips on the one capped 8-chip unit and 2/3 of an
    8-chip instance on the dear SKU (30 req/s x 0.1 s / 0.9 = 10/3 instances). Rounding up
    needs 9 capped chips, so the start rounds that candidate down (losing 2/3 instance =
    6 req/s) and the other up (1 instance: 1/3 spare = 3 req/s picked up): 3 unserved."""
    from planner.solve import (
        _run,
        compile_model,
        make_highs,
        mip_start_from_relaxation,
    )

    skus = [
        sku("capped", chips_per_unit=8, price_usd=100_000, cap_units=1),
        sku("free", chips_per_unit=8, price_usd=900_000),
    ]
    cands = [
        candidate("on_capped", units={"capped": 3}, rates=both("w", 20, 20)),
        candidate("on_free", units={"free": 8}, rates=both("w", 20, 20)),
    ]
    data = make_data(skus=skus, candidates=cands, demand={"w": 30})
    cm = compile_model(build_model(data))
    lp = make_highs(cm, EXACT, integral=False, log=False)
    _run(lp, 30)
    start = mip_start_from_relaxation(lp, cm, time.perf_counter() + 30)
    assert start is not None
    names = cm.column_group
    counts = {v.index()[0]: start[j] for j, v in enumerate(cm.columns) if names[j] == "v_instances"}
    assert counts["on_capped"] == 2.0  # floor(8/3): the cap blocks rounding up
    assert counts["on_free"] == math.ceil(counts["on_free"])
    assert counts["on_free"] == 1.0
    unserved = sum(start[j] for j in range(cm.n_cols) if names[j] == "v_unserved")
    assert unserved == pytest.approx(3.0, rel=1e-6)
    plan = solve_plan(data, EXACT)  # the MIP then buys the second dear instance
    assert plan.unserved.empty


def test_large_mip_runs_in_a_child_process(monkeypatch: pytest.MonkeyPatch) -> None:
    from planner import solve as solve_module

    monkeypatch.setattr(solve_module, "ROUNDED_START_MIN_COLUMNS", 0)
    monkeypatch.setattr(solve_module, "HARD_STOP_MIN_COLUMNS", 0)
    plan = solve_plan(micro(), EXACT)
    assert plan.status == "optimal"
    assert plan.purchases["units"].tolist() == [7]  # as test_formulation works out


def test_child_past_its_deadline_is_killed_and_the_start_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pretend HiGHS ignores its limit: the parent stops the child ~0.3 s in, before it
    reports anything, and keeps the MIP start built from the LP relaxation."""
    from planner import solve as solve_module

    monkeypatch.setattr(solve_module, "ROUNDED_START_MIN_COLUMNS", 0)
    monkeypatch.setattr(solve_module, "HARD_STOP_MIN_COLUMNS", 0)
    monkeypatch.setattr(solve_module, "HARD_STOP_GRACE_S", -29.7)
    monkeypatch.setattr(solve_module, "EARLY_STOP_SHARE", 0.0)
    result = solve(micro(), SolverProfile(mip_rel_gap=0.0, time_limit_s=30))
    assert result.status == "feasible_at_limit"
    assert "stopped" in result.message
    assert result.bound is not None and result.bound <= result.objective
    model = result.model
    assert pyo.value(model.v_instances["c4", "p0"]) == 14  # the rounded-up LP start


def test_mip_start_rounds_running_purchases_not_each_period() -> None:
    """Demand of 1, 2, 3 one-chip instances in three periods on 8-chip servers: the
    relaxation buys 1/8 of a server each period. Rounding each period's buy up would buy
    three servers; rounding the running total (1/8, 2/8, 3/8 -> 1, 1, 1) buys one, in p0."""
    from planner.solve import _run, compile_model, make_highs, mip_start_from_relaxation

    skus = [sku("g", chips_per_unit=8, price_usd=100_000)]
    cands = [candidate("c", units={"g": 1}, rates=both("w", 9, 9))]
    # (1/9 + 1/9) / 0.9 of an instance per req/s: 4.05 req/s is exactly one instance
    per_instance = 0.9 / (2 / 9)
    data = make_data(
        skus=skus, candidates=cands, demand={"w": [per_instance * k for k in (1, 2, 3)]},
        n_periods=3,
    )  # fmt: skip
    model = build_model(data)
    cm = compile_model(model)
    lp = make_highs(cm, EXACT, integral=False, log=False)
    _run(lp, 30)
    relaxed = np.asarray(lp.getSolution().col_value)
    buys = cm.column_group == "v_buy"
    assert relaxed[buys].sum() == pytest.approx(3 / 8, rel=1e-6)
    start = mip_start_from_relaxation(lp, cm, time.perf_counter() + 30)
    assert start is not None
    assert start[buys].sum() == 1.0
    first = np.flatnonzero(buys & (cm.buy_period == 0))
    assert start[first].sum() == 1.0


def test_a_given_feasible_start_is_used_and_an_infeasible_one_ignored() -> None:
    """solve_compiled(start=x): a feasible x is the MIP start (so a solve that runs out of
    time still returns at least as good a plan); an x that breaks a row is ignored."""
    from planner.solve import _feasible_or_none, compile_model, solve_compiled

    model = build_model(random_data(3, n_skus=3, n_cands=6, n_periods=4))
    exact = solve(model, EXACT)
    assert exact.status == "optimal"
    cm = compile_model(model)
    best = np.array([v.value for v in cm.columns], dtype=float)
    assert _feasible_or_none(cm, best) is not None
    broken = best.copy()
    broken[cm.column_group == "v_unserved"] = 0.0
    broken[cm.column_group == "v_load"] = 0.0  # nothing served, nothing unserved
    assert _feasible_or_none(cm, broken) is None
    hurried = SolverProfile(mip_rel_gap=0.0, time_limit_s=0.001)
    out = solve_compiled(cm, hurried, start=best).result
    assert "MIP start: the given solution" in out.message
    assert "MIP start: the given" not in solve_compiled(cm, hurried, start=broken).result.message
    assert out.has_solution
    assert out.objective is not None and exact.objective is not None
    assert out.objective <= exact.objective * (1 + 1e-9) + 1e-6


def test_support_neighbourhood_fixes_what_relaxation_and_start_leave_at_zero() -> None:
    """Three candidates for one workload; the relaxation runs only the cheapest. The
    neighbourhood fixes the instance columns that the relaxation and the start both leave
    at zero (here: the two dearer candidates), nothing else, and the start stays feasible."""
    from planner.solve import (
        _feasible_or_none,
        _run,
        compile_model,
        make_highs,
        mip_start_from_relaxation,
        support_neighbourhood,
    )

    skus = [sku("g", chips_per_unit=8, price_usd=100_000 * k) for k in (1, 2, 3)]
    skus = [{**row, "sku": f"g{k}"} for k, row in enumerate(skus)]
    cands = [candidate(f"c{k}", units={f"g{k}": 4}, rates=both("w", 20, 20)) for k in range(3)]
    data = make_data(skus=skus, candidates=cands, demand={"w": 30})
    cm = compile_model(build_model(data))
    lp = make_highs(cm, EXACT, integral=False, log=False)
    _run(lp, 30)
    x_lp = np.asarray(lp.getSolution().col_value)
    start = mip_start_from_relaxation(lp, cm, time.perf_counter() + 30)
    assert start is not None
    sub = support_neighbourhood(cm, x_lp, start)
    assert sub is not None
    instances = {
        v.index()[0]: j for j, v in enumerate(cm.columns) if cm.column_group[j] == "v_instances"
    }
    assert x_lp[instances["c0"]] > 0
    assert sub.col_upper[instances["c0"]] == cm.col_upper[instances["c0"]]
    assert sub.col_upper[instances["c1"]] == sub.col_upper[instances["c2"]] == 0.0
    changed = np.flatnonzero(sub.col_upper != cm.col_upper)
    assert sorted(changed.tolist()) == sorted([instances["c1"], instances["c2"]])
    assert _feasible_or_none(sub, start) is not None


def test_support_sub_mip_improves_a_poor_start_within_its_neighbourhood(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """From the start that buys nothing and serves nothing, the sub-MIP on the relaxation's
    support finds a feasible, cheaper plan that runs only candidates the relaxation runs;
    it is a start, so the solve's optimum is the same with and without it."""
    from planner import solve as solve_module
    from planner.solve import (
        _feasible_or_none,
        _lower_bound_start,
        _run,
        compile_model,
        improve_on_support,
        make_highs,
    )

    model = build_model(random_data(5, n_skus=3, n_cands=6, n_periods=3))
    cm = compile_model(model)
    lp = make_highs(cm, EXACT, integral=False, log=False)
    _run(lp, 30)
    x_lp = np.asarray(lp.getSolution().col_value)
    poor = _lower_bound_start(lp, cm, time.perf_counter() + 30)
    assert poor is not None
    better = improve_on_support(cm, EXACT, x_lp, poor, time.perf_counter() + 30, False)
    assert better is not None
    assert _feasible_or_none(cm, better) is not None
    assert cm.cost @ better < cm.cost @ poor
    instances = cm.column_group == "v_instances"
    off_support = instances & (np.abs(x_lp) <= 1e-6)
    assert off_support.any()
    assert (better[off_support] == 0).all()

    exact = solve(model, EXACT).objective
    monkeypatch.setattr(solve_module, "ROUNDED_START_MIN_COLUMNS", 0)  # start + sub-MIP
    with_sub_mip = solve(build_model(random_data(5, n_skus=3, n_cands=6, n_periods=3)), EXACT)
    assert "sub-MIP" in with_sub_mip.message or "rounded relaxation" in with_sub_mip.message
    assert with_sub_mip.objective == pytest.approx(exact, rel=1e-9)


# -- objective scaling -------------------------------------------------------------------


def _short_of_capacity() -> PlanningData:
    """Demand beyond what the supply cap allows: the unserved penalty (~1e9 USD per
    request/s) sits in the objective next to costs of ~1e3, and the fixed-LP duals of
    the binding limits are non-zero."""
    skus = [sku("g", chips_per_unit=8, price_usd=2e5, cap_units=1)]
    cands = [candidate("c", units={"g": 8}, rates=both("w", 20, 10))]
    return make_data(skus=skus, candidates=cands, demand={"w": [3.0, 30.0]}, n_periods=2)


def test_objective_scaling_is_invisible_in_results(monkeypatch: pytest.MonkeyPatch) -> None:
    """solve() hands HiGHS the objective times objective_scale (a power of two) and divides
    every value it reads back by it: the objective, the bound and the duals equal those
    of an unscaled solve."""
    from planner import solve as solve_module

    data = _short_of_capacity()
    assert solve_module.objective_scale(compile_model(build_model(data))) < 1.0
    scaled = solve(build_model(data), EXACT, duals=True)
    monkeypatch.setattr(solve_module, "OBJECTIVE_SCALE_MAX", math.inf)
    assert solve_module.objective_scale(compile_model(build_model(data))) == 1.0
    plain = solve(build_model(data), EXACT, duals=True)
    assert scaled.status == plain.status == "optimal"
    assert scaled.objective == pytest.approx(plain.objective, rel=1e-9)
    assert scaled.bound == pytest.approx(plain.bound, rel=1e-9)
    assert scaled.duals and plain.duals and scaled.duals.keys() == plain.duals.keys()
    assert any(abs(d) > 1.0 for d in plain.duals.values())
    for name, dual in plain.duals.items():
        assert scaled.duals[name] == pytest.approx(dual, rel=1e-6, abs=1e-6), name


def test_a_badly_scaled_relaxation_solves() -> None:
    """A relaxation on which HiGHS 1.15's dual simplex failed without the scaling ("ratio
    test failed due to excessive dual values", status Not Set -> our "error")."""
    m = build_model(random_data(6, n_skus=3, n_cands=4, n_periods=3))
    m.c_load_needs_an_instance.deactivate()
    for v in m.component_data_objects(pyo.Var):
        v.domain = pyo.NonNegativeReals
    r = solve(m, EXACT)
    assert r.status == "optimal"
    assert r.objective is not None and r.objective > 1e9  # it does leave demand unserved
