"""Serving configurations as a table: enumerate, evaluate, keep what meets the SLA, prune.

A *candidate* is an instance type: a model at a precision on fixed hardware with fixed
parallelism, serving one or both phases. It may serve every workload of that model; for
each (workload, phase) it gets the requests/s one instance sustains inside that workload's
SLA, at the batch that is best for that workload (the largest that meets TPOT and fits).

Phase-split candidates compose freely in the MIP, which is how topologies arise:

  colocated     one candidate serving prefill and decode (full-stack SRAM included)
  pd            a `prefill` candidate + a `decode` candidate (any SKUs; KV transfer in TTFT)
  afd, pd+afd   a `prefill` candidate + an `afd` decode candidate (attention SKU + FFN SKU)
  spec          one candidate serving prefill and speculative decode on the same chips (a
                colocated instance with a draft model or EAGLE-style head; named
                `colocated+spec|...`, table topology `colocated`, config topology `spec`)
  pd+spec       a `prefill` candidate + a `spec` decode candidate

The performance functions are numpy arithmetic, so they are called on arrays of hardware
groups x workloads x batch sizes: one call per phase evaluates every group of a model, one
queueing call sizes every prefill pool of every model, and the table is assembled
column-wise. Tens of thousands of (candidate, workload) pairs take about a tenth of a
second; the results equal a group-by-group loop's bit for bit (same operations, elementwise).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Literal, cast

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from planner.catalog import Catalog, Hardware, ModelSpec
from planner.demand import Demand
from planner.model_data import SPEC_DRAFT_TOKENS, DraftLengths, PlanningData, Settings
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

if TYPE_CHECKING:
    from planner.scenario import Scenario

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
    # heads report 0.6-0.8 on chat data) and the draft lengths k to try. Every k is a
    # candidate of its own (a server runs one k); on the same chips the k with the best
    # rate dominates the others exactly (prune_dominated), so the MIP sees only the best
    # k per workload. Short drafts win when the verify step is compute-bound (big
    # batches), long ones when it is bandwidth-bound.
    spec_acceptance: float = Field(default=0.7, ge=0, le=1)
    spec_draft_tokens: DraftLengths = Field(default_factory=lambda: list(SPEC_DRAFT_TOKENS))
    afd_microbatches: list[int] = Field(default_factory=lambda: [1, 2, 3])
    prune_dominated: bool = True
    # Keep only the cost-power frontier per workload (see prune_to_frontier: a heuristic
    # that ignores whole instances); off = every SLA-feasible candidate not dominated
    # chip for chip (prune_dominated, exact) reaches the MIP.
    prune_frontier: bool = True
    # With prune_frontier: keep also, per workload and period, the candidates that carry
    # its load in whole instances most cheaply (cover_candidates; scenario pruning "cover").
    keep_covers: bool = False


def candidate_options(sc: Scenario, catalog: Catalog) -> CandidateOptions:
    """What to enumerate for a scenario (`planner plan` and every sweep point alike)."""
    allowed = sc.allowed_skus if sc.allowed_skus is not None else sorted(catalog.hardware)
    allowed = [s for s in allowed if s not in set(sc.exclude_skus)]
    return CandidateOptions(
        allowed_skus=allowed,
        spec_acceptance=sc.spec_acceptance,
        spec_draft_tokens=sc.spec_draft_tokens,
        prune_frontier=sc.pruning_mode != "none",
        keep_covers=sc.pruning_mode == "cover",
        **({"topologies": sc.topologies} if sc.topologies else {}),
    )


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
# Per-phase evaluation on arrays (groups x workloads x batch)
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
    # Per-token draft acceptance for speculative decoding (the demand's spec_acceptance,
    # else the scenario's).
    acceptance: np.ndarray

    @property
    def mean_ctx(self) -> np.ndarray:
        return self.prompt + self.output / 2.0

    @property
    def max_ctx(self) -> np.ndarray:
        return self.prompt + self.output


@dataclass(frozen=True)
class ChipColumns:
    """The `ChipSpec` numbers the perf functions read, one element per group (shape (G, 1, 1)).

    The perf functions are plain numpy arithmetic on these, so one call with columns
    evaluates every group against the (workload, batch) grid at once. Each element is that
    chip's own scalar property, so results equal those of one call per group bit for bit.
    """

    achieved_tflops: np.ndarray
    achieved_tb_s: np.ndarray
    score_flop_cost: np.ndarray
    usable_gb: np.ndarray
    link_gb_s: np.ndarray
    link_latency_us: np.ndarray
    net_gb_s: np.ndarray
    net_latency_us: np.ndarray
    layer_overhead_us: np.ndarray
    request_overhead_ms: np.ndarray


@dataclass(frozen=True)
class Groups:
    """Hardware groups stacked along axis 0 as (G, 1, 1) columns."""

    items: list[Group]
    chip: ChipSpec  # a ChipColumns: the perf functions read only its fields
    tp: np.ndarray
    pp: np.ndarray
    chips: np.ndarray

    def __len__(self) -> int:
        return len(self.items)


def _column(values: Iterable[float]) -> np.ndarray:
    return np.array(list(values), dtype=float).reshape(-1, 1, 1)


def stack_groups(groups: Iterable[Group]) -> Groups:
    items = list(groups)
    cs = [g.chip for g in items]
    cols = ChipColumns(
        achieved_tflops=_column(c.achieved_tflops for c in cs),
        achieved_tb_s=_column(c.achieved_tb_s for c in cs),
        score_flop_cost=_column(c.score_flop_cost for c in cs),
        usable_gb=_column(c.usable_gb for c in cs),
        link_gb_s=_column(c.link_gb_s for c in cs),
        link_latency_us=_column(c.link_latency_us for c in cs),
        net_gb_s=_column(c.net_gb_s for c in cs),
        net_latency_us=_column(c.net_latency_us for c in cs),
        layer_overhead_us=_column(c.layer_overhead_us for c in cs),
        request_overhead_ms=_column(c.request_overhead_ms for c in cs),
    )
    return Groups(
        items=items,
        chip=cast(ChipSpec, cols),
        tp=_column(g.tp for g in items),
        pp=_column(g.pp for g in items),
        chips=_column(g.chips for g in items),
    )


@dataclass(frozen=True)
class ModelCase:
    """The workloads of one model at one precision and the hardware groups tried for them."""

    spec: ModelSpec
    precision: str
    m: ModelDims
    wb: float
    kvb: float
    s: Shapes
    chips: dict[str, ChipSpec]
    groups: Groups  # every SKU's groups, SKU by SKU in `chips` order

    @property
    def tag(self) -> str:
        return f"{self.spec.id}@{self.precision}"


def model_case(
    spec: ModelSpec, precision: str, s: Shapes, chips: dict[str, ChipSpec], opts: CandidateOptions
) -> ModelCase:
    m = model_dims(spec)
    wb, kvb = weight_bytes_per_param(precision), kv_bytes_per_elem(precision)
    flat = [
        g for chip in chips.values()
        for g in hardware_groups(m, chip, wb, m.total_params, opts.tp_options)
    ]  # fmt: skip
    return ModelCase(spec, precision, m, wb, kvb, s, chips, stack_groups(flat))


def prefill_times(mc: ModelCase) -> tuple[np.ndarray, np.ndarray]:
    """Per (group, workload): prefill service time of one prompt, and the time its KV cache
    takes to leave over the group's NICs (the receiver is sized to match)."""
    m, g, s = mc.m, mc.groups, mc.s
    svc = prefill(m, g.chip, s.prompt, g.tp, g.pp, mc.wb, mc.kvb).total_ms
    kv_bytes = kv_bytes_per_seq(m, s.prompt, mc.kvb)
    kv = kv_transfer_ms(kv_bytes, g.chip.net_gb_s * g.chips, g.chip.net_latency_us)
    shape = (len(g), len(s.names))
    return np.asarray(svc, dtype=float).reshape(shape), np.asarray(kv, dtype=float).reshape(shape)


def prefill_rate(
    service_ms: np.ndarray, pp: np.ndarray, extra_ms: np.ndarray, ttft_ms: np.ndarray,
    pct: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Requests/s one instance sustains inside the TTFT target, and the TTFT at zero load
    (every argument: one element per instance and workload)."""
    stage = service_ms / pp  # a full pipeline accepts a prompt every stage time
    extra = service_ms - stage + extra_ms
    util = queueing.admissible_utilization(ttft_ms, stage, pct, servers=1, extra_ms=extra)
    return np.asarray(util) * 1000.0 / stage, service_ms + extra_ms


@dataclass(frozen=True)
class PrefillPools:
    """Per (group, workload) of one ModelCase: prefill service time, and rate and zero-load
    TTFT as a prefill pool (pd: the KV transfer counts in TTFT) and colocated."""

    svc: np.ndarray
    pd_rate: np.ndarray
    pd_ttft0: np.ndarray
    col_rate: np.ndarray
    col_ttft0: np.ndarray


def prefill_pools(cases: list[ModelCase]) -> list[PrefillPools]:
    """Prefill rates of every model, group and workload from ONE queueing call.

    The TTFT bisection costs per call (tens of numpy passes), not per element, and it is
    elementwise, so flattening everything into one call gives each element the result it
    gets alone."""
    pieces: list[tuple[np.ndarray, ...]] = []
    svcs = []
    for mc in cases:
        svc, kv = prefill_times(mc)
        svcs.append(svc)
        shape = svc.shape
        pp = np.broadcast_to(mc.groups.pp[:, :, 0], shape)
        ttft = np.broadcast_to(mc.s.ttft_ms[:, 0], shape)
        pct = np.broadcast_to(mc.s.pct[:, 0], shape)
        overhead = np.broadcast_to(mc.groups.chip.request_overhead_ms[:, :, 0], shape)
        for extra in (kv + overhead, overhead):
            pieces.append((svc, pp, extra, ttft, pct))
    sizes = [p[0].size for p in pieces]
    if sum(sizes):
        flat = [np.concatenate([p[i].ravel() for p in pieces]) for i in range(5)]
        rate, ttft0 = prefill_rate(*flat)
    else:
        rate = ttft0 = np.zeros(0)
    bounds = np.cumsum([0, *sizes])
    out = []
    for ci, svc in enumerate(svcs):
        pd_rate, pd_ttft0 = (
            x[bounds[2 * ci] : bounds[2 * ci + 1]].reshape(svc.shape) for x in (rate, ttft0)
        )
        col_rate, col_ttft0 = (
            x[bounds[2 * ci + 1] : bounds[2 * ci + 2]].reshape(svc.shape) for x in (rate, ttft0)
        )
        out.append(PrefillPools(svc, pd_rate, pd_ttft0, col_rate, col_ttft0))
    return out


def best_batch(ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Along the last (batch) axis: index of the largest feasible batch, and whether any is."""
    any_ok = ok.any(axis=-1)
    idx = ok.shape[-1] - 1 - np.argmax(ok[..., ::-1], axis=-1)
    return idx, any_ok


def at_batch(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """x[..., idx] per leading index (x broadcast to idx's shape plus the batch axis)."""
    x = np.broadcast_to(x, (*idx.shape, x.shape[-1]))
    return np.take_along_axis(x, idx[..., None], axis=-1)[..., 0]


def plain_decode_grid(
    m: ModelDims, g: Groups, s: Shapes, wb: float, kvb: float, tokens_per_seq: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Step time (G, n, B) and memory fit (G, n, B) for the batch grid."""
    step = decode_step(m, g.chip, BATCH_GRID, s.mean_ctx, g.tp, g.pp, wb, kvb, tokens_per_seq)
    fits = max_batch(m, g.chip, s.max_ctx, g.tp, g.pp, wb, kvb) >= BATCH_GRID
    shape = (len(g), len(s.names), len(BATCH_GRID))
    return np.broadcast_to(np.asarray(step.total_ms, dtype=float), shape), fits


# --------------------------------------------------------------------------------------
# Enumeration
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Meta:
    """What a candidate's rows repeat: its name, chips per SKU, power, description, config."""

    name: str
    units: dict[str, int]
    power_w: float
    description: str
    config: dict


@dataclass(frozen=True)
class _Part:
    """Rows of one `RowParts.add`: (candidate, workload) pairs of up to K candidates."""

    order: tuple[int, int, int]  # (model, section, step within the candidate's unit)
    unit: np.ndarray  # per row: the group (or AFD pair) index, ordering candidates
    wi: np.ndarray  # per row: workload index
    topology: str
    phase: str
    workload: np.ndarray
    rate: np.ndarray
    meta: list[Meta]  # per row
    detail: dict[str, np.ndarray]


@dataclass
class RowParts:
    """The candidate table, collected column-wise many candidates at a time.

    Rows come out in the order a loop over candidates (model by model; per group: prefill
    pool, decode pool, colocated prefill then decode, speculative; then AFD pairs) would
    write them, workload by workload, and columns in order of first appearance, as
    `pd.DataFrame(list_of_row_dicts)` would make them: the table equals the one built
    row by row."""

    parts: list[_Part] = field(default_factory=list)

    def add(
        self, order: tuple[int, int, int], topology: str, phase: str, s: Shapes,
        rate: np.ndarray, mask: np.ndarray, detail: dict[str, np.ndarray],
        meta: Callable[[int], Meta], first_unit: int = 0,
    ) -> None:  # fmt: skip
        """K candidates x n workloads (rate, mask, detail: (K, n)): keep the pairs with mask
        and rate > 0. `meta(k)` is called only for candidates that keep a row (most of an
        enumeration meets no SLA)."""
        ki, wi = np.nonzero(mask & (rate > 0))
        if not len(ki):
            return
        ks, inv = np.unique(ki, return_inverse=True)
        metas = [meta(int(k)) for k in ks]
        self.parts.append(
            _Part(
                order=order, unit=ki + first_unit, wi=wi, topology=topology, phase=phase,
                workload=np.asarray(s.names, dtype=object)[wi], rate=rate[ki, wi].astype(float),
                meta=[metas[i] for i in inv.tolist()],
                detail={k: np.broadcast_to(v, rate.shape)[ki, wi].astype(float)
                        for k, v in detail.items()},
            )
        )  # fmt: skip

    def frame(self) -> pd.DataFrame | None:
        parts = self.parts
        if not parts:
            return None
        sizes = [len(p.wi) for p in parts]
        keys = [
            np.repeat([p.order[0] for p in parts], sizes),
            np.repeat([p.order[1] for p in parts], sizes),
            np.concatenate([p.unit for p in parts]),
            np.repeat([p.order[2] for p in parts], sizes),
            np.concatenate([p.wi for p in parts]),
        ]
        order = np.lexsort(keys[::-1])

        def cat(get: Callable[[_Part], np.ndarray]) -> np.ndarray:
            return np.concatenate([get(p) for p in parts])[order]

        meta = [m for p in parts for m in p.meta]
        meta = [meta[i] for i in order.tolist()]

        def objects(values: list) -> np.ndarray:
            arr = np.empty(len(values), dtype=object)
            arr[:] = values
            return arr

        cols: dict[str, np.ndarray] = {
            "candidate": objects([m.name for m in meta]),
            "topology": np.repeat(objects([p.topology for p in parts]), sizes)[order],
            "workload": cat(lambda p: p.workload),
            "phase": np.repeat(objects([p.phase for p in parts]), sizes)[order],
            "rate_rps": cat(lambda p: p.rate),
            "power_w": np.array([m.power_w for m in meta], dtype=float),
            "description": objects([m.description for m in meta]),
            "units": objects([m.units for m in meta]),
            "config": objects([m.config for m in meta]),
        }
        # Detail columns in order of first appearance (first row, then order within it).
        position = np.empty(len(order), dtype=int)
        position[order] = np.arange(len(order))
        starts = np.cumsum([0, *sizes])
        first: dict[str, tuple[int, int]] = {}
        for p, lo, hi in zip(parts, starts[:-1], starts[1:], strict=True):
            at = int(position[lo:hi].min())
            for j, k in enumerate(p.detail):
                first[k] = min(first.get(k, (at, j)), (at, j))
        for k in sorted(first, key=first.__getitem__):
            cols[k] = cat(lambda p, k=k: p.detail.get(k, np.full(len(p.wi), np.nan)))
        return pd.DataFrame(cols)


@dataclass
class BestParts:
    """Per model: the best zero-load TTFT (prefill service + serving overhead) and TPOT
    (batch-1 step) of every group."""

    cases: list[tuple[list[str], list[str], np.ndarray, np.ndarray]] = field(default_factory=list)

    def add(self, s: Shapes, labels: list[str], ttft: np.ndarray, tpot: np.ndarray) -> None:
        self.cases.append((s.names, labels, ttft, tpot))


def _units(*groups: Group) -> dict[str, int]:
    u: dict[str, int] = {}
    for g in groups:
        u[g.sku] = u.get(g.sku, 0) + g.chips
    return u


def _power(*groups: Group) -> float:
    return float(sum(g.chips * g.chip.all_in_w for g in groups))


def enumerate_model(
    mc: ModelCase, pre: PrefillPools, catalog: Catalog, opts: CandidateOptions, mi: int,
    out: RowParts, best: BestParts,
) -> None:  # fmt: skip
    """All candidate rows for the workloads of one model at one precision (into `out`),
    plus the best TPOT / TTFT reached per workload (for explaining what no SKU can serve).
    Every group of every SKU is evaluated in one perf call per phase."""
    spec, precision, m, s, g = mc.spec, mc.precision, mc.m, mc.s, mc.groups
    topos = set(opts.topologies)
    tag = mc.tag
    items = g.items
    if items:
        svc = pre.svc
        step, fits = plain_decode_grid(m, g, s, mc.wb, mc.kvb)
        # What candidates on a group repeat, built once per group rather than per candidate.
        labels = [x.label for x in items]
        best.add(s, labels, pre.col_ttft0, step[:, :, 0])
        units = [_units(x) for x in items]
        power = [_power(x) for x in items]
        on = [f"{spec.id} ({precision}) on {x.chips} x {x.sku} (tp{x.tp} pp{x.pp})" for x in items]

        def on_group(
            kind: str, text: str, topology: str, prefill_pool: bool = False
        ) -> Callable[[int], Meta]:
            def meta(k: int) -> Meta:
                x = items[k]
                config = {"model": spec.id, "precision": precision, "hardware": x.sku,
                          "tp": x.tp, "pp": x.pp, "topology": topology}  # fmt: skip
                if prefill_pool:  # a prefill pool names its hardware again for the plan
                    config.update(prefill_hardware=x.sku, prefill_tp=x.tp)
                name = f"{kind}|{tag}|{labels[k]}"
                return Meta(name, dict(units[k]), power[k], f"{text}: {on[k]}", config)

            return meta

        if topos & {"pd", "afd", "pd+afd", "pd+spec"}:
            out.add(
                (mi, 0, 0), "prefill", "prefill", s, pre.pd_rate, np.ones(svc.shape, bool),
                {"prefill_ms": svc, "ttft0_ms": pre.pd_ttft0, "batch": np.zeros(svc.shape)},
                on_group("prefill", "prefill pool", "pd", prefill_pool=True),
            )  # fmt: skip
        # Decode-only pool (pd)
        if topos & {"pd"}:
            idx, any_ok = best_batch(fits & (step <= s.tpot_ms))
            bsel, tsel = BATCH_GRID[idx], at_batch(step, idx)
            out.add(
                (mi, 0, 1), "decode", "decode", s, bsel * 1000.0 / (s.output[:, 0] * tsel),
                any_ok, {"tpot_ms": tsel, "batch": bsel}, on_group("decode", "decode pool", "pd"),
            )  # fmt: skip
        # Colocated: decode steps stall for the prompts arriving meanwhile.
        if "colocated" in topos:
            both, dec_rate, detail = colocated_decode(mc, pre, step, fits)
            phases = (("prefill", pre.col_rate), ("decode", dec_rate))
            for sub, (phase, rate) in enumerate(phases, start=2):
                meta = on_group("colocated", "colocated", "colocated")
                out.add((mi, 0, sub), "colocated", phase, s, rate, both, detail, meta)
        # Speculative decoding on the same chips (EAGLE-style head, or a small draft model
        # that shares the tokenizer).
        if topos & {"spec", "pd+spec"}:
            _spec_parts(mc, pre, step, fits, catalog, opts, mi, out, labels, units, power, best)
    # ---- AFD: attention on an HBM SKU, FFN on another SKU (SRAM LPUs, or a GPU) ----
    if topos & {"afd", "pd+afd"}:
        _afd_parts(mc, opts, mi, out)


def colocated_decode(
    mc: ModelCase, pre: PrefillPools, decode_ms: np.ndarray, fits: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """A colocated instance whose decode takes `decode_ms` per output token (groups x
    workloads x batch grid): the chips also prefill, so each token stalls for the prompts
    of the B / O requests that join meanwhile. Returns where both phases meet the SLA, the
    decode rate at the largest batch that does (counting decode time alone: the plan's
    time budget charges prefill separately) and the rows' detail columns."""
    s, svc = mc.s, pre.svc
    tpot_col = decode_ms + BATCH_GRID / s.output * svc[:, :, None]
    idx, any_ok = best_batch(fits & (tpot_col <= s.tpot_ms))
    bsel = BATCH_GRID[idx]
    dec_rate = bsel * 1000.0 / (s.output[:, 0] * at_batch(decode_ms, idx))
    detail = {
        "tpot_ms": at_batch(tpot_col, idx),
        "batch": bsel,
        "prefill_ms": svc,
        "ttft0_ms": pre.col_ttft0,
    }
    return any_ok & (pre.col_rate > 0), dec_rate, detail


def _spec_parts(
    mc: ModelCase, pre: PrefillPools, target_step: np.ndarray, fits: np.ndarray,
    catalog: Catalog, opts: CandidateOptions, mi: int, out: RowParts, labels: list[str],
    units: list[dict[str, int]], power: list[float], best: BestParts,
) -> None:  # fmt: skip
    """Speculative decoding on the target's chips, per draft and draft length k: a decode
    pool (`pd+spec`, paired with a prefill pool) and a colocated instance (`spec`: the same
    chips also prefill, so each step stalls for the prompts joining meanwhile, exactly as
    a plain colocated instance's does)."""
    spec, s, g, m = mc.spec, mc.s, mc.groups, mc.m
    topos = set(opts.topologies)
    drafts = [d for d in catalog.models.values() if d.role == "draft_head"]
    drafts += [
        d for d in catalog.models.values()
        if d.role == "draft" and d.architecture and spec.architecture
        and d.architecture.vocab == spec.architecture.vocab
    ]  # fmt: skip
    # The verify step depends on k only, not on the draft: evaluate it once per k.
    verify_by_k: dict[int, np.ndarray] = {}
    sub = 4  # after prefill, decode and colocated (2) of the same group
    for draft in drafts:
        if draft.role == "draft_head":
            assert draft.draft_head is not None
            frac = draft.draft_head.fraction_of_target_step.value
            draft_ms = frac * target_step
        else:
            dm = model_dims(draft)
            draft_ms = np.asarray(
                decode_step(dm, g.chip, BATCH_GRID, s.mean_ctx, g.tp, 1, mc.wb, mc.kvb).total_ms
            )
        for k in opts.spec_draft_tokens:
            if k not in verify_by_k:
                verify_by_k[k] = plain_decode_grid(m, g, s, mc.wb, mc.kvb, tokens_per_seq=k + 1)[0]
            verify = verify_by_k[k]
            per_step = expected_tokens_per_step(s.acceptance, k)  # (n, 1): per workload
            tpot = (k * draft_ms + verify) / per_step
            # Drafting lowers TPOT at batch 1 too: part of the best any SKU reaches.
            best.add(s, [f"{x} with {draft.id} k={k}" for x in labels],
                     np.full(tpot.shape[:2], np.inf), np.where(fits, tpot, np.inf)[:, :, 0])  # fmt: skip
            if "spec" in topos:
                _colocated_spec(mc, pre, tpot, fits, mi, sub, out, draft, k, opts, labels,
                                units, power, per_step)  # fmt: skip
            sub += 2
            if "pd+spec" not in topos:
                continue
            idx, any_ok = best_batch(fits & (tpot <= s.tpot_ms))
            bsel, tsel = BATCH_GRID[idx], at_batch(tpot, idx)

            def meta(i: int, draft: ModelSpec = draft, k: int = k) -> Meta:
                x = g.items[i]
                return Meta(
                    f"spec|{mc.tag}|{labels[i]}|{draft.id}|k{k}", dict(units[i]), power[i],
                    f"spec decode: {spec.id} on {x.chips} x {x.sku} (tp{x.tp}), draft {draft.id} k={k}",
                    {"model": spec.id, "precision": mc.precision, "hardware": x.sku, "tp": x.tp,
                     "pp": x.pp, "topology": "pd+spec", "draft_model": draft.id, "draft_tokens": k,
                     "acceptance": opts.spec_acceptance},
                )  # fmt: skip

            out.add(
                (mi, 0, sub), "spec", "decode", s, bsel * 1000.0 / (s.output[:, 0] * tsel), any_ok,
                {"tpot_ms": tsel, "batch": bsel, "tokens_per_step": per_step[:, 0],
                 "acceptance": s.acceptance[:, 0]},
                meta,
            )  # fmt: skip
            sub += 1


def _colocated_spec(
    mc: ModelCase, pre: PrefillPools, tpot: np.ndarray, fits: np.ndarray, mi: int, sub: int,
    out: RowParts, draft: ModelSpec, k: int, opts: CandidateOptions, labels: list[str],
    units: list[dict[str, int]], power: list[float], per_step: np.ndarray,
) -> None:  # fmt: skip
    """A colocated instance decoding speculatively (draft `draft`, k tokens per step).

    One step of the batch emits per_step tokens per sequence, so B x per_step / O requests
    finish and as many prompts join: TPOT = speculative TPOT + B / O x prefill time (the
    same stall term as plain colocated). The decode rate counts the speculative step
    alone: the plan's time budget charges the prefill time separately, as it does for
    plain colocated instances (planner.verify re-derives both through `evaluate` with
    topology "spec")."""
    s, g = mc.s, mc.groups
    both, dec_rate, detail = colocated_decode(mc, pre, tpot, fits)
    detail |= {"tokens_per_step": per_step[:, 0], "acceptance": s.acceptance[:, 0]}

    def meta(i: int) -> Meta:
        x = g.items[i]
        return Meta(
            f"{COLOCATED_SPEC}|{mc.tag}|{labels[i]}|{draft.id}|k{k}", dict(units[i]), power[i],
            f"colocated, speculative decode: {mc.spec.id} on {x.chips} x {x.sku} (tp{x.tp}), draft {draft.id} k={k}",
            {"model": mc.spec.id, "precision": mc.precision, "hardware": x.sku, "tp": x.tp,
             "pp": x.pp, "topology": "spec", "draft_model": draft.id, "draft_tokens": k,
             "acceptance": opts.spec_acceptance},
        )  # fmt: skip

    for part, (phase, rate) in enumerate((("prefill", pre.col_rate), ("decode", dec_rate))):
        out.add((mi, 0, sub + part), "colocated", phase, s, rate, both, detail, meta)


# Name prefix of colocated instances that decode speculatively (table topology "colocated").
COLOCATED_SPEC = "colocated+spec"
# A candidate's name starts with its kind; the serving topology (as `planner perf
# --topology` names it) of a workload whose decode runs on that kind.
SERVING_TOPOLOGY = {"colocated": "colocated", COLOCATED_SPEC: "spec", "decode": "pd",
                    "afd": "pd+afd", "spec": "pd+spec"}  # fmt: skip


def serving_topology(candidate: str) -> str:
    """The serving topology of a workload decoded on `candidate` (SERVING_TOPOLOGY)."""
    kind = candidate.split("|", 1)[0]
    return SERVING_TOPOLOGY.get(kind, kind)


# AFD pairs evaluated per perf call: bounds the (pairs, workloads, batch) temporaries when a
# sweep evaluates hundreds of workload variants at once.
AFD_CHUNK_ELEMENTS = 1 << 20


@dataclass(frozen=True)
class AfdPairs:
    """(attention group, FFN group) pairs in enumeration order (attention SKU, FFN SKU,
    attention layout, FFN layout), as indices into the distinct groups of either side."""

    attn: list[Group]
    ffn: list[Group]
    ai: np.ndarray
    fi: np.ndarray

    @cached_property
    def attn_labels(self) -> list[str]:
        return [g.label for g in self.attn]

    @cached_property
    def ffn_labels(self) -> list[str]:
        return [g.label for g in self.ffn]


def afd_pairs(mc: ModelCase, opts: CandidateOptions) -> AfdPairs:
    m, chips, wb = mc.m, mc.chips, mc.wb
    attn_params = m.attn_params + m.lm_head_params
    # FFN chips hold weights only (no KV): fill their SRAM.
    ffn_groups = {
        sku: hardware_groups(m, chip, wb, m.ffn_params, [1], sram_headroom=1.0)
        for sku, chip in chips.items()
        if chip.is_sram  # AFD pays off where FFN weights live in SRAM
    }
    ffn: list[Group] = []
    ffn_at: dict[str, list[int]] = {}
    for sku, gl in ffn_groups.items():
        ffn_at[sku] = list(range(len(ffn), len(ffn) + len(gl)))
        ffn += gl
    attn: list[Group] = []
    ai: list[int] = []
    fi: list[int] = []
    for a_sku, a_chip in chips.items():
        if a_chip.is_sram:
            continue  # attention keeps the KV cache in HBM
        a_groups = hardware_groups(m, a_chip, wb, attn_params, opts.tp_options)
        a_groups = [ag for ag in a_groups if ag.pp == 1]
        a_at = list(range(len(attn), len(attn) + len(a_groups)))
        attn += a_groups
        for f_sku, f_idx in ffn_at.items():
            if f_sku == a_sku:
                continue
            for a in a_at:
                ai += [a] * len(f_idx)
                fi += f_idx
    return AfdPairs(attn, ffn, np.array(ai, dtype=int), np.array(fi, dtype=int))


def _afd_parts(mc: ModelCase, opts: CandidateOptions, mi: int, out: RowParts) -> None:
    pairs = afd_pairs(mc, opts)
    if not len(pairs.ai):
        return
    A, F = stack_groups(pairs.attn), stack_groups(pairs.ffn)
    per_pair = len(mc.s.names) * len(BATCH_GRID)
    chunk = max(1, AFD_CHUNK_ELEMENTS // max(1, per_pair))
    for lo in range(0, len(pairs.ai), chunk):
        sel = slice(lo, lo + chunk)
        _afd_chunk(mc, pairs, A, F, pairs.ai[sel], pairs.fi[sel], opts, mi, out, lo)


def _afd_chunk(
    mc: ModelCase, pairs: AfdPairs, A: Groups, F: Groups, ai: np.ndarray, fi: np.ndarray,
    opts: CandidateOptions, mi: int, out: RowParts, first_unit: int,
) -> None:  # fmt: skip
    """Decode step of each AFD pair with m micro-batches pipelining attention, FFN and link,
    T = (a + f + x) + (m - 1) max(a, f, x); the best m per batch. Attention and FFN parts
    are evaluated once per distinct group (all of A and F), then paired."""
    m, s, wb, kvb, spec = mc.m, mc.s, mc.wb, mc.kvb, mc.spec
    attn_params = m.attn_params + m.lm_head_params
    b = BATCH_GRID
    fits_a = max_batch(m, A.chip, s.max_ctx, A.tp, 1, wb, kvb, weight_params=attn_params) >= b
    shape = (len(ai), len(s.names), len(b))
    fits = np.broadcast_to(fits_a, (len(A), *shape[1:]))[ai]
    link_gb_s = (A.chip.net_gb_s * A.chips)[ai]
    latency = np.maximum(A.chip.net_latency_us[ai], F.chip.net_latency_us[fi])
    best_t: np.ndarray | None = None
    best_mb = np.zeros(shape)
    for mb in opts.afd_microbatches:
        bb = b / mb
        a = attention_decode(m, A.chip, 1.0, bb, s.mean_ctx, A.tp, wb, kvb).time_ms
        a = a + lm_head(m, A.chip, bb, A.tp, wb).time_ms + m.layers * A.chip.layer_overhead_us / 1e3
        f = ffn_decode(m, F.chip, bb, F.tp, wb).time_ms + m.layers * F.chip.layer_overhead_us / 1e3
        x = afd_crossings_ms(bb, m.hidden, m.layers, link_gb_s, latency)
        a, f = a[ai], f[fi]
        t = np.broadcast_to((a + f + x) + (mb - 1) * np.maximum(np.maximum(a, f), x), shape)
        better = np.ones(shape, bool) if best_t is None else t < best_t
        best_mb = np.where(better, mb, best_mb)
        best_t = t if best_t is None else np.minimum(best_t, t)
    assert best_t is not None
    idx, any_ok = best_batch(fits & (best_t <= s.tpot_ms))
    bsel, tsel = BATCH_GRID[idx], at_batch(best_t, idx)

    def meta(k: int) -> Meta:
        ag, fg = pairs.attn[ai[k]], pairs.ffn[fi[k]]
        return Meta(
            f"afd|{mc.tag}|{pairs.attn_labels[ai[k]]}+{pairs.ffn_labels[fi[k]]}",
            _units(ag, fg), _power(ag, fg),
            f"afd decode: {spec.id} ({mc.precision}) attention on {ag.chips} x {ag.sku}, FFN on {fg.chips} x {fg.sku}",
            {"model": spec.id, "precision": mc.precision, "hardware": ag.sku, "tp": ag.tp,
             "pp": 1, "topology": "pd+afd", "ffn_hardware": fg.sku},
        )  # fmt: skip

    out.add(
        (mi, 1, 0),
        "afd",
        "decode",
        s,
        bsel * 1000.0 / (s.output[:, 0] * tsel),
        any_ok,
        {"tpot_ms": tsel, "batch": bsel, "microbatches": at_batch(best_mb, idx)},
        meta,
        first_unit=first_unit,
    )


# --------------------------------------------------------------------------------------
# Pruning
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RateMatrix:
    """A candidate table as arrays: one row per candidate (in order of first appearance),
    one column per (workload, phase); NaN where the candidate does not serve it."""

    codes: np.ndarray  # per table row: its candidate's row in `rate`
    names: list[str]
    first: np.ndarray  # per candidate: its first table row
    rate: np.ndarray

    @property
    def served(self) -> np.ndarray:
        return ~np.isnan(self.rate)

    def column(self, table: pd.DataFrame, name: str) -> np.ndarray:
        """Per candidate: `name` on its first row."""
        return table[name].to_numpy(dtype=object)[self.first]


def _rate_matrix(table: pd.DataFrame, aggregate: str) -> _RateMatrix:
    """`aggregate` decides duplicate (candidate, workload, phase) rows: "last" as a dict
    update would, "max" as pivot_table(aggfunc="max") would (NaN rates skipped)."""
    codes, uniques = pd.factorize(table["candidate"])
    _, first = np.unique(codes, return_index=True)
    w, _ = pd.factorize(table["workload"])
    p, phases = pd.factorize(table["phase"])
    _, cols = np.unique(w * len(phases) + p, return_inverse=True)
    n_cols = int(cols.max()) + 1
    rate = np.full((len(uniques), n_cols), np.nan)
    v = table["rate_rps"].to_numpy(dtype=float)
    if aggregate == "max":
        np.fmax.at(rate, (codes, cols), v)
    else:
        cell = codes * n_cols + cols
        _, last_rev = np.unique(cell[::-1], return_index=True)
        keep = len(cell) - 1 - last_rev
        rate.flat[cell[keep]] = v[keep]
    return _RateMatrix(codes, uniques.to_numpy(dtype=object).tolist(), first, rate)


def _column_components(served: np.ndarray) -> np.ndarray:
    """Per candidate (row of `served`): a label, equal for candidates linked by serving a
    common (workload, phase) column, directly or through others; -1 if it serves none.

    Labels spread as minima between candidates and their columns until they settle (a few
    rounds: candidates of one model share its workloads' columns)."""
    n_cols = served.shape[1]
    none = n_cols  # larger than any column index
    col = np.arange(n_cols)
    while True:
        row = np.where(served, col[None, :], none).min(axis=1, initial=none)
        new = np.minimum(col, np.where(served, row[:, None], none).min(axis=0, initial=none))
        if np.array_equal(new, col):
            return np.where(row < none, row, -1)
        col = new


def _pairs_within(group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every ordered pair (a, b), a != b, of rows with the same `group` label."""
    order = np.argsort(group, kind="stable")
    _, start, size = np.unique(group[order], return_index=True, return_counts=True)
    per_b = np.repeat(size, size)  # each b pairs with every member of its group
    b = np.repeat(order, per_b)
    first = np.repeat(np.repeat(start, size), per_b)
    a = order[first + np.arange(len(b)) - np.repeat(np.cumsum(per_b) - per_b, per_b)]
    keep = a != b
    return a[keep], b[keep]


# Elements of (candidate pair, column) comparisons evaluated at once: bounds temporaries.
PAIR_CHUNK_ELEMENTS = 1 << 21


def _replaces(
    a: np.ndarray, b: np.ndarray, rate: np.ndarray, units: np.ndarray, power: np.ndarray,
    rank: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """Per pair: k copies of candidate a replace candidate b chip for chip (prune_dominated's
    test). `units`: chips per SKU of the family's SKUs in sorted order, padded with the
    first; `rank`: position by name."""
    k_all = units[b] / units[a]
    k = k_all[:, 0]
    one_k = np.all(k_all == k[:, None], axis=1)
    whole = ~(k < 1) & ~(np.abs(k - np.round(k)) > 1e-9)
    lean = ~(k * power[a] > power[b] * (1 + 1e-12))
    ok = one_k & whole & lean
    out = np.zeros(len(a), dtype=bool)
    chunk = max(1, PAIR_CHUNK_ELEMENTS // max(1, rate.shape[1]))
    candidates = np.flatnonzero(ok)
    for lo in range(0, len(candidates), chunk):
        sel = candidates[lo : lo + chunk]
        ra, rb, kk = rate[a[sel]], rate[b[sel]], k[sel, None]
        sa, sb = ~np.isnan(ra), ~np.isnan(rb)
        short = np.any(sb & (~sa | (kk * ra < rb * (1 - 1e-12))), axis=1)
        same = np.all(~sb | (np.abs(ra - rb) <= 1e-12 * rb), axis=1)
        identical = (k[sel] == 1) & same
        out[sel] = ~short & ~(identical & (rank[a[sel]] > rank[b[sel]]))
    return out


def prune_dominated(table: pd.DataFrame) -> pd.DataFrame:
    """Drop a candidate when another of the same topology, repeated k times on exactly k
    times fewer chips of the same SKUs, serves every (workload, phase) it serves at least as
    fast and for no more power: k instances of the other replace one of it chip for chip, so
    no plan gets worse. Different SKU mixes are never compared (prices, dates and budgets
    decide between them), nor different topologies (a colocated instance serves whole
    requests, a prefill pool only prompts).

    Candidates are taken in name order; one already dropped replaces nothing (of two
    identical candidates, the first by name stays)."""
    if table.empty:
        return table
    rm = _rate_matrix(table, "last")
    n = len(rm.names)
    units_of = rm.column(table, "units")
    power = table["power_w"].to_numpy(dtype=float)[rm.first]
    rank = np.empty(n, dtype=int)
    rank[sorted(range(n), key=rm.names.__getitem__)] = np.arange(n)
    sku_sets = [tuple(sorted(u)) for u in units_of]
    families: dict[tuple, int] = {}
    family = np.array([
        families.setdefault(key, len(families))
        for key in zip(rm.column(table, "topology"), sku_sets, strict=True)
    ])  # fmt: skip
    width = max(len(x) for x in sku_sets)
    units = np.array(
        [[u[s] for s in skus] + [u[skus[0]]] * (width - len(skus))
         for u, skus in zip(units_of, sku_sets, strict=True)],
        dtype=float,
    )  # fmt: skip
    # A replacement serves every column the candidate serves, so only candidates linked
    # through shared columns compare (unless one serves nothing: then all of a family do).
    part = _column_components(rm.served)
    if np.any(part < 0):
        part = np.zeros(n, dtype=int)
    a, b = _pairs_within(family * (int(part.max()) + 2) + part + 1)
    hit = _replaces(a, b, rm.rate, units, power, rank)
    a, b = a[hit], b[hit]
    # In name order, a candidate is dropped when one not yet dropped replaces it.
    gone = np.zeros(n, dtype=bool)
    by_b = np.lexsort((a, rank[b]))
    for bb, aa in zip(b[by_b].tolist(), a[by_b].tolist(), strict=True):
        if not gone[bb] and not gone[aa]:
            gone[bb] = True
    return table[~gone[rm.codes]].reset_index(drop=True)


def sunk_skus(existing: pd.DataFrame | None) -> frozenset[str]:
    """SKUs of which the plan starts with chips in service (an existing fleet)."""
    if existing is None or not len(existing):
        return frozenset()
    held = existing[(existing["chips"] > 0) & (existing["retire_period"] > 0)]
    return frozenset(str(h) for h in held["sku"])


def chip_hour_usd(
    skus: pd.DataFrame, settings: Settings, n_periods: int, sunk: Collection[str] = (),
    renting: bool = False,
) -> dict[str, float]:  # fmt: skip
    """Per SKU, per chip-hour: the cheaper of owning (capex plus the chip's energy and
    hosting) and renting (plus energy and hosting too when rented chips draw facility
    power), as the objective charges them over a horizon of `n_periods` periods.

    Owning: with cost_basis "amortized" the objective charges price / lifetime per hour
    owned, so that is the rate. With "horizon" it charges the whole price when bought, so
    the rate is the price spread over the hours a chip bought as early as it can be (first
    period + lead time) is usable before the horizon ends or it retires: the cheapest an
    owned chip-hour gets in this plan. (Spreading it over the lifetime, as before, made a
    chip bought for the last quarters of a short horizon look 3-20x cheaper than the plan
    pays, and pruned rented candidates that were cheaper.) No owning where no chip can be
    usable within the horizon.

    `sunk`: SKUs valued as chips already owned (sunk_skus): their running cost alone, the
    price being paid before the plan starts. `renting`: a rentable SKU at its rent alone,
    as a capex budget may leave nothing to buy with."""
    out = {}
    for sku, row in skus.iterrows():
        running = float(row["all_in_w_per_chip"]) * settings.running_usd_per_w_hour
        options = [running] if sku in sunk else []
        rentable = _rentable(row, settings)
        if pd.notna(row["unit_price_usd"]) and not (renting and rentable):
            life = int(row["lifetime_periods"])
            owned = (
                life if settings.cost_basis == "amortized"
                else min(life, n_periods - _first_owned_period(row))
            )  # fmt: skip
            if owned > 0:
                per_chip = row["unit_price_usd"] / row["chips_per_unit"]
                options.append(per_chip / (owned * row["period_hours"]) + running)
        if rentable:
            paid_here = running if settings.rented_power == "facility" else 0.0
            options.append(row["rent_usd_per_chip_hour"] + paid_here)
        out[str(sku)] = min(options) if options else np.inf
    return out


def _rentable(row: pd.Series, settings: Settings) -> bool:
    """Whether the SKU (its sku_table row) can be rented in this scenario."""
    return bool(pd.notna(row["rent_usd_per_chip_hour"]) and settings.allow_rent)


def _first_owned_period(row: pd.Series) -> int:
    """The first period a chip of this SKU can be owned and in service: bought in its first
    period, delivered after the lead time."""
    return int(row["first_buy_period"]) + int(row["lead_periods"])


def first_usable(
    skus: pd.DataFrame, settings: Settings, sunk: Collection[str] = ()
) -> dict[str, int]:
    """Per SKU: the first period it can be in the fleet (bought + lead time, or rented;
    the first period for `sunk` SKUs, owned from the start)."""
    out = {}
    for sku, row in skus.iterrows():
        ways = [0] if sku in sunk else []
        if pd.notna(row["unit_price_usd"]):
            ways.append(_first_owned_period(row))
        if _rentable(row, settings):
            ways.append(int(row["first_rent_period"]))
        out[str(sku)] = min(ways) if ways else 10**6
    return out


def _pruning_scope(topology: np.ndarray) -> np.ndarray:
    """Which candidates can stand in for each other: colocated instances together, prefill
    pools together, decode pools of any topology together."""
    return np.where(np.isin(topology, ["colocated", "prefill"]), topology, "decode")


def _instance_hour_usd_and_first_period(
    units_of: Iterable[dict[str, int]], skus: pd.DataFrame, settings: Settings, n_periods: int,
    ranking: Ranking = (frozenset(), False),
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Per instance (its chips per SKU): the ranking cost of one instance-hour, its chips at
    capex-or-rent with energy and hosting where we pay them (chip_hour_usd), and the first
    period all its chips can be in the fleet (first_usable), under `ranking` (_rankings)."""
    sunk, renting = ranking
    chip_usd = chip_hour_usd(skus, settings, n_periods, sunk, renting)
    usable = first_usable(skus, settings, sunk)
    units = list(units_of)
    cost_h = np.array([sum(n * chip_usd[k] for k, n in u.items()) for u in units], dtype=float)
    avail = np.array([max(usable[k] for k in u) for u in units], dtype=int)
    return cost_h, avail


# Elements of the (dominator, candidate, column) comparisons in prune_to_frontier evaluated
# at once: bounds the temporaries for large tables.
FRONTIER_CHUNK_ELEMENTS = 1 << 21


def _frontier_keep(
    cost: np.ndarray, power: np.ndarray, served: np.ndarray, av: np.ndarray
) -> np.ndarray:
    """Per candidate (row): whether no other row dominates it (see prune_to_frontier).

    B's columns are the ones it serves; comparing A on the others is skipped by masking
    rather than by selecting columns per B, which vectorizes over B."""
    n, n_cols = cost.shape
    keep = np.ones(n, dtype=bool)
    chunk = max(1, FRONTIER_CHUNK_ELEMENTS // max(1, n * n_cols))
    for lo in range(0, n, chunk):
        b = slice(lo, min(n, lo + chunk))
        sb = served[None, b, :]  # (1, nb, c)
        cb, pb = cost[None, b, :], power[None, b, :]
        ca, pa = cost[:, None, :], power[:, None, :]
        le_cost = np.all(~sb | (ca <= cb * (1 + 1e-12)), axis=2)
        le_power = np.all(~sb | (pa <= pb * (1 + 1e-12)), axis=2)
        strict = np.any(sb & ((ca < cb * (1 - 1e-9)) | (pa < pb * (1 - 1e-9))), axis=2)
        dom = le_cost & le_power & strict & (av[:, None] <= av[None, b])
        dom[np.arange(lo, b.stop), np.arange(b.stop - lo)] = False
        keep[b] = ~dom.any(axis=0)
    return keep


def prune_to_frontier(
    table: pd.DataFrame, skus: pd.DataFrame, settings: Settings, n_periods: int,
    sunk: Collection[str] = (),
) -> pd.DataFrame:  # fmt: skip
    """Keep, per phase scope, the candidates on the cost-power frontier of their workloads.

    Candidate B is dropped when some A of the same scope (colocated instances together,
    prefill pools together, decode pools of any topology together) can be in the fleet no
    later than B, and for every (workload, phase) B serves, A serves it at no higher cost
    per request/s and no higher power per request/s, strictly better on one count. Any
    load B carries, A carries for less money and less power (money at `chip_hour_usd`).

    An existing fleet (`sunk`: its SKUs) is ranked twice, and a candidate on the frontier
    of either ranking stays: once at market prices, for what has to be bought or rented,
    and once with the owned chips at their running cost alone, available from the first
    period, so candidates that put the owned chips to work are not pruned for costing
    more at a purchase price nobody pays again. (Ranked at market prices only, a
    forecast with 32 owned H100s got the same plan as without them, every owned chip
    idle, at twice the cost of the exhaustive plan.)

    A heuristic, not an exact reduction: it ignores whole instances (A's may be larger,
    and where a workload needs only a few instances a smaller candidate that is dearer per
    request/s makes the cheaper plan), purchase units, how many chips are owned, and
    budgets that favour one kind of spending. On small fleets that costs real money: see
    benchmarks/pruning_loss.py and the README. `--exhaustive` (scenario `exhaustive:
    true`) turns it off, at the price of a larger, slower MIP.
    """
    if table.empty:
        return table
    rm = _rate_matrix(table, "max")
    units_of = rm.column(table, "units")
    keep = np.zeros(len(rm.names), dtype=bool)
    for ranking in _rankings(settings, sunk, units_of):
        cost_h, avail = _instance_hour_usd_and_first_period(
            units_of, skus, settings, n_periods, ranking
        )
        keep |= _on_frontier(table, rm, cost_h, avail)
    return table[keep[rm.codes]].reset_index(drop=True)


Ranking = tuple[frozenset[str], bool]  # (SKUs owned already, rent where rentable)


CapexLimit = Literal["none", "budget", "zero"]


def capex_limit(settings: Settings) -> CapexLimit:
    """What the capex budgets leave to buy with, as the pruning sees it (_rankings): no
    budget, some budget, or nothing at all (a budget of zero)."""
    budgets = (settings.capex_budget_usd, settings.capex_budget_usd_per_period)
    if 0.0 in budgets:
        return "zero"
    return "none" if budgets == (None, None) else "budget"


def _rankings(
    settings: Settings, sunk: Collection[str], units_of: Iterable[dict[str, int]]
) -> list[Ranking]:
    """The prices the frontier is ranked under (chip_hour_usd): the market's (the cheaper
    of owning and renting); with the owned SKUs at their running cost, where some
    candidate uses one; and, under a capex budget, each of those with renting in place of
    owning wherever a SKU can be rented (the budget may leave nothing to buy with, and a
    candidate dearer to own but cheaper to rent must then stay). A budget of zero buys
    nothing: then the renting rankings alone (the market's would only add candidates
    priced at a purchase that cannot happen, and slow the MIP: 36 -> 56 candidates and
    1.9 -> 8.3 s on default.csv, for the same plan)."""
    owned = frozenset(sunk) & {k for u in units_of for k in u}
    ranks: list[Ranking] = [(frozenset(), False), *([(owned, False)] if owned else [])]
    limit = capex_limit(settings)
    if limit != "none" and settings.allow_rent:
        renting: list[Ranking] = [(o, True) for o, _ in ranks]
        ranks = renting if limit == "zero" else [*ranks, *renting]
    return ranks


def _on_frontier(
    table: pd.DataFrame, rm: _RateMatrix, cost_h: np.ndarray, avail: np.ndarray
) -> np.ndarray:
    """Per candidate of `rm`: on the cost-power frontier of its scope (prune_to_frontier)
    at instance-hour costs `cost_h` and first periods `avail`."""
    topo = rm.column(table, "topology")
    power_w = table["power_w"].to_numpy(dtype=float)[rm.first]
    scope = _pruning_scope(topo)
    served = rm.served
    r = np.where(served, rm.rate, 1.0)
    cost = np.where(served, cost_h[:, None] / r, np.inf)
    power = np.where(served, power_w[:, None] / r, np.inf)
    # A dominator serves every column B serves, so (with B's power finite there) only
    # candidates linked through shared columns can dominate each other.
    linked = bool(np.all(np.isfinite(power[served] * (1 + 1e-12))))
    part = _column_components(served) if linked else np.zeros(len(served), dtype=int)
    keep = np.zeros(len(served), dtype=bool)
    for key in set(zip(scope.tolist(), part.tolist(), strict=True)):
        idx = np.flatnonzero((scope == key[0]) & (part == key[1]))
        cols = np.flatnonzero(served[idx].any(axis=0))
        keep[idx] = _frontier_keep(
            cost[np.ix_(idx, cols)], power[np.ix_(idx, cols)], served[np.ix_(idx, cols)], avail[idx]
        )
    return keep


def prune_frontier_keeping_covers(
    table: pd.DataFrame, skus: pd.DataFrame, settings: Settings, periods: list[str],
    demand: pd.DataFrame | None, sunk: Collection[str] = (), *, fill_by_watts: bool | None = None,
) -> pd.DataFrame:  # fmt: skip
    """prune_to_frontier, keeping also the cover_candidates of `demand` (None: none)."""
    kept = prune_to_frontier(table, skus, settings, len(periods), sunk)
    if demand is None or table.empty:
        return kept
    covers = cover_candidates(
        table, skus, settings, periods, demand, sunk, fill_by_watts=fill_by_watts
    )
    names = set(kept["candidate"]) | covers
    return table[table["candidate"].isin(names).to_numpy()].reset_index(drop=True)


def covers_fill_by_watts(settings: Settings) -> bool:
    """Whether cover_candidates keeps the leftover's cover ranked by watts too: only where
    power is the objective or a limit (a power budget, a Pareto cap).

    Under the cost objective power is already priced in the dollar ranking (energy and
    hosting), and that second filler per (workload, phase, period) made the MIP far slower
    for little: planning batch_summarization.csv took 158 s against 10 s, for a plan 0.6 %
    cheaper; the other bundled files got the same plans, or within the gap cheaper ones,
    without it. The whole-load cover by watts stays: without it voice.csv's plan was 0.4 %
    dearer."""
    return (
        settings.objective == "power"
        or settings.power_budget_mw is not None
        or settings.peak_power_cap_mw is not None
    )


def cover_candidates(
    table: pd.DataFrame, skus: pd.DataFrame, settings: Settings, periods: list[str],
    demand: pd.DataFrame, sunk: Collection[str] = (), *, fill_by_watts: bool | None = None,
) -> set[str]:  # fmt: skip
    """Candidates that serve some workload's load in whole instances most cheaply.

    What the frontier pruning misses: where a workload needs only a few instances, a
    smaller candidate that is dearer per request/s can be the cheaper fleet (six small
    instances against six big ones). So per scope (as prune_to_frontier), workload, phase
    (colocated: both) and period with demand, among the candidates whose chips can be in
    the fleet by then, this keeps the one that carries the period's whole load with the
    fewest dollars in whole instances of one kind (at `chip_hour_usd`, instances filled to
    util_max), and the one that carries what is left over after whole instances of the
    cheapest-per-request/s candidate; and the same two for watts (the second only where
    `fill_by_watts`, by default covers_fill_by_watts). At most four candidates per
    (workload, phase, period), so the MIP stays small; still a heuristic: mixes of three or
    more kinds are not looked at.

    `demand`: planning-table demand (workload, period, requests_per_s). `sunk`: the SKUs
    of an existing fleet, ranked both ways as in prune_to_frontier."""
    if table.empty:
        return set()
    if fill_by_watts is None:
        fill_by_watts = covers_fill_by_watts(settings)
    first = table.drop_duplicates("candidate")
    keep: set[str] = set()
    for ranking in _rankings(settings, sunk, first["units"]):
        usd_h, first_period = _instance_hour_usd_and_first_period(
            first["units"], skus, settings, len(periods), ranking
        )
        keep |= _covers(table, first, settings, periods, demand, usd_h, first_period, fill_by_watts)
    return keep


def _covers(
    table: pd.DataFrame, first: pd.DataFrame, settings: Settings, periods: list[str],
    demand: pd.DataFrame, usd_h: np.ndarray, first_period: np.ndarray, fill_by_watts: bool,
) -> set[str]:  # fmt: skip
    """cover_candidates at one ranking: instance-hour costs `usd_h` and first periods
    `first_period`, per row of `first` (one row per candidate)."""
    cost_h = dict(zip(first["candidate"], usd_h, strict=True))
    avail = dict(zip(first["candidate"], first_period, strict=True))
    topo = table["topology"].to_numpy(dtype=object)
    colocated = topo == "colocated"
    rows = pd.DataFrame(
        {
            "candidate": table["candidate"].to_numpy(dtype=object),
            "workload": table["workload"].to_numpy(dtype=object),
            # A colocated instance carries both phases of a request: its busy time adds up.
            "phase": np.where(colocated, "both", table["phase"].to_numpy(dtype=object)),
            "scope": _pruning_scope(topo),
            "s_per_req": 1.0 / table["rate_rps"].to_numpy(dtype=float),
            "power_w": table["power_w"].to_numpy(dtype=float),
        }
    )
    per = rows.groupby(["candidate", "workload", "phase"], sort=False, as_index=False).agg(
        scope=("scope", "first"), s_per_req=("s_per_req", "sum"), power_w=("power_w", "first")
    )
    per["cap_rps"] = settings.util_max / per["s_per_req"]
    per["usd_h"] = per["candidate"].map(cost_h)
    pos = {t: i for i, t in enumerate(periods)}
    load = demand.loc[demand["requests_per_s"] > 0, ["workload", "period", "requests_per_s"]]
    x = per.merge(load, on="workload")
    x = x[x["candidate"].map(avail).to_numpy() <= x["period"].map(pos).to_numpy()]
    keep: set[str] = set()
    for _, grp in x.groupby(["scope", "workload", "phase", "period"], sort=False):
        names = grp["candidate"].to_numpy(dtype=object)
        need = float(grp["requests_per_s"].iloc[0])
        cap = grp["cap_rps"].to_numpy()
        for price, fill in (
            (grp["usd_h"].to_numpy(), True),
            (grp["power_w"].to_numpy(), fill_by_watts),
        ):
            keep.add(names[int(np.argmin(_whole_instances(need, cap) * price))])
            if not fill:
                continue
            best = int(np.argmin(price / cap))
            left = need - np.floor(need / cap[best] + 1e-12) * cap[best]
            if left > 1e-9 * need:
                keep.add(names[int(np.argmin(_whole_instances(left, cap) * price))])
    return keep


def _whole_instances(load_rps: float, cap_rps: np.ndarray) -> np.ndarray:
    """Instances of each capacity needed to carry `load_rps` (> 0): at least one."""
    return np.maximum(1.0, np.ceil(load_rps / cap_rps - 1e-9))


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


def shapes_of(workloads: pd.DataFrame, opts: CandidateOptions) -> Shapes:
    """The workloads of one model and precision as the perf functions' column vectors."""

    def column(name: str) -> np.ndarray:
        return workloads[name].to_numpy(float)[:, None]

    return Shapes(
        names=list(workloads.index),
        prompt=column("prompt_tokens"),
        output=column("output_tokens"),
        tpot_ms=column("tpot_ms"),
        ttft_ms=column("ttft_ms"),
        pct=column("percentile"),
        acceptance=workload_acceptance(workloads, opts.spec_acceptance)[:, None],
    )


def workload_acceptance(workloads: pd.DataFrame, default: float) -> np.ndarray:
    """Each workload's draft acceptance: its own `spec_acceptance`, else `default`."""
    own = workloads.get("spec_acceptance")
    if own is None:
        return np.full(len(workloads), float(default))
    return own.astype(float).fillna(float(default)).to_numpy(float)


def usable_skus(
    catalog: Catalog, allowed: list[str] | None, owned: Collection[str] = ()
) -> list[str]:
    """SKUs that can be bought, rented or are already owned (`owned`: the existing fleet's
    SKUs). A SKU with neither price and no owned chips cannot be planned; owned chips
    without a price (a part bought long ago, an in-house accelerator) still serve, at
    their running cost."""
    ids = allowed if allowed is not None else sorted(catalog.hardware)
    return [
        s for s in ids
        if catalog.hardware[s].purchase.price_usd is not None
        or catalog.hardware[s].purchase.rent_usd_per_chip_hour is not None
        or s in owned
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
    skus = usable_skus(catalog, opts.allowed_skus, sunk_skus(existing))
    w = demand.workloads
    uncalibrated: set[str] = set()
    cases: list[ModelCase] = []
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
        cases.append(model_case(spec, prec, shapes_of(grp, opts), chips, opts))
    parts, best = RowParts(), BestParts()
    for mi, (mc, pre) in enumerate(zip(cases, prefill_pools(cases), strict=True)):
        enumerate_model(mc, pre, catalog, opts, mi, parts, best)
    table = parts.frame()
    if table is None:
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
        table = prune_frontier_keeping_covers(
            table, sku_all, settings, list(periods.index),
            demand_df if opts.keep_covers else None, sunk_skus(existing),
        )  # fmt: skip
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


def _best_reachable(best: BestParts) -> pd.DataFrame:
    """Per workload (sorted): the lowest batch-1 TPOT and prefill TTFT any group reaches
    (plain decode, or drafting speculatively), and the first group (in enumeration order)
    reaching it."""
    found: dict[str, dict] = {}
    for names, labels, ttft, tpot in best.cases:
        for i, wname in enumerate(names):
            row: dict = found.get(wname, {"workload": wname})
            for kind, values in (("tpot", tpot[:, i]), ("ttft", ttft[:, i])):
                finite = np.isfinite(values)
                if finite.any():
                    j = int(np.argmin(np.where(finite, values, np.inf)))
                    if float(values[j]) < row.get(f"best_{kind}_ms", np.inf):
                        row[f"best_{kind}_ms"] = float(values[j])
                        row[f"{kind}_where"] = str(labels[j])
            if len(row) > 1:
                found[wname] = row
    out = [found[k] for k in sorted(found)]
    if not out:
        return pd.DataFrame(
            columns=["workload", "best_tpot_ms", "tpot_where", "best_ttft_ms", "ttft_where"]
        )
    return pd.DataFrame(out)
