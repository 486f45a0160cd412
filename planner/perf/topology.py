"""Compose the phase models into serving topologies.

A *group* is a set of chips of one SKU working as one (tp chips per layer, pp stages).
Topologies place phases on groups:

colocated  one group does prefill and decode; decode steps stall for the prefill work that
           arrives meanwhile, so at full load TPOT = step(B) + (B / O) * prefill(S).
pd         a prefill group (any SKU) and a decode group; the KV cache crosses the scale-out
           network, which TTFT pays.
afd        decode attention (+ LM head, KV cache) on an HBM group, decode FFN on another
           SKU's group (SRAM LPUs: chips = FFN weights / usable SRAM); activations cross twice
           per layer. m micro-batches pipeline attention, FFN and link:
           T = (a + f + x) + (m - 1) * max(a, f, x) with a, f, x for B / m sequences.
spec       a draft (model on its own group, or an EAGLE-style head at a fraction of the
           target step) proposes k tokens; the target verifies k + 1 per sequence at once.

All functions take arrays of batch sizes and return arrays, so a caller evaluates a whole
batch grid (and `--batch max`) in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from planner.perf.comm import afd_crossings_ms, kv_transfer_ms, p2p_ms
from planner.perf.memory import MemoryUse, chips_for_weights, max_batch, memory_use
from planner.perf.phases import (
    StepTime,
    attention_decode,
    decode_step,
    ffn_decode,
    kv_bytes_per_seq,
    lm_head,
    prefill,
)
from planner.perf.roofline import Roofline
from planner.perf.specdec import expected_tokens_per_step
from planner.perf.specs import ChipSpec, ModelDims

Array = NDArray[np.float64]


# Share of an SRAM chip's usable capacity a full-model deployment gives to weights; the rest
# holds KV and activations (an estimate). FFN-only SRAM groups (AFD) hold no KV and use 1.0.
SRAM_HEADROOM = 0.9
GPU_HEADROOM = 0.8


class Infeasible(Exception):
    """A placement that cannot work, with the reason a planner can act on."""


@dataclass(frozen=True)
class Group:
    chip: ChipSpec
    tp: int
    pp: int

    @property
    def chips(self) -> int:
        return self.tp * self.pp

    @property
    def power_w(self) -> float:
        return self.chips * self.chip.all_in_w

    @property
    def sku(self) -> str:
        return self.chip.sku

    @property
    def label(self) -> str:
        """`sku:tpN[ppM]`, the hardware part of a candidate's name."""
        return f"{self.sku}:tp{self.tp}" + (f"pp{self.pp}" if self.pp > 1 else "")


def place(
    m: ModelDims,
    chip: ChipSpec,
    w_bytes: float,
    *,
    tp: int | None = None,
    pp: int | None = None,
    params: float | None = None,
    headroom: float | None = None,
) -> Group:
    """Choose tp x pp for holding `params` (default: the whole model) on `chip`.

    GPUs: the smallest power-of-two tp inside the scale-up domain whose memory holds the
    weights with `headroom` left for KV; if the domain is too small, pipeline stages.
    SRAM parts: as many chips as the weights need, tp up to the domain, the rest pipelined.
    An explicit tp (and pp) is checked, not changed.
    """
    params = m.total_params if params is None else params
    if headroom is None:  # GPUs keep 20 % of memory for KV; SRAM parts, see SRAM_HEADROOM
        headroom = SRAM_HEADROOM if chip.is_sram else GPU_HEADROOM
    need = chips_for_weights(params, w_bytes, chip, headroom)
    domain = max(1, chip.domain_chips)
    if tp is not None:
        if tp > domain and not chip.is_sram:
            raise Infeasible(f"tp={tp} exceeds {chip.sku}'s scale-up domain of {domain} chips")
        pp = pp or max(1, -(-need // tp))
        return Group(chip, tp, pp)
    if chip.is_sram:
        t = min(domain, need)
        return Group(chip, t, pp or max(1, -(-need // t)))
    t = 1
    while t < need and t * 2 <= domain:
        t *= 2
    return Group(chip, t, pp or max(1, -(-need // t)))


@dataclass(frozen=True)
class Part:
    """One line of a breakdown: a phase on a SKU, its time and what bounds it."""

    phase: str
    sku: str
    time_ms: float
    compute_ms: float
    memory_ms: float
    comm_ms: float
    bound: str  # compute | memory | communication | overhead

    @staticmethod
    def of(
        phase: str, sku: str, r: Roofline | None, comm_ms: float = 0.0, other_ms: float = 0.0
    ) -> Part:
        c = float(np.ravel(r.compute_ms)[0]) if r is not None else 0.0
        mem = float(np.ravel(r.memory_ms)[0]) if r is not None else 0.0
        t = max(c, mem) + comm_ms + other_ms
        bound = max(
            [("compute", c), ("memory", mem), ("communication", comm_ms), ("overhead", other_ms)],
            key=lambda kv: kv[1],
        )[0]
        return Part(phase, sku, t, c, mem, comm_ms, bound)


def plain_decode(
    m: ModelDims, g: Group, batch: Array, context: float, w_bytes: float, kv_bytes: float
) -> tuple[StepTime, MemoryUse]:
    step = decode_step(m, g.chip, batch, context, g.tp, g.pp, w_bytes, kv_bytes)
    mem = memory_use(m, g.chip, batch, context, g.tp, g.pp, w_bytes, kv_bytes)
    return step, mem


def decode_breakdown(step: StepTime, sku: str, i: int | None = None) -> list[Part]:
    def pick(r: Roofline) -> Roofline:
        if i is None:
            return r
        return Roofline(np.atleast_1d(r.compute_ms)[i], np.atleast_1d(r.memory_ms)[i])

    comm = float(np.atleast_1d(step.comm_ms)[i or 0])
    over = float(np.atleast_1d(step.overhead_ms)[i or 0])
    return [
        Part.of("decode_attention", sku, pick(step.attention)),
        Part.of("decode_ffn", sku, pick(step.ffn)),
        Part.of("lm_head", sku, pick(step.lm_head)),
        Part.of("decode_comm", sku, None, comm_ms=comm),
        Part.of("decode_overhead", sku, None, other_ms=over),
    ]


def afd_decode(
    m: ModelDims,
    attn: Group,
    ffn_g: Group,
    batch: Array,
    context: float,
    w_bytes: float,
    kv_bytes: float,
    microbatches: int,
) -> tuple[Array, dict[str, Array], MemoryUse, MemoryUse]:
    """AFD step time for each batch; returns (step_ms, pieces, attention memory, FFN memory)."""
    mb = float(microbatches)
    b = batch / mb
    a_r = attention_decode(m, attn.chip, 1.0, b / attn.pp, context, attn.tp, w_bytes, kv_bytes)
    h_r = lm_head(m, attn.chip, b, attn.tp, w_bytes)
    a = a_r.time_ms + h_r.time_ms + m.layers * attn.chip.layer_overhead_us / 1e3
    f_r = ffn_decode(m, ffn_g.chip, b, ffn_g.tp, w_bytes)
    f = f_r.time_ms + m.layers * ffn_g.chip.layer_overhead_us / 1e3
    # The two sides meet over the scale-out network: the attention group's NICs in
    # aggregate, at the worse of the two sides' latencies.
    link_gb_s = attn.chip.net_gb_s * attn.chips
    latency = max(attn.chip.net_latency_us, ffn_g.chip.net_latency_us)
    x = afd_crossings_ms(b, m.hidden, m.layers, link_gb_s, latency)
    step = (a + f + x) + (mb - 1.0) * np.maximum(np.maximum(a, f), x)
    attn_params = m.attn_params + m.lm_head_params
    mem_a = memory_use(
        m, attn.chip, batch, context, attn.tp, attn.pp, w_bytes, kv_bytes, attn_params
    )
    mem_f = memory_use(
        m, ffn_g.chip, batch * 0, context, ffn_g.tp, ffn_g.pp, w_bytes, kv_bytes, m.ffn_params
    )
    pieces = {
        "attn_compute": a_r.compute_ms + h_r.compute_ms,
        "attn_memory": a_r.memory_ms + h_r.memory_ms,
        "attn": a,
        "ffn_compute": f_r.compute_ms,
        "ffn_memory": f_r.memory_ms,
        "ffn": f,
        "link": x,
    }
    return step, pieces, mem_a, mem_f


def kv_handoff_ms(
    m: ModelDims, prompt_tokens: float, kv_bytes: float, sender: Group, receiver: Group
) -> float:
    """KV of one prompt from the prefill group to the decode group over scale-out."""
    gb_s = min(sender.chip.net_gb_s * sender.chips, receiver.chip.net_gb_s * receiver.chips)
    latency = max(sender.chip.net_latency_us, receiver.chip.net_latency_us)
    return float(kv_transfer_ms(kv_bytes_per_seq(m, prompt_tokens, kv_bytes), gb_s, latency))


def prefill_ms(
    m: ModelDims, g: Group, prompt_tokens: float, w_bytes: float, kv_bytes: float
) -> tuple[float, StepTime]:
    st = prefill(m, g.chip, prompt_tokens, g.tp, g.pp, w_bytes, kv_bytes)
    return float(st.total_ms), st


def spec_decode(
    target: ModelDims,
    g: Group,
    batch: Array,
    context: float,
    w_bytes: float,
    kv_bytes: float,
    k: int,
    acceptance: float,
    draft_token_ms: Array,
    link_ms: Array | float,
) -> tuple[Array, Array, float]:
    """Effective TPOT and the verify step time for speculative decoding."""
    verify = decode_step(
        target, g.chip, batch, context, g.tp, g.pp, w_bytes, kv_bytes, tokens_per_seq=k + 1
    )
    per_step = float(expected_tokens_per_step(acceptance, k))
    step = k * draft_token_ms + verify.total_ms + link_ms
    return step / per_step, verify.total_ms, per_step


def draft_link_ms(batch: Array, k: int, target: Group, draft: Group) -> Array:
    """Draft tokens to the target and accepted tokens back (tiny messages: latency-bound)."""
    return 2.0 * p2p_ms(
        batch * (k + 1) * 4.0,
        min(target.chip.net_gb_s, draft.chip.net_gb_s),
        max(target.chip.net_latency_us, draft.chip.net_latency_us),
    )


def batch_grid(limit: float) -> Array:
    """Candidate batch sizes 1, 2, 3, 4, 6, 8, 12, 16, ... up to `limit`."""
    out = [1.0]
    b = 2.0
    while b <= limit:
        out.append(b)
        if b * 1.5 <= limit and b >= 2:
            out.append(b * 1.5)
        b *= 2
    return np.unique(np.array(out, dtype=float))


__all__ = [
    "Group",
    "Infeasible",
    "Part",
    "afd_decode",
    "batch_grid",
    "decode_breakdown",
    "draft_link_ms",
    "kv_handoff_ms",
    "max_batch",
    "place",
    "plain_decode",
    "prefill_ms",
    "spec_decode",
]
