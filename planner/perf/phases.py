"""Per-phase FLOPs, bytes and time: prefill, decode attention, decode FFN, LM head.

All functions are numpy arithmetic, vectorized over batch, context, tensor-parallel degree
and (through `ChipSpec` fields that may be arrays) over SKUs. Conventions:

* A decode *step* advances every sequence of a micro-batch by `tokens_per_seq` tokens
  (1 normally, k + 1 when verifying speculative drafts).
* `tp` chips share every layer (weights, FLOPs and bandwidth divide by tp); `pp` pipeline
  stages split the layers. With pp stages kept busy by pp micro-batches, one token still
  crosses every layer once, so the per-token time is that of the whole model on tp chips
  and the instance holds pp micro-batches in flight.
* MoE: a batch of T tokens touches E * (1 - (1 - k/E)^T) distinct experts per layer on
  average (uniform routing); their weights are read once per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from planner.perf.comm import pipeline_hops_ms, tp_allreduces_ms
from planner.perf.roofline import Roofline, roofline
from planner.perf.specs import ACT_BYTES, ChipSpec, ModelDims

Array = NDArray[np.float64]


def experts_touched(experts: int, top_k: int, tokens: ArrayLike) -> Array:
    """Expected distinct experts a batch of `tokens` routes to (per MoE layer)."""
    t = np.asarray(tokens, dtype=float)
    if experts == 0:
        return np.zeros_like(t)
    return experts * (1.0 - (1.0 - top_k / experts) ** t)


def context_layer_tokens(m: ModelDims, context: ArrayLike) -> Array:
    """Sum over layers of the tokens each layer attends to (sliding layers stop at the window)."""
    c = np.asarray(context, dtype=float)
    return m.full_layers * c + m.sliding_layers * np.minimum(c, m.window_tokens)


def kv_bytes_per_seq(m: ModelDims, context: ArrayLike, kv_bytes: float) -> Array:
    return m.kv_elems_per_layer * context_layer_tokens(m, context) * kv_bytes


@dataclass(frozen=True)
class StepTime:
    """One forward step, split by phase. All times in ms."""

    attention: Roofline
    ffn: Roofline
    lm_head: Roofline
    comm_ms: Array
    overhead_ms: Array

    @property
    def compute_ms(self) -> Array:
        return self.attention.time_ms + self.ffn.time_ms + self.lm_head.time_ms

    @property
    def total_ms(self) -> Array:
        return self.compute_ms + self.comm_ms + self.overhead_ms


def _tp_rates(chip: ChipSpec, tp: ArrayLike) -> tuple[Array, Array]:
    n = np.asarray(tp, dtype=float)
    return n * chip.achieved_tflops, n * chip.achieved_tb_s


def attention_decode(
    m: ModelDims,
    chip: ChipSpec,
    tokens_per_seq: ArrayLike,
    batch: ArrayLike,
    context: ArrayLike,
    tp: ArrayLike,
    w_bytes: float,
    kv_bytes: float,
) -> Roofline:
    """QKV/O projections for the new tokens plus reading every sequence's KV cache once."""
    b = np.asarray(batch, dtype=float)
    q = np.asarray(tokens_per_seq, dtype=float)
    ctx = context_layer_tokens(m, context)
    score = 2.0 * b * q * m.q_heads * m.score_dim * ctx  # runs at the 16-bit peak
    flops = 2.0 * b * q * m.attn_params + score * chip.score_flop_cost
    bytes_ = m.attn_params * w_bytes + b * m.kv_elems_per_layer * ctx * kv_bytes
    tflops, tb_s = _tp_rates(chip, tp)
    return roofline(flops, bytes_, tflops, tb_s)


def ffn_decode(
    m: ModelDims, chip: ChipSpec, tokens: ArrayLike, tp: ArrayLike, w_bytes: float
) -> Roofline:
    """Dense FFN layers plus, for MoE, the experts this step's tokens touch."""
    t = np.asarray(tokens, dtype=float)
    touched = experts_touched(m.experts, m.top_k, t)
    moe_read = m.moe_layers * (touched * m.expert_params + m.shared_params)
    bytes_ = (m.dense_ffn_params + moe_read + m.router_params) * w_bytes
    active = m.dense_ffn_params + m.moe_layers * (m.top_k * m.expert_params + m.shared_params)
    flops = 2.0 * t * (active + m.router_params)
    tflops, tb_s = _tp_rates(chip, tp)
    return roofline(flops, bytes_, tflops, tb_s)


def lm_head(
    m: ModelDims, chip: ChipSpec, tokens: ArrayLike, tp: ArrayLike, w_bytes: float
) -> Roofline:
    t = np.asarray(tokens, dtype=float)
    tflops, tb_s = _tp_rates(chip, tp)
    return roofline(2.0 * t * m.lm_head_params, m.lm_head_params * w_bytes, tflops, tb_s)


def decode_step(
    m: ModelDims,
    chip: ChipSpec,
    batch: ArrayLike,
    context: ArrayLike,
    tp: ArrayLike,
    pp: ArrayLike,
    w_bytes: float,
    kv_bytes: float,
    tokens_per_seq: ArrayLike = 1.0,
) -> StepTime:
    """Time for one decode step of `batch` sequences (split into pp micro-batches)."""
    micro = np.asarray(batch, dtype=float) / np.asarray(pp, dtype=float)
    tokens = micro * np.asarray(tokens_per_seq, dtype=float)
    comm = tp_allreduces_ms(tokens, m.hidden, m.layers, tp, chip.link_gb_s, chip.link_latency_us)
    comm = comm + pipeline_hops_ms(tokens, m.hidden, pp, chip.net_gb_s, chip.net_latency_us)
    overhead = np.full_like(np.asarray(comm, dtype=float), m.layers * chip.layer_overhead_us / 1e3)
    return StepTime(
        attention=attention_decode(m, chip, tokens_per_seq, micro, context, tp, w_bytes, kv_bytes),
        ffn=ffn_decode(m, chip, tokens, tp, w_bytes),
        lm_head=lm_head(m, chip, tokens, tp, w_bytes),
        comm_ms=comm,
        overhead_ms=overhead,
    )


# Prefill runs requests through the model in chunks of about this many tokens (chunked /
# batched prefill in vLLM, SGLang, TensorRT-LLM): weights are read once per chunk, so a
# request of S tokens pays S / chunk of a full weight read. An engine setting, stated here.
PREFILL_CHUNK_TOKENS = 8192


def prefill(
    m: ModelDims,
    chip: ChipSpec,
    prompt_tokens: ArrayLike,
    tp: ArrayLike,
    pp: ArrayLike,
    w_bytes: float,
    kv_bytes: float,
    chunk_tokens: int = PREFILL_CHUNK_TOKENS,
) -> StepTime:
    """Time to prefill one request of `prompt_tokens` tokens (its latency through all stages)."""
    s = np.asarray(prompt_tokens, dtype=float)
    share = s / chunk_tokens  # fraction of a full weight read this request pays for
    tflops, tb_s = _tp_rates(chip, tp)
    # Causal self-attention over the prompt: each token attends to the ones before it.
    causal = m.full_layers * s * s / 2.0 + m.sliding_layers * s * np.minimum(s, m.window_tokens)
    attn = roofline(
        2.0 * s * m.attn_params + 2.0 * m.q_heads * m.score_dim * causal * chip.score_flop_cost,
        m.attn_params * w_bytes * share
        + s * m.kv_elems_per_layer * (m.full_layers + m.sliding_layers) * kv_bytes,
        tflops,
        tb_s,
    )
    touched = experts_touched(m.experts, m.top_k, chunk_tokens)
    ffn_bytes = (
        m.dense_ffn_params + m.moe_layers * (touched * m.expert_params + m.shared_params)
    ) * w_bytes
    active = m.dense_ffn_params + m.moe_layers * (m.top_k * m.expert_params + m.shared_params)
    ffn = roofline(2.0 * s * (active + m.router_params), ffn_bytes * share, tflops, tb_s)
    head = roofline(2.0 * m.lm_head_params, m.lm_head_params * w_bytes * share, tflops, tb_s)
    # Fixed costs of a forward pass (per-layer overhead, all-reduce and hop latencies) are
    # paid once per chunk, which the engine fills with other requests' tokens: a request
    # pays its token share of them, as of the weight read. (A lone short prompt at zero load
    # waits a whole pass: its TTFT is understated by at most one pass's fixed costs.)
    link_lat, net_lat = chip.link_latency_us * share, chip.net_latency_us * share
    comm = tp_allreduces_ms(s, m.hidden, m.layers, tp, chip.link_gb_s, link_lat)
    comm = comm + pipeline_hops_ms(s, m.hidden, pp, chip.net_gb_s, net_lat, ACT_BYTES)
    overhead = share * m.layers * chip.layer_overhead_us / 1e3
    return StepTime(attention=attn, ffn=ffn, lm_head=head, comm_ms=comm, overhead_ms=overhead)
