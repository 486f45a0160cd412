"""Token economics over batch sizes: throughput per MW and per dollar vs speed per user."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from planner.catalog import Catalog
from planner.perf.evaluate import ServingConfig, evaluate


def hourly_cost_usd(units: dict[str, int], catalog: Catalog) -> float:
    """Cost of one instance-hour: rental price where listed, else purchase price spread over
    the SKU's lifetime (straight-line, no energy). NaN when neither is known."""
    total = 0.0
    for sku, chips in units.items():
        p = catalog.hardware[sku].purchase
        if p.rent_usd_per_chip_hour is not None:
            total += chips * p.rent_usd_per_chip_hour.value
        elif p.price_usd is not None:
            per_chip = p.price_usd.value / p.chips_per_unit
            total += chips * per_chip / (p.lifetime_years.value * 8760.0)
        else:
            return float("nan")
    return total


def pareto_mask(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Points not dominated when both x and y are better larger."""
    order = np.argsort(-x, kind="stable")
    keep = np.zeros(len(x), dtype=bool)
    best_y = -np.inf
    for i in order:
        if y[i] > best_y:
            keep[i] = True
            best_y = y[i]
    return keep


def frontier_table(config_kwargs: dict[str, Any], catalog: Catalog) -> pd.DataFrame:
    """Evaluate every batch size that fits; mark the points on the frontier."""
    probe = evaluate(ServingConfig(**{**config_kwargs, "batch": "max"}), catalog)
    if not probe.feasible:
        return pd.DataFrame()
    rows = []
    b = 1
    while b <= probe.batch:
        r = evaluate(ServingConfig(**{**config_kwargs, "batch": b}), catalog)
        if r.feasible:
            cost = hourly_cost_usd(r.units, catalog)
            rows.append({
                "topology": r.config.topology, "batch": r.batch,
                "tokens_per_s_per_user": r.tokens_per_s_per_user, "tokens_per_s": r.tokens_per_s,
                "tpot_ms": r.decode_step_ms, "power_w": r.power_w,
                "tokens_per_s_per_mw": r.tokens_per_s / (r.power_w / 1e6),
                "usd_per_hour": cost,
                "tokens_per_usd_hour": r.tokens_per_s * 3600.0 / cost if cost > 0 else float("nan"),
                "units": ";".join(f"{k}={v}" for k, v in r.units.items()),
            })  # fmt: skip
        b = b * 2 if b < probe.batch else b + 1
        if b > probe.batch and rows and rows[-1]["batch"] != probe.batch:
            b = probe.batch
    table = pd.DataFrame(rows).drop_duplicates(subset=["topology", "batch"])
    table["on_frontier"] = pareto_mask(
        table["tokens_per_s_per_user"].to_numpy(), table["tokens_per_s_per_mw"].to_numpy()
    )
    return table.reset_index(drop=True)
