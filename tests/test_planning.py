"""End to end: demand CSV -> candidates -> MIP -> Plan -> verify, on the real catalogs."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from helpers_cli import USER_FILE, USER_TEXT, must_not_run, occupied_out
from helpers_planning import both, candidate, make_data, sku
from typer.testing import CliRunner

from planner.candidates import COLOCATED_SPEC
from planner.catalog import load_catalog
from planner.cli import app
from planner.formulation import build_model
from planner.plan import Plan
from planner.plan_read import solve_plan
from planner.planning import PlanRun, Scenario, cheapest_at_shortfall, run_planning
from planner.shortfall import (
    cost_per_column,
    least_unserved_bound,
    least_unserved_then_cheapest,
    serves_everything,
    solve_arrays,
)
from planner.solve import SolveResult, compile_model, load_profile

CATALOG = load_catalog()
SKUS = ["h100-sxm", "h200-sxm", "b200"]


def write_demand(tmp_path: Path, rows: list[dict], name: str = "d.csv") -> Path:
    base = {"percentile": 99, "precision": "fp8", "prompt_tokens": 2000, "output_tokens": 300,
            "ttft_ms": 2000, "tpot_ms": 40}  # fmt: skip
    path = tmp_path / name
    pd.DataFrame([{**base, **r} for r in rows]).to_csv(path, index=False)
    return path


def small_rows(scale: float = 1.0, tpot_ms: float = 40.0) -> list[dict]:
    return [
        {"period": p, "workload": w, "model": m, "requests_per_s": r * scale, "tpot_ms": tpot_ms}
        for p, mult in (("2027Q1", 1.0), ("2027Q2", 1.5))
        for w, m, r in (("chat", "llama-3.1-70b", 6.0), ("small", "llama-3.1-8b", 20.0))
        for r in [r * mult]
    ]


def plan_cost(tmp_path: Path, rows: list[dict], **scenario: object) -> tuple[float, object]:
    sc = Scenario(allowed_skus=SKUS, solver_profile="exact", **scenario)  # type: ignore[arg-type]
    run = run_planning(
        write_demand(tmp_path, rows, f"d{len(os.listdir(tmp_path))}.csv"),
        sc,
        catalog=CATALOG,
        explain=False,
    )
    assert run.plan.status == "optimal", run.plan.message
    assert run.verification.passed, run.verification.mismatches
    return run.plan.total_cost_usd + run.plan.penalty_usd_per_rps * run.plan.unserved_rps, run


# ---- properties the optimum must have --------------------------------------------------


def test_more_demand_never_costs_less(tmp_path: Path) -> None:
    costs = [plan_cost(tmp_path, small_rows(s))[0] for s in (0.5, 1.0, 2.0)]
    assert costs[0] <= costs[1] * (1 + 1e-6) and costs[1] <= costs[2] * (1 + 1e-6)
    assert costs[0] < costs[2]


def test_tighter_sla_never_costs_less(tmp_path: Path) -> None:
    loose, _ = plan_cost(tmp_path, small_rows(tpot_ms=60))
    tight, _ = plan_cost(tmp_path, small_rows(tpot_ms=20))
    assert tight >= loose * (1 - 1e-6)


def test_adding_a_sku_never_costs_more(tmp_path: Path) -> None:
    rows = small_rows()
    few = run_planning(
        write_demand(tmp_path, rows),
        Scenario(allowed_skus=["h100-sxm"], solver_profile="exact"),
        catalog=CATALOG,
        explain=False,
    )
    more = run_planning(
        write_demand(tmp_path, rows, "e.csv"),
        Scenario(allowed_skus=["h100-sxm", "b200"], solver_profile="exact"),
        catalog=CATALOG,
        explain=False,
    )
    assert few.verification.passed and more.verification.passed
    assert more.plan.total_cost_usd <= few.plan.total_cost_usd * (1 + 1e-6)


def test_more_budget_never_costs_more(tmp_path: Path) -> None:
    rows = small_rows()
    free, run = plan_cost(tmp_path, rows)
    capex = float(run.plan.costs["capex_usd"].sum())
    tight, _ = plan_cost(tmp_path, rows, capex_budget_usd=capex * 0.5)
    assert tight >= free * (1 - 1e-6)


@pytest.mark.parametrize("rented_power", ["facility", "provider"])
def test_power_budget_is_respected_and_verified(tmp_path: Path, rented_power: str) -> None:
    """Renting off (provider): the budget binds on owned chips; rented racks (facility)
    count against it too."""
    allow = rented_power == "facility"
    _, run = plan_cost(tmp_path, small_rows(), rented_power=rented_power, allow_rent=allow)
    peak = float(run.plan.power["facility_mw"].max())
    assert peak > 0
    _, capped = plan_cost(tmp_path, small_rows(), power_budget_mw=peak * 0.8,
                          rented_power=rented_power, allow_rent=allow)  # fmt: skip
    assert float(capped.plan.power["facility_mw"].max()) <= peak * 0.8 * (1 + 1e-6)


def test_provider_powered_rentals_are_verified_and_cost_no_energy(tmp_path: Path) -> None:
    """With the provider powering rented chips, a plan's facility power is its owned chips'
    only (verify re-derives it from the catalog), and the same demand never costs more than
    with rented racks drawing our power, energy and hosting."""
    provider, p_run = plan_cost(tmp_path, small_rows(2.0), rented_power="provider")
    facility, _ = plan_cost(tmp_path, small_rows(2.0), rented_power="facility")
    assert provider <= facility * (1 + 1e-6)
    plan = p_run.plan
    assert not plan.rentals.empty, "the small forecast is served on rented chips"
    owned_w = 0.0
    used = plan.fleet.set_index(["sku", "period"])
    for (sku_id, t), row in used.iterrows():
        owned_in_use = float(row["used_chips"]) - float(row["rented_chips"])
        assert owned_in_use >= -1e-9
        if t == plan.power["period"].iloc[-1]:
            owned_w += owned_in_use * CATALOG.hardware[sku_id].power.all_in_w_per_chip.value
    last = plan.power.iloc[-1]
    assert float(last["it_mw"]) == pytest.approx(owned_w / 1e6, abs=1e-9)


def test_existing_fleet_is_used_before_buying(tmp_path: Path) -> None:
    # Renting off, so the bare plan must buy; then give it those chips up front.
    _, bare = plan_cost(tmp_path, small_rows(), allow_rent=False)
    bought = bare.plan.purchases.groupby("sku")["chips"].sum()
    assert len(bought), "with renting off the plan must buy"
    sku = str(bought.idxmax())
    _, owned = plan_cost(
        tmp_path,
        small_rows(),
        allow_rent=False,
        existing_fleet=[{"sku": sku, "chips": int(bought.max())}],
    )
    assert owned.plan.total_cost_usd < bare.plan.total_cost_usd
    assert float(owned.plan.purchases["capex_usd"].sum()) < float(
        bare.plan.purchases["capex_usd"].sum()
    )


def test_owned_chips_of_a_sku_with_no_price_still_serve(tmp_path: Path) -> None:
    """A SKU that can be neither bought nor rented (no price in the catalog: an in-house
    part, or one bought long ago) is planned with when the existing fleet owns some: its
    chips serve at their running cost, none is bought or rented, and the plan verifies."""
    hw = CATALOG.hardware["h100-sxm"]
    unpriced = hw.model_copy(update={"purchase": hw.purchase.model_copy(
        update={"price_usd": None, "rent_usd_per_chip_hour": None})})  # fmt: skip
    catalog = CATALOG.model_copy(update={"hardware": {**CATALOG.hardware, "h100-sxm": unpriced}})
    path = write_demand(tmp_path, small_rows())
    without = run_planning(path, Scenario(allowed_skus=SKUS), catalog=catalog, explain=False)
    sc = Scenario(allowed_skus=SKUS, existing_fleet=[{"sku": "h100-sxm", "chips": 64}])
    run = run_planning(path, sc, catalog=catalog, explain=False)
    assert run.plan.status == "optimal" and run.verification.passed
    h100 = run.plan.fleet[run.plan.fleet["sku"] == "h100-sxm"]
    assert h100["used_chips"].sum() > 0 and (h100["rented_chips"] == 0).all()
    assert "h100-sxm" not in set(run.plan.purchases["sku"])
    assert run.plan.total_cost_usd < without.plan.total_cost_usd


def test_same_inputs_same_plan(tmp_path: Path) -> None:
    a = plan_cost(tmp_path, small_rows())[1].plan
    b = plan_cost(tmp_path, small_rows())[1].plan
    for name in ("purchases", "rentals", "instances", "routing"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))


# ---- unserved demand is explained -------------------------------------------------------


def test_impossible_sla_is_unserved_and_explained(tmp_path: Path) -> None:
    impossible = {"period": "2027Q1", "workload": "impossible", "model": "llama-3.1-405b",
                  "requests_per_s": 1.0, "tpot_ms": 0.5}  # fmt: skip
    rows = [*small_rows(), impossible]
    run = run_planning(write_demand(tmp_path, rows), Scenario(allowed_skus=SKUS), catalog=CATALOG)
    assert run.verification.passed
    u = run.plan.unserved.groupby("workload")["requests_per_s"].sum()
    assert u.get("impossible", 0) == pytest.approx(1.0)
    assert u.drop("impossible", errors="ignore").sum() == pytest.approx(0.0, abs=1e-6)
    why = run.explanation.set_index("workload").loc["impossible"]
    assert why["cause"] == "no_candidate"
    assert "best TPOT" in why["detail"] and "0.5 ms SLA" in why["detail"]


def test_capex_budget_shortfall_names_the_budget(tmp_path: Path) -> None:
    run = run_planning(
        write_demand(tmp_path, small_rows()),
        Scenario(allowed_skus=["b200"], allow_rent=False, capex_budget_usd=1.0),
        catalog=CATALOG,
    )
    assert run.plan.unserved_rps > 0
    assert run.verification.passed
    causes = dict(
        zip(run.explanation["cause"], run.explanation["detail"].astype(str), strict=False)
    )
    # 2027Q1 cannot be reached at all (lead time, no renting); later periods hit the budget.
    assert "not_available" in causes
    budget = [d for c, d in causes.items() if c.startswith("limit")]
    assert budget and all("capex" in d for d in budget)


# ---- CLI ------------------------------------------------------------------------------


def test_planner_plan_with_no_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["plan"])
    assert res.exit_code == 0, res.output
    assert "verify: passed" in res.output
    # The default forecast rents chips; their provider powers them, and the output says so.
    assert "facility MW leaves out rented chips" in " ".join(res.output.split())
    (out,) = list((tmp_path / "reports" / "out").iterdir())
    plan = json.loads((out / "plan.json").read_text())
    assert plan["status"] in ("optimal", "feasible_at_limit")
    assert (out / "purchases.csv").is_file() and (out / "routing.csv").is_file()
    assert json.loads((out / "verify.json").read_text())["passed"] is True
    # a second run never reuses or overwrites the first folder
    res2 = CliRunner().invoke(app, ["plan", "--format", "json"])
    assert res2.exit_code == 0
    assert json.loads(res2.stdout)["status"] == plan["status"]
    assert len(list((tmp_path / "reports" / "out").iterdir())) == 2


def test_plan_refuses_non_empty_out(tmp_path: Path) -> None:
    out = occupied_out(tmp_path)
    res = CliRunner().invoke(app, ["plan", "--out", str(out)])
    assert res.exit_code == 2
    assert "never overwritten" in res.output
    assert (out / USER_FILE).read_text() == USER_TEXT


def test_a_refused_out_costs_no_solve_and_a_failed_plan_leaves_no_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import planner.planning

    out = occupied_out(tmp_path)
    with monkeypatch.context() as m:
        m.setattr(planner.planning, "run_planning", must_not_run("solved"))
        m.setattr(planner.planning, "trace_pareto", must_not_run("solved"))
        for extra in ([], ["--pareto", "3"]):
            res = CliRunner().invoke(app, ["plan", "--out", str(out), *extra])
            assert res.exit_code == 2 and "never overwritten" in res.output, res.output
    assert [f.name for f in out.iterdir()] == [USER_FILE]

    # A demand CSV that is found bad while planning: exit 2, and neither the folder the
    # run named nor a default one under reports/out is left behind, empty.
    bad = tmp_path / "bad.csv"
    bad.write_text("period,workload,model,requests_per_s\n2027Q1,chat,no-such-model,1\n")
    monkeypatch.chdir(tmp_path)
    fresh = tmp_path / "fresh"
    for args in (["plan", str(bad), "--out", str(fresh)], ["plan", str(bad)]):
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 2 and "no-such-model" in res.output, res.output
    assert not fresh.exists()
    assert not (tmp_path / "reports" / "out").exists() or not any(
        (tmp_path / "reports" / "out").iterdir()
    )


def test_pareto_cli_writes_its_points_and_prints_them_without_exponents(tmp_path: Path) -> None:
    from planner.cli import cell

    assert [cell(1_285_112.4), cell(0.02912), cell(float("nan")), cell(7.395e-4, "gap")] == [
        "1,285,112", "0.02912", "-", "0.07%",
    ]  # fmt: skip
    # Twice the small demand: at 1x the cheapest plan is also the least powered one (a
    # one-point frontier), which tests nothing about the trade.
    demand = write_demand(tmp_path, small_rows(2.0))
    scenario = tmp_path / "sc.yaml"  # rented racks in our hall: renting saves no power
    scenario.write_text("rented_power: facility\n")
    out = tmp_path / "pareto"
    res = CliRunner().invoke(app, ["plan", str(demand), "--scenario", str(scenario),
                                   "--pareto", "3", "--out", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out / "pareto.csv")
    assert list(table["point"]) == ["min cost", "cap 1", "min power"]
    assert (table["status"] == "optimal").all()
    # more power allowed never costs more: cost falls as the peak rises along the frontier
    front = table.sort_values("peak_facility_mw")
    assert front["peak_facility_mw"].iloc[0] < front["peak_facility_mw"].iloc[-1]
    cost = front["total_cost_usd"].to_numpy()
    assert (np.diff(cost) <= 1e-9 * cost.max()).all()  # equal points may differ in the noise
    assert "e+0" not in res.output and "total cost (USD)" in res.output
    assert f"{table['total_cost_usd'].iloc[0]:,.0f}" in res.output
    assert "rents every chip" not in res.output
    # With rentals powered by their provider (the default), the least facility power is
    # 0 MW, renting everything: the CLI says what that frontier trades.
    res = CliRunner().invoke(app, ["plan", str(demand), "--pareto", "3", "--no-write"])
    assert res.exit_code == 0, res.output
    assert "rents every chip" in " ".join(res.output.split())


def test_a_wider_candidate_set_stopped_early_is_never_dearer_than_the_frontier(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--pruning none (and cover) solve the frontier-pruned candidates first and keep that
    plan aside. Where the wider MIP ends with nothing (its time limit spent first), the
    frontier plan is the answer, verified, with the LP bound; where it ends with a dearer
    plan, the same; where it finishes, its own optimum, never dearer."""
    import planner.solve

    demand = write_demand(tmp_path, small_rows())

    def run(mode: str) -> PlanRun:
        sc = Scenario(allowed_skus=SKUS, pruning=mode, solver_profile="exact")
        return run_planning(demand, sc, catalog=CATALOG, explain=False)

    frontier = run("frontier")
    assert frontier.plan.status == "optimal"
    for mode in ("cover", "none"):
        wide = run(mode)
        assert wide.plan.status == "optimal" and wide.verification.passed
        assert wide.plan.objective <= frontier.plan.objective * (1 + 1e-9)
        assert "frontier_start_s" in wide.inputs.timings

    real = planner.solve._run_mip
    sizes: list[int] = []

    def stopped(cm, profile, start, deadline, lp_bound, log):
        if cm.buy_sku is None:  # one period's MIP inside the MIP-start heuristic: let it run
            return real(cm, profile, start, deadline, lp_bound, log)
        sizes.append(cm.n_cols)
        if len(sizes) == 1:  # the frontier's own MIP
            return real(cm, profile, start, deadline, lp_bound, log)
        return SolveResult("error", None, None, None, "highs", "HiGHS: Time limit reached"), None

    monkeypatch.setattr(planner.solve, "_run_mip", stopped)
    # The wider model's own MIP starts found nothing either (once the frontier's MIP ran).
    for name in ("purchases_then_periods", "mip_start_from_relaxation"):
        real_start = getattr(planner.solve, name)
        monkeypatch.setattr(
            planner.solve, name, lambda *a, _f=real_start: None if sizes else _f(*a)
        )
    wide = run("none")
    assert len(sizes) == 2 and sizes[1] > sizes[0]  # the wider model has more columns
    assert wide.plan.status == "feasible_at_limit" and wide.verification.passed
    assert wide.plan.objective == pytest.approx(frontier.plan.objective, rel=1e-9)
    assert wide.plan.bound is not None and wide.plan.bound <= wide.plan.objective
    assert "known incumbent" in wide.plan.message
    # With its starts, the wider model's start is the answer where it is cheaper still.
    monkeypatch.undo()
    monkeypatch.setattr(planner.solve, "_run_mip", stopped)
    sizes.clear()
    started = run("none")
    assert started.plan.status == "feasible_at_limit" and started.verification.passed
    assert started.plan.objective <= frontier.plan.objective * (1 + 1e-9)
    # here the wider model's own start is cheaper (56,500 against 65,232 USD)
    assert started.plan.objective < frontier.plan.objective * (1 - 1e-9)
    assert "the MIP start" in started.plan.message


def test_the_frontier_plan_backing_a_wider_mip_gets_most_of_the_time_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The frontier plan is the floor a wider candidate set's MIP must beat, so under a
    tight limit it is the frontier solve that must finish: it may take most of the limit
    (with a quarter, `--exhaustive --time-limit 3` on default.csv returned a plan 2.4 %
    dearer than the frontier's), and the wider MIP still gets the rest."""
    import planner.planning
    import planner.solve

    limits: list[float] = []
    real_cheapest = planner.planning.cheapest_at_shortfall

    def recording(model, profile, **kw):  # type: ignore[no-untyped-def]
        limits.append(profile.time_limit_s)
        return real_cheapest(model, profile, **kw)

    monkeypatch.setattr(planner.planning, "cheapest_at_shortfall", recording)
    left: list[tuple[int, float]] = []  # (columns, seconds to the deadline) per MIP
    real_mip = planner.solve._run_mip

    def timed(cm, profile, start, deadline, lp_bound, log):  # type: ignore[no-untyped-def]
        if cm.buy_sku is not None:  # not one period's MIP inside the start heuristic
            left.append((cm.n_cols, deadline - time.perf_counter()))
        return real_mip(cm, profile, start, deadline, lp_bound, log)

    monkeypatch.setattr(planner.solve, "_run_mip", timed)
    limit = 40.0
    sc = Scenario(allowed_skus=SKUS, pruning="none", time_limit_s=limit)
    run = run_planning(write_demand(tmp_path, small_rows()), sc, catalog=CATALOG, explain=False)
    assert run.plan.status == "optimal"
    assert limits[0] >= 0.5 * limit  # the frontier's solve: at least half of the limit
    # The wider MIP (the model with the most columns, after the frontier's) still has
    # most of the run's limit left: the frontier solve ended long before its share did.
    wider = max(left, key=lambda m: m[0])
    assert wider[0] > left[0][0]
    assert wider[1] > 0.5 * limit


def test_plan_exit_3_when_unserved(tmp_path: Path) -> None:
    rows = [
        {
            "period": "2027Q1",
            "workload": "impossible",
            "model": "llama-3.1-405b",
            "requests_per_s": 1.0,
            "tpot_ms": 0.5,
        }
    ]
    res = CliRunner().invoke(app, ["plan", str(write_demand(tmp_path, rows)), "--no-write"])
    assert res.exit_code == 3, res.output
    assert "impossible" in res.output and "best TPOT" in res.output


def test_rented_racks_in_the_facility_get_no_provider_note(tmp_path: Path) -> None:
    sc = tmp_path / "s.yaml"
    sc.write_text("rented_power: facility\nallowed_skus: [h100-sxm, b200]\n")
    demand = write_demand(tmp_path, small_rows())
    res = CliRunner().invoke(app, ["plan", str(demand), "--scenario", str(sc), "--no-write"])
    assert res.exit_code == 0, res.output
    assert re.search(r"rent \d", res.output)  # the small forecast is rented either way
    assert "facility MW leaves out rented chips" not in " ".join(res.output.split())


def test_scenario_yaml_typo_gets_did_you_mean(tmp_path: Path) -> None:
    sc = tmp_path / "s.yaml"
    sc.write_text("power_budget_mwh: 3\n")
    res = CliRunner().invoke(app, ["plan", "--scenario", str(sc), "--no-write"])
    assert res.exit_code == 2
    assert "power_budget_mwh" in res.output and "power_budget_mw" in res.output


def test_bad_flag_value_is_exit_2(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["plan", "--pue", "0.5", "--no-write"])
    assert res.exit_code == 2 and "--pue" in res.output


def test_shipped_example_scenario_plans_and_verifies() -> None:
    from planner.catalog import data_dir
    from planner.scenario import load_scenario

    path = data_dir("demand") / "scenarios" / "power_capped.yaml"
    sc = load_scenario(path)
    run = run_planning(Path(sc.demand or ""), sc, catalog=CATALOG, explain=False)
    assert run.verification.passed, run.verification.mismatches
    assert run.plan.status in ("optimal", "feasible_at_limit")
    assert float(run.plan.power["facility_mw"].max()) <= sc.power_budget_mw * (1 + 1e-6)
    assert float(run.plan.purchases["capex_usd"].sum()) <= sc.capex_budget_usd * (1 + 1e-9)
    # the b200 price override is what the plan pays
    b200 = run.plan.purchases[run.plan.purchases["sku"] == "b200"]
    assert (b200["capex_usd"] == b200["units"] * 300000).all()
    assert "rubin-cpx" not in set(run.plan.purchases["sku"])


def test_an_unservable_workload_does_not_inflate_the_rest(tmp_path: Path) -> None:
    """With a shortfall the penalty dominates the objective; the relative MIP gap must not
    then let the real cost drift (the lexicographic second stage minimises cost alone)."""
    sc = Scenario(allowed_skus=SKUS)
    clean = run_planning(
        write_demand(tmp_path, small_rows(), "a.csv"), sc, catalog=CATALOG, explain=False
    )
    impossible = {"period": "2027Q1", "workload": "impossible", "model": "llama-3.1-405b",
                  "requests_per_s": 5.0, "tpot_ms": 0.5}  # fmt: skip
    mixed = run_planning(
        write_demand(tmp_path, [*small_rows(), impossible], "b.csv"),
        sc,
        catalog=CATALOG,
        explain=False,
    )
    assert mixed.plan.unserved_rps == pytest.approx(5.0)
    assert mixed.verification.passed
    gap = load_profile("default").mip_rel_gap
    assert mixed.plan.total_cost_usd <= clean.plan.total_cost_usd * (1 + 2 * gap) + 1.0


def test_comparison_rows_reused_from_the_plan_equal_a_real_solve() -> None:
    """Where the plan already runs inside a restriction (here: the default plan uses GPUs
    only), its comparison row is the plan itself, not a re-solve. That must be what the
    restricted MIP finds: same cost within the two solves' gaps."""
    from planner.catalog import data_dir
    from planner.plan_read import solve_plan
    from planner.planning import comparison_fleets, prepare, restrict_to

    profile = load_profile("default")
    _, _, cs = prepare(Path(data_dir("demand")) / "default.csv", Scenario(), CATALOG)
    plan = solve_plan(cs.data, profile)
    rows = {r["fleet"]: r for r in comparison_fleets(plan, cs.data, CATALOG, profile)}
    used = set(plan.fleet.loc[plan.fleet["used_chips"] > 0, "sku"])
    gpus = {s for s in cs.data.skus.index if CATALOG.hardware[s].kind == "gpu"}
    assert used <= gpus < set(cs.data.skus.index)  # the shortcut applies to "GPU only"
    assert rows["GPU only"]["total_cost_usd"] == rows["this plan"]["total_cost_usd"]
    solved = solve_plan(restrict_to(cs.data, gpus), profile)
    assert solved.status == "optimal"
    tolerance = 2 * profile.mip_rel_gap * solved.total_cost_usd
    assert abs(solved.total_cost_usd - rows["GPU only"]["total_cost_usd"]) <= tolerance


def test_best_single_sku_row_is_the_best_of_every_single_sku_solved_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The comparison skips SKUs whose LP bound is already above the best found; that
    must not change the answer: solving every single-SKU fleet on its own model (built
    from restrict_to) picks the same SKU at the same cost (within the two gaps)."""
    from planner import planning as planning_module
    from planner.catalog import data_dir
    from planner.plan_read import solve_plan
    from planner.planning import comparison_fleets, prepare, restrict_to

    profile = load_profile("default")
    _, _, cs = prepare(Path(data_dir("demand")) / "default.csv", Scenario(), CATALOG)
    plan = solve_plan(cs.data, profile)
    mips: list[object] = []  # restricted solves (each restriction is solved as a plan is)
    real_solve = planning_module.cheapest_at_shortfall
    monkeypatch.setattr(
        planning_module,
        "cheapest_at_shortfall",
        lambda *a, **k: mips.append(a) or real_solve(*a, **k),
    )
    rows = comparison_fleets(plan, cs.data, CATALOG, profile)
    monkeypatch.undo()
    (best,) = [r for r in rows if r["fleet"].startswith("best single SKU")]
    alone = {s: solve_plan(restrict_to(cs.data, {s}), profile) for s in cs.data.skus.index}
    served = {s: p for s, p in alone.items() if p.status == "optimal"}
    fewest_unserved = min(p.unserved_rps for p in served.values())
    cheapest = min(
        (p.total_cost_usd, s) for s, p in served.items() if p.unserved_rps <= fewest_unserved + 1e-6
    )
    assert best["fleet"] == f"best single SKU ({cheapest[1]})"
    assert best["total_cost_usd"] == pytest.approx(cheapest[0], rel=2 * profile.mip_rel_gap)
    # Several single-SKU fleets can serve the demand, and the LP bounds spared most MIPs.
    assert len(served) >= 3
    assert 1 <= len(mips) < len(served)


def test_least_unserved_first_serves_as_much_and_costs_no_more_than_penalised() -> None:
    """Under a power budget the LP relaxation already leaves demand unserved, so the plan is
    solved lexicographically from the start (least unserved, then least cost at it). It
    must serve as much as the penalised MIP and cost no more; and the second stage must
    matter: the least-unserved stage alone picks a dearer plan here."""
    data = make_data(
        skus=[sku("a", price_usd=900_000.0), sku("b", price_usd=300_000.0),
              sku("c", price_usd=500_000.0, chips_per_unit=4)],
        candidates=[
            candidate("a1", units={"a": 8}, rates=both("w", 12, 12), power_w=9_000.0),
            candidate("b1", units={"b": 8}, rates=both("w", 5, 5), power_w=5_000.0),
            candidate("c1", units={"c": 4}, rates=both("w", 3, 3), power_w=2_500.0),
            candidate("a2", units={"a": 8}, rates=both("v", 7, 7), power_w=9_000.0),
            candidate("c2", units={"c": 4}, rates=both("v", 2.5, 2.5), power_w=2_500.0),
        ],
        demand={"w": [50.0, 70.0], "v": [20.0, 30.0]}, n_periods=2, power_budget_mw=0.2,
    )  # fmt: skip
    profile = load_profile("exact")
    model = build_model(data)
    cm = compile_model(model)
    unserved = np.flatnonzero(cm.column_group == "v_unserved")
    assert least_unserved_bound(cm, unserved, profile) > 1.0  # the lexicographic path
    result = cheapest_at_shortfall(model, profile)
    lexicographic = Plan.from_solution(model, data, result)
    penalised = solve_plan(data, profile)
    assert lexicographic.status == penalised.status == "optimal"
    assert lexicographic.unserved_rps <= penalised.unserved_rps * (1 + 1e-6)
    assert lexicographic.total_cost_usd <= penalised.total_cost_usd * (1 + 1e-9)
    assert lexicographic.objective == pytest.approx(lexicographic.total_cost_usd, rel=1e-9)
    only_unserved = np.zeros(cm.n_cols)
    only_unserved[unserved] = 1.0
    stage_one = solve_arrays(dataclasses.replace(cm, cost=only_unserved, offset=0.0), profile)
    assert stage_one.x is not None
    assert cost_per_column(model, cm) @ stage_one.x > lexicographic.total_cost_usd * 1.01


def test_lifting_a_budget_that_leaves_demand_unserved_says_how_much_more_is_served() -> None:
    """36 req/s need 4 instances (0.1 s per request at 90 % utilization); at 5.2 kW each
    (4 kW x PUE 1.3) a 0.0104 MW budget powers 2, serving 18 req/s. Lifting it serves the
    other 18: the note says that, in req/s, not a saving in penalty dollars."""
    from helpers_planning import both, candidate, make_data, sku

    from planner.planning import limit_savings

    data = make_data(
        skus=[sku("a", price_usd=100_000)],
        candidates=[candidate("c", units={"a": 8}, rates=both("w", 20, 20), power_w=4_000)],
        demand={"w": 36},
        power_budget_mw=0.0104,
    )
    plan = solve_plan(data, "exact")
    assert plan.unserved_rps == pytest.approx(18.0, rel=1e-6)
    (row,) = limit_savings(plan, data, load_profile("exact"))
    assert row["binds"] and row["unserved_rps_if_lifted"] == pytest.approx(0.0, abs=1e-6)
    assert row["note"].startswith("lifting it serves 18 req/s more")


@pytest.mark.parametrize(("power_mw", "solves"), [(1.0, 1), (0.0104, 3)])
def test_limits_that_do_not_bind_are_told_apart_in_one_re_solve(
    monkeypatch: pytest.MonkeyPatch, power_mw: float, solves: int
) -> None:
    """Lifting every set limit at once first: when that changes nothing (a 1 MW power
    budget and a 10 M USD capex budget for 4 instances), one re-solve tells that neither
    binds; when it does (0.0104 MW powers 2 of the 4), each is lifted on its own after it
    and only the power budget binds."""
    from helpers_planning import both, candidate, make_data, sku

    import planner.plan_read
    from planner.planning import limit_savings

    data = make_data(
        skus=[sku("a", price_usd=100_000)],
        candidates=[candidate("c", units={"a": 8}, rates=both("w", 20, 20), power_w=4_000)],
        demand={"w": 36},
        power_budget_mw=power_mw,
        capex_budget_usd=10_000_000,
    )
    plan = solve_plan(data, "exact")
    calls = []
    real = planner.plan_read.solve_plan
    monkeypatch.setattr(
        planner.plan_read, "solve_plan", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    rows = {r["row"]: r for r in limit_savings(plan, data, load_profile("exact"))}
    assert len(calls) == solves
    assert set(rows) == {"power_budget_mw", "capex_budget_usd"}
    assert not rows["capex_budget_usd"]["binds"]
    assert rows["capex_budget_usd"]["note"] == "set but not binding: lifting it changes nothing"
    assert rows["power_budget_mw"]["binds"] == (power_mw < 1.0)


def _spy_on_solves(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Record, for every solve that plan_read.solve_plan makes, whether it is warm-started
    and the instance and purchase values its model starts from (None: built from data)."""
    import planner.plan_read

    seen: list[dict] = []
    real = planner.plan_read.solve

    def spy(model: object, profile: object, **kw: object) -> object:
        given = getattr(model, "v_instances", None)
        seen.append({
            "warm_start": bool(kw.get("warm_start", False)),
            "instances": None if given is None else [v.value for v in given.values()],
            "buys": None if given is None else [v.value for v in model.v_buy.values()],  # type: ignore[attr-defined]
        })  # fmt: skip
        return real(model, profile, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(planner.plan_read, "solve", spy)
    return seen


def test_each_lifted_limit_re_solve_starts_from_the_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan stays feasible with any limit lifted (the same candidates under looser
    rows), so limit_savings hands the plan's solved model to each re-solve as its MIP
    start: every lifted model starts at exactly the plan's instances and purchases, and
    no lifted plan is dearer than the plan (its saving is never negative)."""
    from planner.planning import limit_savings
    from planner.solve import solve

    data, _ = _budgeted_micro()
    solved = solve(build_model(data), "exact")
    plan = Plan.from_solution(solved.model, data, solved)
    seen = _spy_on_solves(monkeypatch)
    rows = limit_savings(plan, data, load_profile("exact"), solved.model)
    assert len(seen) == 3  # both lifted at once (it changes the plan), then each alone
    want_instances = [v.value for v in solved.model.v_instances.values()]
    want_buys = [v.value for v in solved.model.v_buy.values()]
    for call in seen:
        assert call["warm_start"]
        assert call["instances"] == want_instances and call["buys"] == want_buys
    assert all(r["saving_if_lifted_usd"] >= 0.0 for r in rows)
    assert {r["row"]: r["binds"] for r in rows} == {
        "power_budget_mw": True, "capex_budget_usd": False,
    }  # fmt: skip


def test_run_planning_warm_starts_its_lifted_limits_from_the_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run_planning passes its solved model on: the re-solve that prices a capex budget
    starts from the plan it made, not from nothing."""
    sc = Scenario(allowed_skus=SKUS, capex_budget_usd=50_000_000)
    seen = _spy_on_solves(monkeypatch)
    run = run_planning(write_demand(tmp_path, small_rows()), sc, catalog=CATALOG, explain=False)
    assert run.plan.status == "optimal" and run.verification.passed
    assert len(seen) == 1 and seen[0]["warm_start"] and seen[0]["instances"] is not None
    started = np.array(seen[0]["instances"], dtype=float)
    assert started.sum() == pytest.approx(float(run.plan.instances["count"].sum()))


def test_a_binding_limit_names_its_period_and_prices_power_per_kw() -> None:
    """Shadow prices hold for small moves only: a power budget's is told per kW (one more MW
    can be many times a small fleet's budget), with the period it binds in."""
    from planner.planning import binding_constraints

    duals = {
        "c_power_budget[2027Q4]": -7_337_534.0,  # USD per MW
        "c_capex_budget": -0.25,  # USD per USD
        "c_demand_served[chat,decode,2027Q1]": 321.0,
        "c_demand_served[chat,decode,2027Q2]": 1e9,  # full instances: the unserved penalty
        "c_fleet_accounting[b200,2027Q1]": -5.0,  # not a limit: not reported
        "c_power_budget[2028Q1]": 0.0,  # slack: not reported
    }
    plan = SimpleNamespace(penalty_usd_per_rps=1e9)
    notes = {r["row"]: r["note"] for r in binding_constraints(duals, plan, None)}
    assert notes == {
        "c_power_budget[2027Q4]": "in 2027Q4, one more kW of this limit saves 7,338 USD (shadow price)",
        "c_capex_budget": "one more USD of this limit saves 0.25 USD (shadow price)",
        "c_demand_served[chat,decode,2027Q1]": (
            "in chat,decode,2027Q1, marginal cost 321 USD per request/s over the period"
        ),
        "c_demand_served[chat,decode,2027Q2]": (
            "in chat,decode,2027Q2, at capacity: with the instances held one more request/s "
            "would go unserved (the price is the unserved penalty); serving it needs another "
            "instance"
        ),
    }


def _lexicographic(data: object, profile: object, *, by_period: bool) -> tuple[object, Plan]:
    """Solve `data` as `planner plan` does, with or without the per-period first stage."""
    from planner import shortfall

    model = build_model(data)
    real = shortfall._least_unserved_by_period
    if not by_period:
        shortfall._least_unserved_by_period = lambda *a, **k: None  # type: ignore[assignment]
    try:
        result = cheapest_at_shortfall(model, profile)
    finally:
        shortfall._least_unserved_by_period = real  # type: ignore[assignment]
    return result, Plan.from_solution(model, data, result)


@pytest.mark.parametrize("seed", range(4))
def test_least_unserved_period_by_period_equals_the_whole_model(seed: int) -> None:
    """Under a binding power budget the first stage solves one MIP per period; the least
    unserved and the cheapest plan at it must be the whole model's (within the gap)."""
    rng = np.random.default_rng(seed)
    n_periods = 3
    data = make_data(
        skus=[sku("a", price_usd=float(rng.integers(5, 12)) * 1e5, lead=1),
              sku("b", price_usd=float(rng.integers(2, 6)) * 1e5, chips_per_unit=4),
              sku("c", price_usd=float(rng.integers(3, 9)) * 1e5, first_buy=1)],
        candidates=[
            candidate("a1", units={"a": 8}, rates=both("w", 12, 12), power_w=9_000.0),
            candidate("b1", units={"b": 4}, rates=both("w", 5, 5), power_w=4_000.0),
            candidate("c1", units={"c": 8}, rates=both("w", 9, 9), power_w=6_000.0),
            candidate("a2", units={"a": 8}, rates=both("v", 7, 7), power_w=9_000.0),
            candidate("b2", units={"b": 4}, rates=both("v", 2.5, 2.5), power_w=4_000.0),
        ],
        demand={"w": [float(x) for x in rng.uniform(20, 60, n_periods)],
                "v": [float(x) for x in rng.uniform(5, 30, n_periods)]},
        n_periods=n_periods, power_budget_mw=float(rng.uniform(0.02, 0.05)),
    )  # fmt: skip
    profile = load_profile("exact")
    cm = compile_model(build_model(data))
    unserved = np.flatnonzero(cm.column_group == "v_unserved")
    assert least_unserved_bound(cm, unserved, profile) > 1e-3  # the lexicographic path
    split_result, split = _lexicographic(data, profile, by_period=True)
    whole_result, whole = _lexicographic(data, profile, by_period=False)
    assert "found period by period" in split_result.message
    assert "found period by period" not in whole_result.message
    assert split.status == whole.status == "optimal"
    assert split.unserved_rps == pytest.approx(whole.unserved_rps, rel=1e-6, abs=1e-6)
    gap = profile.mip_rel_gap
    assert split.total_cost_usd == pytest.approx(whole.total_cost_usd, rel=2 * gap, abs=1.0)


def test_a_slow_clock_does_not_change_the_path_or_the_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whether the per-period stage succeeds must not depend on the wall clock: with a
    clock that jumps 1,000 s at every reading (a machine a thousand times busier, as far
    as any budget computed from it can tell), the plan is found the same way and is the
    same plan."""
    from planner import shortfall

    rng = np.random.default_rng(0)
    data = make_data(
        skus=[sku("a", price_usd=8e5, lead=1), sku("b", price_usd=3e5, chips_per_unit=4)],
        candidates=[
            candidate("a1", units={"a": 8}, rates=both("w", 12, 12), power_w=9_000.0),
            candidate("b1", units={"b": 4}, rates=both("w", 5, 5), power_w=4_000.0),
            candidate("b2", units={"b": 4}, rates=both("v", 2.5, 2.5), power_w=4_000.0),
        ],
        demand={"w": [float(x) for x in rng.uniform(20, 60, 3)],
                "v": [float(x) for x in rng.uniform(5, 30, 3)]},
        n_periods=3, power_budget_mw=0.03,
    )  # fmt: skip
    profile = load_profile("exact")
    normal_result, normal = _lexicographic(data, profile, by_period=True)
    assert "found period by period" in normal_result.message

    class SlowClock:
        now = 0.0

        def perf_counter(self) -> float:
            self.now += 1_000.0
            return self.now

    monkeypatch.setattr(shortfall, "time", SlowClock())
    slow_result, slow = _lexicographic(data, profile, by_period=True)
    assert slow_result.message == normal_result.message
    assert slow.status == normal.status == "optimal"
    assert slow.unserved_rps == pytest.approx(normal.unserved_rps, rel=1e-9, abs=1e-9)
    assert slow.total_cost_usd == pytest.approx(normal.total_cost_usd, rel=1e-9)


def test_a_capex_budget_the_periods_share_sends_the_first_stage_to_the_whole_model() -> None:
    """Period 0 can only use SKU a, period 1 only SKU b, and the budget buys one unit: each
    period alone buys its unit, together they cannot. The per-period stage must see that
    and hand over to the whole model, which serves the larger period."""
    from planner.shortfall import _least_unserved_by_period

    data = make_data(
        skus=[sku("a", price_usd=1e6), sku("b", price_usd=1e6)],
        candidates=[
            candidate("a1", units={"a": 8}, rates=both("w", 40, 40)),
            candidate("b1", units={"b": 8}, rates=both("v", 40, 40)),
        ],
        demand={"w": [5.0, 0.0], "v": [0.0, 8.0]}, n_periods=2, capex_budget_usd=1e6,
    )  # fmt: skip
    profile = load_profile("exact")
    cm = compile_model(build_model(data))
    unserved = np.flatnonzero(cm.column_group == "v_unserved")
    assert _least_unserved_by_period(cm, unserved, profile) is None
    result, plan = _lexicographic(data, profile, by_period=True)
    assert "found period by period" not in result.message
    assert plan.unserved_rps == pytest.approx(5.0)  # serves v (8 rps), leaves w (5 rps)
    assert set(plan.purchases["sku"]) == {"b"}


def test_a_shortfall_only_integrality_causes_is_proven_period_by_period() -> None:
    """One instance serves 5 x util_max req/s; demand is 6 and the power budget powers 1.9
    instances: the relaxation serves everything, whole instances cannot. Under a limit the
    per-period stage finds that first (no penalised MIP): same shortfall, one instance's
    worth short per period, and the same cost as the penalised route."""
    from planner.model_data import Settings

    defaults = Settings()
    data = make_data(
        skus=[sku("a")],
        candidates=[candidate("a1", units={"a": 8}, rates=both("w", 10, 10), power_w=4_000.0)],
        demand={"w": [6.0, 6.0]}, n_periods=2,
        power_budget_mw=1.9 * 4_000.0 * defaults.pue / 1e6,
    )  # fmt: skip
    profile = load_profile("exact")
    cm = compile_model(build_model(data))
    unserved = np.flatnonzero(cm.column_group == "v_unserved")
    assert least_unserved_bound(cm, unserved, profile) <= 1e-6  # the relaxation serves all
    split_result, split = _lexicographic(data, profile, by_period=True)
    whole_result, whole = _lexicographic(data, profile, by_period=False)
    assert "found period by period" in split_result.message
    assert "found period by period" not in whole_result.message
    short = 2 * (6.0 - 5.0 * defaults.util_max)
    assert split.unserved_rps == pytest.approx(short, rel=1e-6)
    assert whole.unserved_rps == pytest.approx(short, rel=1e-6)
    assert split.total_cost_usd == pytest.approx(whole.total_cost_usd, rel=1e-6)
    assert not serves_everything(cm, unserved, profile)


@pytest.mark.parametrize("instances_powered", [2.0, 1.9])
def test_the_per_period_shortfall_check_runs_only_where_no_plan_serves_everything(
    monkeypatch: pytest.MonkeyPatch, instances_powered: float
) -> None:
    """Demand 6 req/s needs 2 whole instances per period (one carries 5 x util_max).
    A budget that powers 2 of them lets a plan serve everything: serves_everything says so
    and the per-period check is never run; powering 1.9 of them it cannot, and the check
    runs. Either way the plan is the one the check-first path finds."""
    from planner import shortfall
    from planner.model_data import Settings

    data = make_data(
        skus=[sku("a")],
        candidates=[candidate("a1", units={"a": 8}, rates=both("w", 10, 10), power_w=4_000.0)],
        demand={"w": [6.0, 6.0]}, n_periods=2,
        power_budget_mw=instances_powered * 4_000.0 * Settings().pue / 1e6,
    )  # fmt: skip
    profile = load_profile("exact")
    cm = compile_model(build_model(data))
    unserved = np.flatnonzero(cm.column_group == "v_unserved")
    assert serves_everything(cm, unserved, profile) == (instances_powered == 2.0)
    cost = cost_per_column(build_model(data), cm)
    checks: list[int] = []
    real = shortfall._least_unserved_by_period
    monkeypatch.setattr(
        shortfall,
        "_least_unserved_by_period",
        lambda *a, **k: checks.append(1) or real(*a, **k),
    )
    found = least_unserved_then_cheapest(cm, unserved, lambda: cost, profile)
    assert len(checks) == (0 if instances_powered == 2.0 else 1)
    monkeypatch.setattr(shortfall, "serves_everything", lambda *a, **k: False)
    check_first = least_unserved_then_cheapest(cm, unserved, lambda: cost, profile)
    assert found.x is not None and check_first.x is not None
    assert found.x[unserved].sum() == pytest.approx(check_first.x[unserved].sum(), abs=1e-6)
    assert float(cost @ found.x) == pytest.approx(float(cost @ check_first.x), rel=1e-6)


def test_colocated_speculative_decoding_serves_on_its_own_and_never_costs_more(
    tmp_path: Path,
) -> None:
    """Topology `spec`: one instance prefills and decodes speculatively on the same chips.
    On its own it serves every workload (a `pd+spec` decode pool alone cannot: it needs a
    prefill pool); offered next to the others it never makes the exact optimum dearer."""
    rows = small_rows()
    rest = ["colocated", "pd", "afd", "pd+afd", "pd+spec"]
    without, _ = plan_cost(tmp_path, rows, topologies=rest, pruning="none")
    offered, _ = plan_cost(tmp_path, rows, topologies=[*rest, "spec"], pruning="none")
    assert offered <= without * (1 + 1e-6)
    _, run = plan_cost(tmp_path, rows, topologies=["spec"])
    assert run.plan.unserved_rps < 1e-6
    used = run.plan.instances.loc[run.plan.instances["count"] > 0, "candidate"]
    assert len(used) and used.str.startswith(COLOCATED_SPEC + "|").all()
    configs = {c["candidate"]: c for c in run.inputs.candidates}
    assert {configs[c]["topology"] for c in used} == {"colocated"}  # whole requests, verified
    _, pd_spec_only = plan_cost(tmp_path, rows, topologies=["pd+spec"])
    assert pd_spec_only.plan.unserved_rps < 1e-6  # pd+spec brings its own prefill pools


def test_a_workloads_own_acceptance_is_planned_and_verified(tmp_path: Path) -> None:
    """spec_acceptance per workload reaches the plan's rates, and verify re-derives them
    from the workload's value: read at the scenario's 0.7 instead, the rates the plan
    relies on miss the SLA or exceed what the performance model gives."""
    rows = [{**r, "spec_acceptance": 0.95 if r["workload"] == "chat" else ""}
            for r in small_rows()]  # fmt: skip
    _, run = plan_cost(tmp_path, rows, topologies=["spec"])
    assert run.verification.passed
    from planner.verify import verify_plan

    inputs = run.inputs.model_copy(deep=True)
    for w in inputs.workloads:
        w["spec_acceptance"] = None  # as if the demand had no such column
    again = verify_plan(run.plan, inputs, CATALOG, raise_on_mismatch=False)
    assert not again.passed
    # at 0.7 the batch the plan runs misses chat's TPOT (or sustains less than planned)
    assert any(
        "for chat decode" in m and ("misses" in m or "performance model gives" in m)
        for m in again.mismatches
    )


def test_stages_are_reported_in_order_and_only_when_they_run(tmp_path: Path) -> None:
    """run_planning's on_stage: candidates, solve, then what this run does (budget
    re-solves, comparisons, verification, the unserved diagnosis), each once, in order."""
    from planner.planning import STAGES

    def stages_of(**kwargs: object) -> list[str]:
        seen: list[str] = []
        run_planning(catalog=CATALOG, on_stage=seen.append, **kwargs)  # type: ignore[arg-type]
        by_text = {v.split("(")[0]: k for k, v in STAGES.items()}
        return [by_text[text.split("(")[0]] for text in seen]

    plain = stages_of(demand_path=write_demand(tmp_path, small_rows(), "a.csv"),
                      sc=Scenario(allowed_skus=SKUS), compare=True, explain=False)  # fmt: skip
    assert plain == ["candidates", "solve", "compare", "verify"]
    short = stages_of(
        demand_path=write_demand(tmp_path, small_rows(), "b.csv"),
        sc=Scenario(allowed_skus=["b200"], allow_rent=False, capex_budget_usd=1.0),
    )
    assert short == ["candidates", "solve", "limits", "verify", "explain"]


def test_stage_status_shows_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """`planner plan`'s spinner: the stage text reaches a terminal's stderr; a pipe gets
    nothing (no callback at all)."""
    import io

    from rich.console import Console

    import planner.cli
    from planner.cli_plan import stage_status

    pipe = io.StringIO()
    monkeypatch.setattr(planner.cli, "err", Console(file=pipe, force_terminal=False))
    with stage_status() as on_stage:
        assert on_stage is None
    assert pipe.getvalue() == ""
    tty = io.StringIO()
    monkeypatch.setattr(planner.cli, "err", Console(file=tty, force_terminal=True))
    with stage_status() as on_stage:
        assert on_stage is not None
        on_stage("solving the planning MIP")
    assert "solving the planning MIP" in tty.getvalue()


# -- the time limit is the run's -------------------------------------------------------


def test_a_run_deadline_caps_every_solve_inside_it_and_nests() -> None:
    from planner.solve import run_deadline, run_seconds_left, within_run

    assert run_seconds_left() == float("inf") and within_run(300.0) == 300.0
    with run_deadline(5.0):
        assert within_run(300.0) <= 5.0 and within_run(1.0) == 1.0
        with run_deadline(100.0):  # an inner run cannot outlast the outer one
            assert within_run(300.0) <= 5.0
        with run_deadline(0.0):
            assert within_run(300.0) == 0.0
        assert 0.0 < within_run(300.0) <= 5.0  # the outer deadline is back
    assert within_run(300.0) == 300.0


def _budgeted_micro() -> tuple[object, Plan]:
    """36 req/s on one candidate (4 instances) under a power budget that powers 2 and a
    capex budget: both limits set, demand left unserved."""
    data = make_data(
        skus=[sku("a", price_usd=100_000)],
        candidates=[candidate("c", units={"a": 8}, rates=both("w", 20, 20), power_w=4_000)],
        demand={"w": 36},
        power_budget_mw=0.0104,
        capex_budget_usd=10_000_000,
    )
    return data, solve_plan(data, "exact")


def test_follow_up_solves_are_skipped_and_say_so_once_the_run_deadline_is_spent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no time left, lifting a limit, a comparison fleet and the unserved diagnosis
    solve nothing: each says the time limit was spent instead of answering wrongly."""
    import planner.plan_read
    from planner.plan_read import explain_unserved
    from planner.planning import comparison_fleets, limit_savings
    from planner.solve import TIME_SPENT, run_deadline

    data, plan = _budgeted_micro()
    assert plan.unserved_rps == pytest.approx(18.0, rel=1e-6)

    def no_solve(*_a: object, **_k: object) -> None:
        raise AssertionError("solved after the deadline")

    monkeypatch.setattr(planner.plan_read, "solve_plan", no_solve)
    profile = load_profile("exact")
    with run_deadline(0.0):
        rows = limit_savings(plan, data, profile)
        why = explain_unserved(plan, data, profile)
    assert {r["row"] for r in rows} == {"power_budget_mw", "capex_budget_usd"}
    assert all(r["binds"] is None and r["note"] == TIME_SPENT for r in rows)
    assert list(why["cause"]) == ["unexplained"] and TIME_SPENT in why["detail"].iloc[0]

    # A mix: one unit of "a" (a GPU, supply-capped) and the rest on "b": every simpler
    # fleet needs a solve of its own.
    two = make_data(
        skus=[sku("a", price_usd=100_000, cap_units=1), sku("b", price_usd=90_000)],
        candidates=[
            candidate("ca", units={"a": 8}, rates=both("w", 20, 20)),
            candidate("cb", units={"b": 8}, rates=both("w", 10, 10)),
        ],
        demand={"w": 36},
    )
    mixed_plan = solve_plan(two, "exact")
    assert set(mixed_plan.purchases["sku"]) == {"a", "b"}
    kinds = SimpleNamespace(
        hardware={"a": SimpleNamespace(kind="gpu"), "b": SimpleNamespace(kind="lpu")}
    )
    with run_deadline(0.0):
        fleets = {r["fleet"]: r for r in comparison_fleets(mixed_plan, two, kinds, profile)}
    assert set(fleets) == {"this plan", "GPU only", "best single SKU"}
    for name in ("GPU only", "best single SKU"):
        assert fleets[name]["status"] == "skipped" and fleets[name]["note"] == TIME_SPENT
        assert fleets[name]["total_cost_usd"] is None


def test_a_shortfall_no_limit_explains_blames_the_time_limit_only_when_the_plan_is_unproven() -> (
    None
):
    """The same shortfall with no limit set: on a proven optimum it points at the penalty;
    on a plan the time limit stopped, at the time limit, with the gap."""
    from planner.plan_read import explain_unserved

    data, plan = _budgeted_micro()
    free = dataclasses.replace(
        data,
        settings=data.settings.model_copy(
            update={"power_budget_mw": None, "capex_budget_usd": None}
        ),
    )
    assert plan.status == "optimal" and plan.unserved_rps > 1.0
    proven = explain_unserved(plan, free, "exact")
    assert list(proven["cause"]) == ["unexplained"]
    assert "unserved penalty" in proven["detail"].iloc[0]
    stopped = explain_unserved(
        dataclasses.replace(plan, status="feasible_at_limit", gap=0.4), free, "exact"
    )
    assert list(stopped["cause"]) == ["solver_stopped"]
    assert "40.0% gap" in stopped["detail"].iloc[0] and "--time-limit" in stopped["detail"].iloc[0]
    # Only the cost at the shortfall stopped early, the least shortfall itself is proven:
    # more time would not serve more, so the time limit is not the reason.
    cost_only = dataclasses.replace(
        plan, status="feasible_at_limit", gap=0.4, shortfall_proven=True
    )
    assert Plan.from_json(cost_only.to_json()).shortfall_proven is True
    explained = explain_unserved(cost_only, free, "exact")
    assert list(explained["cause"]) == ["unexplained"]
    assert "unserved penalty" in explained["detail"].iloc[0]


def test_planner_plan_keeps_its_plan_and_names_what_the_time_limit_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With follow-ups ruled out (as when the plan's MIP uses the whole --time-limit), the
    plan is the one a full run finds, verified, and the output names each limit and
    comparison it could not re-solve."""
    import planner.solve
    from planner.solve import TIME_SPENT

    demand = write_demand(tmp_path, small_rows())
    args = ["plan", str(demand), "--no-write", "--power-budget-mw", "0.5",
            "--capex-budget-usd", "1e8", "--solver-profile", "exact"]  # fmt: skip
    full = CliRunner().invoke(app, [*args, "--format", "json"])
    monkeypatch.setattr(planner.solve, "FOLLOW_UP_MIN_S", 1e9)
    cut = CliRunner().invoke(app, [*args, "--format", "json"])
    assert full.exit_code == cut.exit_code == 0, cut.output
    a, b = json.loads(full.stdout), json.loads(cut.stdout)
    assert a["objective"] == b["objective"] and a["status"] == b["status"] == "optimal"
    lifted = [r for r in b["inputs"]["binding"] if "saving_if_lifted_usd" in r]
    assert {r["row"] for r in lifted} == {"power_budget_mw", "capex_budget_usd"}
    assert all(r["note"] == TIME_SPENT for r in lifted)
    assert all(r["note"] != TIME_SPENT for r in a["inputs"]["binding"])
    table = CliRunner().invoke(app, args)
    assert table.exit_code == 0
    text = " ".join(table.stdout.split())
    assert f"power budget (MW per period): {TIME_SPENT}" in text
    assert "verify: passed" in text


def test_hosting_every_installed_chip_never_costs_less_and_verifies(tmp_path: Path) -> None:
    """Installed chips draw at least the power of those in use, so charging hosting on all
    of them never lowers the optimum; verify re-derives either charge from the catalog."""
    # Bought, not rented: rented chips (rented_power "provider") pay no hosting at all.
    in_use, base = plan_cost(tmp_path, small_rows(), allow_rent=False)
    installed, run = plan_cost(tmp_path, small_rows(), hosting_basis="installed", allow_rent=False)
    assert installed >= in_use * (1 - 1e-9)
    assert run.plan.settings.hosting_basis == "installed"
    # Whole units leave chips idle: they are hosted too, and verify agreed with the charge.
    assert run.plan.costs["hosting_usd"].sum() > base.plan.costs["hosting_usd"].sum() > 0
    assert run.verification.checks["hosting"] == len(run.plan.costs)


def test_pareto_points_share_the_time_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--pareto N under --time-limit S: each point is solved with at most an equal share of
    what is left of S when it starts, so no point's solve can end past S."""
    import time

    import planner.plan_read
    from planner.planning import trace_pareto

    calls: list[tuple[float, float, float]] = []  # (clock at the call, its limit, clock after)
    real = planner.plan_read.solve_plan

    def spy(data: object, profile: object) -> Plan:
        started = time.perf_counter()
        plan = real(data, profile)  # type: ignore[arg-type]
        calls.append((started, profile.time_limit_s, time.perf_counter()))  # type: ignore[attr-defined]
        return plan

    monkeypatch.setattr(planner.plan_read, "solve_plan", spy)
    sc = Scenario(allowed_skus=SKUS, time_limit_s=20.0, allow_rent=False)  # owned: power to trade
    table = trace_pareto(write_demand(tmp_path, small_rows()), sc, 4, catalog=CATALOG)
    assert len(calls) == len(table) == 4
    # The deadline (S after a moment before the first call) and each share (taken after the
    # previous solve ended): the first point gets at most S / 4, each later one at most an
    # equal share of S less the time up to the end of the point before it.
    assert calls[0][1] <= 20.0 / 4
    first = calls[0][0]
    for (_, limit, _), (_, _, ended), left in zip(calls[1:], calls, (3, 2, 1), strict=False):
        assert limit <= (20.0 - (ended - first)) / left
    assert calls[-1][1] > calls[0][1]  # quick early points leave the later ones more


def test_pareto_points_see_the_candidates_of_a_power_limited_plan(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under --pruning cover every Pareto point is solved on the candidates a power-limited
    plan keeps (covers whose leftover filler is ranked by watts too), not the cost-objective
    plan's narrower set: on sweep_small.csv the watt ranking keeps 2 candidates more, which
    the capped points and the min-power end must be able to choose."""
    import planner.plan_read
    from planner.planning import prepare, trace_pareto

    demand = Path(__file__).parent / "data" / "sweep_small.csv"
    # Rented chips count against facility power, so the plans trade dollars for watts.
    sc = Scenario(pruning="cover", rented_power="facility")
    cost_set = set(prepare(demand, sc, CATALOG)[2].data.rates["candidate"])
    power_sc = sc.model_copy(update={"objective": "power"})
    power_set = set(prepare(demand, power_sc, CATALOG)[2].data.rates["candidate"])
    assert cost_set < power_set  # the case is not vacuous: the sets differ here

    seen: list[set[str]] = []
    real = planner.plan_read.solve_plan

    def spy(data: object, profile: object) -> Plan:
        seen.append(set(data.rates["candidate"]))  # type: ignore[attr-defined]
        return real(data, profile)  # type: ignore[arg-type]

    monkeypatch.setattr(planner.plan_read, "solve_plan", spy)
    table = trace_pareto(demand, sc, 3, catalog=CATALOG)
    assert len(seen) == len(table) == 3
    assert all(s == power_set for s in seen)
    # The min-power end is the power-objective plan itself, on the same candidates.
    alone = run_planning(demand, power_sc, catalog=CATALOG, explain=False).plan
    lean = table.set_index("point").loc["min power", "peak_facility_mw"]
    assert lean == pytest.approx(float(alone.power["facility_mw"].max()), rel=1e-6)
