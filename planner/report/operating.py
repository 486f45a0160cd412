"""Token economics of the decode configurations the plan runs, with its operating points.

Evaluates performance curves (`perf.frontier.frontier_table`) for the serving configuration
of each decode pool the plan uses; no solving.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from planner.perf.evaluate import ServingConfig, evaluate
from planner.perf.frontier import frontier_table
from planner.report.model import ReportTable
from planner.report.view import TOL, PlanView

MAX_CURVES = 8
CURVE_COLUMNS = ["workload", "configuration", "batch", "output_tok_s_per_user",
                 "output_tok_s_per_mw", "on_frontier", "chosen"]  # fmt: skip


def short_name(candidate: str) -> str:
    """ "spec|m@fp8|b300:tp4|eagle-head|k3" -> "spec b300:tp4"."""
    parts = candidate.split("|")
    return f"{parts[0]} {parts[2]}" if len(parts) > 2 else candidate


def _decode_pools(view: PlanView) -> list[tuple[str, str]]:
    """(candidate, workload) of decode pools, largest load first."""
    r = view.plan.routing
    r = r[(r["phase"] == "decode") & (r["load_rps"] > TOL)]
    load = r.groupby(["candidate", "workload"])["load_rps"].sum().sort_values(ascending=False)
    return [(str(c), str(w)) for c, w in load.index[:MAX_CURVES]]


def _kwargs(view: PlanView, candidate: str, workload: str) -> dict[str, Any]:
    wl = view.workloads[workload]
    cfg = {k: v for k, v in view.config(candidate).items() if v is not None}
    row = view.rows.get((candidate, workload, "decode"), {})
    if row.get("microbatches") and "microbatches" not in cfg:
        cfg["microbatches"] = int(row["microbatches"])
    return {
        **cfg,
        "prompt_tokens": int(wl["prompt_tokens"]),
        "output_tokens": int(wl["output_tokens"]),
    }


def frontier_curves(view: PlanView) -> tuple[ReportTable, list[str]]:
    """Curves (one per decode pool) with the chosen batch marked; and notes on any skipped."""
    if view.catalog is None:
        return _table(pd.DataFrame(columns=CURVE_COLUMNS)), ["no catalog: frontier not drawn"]
    frames, notes = [], []
    for candidate, workload in _decode_pools(view):
        label = f"{workload}: {short_name(candidate)}"
        try:
            kwargs = _kwargs(view, candidate, workload)
            curve = frontier_table(kwargs, view.catalog)
            batch = int(view.rows[(candidate, workload, "decode")]["batch"])
            chosen = evaluate(ServingConfig(**{**kwargs, "batch": batch}), view.catalog)
        except Exception as exc:  # an old plan or a changed catalog: say so, draw the rest
            notes.append(f"{label}: not evaluated ({type(exc).__name__}: {exc})")
            continue
        if curve.empty or not chosen.feasible:
            notes.append(f"{label}: the configuration does not evaluate as feasible now")
            continue
        point = {"batch": chosen.batch, "tokens_per_s_per_user": chosen.tokens_per_s_per_user,
                 "tokens_per_s_per_mw": chosen.tokens_per_s / (chosen.power_w / 1e6),
                 "on_frontier": False, "chosen": True}  # fmt: skip
        curve = pd.concat([curve.assign(chosen=False), pd.DataFrame([point])], ignore_index=True)
        frames.append(
            pd.DataFrame(
                {
                    "workload": workload,
                    "configuration": label,
                    "batch": curve["batch"],
                    "output_tok_s_per_user": curve["tokens_per_s_per_user"],
                    "output_tok_s_per_mw": curve["tokens_per_s_per_mw"],
                    "on_frontier": curve["on_frontier"].astype(bool),
                    "chosen": curve["chosen"].astype(bool),
                }
            )
        )
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=CURVE_COLUMNS)
    return _table(frame), notes


def _table(frame: pd.DataFrame) -> ReportTable:
    return ReportTable(
        "frontier",
        "Token-economics curves of the decode pools (chosen batch marked)",
        frame,
        note="Output tokens/s per MW of all-in IT power against output tokens/s per user over "
        "batch sizes, from the performance model; chosen = the batch the plan runs.",
        in_documents=False,
    )
