"""How much the plan leans on speculative decoding's draft acceptance.

Draft acceptance (per drafted token) sets how many tokens a speculative decode step
yields, so it sets both TPOT and the rate per instance of every speculative placement.
The planner takes it from the demand file's `spec_acceptance` column or the scenario's
default (0.7): an estimate, with no calibration measurement behind it in this project. This
table re-derives each speculative placement through the performance model (as `verify`
does) at lower acceptances, with the plan's instances as they are, and says:

* the lowest acceptance at which the plan still holds for the workload: every placement
  carrying it meets its TPOT and every instance pool carrying it stays within util_max;
* what the workload's pools would need at ACCEPTANCE_STRESS below the assumed value, as
  a share of the instances the plan runs.

No solving: a lower acceptance is answered for the fleet the plan buys, not re-planned
(`planner sweep --vary spec_acceptance=...` re-plans).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from typing import Any

import pandas as pd

from planner.demand import own_acceptance
from planner.report.model import ReportTable
from planner.report.view import PlanView
from planner.verify import derived_rate

# The stress case: this much below the acceptance the plan assumes (floored at zero).
ACCEPTANCE_STRESS = 0.2
# Resolution of the lowest acceptance that holds.
MARGIN_STEP = 0.01
# A pool "holds" when its busy time is within this relative slack of util_max x instances.
HOLD_SLACK = 1e-6
COLUMNS = ["workload", "draft", "acceptance_assumed", "holds_down_to",
           "acceptance_stressed", "capacity_needed_at_stressed_pct", "at_stressed"]  # fmt: skip


def assumed_acceptance(view: PlanView, workload: str, row: dict[str, Any]) -> float | None:
    """The acceptance a speculative row's rate assumes (the workload's own, else the row's
    configuration's); None for a row that does not draft."""
    cfg = row.get("config") or {}
    if not cfg.get("draft_model"):
        return None
    own = own_acceptance(view.workloads.get(workload, {}))
    if own is not None:
        return own
    value = row.get("acceptance", cfg.get("acceptance"))
    return None if value is None else float(value)


class _Pools:
    """The plan's instance pools that carry one workload, re-derived at any acceptance.

    Where a decode placement misses its TPOT at the plan's batch, it runs at the largest
    smaller batch that meets it (what an operator would do; fewer requests/s per instance)
    rather than counting as failing. Rates are cached per (row, acceptance), so the stress
    case and the search for the lowest holding acceptance share them."""

    def __init__(self, view: PlanView, workload: str) -> None:
        self.view = view
        self.workload = workload
        r = view.carried
        mine = set(r.loc[r["workload"] == workload, "candidate"])
        # Every load on those pools, the other workloads' included: a colocated pool shares
        # its time among the workloads of its model.
        r = r[r["candidate"].isin(mine)]
        self.loads = list(
            r[["candidate", "workload", "phase", "period", "load_rps"]].itertuples(index=False)
        )
        self.util_max = float(view.plan.settings.util_max)
        self._rates: dict[tuple[str, str, str, float | None], float] = {}

    def _rate(self, key: tuple[str, str, str], acceptance: float | None) -> float:
        if key[2] == "prefill":
            acceptance = None  # a prefill pass drafts nothing: its rate does not depend on it
        cached = self._rates.get((*key, acceptance))
        if cached is not None:
            return cached
        row = self.view.rows.get(key)
        workload = dict(self.view.workloads.get(key[1], {}))
        if acceptance is not None:
            workload["spec_acceptance"] = acceptance
        rate = 0.0 if row is None else self._derived(row, workload)
        self._rates[(*key, acceptance)] = rate
        return rate

    def _derived(self, row: dict[str, Any], workload: dict[str, Any]) -> float:
        catalog = self.view.catalog
        rate, reason = derived_rate(row, workload, catalog)  # type: ignore[arg-type]
        if reason is None:
            return rate
        if row["phase"] != "decode" or int(row.get("batch") or 1) <= 1:
            return 0.0
        # Largest batch below the plan's that meets the TPOT (bisection: TPOT grows with batch).
        low, high, best = 1, int(row["batch"]) - 1, 0.0
        while low <= high:
            mid = (low + high) // 2
            rate, reason = derived_rate({**row, "batch": mid}, workload, catalog)  # type: ignore[arg-type]
            if reason is None:
                best, low = rate, mid + 1
            else:
                high = mid - 1
        return best

    def need(self, acceptance: float) -> float:
        """Largest busy time over util_max x instances among the pools, with this workload
        at `acceptance` (math.inf where a placement cannot meet its SLA there)."""
        busy: dict[tuple[str, str], float] = defaultdict(float)
        for c, w, p, t, load in self.loads:
            rate = self._rate((c, w, p), acceptance if w == self.workload else None)
            busy[(c, t)] += load / rate if rate > 0 else math.inf
        worst = 0.0
        for key, b in busy.items():
            capacity = self.util_max * self.view.instance_count.get(key, 0.0)
            worst = max(worst, b / capacity if capacity > 0 else math.inf)
        return worst

    def holds(self, acceptance: float) -> bool:
        return self.need(acceptance) <= 1.0 + HOLD_SLACK


def lowest_holding_acceptance(pools: _Pools, assumed: float) -> float | None:
    """The lowest acceptance in [0, assumed] at which the pools hold, to within
    MARGIN_STEP (rounded up: a value checked to hold); None if they do not hold even at the
    assumed value. Assumes lower acceptance never helps (fewer tokens per speculative step:
    longer TPOT, fewer requests/s per instance).

    The MIP packs pools to util_max, so most plans have no margin at all: one check at
    MARGIN_STEP below answers those without a bisection."""
    if not pools.holds(assumed):
        return None
    if assumed < MARGIN_STEP or not pools.holds(assumed - MARGIN_STEP):
        return assumed
    if pools.holds(0.0):
        return 0.0
    low, high = 0.0, assumed - MARGIN_STEP
    while high - low > MARGIN_STEP:
        mid = 0.5 * (low + high)
        if pools.holds(mid):
            high = mid
        else:
            low = mid
    return high


def _routed(view: PlanView) -> list[tuple[str, str, str]]:
    """(candidate, workload, phase) of every row the plan routes load to, sorted."""
    r = view.carried
    keys = zip(r["candidate"], r["workload"], r["phase"], strict=True)
    return sorted({(str(c), str(w), str(p)) for c, w, p in keys})


def _draft_label(view: PlanView, workload: str) -> str:
    """The drafts (and draft lengths) the plan's placements for `workload` use."""
    drafts = set()
    for c, w, p in _routed(view):
        cfg = view.rows.get((c, w, p), {}).get("config") or {}
        if w == workload and cfg.get("draft_model"):
            drafts.add(f"{cfg['draft_model']} k={cfg.get('draft_tokens')}")
    return ", ".join(sorted(drafts))


def speculative_workloads(view: PlanView) -> dict[str, float]:
    """Workload -> assumed acceptance, for each workload with load on a drafting row."""
    out: dict[str, float] = {}
    for key in _routed(view):
        row = view.rows.get(key)
        if row is not None and (a := assumed_acceptance(view, key[1], row)) is not None:
            out.setdefault(key[1], a)
    return out


def acceptance_rows(view: PlanView) -> list[dict[str, Any]]:
    rows = []
    for workload, assumed in speculative_workloads(view).items():
        pools = _Pools(view, workload)
        stressed = max(0.0, assumed - ACCEPTANCE_STRESS)
        need = pools.need(stressed)
        if math.isinf(need):
            at_stressed = "no batch meets the TPOT"
        elif need <= 1.0 + HOLD_SLACK:
            at_stressed = "holds"
        else:
            at_stressed = f"{100.0 * (need - 1.0):.0f} % more instances needed"
        rows.append({
            "workload": workload, "draft": _draft_label(view, workload),
            "acceptance_assumed": assumed,
            "holds_down_to": lowest_holding_acceptance(pools, assumed),
            "acceptance_stressed": stressed,
            "capacity_needed_at_stressed_pct": 100.0 * need if math.isfinite(need) else None,
            "at_stressed": at_stressed,
        })  # fmt: skip
    return rows


def acceptance_table(view: PlanView) -> ReportTable | None:
    """The table, or None without a catalog or a solution (nothing to re-derive)."""
    if view.catalog is None or not view.has_solution or not view.rows:
        return None
    frame = pd.DataFrame(acceptance_rows(view), columns=COLUMNS)
    return ReportTable(
        "speculation",
        "Dependence on draft acceptance",
        frame,
        note="Draft acceptance is an estimate (the demand file's spec_acceptance, else the "
        "scenario's); no measurement in the calibration set backs it. holds_down_to: the lowest "
        "acceptance at which every placement carrying the workload still meets its TPOT and "
        f"every pool carrying it stays within util_max, with the plan's instances. At "
        f"{ACCEPTANCE_STRESS:g} below the assumed value: the busiest pool's need as a share of "
        "what the plan runs. Re-plan at another acceptance with planner sweep --vary "
        "spec_acceptance=...",
        empty_text="No placement in this plan decodes speculatively.",
    )


def speculation_inputs(view: PlanView) -> tuple[Any, ...]:
    """Everything the table depends on: the routed loads, the instances, util_max, the rows
    routed to and the workloads (their acceptances). Cheap next to the table itself."""
    loads = tuple(
        view.carried[["candidate", "workload", "phase", "period", "load_rps"]].itertuples(
            index=False
        )
    )
    rows = json.dumps([view.rows.get(k) for k in _routed(view)], sort_keys=True, default=str)
    workloads = json.dumps(view.workloads, sort_keys=True, default=str)
    instances = tuple(sorted(view.instance_count.items()))
    return loads, instances, view.plan.settings.util_max, rows, workloads, view.has_solution


class SpeculationCache:
    """The table computed once per set of `speculation_inputs` (the report worker computes
    it from the draft plan while the parent still verifies)."""

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._table: ReportTable | None = None

    def table(self, view: PlanView) -> ReportTable | None:
        if view.catalog is None:
            return acceptance_table(view)
        key = speculation_inputs(view)
        if self._key is None or key != self._key:
            self._key, self._table = key, acceptance_table(view)
        return self._table
