"""Serving configurations as a table: enumerate, evaluate, keep what meets the SLA, prune.

A *candidate* is an instance type: a model at a precision on fixed hardware with fixed
parallelism, serving one or both phases. It may serve every workload of that model; for
each (workload, phase) it gets the requests/s one instance sustains inside that workload's
SLA, at the batch that is best for that workload (the largest that meets TPOT and fits).

Phase-split candidates compose freely in the MIP, which is how topologies arise:

  colocated     one candidate serving prefill and decode (full-stack SRAM included)
  pd            a `prefill` candidate + a `decode` candidate (any SKUs; KV transfer in TTFT)
  afd, pd+afd   a `prefill` candidate + an `afd` decode candidate (attention SKU + FFN SKU)
  spec, pd+spec a colocated or `prefill` candidate + a `spec` decode candidate

The performance functions are called on arrays (workloads x batch sizes) per hardware
group, so tens of thousands of (candidate, workload) pairs take well under a second or two.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from planner.catalog import Catalog, Hardware, ModelSpec
from planner.demand import Demand
from planner.model_data import PlanningData, Settings
from planner.perf import queueing
from planner.perf.comm import afd_crossings_ms, kv_transfer_ms
from planner.perf.memory import chips_for_weights, max_batch
from planner.perf.phases import (
    attention_decode,
    decode_step,
    ffn_decode,
    kv_bytes_per_seq,
    lm_head,
    prefill,
)
from planner.perf.specdec import expected_tokens_per_step
from planner.perf.specs import (
    ChipSpec,
    ModelDims,
    chip_spec,
    kv_bytes_per_elem,
    model_dims,
    weight_bytes_per_param,
)
from planner.perf.topology import SRAM_HEADROOM, Group

BATCH_GRID = np.array(
    [1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024], dtype=float
)


class CandidateOptions(BaseModel):
    """What to enumerate. Scenario files and CLI flags fill this."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed_skus: list[str] | None = None  # None: every SKU with a price or a rental
    topologies: list[str] = Field(
        default_factory=lambda: ["colocated", "pd", "afd", "spec", "pd+afd", "pd+spec"]
    )
    tp_options: list[int] = Field(default_factory=lambda: [1, 2, 4, 8, 16, 32, 64, 72])
    # Speculative decoding: per-token acceptance of the draft (an estimate: EAGLE-class
    # heads report 0.6-0.8 on chat data) and draft length.
    spec_acceptance: float = Field(default=0.7, ge=0, le=1)
    spec_draft_tokens: list[int] = Field(default_factory=lambda: [3])
    afd_microbatches: list[int] = Field(default_factory=lambda: [1, 2, 3])
    prune_dominated: bool = True
    # Keep only the cost-power frontier per workload (see prune_to_frontier). Exact up to
    # integer rounding of instances; off = every SLA-feasible candidate reaches the MIP.
    prune_frontier: bool = True


@dataclass(frozen=True)
class CandidateSet:
    """The MIP's input plus what the planner needs to explain and verify a plan."""

    data: PlanningData
    table: pd.DataFrame  # tidy: one row per (candidate, workload, phase) with perf details
    best_reachable: pd.DataFrame  # per workload: best TPOT / TTFT any SKU reaches, and where
    skus_uncalibrated: list[str]


# --------------------------------------------------------------------------------------
# Hardware groups
# --------------------------------------------------------------------------------------


def hardware_groups(
    m: ModelDims,
    chip: ChipSpec,
    w_bytes: float,
    params: float,
    tp_options: Iterable[int],
    sram_headroom: float = SRAM_HEADROOM,
) -> list[Group]:
    """tp x pp layouts worth trying for holding `params` on `chip`.

    GPUs: every allowed tp inside the scale-up domain from the smallest that holds the
    weights (with room for KV); models too large for one domain pipeline across domains.
    SRAM parts: exactly the chips the weights need (more chips only add hops).
    """
    need = chips_for_weights(params, w_bytes, chip)
    domain = max(1, chip.domain_chips)
    if chip.is_sram:
        need = chips_for_weights(params, w_bytes, chip, headroom=sram_headroom)
        tp = min(domain, need)
        return [Group(chip, tp, math.ceil(need / tp))]
    out = []
    for tp in sorted(set(tp_options)):
        if tp > domain:
            continue
        pp = max(1, math.ceil(need / tp))
        if pp > 1 and tp < domain:
            continue  # pipeline only once the whole domain is used
        out.append(Group(chip, tp, pp))
    return out


# --------------------------------------------------------------------------------------
# Per-phase evaluation on arrays (workloads x batch)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shapes:
    """Workloads of one model/precision as column vectors (shape (n, 1))."""

    names: list[str]
    prompt: np.ndarray
    output: np.ndarray
    tpot_ms: np.ndarray
    ttft_ms: np.ndarray
    pct: np.ndarray

    @property
    def mean_ctx(self) -> np.ndarray:
        return self.prompt + self.output / 2.0

    @property
    def max_ctx(self) -> np.ndarray:
        return self.prompt + self.output


def prefill_service(m: ModelDims, g: Group, s: Shapes, wb: float, kvb: float) -> np.ndarray:
    return np.asarray(prefill(m, g.chip, s.prompt[:, 0], g.tp, g.pp, wb, kvb).total_ms, dtype=float)


def prefill_rate(
    service_ms: np.ndarray, pp: np.ndarray | int, extra_ms: np.ndarray, s: Shapes
) -> tuple[np.ndarray, np.ndarray]:
    """Requests/s one instance sustains inside the TTFT target, and the TTFT at zero load."""
    stage = service_ms / pp  # a full pipeline accepts a prompt every stage time
    extra = service_ms - stage + extra_ms
    util = queueing.admissible_utilization(
        s.ttft_ms[:, 0], stage, s.pct[:, 0], servers=1, extra_ms=extra
    )
    return np.asarray(util) * 1000.0 / stage, service_ms + extra_ms


def best_batch(tpot: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per workload row: index of the largest feasible batch, and whether any is feasible."""
    any_ok = ok.any(axis=1)
    idx = ok.shape[1] - 1 - np.argmax(ok[:, ::-1], axis=1)
    return idx, any_ok


def plain_decode_grid(
    m: ModelDims, g: Group, s: Shapes, wb: float, kvb: float, tokens_per_seq: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Step time (n, B) and memory fit (n, B) for the batch grid."""
    b = BATCH_GRID[None, :]
    step = decode_step(m, g.chip, b, s.mean_ctx, g.tp, g.pp, wb, kvb, tokens_per_seq).total_ms
    fits = b <= max_batch(m, g.chip, s.max_ctx, g.tp, g.pp, wb, kvb)
    return np.asarray(step, dtype=float), fits


# --------------------------------------------------------------------------------------
# Enumeration
# --------------------------------------------------------------------------------------


def _rows(
    cand: str,
    topology: str,
    units: dict[str, int],
    power_w: float,
    s: Shapes,
    phase: str,
    rate: np.ndarray,
    mask: np.ndarray,
    detail: dict[str, np.ndarray],
    description: str,
    config: dict,
) -> list[dict]:
    out = []
    for i in np.flatnonzero(mask & (rate > 0)):
        row = {
            "candidate": cand, "topology": topology, "workload": s.names[i], "phase": phase,
            "rate_rps": float(rate[i]), "power_w": power_w, "description": description,
            "units": units, "config": config,
        }  # fmt: skip
        row.update({k: float(v[i]) for k, v in detail.items()})
        out.append(row)
    return out


def _units(*groups: Group) -> dict[str, int]:
    u: dict[str, int] = {}
    for g in groups:
        u[g.sku] = u.get(g.sku, 0) + g.chips
    return u


def _power(*groups: Group) -> float:
    return float(sum(g.chips * g.chip.all_in_w for g in groups))


def enumerate_model(
    spec: ModelSpec, precision: str, s: Shapes, chips: dict[str, ChipSpec], catalog: Catalog,
    opts: CandidateOptions,
) -> tuple[list[dict], list[dict]]:  # fmt: skip
    """All candidate rows for the workloads of one model at one precision, plus the best
    TPOT / TTFT reached per workload (for explaining what no SKU can serve)."""
    m = model_dims(spec)
    wb, kvb = weight_bytes_per_param(precision), kv_bytes_per_elem(precision)
    tag = f"{spec.id}@{precision}"
    rows: list[dict] = []
    best: list[dict] = []
    topos = set(opts.topologies)
    groups = {
        sku: hardware_groups(m, chip, wb, m.total_params, opts.tp_options)
        for sku, chip in chips.items()
    }
    hbm_skus = [k for k, c in chips.items() if not c.is_sram]

    def note_best(kind: str, values: np.ndarray, where: str) -> None:
        for i, v in enumerate(values):
            if np.isfinite(v):
                best.append(
                    {"workload": s.names[i], "kind": kind, "value_ms": float(v), "where": where}
                )

    # ---- prefill pools (pd, afd, spec) and colocated ----
    flat = [g for glist in groups.values() for g in glist]
    if flat:
        svc_all = np.stack([prefill_service(m, g, s, wb, kvb) for g in flat])  # (G, n)
        # KV leaves over the sender's NICs (the receiver is sized to match).
        kv_all = np.stack([
            np.asarray(kv_transfer_ms(kv_bytes_per_seq(m, s.prompt[:, 0], kvb),
                                      g.chip.net_gb_s * g.chips, g.chip.net_latency_us))
            for g in flat
        ])  # fmt: skip
        pp_all = np.array([g.pp for g in flat], dtype=float)[:, None]
        # One queueing call for every group: its cost is per call, not per element.
        pd_rate, pd_ttft0 = prefill_rate(svc_all, pp_all, kv_all, s)
        col_rate, col_ttft0 = prefill_rate(svc_all, pp_all, np.zeros_like(svc_all), s)
    n = len(s.names)
    r = np.arange(n)
    base = {"model": spec.id, "precision": precision}
    for gi, g in enumerate(flat):
        sku = g.sku
        on_g = {**base, "hardware": sku, "tp": g.tp, "pp": g.pp}
        svc = svc_all[gi]
        note_best("ttft", svc, g.label)
        if topos & {"pd", "afd", "pd+afd", "pd+spec"}:
            rows += _rows(
                f"prefill|{tag}|{g.label}", "prefill", _units(g), _power(g), s, "prefill",
                pd_rate[gi], np.ones(n, bool),
                {"prefill_ms": svc, "ttft0_ms": pd_ttft0[gi], "batch": np.zeros(n)},
                f"prefill pool: {spec.id} ({precision}) on {g.chips} x {sku} (tp{g.tp} pp{g.pp})",
                {**on_g, "topology": "pd", "prefill_hardware": sku, "prefill_tp": g.tp},
            )  # fmt: skip
        step, fits = plain_decode_grid(m, g, s, wb, kvb)
        note_best("tpot", step[:, 0], g.label)
        # Decode-only pool (pd)
        if topos & {"pd"}:
            ok = fits & (step <= s.tpot_ms)
            idx, any_ok = best_batch(step, ok)
            bsel, tsel = BATCH_GRID[idx], step[r, idx]
            rows += _rows(
                f"decode|{tag}|{g.label}", "decode", _units(g), _power(g), s, "decode",
                bsel * 1000.0 / (s.output[:, 0] * tsel), any_ok,
                {"tpot_ms": tsel, "batch": bsel},
                f"decode pool: {spec.id} ({precision}) on {g.chips} x {sku} (tp{g.tp} pp{g.pp})",
                {**on_g, "topology": "pd"},
            )  # fmt: skip
        # Colocated: decode steps stall for the prompts arriving meanwhile.
        if "colocated" in topos:
            tpot_col = step + BATCH_GRID[None, :] / s.output * svc[:, None]
            ok = fits & (tpot_col <= s.tpot_ms)
            idx, any_ok = best_batch(tpot_col, ok)
            bsel = BATCH_GRID[idx]
            dec_rate = bsel * 1000.0 / (s.output[:, 0] * step[r, idx])
            both = any_ok & (col_rate[gi] > 0)
            name = f"colocated|{tag}|{g.label}"
            desc = f"colocated: {spec.id} ({precision}) on {g.chips} x {sku} (tp{g.tp} pp{g.pp})"
            detail = {
                "tpot_ms": tpot_col[r, idx],
                "batch": bsel,
                "prefill_ms": svc,
                "ttft0_ms": col_ttft0[gi],
            }
            for phase, rate in (("prefill", col_rate[gi]), ("decode", dec_rate)):
                rows += _rows(
                    name,
                    "colocated",
                    _units(g),
                    _power(g),
                    s,
                    phase,
                    rate,
                    both,
                    detail,
                    desc,
                    {**on_g, "topology": "colocated"},
                )
        # Speculative decoding on the same chips (EAGLE-style head, or a small draft model
        # that shares the tokenizer).
        if topos & {"spec", "pd+spec"}:
            rows += _spec_rows(m, spec, g, s, wb, kvb, step, fits, tag, catalog, opts, precision)

    # ---- AFD: attention on an HBM SKU, FFN on another SKU (SRAM LPUs, or a GPU) ----
    if topos & {"afd", "pd+afd"}:
        attn_params = m.attn_params + m.lm_head_params
        ffn_params = m.ffn_params
        for a_sku in hbm_skus:
            a_chip = chips[a_sku]
            for f_sku, f_chip in chips.items():
                if f_sku == a_sku or not f_chip.is_sram:
                    continue  # AFD pays off where FFN weights live in SRAM
                # FFN chips hold weights only (no KV): fill their SRAM.
                f_groups = hardware_groups(m, f_chip, wb, ffn_params, [1], sram_headroom=1.0)
                for ag in hardware_groups(m, a_chip, wb, attn_params, opts.tp_options):
                    if ag.pp > 1:
                        continue
                    for fg in f_groups:
                        rows += _afd_rows(m, ag, fg, s, wb, kvb, tag, spec, precision, opts)
    return rows, best


def _spec_rows(
    m: ModelDims, spec: ModelSpec, g: Group, s: Shapes, wb: float, kvb: float,
    target_step: np.ndarray, fits: np.ndarray, tag: str, catalog: Catalog, opts: CandidateOptions,
    precision: str,
) -> list[dict]:  # fmt: skip
    rows: list[dict] = []
    drafts = [d for d in catalog.models.values() if d.role == "draft_head"]
    drafts += [
        d for d in catalog.models.values()
        if d.role == "draft" and d.architecture and spec.architecture
        and d.architecture.vocab == spec.architecture.vocab
    ]  # fmt: skip
    for draft in drafts:
        for k in opts.spec_draft_tokens:
            verify, _ = plain_decode_grid(m, g, s, wb, kvb, tokens_per_seq=k + 1)
            if draft.role == "draft_head":
                assert draft.draft_head is not None
                draft_ms = draft.draft_head.fraction_of_target_step.value * target_step
            else:
                dm = model_dims(draft)
                draft_ms = np.asarray(
                    decode_step(
                        dm, g.chip, BATCH_GRID[None, :], s.mean_ctx, g.tp, 1, wb, kvb
                    ).total_ms
                )
            per_step = float(expected_tokens_per_step(opts.spec_acceptance, k))
            tpot = (k * draft_ms + verify) / per_step
            ok = fits & (tpot <= s.tpot_ms)
            idx, any_ok = best_batch(tpot, ok)
            r = np.arange(len(s.names))
            bsel, tsel = BATCH_GRID[idx], tpot[r, idx]
            rows += _rows(
                f"spec|{tag}|{g.label}|{draft.id}|k{k}", "spec", _units(g), _power(g), s, "decode",
                bsel * 1000.0 / (s.output[:, 0] * tsel), any_ok,
                {"tpot_ms": tsel, "batch": bsel, "tokens_per_step": np.full(len(s.names), per_step)},
                f"spec decode: {spec.id} on {g.chips} x {g.sku} (tp{g.tp}), draft {draft.id} k={k} a={opts.spec_acceptance:g}",
                {"model": spec.id, "precision": precision, "hardware": g.sku, "tp": g.tp,
                 "pp": g.pp, "topology": "pd+spec", "draft_model": draft.id, "draft_tokens": k,
                 "acceptance": opts.spec_acceptance},
            )  # fmt: skip
    return rows


def _afd_rows(
    m: ModelDims, ag: Group, fg: Group, s: Shapes, wb: float, kvb: float, tag: str,
    spec: ModelSpec, precision: str, opts: CandidateOptions,
) -> list[dict]:  # fmt: skip
    attn_params = m.attn_params + m.lm_head_params
    b = BATCH_GRID[None, :]
    fits = b <= max_batch(m, ag.chip, s.max_ctx, ag.tp, 1, wb, kvb, weight_params=attn_params)
    link_gb_s = ag.chip.net_gb_s * ag.chips
    latency = max(ag.chip.net_latency_us, fg.chip.net_latency_us)
    best_t = None
    best_mb = np.zeros(fits.shape)
    for mb in opts.afd_microbatches:
        bb = b / mb
        a = attention_decode(m, ag.chip, 1.0, bb, s.mean_ctx, ag.tp, wb, kvb).time_ms
        a = (
            a
            + lm_head(m, ag.chip, bb, ag.tp, wb).time_ms
            + m.layers * ag.chip.layer_overhead_us / 1e3
        )
        f = (
            ffn_decode(m, fg.chip, bb, fg.tp, wb).time_ms
            + m.layers * fg.chip.layer_overhead_us / 1e3
        )
        x = afd_crossings_ms(bb, m.hidden, m.layers, link_gb_s, latency)
        t = (a + f + x) + (mb - 1) * np.maximum(np.maximum(a, f), x)
        t = np.broadcast_to(t, fits.shape)
        better = np.ones(fits.shape, bool) if best_t is None else t < best_t
        best_mb = np.where(better, mb, best_mb)
        best_t = t if best_t is None else np.minimum(best_t, t)
    assert best_t is not None
    ok = fits & (best_t <= s.tpot_ms)
    idx, any_ok = best_batch(best_t, ok)
    r = np.arange(len(s.names))
    bsel, tsel = BATCH_GRID[idx], best_t[r, idx]
    return _rows(
        f"afd|{tag}|{ag.label}+{fg.label}", "afd", _units(ag, fg), _power(ag, fg), s, "decode",
        bsel * 1000.0 / (s.output[:, 0] * tsel), any_ok,
        {"tpot_ms": tsel, "batch": bsel, "microbatches": best_mb[r, idx]},
        f"afd decode: {spec.id} ({precision}) attention on {ag.chips} x {ag.sku}, FFN on {fg.chips} x {fg.sku}",
        {"model": spec.id, "precision": precision, "hardware": ag.sku, "tp": ag.tp, "pp": 1,
         "topology": "pd+afd", "ffn_hardware": fg.sku},
    )  # fmt: skip


# --------------------------------------------------------------------------------------
# Pruning
# --------------------------------------------------------------------------------------


def prune_dominated(table: pd.DataFrame) -> pd.DataFrame:
    """Drop a candidate when another of the same topology, repeated k times on exactly k
    times fewer chips of the same SKUs, serves every (workload, phase) it serves at least as
    fast and for no more power: k instances of the other replace one of it chip for chip, so
    no plan gets worse. Different SKU mixes are never compared (prices, dates and budgets
    decide between them), nor different topologies (a colocated instance serves whole
    requests, a prefill pool only prompts)."""
    if table.empty:
        return table
    first = table.drop_duplicates("candidate").set_index("candidate")
    rates: dict[str, dict[tuple[str, str], float]] = {}
    for c, w, p, v in table[["candidate", "workload", "phase", "rate_rps"]].itertuples(index=False):
        rates.setdefault(c, {})[(w, p)] = v
    topo = dict(zip(first.index, first["topology"], strict=True))
    units_of = dict(zip(first.index, first["units"], strict=True))
    power_of = dict(zip(first.index, first["power_w"].astype(float), strict=True))
    families: dict[tuple, list[str]] = {}
    for c in sorted(first.index):
        families.setdefault((topo[c], tuple(sorted(units_of[c]))), []).append(c)
    dominated: set[str] = set()
    for names in families.values():
        units, power = units_of, power_of
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
                    continue  # of two identical candidates, keep the first by name
                dominated.add(b)
                break
    return table[~table["candidate"].isin(dominated)].reset_index(drop=True)


def chip_hour_usd(skus: pd.DataFrame, settings: Settings) -> dict[str, float]:
    """Per SKU: the cheaper of straight-line capex over its lifetime and rent, per chip-hour."""
    out = {}
    for sku, row in skus.iterrows():
        options = []
        if pd.notna(row["unit_price_usd"]):
            hours = row["lifetime_periods"] * row["period_hours"]
            options.append(row["unit_price_usd"] / row["chips_per_unit"] / hours)
        if pd.notna(row["rent_usd_per_chip_hour"]) and settings.allow_rent:
            options.append(row["rent_usd_per_chip_hour"])
        out[str(sku)] = min(options) if options else np.inf
    return out


def first_usable(skus: pd.DataFrame, settings: Settings) -> dict[str, int]:
    """Per SKU: the first period it can be in the fleet (bought + lead time, or rented)."""
    out = {}
    for sku, row in skus.iterrows():
        ways = []
        if pd.notna(row["unit_price_usd"]):
            ways.append(int(row["first_buy_period"]) + int(row["lead_periods"]))
        if pd.notna(row["rent_usd_per_chip_hour"]) and settings.allow_rent:
            ways.append(int(row["first_rent_period"]))
        out[str(sku)] = min(ways) if ways else 10**6
    return out


def prune_to_frontier(table: pd.DataFrame, skus: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Keep, per phase scope, the candidates on the cost-power frontier of their workloads.

    Candidate B is dropped when some A of the same scope (colocated instances together,
    prefill pools together, decode pools of any topology together) can be in the fleet no
    later than B, and for every (workload, phase) B serves, A serves it at no higher cost
    per request/s and no higher power per request/s, strictly better on one count. Any
    load B carries, A carries for less money and less power. What this ignores is integer
    rounding (A's instances may be larger) and budgets that favour one kind of spending;
    `--exhaustive` turns it off.
    """
    if table.empty:
        return table
    first = table.drop_duplicates("candidate").set_index("candidate")
    scope = first["topology"].map(lambda t: t if t in ("colocated", "prefill") else "decode")
    # Ranking cost of one instance-hour: chips at capex-or-rent, plus energy and hosting.
    chip_usd, usable = chip_hour_usd(skus, settings), first_usable(skus, settings)
    usd_per_w = (
        settings.pue * settings.electricity_usd_per_kwh + settings.hosting_usd_per_kw_month / 730.0
    ) / 1000.0
    cost_h = pd.Series({
        c: sum(n * chip_usd[k] for k, n in u.items()) + p * usd_per_w
        for c, u, p in zip(first.index, first["units"], first["power_w"], strict=True)
    })  # fmt: skip
    avail = pd.Series(
        {c: max(usable[k] for k in u) for c, u in zip(first.index, first["units"], strict=True)}
    )
    keep: set[str] = set()
    for _, names in scope.groupby(scope, sort=True):
        names_l = sorted(names.index)
        sub = table[table["candidate"].isin(names_l)]
        rate = sub.pivot_table(
            index="candidate", columns=["workload", "phase"], values="rate_rps", aggfunc="max"
        ).reindex(names_l)
        r = rate.to_numpy(dtype=float)
        served = ~np.isnan(r)
        cost = np.where(
            served, cost_h.reindex(names_l).to_numpy()[:, None] / np.where(served, r, 1.0), np.inf
        )
        power = np.where(
            served,
            first["power_w"].reindex(names_l).to_numpy(float)[:, None] / np.where(served, r, 1.0),
            np.inf,
        )
        av = avail.reindex(names_l).to_numpy()
        for i, b in enumerate(names_l):
            cols = served[i]
            le_cost = np.all(cost[:, cols] <= cost[i, cols] * (1 + 1e-12), axis=1)
            le_power = np.all(power[:, cols] <= power[i, cols] * (1 + 1e-12), axis=1)
            strict = np.any(cost[:, cols] < cost[i, cols] * (1 - 1e-9), axis=1) | np.any(
                power[:, cols] < power[i, cols] * (1 - 1e-9), axis=1
            )
            dom = le_cost & le_power & strict & (av <= av[i])
            dom[i] = False
            if not dom.any():
                keep.add(b)
    return table[table["candidate"].isin(keep)].reset_index(drop=True)


# --------------------------------------------------------------------------------------
# SKU table and the hand-over
# --------------------------------------------------------------------------------------


def sku_table(catalog: Catalog, skus: Iterable[str], periods: pd.DataFrame) -> pd.DataFrame:
    starts = pd.DatetimeIndex(periods["start"])
    hours = float(periods["hours"].mean()) if len(periods) else 2190.0
    rows = []
    for sku in skus:
        hw: Hardware = catalog.hardware[sku]
        p = hw.purchase
        avail = pd.Timestamp(hw.available_from)
        # Buy from the first period that starts on or after the availability date.
        first = int(np.searchsorted(starts, avail, side="left"))
        lead_days = p.lead_time_days.value if p.lead_time_days else 0.0
        rows.append({
            "sku": sku,
            "chips_per_unit": p.chips_per_unit,
            "unit_price_usd": p.price_usd.value if p.price_usd else np.nan,
            "rent_usd_per_chip_hour": p.rent_usd_per_chip_hour.value if p.rent_usd_per_chip_hour else np.nan,
            "all_in_w_per_chip": hw.power.all_in_w_per_chip.value,
            # A rental is available once the SKU ships at all (no lead time).
            "first_rent_period": first,
            "first_buy_period": first,
            "lead_periods": math.ceil(lead_days * 24.0 / hours - 1e-9),
            "lifetime_periods": max(1, round(p.lifetime_years.value * 8766.0 / hours)),
            "supply_cap_units_per_period": np.nan,
            "period_hours": hours,
        })  # fmt: skip
    return pd.DataFrame(rows).set_index("sku")


def usable_skus(catalog: Catalog, allowed: list[str] | None) -> list[str]:
    """SKUs that can be bought or rented (a SKU with neither price cannot be planned)."""
    ids = allowed if allowed is not None else sorted(catalog.hardware)
    return [
        s for s in ids
        if catalog.hardware[s].purchase.price_usd is not None
        or catalog.hardware[s].purchase.rent_usd_per_chip_hour is not None
    ]  # fmt: skip


def build_candidates(
    catalog: Catalog,
    demand: Demand,
    settings: Settings | None = None,
    options: CandidateOptions | None = None,
    existing: pd.DataFrame | None = None,
) -> CandidateSet:
    """Catalog + demand -> the candidate table and the MIP's `PlanningData`."""
    settings = settings or Settings()
    opts = options or CandidateOptions()
    skus = usable_skus(catalog, opts.allowed_skus)
    w = demand.workloads
    rows: list[dict] = []
    best: list[dict] = []
    uncalibrated: set[str] = set()
    for (model_id, precision), grp in w.groupby([w["model"], w["precision"].fillna("")], sort=True):
        spec = catalog.models[str(model_id)]
        prec = str(precision) or spec.native_precision
        chips = {}
        for sku in skus:
            try:
                chips[sku] = chip_spec(catalog.hardware[sku], prec)
            except ValueError:
                continue  # this SKU has no math for this precision
        for c in chips.values():
            if not c.calibrated:
                uncalibrated.add(c.sku)
        shapes = Shapes(
            names=list(grp.index),
            prompt=grp["prompt_tokens"].to_numpy(float)[:, None],
            output=grp["output_tokens"].to_numpy(float)[:, None],
            tpot_ms=grp["tpot_ms"].to_numpy(float)[:, None],
            ttft_ms=grp["ttft_ms"].to_numpy(float)[:, None],
            pct=grp["percentile"].to_numpy(float)[:, None],
        )
        r, b = enumerate_model(spec, prec, shapes, chips, catalog, opts)
        rows += r
        best += b
    table = pd.DataFrame(rows)
    if table.empty:
        table = pd.DataFrame(
            columns=[
                "candidate",
                "topology",
                "workload",
                "phase",
                "rate_rps",
                "power_w",
                "description",
                "units",
            ]
        )
    periods, demand_df = demand.to_planning_tables()
    sku_all = sku_table(catalog, skus, periods)
    if len(table) and opts.prune_dominated:
        table = prune_dominated(table)
    if len(table) and opts.prune_frontier:
        table = prune_to_frontier(table, sku_all, settings)
    best_df = _best_reachable(best)
    used = {s for u in table["units"] for s in u} if len(table) else set()
    if existing is not None and len(existing):
        used |= set(existing["sku"])  # owned chips are in the fleet whether used or not
    used = sorted(s for s in used if s in sku_all.index)
    cand = table.groupby("candidate", sort=True).agg(
        topology=("topology", "first"), power_w=("power_w", "first"), description=("description", "first")
    ) if len(table) else pd.DataFrame(columns=["topology", "power_w", "description"])  # fmt: skip
    units = pd.DataFrame(
        [
            {"candidate": c, "sku": s, "chips": float(n)}
            for c, u in table.groupby("candidate", sort=True)["units"].first().items()
            for s, n in u.items()
        ],
        columns=["candidate", "sku", "chips"],
    )
    rates = table[["candidate", "workload", "phase", "rate_rps"]].copy()
    sku_df = sku_all.loc[used]
    data = PlanningData(
        periods=periods,
        skus=sku_df,
        candidates=cand,
        units=units,
        rates=rates.reset_index(drop=True),
        demand=demand_df,
        existing=existing
        if existing is not None
        else pd.DataFrame(columns=["sku", "chips", "retire_period"]),
        settings=settings,
    )
    return CandidateSet(
        data=data, table=table, best_reachable=best_df, skus_uncalibrated=sorted(uncalibrated)
    )


def _best_reachable(best: list[dict]) -> pd.DataFrame:
    if not best:
        return pd.DataFrame(
            columns=["workload", "best_tpot_ms", "tpot_where", "best_ttft_ms", "ttft_where"]
        )
    df = pd.DataFrame(best)
    out = []
    for wname, g in df.groupby("workload", sort=True):
        row: dict = {"workload": wname}
        for kind in ("tpot", "ttft"):
            k = g[g["kind"] == kind]
            if len(k):
                i = k["value_ms"].idxmin()
                row[f"best_{kind}_ms"] = float(k.at[i, "value_ms"])
                row[f"{kind}_where"] = str(k.at[i, "where"])
        out.append(row)
    return pd.DataFrame(out)
