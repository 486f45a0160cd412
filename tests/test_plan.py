"""Plan tables, JSON round trip, files, and the diagnosis of unserved demand."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from helpers_planning import both, candidate, make_data, random_data, sku

from planner.model_data import PlanningData
from planner.plan import TABLE_SCHEMAS, Plan
from planner.plan_read import explain_unserved, solve_plan
from planner.solve import SolveResult, SolverProfile, solve

EXACT = SolverProfile(solver="highs", mip_rel_gap=0.0, time_limit_s=60)


def micro(**settings: object) -> PlanningData:
    """14 instances of 4 chips serve 40 req/s: 7 units of 800k (see test_formulation)."""
    return make_data(
        skus=[sku("g", chips_per_unit=8, price_usd=800_000)],
        candidates=[candidate("c4", units={"g": 4}, rates=both("w", 10, 5))],
        demand={"w": 40},
        **settings,
    )


def mixed() -> PlanningData:
    """Two SKUs (one rentable), colocated + PD pools, three periods, an existing fleet."""
    skus = [
        sku("a", rent_usd_per_chip_hour=3.0, price_usd=400_000),
        sku("b", chips_per_unit=4, price_usd=250_000, lead=1),
    ]
    cands = [
        candidate("col", units={"a": 4}, rates=both("w", 10, 5)),
        candidate(
            "pre",
            units={"b": 2},
            rates={("w", "prefill"): 30, ("v", "prefill"): 8},
            topology="pd",
            power_w=1_500,
        ),
        candidate(
            "dec",
            units={"a": 2},
            rates={("w", "decode"): 4, ("v", "decode"): 2},
            topology="pd",
            power_w=2_500,
        ),
    ]
    return make_data(
        skus=skus,
        candidates=cands,
        n_periods=3,
        demand={"w": [10, 20, 30], "v": [5, 5, 12]},
        existing=[{"sku": "a", "chips": 8, "retire_period": 2}],
    )


# -- tables -------------------------------------------------------------------------------


def test_tables_have_their_schemas() -> None:
    plan = solve_plan(mixed(), EXACT)
    for name, schema in TABLE_SCHEMAS.items():
        table = getattr(plan, name)
        assert list(table.columns) == list(schema), name
        assert [str(t) for t in table.dtypes] == [
            pd.Series(dtype=d).dtype.name for d in schema.values()
        ], name


def test_tables_are_consistent() -> None:
    data = mixed()
    plan = solve_plan(data, EXACT)
    assert plan.status == "optimal"
    # Every request of every phase is routed or unserved.
    served = plan.routing.groupby(["workload", "phase", "period"])["share"].sum()
    lost = plan.unserved.set_index(["workload", "period"])["share"]
    for (w, _p, t), share in served.items():
        assert share + lost.get((w, t), 0.0) == pytest.approx(1.0)
    assert (plan.utilization["busy_fraction"] <= data.settings.util_max + 1e-9).all()
    fleet = plan.fleet
    assert (fleet["used_chips"] <= fleet["owned_chips"] + fleet["rented_chips"] + 1e-9).all()
    costs = plan.costs
    parts = costs[["capex_usd", "rental_usd", "energy_usd", "hosting_usd"]].sum(axis=1)
    assert costs["total_usd"].tolist() == pytest.approx(parts.tolist())
    assert plan.power["facility_mw"].tolist() == pytest.approx(
        (plan.power["it_mw"] * data.settings.pue).tolist()
    )
    # v's prefill pool needs b, which arrives one period after its first purchase.
    assert plan.unserved[["workload", "period"]].values.tolist() == [["v", "p0"]]
    assert plan.objective == pytest.approx(
        plan.total_cost_usd + plan.penalty_usd_per_rps * plan.unserved_rps, rel=1e-8
    )


def test_micro_plan_tables_by_hand() -> None:
    plan = solve_plan(micro(), EXACT)
    assert plan.purchases.to_dict("records") == [
        {"sku": "g", "period": "p0", "units": 7, "chips": 56, "capex_usd": 5_600_000.0}
    ]
    assert plan.fleet.to_dict("records") == [
        {"sku": "g", "period": "p0", "owned_chips": 56.0, "rented_chips": 0.0, "used_chips": 56.0}
    ]
    assert plan.routing["load_rps"].tolist() == [40.0, 40.0]
    assert plan.utilization["busy_fraction"].iloc[0] == pytest.approx(40 * 0.3 / 14)
    assert plan.power["it_mw"].iloc[0] == pytest.approx(14 * 4_000 / 1e6)
    assert plan.power["budget_mw"].isna().all()


def test_plan_without_a_solution_has_empty_tables() -> None:
    data = micro()
    result = solve(data, EXACT)
    failed = SolveResult("error", None, None, None, "highs", "boom", {}, result.model)
    plan = Plan.from_solution(result.model, data, failed)
    assert plan.status == "error" and plan.purchases.empty and plan.costs.empty


# -- serialisation -------------------------------------------------------------------------


def test_json_round_trip_is_exact() -> None:
    plan = solve_plan(mixed(), EXACT)
    again = Plan.from_json(plan.to_json())
    assert again == plan
    assert again.timings == plan.timings
    for name in TABLE_SCHEMAS:
        pd.testing.assert_frame_equal(getattr(again, name), getattr(plan, name))
    json.loads(plan.to_json())  # strict JSON: no NaN literals


def test_a_plan_saved_before_rented_power_reads_as_facility() -> None:
    """Plans written before the setting existed were solved with rented chips drawing
    facility power: that is how they must read back (a new plan keeps its own setting)."""
    plan = solve_plan(mixed(), EXACT)
    assert plan.settings.rented_power == "provider"
    raw = json.loads(plan.to_json())
    assert Plan.from_dict(raw).settings.rented_power == "provider"
    del raw["settings"]["rented_power"]
    assert Plan.from_dict(raw).settings.rented_power == "facility"


def test_plan_json_records_its_schema_version_and_refuses_a_newer_one(tmp_path) -> None:
    """plan.json says which layout it is; a file from a newer planner is an input error
    naming the file and both versions, and one from before versions were written (no
    field) still reads."""
    from planner.cli_report import load_plan
    from planner.errors import PlannerInputError
    from planner.plan import PLAN_SCHEMA_VERSION

    plan = solve_plan(mixed(), EXACT)
    raw = json.loads(plan.to_json())
    assert raw["schema_version"] == PLAN_SCHEMA_VERSION
    del raw["schema_version"]
    assert Plan.from_dict(raw) == plan
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({**raw, "schema_version": PLAN_SCHEMA_VERSION + 1}))
    with pytest.raises(PlannerInputError) as err:
        load_plan(path)
    text = str(err.value)
    assert str(path) in text
    assert f"schema_version {PLAN_SCHEMA_VERSION + 1}" in text
    assert f"versions 0 to {PLAN_SCHEMA_VERSION}" in text


def test_json_round_trip_keeps_inputs_and_nan() -> None:
    plan = solve_plan(micro(power_budget_mw=1.0, relax_instances=True), EXACT)
    plan = plan.with_inputs({"demand_source": "x.csv", "rows": [{"a": 1}]})
    again = Plan.from_json(plan.to_json())
    assert again == plan and again.inputs == plan.inputs
    no_budget = solve_plan(micro(), EXACT)
    assert Plan.from_json(no_budget.to_json()).power["budget_mw"].isna().all()


def test_write_tables(tmp_path) -> None:
    plan = solve_plan(mixed(), EXACT)
    out = plan.write_tables(tmp_path / "plan")
    assert (out / "plan.json").is_file()
    for name in TABLE_SCHEMAS:
        table = pd.read_csv(out / f"{name}.csv")
        assert list(table.columns) == list(TABLE_SCHEMAS[name])
    assert Plan.from_json((out / "plan.json").read_text()) == plan


# -- explain_unserved ----------------------------------------------------------------------


def test_capex_budget_is_named_with_the_amount_it_must_move() -> None:
    # 4M buys 5 units = 10 instances = 30 req/s; serving 40 needs 7 units = 5.6M.
    data = micro(capex_budget_usd=4_000_000)
    plan = solve_plan(data, EXACT)
    assert plan.unserved_rps == pytest.approx(10.0)
    why = explain_unserved(plan, data, EXACT)
    assert why[["workload", "cause", "limit"]].values.tolist() == [
        ["w", "limit", "capex_budget_usd"]
    ]
    row = why.iloc[0]
    assert row["current"] == 4_000_000
    assert row["needed"] == pytest.approx(5_600_000)
    assert row["move"] == pytest.approx(1_600_000)
    assert row["unit"] == "USD"


def test_power_budget_is_named_with_the_megawatts_needed() -> None:
    # An instance draws 4 kW x 1.3 = 5.2 kW; 50 kW runs 9 of the 14 needed.
    data = micro(power_budget_mw=0.05)
    plan = solve_plan(data, EXACT)
    assert plan.unserved_rps == pytest.approx(40 - 9 * 0.9 / 0.3)
    why = explain_unserved(plan, data, EXACT).iloc[0]
    assert (why["cause"], why["limit"]) == ("limit", "power_budget_mw")
    assert why["needed"] == pytest.approx(14 * 5.2e-3)
    assert why["move"] == pytest.approx(14 * 5.2e-3 - 0.05)


def test_supply_cap_is_named() -> None:
    data = make_data(
        skus=[sku("g", cap_units=1)],
        n_periods=2,
        demand={"w": 20},
        candidates=[candidate("c", units={"g": 8}, rates=both("w", 20, 20))],
    )
    plan = solve_plan(data, EXACT)  # 3 units needed, 1 arrives per period
    why = explain_unserved(plan, data, EXACT).iloc[0]
    assert (why["limit"], why["current"], why["needed"]) == (
        "supply_cap_units_per_period",
        1.0,
        3.0,
    )


def test_no_candidate_and_not_available_are_reported() -> None:
    data = make_data(
        skus=[sku("g", first_buy=1)],
        n_periods=2,
        demand={"w": 10, "v": 3},
        candidates=[candidate("c", units={"g": 8}, rates=both("w", 40, 40))],
    )
    plan = solve_plan(data, EXACT)
    why = explain_unserved(plan, data, EXACT).set_index("workload")
    assert why.loc["v", "cause"] == "no_candidate"
    assert "prefill/decode" in why.loc["v", "detail"]
    assert why.loc["w", "cause"] == "not_available"
    assert why.loc["w", "periods"] == "p0"


def test_limit_that_binds_partly() -> None:
    # 16 kW runs 3 instances (15.6 kW); 1.6M buys 2 units = 4 instances. Lifting the power
    # budget alone serves one more instance's worth (3 req/s), then the capex binds.
    data = micro(power_budget_mw=0.016, capex_budget_usd=1_600_000)
    plan = solve_plan(data, EXACT)
    assert plan.unserved_rps == pytest.approx(40 - 3 * 3)
    why = explain_unserved(plan, data, EXACT).set_index("limit")
    power = why.loc["power_budget_mw"]
    assert power["cause"] == "limit_partial"
    assert power["needed"] == pytest.approx(4 * 5.2e-3)
    assert power["unserved_after_rps"] == pytest.approx(40 - 4 * 3)
    assert list(why.index) == ["power_budget_mw"]  # lifting capex alone changes nothing


def test_limits_that_bind_only_together() -> None:
    # Capex 1.6M and a supply cap of 2 units both stop at 2 units: lifting either alone
    # changes nothing.
    data = make_data(
        skus=[sku("g", cap_units=2)],
        demand={"w": 40},
        capex_budget_usd=1_600_000,
        candidates=[candidate("c4", units={"g": 4}, rates=both("w", 10, 5))],
    )
    plan = solve_plan(data, EXACT)
    why = explain_unserved(plan, data, EXACT)
    assert why[["cause", "limit"]].values.tolist() == [
        ["limits_combined", "capex_budget_usd+supply_cap_units_per_period"]
    ]


def test_nothing_to_explain() -> None:
    data = random_data(1)
    plan = solve_plan(data, EXACT)
    if plan.unserved.empty:
        assert explain_unserved(plan, data, EXACT).empty


# -- hosting basis ---------------------------------------------------------------------


@pytest.mark.parametrize(("basis", "hosted_kw"), [("in_use", 8.0), ("installed", 16.0)])
def test_hosting_is_charged_on_power_in_use_or_on_every_chip_installed(
    basis: str, hosted_kw: float
) -> None:
    """10 req/s need one instance of 8 chips (half its time at 40 + 40 req/s; 8 kW all-in),
    but units come in 16 chips.
    In use: 8 kW x PUE 1.3 x 130 USD/kW-month over one month (730 h) = 1,352 USD.
    Installed: the idle half of the unit is hosted too, 16 kW: 2,704 USD. Energy is
    charged on power in use either way."""
    data = make_data(
        skus=[sku("g", chips_per_unit=16, price_usd=100_000, w_per_chip=1_000)],
        candidates=[candidate("c8", units={"g": 8}, rates=both("w", 40, 40), power_w=8_000)],
        demand={"w": 10},
        hosting_basis=basis,
    )
    plan = solve_plan(data, EXACT)
    (cost,) = plan.costs.itertuples()
    assert plan.instances["count"].sum() == 1 and plan.purchases["units"].sum() == 1
    assert cost.hosting_usd == pytest.approx(hosted_kw * 1.3 * 130.0)
    assert cost.energy_usd == pytest.approx(8.0 * 1.3 * 730 * 0.08)


def test_the_unserved_penalty_outweighs_hosting_a_whole_rack_for_one_small_instance() -> None:
    """Hosting "installed" charges every chip of a unit bought: one 1-chip instance on a
    72-chip rack hosts 72 kW (1 kW each) x PUE 1.3 x 10,000 USD/kW-month = 936,000 USD a
    month, where the instance itself draws 1 kW (13,000 USD), less than a tenth of it per
    phase. With the user's penalty at 1 USD per req/s, the scaled penalty must still
    exceed what serving costs, so the plan serves the 1 req/s instead of leaving it
    unserved to save the rack's hosting."""
    from planner.formulation import unserved_penalty

    data = make_data(
        skus=[sku("r", chips_per_unit=72, price_usd=1_000, w_per_chip=1_000)],
        candidates=[candidate("c1", units={"r": 1}, rates=both("w", 40, 40), power_w=1_000)],
        demand={"w": 1.0},
        hosting_basis="installed",
        hosting_usd_per_kw_month=10_000.0,
        unserved_penalty_usd_per_rps=1.0,
    )
    serving_usd = 1_000 + 72 * 1.3 * 10_000.0 + 1 * 1.3 * 730 * 0.08
    assert unserved_penalty(data)[0] > serving_usd
    plan = solve_plan(data, EXACT)
    assert plan.unserved_rps == pytest.approx(0.0, abs=1e-9)
    assert plan.objective == pytest.approx(serving_usd, rel=1e-6)
