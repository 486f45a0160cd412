"""Candidate tables for sweep points: one performance evaluation, pruned per point.

A point's candidates depend on its SLA (which configurations meet the targets, at what
rate) and, through the cost-power frontier pruning of `build_candidates`, on its prices
and electricity tariff. Evaluating the performance model per point would repeat the
expensive part, so every SLA variant of every workload is evaluated once, side by side
(each variant is one more workload row of the vectorised arrays, named `w#slaK`), without
pruning. A point's table is then the rows of its variants, renamed back, and pruned
exactly as `build_candidates` prunes (`prune_dominated`, then `prune_to_frontier` with the
point's prices), and its `PlanningData` is assembled as `build_candidates` hands it over.

The point with the scenario's own SLA and prices takes the planner's own candidate set
(`prepare`) unchanged. tests/test_sweep.py checks that the replica matches `prepare` for
other points too, so a change to `build_candidates` cannot slip by.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pandas as pd

from planner.candidates import (
    CandidateSet,
    CapexLimit,
    build_candidates,
    candidate_options,
    capex_limit,
    covers_fill_by_watts,
    prune_dominated,
    prune_frontier_keeping_covers,
    sku_table,
    sunk_skus,
    usable_skus,
    workload_acceptance,
)
from planner.catalog import Catalog
from planner.demand import Demand
from planner.model_data import PlanningData, Settings
from planner.scenario import Scenario

# (tpot_ms, ttft_ms, spec_acceptance) per workload, demand order
SlaKey = tuple[tuple[float, float, float], ...]
Economics = tuple[tuple[str, float], ...]  # (("price.h100-sxm", 2e5), ("electricity...", 0.1))
SKU_COLUMNS = {"price": "unit_price_usd", "rent": "rent_usd_per_chip_hour"}
TABLE_COLUMNS = ["candidate", "topology", "workload", "phase", "rate_rps", "power_w", "description", "units"]  # fmt: skip


@dataclass(frozen=True)
class TableKey:
    sla: SlaKey
    economics: Economics = ()
    demand_scale: float = 1.0  # of the target workloads; 1 unless pruning is "cover"
    # What the key's capex budgets leave to buy with (candidates.capex_limit): under a
    # budget the pruning ranks rentals at their rent too (candidates._rankings).
    capex: CapexLimit = "none"
    # Pruning "cover" only: whether the covers rank the leftover by watts too
    # (candidates.covers_fill_by_watts: the power objective, or a power budget at the point).
    fill_by_watts: bool = False


def base_key(demand: Demand, acceptance: float, settings: Settings, *, cover: bool) -> TableKey:
    """The base scenario's table key: its own SLAs, prices and capex budgets; with pruning
    "cover", whether its covers rank the leftover by watts too (covers_fill_by_watts)."""
    return TableKey(
        base_sla(demand, acceptance), capex=capex_limit(settings),
        fill_by_watts=cover and covers_fill_by_watts(settings),
    )  # fmt: skip


def base_sla(demand: Demand, acceptance: float) -> SlaKey:
    """Each workload's SLA and draft acceptance (its own, else `acceptance`)."""
    w = demand.workloads
    acc = workload_acceptance(w, acceptance)
    return tuple(
        (float(a), float(b), float(c))
        for a, b, c in zip(w["tpot_ms"], w["ttft_ms"], acc, strict=True)
    )


def with_economics(
    skus: pd.DataFrame, settings: Settings, econ: Economics
) -> tuple[pd.DataFrame, Settings]:
    """SKU table and settings with a point's prices, rents and electricity tariff."""
    if not econ:
        return skus, settings
    skus = skus.copy()
    upd = {}
    for name, value in econ:
        kind, _, sku = name.partition(".")
        if kind in SKU_COLUMNS:
            if sku in skus.index:
                skus.loc[sku, SKU_COLUMNS[kind]] = value
        else:
            upd[name] = value
    return skus, settings.model_copy(update=upd) if upd else settings


class CandidateTables:
    """Every point's candidate table from one evaluation of all SLA variants."""

    def __init__(
        self, catalog: Catalog, demand: Demand, cs: CandidateSet, sc: Scenario,
        keys: list[TableKey], targets: list[str],
    ) -> None:  # fmt: skip
        self.cs, self.settings = cs, sc.settings()
        self.base = base_key(
            demand, sc.spec_acceptance, self.settings, cover=sc.pruning_mode == "cover"
        )
        self.opts = candidate_options(sc, catalog)
        self.names = list(demand.workloads.index)
        periods, self.demand_table = demand.to_planning_tables()
        self.periods = list(periods.index)
        self.targets = targets
        self.sunk = sunk_skus(cs.data.existing)  # owned SKUs: usable, ranked at running cost
        usable = usable_skus(catalog, self.opts.allowed_skus, self.sunk)
        sku_all = sku_table(catalog, usable, periods)
        for sku, cap in sc.supply_cap_units_per_period.items():  # as planning.prepare
            if sku in sku_all.index:
                sku_all.loc[sku, "supply_cap_units_per_period"] = cap
        self.sku_all = sku_all
        slas = {k.sla for k in keys} | {self.base.sla}
        self.variants = {w: sorted({s[i] for s in slas}) for i, w in enumerate(self.names)}
        need = any(k != self.base for k in keys)
        self.enumerated = self._evaluate(catalog, demand) if need else None
        self._dominated: dict[SlaKey, pd.DataFrame] = {}
        self._tables: dict[TableKey, pd.DataFrame] = {}

    def _evaluate(self, catalog: Catalog, demand: Demand) -> pd.DataFrame:
        wide = variant_demand(demand, self.variants)
        opts = self.opts.model_copy(update={"prune_dominated": False, "prune_frontier": False})
        combined = build_candidates(
            catalog, wide, self.settings, opts, existing=self.cs.data.existing
        )
        return slim(combined.table)

    def table(self, key: TableKey) -> pd.DataFrame:
        """The point's candidate table (candidate, workload, phase, rate_rps, ...)."""
        if key == self.base:
            return slim(self.cs.table)
        if key not in self._tables:
            skus, settings = with_economics(self.sku_all, self.settings, key.economics)
            if key.capex != capex_limit(settings):  # only the kind of limit counts here
                budget = {"none": None, "budget": 1.0, "zero": 0.0}[key.capex]
                settings = settings.model_copy(update={"capex_budget_usd": budget})
            t = self._pruned_dominated(key.sla)
            if len(t) and self.opts.prune_frontier:
                t = prune_frontier_keeping_covers(
                    t, skus, settings, self.periods, self._load(key) if self.opts.keep_covers else None,
                    self.sunk, fill_by_watts=key.fill_by_watts,
                )  # fmt: skip
            self._tables[key] = t.reset_index(drop=True)
        return self._tables[key]

    def _load(self, key: TableKey) -> pd.DataFrame:
        """The planning demand table with the target workloads scaled as the key says."""
        if key.demand_scale == 1.0:
            return self.demand_table
        return scale_demand(self.demand_table, self.targets, key.demand_scale)

    def _pruned_dominated(self, sla: SlaKey) -> pd.DataFrame:
        if sla not in self._dominated:
            t = self._rows(sla)
            self._dominated[sla] = prune_dominated(t) if len(t) and self.opts.prune_dominated else t
        return self._dominated[sla]

    def _rows(self, sla: SlaKey) -> pd.DataFrame:
        assert self.enumerated is not None
        pick = {
            variant_name(w, self.variants[w].index(s)): w
            for w, s in zip(self.names, sla, strict=True)
        }
        t = self.enumerated[self.enumerated["workload"].isin(pick)].copy()
        t["workload"] = t["workload"].map(pick)
        return t.reset_index(drop=True)


def scale_demand(demand: pd.DataFrame, targets: list[str], scale: float) -> pd.DataFrame:
    """A planning demand table with the target workloads' peak and mean rates x `scale`."""
    d = demand.copy()
    hit = d["workload"].isin(targets)
    for col in ("requests_per_s", "mean_requests_per_s"):
        if col in d:
            d.loc[hit, col] = d.loc[hit, col] * scale
    return d


def variant_name(workload: str, k: int) -> str:
    return f"{workload}#sla{k}"


def variant_demand(demand: Demand, variants: dict[str, list[tuple[float, float, float]]]) -> Demand:
    """Every workload once per SLA variant, so one vectorised pass evaluates them all."""
    rows = []
    for w, slas in variants.items():
        for k, (tpot, ttft, acceptance) in enumerate(slas):
            row = demand.workloads.loc[w].copy()
            row["tpot_ms"], row["ttft_ms"] = tpot, ttft
            row["spec_acceptance"] = acceptance
            rows.append(row.rename(variant_name(w, k)))
    workloads = pd.DataFrame(rows).astype(demand.workloads.dtypes.to_dict())
    workloads.index.name = demand.workloads.index.name
    return dataclasses.replace(demand, workloads=workloads)


def slim(table: pd.DataFrame) -> pd.DataFrame:
    return table.reindex(columns=TABLE_COLUMNS)


def assemble(table: pd.DataFrame, base: PlanningData, sku_all: pd.DataFrame) -> PlanningData:
    """PlanningData for a candidate table, as build_candidates hands it over."""
    if table.empty:
        cand = pd.DataFrame(columns=["topology", "power_w", "description"])
        units = pd.DataFrame(columns=["candidate", "sku", "chips"])
    else:
        grouped = table.groupby("candidate", sort=True)
        cand = grouped.agg(topology=("topology", "first"), power_w=("power_w", "first"),
                           description=("description", "first"))  # fmt: skip
        units = pd.DataFrame(
            [{"candidate": c, "sku": s, "chips": float(n)}
             for c, u in grouped["units"].first().items() for s, n in u.items()],
            columns=["candidate", "sku", "chips"],
        )  # fmt: skip
    used = set(units["sku"]) | set(base.existing["sku"] if len(base.existing) else [])
    skus = sku_all.loc[sorted(s for s in used if s in sku_all.index)]
    rates = table[["candidate", "workload", "phase", "rate_rps"]].reset_index(drop=True)
    return dataclasses.replace(base, candidates=cand, units=units, rates=rates, skus=skus)


def union_table(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Every table's rows; one rate per (candidate, workload, phase) (points set their own)."""
    t = pd.concat([x for x in tables if len(x)] or tables[:1], ignore_index=True)
    if t.empty:
        return t
    t = t.sort_values("rate_rps", ascending=False, kind="stable")
    return t.drop_duplicates(["candidate", "workload", "phase"]).sort_index().reset_index(drop=True)
