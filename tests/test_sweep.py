"""`planner sweep`: --vary parsing, equality with single plans, monotonicity, worker-count
independence, failing points, the persistent model against fresh builds, executors, CLI,
charts and the HTML summary.

Everything runs on tests/data/sweep_small.csv (two workloads x three periods, H100 + Groq
LPU), where each plan solves in well under a second.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from helpers_cli import USER_FILE, must_not_run, occupied_out
from typer.testing import CliRunner

from planner.catalog import load_catalog
from planner.errors import PlannerInputError
from planner.planning import Scenario, prepare, run_planning
from planner.report.sweep_charts import frontiers, pareto_front, silicon_changes, sweep_charts
from planner.sweep import (
    TIMING_COLUMNS,
    SweepRequest,
    WorkerState,
    compute_tables,
    context_of,
    expected_work,
    parse_axes,
    parse_vary,
    plan_sweep,
    point_chunks,
    points_of,
    run_sweep,
    scenario_data,
)
from planner.sweep_exec import make_executor
from planner.sweep_model import (
    PersistentModel,
    check_apply,
    fresh,
    restricts,
    reuse,
    solve_scenario,
    with_own_penalty,
)
from planner.sweep_report import render

DEMAND = Path(__file__).parent / "data" / "sweep_small.csv"
SKUS = ["h100-sxm", "groq-lpu"]
GAP = 1e-3  # the default profile's relative MIP gap


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


@pytest.fixture(scope="module")
def base() -> Scenario:
    # Rented racks in our facility: then a power budget binds on every chip, which the
    # shortfall and reuse tests need (provider-powered rentals escape it).
    return Scenario(allowed_skus=SKUS, time_limit_s=20, rented_power="facility")


def sweep(catalog, base: Scenario, specs: list[str], **kw) -> pd.DataFrame:
    mode = kw.pop("mode", "grid")
    workload = kw.pop("workload", None)
    request = SweepRequest(DEMAND, base, tuple(parse_axes(specs)), mode, workload)
    return run_sweep(request, catalog=catalog, **kw).table


def solved(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["status"].isin(["optimal", "feasible_at_limit"])]


# -- parsing --------------------------------------------------------------------------------


def test_vary_ranges_lists_and_none() -> None:
    assert parse_vary("tpot_ms=5:50:5").values == tuple(float(v) for v in range(5, 51, 5))
    assert parse_vary("ttft_ms=500,1000,2000").values == (500.0, 1000.0, 2000.0)
    assert parse_vary("demand_scale=0.1:0.3:0.1").values == (0.1, 0.2, 0.3)  # no 0.30000000004
    assert parse_vary("power_budget_mw=none,2.5").values == (None, 2.5)
    assert parse_vary("price.h100-sxm=1e5,2e5").sku == "h100-sxm"


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("tpot_ms", "tpot_ms"),  # no '='
        ("tpot_ms=", "tpot_ms"),
        ("tpot_ms=abc", "tpot_ms"),
        ("tpot_ms=5:50", "tpot_ms"),
        ("tpot_ms=5:50:0", "tpot_ms"),
        ("tpot_ms=50:5:5", "tpot_ms"),
        ("tpot_ms=5,,6", "tpot_ms"),
        ("tpot_ms=5,5", "tpot_ms"),
        ("tpot_ms=none", "tpot_ms"),  # only limits take "none"
        ("tpot=5,10", "tpot_ms"),  # unknown: did you mean
        ("price=5", "price"),
    ],
)
def test_malformed_vary_names_the_parameter(spec: str, named: str) -> None:
    with pytest.raises(PlannerInputError) as err:
        parse_vary(spec)
    assert named in err.value.render()


def test_duplicate_and_missing_vary() -> None:
    with pytest.raises(PlannerInputError, match="each parameter varied once"):
        parse_axes(["tpot_ms=5", "tpot_ms=6"])
    with pytest.raises(PlannerInputError, match="at least one"):
        parse_axes([])


def test_grid_and_one_at_a_time_order() -> None:
    axes = parse_axes(["tpot_ms=5,10", "demand_scale=1,2,3"])
    grid = points_of(axes, "grid")
    assert [(p["tpot_ms"], p["demand_scale"]) for p in grid] == [
        (5, 1), (5, 2), (5, 3), (10, 1), (10, 2), (10, 3)
    ]  # fmt: skip
    assert points_of(axes, "one-at-a-time") == [
        {"tpot_ms": 5.0}, {"tpot_ms": 10.0},
        {"demand_scale": 1.0}, {"demand_scale": 2.0}, {"demand_scale": 3.0},
    ]  # fmt: skip


def test_unknown_sku_and_workload_are_input_errors(catalog, base: Scenario) -> None:
    with pytest.raises(PlannerInputError, match="h100-sxn"):
        sweep(catalog, base, ["price.h100-sxn=1e5"])
    with pytest.raises(PlannerInputError, match="plans with"):  # not among allowed_skus
        sweep(catalog, base, ["price.b200=1e5"])
    with pytest.raises(PlannerInputError, match="--workload"):
        sweep(catalog, base, ["tpot_ms=10"], workload="nope")


# -- results equal single plans -------------------------------------------------------------


def _single_plan(tmp: Path, base: Scenario, row: dict, catalog) -> float:
    """`planner plan` on a demand file and scenario with this row's parameters."""
    raw = pd.read_csv(DEMAND)
    raw["tpot_ms"] = row["tpot_ms"]
    for col in ("requests_per_s", "mean_requests_per_s"):
        raw[col] = raw[col] * row["demand_scale"]
    path = tmp / f"point{row['scenario']}.csv"
    raw.to_csv(path, index=False)
    budget = row["power_budget_mw"]
    sc = base.model_copy(update={
        "price_usd_per_unit": {"h100-sxm": row["price.h100-sxm"]},
        "electricity_usd_per_kwh": row["electricity_usd_per_kwh"],
        "power_budget_mw": None if pd.isna(budget) else budget,
    })  # fmt: skip
    return run_planning(path, sc, catalog=catalog, explain=False).plan.objective


def test_sweep_equals_single_plans(catalog, base: Scenario, tmp_path: Path) -> None:
    specs = ["tpot_ms=3,10", "demand_scale=1,1.5", "price.h100-sxm=120000,240000",
             "electricity_usd_per_kwh=0.3", "power_budget_mw=none,0.02"]  # fmt: skip
    table = sweep(catalog, base, specs)
    assert (table["status"] == "optimal").all()
    assert (table["path"] == "persistent").all()
    assert table["binding"].str.contains("power_budget_mw").any()  # the 0.02 MW budget binds
    assert table["binding"].str.contains("unserved_demand").any()  # tpot 3: groq lead time
    picks = table.iloc[[0, 3, 6, 9, 12, 15]]  # every value of every axis at least once
    for row in picks.to_dict(orient="records"):
        expected = _single_plan(tmp_path, base, row, catalog)
        assert row["objective"] == pytest.approx(expected, rel=GAP), row


def test_power_objective_equals_single_plans(catalog, base: Scenario, tmp_path: Path) -> None:
    power = base.model_copy(update={"objective": "power"})
    table = sweep(catalog, power, ["demand_scale=1,1.5", "price.h100-sxm=240000"])
    assert (table["status"] == "optimal").all() and (table["path"] == "persistent").all()
    for row in table.to_dict(orient="records"):
        raw = pd.read_csv(DEMAND)
        for col in ("requests_per_s", "mean_requests_per_s"):
            raw[col] = raw[col] * row["demand_scale"]
        raw.to_csv(tmp_path / "p.csv", index=False)
        sc = power.model_copy(update={"price_usd_per_unit": {"h100-sxm": 240000.0}})
        plan = run_planning(tmp_path / "p.csv", sc, catalog=catalog, explain=False).plan
        assert row["objective"] == pytest.approx(plan.objective, rel=GAP)
        assert row["peak_facility_mw"] == pytest.approx(
            float(plan.power["facility_mw"].max()), rel=GAP
        )


@pytest.mark.parametrize("owned", [[], [{"sku": "h100-sxm", "chips": 8}]])
def test_candidate_replica_matches_prepare(
    catalog, base: Scenario, tmp_path: Path, owned: list[dict]
) -> None:
    """The sweep's candidate data for a point equals what planning.prepare builds (also
    with an existing fleet, which the frontier pruning ranks at its running cost)."""
    if owned:  # with B200s to buy, the owned H100s' candidates are pruned at market prices
        skus = [*SKUS, "b200"]
        base = Scenario.model_validate(
            {**base.model_dump(), "existing_fleet": owned, "allowed_skus": skus}
        )
    request = SweepRequest(DEMAND, base, tuple(parse_axes(["tpot_ms=10", "price.h100-sxm=150000"])))
    job = plan_sweep(request, catalog)
    ctx = context_of(job, compute_tables(job, range(len(job.keys))))
    data = scenario_data(ctx, ctx.points[0], WorkerState(ctx).data_for_key(ctx.key_of_point[0]))
    raw = pd.read_csv(DEMAND).assign(tpot_ms=10.0)
    raw.to_csv(tmp_path / "d.csv", index=False)
    sc = base.model_copy(update={"price_usd_per_unit": {"h100-sxm": 150000.0}})
    _, _, cs = prepare(tmp_path / "d.csv", sc, catalog)
    key = ["candidate", "workload", "phase"]
    mine = data.rates.sort_values(key).reset_index(drop=True)
    theirs = cs.data.rates.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, theirs, check_exact=False, rtol=1e-12)
    pd.testing.assert_frame_equal(
        data.candidates.sort_index(), cs.data.candidates.sort_index(), check_dtype=False
    )
    pd.testing.assert_frame_equal(data.skus, cs.data.skus, check_dtype=False)


# -- economics of the answers -------------------------------------------------------------


# 6 ms is the tightest TPOT at which this fleet serves everything: at 5 ms no H100 candidate
# serves Llama-3.1-70B (TP8 with an EAGLE draft reaches about 6 ms per token under the
# calibrated per-layer overhead), and Groq racks arrive only after the first period.
@pytest.mark.parametrize("spec", ["tpot_ms=6,8,12,20,40", "ttft_ms=300,600,1000,2000"])
def test_cost_does_not_fall_as_slas_tighten(catalog, base: Scenario, spec: str) -> None:
    table = solved(sweep(catalog, base, [spec])).sort_values(spec.split("=")[0], ascending=False)
    assert len(table) == 5 if spec.startswith("tpot") else len(table) == 4
    assert (table["unserved_rps"] < 1e-6).all()
    cost = table["total_cost_usd"].to_numpy()
    assert (np.diff(cost) >= -GAP * cost[:-1]).all(), cost  # loosest first: never cheaper


def test_spec_acceptance_axis_equals_single_plans_and_never_costs_more_as_it_rises(
    catalog, base: Scenario, tmp_path: Path
) -> None:
    """--vary spec_acceptance sets the named workload's draft acceptance, as the demand
    CSV's spec_acceptance column does for `planner plan`; a higher acceptance only speeds
    speculative candidates up, so the plan never costs more."""
    table = sweep(catalog, base, ["spec_acceptance=0.2,0.6,0.95"], workload="chat")
    assert (table["status"] == "optimal").all()
    cost = table.sort_values("spec_acceptance")["total_cost_usd"].to_numpy()
    assert (np.diff(cost) <= GAP * cost[:-1]).all(), cost
    assert cost[-1] < cost[0]  # here drafting at 0.95 beats drafting at 0.2
    for row in table.to_dict(orient="records"):
        raw = pd.read_csv(DEMAND)
        raw["spec_acceptance"] = np.where(raw["workload"] == "chat", row["spec_acceptance"], np.nan)
        path = tmp_path / f"a{row['scenario']}.csv"
        raw.to_csv(path, index=False)
        plan = run_planning(path, base, catalog=catalog, explain=False).plan
        assert row["objective"] == pytest.approx(plan.objective, rel=GAP), row
    bad = sweep(catalog, base, ["spec_acceptance=1.5,0.6"], workload="chat")
    bad = bad.set_index("spec_acceptance")
    assert bad.at[1.5, "status"] == "invalid"
    assert "spec_acceptance must be <= 1; got 1.5" in bad.at[1.5, "message"]
    assert bad.at[0.6, "objective"] == pytest.approx(
        table.set_index("spec_acceptance").at[0.6, "objective"], rel=GAP
    )


def test_decode_moves_to_sram_as_tpot_tightens(catalog, base: Scenario) -> None:
    table = sweep(catalog, base, ["tpot_ms=3,5,10"], workload="chat")
    silicon = dict(zip(table["tpot_ms"], table["chat.decode_silicon"], strict=True))
    assert silicon[3.0] == "sram" and silicon[10.0] == "hbm"
    changes = silicon_changes(table, "tpot_ms")
    assert any(
        "chat decode: hbm -> sram" in text or "chat decode: sram -> hbm" in text
        for _, text in changes
    )
    # placement only names SKUs the fleet uses
    for row in solved(table).to_dict(orient="records"):
        for w in ("chat", "small"):
            for sku in filter(None, row[f"{w}.decode"].split("+")):
                assert row[f"chips.{sku}"] > 0


# -- determinism, failures ---------------------------------------------------------------------


def test_one_and_two_workers_give_identical_rows(catalog, base: Scenario) -> None:
    specs = ["tpot_ms=3,10", "demand_scale=0.5,1,2", "power_budget_mw=none,0.02"]
    one = sweep(catalog, base, specs, workers=1)
    two = sweep(catalog, base, specs, workers=2)
    assert (one["status"] == "optimal").all()
    assert list(one["scenario"]) == list(range(len(one)))
    pd.testing.assert_frame_equal(
        one.drop(columns=list(TIMING_COLUMNS)), two.drop(columns=list(TIMING_COLUMNS))
    )


def test_failing_points_are_rows_and_the_sweep_goes_on(
    catalog, base: Scenario, monkeypatch
) -> None:
    import planner.sweep as sweep_module

    real = sweep_module.solve_scenario
    calls = {"n": 0}

    def flaky(*args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("solver exploded")
        return real(*args)

    monkeypatch.setattr(sweep_module, "solve_scenario", flaky)
    table = sweep(catalog, base, ["power_budget_mw=0,0.02,0.5,1", "electricity_usd_per_kwh=-1,0.1"])
    status = table["status"].tolist()
    assert status.count("invalid") == 5  # power budget 0 (x2) and electricity -1 (x4), one shared
    assert status.count("error") == 1
    assert status.count("optimal") == 2
    bad = table[table["status"] == "invalid"]
    assert (
        bad["message"]
        .str.contains("power_budget_mw must be > 0|electricity_usd_per_kwh must be >= 0")
        .all()
    )
    assert table.loc[table["status"] == "error", "message"].str.contains("solver exploded").all()


# -- the persistent model ---------------------------------------------------------------------


def test_persistent_arrays_equal_fresh_builds(catalog, base: Scenario) -> None:
    """Each point's rewritten arrays equal a fresh build's; so do the solutions."""
    specs = ["tpot_ms=3,10,40", "demand_scale=0.5,2", "price.groq-lpu=80000,160000",
             "electricity_usd_per_kwh=0,0.2", "power_budget_mw=none,0.03", "capex_budget_usd=none,1e6"]  # fmt: skip
    request = SweepRequest(DEMAND, base, tuple(parse_axes(specs)), "one-at-a-time")
    job = plan_sweep(request, catalog)
    ctx = context_of(job, compute_tables(job, range(len(job.keys))))
    state = WorkerState(ctx)
    state.start()
    assert state.pm is not None, state.note
    for i, point in enumerate(ctx.points):
        key = ctx.key_of_point[i]
        data = scenario_data(ctx, point, state.data_for_key(key))
        applied = state.pm.apply(data, rates_key=key)
        rebuilt = fresh(data)
        assert check_apply(applied, rebuilt) == [], point
        a = solve_scenario(applied, ctx.profile, state.penalty(key, data))
        b = solve_scenario(rebuilt, ctx.profile)
        assert a.status == b.status
        assert a.objective == pytest.approx(b.objective, rel=GAP), point


def _context(catalog, base: Scenario, specs: list[str]):
    job = plan_sweep(SweepRequest(DEMAND, base, tuple(parse_axes(specs))), catalog)
    return context_of(job, compute_tables(job, range(len(job.keys))))


def test_a_tighter_budget_reuses_a_looser_answer_only_where_it_fits(
    catalog, base: Scenario, tmp_path: Path
) -> None:
    """5 MW never binds: those points take the unbudgeted answer, which a plan of their own
    matches; 0.02 MW binds (test_sweep_equals_single_plans): solved on their own."""
    table = sweep(catalog, base, ["demand_scale=1,2", "power_budget_mw=none,0.02,5"])
    assert (table["status"] == "optimal").all()
    reused = table["message"].str.contains("the answer of scenario")
    budget = table["power_budget_mw"]
    assert reused[budget == 5].all() and not reused[budget.isna() | (budget == 0.02)].any()
    assert (table.loc[reused, "solve_s"] == 0).all()
    for scale in (1.0, 2.0):
        rows = table[table["demand_scale"] == scale].set_index("power_budget_mw", drop=False)
        loose = rows[rows["power_budget_mw"].isna()].iloc[0]
        assert rows.loc[5.0, "objective"] == loose["objective"]
        assert f"scenario {loose['scenario']}" in rows.loc[5.0, "message"]
        raw = pd.read_csv(DEMAND)
        for col in ("requests_per_s", "mean_requests_per_s"):
            raw[col] = raw[col] * scale
        raw.to_csv(tmp_path / "d.csv", index=False)
        sc = base.model_copy(update={"power_budget_mw": 5.0})
        plan = run_planning(tmp_path / "d.csv", sc, catalog=catalog, explain=False).plan
        assert rows.loc[5.0, "objective"] == pytest.approx(plan.objective, rel=GAP)


def test_a_budget_the_unbudgeted_plan_meets_never_binds(catalog, base: Scenario) -> None:
    """A budget a hair above the unbudgeted plan's peak leaves less headroom than one more
    instance, but the plan is the same as with no budget (the point takes its answer), so
    the budget costs nothing: it is not listed as binding. 0.02 MW leaves demand unserved
    (test_a_shortfall_point_equals_a_single_plan) and is listed."""
    peak = float(sweep(catalog, base, ["power_budget_mw=none"])["peak_facility_mw"].iloc[0])
    table = sweep(catalog, base, [f"power_budget_mw=none,{peak * 1.0001!r},0.02"])
    assert (table["status"] == "optimal").all()
    at_peak = table.iloc[1]
    assert "the answer of scenario 0" in at_peak["message"]
    assert at_peak["peak_facility_mw"] == pytest.approx(peak)
    assert "power_budget_mw" not in str(at_peak["binding"])
    tight = table.iloc[2]
    assert tight["unserved_rps"] > 1.0 and table.iloc[0]["unserved_rps"] == 0
    assert "power_budget_mw" in str(tight["binding"])


def test_reuse_needs_a_restriction_and_a_feasible_answer(catalog, base: Scenario) -> None:
    ctx = _context(catalog, base, ["power_budget_mw=none,0.02,5", "demand_scale=1,2"])
    state = WorkerState(ctx)
    state.start()
    assert state.pm is not None, state.note

    def arrays(i: int):
        key = ctx.key_of_point[i]
        data = scenario_data(ctx, ctx.points[i], state.data_for_key(key))
        return with_own_penalty(state.pm.apply(data, rates_key=key), state.penalty(key, data))

    none1, none2, tight1, loose1 = (arrays(i) for i in (0, 1, 2, 4))  # none x1/x2, 0.02, 5 x1
    out = solve_scenario(none1, ctx.profile)
    assert out.proven and len(out.stages) == 1
    assert restricts(loose1, none1) and restricts(tight1, none1)
    assert not restricts(none1, loose1)  # looser bounds
    assert not restricts(none2, none1)  # other demand: other row bounds, coefficients
    assert reuse(loose1, none1, out) is not None
    assert reuse(tight1, none1, out) is None  # the unbudgeted plan breaks 0.02 MW
    unproven = dataclasses.replace(out, proven=False)
    assert reuse(loose1, none1, unproven) is None


def test_chunks_hold_whole_limit_groups_loosest_first(catalog, base: Scenario) -> None:
    specs = ["tpot_ms=3,10", "power_budget_mw=0.02,none,5", "demand_scale=1,2"]
    ctx = _context(catalog, base, specs)
    for workers in (1, 2, 3):
        chunks = point_chunks(ctx, workers)
        assert sorted(i for c in chunks for i in c) == list(range(len(ctx.points)))
        groups = [{ctx.group_of[i] for i in c} for c in chunks]
        for a, b in itertools.combinations(groups, 2):
            assert not a & b  # a group never spans two chunks
    for chunk in point_chunks(ctx, 2):
        for g in {ctx.group_of[i] for i in chunk}:
            budgets = [ctx.points[i]["power_budget_mw"] for i in chunk if ctx.group_of[i] == g]
            assert budgets == [None, 5.0, 0.02]


def test_chunks_start_with_the_most_expected_work(catalog, base: Scenario) -> None:
    """Longest-processing-time order: a chunk at demand x2 (twice the instances to place)
    is handed out before its x1 twin on the same candidate table, and no chunk comes
    after one with less expected work."""
    ctx = _context(catalog, base, ["tpot_ms=3,10", "demand_scale=1,2"])
    chunks = point_chunks(ctx, 2, per_worker=4)  # one point a chunk
    assert all(len(c) == 1 for c in chunks)
    work = [expected_work(ctx, c[0]) for c in chunks]
    assert work == sorted(work, reverse=True)
    position = {c[0]: k for k, c in enumerate(chunks)}
    for i, p in enumerate(ctx.points):
        if p["demand_scale"] == 1:
            (twin,) = [j for j, q in enumerate(ctx.points) if q == {**p, "demand_scale": 2}]
            assert position[twin] < position[i]
            assert expected_work(ctx, twin) == 2 * expected_work(ctx, i)


def test_a_scenario_outside_the_reference_is_rebuilt(catalog, base: Scenario) -> None:
    _, _, cs = prepare(DEMAND, base, catalog)
    pm = PersistentModel(cs.data)
    other = dataclasses.replace(cs.data, settings=cs.data.settings.model_copy(update={"pue": 1.5}))
    from planner.sweep_model import NotPersistent

    with pytest.raises(NotPersistent, match="pue"):
        pm.apply(other)


# -- executors ------------------------------------------------------------------------------------


def test_missing_cluster_extra_is_a_clear_input_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(PlannerInputError, match=r"fleet-planner\[cluster\]"):
        make_executor("ray", 2)
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    with pytest.raises(PlannerInputError, match=r"fleet-planner\[cluster\]"):
        make_executor("dask", 2)
    with pytest.raises(PlannerInputError, match="--executor"):
        make_executor("spark", 2)


def _cluster_kinds() -> list[str]:
    """Dask if installed (a local cluster starts in ~10 s), else Ray; both with
    PLANNER_TEST_ALL_EXECUTORS=1 (Ray's local start alone takes ~20 s)."""
    import importlib.util
    import os

    found = [
        k for k, mod in (("dask", "distributed"), ("ray", "ray")) if importlib.util.find_spec(mod)
    ]
    return found if os.environ.get("PLANNER_TEST_ALL_EXECUTORS") else found[:1]


@pytest.mark.parametrize(
    "kind", _cluster_kinds() or [pytest.param("dask", marks=pytest.mark.skip("no dask or ray"))]
)
def test_cluster_executor_matches_local(catalog, base: Scenario, kind: str) -> None:
    specs = ["tpot_ms=3,10", "demand_scale=1,2"]
    local = sweep(catalog, base, specs)
    remote = sweep(catalog, base, specs, workers=2, executor=kind)
    pd.testing.assert_frame_equal(
        local.drop(columns=list(TIMING_COLUMNS)), remote.drop(columns=list(TIMING_COLUMNS))
    )


# -- CLI, outputs, charts, HTML -------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli() -> typer.Typer:
    from planner.cli import app

    if not any(c.name == "sweep" for c in app.registered_commands):
        from planner.cli_sweep import register

        register(app)
    return app


def _run(cli: typer.Typer, *args: str):
    return CliRunner().invoke(cli, ["sweep", *args])


def test_cli_malformed_vary_exits_2_naming_it(cli) -> None:
    result = _run(cli, str(DEMAND), "--vary", "tpot_ms=fast", "--no-write", "--no-progress")
    assert result.exit_code == 2
    assert "tpot_ms" in result.output and "a number" in result.output
    result = _run(cli, str(DEMAND), "--vary", "tpot=5", "--no-write", "--no-progress")
    assert result.exit_code == 2 and "did you mean 'tpot_ms'" in result.output


def test_cli_writes_tables_charts_and_summary(cli, tmp_path: Path) -> None:
    scenario = tmp_path / "sc.yaml"
    scenario.write_text(f"allowed_skus: {SKUS}\ntime_limit_s: 20\n")
    out = tmp_path / "out"
    args = [str(DEMAND), "--scenario", str(scenario), "--vary", "tpot_ms=3,10,30",
            "--vary", "power_budget_mw=none,0.02", "--out", str(out), "--no-progress"]  # fmt: skip
    result = _run(cli, *args)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "sweep.csv", keep_default_na=False, na_values=[""])
    assert len(table) == 6 and (table["status"] == "optimal").all()
    parquet = pd.read_parquet(out / "sweep.parquet")
    assert list(parquet.columns) == list(table.columns)
    numbers = ["tpot_ms", "power_budget_mw", "total_cost_usd", "peak_facility_mw"]
    pd.testing.assert_frame_equal(parquet[numbers], table[numbers], check_dtype=False)
    for name in (
        "cost_vs_tpot_ms.png",
        "cost_vs_power_budget_mw.png",
        "fleet_mix_vs_tpot_ms.png",
        "summary.html",
    ):
        assert (out / name).is_file(), name
    meta = json.loads((out / "sweep.json").read_text())
    assert meta["points"] == 6
    again = _run(cli, *args)  # never overwrite
    assert again.exit_code == 2 and "never overwritten" in again.output


def test_cli_checks_out_before_sweeping_and_leaves_no_folder_on_bad_input(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import planner.sweep

    out = occupied_out(tmp_path)
    with monkeypatch.context() as m:
        m.setattr(planner.sweep, "run_sweep", must_not_run("swept"))
        result = _run(
            cli, str(DEMAND), "--vary", "tpot_ms=10,20", "--out", str(out), "--no-progress"
        )
        assert result.exit_code == 2 and "never overwritten" in result.output, result.output
    assert [f.name for f in out.iterdir()] == [USER_FILE]
    # an unknown --workload is found while sweeping: exit 2, and the folder is not left
    fresh = tmp_path / "fresh"
    result = _run(cli, str(DEMAND), "--vary", "tpot_ms=10,20", "--workload", "no-such-workload",
                  "--out", str(fresh), "--no-progress")  # fmt: skip
    assert result.exit_code == 2 and "no-such-workload" in result.output, result.output
    assert not fresh.exists()


def test_cli_json_and_failed_points_exit_4(cli, tmp_path: Path) -> None:
    scenario = tmp_path / "sc.yaml"
    scenario.write_text(f"allowed_skus: {SKUS}\ntime_limit_s: 20\n")
    result = _run(cli, str(DEMAND), "--scenario", str(scenario), "--vary", "power_budget_mw=0,1",
                  "--format", "json", "--no-write", "--no-progress")  # fmt: skip
    assert result.exit_code == 4
    payload = json.loads(result.stdout)
    assert [r["status"] for r in payload["rows"]] == ["invalid", "optimal"]


def test_cli_sweeps_on_a_worker_per_usable_core_by_default(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --workers: one worker per core this process may use, at most one per
    scenario; the rows are those of one worker."""
    import planner.sweep_exec

    scenario = tmp_path / "sc.yaml"
    scenario.write_text(f"allowed_skus: {SKUS}\ntime_limit_s: 20\n")
    args = [str(DEMAND), "--scenario", str(scenario), "--vary", "tpot_ms=3,10,30",
            "--format", "json", "--no-write", "--no-progress"]  # fmt: skip
    monkeypatch.setattr(planner.sweep_exec, "usable_cpus", lambda: 8)
    auto = json.loads(_run(cli, *args).stdout)
    one = json.loads(_run(cli, *args, "--workers", "1").stdout)
    assert (auto["meta"]["workers"], one["meta"]["workers"]) == (3, 1)
    monkeypatch.setattr(planner.sweep_exec, "usable_cpus", lambda: 2)
    assert planner.sweep_exec.default_workers(100) == 2
    assert planner.sweep_exec.default_workers(0) == 1

    def rows(payload: dict) -> pd.DataFrame:
        return pd.DataFrame(payload["rows"]).drop(columns=["solve_s", "wall_s"])

    pd.testing.assert_frame_equal(rows(auto), rows(one))


def test_usable_cpus_counts_the_cores_this_process_may_run_on() -> None:
    from planner.sweep_exec import usable_cpus

    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    assert usable_cpus() == (len(allowed) if allowed is not None else os.cpu_count())


def test_charts_and_frontier() -> None:
    table = pd.DataFrame({
        "status": ["optimal"] * 4, "tpot_ms": [3.0, 5.0, 10.0, 20.0],
        "total_cost_usd": [4e6, 2e6, 1e6, 1e6], "peak_facility_mw": [1.0, 0.5, 0.8, 0.4],
        "unserved_rps": [0.0] * 4, "chips.h100-sxm": [0, 8, 16, 16], "chips.groq-lpu": [1152, 0, 0, 0],
        "chat.decode_silicon": ["sram", "hbm", "hbm", "hbm"],
    })  # fmt: skip
    assert silicon_changes(table, "tpot_ms") == [(4.0, "chat decode: sram -> hbm")]
    assert pareto_front(table)["peak_facility_mw"].tolist() == [0.4]


def test_a_missing_value_in_a_legend_says_what_it_means() -> None:
    """In one-at-a-time mode the parameters not varied are missing: an SLA then stays as
    each workload has it in the demand file (not "none"), a limit is not set ("none")."""
    from planner.report.sweep_charts import _slice_note

    rows = pd.DataFrame({"tpot_ms": [math.nan], "power_budget_mw": [math.nan], "price.b300": [2e5]})
    note = _slice_note(rows, ["tpot_ms", "power_budget_mw", "price.b300"], "price.b300")
    assert note == "at tpot_ms=as in demand, power_budget_mw=none"


def test_a_frontier_never_spans_demand_levels() -> None:
    # At demand 0.5 every point is cheaper and cooler than any at demand 1, so one frontier
    # over all points would hold only demand 0.5's point and hide demand 1's trade-off.
    table = pd.DataFrame({
        "status": ["optimal"] * 5, "demand_scale": [0.5, 1.0, 1.0, 1.0, 1.0],
        "power_budget_mw": [math.nan, math.nan, 2.0, 1.5, 1.0],
        "total_cost_usd": [1e6, 2e6, 2.5e6, 2.4e6, 3e6], "peak_facility_mw": [0.5, 2.5, 2.0, 1.5, 1.0],
        "unserved_rps": [0.0] * 4 + [3.0],
    })  # fmt: skip
    assert pareto_front(table)["peak_facility_mw"].tolist() == [0.5]
    groups = frontiers(table, ["demand_scale", "power_budget_mw"])
    assert list(groups) == ["demand scale 0.5", "demand scale 1"]
    points, front = groups["demand scale 1"]
    assert len(points) == 4
    # 2.0 MW at 2.5 M is beaten by 1.5 MW at 2.4 M; the 1.0 MW point leaves demand unserved
    assert front["peak_facility_mw"].tolist() == [1.5, 2.5]
    (only,) = frontiers(table[table["demand_scale"] == 1.0], ["demand_scale", "power_budget_mw"])
    assert only == ""


def test_chart_files(tmp_path: Path) -> None:
    table = pd.DataFrame({
        "scenario": range(4), "status": ["optimal"] * 3 + ["invalid"], "tpot_ms": [3.0, 5.0, 10.0, 0.0],
        "total_cost_usd": [4e6, 2e6, 1e6, math.nan], "peak_facility_mw": [1.0, 0.5, 0.8, math.nan],
        "unserved_rps": [0.0, 0.0, 0.0, math.nan], "chips.b200": [0, 8, 16, math.nan],
        "chips.groq-lpu": [1152, 0, 0, math.nan], "chat.decode_silicon": ["sram", "hbm", "hbm", ""],
    })  # fmt: skip
    paths = sweep_charts(table, ["tpot_ms"], "grid", tmp_path)
    assert sorted(p.name for p in paths) == [
        "cost_vs_power.png",
        "cost_vs_tpot_ms.png",
        "fleet_mix_vs_tpot_ms.png",
    ]


def test_html_summary_escapes_text() -> None:
    from planner.sweep import Axis, SweepResult

    table = pd.DataFrame({
        "scenario": [0], "tpot_ms": [5.0], "status": ["error"], "message": ["<script>alert(1)</script>"],
        "total_cost_usd": [math.nan], "unserved_rps": [math.nan], "binding": [""], "path": [""],
        "<b>w</b>.decode": ["x"],
    })  # fmt: skip
    result = SweepResult(
        table, (Axis("tpot_ms", (5.0,)),), "grid", "<b>w</b>", {"demand": "<d>.csv"}
    )
    page = render(result, [])
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<b>w</b>" not in page


def test_a_shortfall_point_equals_a_single_plan(catalog, base: Scenario, tmp_path: Path) -> None:
    """Under a budget that leaves demand unserved even in the LP relaxation, the sweep and
    `planner plan` take the same two lexicographic stages (one implementation): the same
    shortfall, the same cost at it, both proven."""
    table = sweep(catalog, base, ["power_budget_mw=none,0.01"])
    assert (table["path"] == "persistent").all()
    row = table[table["power_budget_mw"] == 0.01].iloc[0].to_dict()
    assert row["status"] == "optimal"
    assert row["unserved_rps"] > 1.0
    sc = base.model_copy(update={"power_budget_mw": 0.01})
    plan = run_planning(DEMAND, sc, catalog=catalog, explain=False).plan
    assert plan.status == "optimal"
    assert row["unserved_rps"] == pytest.approx(plan.unserved_rps, rel=GAP)
    assert row["objective"] == pytest.approx(plan.objective, rel=GAP)
    assert row["total_cost_usd"] == pytest.approx(plan.total_cost_usd, rel=GAP)


def test_peak_power_is_zero_not_solver_noise_when_every_chip_is_rented(catalog) -> None:
    """Provider-powered rentals carry no facility power: a plan that owns nothing has a
    peak of exactly 0 MW, as `planner plan` prints it (plan_read.rounded_off), not the
    1e-18 MW the solver's near-zero instance and rental values net out to."""
    b = Scenario(allowed_skus=SKUS, time_limit_s=20)  # rented_power "provider"
    table = sweep(catalog, b, ["demand_scale=1,2,3"])
    owns_nothing = table["capex_usd"] == 0
    assert owns_nothing.all() and (table["rental_usd"] > 0).all()
    assert table["peak_facility_mw"].tolist() == [0.0, 0.0, 0.0]


def test_points_with_and_without_a_capex_budget_get_the_planners_tables(catalog) -> None:
    """A capex budget adds the renting ranking to the pruning, so a sweep over budgets
    gives budgeted and unbudgeted points their own tables, each as `planner plan` prunes."""
    demand = Path(__file__).parents[1] / "demand" / "default.csv"
    sc = Scenario(allowed_skus=["h100-sxm", "b200", "mi355x", "tpu-v7"])
    axes = tuple(parse_axes(["capex_budget_usd=none,300000,0"]))
    job = plan_sweep(SweepRequest(demand, sc, axes), catalog)
    ctx = context_of(job, compute_tables(job, range(len(job.keys))))
    sizes = []
    for i, budget in enumerate([None, 300000.0, 0.0]):
        mine = set(ctx.tables[ctx.key_of_point[i]]["candidate"])
        _, _, cs = prepare(demand, sc.model_copy(update={"capex_budget_usd": budget}), catalog)
        assert mine == set(cs.data.candidates.index), budget
        sizes.append(len(mine))
    assert sizes[1] > sizes[0]  # renting ranked too: more candidates under a budget
