"""Plain-number views of catalog entries, the only inputs the perf functions take.

The perf functions are numpy arithmetic on these fields, so every field may also be an
array (one element per SKU or per configuration) and results broadcast.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.catalog import (
    KV_BYTES,
    WEIGHT_BYTES,
    Basis,
    Hardware,
    ModelSpec,
    Sourced,
    kv_elements_per_token_per_layer,
    peak_precision,
)

# Fixed per-layer cost of one forward step when the catalog has no calibrated figure
# (estimates; see catalogs/README.md). GPUs: kernel launches and syncs with CUDA graphs,
# a few microseconds per layer. SRAM spatial pipelines: the per-layer cycle cost the
# vendor single-user speeds imply (calibration fits it where measurements exist).
DEFAULT_LAYER_OVERHEAD_US: dict[str, float] = {
    "gpu": 4.0,
    "tpu": 4.0,
    "asic": 6.0,
    "prefill_accelerator": 4.0,
    "lpu": 20.0,
    "wafer_scale": 20.0,
}
ACT_BYTES = 2.0  # activations cross links in bf16
# Attention-score math (Q.K^T and P.V over the cached context) runs in 16-bit in the
# attention kernels engines ship (FlashAttention / FlashMLA class), whatever precision the
# weights are stored and multiplied in; only the projections run at the weights' precision.
ATTENTION_SCORE_PRECISION = "bf16"


@dataclass(frozen=True)
class ModelDims:
    """Architecture numbers the roofline needs, in parameters / elements (not bytes)."""

    layers: int
    hidden: int
    vocab: int
    q_heads: int
    attn_params: float  # all layers
    dense_ffn_params: float  # all dense-FFN layers
    moe_layers: int
    experts: int
    top_k: int
    expert_params: float  # one routed expert of one layer
    shared_params: float  # shared experts of one MoE layer
    router_params: float  # all layers
    lm_head_params: float
    total_params: float
    kv_elems_per_layer: int  # per token
    full_layers: int
    sliding_layers: int
    window_tokens: int
    score_dim: int  # per head per context token: q.k width + v width (2 x head_dim for GQA)
    kv_shard_limit: int  # TP ranks beyond this replicate KV (GQA kv_heads); MLA uses DP-attn

    @property
    def ffn_params(self) -> float:
        return (
            self.dense_ffn_params
            + self.moe_layers * (self.experts * self.expert_params + self.shared_params)
            + self.router_params
        )


def model_dims(spec: ModelSpec) -> ModelDims:
    a = spec.architecture
    if a is None:
        raise ValueError(f"{spec.id} is a draft head and has no architecture")
    p = spec.params
    at, f = a.attention, a.ffn
    moe_layers = a.layers - f.dense_layers
    expert = (3 if f.gated else 2) * a.hidden * (f.expert_intermediate or 0)
    if at.type == "mla":
        score_dim = 2 * int(at.kv_lora_rank or 0) + int(at.qk_rope_head_dim or 0)
        kv_shard = 1 << 30  # engines run DeepSeek attention data-parallel: KV splits with ranks
    else:
        score_dim = 2 * int(at.head_dim or 0)
        kv_shard = int(at.kv_heads or 1)
    return ModelDims(
        layers=a.layers,
        hidden=a.hidden,
        vocab=a.vocab,
        q_heads=at.q_heads,
        attn_params=p.attention + p.norms,
        dense_ffn_params=p.dense_ffn,
        moe_layers=moe_layers,
        experts=f.experts,
        top_k=f.top_k,
        expert_params=float(expert),
        shared_params=float(f.shared_experts * expert),
        router_params=p.router,
        lm_head_params=p.lm_head if p.lm_head else p.embedding,
        total_params=p.total,
        kv_elems_per_layer=kv_elements_per_token_per_layer(a),
        full_layers=a.layers - at.sliding_layers,
        sliding_layers=at.sliding_layers,
        window_tokens=at.sliding_window_tokens or 0,
        score_dim=score_dim,
        kv_shard_limit=kv_shard,
    )


@dataclass(frozen=True)
class ChipSpec:
    """One chip of a SKU at one precision, with achieved-efficiency factors applied."""

    sku: str
    kind: str
    precision: str
    peak_tflops: float
    eff_compute: float
    capacity_gb: float
    usable_fraction: float
    bandwidth_tb_s: float
    eff_bandwidth: float
    link_gb_s: float  # scale-up, per direction
    link_latency_us: float
    domain_chips: int
    net_gb_s: float  # scale-out, per direction
    net_latency_us: float
    layer_overhead_us: float
    all_in_w: float
    is_sram: bool
    calibrated: bool  # efficiency factors fitted to measurements (not defaults)
    attn_peak_tflops: float | None = None  # peak of the attention-score math; None: peak_tflops
    # Serving-stack time in every TTFT with this chip as prefill hardware (arrival to first
    # token, outside the roofline): pure latency, it occupies no prefill capacity.
    request_overhead_ms: float = 0.0

    @property
    def usable_gb(self) -> float:
        return self.capacity_gb * self.usable_fraction

    @property
    def achieved_tflops(self) -> float:
        return self.peak_tflops * self.eff_compute

    @property
    def score_flop_cost(self) -> float:
        """Attention-score FLOPs in units of weight-precision FLOPs (>= 1): they run at the
        16-bit peak, with the same achieved fraction as the matmuls."""
        if self.attn_peak_tflops is None:
            return 1.0
        return max(1.0, self.peak_tflops / self.attn_peak_tflops)

    @property
    def achieved_tb_s(self) -> float:
        return self.bandwidth_tb_s * self.eff_bandwidth


def compute_precision(hw: Hardware, precision: str) -> str | None:
    """The math the matmuls run in (a catalog.MathPrecision): it keys the compute efficiency,
    and its peak (Hardware.peak_tflops) sets the compute roofline.

    Weights stored narrower than the chip's narrowest math are up-converted: the bytes stay
    small, the math runs at a wider peak. FP4 checkpoints on chips without FP4 math run as
    W4A16, weights dequantized into BF16 matmuls, not FP8: TensorRT-LLM runs gpt-oss on
    H100/H200 with OpenAI's Triton MoE kernels (its own MoE backend "is not supported on
    Hopper": NVIDIA/TensorRT-LLM#7101), vLLM's Hopper MXFP4 MoE is "bf16 x mxfp4"
    (vllm-project/vllm#23369, #23696), and Triton's Hopper MXFP4 matmul takes BF16 or FP16
    inputs (triton-lang/triton#11361).
    """
    order = {
        "fp4": ["fp4", "w4a16", "fp8"],
        "fp8": ["fp8", "bf16"],
        "int8": ["int8", "fp8", "bf16"],
    }
    for p in order.get(precision, ["bf16"]):
        if hw.peak_tflops(p) is not None:
            return p
    return None


def compute_fraction(hw: Hardware, math: str) -> Sourced:
    """The achieved fraction of peak of `math` (compute_precision) on `hw`.

    A math without a fraction of its own falls back to the precision whose peak it runs at
    (W4A16 -> bf16: an uncalibrated chip is assumed to dequantize for free, which flatters
    it), then to the chip's first documented precision."""
    compute = hw.efficiency.compute
    for key in (math, peak_precision(math)):
        if key in compute:
            return compute[key]  # type: ignore[index]
    return next(iter(compute.values()))


def chip_spec(hw: Hardware, precision: str) -> ChipSpec:
    cp = compute_precision(hw, precision)
    if cp is None:
        raise ValueError(f"{hw.id} lists no compute peak usable for {precision}")
    mem = hw.primary_memory
    eff = hw.efficiency
    eff_c = compute_fraction(hw, cp)
    su, so = hw.scale_up, hw.scale_out
    overhead = eff.layer_overhead_us
    lat = eff.comm_latency_scale.value if eff.comm_latency_scale is not None else 1.0
    fitted = (eff_c, eff.bandwidth, overhead, eff.comm_latency_scale)
    # Pooled estimates for unmeasured SKUs come from the calibration file too (source CAL),
    # but only a fit to this SKU's own rows (basis measurement) makes it calibrated.
    calibrated = any(
        v is not None and v.source == "CAL" and v.basis == Basis.measurement for v in fitted
    )
    return ChipSpec(
        sku=hw.id,
        kind=hw.kind,
        precision=precision,
        peak_tflops=hw.compute_tflops[peak_precision(cp)].value,  # type: ignore[index]
        eff_compute=eff_c.value,
        capacity_gb=mem.capacity_gb.value,
        usable_fraction=mem.usable_fraction.value,
        bandwidth_tb_s=mem.bandwidth_tb_s.value,
        eff_bandwidth=eff.bandwidth.value,
        link_gb_s=su.bandwidth_gb_s.value if su else (so.bandwidth_gb_s.value if so else 25.0),
        link_latency_us=lat
        * (su.latency_us.value if su else (so.latency_us.value if so else 10.0)),
        domain_chips=int(su.domain_chips.value) if su else 1,
        net_gb_s=so.bandwidth_gb_s.value if so else (su.bandwidth_gb_s.value if su else 25.0),
        net_latency_us=lat * (so.latency_us.value if so else 10.0),
        layer_overhead_us=(
            overhead.value if overhead is not None else DEFAULT_LAYER_OVERHEAD_US[hw.kind]
        ),
        all_in_w=hw.power.all_in_w_per_chip.value,
        is_sram=mem.kind == "sram",
        calibrated=calibrated,
        attn_peak_tflops=hw.peak_tflops(ATTENTION_SCORE_PRECISION),
        request_overhead_ms=eff.request_overhead_ms.value if eff.request_overhead_ms else 0.0,
    )


def weight_bytes_per_param(precision: str) -> float:
    return WEIGHT_BYTES[precision]


def kv_bytes_per_elem(precision: str) -> float:
    """KV cache precision: fp4 weights still keep an fp8 KV cache (what engines ship)."""
    return KV_BYTES["fp8" if precision == "fp4" else precision]
