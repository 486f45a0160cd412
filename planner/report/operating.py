"""Token economics of the decode configurations the plan runs, with its operating points.

Evaluates performance curves (`perf.frontier.frontier_table`) for the serving configuration
of each decode pool the plan uses; no solving.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from planner.demand import own_acceptance
from planner.perf.evaluate import ServingConfig, evaluate
from planner.perf.frontier import frontier_table
from planner.report.model import ReportTable
from planner.report.view import PlanView

MAX_CURVES = 8
CURVE_COLUMNS = ["workload", "configuration", "batch", "output_tok_s_per_user",
                 "output_tok_s_per_mw", "on_frontier", "chosen"]  # fmt: skip


def short_name(candidate: str) -> str:
    """ "spec|m@fp8|b300:tp4|eagle-head|k3" -> "spec b300:tp4"."""
    parts = candidate.split("|")
    return f"{parts[0]} {parts[2]}" if len(parts) > 2 else candidate


def _decode_pools(view: PlanView) -> list[tuple[str, str]]:
    """(candidate, workload) of decode pools, largest load first."""
    r = view.carried
    r = r[r["phase"] == "decode"]
    load = r.groupby(["candidate", "workload"])["load_rps"].sum().sort_values(ascending=False)
    return [(str(c), str(w)) for c, w in load.index[:MAX_CURVES]]


def _kwargs(view: PlanView, candidate: str, workload: str) -> dict[str, Any]:
    wl = view.workloads[workload]
    cfg = {k: v for k, v in view.config(candidate).items() if v is not None}
    row = view.rows.get((candidate, workload, "decode"), {})
    if row.get("microbatches") and "microbatches" not in cfg:
        cfg["microbatches"] = int(row["microbatches"])
    if cfg.get("draft_model") and (own := own_acceptance(wl)) is not None:
        cfg["acceptance"] = own  # the workload's, over the scenario's default
    return {
        **cfg,
        "prompt_tokens": int(wl["prompt_tokens"]),
        "output_tokens": int(wl["output_tokens"]),
    }


def frontier_inputs(view: PlanView) -> tuple[Any, ...]:
    """Everything the curves depend on: each drawn decode pool's configuration, workload
    shape and chosen batch, and the scenario (its catalog overrides). Cheap to compute."""
    pools = []
    for candidate, workload in _decode_pools(view):
        try:
            kwargs = sorted(_kwargs(view, candidate, workload).items())
        except Exception:  # frontier_curves notes the pool as not evaluated
            kwargs = []
        row = view.rows.get((candidate, workload, "decode"), {})
        pools.append((candidate, workload, tuple(kwargs), row.get("batch")))
    scenario = json.dumps(view.inputs.get("scenario"), sort_keys=True, default=str)
    return (tuple(pools), scenario, view.catalog is None)


class FrontierCache:
    """Curves computed once per set of `frontier_inputs`: the report worker draws from a
    draft of the plan, then builds the final report, whose decode pools rarely differ."""

    def __init__(self) -> None:
        from planner.report.speculation import SpeculationCache

        self._key: tuple[Any, ...] | None = None
        self._curves: tuple[ReportTable, list[str]] | None = None
        # The other perf-model re-derivation of the report, cached alike.
        self.speculation = SpeculationCache()

    def curves(self, view: PlanView) -> tuple[ReportTable, list[str]]:
        key = frontier_inputs(view)
        if self._curves is None or key != self._key:
            self._key, self._curves = key, frontier_curves(view)
        table, notes = self._curves
        return table, list(notes)


def frontier_curves(view: PlanView) -> tuple[ReportTable, list[str]]:
    """Curves (one per decode pool) with the chosen batch marked; and notes on any skipped."""
    if view.catalog is None:
        return _table(pd.DataFrame(columns=CURVE_COLUMNS)), ["no catalog: frontier not drawn"]
    # Columns as lists, one DataFrame at the end: a frame and a concat per pool cost more
    # than the pool's curve in pandas overhead.
    cols: dict[str, list[Any]] = {c: [] for c in CURVE_COLUMNS}
    notes: list[str] = []
    for candidate, workload in _decode_pools(view):
        label = f"{workload}: {short_name(candidate)}"
        try:
            kwargs = _kwargs(view, candidate, workload)
            curve = frontier_table(kwargs, view.catalog)
            batch = int(view.rows[(candidate, workload, "decode")]["batch"])
            point = _chosen_point(curve, kwargs, batch, view)
        except Exception as exc:  # an old plan or a changed catalog: say so, draw the rest
            notes.append(f"{label}: not evaluated ({type(exc).__name__}: {exc})")
            continue
        if curve.empty or point is None:
            notes.append(f"{label}: the configuration does not evaluate as feasible now")
            continue
        xs = [*curve["tokens_per_s_per_user"].tolist(), point[1]]
        n = len(xs)
        cols["workload"] += [workload] * n
        cols["configuration"] += [label] * n
        cols["batch"] += [*curve["batch"].tolist(), point[0]]
        cols["output_tok_s_per_user"] += xs
        cols["output_tok_s_per_mw"] += [*curve["tokens_per_s_per_mw"].tolist(), point[2]]
        cols["on_frontier"] += [*(bool(v) for v in curve["on_frontier"].tolist()), False]
        cols["chosen"] += [False] * (n - 1) + [True]
    frame = pd.DataFrame(cols) if cols["workload"] else pd.DataFrame(columns=CURVE_COLUMNS)
    return _table(frame), notes


def _chosen_point(
    curve: pd.DataFrame, kwargs: dict[str, Any], batch: int, view: PlanView
) -> tuple[int, float, float] | None:
    """(batch, tokens/s per user, tokens/s per MW) at the batch the plan runs; None if that
    does not evaluate as feasible. Taken from the curve when the curve has that batch (the
    same evaluation), else evaluated."""
    assert view.catalog is not None
    same = curve[curve["batch"] == batch] if not curve.empty else curve
    if len(same):
        row = same.iloc[0]
        return batch, float(row["tokens_per_s_per_user"]), float(row["tokens_per_s_per_mw"])
    chosen = evaluate(ServingConfig(**{**kwargs, "batch": batch}), view.catalog)
    if not chosen.feasible:
        return None
    return (chosen.batch, chosen.tokens_per_s_per_user,
            chosen.tokens_per_s / (chosen.power_w / 1e6))  # fmt: skip


def _table(frame: pd.DataFrame) -> ReportTable:
    return ReportTable(
        "frontier",
        "Token-economics curves of the decode pools (chosen batch marked)",
        frame,
        note="Output tokens/s per MW of all-in IT power against output tokens/s per user over "
        "batch sizes, from the performance model; chosen = the batch the plan runs.",
        in_documents=False,
    )
