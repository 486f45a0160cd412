"""The executive summary in words: headline figures, solver status, and "why this mix"."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from planner.report.diagnosis import NOT_COMPUTED, lifted_cost_change_usd
from planner.report.model import Figure
from planner.report.view import TOL, PlanView

TOPOLOGY_WORDS = {
    "pd+spec": "speculative decoding",
    "spec": "colocated with prefill, speculative decoding",
    "pd": "dedicated decode pools",
    "colocated": "colocated with prefill",
    "pd+afd": "attention-FFN disaggregation",
}


def usd(x: float) -> str:
    return f"${x:,.0f}"


def figures(view: PlanView) -> list[Figure]:
    c, p = view.plan.costs, view.plan.power
    basis = (
        "cash paid in the horizon" if view.plan.settings.cost_basis == "horizon" else "amortized"
    )
    out = [
        Figure("Capex", float(c["capex_usd"].sum()), "USD", basis),
        Figure("Rentals", float(c["rental_usd"].sum()), "USD"),
        Figure("Energy", float(c["energy_usd"].sum()), "USD"),
        Figure("Hosting", float(c["hosting_usd"].sum()), "USD"),
        Figure("Total cost of ownership over the horizon", view.plan.total_cost_usd, "USD",
               f"{view.periods[0]} to {view.periods[-1]}" if view.periods else ""),
        Figure("Peak facility power", float(p["facility_mw"].max()) if len(p) else 0.0, "MW",
               f"PUE {view.plan.settings.pue:g}"),
    ]  # fmt: skip
    if view.plan.unserved_rps > TOL or not view.has_solution:
        peak = (
            float(view.plan.unserved.groupby("period")["requests_per_s"].sum().max())
            if len(view.plan.unserved)
            else math.nan
        )
        if not view.has_solution and len(view.demand):
            peak = float(view.demand.groupby("period")["requests_per_s"].sum().max())
        out.append(Figure("Unserved demand (worst period)", peak, "req/s", "see Unserved demand"))
    return out


def status_paragraph(view: PlanView, verification: dict[str, Any] | None) -> str:
    p = view.plan
    if not view.has_solution:
        return (f"No plan: the solver returned status {p.status} ({p.message}). Nothing is "
                "bought or placed; every request of the forecast is unserved (see Unserved demand).")  # fmt: skip
    if p.status == "optimal":
        text = "The solver proved this plan optimal"
        text += (
            f" (relative gap {p.gap:.2%}, within its tolerance)." if (p.gap or 0) > 1e-4 else "."
        )
    else:
        text = f"The solver stopped at its limit ({p.message}) with a feasible plan"
        if p.settings.objective == "power" and p.gap is not None and p.bound is not None:
            # Objective and bound are the peak stage's MW (plus a tiny cost tie-break).
            text += (f" and a gap of {p.gap:.1%}: no plan peaks below {p.bound:.4g} MW of "
                     "facility power.")  # fmt: skip
        elif p.gap is not None and p.bound is not None and p.objective is not None:
            text += (f" and a gap of {p.gap:.1%}: no plan costs less than {usd(p.bound)}, so a "
                     f"better plan could cost up to {usd(p.objective - p.bound)} less.")  # fmt: skip
        else:
            text += "."
    if verification is not None:
        n = sum(verification.get("checks", {}).values())
        text += (f" An independent re-check against the performance model and catalogs "
                 f"{'passed' if verification.get('passed') else 'FAILED'} ({n:,} checks).")  # fmt: skip
    return text


def _weighted_shares(view: PlanView, phase: str) -> dict[str, float]:
    """SKU (of the phase's main hardware) -> share of the phase's requests over the horizon."""
    r = view.carried
    r = r[r["phase"] == phase]
    acc: dict[str, float] = defaultdict(float)
    for x in r.itertuples(index=False):
        cfg = view.config(x.candidate)
        sku = cfg.get("prefill_hardware") if phase == "prefill" else None
        acc[str(sku or cfg.get("hardware") or x.candidate)] += x.load_rps * view.hours.get(
            x.period, 1.0
        )
    total = sum(acc.values())
    return {k: v / total for k, v in sorted(acc.items(), key=lambda kv: -kv[1])} if total else {}


def _share_text(shares: dict[str, float]) -> str:
    parts = [f"{k} ({v:.0%})" for k, v in shares.items()]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _decode_styles(view: PlanView) -> str:
    r = view.carried
    r = r[r["phase"] == "decode"]
    acc: dict[str, float] = defaultdict(float)
    for x in r.itertuples(index=False):
        cfg = view.config(x.candidate)
        words = TOPOLOGY_WORDS.get(str(cfg.get("topology")), str(cfg.get("topology")))
        if cfg.get("draft_model"):
            words += f" ({cfg['draft_model']} draft, k={cfg.get('draft_tokens')})"
        if cfg.get("ffn_hardware"):
            words += f" (FFN on {cfg['ffn_hardware']})"
        acc[words] += x.load_rps * view.hours.get(x.period, 1.0)
    total = sum(acc.values())
    return (
        _share_text({k: v / total for k, v in sorted(acc.items(), key=lambda kv: -kv[1])})
        if total
        else ""
    )


def _split_workloads(view: PlanView) -> tuple[int, int]:
    """(workloads some of whose requests run prefill and decode on different SKUs in some
    period, workloads served).

    Routing is fluid, so which prefill feeds which decode is not recorded; what is: the
    load of each phase per hardware set (a candidate's SKUs). Every request can keep both
    phases on the same hardware only if, on every set, prefill and decode loads are equal
    (a colocated instance carries both equally); any difference is load that must cross."""
    r = view.plan.routing
    # Plain dicts, not a nested groupby: pandas' per-group overhead was most of this cost.
    net: dict[tuple[str, str], dict[frozenset[str], float]] = defaultdict(
        lambda: defaultdict(float)
    )
    scale: dict[tuple[str, str], float] = defaultdict(float)
    columns = [r[k].tolist() for k in ("workload", "period", "phase", "candidate", "load_rps")]
    for w, t, ph, c, load in zip(*columns, strict=True):
        if load > TOL:
            key = (str(w), str(t))
            net[key][frozenset(view.units(c))] += load if ph == "prefill" else -load
            scale[key] = max(scale[key], float(load))
    split = {
        w for (w, t), by in net.items() if any(abs(v) > 1e-6 * scale[(w, t)] for v in by.values())
    }
    return len(split), len({w for w, _t in net})


def _rental_sentence(view: PlanView) -> str:
    f = view.plan.fleet
    if f.empty or f["rented_chips"].sum() <= TOL:
        return ""
    hours = f["period"].map(view.hours).astype(float).fillna(1.0)
    rented = float((f["rented_chips"] * hours).sum())
    total = float(((f["owned_chips"] + f["rented_chips"]) * hours).sum())
    when = [t for t in view.periods if (f.loc[f["period"] == t, "rented_chips"] > TOL).any()]
    return (f" Rented chips make up {rented / total:.0%} of the chip-hours in service, in "
            f"{', '.join(when)}, covering demand that owned units cannot (yet) carry.")  # fmt: skip


def _savings_sentence(view: PlanView) -> str:
    comps = view.inputs.get("comparisons")
    if comps is None:
        return f" Savings against the best single-SKU fleet and a GPU-only fleet: {NOT_COMPUTED}."
    mine, mine_lost = view.plan.total_cost_usd, view.plan.unserved_rps
    parts = []
    for c in comps:
        name = str(c.get("fleet", ""))
        if name == "this plan":
            continue
        cost, lost = c.get("total_cost_usd"), float(c.get("unserved_rps") or 0.0)
        if c.get("status") == "skipped":
            parts.append(f"{name}: {c.get('note')}")
        elif cost is None or c.get("status") not in ("optimal", "feasible_at_limit"):
            parts.append(f"{name}: no plan ({c.get('status')})")
        elif lost > mine_lost + 1e-6:
            parts.append(f"{name} leaves {lost - mine_lost:.3g} req/s more unserved")
        elif cost > mine:
            parts.append(
                f"against {name} this mix saves {usd(cost - mine)} ({(cost - mine) / cost:.0%})"
            )
        else:
            parts.append(f"{name} costs {usd(cost)}, no more than this plan: the mix brings no "
                         "saving over it")  # fmt: skip
    text = "; ".join(parts)
    return f" {text[:1].upper()}{text[1:]}." if parts else ""


def _lift_effect(view: PlanView, b: dict[str, Any]) -> str:
    """What lifting one recorded limit does: serve more, or save money."""
    lost_now = view.plan.unserved_rps
    lost_after = b.get("unserved_rps_if_lifted")
    saving = float(b["saving_if_lifted_usd"])
    if lost_after is not None and float(lost_after) < lost_now - TOL:
        extra = lifted_cost_change_usd(view, b)
        return (f"Lifting the {b['constraint']} would serve {lost_now - float(lost_after):.3g} "
                f"req/s more of the unserved demand (total cost {extra:+,.0f} USD).")  # fmt: skip
    return f"Lifting the {b['constraint']} would save {usd(saving)}."


def _binding_sentence(view: PlanView) -> str:
    binding = view.inputs.get("binding")
    if binding is None:
        return ""
    lifted = [b for b in binding if b.get("saving_if_lifted_usd") is not None]
    binds = [b for b in lifted if b.get("binds")]
    if binds:
        ordered = sorted(binds, key=lambda b: -float(b["saving_if_lifted_usd"]))
        return " " + " ".join(_lift_effect(view, b) for b in ordered)
    if lifted:
        return f" The limits set ({', '.join(str(b['constraint']) for b in lifted)}) do not bind."
    return ""


def why_this_mix(view: PlanView) -> str:
    if not view.has_solution or view.plan.routing.empty:
        return "No hardware is placed, so there is no mix to explain."
    pre, dec = _weighted_shares(view, "prefill"), _weighted_shares(view, "decode")
    text = f"Prefill runs on {_share_text(pre)} and decode on {_share_text(dec)} (shares of requests over the horizon)."
    styles = _decode_styles(view)
    if styles:
        text += f" Decode serving: {styles}."
    split, served = _split_workloads(view)
    if served:
        text += (f" In {split} of {served} served workloads some requests run prefill and "
                 "decode on different SKUs (in at least one period): the planner places each "
                 "phase where it is cheapest inside the SLA.")  # fmt: skip
    return text + _rental_sentence(view) + _savings_sentence(view) + _binding_sentence(view)


def warnings(view: PlanView, extra: list[str]) -> list[str]:
    out = []
    if not view.inputs:
        out.append("plan.json records no inputs: workloads, placement and SLA cannot be reported.")
    if view.plan.status == "feasible_at_limit" and (view.plan.gap or 0) > 0.01:
        out.append(f"Not proven optimal: the solver stopped with a {view.plan.gap:.1%} gap.")
    if view.plan.unserved_rps > TOL or not view.has_solution:
        out.append("Some demand is unserved; see Unserved demand for what and why.")
    uncal = view.inputs.get("uncalibrated_skus") or []
    if uncal:
        from planner.catalog import UNMEASURED

        out.append(f"Uncalibrated SKUs in this plan ({UNMEASURED}): {', '.join(uncal)}.")
    return out + extra
