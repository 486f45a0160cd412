"""One serving configuration in, latency / throughput / memory fit / breakdown out.

This is what `planner perf` prints and what `verify.py` re-derives plan claims from. It
composes the pure phase functions; the candidate generator calls the same functions on
arrays instead.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from planner.catalog import Catalog, ModelSpec
from planner.perf import queueing
from planner.perf.memory import MemoryUse
from planner.perf.specs import (
    ChipSpec,
    ModelDims,
    chip_spec,
    kv_bytes_per_elem,
    model_dims,
    weight_bytes_per_param,
)
from planner.perf.topology import (
    Group,
    Infeasible,
    Part,
    afd_decode,
    batch_grid,
    decode_breakdown,
    draft_link_ms,
    kv_handoff_ms,
    max_batch,
    place,
    plain_decode,
    prefill_ms,
    spec_decode,
)

Topology = Literal["colocated", "pd", "afd", "spec", "pd+afd", "pd+spec"]
TOPOLOGIES: tuple[str, ...] = ("colocated", "pd", "afd", "spec", "pd+afd", "pd+spec")


class ServingConfig(BaseModel):
    """Everything fixed about one way of serving one model (the CLI flags of `planner perf`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    hardware: str  # decode SKU (attention side for AFD, target side for spec)
    topology: Topology = "colocated"
    tp: int | None = Field(default=None, gt=0)
    pp: int | None = Field(default=None, gt=0)
    batch: int | Literal["max"] = 1
    prompt_tokens: int = Field(default=1024, gt=0)
    output_tokens: int = Field(default=256, gt=0)
    context: int | None = Field(default=None, gt=0)  # mean context while decoding
    precision: str | None = None  # None: the model's native precision
    prefill_hardware: str | None = None
    prefill_tp: int | None = Field(default=None, gt=0)
    ffn_hardware: str | None = None
    microbatches: int | None = Field(default=None, gt=0, le=8)
    draft_model: str | None = None
    draft_hardware: str | None = None
    draft_tokens: int = Field(default=4, gt=0, le=16)
    acceptance: float = Field(default=0.7, ge=0, le=1)
    tpot_ms: float | None = Field(default=None, gt=0)
    ttft_ms: float | None = Field(default=None, gt=0)
    percentile: float = Field(default=99.0, gt=0, lt=100)

    @property
    def mean_context(self) -> float:
        """Mean tokens in context over a request's decode: prompt plus half the output."""
        if self.context is not None:
            return float(self.context)
        return self.prompt_tokens + self.output_tokens / 2.0

    @property
    def max_context(self) -> float:
        return float(self.context or self.prompt_tokens + self.output_tokens)


class MemoryReport(BaseModel):
    sku: str
    role: str
    weights_gb_per_chip: float
    kv_gb_per_chip: float
    activations_gb_per_chip: float
    usable_gb_per_chip: float
    fits: bool


class PerfResult(BaseModel):
    """What `planner perf --format json` prints."""

    feasible: bool
    reason: str
    config: ServingConfig
    precision: str
    batch: int
    prefill_ms: float
    kv_transfer_ms: float
    # Serving-stack time outside the roofline (HTTP, tokenization, scheduling), calibrated
    request_overhead_ms: float
    ttft_ms: float  # prefill + KV transfer + request overhead, no queueing
    decode_step_ms: float  # = TPOT, the time per output token a user sees
    # Part of TPOT that is the colocated prefill stall: (batch / output_tokens) x prefill_ms
    # at full load. 0 when prefill runs elsewhere.
    prefill_stall_ms: float
    tokens_per_s_per_user: float
    tokens_per_s: float  # output tokens per second of one instance
    decode_requests_per_s: float  # requests one instance finishes per second (decode side)
    prefill_requests_per_s: float | None  # sustainable inside the TTFT target (with --ttft-ms)
    admissible_prefill_utilization: float | None
    tokens_per_step: float  # > 1 with speculative decoding
    units: dict[str, int]  # chips per SKU in one instance
    units_by_role: dict[str, dict[str, int]]  # role (prefill, decode, decode_ffn...) -> chips
    power_w: float
    parallelism: dict[str, str]  # role -> "tp4 pp1 on h100-sxm"
    breakdown: list[Part]
    memory: list[MemoryReport]
    uncalibrated: list[str]  # SKUs whose efficiency factors are defaults, not fitted

    model_config = ConfigDict(arbitrary_types_allowed=True)


def _mem_report(role: str, g: Group, mem: MemoryUse, i: int) -> MemoryReport:
    def at(a: object) -> float:
        arr = np.atleast_1d(a)  # type: ignore[arg-type]
        return float(arr[min(i, arr.size - 1)])

    return MemoryReport(
        sku=g.chip.sku,
        role=role,
        weights_gb_per_chip=at(mem.weights_gb_per_chip),
        kv_gb_per_chip=at(mem.kv_gb_per_chip),
        activations_gb_per_chip=at(mem.activations_gb_per_chip),
        usable_gb_per_chip=mem.usable_gb_per_chip,
        fits=bool(np.atleast_1d(mem.fits)[min(i, np.size(mem.fits) - 1)]),
    )


def _infeasible(cfg: ServingConfig, precision: str, reason: str) -> PerfResult:
    nan = float("nan")
    return PerfResult(
        feasible=False, reason=reason, config=cfg, precision=precision, batch=0,
        prefill_ms=nan, kv_transfer_ms=nan, request_overhead_ms=nan, ttft_ms=nan,
        decode_step_ms=nan, prefill_stall_ms=nan,
        tokens_per_s_per_user=0.0, tokens_per_s=0.0, decode_requests_per_s=0.0,
        prefill_requests_per_s=None, admissible_prefill_utilization=None, tokens_per_step=1.0,
        units={}, units_by_role={}, power_w=0.0, parallelism={}, breakdown=[], memory=[], uncalibrated=[],
    )  # fmt: skip


def _chip(catalog: Catalog, sku: str, precision: str, flag: str) -> ChipSpec:
    hw = catalog.sku(sku, source=flag)
    try:
        return chip_spec(hw, precision)
    except ValueError as exc:
        raise Infeasible(str(exc)) from None


def evaluate(cfg: ServingConfig, catalog: Catalog) -> PerfResult:
    """Evaluate one configuration. Unknown ids raise PlannerInputError; a configuration that
    cannot work (memory, link domain, SLA) returns feasible=False with the reason."""
    spec = catalog.model(cfg.model, source="--model")
    precision = cfg.precision or spec.native_precision
    try:
        return _evaluate(cfg, catalog, spec, precision)
    except Infeasible as exc:
        return _infeasible(cfg, precision, str(exc))


def _evaluate(cfg: ServingConfig, catalog: Catalog, spec: ModelSpec, precision: str) -> PerfResult:
    m = model_dims(spec)
    wb, kvb = weight_bytes_per_param(precision), kv_bytes_per_elem(precision)
    topo = cfg.topology
    split_prefill = topo in ("pd", "pd+afd", "pd+spec", "afd")
    decode_chip = _chip(catalog, cfg.hardware, precision, "--hardware")
    groups: dict[str, Group] = {}
    mems: dict[str, MemoryUse] = {}
    ctx, ctx_max = cfg.mean_context, cfg.max_context

    # ---- decode side: a step-time function over a batch grid ----
    if topo in ("afd", "pd+afd"):
        if not cfg.ffn_hardware:
            raise Infeasible(f"topology {topo} needs --ffn-hardware (the SKU for decode FFN)")
        ffn_chip = _chip(catalog, cfg.ffn_hardware, precision, "--ffn-hardware")
        attn_params = m.attn_params + m.lm_head_params
        attn = place(m, decode_chip, wb, tp=cfg.tp, pp=1, params=attn_params)
        ffn_g = place(m, ffn_chip, wb, params=m.ffn_params, headroom=1.0)
        groups.update(decode_attention=attn, decode_ffn=ffn_g)
        limit = float(
            max_batch(m, attn.chip, ctx_max, attn.tp, 1, wb, kvb, weight_params=attn_params)
        )
    else:
        g = place(m, decode_chip, wb, tp=cfg.tp, pp=cfg.pp)
        groups["decode"] = g
        limit = float(max_batch(m, g.chip, ctx_max, g.tp, g.pp, wb, kvb))
    if limit < 1:
        g0 = next(iter(groups.values()))
        need = (m.total_params * wb) / 1e9
        raise Infeasible(
            f"{m.total_params / 1e9:.1f} B params in {precision} ({need:.1f} GB) plus one "
            f"sequence's KV at {ctx_max:.0f} tokens do not fit in {g0.chips} x {g0.chip.sku} "
            f"({g0.chip.usable_gb:.2f} GB usable "
            f"{'SRAM' if g0.chip.is_sram else 'memory'} per chip)"
        )

    if cfg.batch == "max":
        grid = batch_grid(min(limit, 4096.0))
    else:
        if cfg.batch > limit:
            raise Infeasible(
                f"batch {cfg.batch} needs more KV memory than fits: at most {limit:.0f} "
                f"sequences of {ctx_max:.0f} tokens fit on {cfg.hardware}"
            )
        grid = np.array([float(cfg.batch)])

    # ---- prefill side ----
    if split_prefill:
        p_chip = _chip(
            catalog, cfg.prefill_hardware or cfg.hardware, precision, "--prefill-hardware"
        )
        pg = place(m, p_chip, wb, tp=cfg.prefill_tp)
        groups["prefill"] = pg
    else:
        pg = groups["decode"]
    pre_ms, pre_step = prefill_ms(m, pg, cfg.prompt_tokens, wb, kvb)
    receiver = groups.get("decode") or groups["decode_attention"]
    handoff = kv_handoff_ms(m, cfg.prompt_tokens, kvb, pg, receiver) if split_prefill else 0.0

    tokens_per_step = 1.0
    parts_fn: list[Part] = []
    if topo in ("afd", "pd+afd"):
        best = None
        for mbs in [cfg.microbatches] if cfg.microbatches else [1, 2, 3, 4]:
            step, pieces, mem_a, mem_f = afd_decode(
                m, groups["decode_attention"], groups["decode_ffn"], grid, ctx, wb, kvb, mbs
            )
            if best is None or float(step[-1]) < float(best[0][-1]):
                best = (step, pieces, mem_a, mem_f, mbs)
        assert best is not None
        step, pieces, mem_a, mem_f, mbs = best
        tpot = step
        mems.update(decode_attention=mem_a, decode_ffn=mem_f)
        fits = np.atleast_1d(mem_a.fits) & bool(np.all(mem_f.fits))
        microbatches = mbs
    elif topo in ("spec", "pd+spec"):
        g = groups["decode"]
        k = cfg.draft_tokens
        if not cfg.draft_model:
            raise Infeasible(f"topology {topo} needs --draft-model")
        draft = catalog.model(cfg.draft_model, source="--draft-model")
        target_step, mem = plain_decode(m, g, grid, ctx, wb, kvb)
        if draft.role == "draft_head":
            assert draft.draft_head is not None
            draft_ms = draft.draft_head.fraction_of_target_step.value * target_step.total_ms
            link = 0.0
        else:
            dm = model_dims(draft)
            if cfg.draft_hardware in (None, cfg.hardware):
                # Draft co-resident on the target's chips: no extra units, no link.
                d_step, _ = plain_decode(dm, Group(g.chip, g.tp, 1), grid, ctx, wb, kvb)
                link = 0.0
            else:
                d_chip = _chip(catalog, cfg.draft_hardware, precision, "--draft-hardware")
                dg = place(dm, d_chip, wb)
                groups["draft"] = dg
                d_step, mems["draft"] = plain_decode(dm, dg, grid, ctx, wb, kvb)
                link = draft_link_ms(grid, k, g, dg)
            draft_ms = d_step.total_ms
        tpot, _verify_ms, tokens_per_step = spec_decode(
            m, g, grid, ctx, wb, kvb, k, cfg.acceptance, draft_ms, link
        )
        mems["decode"] = mem
        fits = np.atleast_1d(mem.fits)
        if "draft" in mems:
            fits = fits & np.atleast_1d(mems["draft"].fits)
        microbatches = 1
    else:
        g = groups["decode"]
        st, mem = plain_decode(m, g, grid, ctx, wb, kvb)
        mems["decode"] = mem
        tpot = st.total_ms
        fits = np.atleast_1d(mem.fits)
        microbatches = g.pp

    tpot = np.atleast_1d(np.asarray(tpot, dtype=float))
    stall = np.zeros_like(tpot)
    if topo in ("colocated", "spec"):
        # The same chips also prefill: each step stalls for the prompts of the B / O
        # requests that join per step, so at full load TPOT grows by that share.
        stall = grid / cfg.output_tokens * pre_ms
        tpot = tpot + stall

    # ---- choose the batch ----
    ok = fits.copy()
    if cfg.tpot_ms is not None:
        ok &= tpot <= cfg.tpot_ms
    if not ok.any():
        if cfg.tpot_ms is not None and fits.any():
            raise Infeasible(
                f"TPOT {float(tpot[0]):.2f} ms at batch {int(grid[0])} already misses the "
                f"{cfg.tpot_ms:g} ms target on {cfg.hardware} ({topo})"
            )
        raise Infeasible(f"batch {int(grid[0])} does not fit memory on {cfg.hardware}")
    i = int(np.flatnonzero(ok)[-1])
    batch = float(grid[i])
    tpot_i = float(tpot[i])

    # ---- breakdown at the chosen batch ----
    if topo in ("afd", "pd+afd"):
        a_sku, f_sku = groups["decode_attention"].chip.sku, groups["decode_ffn"].chip.sku
        pv = {k: float(np.atleast_1d(v)[i]) for k, v in pieces.items()}
        parts_fn = [
            Part("decode_attention", a_sku, pv["attn"], pv["attn_compute"], pv["attn_memory"], 0.0,
                 "compute" if pv["attn_compute"] >= pv["attn_memory"] else "memory"),
            Part("decode_ffn", f_sku, pv["ffn"], pv["ffn_compute"], pv["ffn_memory"], 0.0,
                 "compute" if pv["ffn_compute"] >= pv["ffn_memory"] else "memory"),
            Part.of("afd_link", f"{a_sku}<->{f_sku}", None, comm_ms=pv["link"]),
        ]  # fmt: skip
    else:
        g = groups["decode"]
        st_i, _ = plain_decode(m, g, np.array([batch]), ctx, wb, kvb)
        parts_fn = decode_breakdown(st_i, g.chip.sku)
        if topo in ("spec", "pd+spec"):
            parts_fn.append(
                Part.of("draft+verify", cfg.draft_hardware or cfg.hardware, None,
                        other_ms=tpot_i * tokens_per_step)
            )  # fmt: skip
    parts_fn.insert(0, Part.of("prefill", pg.chip.sku, _sum_roofline(pre_step),
                               comm_ms=float(np.ravel(pre_step.comm_ms)[0]),
                               other_ms=float(np.ravel(pre_step.overhead_ms)[0])))  # fmt: skip
    if split_prefill:
        parts_fn.insert(1, Part.of("kv_transfer", f"{pg.chip.sku}->{receiver.chip.sku}", None,
                                   comm_ms=handoff))  # fmt: skip

    # ---- TTFT and sustainable prefill rate ----
    overhead = float(pg.chip.request_overhead_ms)
    ttft = pre_ms + handoff + overhead
    rate = util = None
    if cfg.ttft_ms is not None:
        service = pre_ms / pg.pp  # a full pipeline accepts a new prompt every stage time
        util = float(
            queueing.admissible_utilization(
                cfg.ttft_ms, service, cfg.percentile, servers=1, extra_ms=ttft - service
            )
        )
        rate = util * 1000.0 / service
        if util <= 0:
            raise Infeasible(
                f"TTFT {ttft:.1f} ms (prefill {pre_ms:.1f} + KV transfer {handoff:.1f} + "
                f"serving overhead {overhead:.1f}) on "
                f"{pg.chip.sku} misses the {cfg.ttft_ms:g} ms target before any queueing"
            )

    units: dict[str, int] = {}
    for grp in groups.values():
        units[grp.chip.sku] = units.get(grp.chip.sku, 0) + grp.chips
    power = sum(grp.power_w for grp in groups.values())
    tokens_per_s = batch * 1000.0 / tpot_i
    return PerfResult(
        feasible=True,
        reason="",
        config=cfg,
        precision=precision,
        batch=int(batch),
        prefill_ms=pre_ms,
        kv_transfer_ms=handoff,
        request_overhead_ms=overhead,
        ttft_ms=ttft,
        decode_step_ms=tpot_i,
        prefill_stall_ms=float(stall[i]),
        tokens_per_s_per_user=1000.0 / tpot_i,
        tokens_per_s=tokens_per_s,
        decode_requests_per_s=tokens_per_s / cfg.output_tokens,
        prefill_requests_per_s=rate,
        admissible_prefill_utilization=util,
        tokens_per_step=tokens_per_step,
        units=units,
        units_by_role={role: {grp.chip.sku: grp.chips} for role, grp in groups.items()},
        power_w=power,
        parallelism={
            role: f"tp{grp.tp} pp{grp.pp} on {grp.chip.sku}"
            + (f" ({microbatches} micro-batches)" if role == "decode_ffn" else "")
            for role, grp in groups.items()
        },
        breakdown=parts_fn,
        memory=[_mem_report(role, groups[role], mem, i) for role, mem in mems.items()],
        uncalibrated=sorted({grp.chip.sku for grp in groups.values() if not grp.chip.calibrated}),
    )


def _sum_roofline(st: object) -> object:
    """Prefill's three rooflines summed into one for the breakdown line."""
    from planner.perf.roofline import Roofline

    parts = [st.attention, st.ffn, st.lm_head]  # type: ignore[attr-defined]
    return Roofline(
        np.asarray(sum(float(p.compute_ms) for p in parts)),
        np.asarray(sum(float(p.memory_ms) for p in parts)),
    )


def dims_for(catalog: Catalog, model_id: str) -> ModelDims:
    return model_dims(catalog.model(model_id))
