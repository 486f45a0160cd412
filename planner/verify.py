"""Independent re-check of a Plan against the catalogs and the performance model.

Nothing here reads the candidate table or the MIP. For every routed load it re-evaluates
the serving configuration the plan names through the scalar `perf.evaluate` path (the
candidate generator used the vectorized one), and re-derives from the catalog: chips per
instance, power, purchase units, fleet in service, rentals and costs. Any claim the plan
makes that this re-derivation does not support is a mismatch; `verify_plan` raises
`PlanVerificationError` listing all of them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from planner.catalog import Catalog
from planner.demand import own_acceptance
from planner.perf.evaluate import ServingConfig, evaluate

REL_TOL = 1e-5  # solver feasibility tolerance is 1e-7 relative; leave room for rounding
ABS_TOL_RPS = 1e-4
HOURS_PER_MONTH = 730.0


class PlanVerificationError(Exception):
    def __init__(self, mismatches: list[str]):
        self.mismatches = mismatches
        head = f"plan failed verification ({len(mismatches)} mismatch{'es' if len(mismatches) != 1 else ''}):"
        super().__init__("\n".join([head, *(f"  - {m}" for m in mismatches[:50])]))


@dataclass
class Verification:
    checks: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # check -> count
    mismatches: list[str] = field(default_factory=list)

    def ok(self, check: str) -> None:
        self.checks[check] += 1

    def bad(self, check: str, message: str) -> None:
        self.checks[check] += 1
        self.mismatches.append(f"[{check}] {message}")

    def expect(self, check: str, cond: bool, message: str) -> None:
        if cond:
            self.ok(check)
        else:
            self.bad(check, message)

    @property
    def passed(self) -> bool:
        return not self.mismatches

    def summary(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": dict(self.checks), "mismatches": self.mismatches}


def _close(a: float, b: float, rel: float = REL_TOL, abs_: float = 1e-6) -> bool:
    return abs(a - b) <= max(abs_, rel * max(abs(a), abs(b)))


def _le(a: float, b: float, rel: float = REL_TOL, abs_: float = 1e-6) -> bool:
    return a <= b + max(abs_, rel * abs(b))


# --------------------------------------------------------------------------------------
# Per (candidate, workload, phase): SLA and the rate the plan relies on
# --------------------------------------------------------------------------------------


def derived_rate(row: dict, workload: dict, catalog: Catalog) -> tuple[float, str | None]:
    """Requests/s one instance of `row`'s configuration sustains for its phase inside the
    workload's SLA, re-derived through `evaluate`; (0, reason) when the SLA is not met."""
    cfg = dict(row["config"])
    phase = row["phase"]
    common = dict(
        prompt_tokens=int(workload["prompt_tokens"]),
        output_tokens=int(workload["output_tokens"]),
        percentile=float(workload["percentile"]),
    )
    if cfg.get("microbatches") is None and row.get("microbatches"):
        cfg["microbatches"] = int(row["microbatches"])
    if cfg.get("draft_model") and (own := own_acceptance(workload)) is not None:
        cfg["acceptance"] = own  # the workload's, over the scenario's default
    if phase == "prefill":
        r = evaluate(
            ServingConfig(**cfg, **common, batch=1, ttft_ms=float(workload["ttft_ms"])), catalog
        )
        if not r.feasible:
            return 0.0, r.reason
        # A colocated instance has no KV hand-off; evaluate's pd path includes it.
        return float(r.prefill_requests_per_s or 0.0), None
    batch = int(row["batch"])
    r = evaluate(
        ServingConfig(**cfg, **common, batch=batch, tpot_ms=float(workload["tpot_ms"])), catalog
    )
    if not r.feasible:
        return 0.0, r.reason
    # Decode occupancy: each request holds a batch slot for output_tokens steps. A colocated
    # instance's TPOT includes the prefill stall, but its time budget in the plan already
    # charges prefill separately, so its decode rate uses the pure decode step.
    step = r.decode_step_ms - r.prefill_stall_ms
    return batch * 1000.0 / (int(workload["output_tokens"]) * step), None


# --------------------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------------------


def verify_plan(
    plan: Any, inputs: Any, catalog: Catalog, *, raise_on_mismatch: bool = True
) -> Verification:
    """Re-derive every claim of `plan` (a planner.plan.Plan) from `inputs` (what the plan
    was built from: workloads, demand, periods, the serving configuration of each used
    candidate) and the catalog. Returns the tally; raises on any mismatch by default."""
    v = Verification()
    settings = plan.settings
    workloads = {w["workload"]: w for w in inputs.workloads}
    periods = [p["period"] for p in inputs.periods]
    hours = {p["period"]: float(p["hours"]) for p in inputs.periods}
    load_factor = {p["period"]: float(p["energy_load_factor"]) for p in inputs.periods}
    starts = {p["period"]: pd.Timestamp(p["start"]) for p in inputs.periods}
    cands = {c["candidate"]: c for c in inputs.candidates}
    rows = {(r["candidate"], r["workload"], r["phase"]): r for r in inputs.rows}

    _check_demand_balance(plan, inputs, v)
    rates = _check_sla_and_rates(plan, rows, workloads, catalog, v)
    _check_capacity(plan, rates, settings.util_max, v)
    _check_colocated_whole_requests(plan, cands, v)
    chips_used = _check_units_and_power(plan, cands, rows, workloads, catalog, settings.pue, v)
    _check_fleet(plan, inputs, catalog, periods, hours, starts, chips_used, v)
    _check_costs(plan, catalog, settings, periods, hours, load_factor, v)
    if raise_on_mismatch and not v.passed:
        raise PlanVerificationError(v.mismatches)
    return v


def _check_demand_balance(plan: Any, inputs: Any, v: Verification) -> None:
    served = plan.routing.groupby(["workload", "phase", "period"])["load_rps"].sum()
    unserved = plan.unserved.set_index(["workload", "period"])["requests_per_s"]
    for d in inputs.demand:
        w, t, rate = d["workload"], d["period"], float(d["requests_per_s"])
        u = float(unserved.get((w, t), 0.0))
        for phase in ("prefill", "decode"):
            s = float(served.get((w, phase, t), 0.0))
            v.expect(
                "demand balance", _close(s + u, rate, abs_=ABS_TOL_RPS),
                f"{w} {phase} in {t}: served {s:.6g} + unserved {u:.6g} != demand {rate:.6g} req/s",
            )  # fmt: skip


def _check_sla_and_rates(
    plan: Any, rows: dict, workloads: dict, catalog: Catalog, v: Verification
) -> dict[tuple[str, str, str], float]:
    used = plan.routing[plan.routing["load_rps"] > ABS_TOL_RPS]
    rates: dict[tuple[str, str, str], float] = {}
    for key in sorted(set(zip(used["candidate"], used["workload"], used["phase"], strict=True))):
        row = rows.get(key)
        if row is None:
            v.bad(
                "sla",
                f"{key[0]} carries {key[1]} {key[2]} but the plan records no configuration for it",
            )
            continue
        rate, reason = derived_rate(row, workloads[key[1]], catalog)
        rates[key] = rate
        if reason is not None:
            v.bad("sla", f"{key[0]} for {key[1]} {key[2]}: re-evaluation says infeasible: {reason}")
            continue
        v.expect(
            "rate", _le(float(row["rate_rps"]), rate, rel=1e-6),
            f"{key[0]} for {key[1]} {key[2]}: plan assumes {float(row['rate_rps']):.6g} req/s per "
            f"instance, the performance model gives {rate:.6g}",
        )  # fmt: skip
    return rates


def _check_capacity(plan: Any, rates: dict, util_max: float, v: Verification) -> None:
    inst = plan.instances.set_index(["candidate", "period"])["count"]
    busy: dict[tuple[str, str], float] = defaultdict(float)
    for r in plan.routing.itertuples():
        if r.load_rps <= ABS_TOL_RPS:
            continue
        rate = rates.get((r.candidate, r.workload, r.phase), 0.0)
        busy[(r.candidate, r.period)] += r.load_rps / rate if rate > 0 else math.inf
    for (c, t), b in sorted(busy.items()):
        n = float(inst.get((c, t), 0.0))
        v.expect(
            "capacity", _le(b, util_max * n, abs_=1e-6),
            f"{c} in {t}: needs {b:.4g} instance-equivalents of time, plan runs {n:g} x util {util_max:g}",
        )  # fmt: skip
    if not plan.instances_relaxed:
        for (c, t), n in inst.items():
            v.expect(
                "integer instances",
                abs(n - round(n)) < 1e-6,
                f"{c} in {t}: {n} instances is not whole",
            )


def _check_colocated_whole_requests(plan: Any, cands: dict, v: Verification) -> None:
    """A colocated instance serves whole requests: as much prefill as decode per workload."""
    col = plan.routing[
        plan.routing["candidate"].map(lambda c: cands.get(c, {}).get("topology") == "colocated")
    ]
    if col.empty:
        return
    by = col.pivot_table(
        index=["candidate", "workload", "period"], columns="phase", values="load_rps", aggfunc="sum"
    ).fillna(0.0)
    for idx, r in by.iterrows():
        pre, dec = float(r.get("prefill", 0.0)), float(r.get("decode", 0.0))
        v.expect("colocated whole requests", _close(pre, dec, abs_=ABS_TOL_RPS),
                 f"{idx[0]} {idx[1]} in {idx[2]}: prefill {pre:.6g} != decode {dec:.6g} req/s")  # fmt: skip


def _check_units_and_power(
    plan: Any,
    cands: dict,
    rows: dict,
    workloads: dict,
    catalog: Catalog,
    pue: float,
    v: Verification,
) -> dict[tuple[str, str], float]:
    """Chips per instance and power from the catalog; returns chips in use per (sku, period)."""
    chips_used: dict[tuple[str, str], float] = defaultdict(float)
    it_w: dict[str, float] = defaultdict(float)
    for r in plan.instances.itertuples():
        if r.count <= 1e-9:
            continue
        c = cands.get(r.candidate)
        if c is None:
            v.bad(
                "units", f"{r.candidate} runs in {r.period} but the plan records no such candidate"
            )
            continue
        units = {str(k): float(n) for k, n in c["units"].items()}
        # Re-derive the chips from the performance model's own placement of a routed row:
        # a decode-only candidate is its decode groups (evaluate also places a prefill pool).
        row = next((rw for (cc, _, _), rw in rows.items() if cc == r.candidate), None)
        if row is not None:
            w = workloads[row["workload"]]
            mb = int(row["microbatches"]) if row.get("microbatches") else None
            res = evaluate(ServingConfig(**row["config"], batch=int(row.get("batch") or 1),
                                         prompt_tokens=int(w["prompt_tokens"]),
                                         output_tokens=int(w["output_tokens"]), microbatches=mb),
                           catalog)  # fmt: skip
            if res.feasible:
                roles = res.units_by_role
                keep = (
                    ["prefill"]
                    if c["topology"] == "prefill"
                    else [k for k in roles if k != "prefill"]
                )
                derived: dict[str, float] = defaultdict(float)
                for role in keep:
                    for sku, n in roles.get(role, {}).items():
                        derived[sku] += n
                v.expect("units", dict(derived) == units,
                         f"{r.candidate}: plan says {units}, placement gives {dict(derived)}")  # fmt: skip
        watts = sum(
            n * catalog.hardware[sku].power.all_in_w_per_chip.value for sku, n in units.items()
        )
        v.expect("power per instance", _close(watts, float(c["power_w"])),
                 f"{r.candidate}: plan uses {c['power_w']} W, catalog gives {watts} W")  # fmt: skip
        it_w[r.period] += r.count * watts
        for sku, n in units.items():
            chips_used[(sku, r.period)] += r.count * n
    if plan.settings.rented_power == "provider":
        # The provider powers rented chips: every rented chip must be in use, and the
        # facility draws only for the owned ones.
        for r in plan.rentals.itertuples():
            used = chips_used.get((r.sku, r.period), 0.0)
            v.expect("rented chips in use", _le(float(r.chips), used),
                     f"{r.sku} {r.period}: {r.chips:g} chips rented, {used:g} in use")  # fmt: skip
            it_w[r.period] -= float(r.chips) * catalog.hardware[r.sku].power.all_in_w_per_chip.value
    pw = plan.power.set_index("period")
    for t, row in pw.iterrows():
        it_mw = it_w.get(str(t), 0.0) / 1e6
        v.expect("power", _close(float(row["it_mw"]), it_mw, abs_=1e-6),
                 f"{t}: plan IT power {row['it_mw']:.6g} MW, re-derived {it_mw:.6g} MW")  # fmt: skip
        v.expect("power", _close(float(row["facility_mw"]), it_mw * pue, abs_=1e-6),
                 f"{t}: plan facility power {row['facility_mw']:.6g} MW, re-derived {it_mw * pue:.6g} MW")  # fmt: skip
        budget = plan.settings.power_budget_mw
        if budget is not None:
            v.expect("power budget", _le(it_mw * pue, budget),
                     f"{t}: facility power {it_mw * pue:.6g} MW exceeds the {budget:g} MW budget")  # fmt: skip
    return chips_used


def _lead_and_life(catalog: Catalog, sku: str, hours: float) -> tuple[int, int]:
    p = catalog.hardware[sku].purchase
    lead_days = p.lead_time_days.value if p.lead_time_days else 0.0
    return (
        math.ceil(lead_days * 24.0 / hours - 1e-9),
        max(1, round(p.lifetime_years.value * 8766.0 / hours)),
    )


def _check_fleet(
    plan: Any, inputs: Any, catalog: Catalog, periods: list[str], hours: dict, starts: dict,
    chips_used: dict, v: Verification,
) -> None:  # fmt: skip
    mean_hours = sum(hours.values()) / max(1, len(hours))
    pos = {t: i for i, t in enumerate(periods)}
    owned: dict[tuple[str, str], float] = defaultdict(float)
    for e in inputs.existing:
        retire = int(e.get("retire_period", len(periods)))
        for t in periods[: max(0, retire)]:
            owned[(str(e["sku"]), t)] += float(e["chips"])
    for b in plan.purchases.itertuples():
        if b.units <= 0:
            continue
        hw = catalog.hardware[b.sku]
        v.expect("purchase units", b.chips == b.units * hw.purchase.chips_per_unit,
                 f"{b.sku} {b.period}: {b.chips} chips is not {b.units} x {hw.purchase.chips_per_unit}")  # fmt: skip
        v.expect("availability", starts[b.period] >= pd.Timestamp(hw.available_from),
                 f"{b.sku} bought in {b.period}, before it is available ({hw.available_from})")  # fmt: skip
        lead, life = _lead_and_life(catalog, b.sku, mean_hours)
        i = pos[b.period]
        for t in periods[i + lead : i + lead + life]:
            owned[(b.sku, t)] += b.chips
    fleet = plan.fleet.set_index(["sku", "period"])
    for (sku, t), row in fleet.iterrows():
        v.expect("fleet", _close(float(row["owned_chips"]), owned.get((sku, t), 0.0)),
                 f"{sku} {t}: plan owns {row['owned_chips']:g} chips, purchases and existing give {owned.get((sku, t), 0.0):g}")  # fmt: skip
    for (sku, t), used in chips_used.items():
        have = (
            owned.get((sku, t), 0.0) + float(fleet["rented_chips"].get((sku, t), 0.0))
            if len(fleet)
            else 0.0
        )
        v.expect("chips in use", _le(used, have),
                 f"{sku} {t}: instances use {used:g} chips, owned + rented is {have:g}")  # fmt: skip


def _installed_mw(plan: Any, catalog: Catalog, settings: Any) -> dict[str, float]:
    """Facility MW of every chip in service per period (hosting basis "installed"): owned
    chips, and rented ones with rented_power "facility", at the catalog's all-in watts."""
    out: dict[str, float] = defaultdict(float)
    for f in plan.fleet.itertuples():
        chips = f.owned_chips + (f.rented_chips if settings.rented_power == "facility" else 0.0)
        watts = catalog.hardware[f.sku].power.all_in_w_per_chip.value
        out[f.period] += chips * watts * settings.pue / 1e6
    return out


def _check_costs(
    plan: Any, catalog: Catalog, settings: Any, periods: list[str], hours: dict,
    load_factor: dict, v: Verification,
) -> None:  # fmt: skip
    costs = plan.costs.set_index("period")
    power = (
        plan.power.set_index("period")["facility_mw"] if len(plan.power) else pd.Series(dtype=float)
    )
    installed = settings.hosting_basis == "installed"
    installed_mw = _installed_mw(plan, catalog, settings) if installed else {}
    paid: dict[str, float] = defaultdict(float)
    for b in plan.purchases.itertuples():
        price = catalog.hardware[b.sku].purchase.price_usd
        paid[b.period] += b.units * (price.value if price else math.nan)
    rental: dict[str, float] = defaultdict(float)
    for r in plan.rentals.itertuples():
        rent = catalog.hardware[r.sku].purchase.rent_usd_per_chip_hour
        rental[r.period] += r.chips * (rent.value if rent else math.nan) * hours[r.period]
    for t in periods:
        if t not in costs.index:
            continue
        c = costs.loc[t]
        mw = float(power.get(t, 0.0))
        energy = mw * 1000.0 * hours[t] * load_factor[t] * settings.electricity_usd_per_kwh
        hosted_mw = installed_mw.get(t, 0.0) if installed else mw
        hosting = (
            hosted_mw * 1000.0 * settings.hosting_usd_per_kw_month * hours[t] / HOURS_PER_MONTH
        )
        if settings.cost_basis == "horizon":
            v.expect("capex", _close(float(c["capex_usd"]), paid[t], abs_=1e-3),
                     f"{t}: plan capex {c['capex_usd']:,.2f} USD, catalog prices give {paid[t]:,.2f}")  # fmt: skip
        v.expect("rental", _close(float(c["rental_usd"]), rental[t], abs_=1e-3),
                 f"{t}: plan rental {c['rental_usd']:,.2f} USD, catalog rents give {rental[t]:,.2f}")  # fmt: skip
        v.expect("energy", _close(float(c["energy_usd"]), energy, abs_=1e-3),
                 f"{t}: plan energy {c['energy_usd']:,.2f} USD, re-derived {energy:,.2f}")  # fmt: skip
        v.expect("hosting", _close(float(c["hosting_usd"]), hosting, abs_=1e-3),
                 f"{t}: plan hosting {c['hosting_usd']:,.2f} USD, re-derived {hosting:,.2f}")  # fmt: skip
        total = (
            float(c["capex_usd"])
            + float(c["rental_usd"])
            + float(c["energy_usd"])
            + float(c["hosting_usd"])
        )
        v.expect("cost total", _close(float(c["total_usd"]), total, abs_=1e-3),
                 f"{t}: total {c['total_usd']:,.2f} != sum of parts {total:,.2f}")  # fmt: skip
    if settings.capex_budget_usd is not None:
        v.expect("capex budget", _le(sum(paid.values()), settings.capex_budget_usd),
                 f"purchases {sum(paid.values()):,.0f} USD exceed the {settings.capex_budget_usd:,.0f} budget")  # fmt: skip
