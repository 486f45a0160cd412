"""Hand-made PlanningData for the optimization tests (no perf/, no candidate generator).

`sku()` and `candidate()` give one row each with plain defaults; `make_data()` assembles the
tidy tables. Defaults are round numbers so a test can write its optimum as arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from planner.model_data import PlanningData, Settings

NAN = math.nan


def sku(
    name: str,
    *,
    chips_per_unit: int = 8,
    price_usd: float = 800_000.0,
    rent_usd_per_chip_hour: float = NAN,
    w_per_chip: float = 1_000.0,
    first_buy: int = 0,
    lead: int = 0,
    life: int = 60,
    cap_units: float = NAN,
) -> dict[str, Any]:
    """One row of the skus table."""
    return {
        "sku": name,
        "chips_per_unit": chips_per_unit,
        "unit_price_usd": price_usd,
        "rent_usd_per_chip_hour": rent_usd_per_chip_hour,
        "all_in_w_per_chip": w_per_chip,
        "first_buy_period": first_buy,
        "lead_periods": lead,
        "lifetime_periods": life,
        "supply_cap_units_per_period": cap_units,
    }


def candidate(
    name: str,
    *,
    units: Mapping[str, float],
    rates: Mapping[tuple[str, str], float],
    power_w: float = 4_000.0,
    topology: str = "colocated",
) -> dict[str, Any]:
    """One candidate: chips of each SKU per instance, and rate_rps per (workload, phase)."""
    return {
        "candidate": name,
        "units": dict(units),
        "rates": dict(rates),
        "power_w": power_w,
        "topology": topology,
    }


def both(workload: str, rate_prefill: float, rate_decode: float) -> dict[tuple[str, str], float]:
    """Rates of a colocated candidate serving both phases of one workload."""
    return {(workload, "prefill"): rate_prefill, (workload, "decode"): rate_decode}


def make_data(
    *,
    skus: Sequence[Mapping[str, Any]],
    candidates: Sequence[Mapping[str, Any]],
    demand: Mapping[str, float | Sequence[float]],
    n_periods: int = 1,
    hours: float | Sequence[float] = 730.0,
    load_factor: float = 1.0,
    existing: Iterable[Mapping[str, Any]] = (),
    **settings: Any,
) -> PlanningData:
    """Assemble PlanningData. `demand` maps workload -> rps (one number = every period)."""
    names = [f"p{i}" for i in range(n_periods)]
    hours_list = [float(hours)] * n_periods if np.isscalar(hours) else list(hours)  # type: ignore[arg-type]
    periods = pd.DataFrame(
        {
            "start": pd.date_range("2026-01-01", periods=n_periods, freq="MS"),
            "hours": hours_list,
            "energy_load_factor": [load_factor] * n_periods,
        },
        index=pd.Index(names, name="period"),
    )
    sku_df = pd.DataFrame(list(skus)).set_index("sku")
    cand_df = pd.DataFrame(
        [
            {
                "candidate": c["candidate"],
                "topology": c["topology"],
                "power_w": c["power_w"],
                "description": "",
            }
            for c in candidates
        ],
        columns=["candidate", "topology", "power_w", "description"],
    ).set_index("candidate")
    units = pd.DataFrame(
        [(c["candidate"], h, float(n)) for c in candidates for h, n in c["units"].items()],
        columns=["candidate", "sku", "chips"],
    )
    rates = pd.DataFrame(
        [(c["candidate"], w, p, float(r)) for c in candidates for (w, p), r in c["rates"].items()],
        columns=["candidate", "workload", "phase", "rate_rps"],
    )
    rows = []
    for w, d in demand.items():
        values = [float(d)] * n_periods if np.isscalar(d) else [float(x) for x in d]  # type: ignore[union-attr, arg-type]
        rows += [(w, t, v, v * load_factor) for t, v in zip(names, values, strict=True)]
    demand_df = pd.DataFrame(
        rows, columns=["workload", "period", "requests_per_s", "mean_requests_per_s"]
    )
    existing_df = pd.DataFrame(
        [dict(e) for e in existing], columns=["sku", "chips", "retire_period"]
    )
    return PlanningData(
        periods=periods,
        skus=sku_df,
        candidates=cand_df,
        units=units,
        rates=rates,
        demand=demand_df,
        existing=existing_df,
        settings=Settings(**settings),
    )


def with_settings(data: PlanningData, **changes: Any) -> PlanningData:
    """The same data with some settings changed."""
    merged = data.settings.model_dump() | changes
    return PlanningData(
        periods=data.periods,
        skus=data.skus,
        candidates=data.candidates,
        units=data.units,
        rates=data.rates,
        demand=data.demand,
        existing=data.existing,
        settings=Settings(**merged),
    )


def random_data(
    seed: int,
    *,
    n_skus: int = 2,
    n_cands: int = 2,
    n_periods: int = 2,
    rack_usd: float | None = None,
    **settings: Any,
) -> PlanningData:
    """A tiny seeded random fleet: pd-style candidates (prefill-only / decode-only pools).
    `rack_usd`: also a 72-chip SKU "rack" at that price, with a prefill and a decode
    candidate on one of its chips (drawn last, so the rest is the seed's usual fleet).

    Pure-phase candidates keep the served amount closed-form for the brute-force oracle:
    served = min(demand, prefill capacity, decode capacity).
    """
    rng = np.random.default_rng(seed)
    sku_rows = [
        sku(
            f"h{i}",
            chips_per_unit=int(rng.choice([2, 4, 8])),
            price_usd=float(rng.integers(1, 10)) * 1e5,
            lead=int(rng.integers(0, 2)),
            life=int(rng.integers(1, n_periods + 2)),
            first_buy=int(rng.integers(0, 2)),
        )
        for i in range(n_skus)
    ]
    cands = []
    for j in range(n_cands):
        h = f"h{rng.integers(0, n_skus)}"
        phase = "prefill" if j % 2 == 0 else "decode"
        cands.append(
            candidate(
                f"c{j}",
                units={h: float(rng.choice([1, 2, 4]))},
                rates={("w", phase): float(rng.integers(2, 12))},
                power_w=float(rng.integers(1, 8)) * 1000.0,
                topology="pd",
            )
        )
    demand = {"w": [float(rng.integers(1, 25)) for _ in range(n_periods)]}
    existing = []
    if rng.random() < 0.5:
        existing.append(
            {
                "sku": "h0",
                "chips": int(rng.integers(1, 9)),
                "retire_period": int(rng.integers(1, n_periods + 1)),
            }
        )
    if rack_usd is not None:
        sku_rows.append(sku("rack", chips_per_unit=72, price_usd=rack_usd))
        for phase in ("prefill", "decode"):
            cands.append(
                candidate(
                    f"rack-{phase}",
                    units={"rack": 1.0},
                    rates={("w", phase): float(rng.integers(2, 12))},
                    topology="pd",
                )
            )
    return make_data(
        skus=sku_rows,
        candidates=cands,
        demand=demand,
        n_periods=n_periods,
        existing=existing,
        **settings,
    )
