"""matplotlib charts (Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
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
