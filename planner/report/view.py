"""Lookups over a Plan and the inputs recorded inside it (no solving, no candidate table)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pandas as pd

from planner.catalog import Catalog, Hardware
from planner.plan import Plan

TOL = 1e-9
SOLVED = ("optimal", "feasible_at_limit")


@dataclass(frozen=True)
class PlanView:
    plan: Plan
    catalog: Catalog | None

    @cached_property
    def inputs(self) -> dict[str, Any]:
        return dict(self.plan.inputs or {})

    @property
    def has_solution(self) -> bool:
        return self.plan.status in SOLVED

    # -- periods and demand -----------------------------------------------------------

    @cached_property
    def periods(self) -> list[str]:
        recorded = [str(p["period"]) for p in self.inputs.get("periods", [])]
        return recorded or sorted(set(self.plan.costs["period"]))

    @cached_property
    def hours(self) -> dict[str, float]:
        return {str(p["period"]): float(p["hours"]) for p in self.inputs.get("periods", [])}

    @cached_property
    def starts(self) -> dict[str, pd.Timestamp]:
        return {str(p["period"]): pd.Timestamp(p["start"]) for p in self.inputs.get("periods", [])}

    @cached_property
    def workloads(self) -> dict[str, dict[str, Any]]:
        return {str(w["workload"]): w for w in self.inputs.get("workloads", [])}

    @cached_property
    def demand(self) -> pd.DataFrame:
        cols = ["workload", "period", "requests_per_s", "mean_requests_per_s"]
        frame = pd.DataFrame(self.inputs.get("demand", []), columns=cols)
        return frame.astype({"workload": str, "period": str})

    # -- per-row lookups ----------------------------------------------------------------
    # Plain dicts: the report looks values up row by row, and a MultiIndex .get costs
    # ~0.1 ms a call.

    @cached_property
    def carried(self) -> pd.DataFrame:
        """The routing rows that carry load (load_rps above TOL)."""
        r = self.plan.routing
        return r[r["load_rps"] > TOL]

    @cached_property
    def instance_count(self) -> dict[tuple[str, str], float]:
        """(candidate, period) -> instances deployed."""
        return pairs(self.plan.instances, "candidate", "period", "count")

    @cached_property
    def busy_fraction(self) -> dict[tuple[str, str], float]:
        """(candidate, period) -> busy fraction of the deployed instances."""
        return pairs(self.plan.utilization, "candidate", "period", "busy_fraction")

    @cached_property
    def peak_rps(self) -> dict[tuple[str, str], float]:
        """(workload, period) -> the forecast's peak requests/s."""
        return pairs(self.demand, "workload", "period", "requests_per_s")

    # -- candidates -------------------------------------------------------------------

    @cached_property
    def candidates(self) -> dict[str, dict[str, Any]]:
        return {str(c["candidate"]): c for c in self.inputs.get("candidates", [])}

    @cached_property
    def rows(self) -> dict[tuple[str, str, str], dict[str, Any]]:
        return {(r["candidate"], r["workload"], r["phase"]): r for r in self.inputs.get("rows", [])}

    @cached_property
    def _configs(self) -> dict[str, dict[str, Any]]:
        """Candidate -> its serving configuration (the first row of it; all rows agree)."""
        out: dict[str, dict[str, Any]] = {}
        for (c, _w, _p), row in self.rows.items():
            out.setdefault(c, row.get("config") or {})
        return out

    def config(self, candidate: str) -> dict[str, Any]:
        """The serving configuration of a candidate (same for every row of it)."""
        return dict(self._configs.get(candidate, {}))

    def units(self, candidate: str) -> dict[str, int]:
        return {
            str(k): int(v) for k, v in self.candidates.get(candidate, {}).get("units", {}).items()
        }

    def describe(self, candidate: str) -> str:
        return str(self.candidates.get(candidate, {}).get("description", candidate))

    def roles(self, candidate: str) -> dict[str, str]:
        """SKU -> the part of serving it does in this candidate."""
        topology = str(self.candidates.get(candidate, {}).get("topology", ""))
        ffn = self.config(candidate).get("ffn_hardware")
        role = {
            "prefill": "prefill",
            "colocated": "prefill+decode",
            "spec": "decode (draft+verify)",
        }.get(topology, "decode")
        if topology == "afd":
            return {
                s: "decode FFN" if s == ffn else "decode attention" for s in self.units(candidate)
            }
        return {s: role for s in self.units(candidate)}

    def rate_rps(self, candidate: str, workload: str, phase: str) -> float:
        row = self.rows.get((candidate, workload, phase))
        return float(row["rate_rps"]) if row and row.get("rate_rps") else float("nan")

    # -- catalog ----------------------------------------------------------------------

    def hardware(self, sku: str) -> Hardware | None:
        if self.catalog is None:
            return None
        return self.catalog.hardware.get(sku)

    def unit_name(self, sku: str) -> str:
        hw = self.hardware(sku)
        return hw.purchase.unit_name if hw else ""

    def lead_periods(self, sku: str) -> int | None:
        """Periods between paying and having the unit in service (as the planner counts)."""
        hw = self.hardware(sku)
        if hw is None or not self.hours:
            return None
        days = hw.purchase.lead_time_days.value if hw.purchase.lead_time_days else 0.0
        mean_hours = sum(self.hours.values()) / len(self.hours)
        return math.ceil(days * 24.0 / mean_hours - 1e-9)

    def delivery_period(self, sku: str, bought: str) -> str:
        lead = self.lead_periods(sku)
        if lead is None or bought not in self.periods:
            return "unknown"
        i = self.periods.index(bought) + lead
        return self.periods[i] if i < len(self.periods) else "after the horizon"

    @cached_property
    def used_skus(self) -> list[str]:
        p = self.plan
        held = p.fleet[(p.fleet["owned_chips"] > TOL) | (p.fleet["rented_chips"] > TOL)]
        skus = set(p.purchases["sku"]) | set(p.rentals["sku"]) | set(held["sku"])
        for c in self.candidates:
            skus |= set(self.units(c))
        skus |= {str(e["sku"]) for e in self.inputs.get("existing", [])}
        return sorted(skus)

    # -- existing fleet ---------------------------------------------------------------

    def existing_chips(self, sku: str, period: str) -> float:
        i = self.periods.index(period) if period in self.periods else 0
        total = 0.0
        for e in self.inputs.get("existing", []):
            retire = e.get("retire_period")
            retire = len(self.periods) if retire is None else int(retire)
            if str(e["sku"]) == sku and i < retire:
                total += float(e["chips"])
        return total


def pairs(frame: pd.DataFrame, a: str, b: str, value: str) -> dict[tuple[str, str], float]:
    """(frame[a], frame[b]) -> float(frame[value]), row by row."""
    values = [float(v) for v in frame[value].tolist()]
    return dict(zip(zip(frame[a].tolist(), frame[b].tolist(), strict=True), values, strict=True))
