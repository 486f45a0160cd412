"""The vectorized candidate pipeline against plain loops: same numbers, same pruning.

`build_candidates` evaluates every hardware group in one perf call per phase and prunes with
array comparisons. These tests hold it to the straightforward versions: per-group perf
calls (bit for bit), and the pruning rules written as loops over candidates (the form they
had before vectorization), on the default example's table and on shuffled pieces of it with
duplicated rows (the sweep prunes tables it assembled itself).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from planner.candidates import (
    BATCH_GRID,
    CandidateOptions,
    build_candidates,
    chip_hour_usd,
    first_usable,
    model_case,
    plain_decode_grid,
    prefill_times,
    prune_dominated,
    prune_to_frontier,
    shapes_of,
    sku_table,
    usable_skus,
)
from planner.catalog import data_dir, load_catalog
from planner.demand import catalog_model_ids, load_demand
from planner.model_data import Settings
from planner.perf.comm import kv_transfer_ms
from planner.perf.memory import max_batch
from planner.perf.phases import decode_step, kv_bytes_per_seq, prefill
from planner.perf.specs import chip_spec

CATALOG = load_catalog()
TARGETS, DRAFTS = catalog_model_ids(CATALOG)
UNPRUNED = CandidateOptions(prune_dominated=False, prune_frontier=False)


@pytest.fixture(scope="module")
def demand():
    return load_demand(data_dir("demand") / "default.csv", TARGETS, draft_ids=DRAFTS)


@pytest.fixture(scope="module")
def full_table(demand) -> pd.DataFrame:
    return build_candidates(CATALOG, demand, options=UNPRUNED).table


@pytest.fixture(scope="module")
def skus(demand) -> pd.DataFrame:
    periods, _ = demand.to_planning_tables()
    return sku_table(CATALOG, usable_skus(CATALOG, None), periods)


# --------------------------------------------------------------------------------------
# Reference pruning: the rules as loops over candidates
# --------------------------------------------------------------------------------------


def reference_prune_dominated(table: pd.DataFrame) -> pd.DataFrame:
    first = table.drop_duplicates("candidate").set_index("candidate")
    rates: dict[str, dict[tuple[str, str], float]] = {}
    for c, w, p, v in table[["candidate", "workload", "phase", "rate_rps"]].itertuples(index=False):
        rates.setdefault(c, {})[(w, p)] = v
    units = dict(zip(first.index, first["units"], strict=True))
    power = dict(zip(first.index, first["power_w"].astype(float), strict=True))
    families: dict[tuple, list[str]] = {}
    for c in sorted(first.index):
        families.setdefault((first.at[c, "topology"], tuple(sorted(units[c]))), []).append(c)
    dominated: set[str] = set()
    for names in families.values():
        for b in names:
            for a in names:
                if a == b or a in dominated:
                    continue
                ks = {units[b][sku] / units[a][sku] for sku in units[b]}
                if len(ks) != 1:
                    continue
                k = ks.pop()
                if k < 1 or abs(k - round(k)) > 1e-9:
                    continue
                rb, ra = rates[b], rates[a]
                if any(key not in ra or k * ra[key] < rb[key] * (1 - 1e-12) for key in rb):
                    continue
                if k * power[a] > power[b] * (1 + 1e-12):
                    continue
                identical = k == 1 and all(abs(ra[key] - rb[key]) <= 1e-12 * rb[key] for key in rb)
                if identical and a > b:
                    continue
                dominated.add(b)
                break
    return table[~table["candidate"].isin(dominated)].reset_index(drop=True)


def reference_prune_to_frontier(
    table: pd.DataFrame, skus: pd.DataFrame, settings: Settings, n_periods: int
) -> pd.DataFrame:
    first = table.drop_duplicates("candidate").set_index("candidate")
    chip_usd, usable = chip_hour_usd(skus, settings, n_periods), first_usable(skus, settings)
    cost_h = {
        c: sum(n * chip_usd[k] for k, n in u.items())
        for c, u in zip(first.index, first["units"], strict=True)
    }
    avail = {c: max(usable[k] for k in u) for c, u in zip(first.index, first["units"], strict=True)}
    served: dict[str, dict[tuple[str, str], float]] = {}
    for c, w, p, v in table[["candidate", "workload", "phase", "rate_rps"]].itertuples(index=False):
        served.setdefault(c, {})
        served[c][(w, p)] = max(v, served[c].get((w, p), v))
    power = dict(zip(first.index, first["power_w"], strict=True))
    scopes: dict[str, list[str]] = {}
    for c, t in zip(first.index, first["topology"], strict=True):
        scopes.setdefault(t if t in ("colocated", "prefill") else "decode", []).append(c)
    keep = set()
    for names in scopes.values():
        for b in names:
            rb = served[b]
            beaten = False
            for a in names:
                ra = served[a]
                if a == b or avail[a] > avail[b] or any(k not in ra for k in rb):
                    continue
                per = [(cost_h[a] / ra[k], cost_h[b] / rb[k], power[a] / ra[k], power[b] / rb[k])
                       for k in rb]  # fmt: skip
                no_worse = all(
                    ca <= cb * (1 + 1e-12) and pa <= pb * (1 + 1e-12) for ca, cb, pa, pb in per
                )
                better = any(ca < cb * (1 - 1e-9) or pa < pb * (1 - 1e-9) for ca, cb, pa, pb in per)
                if no_worse and better:
                    beaten = True
                    break
            if not beaten:
                keep.add(b)
    return table[table["candidate"].isin(keep)].reset_index(drop=True)


def pieces(table: pd.DataFrame) -> list[pd.DataFrame]:
    """The table, and shuffled subsets of it, some with duplicated (candidate, workload,
    phase) rows at other rates."""
    rng = np.random.default_rng(7)
    out = [table]
    for i in range(3):
        sub = table.sample(frac=0.6, random_state=i).reset_index(drop=True)
        if i % 2:
            dup = sub.sample(n=15, random_state=i).copy()
            dup["rate_rps"] *= rng.uniform(0.5, 1.5, len(dup))
            sub = pd.concat([sub, dup], ignore_index=True)
        out.append(sub)
    return out


def test_prune_dominated_matches_the_loop(full_table: pd.DataFrame) -> None:
    for t in pieces(full_table):
        pd.testing.assert_frame_equal(prune_dominated(t), reference_prune_dominated(t))


@pytest.mark.parametrize(
    ("allow_rent", "n_periods"), [(True, 6), (False, 6), (True, 1)]
)  # 1: a horizon shorter than every lead time but rentals'
def test_prune_to_frontier_matches_the_loop(
    full_table: pd.DataFrame, skus: pd.DataFrame, allow_rent: bool, n_periods: int
) -> None:
    settings = Settings(allow_rent=allow_rent)
    for t in pieces(prune_dominated(full_table))[:2]:
        pd.testing.assert_frame_equal(
            prune_to_frontier(t, skus, settings, n_periods),
            reference_prune_to_frontier(t, skus, settings, n_periods),
        )


# --------------------------------------------------------------------------------------
# Stacked perf evaluation equals per-group calls
# --------------------------------------------------------------------------------------


def test_stacked_groups_equal_per_group_calls(demand) -> None:
    w = demand.workloads
    opts = CandidateOptions()
    for (model_id, precision), grp in w.groupby([w["model"], w["precision"].fillna("")]):
        spec = CATALOG.models[str(model_id)]
        prec = str(precision) or spec.native_precision
        chips = {}
        for sku in usable_skus(CATALOG, None):
            try:
                chips[sku] = chip_spec(CATALOG.hardware[sku], prec)
            except ValueError:
                continue
        s = shapes_of(grp, opts)
        mc = model_case(spec, prec, s, chips, opts)
        svc, kv = prefill_times(mc)
        step, fits = plain_decode_grid(mc.m, mc.groups, s, mc.wb, mc.kvb)
        assert len(mc.groups) > 0
        b = BATCH_GRID[None, :]
        for gi, g in enumerate(mc.groups.items):
            one = prefill(mc.m, g.chip, s.prompt[:, 0], g.tp, g.pp, mc.wb, mc.kvb).total_ms
            np.testing.assert_array_equal(svc[gi], one)
            kv_one = kv_transfer_ms(
                kv_bytes_per_seq(mc.m, s.prompt[:, 0], mc.kvb),
                g.chip.net_gb_s * g.chips,
                g.chip.net_latency_us,
            )
            np.testing.assert_array_equal(kv[gi], kv_one)
            st = decode_step(mc.m, g.chip, b, s.mean_ctx, g.tp, g.pp, mc.wb, mc.kvb).total_ms
            np.testing.assert_array_equal(step[gi], np.broadcast_to(st, step[gi].shape))
            fit = b <= max_batch(mc.m, g.chip, s.max_ctx, g.tp, g.pp, mc.wb, mc.kvb)
            np.testing.assert_array_equal(fits[gi], fit)
