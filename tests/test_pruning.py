"""Candidate pruning before the MIP: the cost ranking follows the objective's cost basis,
and `exhaustive` turns the (heuristic) frontier pruning off."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from planner.candidates import (
    chip_hour_usd,
    cover_candidates,
    prune_frontier_keeping_covers,
    prune_to_frontier,
)
from planner.catalog import data_dir, load_catalog
from planner.cli import app
from planner.model_data import Settings
from planner.planning import Scenario, run_planning

HOURS = 2190.0


def sku_rows(**skus: dict) -> pd.DataFrame:
    base = {"chips_per_unit": 8, "unit_price_usd": np.nan, "rent_usd_per_chip_hour": np.nan,
            "all_in_w_per_chip": 1000.0, "first_rent_period": 0, "first_buy_period": 0,
            "lead_periods": 1, "lifetime_periods": 20, "supply_cap_units_per_period": np.nan,
            "period_hours": HOURS}  # fmt: skip
    return pd.DataFrame([{"sku": k, **base, **v} for k, v in skus.items()]).set_index("sku")


def decode_pair(rate_a: float, rate_b: float) -> pd.DataFrame:
    """Two decode candidates of workload w at 1000 W each: a on one chip of SKU x, b on
    one chip of SKU y, at `rate_a` and `rate_b` requests/s."""
    return pd.DataFrame({
        "candidate": ["a", "b"], "topology": ["pd", "pd"], "workload": ["w", "w"],
        "phase": ["decode", "decode"], "rate_rps": [rate_a, rate_b], "power_w": [1000.0, 1000.0],
        "description": ["", ""], "units": [{"x": 1}, {"y": 1}],
    })  # fmt: skip


def test_owned_chip_hour_follows_the_cost_basis() -> None:
    # 80,000 USD for 8 chips: 10,000 per chip; usable from period 1 (lead 1), lifetime 20.
    skus = sku_rows(x={"unit_price_usd": 80_000.0, "rent_usd_per_chip_hour": 9.0})
    st = Settings(rented_power="provider")
    running = 1000.0 * st.running_usd_per_w_hour
    # horizon of 6 periods: the price is paid once and the chip serves 5 of them
    assert chip_hour_usd(skus, st, 6)["x"] == pytest.approx(10_000 / (5 * HOURS) + running)
    # a horizon longer than the lifetime: spread over the lifetime
    assert chip_hour_usd(skus, st, 40)["x"] == pytest.approx(10_000 / (20 * HOURS) + running)
    # amortized: price / lifetime per hour owned, whatever the horizon
    amort = st.model_copy(update={"cost_basis": "amortized"})
    assert chip_hour_usd(skus, amort, 6)["x"] == pytest.approx(10_000 / (20 * HOURS) + running)
    # one period: nothing bought can arrive in time, so renting is the only way (9 USD/h)
    assert chip_hour_usd(skus, st, 1)["x"] == pytest.approx(9.0)
    assert math.isinf(chip_hour_usd(sku_rows(y={"unit_price_usd": 8e4}), st, 1)["y"])


def test_a_rental_is_not_pruned_for_a_purchase_the_horizon_cannot_repay() -> None:
    # A: 1 chip of X (10,000 USD, lifetime 20 quarters, no rental), 10 rps, 1000 W.
    # B: 1 chip of Y (rent 1.0 USD/h), 8 rps, 1000 W. No lead times. Per rps A is leaner in
    # power and, over its lifetime, cheaper: (0.23 + 0.34 running) / 10 against 1.0 / 8
    # USD/h. A 2-quarter horizon pays the whole price for 2 quarters of use:
    # (2.28 + 0.34) / 10 = 0.26 > 0.125, so B stays.
    skus = sku_rows(x={"unit_price_usd": 80_000.0, "lead_periods": 0},
                    y={"rent_usd_per_chip_hour": 1.0, "lead_periods": 0})  # fmt: skip
    table = decode_pair(10.0, 8.0)
    st = Settings(rented_power="provider")
    assert list(prune_to_frontier(table, skus, st, 2)["candidate"]) == ["a", "b"]
    amortized = st.model_copy(update={"cost_basis": "amortized"})
    assert list(prune_to_frontier(table, skus, amortized, 2)["candidate"]) == ["a"]


# voice.csv's first quarter on four SKUs: a few instances per workload, where whole
# instances decide the cheapest plan and the frontier pruning misses it (README).
SMALL = {"horizon": ["2027Q1", "2027Q1"],
         "allowed_skus": ["b200", "trainium2", "inferentia2", "h200-sxm"]}  # fmt: skip
VOICE = data_dir("demand") / "voice.csv"


@pytest.fixture(scope="module")
def both_ways() -> tuple:
    catalog = load_catalog()
    pruned = run_planning(VOICE, Scenario(**SMALL), catalog=catalog, explain=False)
    full = run_planning(VOICE, Scenario(**SMALL, exhaustive=True), catalog=catalog, explain=False)
    return pruned, full


def test_exhaustive_keeps_more_candidates_and_never_costs_more(both_ways) -> None:
    pruned, full = both_ways
    assert pruned.plan.status == full.plan.status == "optimal"
    assert pruned.verification.passed and full.verification.passed
    assert full.inputs.candidate_pairs > pruned.inputs.candidate_pairs
    assert full.inputs.scenario["exhaustive"] is True
    gap = full.plan.gap or 0.0
    assert full.plan.objective <= pruned.plan.objective * (1 + gap) + 1e-6
    # here it finds a plan cheaper by more than the solver's gap: pruning lost money
    assert full.plan.objective < pruned.plan.objective * (1 - 2e-3)


def test_cli_exhaustive_flag_reaches_the_scenario(tmp_path: Path) -> None:
    sc = tmp_path / "small.yaml"
    sc.write_text(json.dumps(SMALL))  # JSON is YAML
    args = ["plan", str(VOICE), "--scenario", str(sc), "--no-write", "--no-compare"]
    res = CliRunner().invoke(app, [*args, "--exhaustive"])
    assert res.exit_code == 0, res.output
    assert "frontier pruning" not in res.output
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "--exhaustive" in res.output  # the note on what the status holds among


def test_sweep_honours_exhaustive(both_ways) -> None:
    from planner.sweep import SweepRequest, parse_axes, run_sweep

    pruned, full = both_ways
    axes = tuple(parse_axes(["demand_scale=0.5,1"]))
    for sc, run in ((Scenario(**SMALL, exhaustive=True), full), (Scenario(**SMALL), pruned)):
        t = run_sweep(SweepRequest(VOICE, sc, axes)).table
        row = t[t["demand_scale"] == 1].iloc[0]
        assert row["status"] == "optimal"
        assert row["total_cost_usd"] == pytest.approx(run.plan.objective, rel=2e-3)


# --------------------------------------------------------------------------------------
# pruning "cover": whole-instance covers the frontier misses
# --------------------------------------------------------------------------------------


def _big_and_small() -> tuple[pd.DataFrame, pd.DataFrame, Settings]:
    """A: 100 rps on one chip of X (rent 10 USD/h); B: 10 rps on one chip of Y (rent 2
    USD/h); both 1000 W. Per request/s A is cheaper (0.10 against 0.20 USD/h) and leaner,
    so the frontier keeps A alone. At util_max 0.9 an instance carries 90 or 9 rps."""
    skus = sku_rows(x={"rent_usd_per_chip_hour": 10.0}, y={"rent_usd_per_chip_hour": 2.0})
    table = decode_pair(100.0, 10.0)
    return skus, table, Settings(rented_power="provider", util_max=0.9)


@pytest.mark.parametrize(
    ("rps", "kept"),
    [
        # 15 rps: one A (10 USD/h) or two B (2 x 2 = 4 USD/h): B is the cheaper fleet
        (15.0, {"a", "b"}),
        # 150 rps: two A (20) or 17 B (34); left over after one A: 60 rps, one A (10) or
        # seven B (14): A both ways
        (150.0, {"a"}),
        # 95 rps: two A (20) or 11 B (22); left over after one A: 5 rps, one B (2) < 10
        (95.0, {"a", "b"}),
    ],
)
def test_cover_keeps_the_cheapest_whole_instance_fleet(rps: float, kept: set[str]) -> None:
    skus, table, st = _big_and_small()
    demand = pd.DataFrame({"workload": ["w"], "period": ["p0"], "requests_per_s": [rps]})
    assert list(prune_to_frontier(table, skus, st, 1)["candidate"]) == ["a"]
    out = prune_frontier_keeping_covers(table, skus, st, ["p0"], demand)
    assert set(out["candidate"]) == kept
    assert list(prune_frontier_keeping_covers(table, skus, st, ["p0"], None)["candidate"]) == ["a"]


def _big_cheap_and_lean() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A: 100 rps on one chip of X (rent 10 USD/h, 1000 W); B: 10 rps on one chip of Y
    (rent 2 USD/h, 1000 W); C: 10 rps on one chip of Z (rent 5 USD/h, 300 W). A is the
    cheapest and leanest per request/s; of the small ones B is cheaper, C leaner."""
    skus = sku_rows(x={"rent_usd_per_chip_hour": 10.0}, y={"rent_usd_per_chip_hour": 2.0},
                    z={"rent_usd_per_chip_hour": 5.0})  # fmt: skip
    table = pd.DataFrame({
        "candidate": ["a", "b", "c"], "topology": ["pd"] * 3, "workload": ["w"] * 3,
        "phase": ["decode"] * 3, "rate_rps": [100.0, 10.0, 10.0],
        "power_w": [1000.0, 1000.0, 300.0], "description": [""] * 3,
        "units": [{"x": 1}, {"y": 1}, {"z": 1}],
    })  # fmt: skip
    return skus, table


@pytest.mark.parametrize(
    ("limits", "kept"),
    [
        # 95 rps at util_max 0.9: whole fleets two A (20 USD/h, 2000 W) beat eleven B (22,
        # 11,000) and eleven C (55, 3300) both ways; left over after one A: 5 rps, one B
        # (2 USD/h) by dollars, one C (300 W) by watts. The cost objective ranks that
        # filler by dollars only: C is kept only where power is the objective or a limit.
        ({}, {"a", "b"}),
        ({"power_budget_mw": 1.0}, {"a", "b", "c"}),
        ({"objective": "power"}, {"a", "b", "c"}),
        ({"peak_power_cap_mw": 1.0}, {"a", "b", "c"}),
    ],
)
def test_cover_ranks_the_leftover_by_watts_only_where_power_counts(
    limits: dict, kept: set[str]
) -> None:
    skus, table = _big_cheap_and_lean()
    st = Settings(rented_power="provider", util_max=0.9, **limits)
    demand = pd.DataFrame({"workload": ["w"], "period": ["p0"], "requests_per_s": [95.0]})
    assert cover_candidates(table, skus, st, ["p0"], demand) == kept
    # the caller can ask for the other ranking (a sweep point's own power budget)
    other = cover_candidates(table, skus, st, ["p0"], demand, fill_by_watts=kept == {"a", "b"})
    assert other == ({"a", "b", "c"} if kept == {"a", "b"} else {"a", "b"})


def test_sweep_keys_cover_tables_by_whether_the_point_limits_power() -> None:
    from planner.planning import prepare
    from planner.sweep import _table_keys

    _, demand, _ = prepare(VOICE, Scenario(**SMALL), load_catalog())
    st = Settings()
    points = [{"power_budget_mw": None}, {"power_budget_mw": 0.5}, {"power_budget_mw": 0.2}]
    keys, of_point = _table_keys(points, demand, [], cover=True, settings=st, acceptance=0.7)
    assert [keys[k].fill_by_watts for k in of_point] == [False, True, True]
    assert of_point[1] == of_point[2]  # the budget's size does not change the candidates
    # without cover the budget does not reach the key
    keys, of_point = _table_keys(points, demand, [], cover=False, settings=st, acceptance=0.7)
    assert len(keys) == 1 and not keys[0].fill_by_watts


def test_cover_skips_candidates_not_in_the_fleet_yet() -> None:
    skus, table, st = _big_and_small()
    skus.loc["y", "first_rent_period"] = 1  # B's chips can be rented from the second period
    demand = pd.DataFrame({"workload": ["w", "w"], "period": ["p0", "p1"],
                           "requests_per_s": [15.0, 150.0]})  # fmt: skip
    # p0 would want B, but B cannot exist then; p1 wants A
    assert cover_candidates(table, skus, st, ["p0", "p1"], demand) == {"a"}
    demand.loc[1, "requests_per_s"] = 15.0
    assert cover_candidates(table, skus, st, ["p0", "p1"], demand) == {"a", "b"}


@pytest.fixture(scope="module")
def cover_run() -> object:
    sc = Scenario(**SMALL, pruning="cover")
    return run_planning(VOICE, sc, catalog=load_catalog(), explain=False)


def test_cover_sits_between_the_frontier_and_exhaustive(both_ways, cover_run) -> None:
    pruned, full = both_ways
    cover = cover_run
    assert cover.plan.status == "optimal" and cover.verification.passed
    assert cover.inputs.scenario["pruning"] == "cover"
    # it keeps the frontier's candidates and some of those the frontier dropped
    kept = set(cover.candidates.table["candidate"])
    assert set(pruned.candidates.table["candidate"]) < kept
    assert kept <= set(full.candidates.table["candidate"])
    gap = cover.plan.gap or 0.0
    assert cover.plan.objective <= pruned.plan.objective * (1 + gap) + 1e-6
    assert full.plan.objective <= cover.plan.objective * (1 + (full.plan.gap or 0.0)) + 1e-6


def test_sweep_with_cover_prunes_each_demand_scale_as_a_plan_would(tmp_path: Path) -> None:
    from planner.sweep import SweepRequest, parse_axes, run_sweep

    sc = Scenario(**SMALL, pruning="cover")
    half = pd.read_csv(VOICE)
    half[["requests_per_s", "mean_requests_per_s"]] *= 0.5
    half_csv = tmp_path / "voice_half.csv"
    half.to_csv(half_csv, index=False)
    catalog = load_catalog()
    alone = run_planning(half_csv, sc, catalog=catalog, explain=False)
    t = run_sweep(SweepRequest(VOICE, sc, tuple(parse_axes(["demand_scale=0.5,1"])))).table
    row = t[t["demand_scale"] == 0.5].iloc[0]
    assert row["status"] == "optimal"
    assert row["total_cost_usd"] == pytest.approx(alone.plan.objective, rel=2e-3)


def test_exhaustive_and_cover_cannot_both_be_asked_for(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pruning"):
        Scenario(exhaustive=True, pruning="cover")
    assert Scenario(exhaustive=True).pruning_mode == "none"
    res = CliRunner().invoke(app, ["plan", "--no-write", "--exhaustive", "--pruning", "cover"])
    assert res.exit_code == 2
    assert "'pruning': 'cover'" in res.output and "'exhaustive': True" in res.output


# --------------------------------------------------------------------------------------
# an existing fleet: owned chips are ranked at their running cost too
# --------------------------------------------------------------------------------------


def test_owned_chips_cost_their_running_cost_and_are_there_from_the_start() -> None:
    from planner.candidates import first_usable, sunk_skus

    skus = sku_rows(x={"unit_price_usd": 80_000.0, "first_buy_period": 3},
                    y={"rent_usd_per_chip_hour": 5.0})  # fmt: skip
    st = Settings(rented_power="provider")
    running = 1000.0 * st.running_usd_per_w_hour
    assert chip_hour_usd(skus, st, 8, sunk={"x"})["x"] == pytest.approx(running)
    assert chip_hour_usd(skus, st, 8)["x"] > 4 * running  # the price, spread over 4 periods
    assert first_usable(skus, st)["x"] == 4  # bought in period 3, one period's lead time
    assert first_usable(skus, st, sunk={"x"})["x"] == 0
    existing = pd.DataFrame({"sku": ["x", "y", "z"], "chips": [16.0, 0.0, 8.0],
                             "retire_period": [4, 4, 0]})  # fmt: skip
    assert sunk_skus(existing) == {"x"}  # y: no chips; z: retired before the first period
    assert sunk_skus(None) == frozenset()


def _owned_and_new() -> tuple[pd.DataFrame, pd.DataFrame, Settings]:
    """A: 10 rps on one chip of X (an older part, 80,000 USD per 8 chips, no rental);
    B: 20 rps on one chip of Y (rent 1 USD/h). Both 1000 W. At market prices B is cheaper
    and leaner per request/s, so the frontier drops A; with X's chips owned, A costs only
    their running cost (0.25 USD/h at the default electricity, PUE and hosting) per 10 rps
    against B's 1 USD/h per 20 rps: A is cheaper then, B still leaner in power."""
    skus = sku_rows(x={"unit_price_usd": 80_000.0, "lead_periods": 0},
                    y={"rent_usd_per_chip_hour": 1.0})  # fmt: skip
    table = decode_pair(10.0, 20.0)
    return skus, table, Settings(rented_power="provider")


def test_frontier_keeps_candidates_that_use_owned_chips() -> None:
    skus, table, st = _owned_and_new()
    running = 1000.0 * st.running_usd_per_w_hour
    assert running / 10 < 1.0 / 20  # the premise: owned A is cheaper per request/s
    assert list(prune_to_frontier(table, skus, st, 4)["candidate"]) == ["b"]
    # owned X: A on the frontier of the owned ranking, B of the market one (for the load
    # beyond the owned chips)
    assert list(prune_to_frontier(table, skus, st, 4, sunk={"x"})["candidate"]) == ["a", "b"]
    # owning a SKU no candidate uses changes nothing
    assert list(prune_to_frontier(table, skus, st, 4, sunk={"q"})["candidate"]) == ["b"]


def test_cover_keeps_candidates_that_use_owned_chips() -> None:
    skus, table, st = _owned_and_new()
    skus.loc["x", "first_buy_period"] = 5  # X cannot be bought within the horizon
    demand = pd.DataFrame({"workload": ["w"], "period": ["p0"], "requests_per_s": [5.0]})
    # at market prices X's chips cannot be in the fleet at all: B covers the load
    assert cover_candidates(table, skus, st, ["p0"], demand) == {"b"}
    assert cover_candidates(table, skus, st, ["p0"], demand, sunk={"x"}) == {"a", "b"}


@pytest.mark.parametrize("pruning", ["frontier", "cover"])
def test_an_existing_fleet_is_put_to_work_and_never_costs_more(pruning: str) -> None:
    """default.csv's first two quarters, with 16 owned H100s: the pruned plan uses them
    and costs no more than the plan without them (before owned SKUs were ranked at their
    running cost, the frontier dropped every H100 candidate and the plan left all 16 idle)."""
    catalog = load_catalog()
    demand = data_dir("demand") / "default.csv"
    common = {"horizon": ["2027Q1", "2027Q2"], "allowed_skus": ["h100-sxm", "b200", "b300"],
              "pruning": pruning}  # fmt: skip
    bare = run_planning(demand, Scenario(**common), catalog=catalog, explain=False)
    owned = Scenario(**common, existing_fleet=[{"sku": "h100-sxm", "chips": 16}])
    held = run_planning(demand, owned, catalog=catalog, explain=False)
    assert bare.plan.status == held.plan.status == "optimal"
    assert held.verification.passed
    fleet = held.plan.fleet.set_index(["sku", "period"])
    assert fleet.loc[("h100-sxm", "2027Q1"), "owned_chips"] == 16
    assert fleet.loc["h100-sxm", "used_chips"].sum() > 0
    assert held.plan.objective <= bare.plan.objective * (1 + (held.plan.gap or 0.0)) + 1e-6
    # and here markedly less: the owned chips replace purchases or rentals
    assert held.plan.objective < bare.plan.objective * 0.95


# --------------------------------------------------------------------------------------
# a capex budget: rentals are ranked at their rent too
# --------------------------------------------------------------------------------------


def test_renting_ranks_rentable_chips_at_their_rent() -> None:
    skus = sku_rows(x={"unit_price_usd": 80_000.0, "rent_usd_per_chip_hour": 9.0},
                    y={"unit_price_usd": 80_000.0})  # fmt: skip
    st = Settings(rented_power="provider")
    own = chip_hour_usd(skus, st, 6)
    rent = chip_hour_usd(skus, st, 6, renting=True)
    assert own["x"] < 9.0 and rent["x"] == pytest.approx(9.0)  # owning x is cheaper
    assert rent["y"] == pytest.approx(own["y"])  # y cannot be rented: owning stays


def _cheap_to_own_and_cheap_to_rent() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A: 10 rps on one chip of X (80,000 USD per 8 chips, or 9 USD/h rented); B: 10 rps
    on one chip of Y (4 USD/h, rent only). Both 1000 W. Owning X (about 1.5 USD/h over the
    horizon) beats B's rent, so at market prices the frontier keeps A alone; renting, B is
    cheaper than a rented X."""
    skus = sku_rows(x={"unit_price_usd": 80_000.0, "rent_usd_per_chip_hour": 9.0},
                    y={"rent_usd_per_chip_hour": 4.0})  # fmt: skip
    table = decode_pair(10.0, 10.0)
    return skus, table


@pytest.mark.parametrize(
    ("budget", "kept", "covers"),
    [
        ({}, ["a"], {"a"}),
        ({"capex_budget_usd_per_period": 50_000.0}, ["a", "b"], {"a", "b"}),
        # nothing can be bought: X at its rent (9 USD/h) loses to B (4 USD/h) on cost; the
        # covers keep A as well, for watts (a tie at 1000 W goes to the first)
        ({"capex_budget_usd": 0.0}, ["b"], {"a", "b"}),
        ({"capex_budget_usd": 0.0, "allow_rent": False}, ["a"], {"a"}),  # no renting anyway
    ],
)
def test_a_capex_budget_keeps_what_is_cheapest_to_rent(
    budget: dict, kept: list[str], covers: set[str]
) -> None:
    skus, table = _cheap_to_own_and_cheap_to_rent()
    st = Settings(rented_power="provider", **budget)
    assert list(prune_to_frontier(table, skus, st, 6)["candidate"]) == kept
    # in p2, when X bought in p0 (lead time 1) is in service
    demand = pd.DataFrame({"workload": ["w"], "period": ["p2"], "requests_per_s": [5.0]})
    periods = [f"p{i}" for i in range(6)]
    assert cover_candidates(table, skus, st, periods, demand) == covers


def test_a_capex_budget_only_adds_candidates() -> None:
    catalog = load_catalog()
    demand = data_dir("demand") / "default.csv"
    from planner.planning import prepare

    _, _, free = prepare(demand, Scenario(), catalog)
    _, _, held = prepare(demand, Scenario(capex_budget_usd=300_000), catalog)
    assert set(free.data.candidates.index) < set(held.data.candidates.index)
