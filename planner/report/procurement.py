"""What to buy, rent and keep: bill of materials, rentals, existing fleet, fleet per period."""

from __future__ import annotations

import math

import pandas as pd

from planner.report.model import ReportTable
from planner.report.view import TOL, PlanView


def _period_order(view: PlanView, frame: pd.DataFrame, *others: str) -> pd.DataFrame:
    pos = {t: i for i, t in enumerate(view.periods)}
    keyed = frame.assign(_pos=frame["period"].map(pos).fillna(len(pos)))
    return keyed.sort_values(["_pos", *others], kind="stable").drop(columns="_pos")


def bom_table(view: PlanView) -> ReportTable:
    """New purchases per period; unit price is what the plan paid (capex / units)."""
    p = view.plan.purchases
    p = _period_order(view, p[p["units"] > 0], "sku")
    rows = []
    for r in p.itertuples(index=False):
        hw = view.hardware(r.sku)
        lead = hw.purchase.lead_time_days if hw else None
        price = hw.purchase.price_usd if hw else None
        rows.append({
            "period": r.period, "sku": r.sku, "unit": view.unit_name(r.sku),
            "purchase_units": int(r.units), "chips": int(r.chips),
            "unit_price_usd": float(r.capex_usd) / r.units if r.units else math.nan,
            "extended_price_usd": float(r.capex_usd),
            "in_service_from": view.delivery_period(r.sku, r.period),
            "lead_time_days": lead.value if lead else math.nan,
            "available_from": str(hw.available_from) if hw else "",
            "price_basis": f"{price.basis} ({price.source})" if price else "",
        })  # fmt: skip
    columns = ["period", "sku", "unit", "purchase_units", "chips", "unit_price_usd",
               "extended_price_usd", "in_service_from", "lead_time_days", "available_from",
               "price_basis"]  # fmt: skip
    frame = pd.DataFrame(rows, columns=columns)
    total = {
        "period": "total",
        "purchase_units": int(frame["purchase_units"].sum()),
        "chips": int(frame["chips"].sum()),
        "extended_price_usd": float(view.plan.purchases["capex_usd"].sum()),
    }
    return ReportTable(
        "bom",
        "Bill of materials: new purchases",
        frame,
        note="Paid in the period bought; in service from the period the lead time allows "
        "(lead time in days over the mean period length, rounded up, as the planner counts). "
        "Unit price is the price the plan paid; its source and basis are listed under "
        "Assumptions.",
        total=total,
        empty_text="Nothing is bought: the existing fleet and rentals serve the plan.",
    )


def rentals_table(view: PlanView) -> ReportTable:
    r = _period_order(view, view.plan.rentals[view.plan.rentals["chips"] > TOL], "sku")
    hours = r["period"].map(view.hours).astype(float)
    frame = pd.DataFrame({
        "period": r["period"], "sku": r["sku"], "rented_chips": r["chips"],
        "rent_usd_per_chip_hour": r["cost_usd"] / (r["chips"] * hours),
        "cost_usd": r["cost_usd"],
    }).reset_index(drop=True)  # fmt: skip
    return ReportTable(
        "rentals",
        "Rentals",
        frame,
        note="Chips rented for the whole period (a chip count, not whole nodes).",
        total={"period": "total", "cost_usd": float(view.plan.rentals["cost_usd"].sum())},
        empty_text="No rentals.",
    )


def existing_table(view: PlanView) -> ReportTable:
    rows = []
    for e in view.inputs.get("existing", []):
        retire = e.get("retire_period")
        retire = len(view.periods) if retire is None else int(retire)
        last = view.periods[retire - 1] if 0 < retire <= len(view.periods) else "-"
        rows.append({
            "sku": str(e["sku"]), "unit": view.unit_name(str(e["sku"])), "chips": float(e["chips"]),
            "in_service_until": last if retire < len(view.periods) else "end of horizon",
        })  # fmt: skip
    frame = pd.DataFrame(rows, columns=["sku", "unit", "chips", "in_service_until"])
    return ReportTable(
        "existing_fleet",
        "Existing fleet (already owned; no capex)",
        frame,
        total={"sku": "total", "chips": float(frame["chips"].sum())},
        empty_text="No existing fleet: everything in service is bought or rented by this plan.",
    )


def fleet_schedule_table(view: PlanView) -> ReportTable:
    """Chips in service per SKU and period: existing, bought by this plan, rented, in use."""
    f = _period_order(view, view.plan.fleet, "sku")
    existing = [view.existing_chips(s, t) for s, t in zip(f["sku"], f["period"], strict=True)]
    frame = pd.DataFrame({
        "period": f["period"], "sku": f["sku"], "existing_chips": existing,
        "purchased_chips": f["owned_chips"].to_numpy() - existing,
        "rented_chips": f["rented_chips"], "used_chips": f["used_chips"],
    }).reset_index(drop=True)  # fmt: skip
    in_service = frame["existing_chips"] + frame["purchased_chips"] + frame["rented_chips"]
    frame["used_pct"] = (100.0 * frame["used_chips"] / in_service.where(in_service > 0)).round(6)
    frame = frame[in_service > TOL].reset_index(drop=True)
    return ReportTable(
        "fleet_schedule",
        "Fleet in service per period",
        frame,
        note="used = chips in the instances the plan deploys; idle owned chips are assumed "
        + (
            "powered down (no energy, no hosting)."
            if view.plan.settings.hosting_basis == "in_use"
            else "powered down (no energy), but hosted: hosting is charged on every chip in "
            "service (hosting basis installed)."
        ),
        empty_text="No fleet.",
    )


def buy_schedule_table(view: PlanView) -> ReportTable:
    """One line per period: what to order and rent, and what it costs."""
    rows = []
    buys = view.plan.purchases[view.plan.purchases["units"] > 0]
    rents = view.plan.rentals[view.plan.rentals["chips"] > TOL]
    for t in view.periods:
        b = buys[buys["period"] == t].sort_values("sku")
        r = rents[rents["period"] == t].sort_values("sku")
        if b.empty and r.empty:
            continue
        order = "; ".join(
            f"{int(x.units)} x {x.sku} ({int(x.chips)} chips, in service "
            f"{view.delivery_period(x.sku, t)})"
            for x in b.itertuples()
        )
        rent = "; ".join(
            f"{x.chips:g} {x.sku} chip{'' if x.chips == 1 else 's'}" for x in r.itertuples()
        )
        rows.append({
            "period": t, "buy": order or "-", "rent": rent or "-",
            "capex_usd": float(b["capex_usd"].sum()), "rental_usd": float(r["cost_usd"].sum()),
        })  # fmt: skip
    frame = pd.DataFrame(rows, columns=["period", "buy", "rent", "capex_usd", "rental_usd"])
    return ReportTable(
        "buy_schedule",
        "What to buy and rent, and when",
        frame,
        total={
            "period": "total",
            "capex_usd": float(frame["capex_usd"].sum()),
            "rental_usd": float(frame["rental_usd"].sum()),
        },
        empty_text="Nothing to buy or rent.",
    )
