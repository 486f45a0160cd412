"""Where each workload runs, whether it meets its SLA, and how busy the hardware is.

Predicted TTFT (SLA table): the p-th percentile of time to first token at the load the plan
puts on each prefill pool, with the queueing model the candidate generator sized it with
(each instance an M/D/1 queue, `perf.queueing`): zero-load TTFT (ttft0_ms: prefill,
serving overhead and KV hand-off) plus the waiting-time percentile at utilization rho =
busy fraction x the admissible utilization the pool was sized to (rate_rps x stage
time). For a colocated
pool the busy fraction includes decode time, so the figure is on the safe side.
Predicted TPOT: the decode step at the batch the plan runs (its largest batch inside the
SLA), the worst case. Both are the worst over the periods and pools a workload uses.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np
import pandas as pd

from planner.perf import queueing
from planner.report.model import ReportTable
from planner.report.view import PlanView


def _span(periods: list[str], order: list[str]) -> str:
    """["2027Q1", "2027Q2", "2027Q3"] -> "2027Q1 to 2027Q3"; gaps listed."""
    idx = sorted(order.index(p) for p in set(periods) if p in order)
    if not idx:
        return ""
    runs: list[tuple[int, int]] = []
    for i in idx:
        if runs and i == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return ", ".join(order[a] if a == b else f"{order[a]} to {order[b]}" for a, b in runs)


def _parallelism(cfg: dict[str, Any], phase: str) -> str:
    if phase == "prefill" and cfg.get("prefill_tp"):
        return f"tp{cfg['prefill_tp']} pp{cfg.get('pp') or 1}"
    text = f"tp{cfg.get('tp') or 1} pp{cfg.get('pp') or 1}"
    if cfg.get("microbatches"):
        text += f", {cfg['microbatches']} microbatches"
    return text


def phase_hardware(
    view: PlanView, candidate: str, phase: str, workload: str | None = None
) -> dict[str, str]:
    """Which SKU does what: prefill, decode attention, decode FFN, draft, verify (with the
    draft acceptance the workload's rate assumes, when `workload` is given)."""
    cfg = view.config(candidate)
    hw = str(cfg.get("hardware", ""))
    if phase == "prefill":
        return {"prefill_sku": str(cfg.get("prefill_hardware") or hw)}
    out = {"decode_attention_sku": hw, "decode_ffn_sku": str(cfg.get("ffn_hardware") or hw)}
    if cfg.get("draft_model"):
        on = cfg.get("draft_hardware")
        where = f" on {on}" if on and on != hw else ""
        row = view.rows.get((candidate, workload, phase), {}) if workload else {}
        acceptance = row.get("acceptance", cfg.get("acceptance"))
        at = f" a={float(acceptance):g}" if acceptance is not None else ""
        out["draft"] = f"{cfg['draft_model']} k={cfg.get('draft_tokens')}{at}{where}"
        out["verify_sku"] = hw
    return out


PLACEMENT_COLUMNS = ["workload", "phase", "topology", "prefill_sku", "decode_attention_sku",
                     "decode_ffn_sku", "draft", "verify_sku", "parallelism", "batch",
                     "instances_max", "share_of_load_pct", "periods"]  # fmt: skip


def placement_table(view: PlanView) -> ReportTable:
    """One row per (workload, phase, serving configuration) over the horizon."""
    r = view.carried
    demand, inst = view.peak_rps, view.instance_count
    rows = []
    for (w, p, c), g in r.groupby(["workload", "phase", "candidate"], sort=False):
        asked = sum(demand.get((w, t), 0.0) for t in view.periods)
        row = view.rows.get((c, w, p), {})
        cfg = view.config(c)
        batch = row.get("batch")
        rows.append({
            "workload": w, "phase": p, "topology": str(cfg.get("topology", "")),
            **phase_hardware(view, c, p, w), "parallelism": _parallelism(cfg, p),
            "batch": float(batch) if p == "decode" and batch else math.nan,
            "instances_max": max(inst.get((c, t), 0.0) for t in g["period"].tolist()),
            "share_of_load_pct": 100.0 * g["load_rps"].sum() / asked if asked > 0 else math.nan,
            "periods": _span(list(g["period"]), view.periods),
        })  # fmt: skip
    frame = pd.DataFrame(rows, columns=PLACEMENT_COLUMNS)
    frame = _workload_order(view, frame, ["phase", "share_of_load_pct"], [False, False])
    return ReportTable(
        "placement",
        "Placement per workload",
        frame,
        note="share of load: the configuration's part of the workload's requests over the "
        "horizon (peak rates). instances max: the most instances of the configuration in "
        "any period (shared by every workload it carries). The full configuration of every "
        "pool, per period, is in the XLSX / JSON report (placement_by_period).",
        empty_text="Nothing is placed.",
    )


def _workload_order(
    view: PlanView, frame: pd.DataFrame, by: list[str], ascending: list[bool]
) -> pd.DataFrame:
    pos = {w: i for i, w in enumerate(view.workloads)}
    keyed = frame.assign(_w=frame["workload"].map(pos).fillna(len(pos)))
    keyed = keyed.sort_values(["_w", *by], ascending=[True, *ascending], kind="stable")
    return keyed.drop(columns="_w").reset_index(drop=True)


def routing_table(view: PlanView) -> ReportTable:
    r = view.carried
    inst = view.instance_count
    frame = pd.DataFrame({
        "workload": r["workload"], "phase": r["phase"], "period": r["period"],
        "configuration": r["candidate"].map(view.describe), "load_rps": r["load_rps"],
        "share_pct": 100.0 * r["share"],
        "instances": [inst.get((c, t), 0.0) for c, t in zip(r["candidate"].tolist(), r["period"].tolist(), strict=True)],
        "candidate": r["candidate"],
    })  # fmt: skip
    frame = _workload_order(view, frame, ["phase", "period"], [True, True])
    return ReportTable("placement_by_period", "Placement per period", frame, in_documents=False)


# --------------------------------------------------------------------------------------
# SLA
# --------------------------------------------------------------------------------------


def predicted_ttft_ms(row: dict[str, Any], busy_fraction: float, percentile: float) -> float:
    """p-th percentile TTFT of a prefill pool instance at the given busy fraction."""
    prefill = row.get("prefill_ms")
    ttft0 = row.get("ttft0_ms")
    rate = row.get("rate_rps")
    if prefill is None or ttft0 is None or not rate:
        return math.nan
    pp = int((row.get("config") or {}).get("pp") or 1)
    stage_ms = float(prefill) / pp
    rho = min(0.999999, max(0.0, busy_fraction) * float(rate) * stage_ms / 1000.0)
    wait = queueing.waiting_time_quantile_ms(rho, stage_ms, 1, percentile)
    return float(ttft0) + float(np.asarray(wait))


def _worst_by_workload(view: PlanView) -> dict[str, dict[str, float]]:
    busy = view.busy_fraction
    worst: dict[str, dict[str, float]] = defaultdict(lambda: {"ttft": -math.inf, "tpot": -math.inf})
    r = view.carried
    for x in r.itertuples(index=False):
        row = view.rows.get((x.candidate, x.workload, x.phase))
        wl = view.workloads.get(x.workload)
        if row is None or wl is None:
            continue
        if x.phase == "prefill":
            b = busy.get((x.candidate, x.period), 0.0)
            ttft = predicted_ttft_ms(row, b, float(wl["percentile"]))
            worst[x.workload]["ttft"] = max(worst[x.workload]["ttft"], ttft)
        elif row.get("tpot_ms") is not None:
            worst[x.workload]["tpot"] = max(worst[x.workload]["tpot"], float(row["tpot_ms"]))
    return worst


def sla_table(view: PlanView) -> ReportTable:
    worst = _worst_by_workload(view)
    rows = []
    for w, wl in view.workloads.items():
        got = worst.get(w, {})
        ttft, tpot = got.get("ttft", -math.inf), got.get("tpot", -math.inf)
        ttft = ttft if math.isfinite(ttft) else math.nan
        tpot = tpot if math.isfinite(tpot) else math.nan
        t_ttft, t_tpot = float(wl["ttft_ms"]), float(wl["tpot_ms"])
        rows.append({
            "workload": w, "model": wl.get("model", ""), "precision": wl.get("precision") or "",
            "percentile": float(wl["percentile"]),
            "ttft_target_ms": t_ttft, "ttft_predicted_ms": ttft,
            "ttft_headroom_pct": 100.0 * (t_ttft - ttft) / t_ttft,
            "tpot_target_ms": t_tpot, "tpot_predicted_ms": tpot,
            "tpot_headroom_pct": 100.0 * (t_tpot - tpot) / t_tpot,
            "meets_sla": _verdict(ttft, t_ttft, tpot, t_tpot),
        })  # fmt: skip
    return ReportTable(
        "sla",
        "SLA: target against predicted (worst pool and period)",
        pd.DataFrame(rows),
        note="TTFT: p-th percentile at the load the plan puts on each prefill pool "
        "(queueing model of the performance model). TPOT: decode step at the batch the plan "
        "runs. Headroom = (target - predicted) / target.",
    )


def _verdict(ttft: float, t_ttft: float, tpot: float, t_tpot: float) -> str:
    if math.isnan(ttft) and math.isnan(tpot):
        return "unserved"
    ok = (math.isnan(ttft) or ttft <= t_ttft * (1 + 1e-9)) and (
        math.isnan(tpot) or tpot <= t_tpot * (1 + 1e-9)
    )
    return "yes" if ok else "NO"


# --------------------------------------------------------------------------------------
# Utilization
# --------------------------------------------------------------------------------------


def utilization_table(view: PlanView) -> ReportTable:
    """Per SKU, role and period: chips deployed and the busy share of their time."""
    acc: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    inst = view.instance_count
    for u in view.plan.utilization.itertuples(index=False):
        count = inst.get((u.candidate, u.period), 0.0)
        roles = view.roles(u.candidate)
        for sku, chips in view.units(u.candidate).items():
            a = acc[(sku, roles.get(sku, ""), u.period)]
            a[0] += count
            a[1] += count * chips
            a[2] += count * chips * float(u.busy_fraction)
    pos = {t: i for i, t in enumerate(view.periods)}
    rows = [
        {"sku": s, "role": r, "period": t, "instances": a[0], "chips": a[1],
         "busy_pct": 100.0 * a[2] / a[1] if a[1] > 0 else math.nan}
        for (s, r, t), a in sorted(acc.items(), key=lambda kv: (kv[0][0], kv[0][1], pos.get(kv[0][2], 0)))
    ]  # fmt: skip
    frame = pd.DataFrame(rows, columns=["sku", "role", "period", "instances", "chips", "busy_pct"])
    return ReportTable(
        "utilization",
        "Utilization per SKU and phase",
        frame,
        note=f"busy: chip-weighted share of deployed instance time doing work; the planner "
        f"caps it at {100 * view.plan.settings.util_max:g}% (util_max).",
        empty_text="No instances deployed.",
    )
