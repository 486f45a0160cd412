"""Costs per period, power against the budget, and cost per million output tokens.

Cost attribution (documented in reports/README.md). Each period's cost is split over
workloads in three steps, so that the attributed costs add up exactly to the plan's:

1. Instance time. On candidate c in period t, workload w keeps
   tau(w,c,t) = sum over phases of load_rps / rate_rps instance-equivalents busy. Its share
   of c is tau(w,c,t) / sum_w tau(w,c,t): idle capacity of c is charged pro rata to the
   workloads that use c.
2. Energy and hosting are split by the power of the instances deployed (count x
   power_w, as the planner charges them; with hosting basis "installed" the hosting of
   idle chips is split the same way); each candidate's part goes to workloads by the
   shares of step 1.
3. Capex and rentals are per SKU: capex of period t is split over SKUs by what was paid
   for each in t (horizon basis) or by the value of the purchased chips in service
   (amortized basis), rentals by each SKU's rental cost. A SKU's cost goes to workloads by
   their chip time on that SKU in t (instances x chips of the SKU x the step-1 share). A
   SKU paid for in a period it is not yet used in (lead time: paid now, in service later)
   is charged by chip time on that SKU over the whole horizon; a SKU never used, by chip
   time on all SKUs.

Output tokens served = mean_requests_per_s x (1 - unserved share) x output_tokens x
hours x 3600: sizing uses the peak rate, but the tokens actually produced (and the energy
the planner charges) follow the mean.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd

from planner.report.model import ReportTable
from planner.report.view import TOL, PlanView, pairs

COST_PARTS = ("capex_usd", "rental_usd", "energy_usd", "hosting_usd")
Shares = dict[str, float]  # workload -> weight (not necessarily normalised)


def costs_table(view: PlanView) -> ReportTable:
    c = view.plan.costs.copy()
    frame = c[["period", *COST_PARTS, "total_usd"]].reset_index(drop=True)
    total = {"period": "total", **{k: float(frame[k].sum()) for k in (*COST_PARTS, "total_usd")}}
    basis = view.plan.settings.cost_basis
    note = (
        "Capex is cash paid in the period of purchase (cost basis: horizon)."
        if basis == "horizon"
        else "Capex is amortized: each unit costs price x hours / lifetime hours per period "
        "in service (cost basis: amortized)."
    )
    return ReportTable("costs", "Cost per period", frame, note=note, total=total)


def power_table(view: PlanView) -> ReportTable:
    p = view.plan.power
    budget = p["budget_mw"]
    frame = pd.DataFrame({
        "period": p["period"], "it_mw": p["it_mw"], "facility_mw": p["facility_mw"],
        "budget_mw": budget, "headroom_mw": budget - p["facility_mw"],
    }).reset_index(drop=True)  # fmt: skip
    rented = (
        " Rented chips are powered by their provider (in the rent), so they are not in it."
        if view.plan.settings.rented_power == "provider" and len(view.plan.rentals)
        else ""
    )
    note = f"Facility = IT x PUE {view.plan.settings.pue:g}.{rented}" + (
        " No power budget was set." if budget.isna().all() else ""
    )
    return ReportTable("power", "Power per period against the budget", frame, note=note)


# --------------------------------------------------------------------------------------
# Attribution
# --------------------------------------------------------------------------------------


def _instance_time(view: PlanView) -> dict[tuple[str, str], Shares]:
    """(candidate, period) -> workload -> instance-equivalents busy."""
    tau: dict[tuple[str, str], Shares] = defaultdict(lambda: defaultdict(float))
    for r in view.plan.routing.itertuples(index=False):
        if r.load_rps <= TOL:
            continue
        rate = view.rate_rps(r.candidate, r.workload, r.phase)
        busy = r.load_rps / rate if rate and np.isfinite(rate) else r.load_rps
        tau[(r.candidate, r.period)][r.workload] += busy
    return tau


def _normalise(weights: Shares) -> Shares:
    total = sum(weights.values())
    return {k: v / total for k, v in weights.items()} if total > 0 else {}


def _add(into: Shares, weights: Shares, scale: float) -> None:
    for k, v in weights.items():
        into[k] += v * scale


class _Attribution:
    """Who uses what, per period: the weights the three steps split costs by."""

    def __init__(self, view: PlanView) -> None:
        self.view = view
        tau = _instance_time(view)
        self.share = {key: _normalise(w) for key, w in tau.items()}
        self.power: dict[str, Shares] = defaultdict(lambda: defaultdict(float))
        self.chip_time: dict[tuple[str, str], Shares] = defaultdict(lambda: defaultdict(float))
        self.chip_time_sku: dict[str, Shares] = defaultdict(lambda: defaultdict(float))
        self.chip_time_all: Shares = defaultdict(float)
        for r in view.plan.instances.itertuples(index=False):
            share = self.share.get((r.candidate, r.period), {})
            watts = float(view.candidates.get(r.candidate, {}).get("power_w", 0.0))
            _add(self.power[r.period], share, r.count * watts)
            hours = view.hours.get(r.period, 1.0)
            for sku, chips in view.units(r.candidate).items():
                _add(self.chip_time[(sku, r.period)], share, r.count * chips)
                _add(self.chip_time_sku[sku], share, r.count * chips * hours)
                _add(self.chip_time_all, share, r.count * chips * hours)

    def sku_weights(self, sku: str, period: str) -> Shares:
        for weights in (
            self.chip_time.get((sku, period), {}),
            self.chip_time_sku.get(sku, {}),
            self.chip_time_all,
        ):
            shares = _normalise(weights)
            if shares:
                return shares
        return {}


def _by_period_and_sku(frame: pd.DataFrame, value: str) -> dict[str, Shares]:
    """period -> SKU -> sum of `value`: one groupby for all periods (the same sums, in the
    same order, as grouping each period's rows by SKU)."""
    out: dict[str, Shares] = defaultdict(dict)
    for (t, sku), v in frame.groupby(["period", "sku"])[value].sum().items():
        out[str(t)][str(sku)] = float(v)
    return out


def _capex_by_sku(view: PlanView) -> dict[str, Shares]:
    """period -> SKU -> weight of the period's capex."""
    p = view.plan.purchases
    if view.plan.settings.cost_basis == "horizon":
        return _by_period_and_sku(p, "capex_usd")
    per_chip = (p.groupby("sku")["capex_usd"].sum() / p.groupby("sku")["chips"].sum()).to_dict()
    out: dict[str, Shares] = defaultdict(dict)
    for r in view.plan.fleet.itertuples():
        out[str(r.period)][str(r.sku)] = max(
            0.0, r.owned_chips - view.existing_chips(r.sku, r.period)
        ) * float(per_chip.get(r.sku, 0.0))
    return out


def _split_by_sku(att: _Attribution, by_sku: Shares, amount: float, period: str) -> Shares:
    out: Shares = defaultdict(float)
    for sku, frac in _normalise(by_sku).items():
        _add(out, att.sku_weights(sku, period), amount * frac)
    return out


def attributed_costs(view: PlanView) -> pd.DataFrame:
    """Cost per workload and period, by part; sums to the plan's costs table where any
    workload is served (a period whose cost no workload can carry is left out)."""
    att = _Attribution(view)
    fallback = _normalise(att.chip_time_all)
    capex, rental = _capex_by_sku(view), _by_period_and_sku(view.plan.rentals, "cost_usd")
    rows = []
    for c in view.plan.costs.itertuples(index=False):
        parts: dict[str, Shares] = {
            "capex_usd": _split_by_sku(att, capex.get(c.period, {}), c.capex_usd, c.period),
            "rental_usd": _split_by_sku(att, rental.get(c.period, {}), c.rental_usd, c.period),
        }
        power = _normalise(att.power.get(c.period, {})) or fallback
        parts["energy_usd"] = {w: c.energy_usd * s for w, s in power.items()}
        parts["hosting_usd"] = {w: c.hosting_usd * s for w, s in power.items()}
        for w in sorted(set().union(*parts.values())):
            row = {"workload": w, "period": c.period}
            row.update({k: float(parts[k].get(w, 0.0)) for k in COST_PARTS})
            row["total_usd"] = sum(row[k] for k in COST_PARTS)
            rows.append(row)
    return pd.DataFrame(rows, columns=["workload", "period", *COST_PARTS, "total_usd"])


def output_tokens(view: PlanView) -> pd.DataFrame:
    """workload, period, output tokens served (millions)."""
    d = view.demand
    if d.empty:
        return pd.DataFrame(columns=["workload", "period", "output_mtok"])
    unserved = pairs(view.plan.unserved, "workload", "period", "share")
    lost = [
        unserved.get((w, t), 0.0)
        for w, t in zip(d["workload"].tolist(), d["period"].tolist(), strict=True)
    ]
    out_tokens = d["workload"].map(
        lambda w: float(view.workloads.get(w, {}).get("output_tokens", 0))
    )
    hours = d["period"].map(view.hours).astype(float)
    served = d["mean_requests_per_s"].astype(float) * (1.0 - np.asarray(lost))
    return pd.DataFrame({
        "workload": d["workload"], "period": d["period"],
        "output_mtok": served * out_tokens * hours * 3600.0 / 1e6,
    })  # fmt: skip


def cost_per_token_tables(view: PlanView) -> tuple[ReportTable, ReportTable]:
    """(per workload over the horizon, per workload and period)."""
    cost = attributed_costs(view)
    tokens = output_tokens(view)
    by_period = tokens.merge(cost, on=["workload", "period"], how="outer").fillna(
        {k: 0.0 for k in (*COST_PARTS, "total_usd", "output_mtok")}
    )
    by_period["cost_usd_per_mtok"] = by_period["total_usd"] / by_period["output_mtok"].where(
        by_period["output_mtok"] > 0
    )
    sums = by_period.groupby("workload", sort=False)[
        ["output_mtok", *COST_PARTS, "total_usd"]
    ].sum()
    order = [w for w in view.workloads if w in sums.index] + [
        w for w in sums.index if w not in view.workloads
    ]
    sums = sums.loc[order]
    mtok = sums["output_mtok"].where(sums["output_mtok"] > 0)
    horizon = pd.DataFrame({
        "workload": sums.index,
        "model": [str(view.workloads.get(w, {}).get("model", "")) for w in sums.index],
        "output_mtok": sums["output_mtok"].to_numpy(),
        "attributed_cost_usd": sums["total_usd"].to_numpy(),
        "capex_usd_per_mtok": (sums["capex_usd"] / mtok).to_numpy(),
        "opex_usd_per_mtok": ((sums["total_usd"] - sums["capex_usd"]) / mtok).to_numpy(),
        "cost_usd_per_mtok": (sums["total_usd"] / mtok).to_numpy(),
    }).reset_index(drop=True)  # fmt: skip
    total_mtok = float(horizon["output_mtok"].sum())
    total_cost = float(horizon["attributed_cost_usd"].sum())
    total = {
        "workload": "all workloads",
        "output_mtok": total_mtok,
        "attributed_cost_usd": total_cost,
        "cost_usd_per_mtok": total_cost / total_mtok if total_mtok > 0 else float("nan"),
    }
    note = (
        "Each period's cost is split over workloads by their share of instance time "
        "(load / rate) on each candidate: energy and hosting by instance power, capex and "
        "rentals by chip time on each SKU (see reports/README.md). Tokens are output tokens "
        "at the mean request rate, less unserved demand. Capex-heavy periods make the "
        "horizon figure depend on the horizon length."
    )
    return (
        ReportTable("cost_per_token", "Cost per million output tokens", horizon, note=note,
                    total=total),
        ReportTable(
            "cost_per_token_by_period",
            "Attributed cost and tokens per workload and period",
            by_period[["workload", "period", "output_mtok", *COST_PARTS, "total_usd", "cost_usd_per_mtok"]],
            in_documents=False,
        ),
    )  # fmt: skip
