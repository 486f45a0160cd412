"""The planning MIP on hand-solvable micro-fleets: every optimum is written as arithmetic.

Shared numbers (helpers_planning defaults and Settings defaults): 730 h periods, energy load
factor 1, PUE 1.3, 0.08 USD/kWh, hosting 130 USD/kW-month, util_max 0.9. One instance of
power P watts costs P x 1.3 / 1000 kW x (730 x 0.08 + 130) = P x 1.3e-3 x 188.4 USD per
period in energy + hosting.
"""

from __future__ import annotations

import math

import pyomo.environ as pyo
import pytest
from helpers_planning import both, candidate, make_data, sku
from pyomo.repn.standard_repn import generate_standard_repn

from planner.errors import PlannerInputError
from planner.formulation import build_model, model_size
from planner.plan import Plan
from planner.plan_read import solve_plan

UTIL = 0.9
RUN_USD_PER_W = 1.3e-3 * (730 * 0.08 + 130)  # energy + hosting per watt per period


def running(watts: float) -> float:
    return watts * RUN_USD_PER_W


def one_sku(**kw: object) -> list[dict]:
    return [sku("g", chips_per_unit=8, price_usd=800_000.0, **kw)]


def test_colocated_instances_units_and_cost_by_hand() -> None:
    # 40 req/s, each needs 1/10 s of prefill and 1/5 s of decode time of one instance.
    data = make_data(
        skus=one_sku(),
        candidates=[candidate("c4", units={"g": 4}, rates=both("w", 10, 5))],
        demand={"w": 40},
    )
    plan = solve_plan(data, "exact")
    instances = math.ceil(40 * (1 / 10 + 1 / 5) / UTIL)  # 14
    units = math.ceil(instances * 4 / 8)  # 7
    cost = units * 800_000 + instances * running(4_000)
    assert plan.status == "optimal"
    assert plan.instances["count"].tolist() == [instances]
    assert plan.purchases["units"].tolist() == [units]
    assert plan.total_cost_usd == pytest.approx(cost, rel=1e-9)
    assert plan.objective == pytest.approx(cost, rel=1e-8)  # + the buy-late tie-break


def test_pd_pools_are_sized_separately() -> None:
    pre = candidate(
        "pre", units={"g": 2}, rates={("w", "prefill"): 20}, power_w=1_500, topology="pd"
    )
    dec = candidate("dec", units={"g": 4}, rates={("w", "decode"): 3}, power_w=3_000, topology="pd")
    plan = solve_plan(make_data(skus=one_sku(), candidates=[pre, dec], demand={"w": 30}), "exact")
    n_pre = math.ceil(30 / (20 * UTIL))  # 2
    n_dec = math.ceil(30 / (3 * UTIL))  # 12
    units = math.ceil((2 * n_pre + 4 * n_dec) / 8)  # 52 chips -> 7
    cost = units * 800_000 + n_pre * running(1_500) + n_dec * running(3_000)
    counts = dict(zip(plan.instances["candidate"], plan.instances["count"], strict=True))
    assert counts == {"pre": n_pre, "dec": n_dec}
    assert plan.total_cost_usd == pytest.approx(cost, rel=1e-9)


def test_colocated_candidate_serves_whole_requests() -> None:
    # Colocated c is fast at prefill, slow at decode; pool d decodes cheaply. Without the
    # whole-request rule c would do only prefill and d only decode.
    c = candidate("c", units={"g": 8}, rates=both("w", 100, 1), power_w=1_000)
    d = candidate("d", units={"g": 1}, rates={("w", "decode"): 50}, power_w=100, topology="pd")
    plan = solve_plan(make_data(skus=one_sku(), candidates=[c, d], demand={"w": 10}), "exact")
    colocated = plan.routing[plan.routing["candidate"] == "c"]
    loads = colocated.groupby("phase")["load_rps"].sum()
    assert loads.get("prefill", 0.0) == pytest.approx(loads.get("decode", 0.0), abs=1e-9)
    assert plan.unserved.empty


def test_colocated_candidate_with_one_phase_cannot_serve_that_workload() -> None:
    c = candidate("c", units={"g": 4}, rates={("w", "prefill"): 10, **both("v", 10, 5)})
    data = make_data(skus=one_sku(), candidates=[c], demand={"w": 5, "v": 5})
    model = build_model(data)
    assert [k[1] for k in model.v_load] == ["v", "v"]
    plan = solve_plan(data, "exact")
    assert plan.unserved.set_index("workload")["requests_per_s"].to_dict() == {"w": 5.0}


@pytest.mark.parametrize(
    ("n_periods", "watts", "rented_power", "rents"),
    [(6, 1_000, "facility", True), (9, 1_000, "facility", False),
     (6, 1_000, "provider", True), (9, 1_000, "provider", False),
     (9, 4_000, "facility", False), (9, 4_000, "provider", True)],
)  # fmt: skip
def test_buy_versus_rent_crossover(
    n_periods: int, watts: float, rented_power: str, rents: bool
) -> None:
    """One 8-chip instance; a unit costs 100k, renting 8 chips 8 x 2 x 730 = 11,680 USD per
    period. Rented chips in our facility pay energy and hosting like owned ones, so renting
    wins while n x 11,680 < 100,000 (up to 8 periods). When the provider powers them, a
    rented period also saves running(watts): at 4 kW (979.68 USD) renting wins while
    n x (11,680 - 979.68) < 100,000, i.e. up to 9 periods."""
    skus = [sku("g", chips_per_unit=8, price_usd=100_000, rent_usd_per_chip_hour=2.0,
                w_per_chip=watts / 8)]  # fmt: skip
    cand = candidate("c", units={"g": 8}, rates=both("w", 10, 10), power_w=watts)
    data = make_data(
        skus=skus, candidates=[cand], demand={"w": 1}, n_periods=n_periods,
        rented_power=rented_power,
    )  # fmt: skip
    plan = solve_plan(data, "exact")
    rent_period = 8 * 2.0 * 730
    run = running(watts)
    paid_by_us = run if rented_power == "facility" else 0.0
    rent_cost = n_periods * (rent_period + paid_by_us)
    buy_cost = 100_000 + n_periods * run
    assert (rent_cost < buy_cost) == rents
    assert plan.rentals.empty != rents
    assert plan.purchases.empty == rents
    assert plan.total_cost_usd == pytest.approx(min(rent_cost, buy_cost), rel=1e-9)
    mw = plan.power.set_index("period")["facility_mw"]
    # Never below zero, not even by solver noise (-0 on a printed report)
    assert (mw >= 0).all() and (plan.costs[["energy_usd", "hosting_usd"]] >= 0).all().all()
    if rents and rented_power == "provider":  # nothing of ours is powered
        assert (mw.abs() < 1e-12).all()
        assert plan.costs[["energy_usd", "hosting_usd"]].abs().to_numpy().max() < 1e-6
    else:
        assert mw.to_numpy() == pytest.approx([watts * 1.3 / 1e6] * n_periods)


def test_running_cost_per_watt_is_what_the_model_charges() -> None:
    """The pruning's and penalty's running cost per watt-hour (Settings) equals energy +
    hosting on facility power as the formulation charges them: one owned 4 kW instance for
    one 730 h period at load factor 1."""
    from planner.model_data import Settings

    assert Settings().running_usd_per_w_hour * 730 == pytest.approx(RUN_USD_PER_W, rel=1e-12)
    data = make_data(skus=one_sku(), candidates=[candidate("c", units={"g": 8},
                     rates=both("w", 10, 10), power_w=4_000)], demand={"w": 1})  # fmt: skip
    plan = solve_plan(data, "exact")
    charged = float(plan.costs[["energy_usd", "hosting_usd"]].sum().sum())
    assert charged == pytest.approx(4_000 * 730 * Settings().running_usd_per_w_hour, rel=1e-9)


def test_provider_powered_rentals_do_not_count_against_the_power_budget() -> None:
    """A 0.002 MW budget powers no 4 kW instance (5.2 MW x 1e-3 with PUE 1.3): with the
    provider powering rented chips the demand is served on rented chips; with rented racks
    in our facility nothing can be served. Renting idle chips is never a way to lower
    facility power (the rented chips must be in use)."""
    skus = [sku("g", chips_per_unit=8, price_usd=100_000, rent_usd_per_chip_hour=2.0,
                w_per_chip=500.0)]  # fmt: skip
    cand = candidate("c", units={"g": 8}, rates=both("w", 10, 10), power_w=4_000)
    for rented_power, served in (("provider", True), ("facility", False)):
        data = make_data(skus=skus, candidates=[cand], demand={"w": 4}, n_periods=2,
                         power_budget_mw=0.002, rented_power=rented_power)  # fmt: skip
        plan = solve_plan(data, "exact")
        assert (plan.unserved_rps < 1e-9) == served, rented_power
        if served:
            fleet = plan.fleet
            assert (fleet["rented_chips"] <= fleet["used_chips"] + 1e-9).all()
            assert plan.rentals["chips"].tolist() == [8.0, 8.0]
            assert plan.total_cost_usd == pytest.approx(2 * 8 * 2.0 * 730, rel=1e-9)


def test_hand_made_candidates_must_draw_their_rented_chips_watts() -> None:
    skus = [sku("g", rent_usd_per_chip_hour=2.0, w_per_chip=1_000.0)]
    cand = candidate("c", units={"g": 8}, rates=both("w", 10, 10), power_w=4_000)
    with pytest.raises(ValueError, match="candidate c: power_w 4000 W is below the 8000 W"):
        build_model(make_data(skus=skus, candidates=[cand], demand={"w": 1}))
    data = make_data(skus=skus, candidates=[cand], demand={"w": 1}, rented_power="facility")
    m = build_model(data)  # rented racks in our hall: power as given, rentals not netted
    t = data.period_names[0]
    repn = generate_standard_repn(m.e_power_mw[t], compute_values=True)
    coef = {v.name: c for v, c in zip(repn.linear_vars, repn.linear_coefs, strict=True)}
    assert coef == {f"v_instances[c,{t}]": pytest.approx(4_000 * data.settings.pue / 1e6)}


def test_lead_time_leaves_first_period_unserved() -> None:
    data = make_data(
        skus=one_sku(lead=1),
        n_periods=2,
        demand={"w": 10},
        candidates=[candidate("c", units={"g": 8}, rates=both("w", 40, 40))],
    )
    plan = solve_plan(data, "exact")  # 10 x (1/40 + 1/40) / 0.9 -> 1 instance
    assert plan.purchases[["period", "units"]].values.tolist() == [["p0", 1]]
    assert plan.unserved[["period", "requests_per_s"]].values.tolist() == [["p0", 10.0]]
    assert plan.fleet.set_index("period")["owned_chips"].to_dict() == {"p0": 0.0, "p1": 8.0}


def test_availability_date_blocks_early_purchases() -> None:
    data = make_data(
        skus=one_sku(first_buy=1),
        n_periods=2,
        demand={"w": 10},
        candidates=[candidate("c", units={"g": 8}, rates=both("w", 40, 40))],
    )
    model = build_model(data)
    assert list(model.v_buy) == [("g", "p1")]  # no variable before the SKU is buyable
    plan = solve_plan(data, "exact")
    assert plan.purchases["period"].tolist() == ["p1"]
    assert plan.unserved["period"].tolist() == ["p0"]


def test_retirement_triggers_a_purchase_when_the_old_fleet_leaves() -> None:
    data = make_data(
        skus=one_sku(),
        n_periods=3,
        demand={"w": 10},
        existing=[{"sku": "g", "chips": 8, "retire_period": 2}],
        candidates=[candidate("c", units={"g": 8}, rates=both("w", 40, 40))],
    )
    plan = solve_plan(data, "exact")
    assert plan.purchases[["period", "units"]].values.tolist() == [["p2", 1]]
    assert plan.unserved.empty
    assert plan.costs["capex_usd"].sum() == pytest.approx(800_000)


def test_lifetime_forces_a_repurchase() -> None:
    data = make_data(
        skus=one_sku(life=1),
        n_periods=2,
        demand={"w": 10},
        candidates=[candidate("c", units={"g": 8}, rates=both("w", 40, 40))],
    )
    plan = solve_plan(data, "exact")
    assert plan.purchases[["period", "units"]].values.tolist() == [["p0", 1], ["p1", 1]]


def test_existing_fleet_is_used_before_buying() -> None:
    rates = both("w", 20, 20)  # 0.1 s per request: 50 req/s need ceil(5 / 0.9) = 6
    data = make_data(
        skus=one_sku(),
        demand={"w": 50},
        existing=[{"sku": "g", "chips": 32, "retire_period": 1}],
        candidates=[candidate("c", units={"g": 8}, rates=rates)],
    )
    plan = solve_plan(data, "exact")
    instances = math.ceil(50 * (1 / 20 + 1 / 20) / UTIL)  # 6 -> 48 chips
    units = math.ceil((instances * 8 - 32) / 8)  # 2
    assert plan.purchases["units"].tolist() == [units]
    assert plan.fleet["owned_chips"].tolist() == [32 + 8 * units]


def _hungry_and_efficient(**settings: object):
    skus = [
        sku("a", chips_per_unit=8, price_usd=100_000),
        sku("b", chips_per_unit=8, price_usd=300_000),
    ]
    cands = [
        candidate("on_a", units={"a": 8}, rates=both("w", 20, 20), power_w=8_000),
        candidate("on_b", units={"b": 8}, rates=both("w", 20, 20), power_w=2_000),
    ]
    # 36 req/s x 0.1 s / 0.9 = 4 instances
    return make_data(skus=skus, candidates=cands, demand={"w": 36}, **settings)


def _counts(plan: Plan) -> dict[str, float]:
    return dict(zip(plan.instances["candidate"], plan.instances["count"], strict=True))


def test_cheap_sku_without_power_budget() -> None:
    plan = solve_plan(_hungry_and_efficient(), "exact")
    assert _counts(plan) == {"on_a": 4}


def test_power_budget_forces_the_efficient_sku() -> None:
    # 20 kW facility: a instance = 8 kW x 1.3 = 10.4 kW, b = 2.6 kW. 1 a + 3 b = 18.2 kW
    # fits and costs 100k + 900k; 2 a + 2 b = 26 kW does not; 4 b costs 1.2M.
    plan = solve_plan(_hungry_and_efficient(power_budget_mw=0.020), "exact")
    assert _counts(plan) == {"on_a": 1, "on_b": 3}
    assert plan.power["facility_mw"].max() == pytest.approx(0.0182)
    assert plan.unserved.empty


def test_power_objective_minimises_peak_then_cost() -> None:
    plan = solve_plan(_hungry_and_efficient(objective="power"), "exact")
    assert _counts(plan) == {"on_b": 4}
    assert plan.power["facility_mw"].max() == pytest.approx(4 * 2_000 * 1.3 / 1e6)
    assert plan.objective == pytest.approx(4 * 2_000 * 1.3 / 1e6, rel=1e-3)
    assert plan.purchases["units"].sum() == 4  # the cost stage buys nothing extra
    assert "lexicographic" in plan.message


def test_peak_power_cap_is_an_epsilon_constraint() -> None:
    plan = solve_plan(_hungry_and_efficient(peak_power_cap_mw=0.0182), "exact")
    assert _counts(plan) == {"on_a": 1, "on_b": 3}


def test_supply_cap_limits_purchases_per_period() -> None:
    data = make_data(
        skus=one_sku(cap_units=1),
        n_periods=2,
        demand={"w": [20, 20]},
        candidates=[candidate("c", units={"g": 8}, rates=both("w", 20, 20))],
    )
    # 20 req/s x 0.1 s / 0.9 = 3 instances = 3 units; only 1 arrives per period.
    plan = solve_plan(data, "exact")
    assert plan.purchases["units"].tolist() == [1, 1]
    served = plan.routing.groupby(["period", "phase"])["load_rps"].sum()
    assert served[("p0", "prefill")] == pytest.approx(1 * UTIL / 0.1)  # one instance
    assert served[("p1", "prefill")] == pytest.approx(2 * UTIL / 0.1)


def test_capex_budget_per_period() -> None:
    data = make_data(
        skus=one_sku(),
        n_periods=2,
        demand={"w": [10, 10]},
        capex_budget_usd_per_period=800_000,
        candidates=[candidate("c", units={"g": 8}, rates=both("w", 10, 10))],
    )
    plan = solve_plan(data, "exact")  # 3 instances needed, 1 unit affordable per period
    assert plan.purchases["units"].tolist() == [1, 1]
    assert plan.costs["capex_usd"].max() <= 800_000 + 1e-6


def test_amortized_capex_charges_price_over_lifetime() -> None:
    data = make_data(
        skus=one_sku(life=10),
        n_periods=2,
        demand={"w": 40},
        cost_basis="amortized",
        candidates=[candidate("c4", units={"g": 4}, rates=both("w", 10, 5))],
    )
    plan = solve_plan(data, "exact")
    per_unit_period = 800_000 * 730 / (10 * 730)
    assert plan.costs["capex_usd"].tolist() == pytest.approx([7 * per_unit_period] * 2)
    assert plan.purchases["capex_usd"].sum() == pytest.approx(7 * 800_000)  # cash view


def test_energy_uses_the_load_factor() -> None:
    data = make_data(
        skus=one_sku(),
        demand={"w": 40},
        load_factor=0.5,
        candidates=[candidate("c4", units={"g": 4}, rates=both("w", 10, 5))],
    )
    plan = solve_plan(data, "exact")
    kw = 14 * 4_000 * 1.3 / 1e3
    assert plan.costs["energy_usd"].iloc[0] == pytest.approx(kw * 730 * 0.5 * 0.08)
    assert plan.costs["hosting_usd"].iloc[0] == pytest.approx(kw * 130)


def test_relaxed_instances_report_rounding() -> None:
    data = make_data(
        skus=one_sku(),
        demand={"w": 40},
        relax_instances=True,
        candidates=[candidate("c4", units={"g": 4}, rates=both("w", 10, 5))],
    )
    plan = solve_plan(data, "exact")
    assert plan.instances_relaxed
    assert plan.instances["count"].iloc[0] == pytest.approx(40 * 0.3 / UTIL)
    assert plan.rounding[["relaxed_count", "rounded_count"]].values.tolist() == [
        [pytest.approx(40 * 0.3 / UTIL), 14]
    ]


def test_workload_without_candidate_for_a_phase_is_well_formed() -> None:
    cand = candidate("pre", units={"g": 1}, rates={("w", "prefill"): 10}, topology="pd")
    data = make_data(skus=one_sku(), candidates=[cand], demand={"w": 5, "v": 2})
    model = build_model(data)
    row = model.c_demand_served["w", "decode", "p0"]
    assert pyo.value(row.upper) == 5.0
    assert [v.name for v in row.body.args] == ["v_unserved[w,p0]"]
    plan = solve_plan(data, "exact")
    assert plan.unserved.set_index("workload")["requests_per_s"].to_dict() == {"v": 2, "w": 5}
    assert plan.purchases.empty  # serving prefill alone is worthless


def test_golden_model_size() -> None:
    """Pinned counts for one small fixture: a change in the formulation shows up here."""
    skus = [sku("a", rent_usd_per_chip_hour=3.0), sku("b", first_buy=1, lead=1)]
    cands = [
        candidate("col", units={"a": 4}, rates=both("w", 10, 5)),
        candidate("pre", units={"b": 2}, rates={("w", "prefill"): 30}, topology="pd"),
        candidate("dec", units={"a": 2, "b": 2}, rates={("w", "decode"): 4}, topology="afd"),
    ]
    data = make_data(
        skus=skus,
        candidates=cands,
        demand={"w": [5, 6, 7]},
        n_periods=3,
        existing=[{"sku": "b", "chips": 8, "retire_period": 1}],
        power_budget_mw=1.0,
        capex_budget_usd=5e6,
    )
    size = model_size(build_model(data))
    # b exists in p0 only (retires at 1), is bought from p1 and arrives a period later, so
    # candidates needing b have no instances in p1.
    # buys: a in p0..p2, b in p1 (p2 would arrive after the horizon) = 4; fleet 2 x 3;
    # rent a x 3; instances col 3 + pre 2 + dec 2 = 7; loads col 2 x 3 + pre 2 + dec 2 = 10;
    # unserved 3.
    assert size == {
        "variables": 4 + 6 + 3 + 7 + 10 + 3,
        "integer_variables": 4 + 7,
        # demand 6, time 7, colocated 3, fit a 3 + b 2, rented a in use 3, fleet 6,
        # power 3, capex 1, load-needs-an-instance, one per load: 10, and
        # instances-cover-demand, one per (workload, phase, period) with a load: 6
        "constraints": 6 + 7 + 3 + 5 + 3 + 6 + 3 + 1 + 10 + 6,
    }


def test_bad_phase_is_reported_before_the_build() -> None:
    cand = candidate("c", units={"g": 1}, rates={("w", "draft"): 10})
    with pytest.raises(PlannerInputError, match=r"rates\.phase.*draft"):
        build_model(make_data(skus=one_sku(), candidates=[cand], demand={"w": 1}))


@pytest.mark.parametrize("seed", range(8))
def test_load_needs_an_instance_only_tightens_the_relaxation(seed: int) -> None:
    """The family is a valid inequality: the MIP optimum is the same with it deactivated,
    and the LP relaxation's bound with it is never lower (and on these small-demand
    fixtures, where one instance outruns a workload, usually higher)."""
    from helpers_planning import random_data

    from planner.solve import SolverProfile, solve

    exact = SolverProfile(mip_rel_gap=0.0, time_limit_s=60)
    data = random_data(seed, n_skus=3, n_cands=4, n_periods=3)
    with_cut = build_model(data)
    without = build_model(data)
    if hasattr(without, "c_load_needs_an_instance"):
        without.c_load_needs_an_instance.deactivate()
    a, b = solve(with_cut, exact), solve(without, exact)
    assert a.status == b.status == "optimal"
    assert a.objective == pytest.approx(b.objective, rel=1e-9, abs=1e-6)

    def lp_bound(model: pyo.ConcreteModel) -> float:
        for v in model.component_data_objects(pyo.Var):
            v.domain = pyo.NonNegativeReals
        r = solve(model, exact)
        assert r.status == "optimal" and r.objective is not None
        return r.objective

    assert lp_bound(build_model(data)) >= lp_bound(without) - 1e-6 * abs(a.objective or 1)


def test_load_needs_an_instance_closes_the_fixed_charge_gap_by_hand() -> None:
    """1 req/s against an instance that does 100 (8 chips = one $800k server).

    Without the family the relaxation opens (1/100 + 1/100) / 0.9 = 1/45 of an instance
    (a colocated instance spends its time on both phases) and pays for 1/45 of a server;
    with it, v_load <= 1 x v_instances forces a whole instance, so the relaxation already
    pays for the whole server: its bound is the integer optimum. (c_instances_cover_demand
    sums the same bound over candidates, min(45, 1) x v_instances >= 1, so it is switched
    off too for the "without" model.)"""
    skus = [sku("g", chips_per_unit=8, price_usd=800_000.0, w_per_chip=0.0)]
    cands = [candidate("c", units={"g": 8}, rates=both("w", 100, 100), power_w=0.0)]
    data = make_data(skus=skus, candidates=cands, demand={"w": 1.0}, n_periods=1)

    def relaxed(model: pyo.ConcreteModel) -> pyo.ConcreteModel:
        for v in model.component_data_objects(pyo.Var):
            v.domain = pyo.NonNegativeReals
        return model

    from planner.solve import SolverProfile, solve

    exact = SolverProfile(mip_rel_gap=0.0, time_limit_s=60)
    mip = solve(build_model(data), exact)
    with_cut = solve(relaxed(build_model(data)), exact)
    without_model = relaxed(build_model(data))
    without_model.c_load_needs_an_instance.deactivate()
    without_model.c_instances_cover_demand.deactivate()
    without = solve(without_model, exact)
    assert mip.objective == pytest.approx(800_000.0, rel=1e-6)
    assert with_cut.objective == pytest.approx(800_000.0, rel=1e-6)
    assert without.objective == pytest.approx(800_000.0 / 45, rel=1e-6)


def _mixed_fleet(seed: int) -> object:
    """A tiny seeded fleet with every kind of row the cover family sums: colocated
    candidates serving two workloads, prefill and decode pools, demand that one instance
    sometimes outruns and sometimes not."""
    import numpy as np

    rng = np.random.default_rng(seed)
    skus = [sku("a", chips_per_unit=8, price_usd=4e5), sku("b", chips_per_unit=4, price_usd=3e5)]
    r = lambda lo, hi: float(rng.integers(lo, hi))  # noqa: E731
    cands = [
        candidate("col_a", units={"a": int(rng.choice([1, 2, 4]))},
                  rates={**both("x", r(5, 40), r(5, 40)), **both("y", r(5, 40), r(5, 40))}),
        candidate("col_b", units={"b": 1}, rates=both("x", r(2, 15), r(2, 15))),
        candidate("pre_b", units={"b": 2}, rates={("x", "prefill"): r(10, 60),
                                                  ("y", "prefill"): r(10, 60)}, topology="pd"),
        candidate("dec_a", units={"a": 2}, rates={("x", "decode"): r(5, 30),
                                                  ("y", "decode"): r(5, 30)}, topology="pd"),
    ]  # fmt: skip
    demand = {w: [r(1, 60) for _ in range(2)] for w in ("x", "y")}
    return make_data(skus=skus, candidates=cands, demand=demand, n_periods=2)


@pytest.mark.parametrize("seed", range(6))
def test_instances_cover_demand_is_redundant(seed: int) -> None:
    """The family restates the time budget and c_load_needs_an_instance summed over
    candidates (its docstring): switching it off changes neither the MIP optimum nor the
    LP relaxation's bound."""
    from planner.solve import SolverProfile, solve

    exact = SolverProfile(mip_rel_gap=0.0, time_limit_s=60)
    data = _mixed_fleet(seed)

    def optimum(relaxed: bool, with_family: bool) -> float:
        m = build_model(data)
        assert len(m.c_instances_cover_demand) == 8  # 2 workloads x 2 phases x 2 periods
        if not with_family:
            m.c_instances_cover_demand.deactivate()
        if relaxed:
            for v in m.component_data_objects(pyo.Var):
                v.domain = pyo.NonNegativeReals
        r = solve(m, exact)
        assert r.status == "optimal" and r.objective is not None
        return r.objective

    for relaxed in (False, True):
        assert optimum(relaxed, True) == pytest.approx(optimum(relaxed, False), rel=1e-7)


def test_instances_cover_demand_coefficients_by_hand() -> None:
    """Colocated 10 / 5 req/s per phase at util 0.9: 0.9 / (1/10 + 1/5) = 3 req/s of
    each phase per instance; a decode pool at 4 req/s carries 3.6. Demand 3.3 caps the
    colocated cover, not the pool's: rows read 3 x col + 3.3 x dec + unserved >= 3.3 for
    decode, 3 x col + unserved >= 3.3 for prefill (the pool serves decode only)."""
    cands = [
        candidate("col", units={"g": 1}, rates=both("w", 10, 5)),
        candidate("dec", units={"g": 1}, rates={("w", "decode"): 4}, topology="pd"),
    ]
    data = make_data(skus=one_sku(), candidates=cands, demand={"w": 3.3})
    m = build_model(data)

    def coefs(phase: str) -> dict[str, float]:
        repn = generate_standard_repn(m.c_instances_cover_demand["w", phase, "p0"].body)
        return {v.name: c for v, c in zip(repn.linear_vars, repn.linear_coefs, strict=True)}

    assert UTIL == 0.9
    assert coefs("decode") == pytest.approx(
        {"v_instances[col,p0]": 3.0, "v_instances[dec,p0]": 3.3, "v_unserved[w,p0]": 1.0}
    )
    assert coefs("prefill") == pytest.approx({"v_instances[col,p0]": 3.0, "v_unserved[w,p0]": 1.0})
    assert pyo.value(m.c_instances_cover_demand["w", "decode", "p0"].lower) == 3.3


def test_only_skus_solves_the_restriction_and_restores_the_model() -> None:
    """Inside `only_skus(m, data, {"b"})` the cheap SKU a is off limits: the 4 instances
    go on b (4 x 300k), as a model built from restrict_to would buy; afterwards the
    model is as before (the same optimum on a, nothing left fixed)."""
    from planner.formulation import only_skus
    from planner.planning import restrict_to
    from planner.solve import solve

    data = _hungry_and_efficient()
    m = build_model(data)
    free = solve(m, "exact")
    before = {v.name: v.value for v in m.component_data_objects(pyo.Var)}
    with only_skus(m, data, {"b"}):
        inside = solve(m, "exact")
        counts = {k[0]: v.value for k, v in m.v_instances.items() if v.value}
    assert counts == {"on_b": 4}
    assert inside.objective == pytest.approx(
        solve_plan(restrict_to(data, {"b"}), "exact").objective
    )
    assert inside.objective > free.objective
    assert not any(v.fixed for v in m.component_data_objects(pyo.Var))
    assert {v.name: v.value for v in m.component_data_objects(pyo.Var)} == before
    assert solve(m, "exact").objective == pytest.approx(free.objective)
