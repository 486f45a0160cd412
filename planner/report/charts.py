"""matplotlib charts (Agg backend: no display needed)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def plot_frontier(table: pd.DataFrame, path: Path, title: str = "") -> Path:
    """Tokens/s per MW against tokens/s per user, one line per topology, frontier marked."""
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for topo, g in table.groupby("topology", sort=True):
        g = g.sort_values("tokens_per_s_per_user")
        ax.plot(
            g["tokens_per_s_per_user"], g["tokens_per_s_per_mw"], marker="o", ms=3, label=str(topo)
        )
        f = g[g["on_frontier"]]
        ax.scatter(
            f["tokens_per_s_per_user"],
            f["tokens_per_s_per_mw"],
            s=40,
            facecolors="none",
            edgecolors="k",
        )
    ax.set_xlabel("output tokens/s per user")
    ax.set_ylabel("output tokens/s per MW (all-in IT power)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title or "Token-economics frontier")
    ax.legend(title="topology (circles: frontier)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------
# Report charts: each takes the report table it draws and returns SVG bytes
# --------------------------------------------------------------------------------------

PART_COLORS = {"capex_usd": "#4c72b0", "rental_usd": "#dd8452", "energy_usd": "#55a868",
               "hosting_usd": "#8172b3"}  # fmt: skip
SVG_PARAMS = {"svg.fonttype": "none", "svg.hashsalt": "fleet-planner", "font.size": 9}


def safe_label(text: object) -> str:
    """Text from the inputs shown as is: no mathtext ($...$) interpretation."""
    return str(text).replace("$", r"\$")


def _svg(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    plt.close(fig)
    return buf.getvalue()


def _empty(title: str, text: str) -> bytes:
    fig, ax = plt.subplots(figsize=(7, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, f"{title}: {text}", ha="center", va="center")
    return _svg(fig)


def _sku_colors(skus: list[str]) -> dict[str, Any]:
    cmap = plt.get_cmap("tab20")
    return {s: cmap(i % 20) for i, s in enumerate(sorted(skus))}


def plot_fleet(frame: pd.DataFrame, periods: list[str], title: str) -> bytes:
    """Chips in service per period, stacked by SKU: owned solid, rented hatched."""
    if frame.empty:
        return _empty(title, "no fleet")
    x = np.arange(len(periods))
    colors = _sku_colors(list(frame["sku"].unique()))
    fig, ax = plt.subplots(figsize=(8, 3.6))
    bottom = np.zeros(len(periods))
    for sku, g in frame.groupby("sku", sort=True):
        g = g.set_index("period").reindex(periods).fillna(0.0)
        owned = (g["existing_chips"] + g["purchased_chips"]).to_numpy(float)
        rented = g["rented_chips"].to_numpy(float)
        ax.bar(x, owned, bottom=bottom, color=colors[sku], label=safe_label(sku))
        bottom += owned
        if rented.any():
            ax.bar(x, rented, bottom=bottom, color=colors[sku], hatch="//", alpha=0.55,
                   label=safe_label(f"{sku} (rented)"))  # fmt: skip
            bottom += rented
    ax.set_xticks(x, [safe_label(p) for p in periods])
    ax.set_ylabel("chips in service")
    ax.set_title(safe_label(title))
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _svg(fig)


def plot_costs(frame: pd.DataFrame, periods: list[str], title: str) -> bytes:
    """Cost per period stacked by part; the right panel shows operating costs alone."""
    if frame.empty:
        return _empty(title, "no costs")
    g = frame.set_index("period").reindex(periods).fillna(0.0)
    x = np.arange(len(periods))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, parts, sub in ((axes[0], list(PART_COLORS), "all costs"),
                           (axes[1], ["rental_usd", "energy_usd", "hosting_usd"], "operating costs")):  # fmt: skip
        bottom = np.zeros(len(periods))
        for part in parts:
            v = g[part].to_numpy(float) / 1e6
            ax.bar(x, v, bottom=bottom, color=PART_COLORS[part], label=part.removesuffix("_usd"))
            bottom += v
        ax.set_xticks(x, [safe_label(p) for p in periods], rotation=45, ha="right")
        ax.set_ylabel("million USD")
        ax.set_title(sub)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(safe_label(title))
    fig.tight_layout()
    return _svg(fig)


def plot_power(frame: pd.DataFrame, periods: list[str], title: str) -> bytes:
    if frame.empty:
        return _empty(title, "no power drawn")
    g = frame.set_index("period").reindex(periods)
    x = np.arange(len(periods))
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.bar(x, g["facility_mw"].fillna(0.0), color="#4c72b0", label="facility (IT x PUE)")
    ax.plot(x, g["it_mw"], "o-", color="#333333", ms=3, label="IT")
    budget = g["budget_mw"].astype(float)
    if budget.notna().any():
        ax.step(x, budget, where="mid", color="#c44e52", ls="--", label="budget")
    else:
        title = f"{title} (no budget set)"
    ax.set_xticks(x, [safe_label(p) for p in periods])
    ax.set_ylabel("MW")
    ax.set_title(safe_label(title))
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _svg(fig)


def plot_operating_frontier(frame: pd.DataFrame, title: str) -> bytes:
    """One curve per decode pool over batch sizes; a star at the batch the plan runs."""
    if frame.empty:
        return _empty(title, "no decode pools to draw")
    fig, ax = plt.subplots(figsize=(8, 4.4))
    cmap = plt.get_cmap("tab10")
    for i, (name, g) in enumerate(frame.groupby("configuration", sort=False)):
        color = cmap(i % 10)
        curve = g[~g["chosen"]].sort_values("output_tok_s_per_user")
        ax.plot(curve["output_tok_s_per_user"], curve["output_tok_s_per_mw"], "-o", ms=2.5,
                color=color, label=safe_label(name))  # fmt: skip
        pick = g[g["chosen"]]
        ax.scatter(pick["output_tok_s_per_user"], pick["output_tok_s_per_mw"], marker="*", s=160,
                   color=color, edgecolors="k", zorder=5)  # fmt: skip
    ax.set_xlabel("output tokens/s per user")
    ax.set_ylabel("output tokens/s per MW (all-in IT power)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(safe_label(title))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return _svg(fig)


def render_charts(charts: dict[str, dict[str, Any]]) -> dict[str, bytes]:
    """Report.charts -> SVG bytes per chart key."""
    drawers = {"fleet": plot_fleet, "costs": plot_costs, "power": plot_power}
    out: dict[str, bytes] = {}
    with plt.rc_context(SVG_PARAMS):
        for key, spec in charts.items():
            if key == "frontier":
                out[key] = plot_operating_frontier(spec["frame"], spec["title"])
            elif key in drawers:
                out[key] = drawers[key](spec["frame"], spec["periods"], spec["title"])
    return out
