"""Charts of a sweep table (matplotlib, Agg backend): they read the table, never solve.

* cost versus each varied parameter (one line per combination of the others, or the
  spread across them when there are many);
* fleet mix versus each SLA parameter: peak chips in use per SKU, stacked, with a marker
  where a workload's phase moves to another kind of silicon (e.g. decode leaving HBM GPUs
  for SRAM as the tokens/s-per-user target rises);
* cost versus peak facility power, with the non-dominated points joined (when both vary),
  one frontier per demand level.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

OK = ("optimal", "feasible_at_limit")
SLA = ("tpot_ms", "ttft_ms", "spec_acceptance")  # the parameters that change candidates
DEMAND = ("demand_scale",)  # the parameters that change what must be served
MAX_LINES = 8
LABELS = {
    "tpot_ms": "TPOT target (ms per output token)",
    "ttft_ms": "TTFT target (ms)",
    "spec_acceptance": "speculative draft acceptance (per token)",
    "demand_scale": "demand scale (x forecast)",
    "power_budget_mw": "power budget (facility MW per period)",
    "capex_budget_usd": "capex budget (USD)",
    "electricity_usd_per_kwh": "electricity (USD/kWh)",
}


def label(param: str) -> str:
    head, _, sku = param.partition(".")
    if head == "price" and sku:
        return f"price of {sku} (USD per unit)"
    if head == "rent" and sku:
        return f"rent of {sku} (USD per chip-hour)"
    return LABELS.get(param, param)


def sweep_charts(
    table: pd.DataFrame, params: Sequence[str], mode: str, out_dir: Path
) -> list[Path]:
    """Every chart that applies to this sweep, as PNGs in out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    solved = table[table["status"].isin(OK)]
    paths: list[Path] = []
    if solved.empty:
        return paths
    for p in params:
        rows = _slice_rows(solved, params, p, mode, keep_others=True)
        if rows[p].nunique(dropna=False) >= 2:
            paths.append(
                plot_cost(
                    rows, p, [q for q in params if q != p], out_dir / f"cost_vs_{_safe(p)}.png"
                )
            )
    for p in (q for q in params if q in SLA):
        rows = _slice_rows(solved, params, p, mode, keep_others=False)
        if rows[p].nunique() >= 2:
            paths.append(
                plot_fleet_mix(
                    rows, p, _slice_note(rows, params, p), out_dir / f"fleet_mix_vs_{p}.png"
                )
            )
    if solved["peak_facility_mw"].nunique() >= 2 and solved["total_cost_usd"].nunique() >= 2:
        paths.append(plot_cost_power(solved, params, out_dir / "cost_vs_power.png"))
    return paths


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


def _slice_rows(
    rows: pd.DataFrame, params: Sequence[str], p: str, mode: str, *, keep_others: bool
) -> pd.DataFrame:
    """One-at-a-time: the points that vary p. Grid: all points (keep_others), or those
    with every other parameter at its first value."""
    if mode == "one-at-a-time" and "varied" in rows:
        return rows[rows["varied"] == p]
    if keep_others:
        return rows
    mask = pd.Series(True, index=rows.index)
    for q in params:
        if q != p:
            first = rows[q].iloc[0] if len(rows) else math.nan
            mask &= rows[q].isna() if pd.isna(first) else rows[q] == first
    return rows[mask]


def _slice_note(rows: pd.DataFrame, params: Sequence[str], p: str) -> str:
    parts = [f"{q}={_fmt(rows[q].iloc[0], q)}" for q in params if q != p and len(rows)]
    return ("at " + ", ".join(parts)) if parts else ""


def _fmt(v: object, param: str = "") -> str:
    """A parameter's value for a legend. Missing: an SLA left as each workload has it in the
    demand file (one-at-a-time mode), a limit not set."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "as in demand" if param in SLA else "none"
    return f"{v:g}" if isinstance(v, float) else str(v)


def _with_none(rows: pd.DataFrame, p: str) -> tuple[pd.DataFrame, float | None]:
    """A limit's "none" (NaN) drawn one step past its largest value; that x, if any."""
    if not rows[p].isna().any():
        return rows, None
    finite = np.sort(rows[p].dropna().unique())
    step = (
        float(np.diff(finite).max())
        if len(finite) > 1
        else max(abs(float(finite[0])), 1.0)
        if len(finite)
        else 1.0
    )
    at = float(finite.max()) + step if len(finite) else 0.0
    return rows.assign(**{p: rows[p].fillna(at)}), at


def _mark_none(ax: plt.Axes, at: float | None) -> None:
    if at is None:
        return
    ticks = [t for t in ax.get_xticks() if t < at - 1e-12 and t >= ax.get_xlim()[0]]
    ax.set_xticks([*ticks, at], labels=[f"{t:g}" for t in ticks] + ["none"])


def plot_cost(rows: pd.DataFrame, p: str, others: Sequence[str], path: Path) -> Path:
    """Total cost against p: a line per combination of the other parameters (or the
    min-median-max spread over them when there are more than MAX_LINES)."""
    rows, none_at = _with_none(rows, p)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    groups = list(rows.groupby(list(others), dropna=False, sort=True)) if others else [((), rows)]
    if len(groups) <= MAX_LINES:
        for key, g in groups:
            g = g.sort_values(p)
            keys = key if isinstance(key, tuple) else (key,)
            name = (
                ", ".join(f"{q}={_fmt(v, q)}" for q, v in zip(others, keys, strict=True)) or "cost"
            )
            ax.plot(g[p], g["total_cost_usd"] / 1e6, marker="o", ms=3, label=name)
            short = g[g["unserved_rps"] > 1e-6]
            ax.scatter(
                short[p], short["total_cost_usd"] / 1e6, s=60, facecolors="none", edgecolors="r"
            )
        ax.legend(fontsize=7, title="red ring: demand unserved", title_fontsize=7)
    else:
        stats = rows.groupby(p)["total_cost_usd"].agg(["min", "median", "max"]).sort_index() / 1e6
        ax.fill_between(
            stats.index, stats["min"], stats["max"], alpha=0.25, label="range over other parameters"
        )
        ax.plot(stats.index, stats["median"], marker="o", ms=3, label="median")
        ax.legend(fontsize=7)
    _mark_none(ax, none_at)
    _log_if_wide(ax, rows["total_cost_usd"])
    ax.set_xlabel(label(p))
    ax.set_ylabel("total cost over the horizon (million USD)")
    ax.grid(True, alpha=0.3)
    ax.set_title(f"Cost versus {p}")
    return _save(fig, path)


def _log_if_wide(ax: plt.Axes, values: pd.Series) -> None:
    """Log scale when costs span more than two decades (a shortfall can cost 100x)."""
    positive = values[values > 0]
    if len(positive) and positive.max() / positive.min() > 100:
        ax.set_yscale("log")


def plot_fleet_mix(rows: pd.DataFrame, p: str, note: str, path: Path) -> Path:
    """Peak chips in use per SKU, stacked, against an SLA target; silicon changes marked."""
    rows = rows.sort_values(p)
    chips = rows[[c for c in rows.columns if c.startswith("chips.")]].fillna(0.0)
    chips = chips.loc[:, chips.sum() > 0]
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    x = rows[p].to_numpy(float)
    if chips.shape[1]:
        ax.stackplot(
            x,
            chips.to_numpy(float).T,
            labels=[c.removeprefix("chips.") for c in chips.columns],
            alpha=0.8,
        )
        ax.legend(fontsize=7, loc="upper left", title="SKU", title_fontsize=7)
    for k, (at, text) in enumerate(silicon_changes(rows, p)):
        ax.axvline(at, color="k", ls="--", lw=0.8)
        ax.annotate(text, (at, 1.0 - 0.07 * (k % 6)), xycoords=("data", "axes fraction"),
                    fontsize=7, ha="left", va="top", rotation=0,
                    bbox={"boxstyle": "round", "fc": "w", "alpha": 0.8})  # fmt: skip
    ax.set_xlabel(label(p))
    ax.set_ylabel("peak chips in use")
    ax.grid(True, alpha=0.3)
    ax.set_title(f"Fleet mix versus {p}" + (f" ({note})" if note else ""), fontsize=10)
    if p == "tpot_ms" and (x > 0).all():
        _tokens_per_user_axis(ax)
    return _save(fig, path)


def _tokens_per_user_axis(ax: plt.Axes) -> None:
    """A top axis in output tokens/s per user (1000 / TPOT), ticked under the TPOT ticks."""
    top = ax.secondary_xaxis("top", functions=(_per_user, _per_user))
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi and t > 0]
    top.set_xticks([1000.0 / t for t in ticks], labels=[f"{1000.0 / t:.0f}" for t in ticks])
    top.set_xlabel("output tokens/s per user (1000 / TPOT)")


def _per_user(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    with np.errstate(divide="ignore"):
        return np.where(v > 0, 1000.0 / np.where(v > 0, v, 1.0), np.inf)


def silicon_changes(rows: pd.DataFrame, p: str) -> list[tuple[float, str]]:
    """Where, along p, a workload's phase moves to another kind of silicon:
    (midpoint, "chat decode: hbm -> sram")."""
    rows = rows.sort_values(p)
    out = []
    for col in (c for c in rows.columns if c.endswith("_silicon")):
        workload, _, phase = col.removesuffix("_silicon").rpartition(".")
        values = list(zip(rows[p], rows[col].fillna(""), strict=True))
        for (x0, a), (x1, b) in itertools.pairwise(values):
            if a and b and a != b:
                out.append(((x0 + x1) / 2, f"{workload} {phase}: {a} -> {b}"))
    return sorted(out)


def plot_cost_power(rows: pd.DataFrame, params: Sequence[str], path: Path) -> Path:
    """Cost against peak facility MW for every solved point; each demand level's frontier
    joined (points serving different demand are not alternatives to one another)."""
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    groups = frontiers(rows, params)
    for k, (name, (points, front)) in enumerate(groups.items()):
        color = f"C{k % 10}"
        served = points[points["unserved_rps"] <= 1e-6]
        short = points[points["unserved_rps"] > 1e-6]
        suffix = f" ({name})" if name else ""
        ax.scatter(served["peak_facility_mw"], served["total_cost_usd"] / 1e6, s=14, c=color,
                   label="all demand served" + suffix)  # fmt: skip
        if len(short):
            ax.scatter(short["peak_facility_mw"], short["total_cost_usd"] / 1e6, s=18, c=color,
                       marker="x", label="demand unserved" + suffix)  # fmt: skip
        ax.step(front["peak_facility_mw"], front["total_cost_usd"] / 1e6, where="post", c=color,
                lw=1)  # fmt: skip
        ax.scatter(front["peak_facility_mw"], front["total_cost_usd"] / 1e6, s=48,
                   facecolors="none", edgecolors=color)  # fmt: skip
    ax.plot([], [], c="k", lw=1, marker="o", mfc="none",
            label="frontier (no point cheaper at lower power)")  # fmt: skip
    _log_if_wide(ax, rows["total_cost_usd"])
    ax.set_xlabel("peak facility power (MW)")
    ax.set_ylabel("total cost over the horizon (million USD)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Cost versus power" + (" per demand level" if len(groups) > 1 else ""))
    return _save(fig, path)


def frontiers(
    rows: pd.DataFrame, params: Sequence[str]
) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """Per demand level (each value of a varied DEMAND parameter; one group when none
    varies): its points and their cost-versus-power frontier among the points serving all
    demand. A frontier never spans demand levels: serving half the demand is cheaper and
    cooler, but it is not an option for serving all of it."""
    by = [p for p in params if p in DEMAND and p in rows and rows[p].nunique(dropna=False) >= 2]
    if not by:
        return {"": (rows, pareto_front(rows[rows["unserved_rps"] <= 1e-6]))}
    out: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
    for key, points in rows.groupby(by, sort=True, dropna=False):
        values = key if isinstance(key, tuple) else (key,)
        name = ", ".join(
            f"{p.replace('_', ' ')} {_fmt(v)}" for p, v in zip(by, values, strict=True)
        )
        out[name] = (points, pareto_front(points[points["unserved_rps"] <= 1e-6]))
    return out


def pareto_front(rows: pd.DataFrame) -> pd.DataFrame:
    """Points no other point beats on both cost and peak power."""
    r = rows.sort_values(["peak_facility_mw", "total_cost_usd"])
    best = np.minimum.accumulate(r["total_cost_usd"].to_numpy(float)) if len(r) else np.array([])
    keep = (
        np.r_[True, r["total_cost_usd"].to_numpy(float)[1:] < best[:-1]]
        if len(r)
        else np.array([], bool)
    )
    return r[keep]


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
