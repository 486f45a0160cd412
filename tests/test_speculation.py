"""The report's dependence on draft acceptance (planner.report.speculation): it re-derives
the plan's speculative placements through the performance model at lower acceptances."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest

from planner.planning import PlanRun, Scenario, run_planning
from planner.report.build import build_report
from planner.report.speculation import (
    MARGIN_STEP,
    _Pools,
    acceptance_rows,
    acceptance_table,
    lowest_holding_acceptance,
    speculative_workloads,
)
from planner.report.view import PlanView

HEADER = (
    "period,workload,model,precision,prompt_tokens,output_tokens,ttft_ms,tpot_ms,percentile,"
    "requests_per_s,mean_requests_per_s,spec_acceptance\n"
)
DEMAND = HEADER + (
    "2027Q1,chat,llama-3.1-70b,fp8,1500,350,1000,40,99,30,18,\n"
    "2027Q2,chat,llama-3.1-70b,fp8,1500,350,1000,40,99,45,27,\n"
    "2027Q1,small,llama-3.1-8b,,800,150,500,20,99,300,200,0.6\n"
    "2027Q2,small,llama-3.1-8b,,800,150,500,20,99,400,250,0.6\n"
)


def _plan(tmp: Path, text: str, **scenario: object) -> PlanRun:
    path = tmp / "demand.csv"
    path.write_text(text)
    sc = Scenario(allowed_skus=["b200", "h100-sxm"], time_limit_s=30, **scenario)  # type: ignore[arg-type]
    return run_planning(path, sc, explain=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> PlanRun:
    return _plan(tmp_path_factory.mktemp("spec"), DEMAND)


@pytest.fixture(scope="module")
def view(run: PlanRun) -> PlanView:
    return PlanView(run.plan, run.catalog)


def test_fixture_plan_decodes_speculatively(run: PlanRun, view: PlanView) -> None:
    assert run.verification.passed
    assert set(speculative_workloads(view)) == {"chat", "small"}


def test_assumed_acceptance_is_the_workloads_own_else_the_scenarios(view: PlanView) -> None:
    assumed = speculative_workloads(view)
    assert assumed["small"] == pytest.approx(0.6)  # the demand file's column
    assert assumed["chat"] == pytest.approx(view.plan.inputs["scenario"]["spec_acceptance"])


def test_plan_holds_at_its_assumed_acceptance(view: PlanView) -> None:
    """What verify checks, seen from here: at the assumed acceptance every pool carrying the
    workload fits in util_max x its instances."""
    for workload, assumed in speculative_workloads(view).items():
        assert _Pools(view, workload).need(assumed) <= 1.0 + 1e-6


def test_lowest_holding_acceptance_is_tight(view: PlanView) -> None:
    """It holds at the value reported and fails one resolution step (and a bit) below."""
    for workload, assumed in speculative_workloads(view).items():
        pools = _Pools(view, workload)
        low = lowest_holding_acceptance(pools, assumed)
        assert low is not None and 0.0 <= low <= assumed
        assert pools.holds(low)
        if low > 2 * MARGIN_STEP:
            assert not pools.holds(low - 2 * MARGIN_STEP)


def test_need_never_falls_as_acceptance_falls(view: PlanView) -> None:
    for workload, assumed in speculative_workloads(view).items():
        pools = _Pools(view, workload)
        needs = [pools.need(assumed * k / 8) for k in range(8, -1, -1)]
        assert all(b >= a - 1e-9 for a, b in itertools.pairwise(needs)), needs


def test_twice_the_instances_halve_the_need(run: PlanRun, view: PlanView) -> None:
    doubled_instances = run.plan.instances.assign(count=run.plan.instances["count"] * 2)
    doubled = PlanView(dataclasses.replace(run.plan, instances=doubled_instances), run.catalog)
    compared = 0
    for base, twice in zip(acceptance_rows(view), acceptance_rows(doubled), strict=True):
        if base["capacity_needed_at_stressed_pct"] is None:
            continue
        compared += 1
        assert twice["capacity_needed_at_stressed_pct"] == pytest.approx(
            base["capacity_needed_at_stressed_pct"] / 2, rel=1e-9
        )
        assert twice["holds_down_to"] <= base["holds_down_to"]
    assert compared  # the fixture has a stressed need to halve


def test_report_has_the_table_and_an_empty_one_without_drafting(
    run: PlanRun, tmp_path: Path
) -> None:
    report = build_report(run.plan, run.catalog)
    frame = report.tables["speculation"].frame
    assert set(frame["workload"]) == {"chat", "small"}
    assert "speculation" in next(s for s in report.sections if s.key == "placement").tables
    plain = _plan(tmp_path, DEMAND, topologies=["colocated", "pd"])
    assert speculative_workloads(PlanView(plain.plan, plain.catalog)) == {}
    table = acceptance_table(PlanView(plain.plan, plain.catalog))
    assert table is not None and table.frame.empty
    assert "No placement" in table.empty_text
