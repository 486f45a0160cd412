"""Assumptions and provenance: settings, solver, the catalog numbers used, calibration."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from planner.catalog import UNMEASURED, CalibrationFile, Hardware, Sourced, data_dir, peak_precision
from planner.perf.specs import compute_fraction, compute_precision
from planner.report.model import ReportTable
from planner.report.view import PlanView
from planner.scenario import PRUNING_NOTES, pruning_mode


def _row(setting: str, value: Any, unit: str = "", note: str = "") -> dict[str, Any]:
    if value is None:
        value = "none"
    elif isinstance(value, bool):
        value = "yes" if value else "no"
    elif isinstance(value, list | dict):
        value = (
            ", ".join(f"{k}: {v}" for k, v in value.items())
            if isinstance(value, dict)
            else ", ".join(map(str, value))
        )
        value = value or "none"
    return {"setting": setting, "value": value, "unit": unit, "note": note}


def settings_table(view: PlanView) -> ReportTable:
    st = view.plan.settings
    sc = view.inputs.get("scenario", {})
    rows = [
        _row("scenario", sc.get("name", "")),
        _row("demand", view.inputs.get("demand_source", "")),
        _row("plan created", view.inputs.get("created_utc", ""), "UTC"),
        _row("objective", st.objective),
        _row("cost basis", st.cost_basis),
        _row("PUE", st.pue, "", "facility power = IT power x PUE"),
        _row("electricity", st.electricity_usd_per_kwh, "USD/kWh"),
        _row("hosting", st.hosting_usd_per_kw_month, "USD/kW-month",
             "per kW of facility power in use" if st.hosting_basis == "in_use"
             else "per kW of all-in power installed (every chip in service, busy or idle)"),
        _row("utilization cap", st.util_max, "fraction", "busy share of an instance's time"),
        _row("power budget", st.power_budget_mw, "MW", "facility, per period"),
        _row("peak power cap", st.peak_power_cap_mw, "MW"),
        _row("capex budget", st.capex_budget_usd, "USD", "over the horizon"),
        _row("capex budget per period", st.capex_budget_usd_per_period, "USD"),
        _row("renting allowed", st.allow_rent),
        _row("rented chips' power", st.rented_power, "",
             "paid by the provider (in the rent; outside facility power)"
             if st.rented_power == "provider" else "drawn in our facility (energy, hosting, budget)"),
        _row("unserved penalty", view.plan.penalty_usd_per_rps, "USD per req/s per period"),
        _row("speculative-decoding acceptance", sc.get("spec_acceptance"), "fraction"),
        _row("SKUs allowed", sc.get("allowed_skus") or "all in the catalog"),
        _row("SKUs excluded", sc.get("exclude_skus") or []),
        _row("price overrides", sc.get("price_usd_per_unit") or {}, "USD per unit"),
        _row("rent overrides", sc.get("rent_usd_per_chip_hour") or {}, "USD per chip-hour"),
        _row("supply caps", sc.get("supply_cap_units_per_period") or {}, "units per period"),
        _row("candidate pairs", view.inputs.get("candidate_pairs"), "", "(candidate, workload, phase) rows the MIP chose from"),
        _row("candidate pruning", pruning_mode(sc), "", PRUNING_NOTES[pruning_mode(sc)]),
    ]  # fmt: skip
    return ReportTable("assumptions", "Settings", pd.DataFrame(rows))


def solver_table(view: PlanView) -> ReportTable:
    p = view.plan
    sc = view.inputs.get("scenario", {})
    gap_note = (
        "(objective - bound) / objective"
        if p.settings.objective == "cost"
        else "the larger of the peak stage's and the cost stage's"
    )
    rows = [
        _row("status", p.status),
        _row("message", p.message),
        _row("objective", p.objective, "USD" if p.settings.objective == "cost" else "MW",
             "includes the unserved penalty"),
        _row("best bound", p.bound, "USD" if p.settings.objective == "cost" else "MW",
             "no plan can do better than this"),
        _row("relative gap", p.gap, "fraction", gap_note),
        _row("solver profile", sc.get("solver_profile", "")),
        _row("time limit", sc.get("time_limit_s"), "s"),
        _row("instances relaxed", p.instances_relaxed, "", "LP counts rounded up afterwards"),
        *(_row(f"time: {k.removesuffix('_s')}", v, "s") for k, v in view.inputs.get("timings", p.timings).items()),
    ]  # fmt: skip
    return ReportTable("solver", "Solver", pd.DataFrame(rows))


# --------------------------------------------------------------------------------------
# Catalog numbers
# --------------------------------------------------------------------------------------


def _sourced(hw: Hardware, quantity: str, v: Sourced | None, unit: str) -> dict[str, Any] | None:
    if v is None:
        return None
    tags = v.source.split()
    text = "; ".join(f"{t}: {hw.sources.get(t, '?')}" for t in tags)
    return {"sku": hw.id, "quantity": quantity, "value": v.value, "unit": unit,
            "basis": str(v.basis), "source": v.source, "note": v.note or "", "source_text": text}  # fmt: skip


def _hardware_rows(hw: Hardware, precisions: set[str]) -> list[dict[str, Any]]:
    p, mem = hw.purchase, hw.primary_memory
    items = [
        (f"price per {p.unit_name} ({p.chips_per_unit} chips)", p.price_usd, "USD per unit"),
        ("rent", p.rent_usd_per_chip_hour, "USD per chip-hour"),
        ("lead time", p.lead_time_days, "days"),
        ("lifetime", p.lifetime_years, "years"),
        ("all-in IT power per chip", hw.power.all_in_w_per_chip, "W"),
        ("chip power", hw.power.chip_w, "W"),
        (f"{mem.name} capacity per chip", mem.capacity_gb, "GB"),
        (f"{mem.name} bandwidth per chip", mem.bandwidth_tb_s, "TB/s"),
        ("bandwidth efficiency", hw.efficiency.bandwidth, "fraction of peak"),
        ("per-layer overhead", hw.efficiency.layer_overhead_us, "us"),
    ]
    # The math each served precision runs in here (fp4 weights on a chip without FP4 math
    # run as W4A16, at the bf16 peak) and the fraction the model uses for it.
    maths = {m for m in (compute_precision(hw, p) for p in precisions if p) if m is not None}
    for peak in sorted({peak_precision(mp) for mp in maths}):
        items.append((f"dense peak {peak}", hw.compute_tflops[peak], "TFLOPS"))  # type: ignore[index]
    for mp in sorted(maths):
        items.append((f"compute efficiency {mp}", compute_fraction(hw, mp), "fraction of peak"))
    rows = [_sourced(hw, q, v, u) for q, v, u in items]
    avail = {"sku": hw.id, "quantity": "available from", "value": str(hw.available_from),
             "unit": "date", "basis": hw.status, "source": hw.available_from_source, "note": "",
             "source_text": "; ".join(f"{t}: {hw.sources.get(t, '?')}" for t in hw.available_from_source.split())}  # fmt: skip
    return [avail, *(r for r in rows if r is not None)]


def catalog_table(view: PlanView) -> ReportTable:
    precisions = {str(r.get("config", {}).get("precision") or "") for r in view.rows.values()}
    precisions |= {str(w.get("precision") or "") for w in view.workloads.values()}
    rows: list[dict[str, Any]] = []
    missing = []
    for sku in view.used_skus:
        hw = view.hardware(sku)
        if hw is None:
            missing.append(sku)
            continue
        rows += _hardware_rows(hw, precisions)
    columns = ["sku", "quantity", "value", "unit", "basis", "source", "note", "source_text"]
    note = (
        "basis: spec = vendor primary source; secondary = reputable compilation; measurement "
        "= measured (MLPerf, InferenceX, our runs, or fitted by calibration: source CAL); "
        "estimate = analyst figure or our own assumption. Source SCN = a scenario override."
    )
    if missing:
        note += f" Not in the catalog used for this report: {', '.join(missing)}."
    return ReportTable(
        "catalog",
        "Catalog numbers used, with sources",
        pd.DataFrame(rows, columns=columns),
        note=note,
    )


def load_calibration(path: Path | None = None) -> CalibrationFile | None:
    path = path or data_dir("catalogs") / "calibration.yaml"
    if not path.is_file():
        return None
    try:
        # libyaml's loader when installed: the pure-Python one took ~20 ms for this file.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return CalibrationFile.model_validate(yaml.load(path.read_text(), Loader=loader))
    except Exception:  # a broken file is reported by `planner catalog validate`, not here
        return None


def calibration_table(view: PlanView, calibration: CalibrationFile | None) -> ReportTable:
    flagged = set(view.inputs.get("uncalibrated_skus", []))
    rows = []
    for sku in view.used_skus:
        fit = calibration.hardware.get(sku) if calibration else None
        calibrated = fit is not None and sku not in flagged
        rows.append({
            "sku": sku, "status": "calibrated" if calibrated else "uncalibrated",
            "rows_used": fit.rows_used if fit else 0,
            "median_abs_error_pct": fit.median_abs_pct_error if fit and fit.median_abs_pct_error is not None else math.nan,
        })  # fmt: skip
    note = f"uncalibrated: {UNMEASURED}."
    if calibration is not None:
        note = (f"Fitted {calibration.fitted_on} on {calibration.data}. median abs error: "
                f"over the SKU's measurement rows, recomputed through the performance model. " + note)  # fmt: skip
    else:
        note = "No calibration file found. " + note
    frame = pd.DataFrame(rows, columns=["sku", "status", "rows_used", "median_abs_error_pct"])
    return ReportTable("calibration", "Performance-model calibration", frame, note=note)
