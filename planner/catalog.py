"""Hardware and model catalogs: pydantic schemas and loaders.

Every number in a hardware entry is a `Sourced` value: the number, its source tag (a key of
the entry's `sources` table) and its basis (vendor spec, secondary spec, measurement or
estimate). Model entries hold architecture fields only; parameter counts and KV-cache
sizes are *derived* from them here, never typed in, so a typo in a dimension shows up as a
wrong total in the tests instead of hiding behind a hand-written count.
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
from collections.abc import Iterable
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, TypeVar, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from planner.errors import InputProblem, PlannerInputError
from planner.yamlio import safe_load

# --------------------------------------------------------------------------------------
# Where the shipped data lives
# --------------------------------------------------------------------------------------


def data_dir(name: str) -> Path:
    """Shipped data folder (`catalogs`, `demand`, `solvers`).

    In a wheel the folders are copied to planner/_data/; in a source checkout (editable
    install, or running from the repo) they sit at the repository root.
    """
    packaged = Path(str(importlib.resources.files("planner"))) / "_data" / name
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / name


# --------------------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------------------

Precision = Literal["bf16", "fp8", "fp4", "int8"]
PRECISIONS: tuple[str, ...] = ("bf16", "fp8", "fp4", "int8")
# The math a matmul runs in, which keys a chip's compute efficiency: a precision the chip
# computes in natively, or "w4a16", 4-bit weights dequantized inside 16-bit matmuls, which
# is how engines run FP4 checkpoints on chips without FP4 math (perf.specs.compute_precision).
# W4A16 runs at the 16-bit peak (MATH_PEAK) but has an efficiency of its own: the
# dequantization costs instructions, and measured gpt-oss-120b throughput on H100/H200 is
# far below what dense 16-bit efficiency predicts.
MathPrecision = Literal["bf16", "fp8", "fp4", "int8", "w4a16"]
MATH_PEAK: dict[str, str] = {"w4a16": "bf16"}  # math -> the compute_tflops entry it runs at
MATHS: tuple[str, ...] = get_args(MathPrecision)


def peak_precision(math: str) -> str:
    """The compute_tflops entry a math runs at: itself, or bf16 for W4A16 (MATH_PEAK)."""
    return MATH_PEAK.get(math, math)


# Bytes per element. FP4 weights carry block scales (MXFP4: one E8M0 per 32 values,
# NVFP4: one FP8 per 16): about 4.5 bits, as in ../reference/models.md section 3. The KV
# figure excludes scales, as the reference KV table does.
WEIGHT_BYTES: dict[str, float] = {"bf16": 2.0, "fp8": 1.0, "int8": 1.0, "fp4": 4.5 / 8}
KV_BYTES: dict[str, float] = {"bf16": 2.0, "fp8": 1.0, "int8": 1.0, "fp4": 0.5}


class Basis(StrEnum):
    """How much to trust a number."""

    spec = "spec"  # vendor primary source (datasheet, vendor-maintained file)
    secondary = "secondary"  # reputable compilation or press citing the vendor, unchecked
    measurement = "measurement"  # measured (MLPerf, InferenceX, our own device runs)
    estimate = "estimate"  # analyst figure, model constant or our own estimate


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sourced(Strict):
    """A number with its provenance."""

    value: float
    basis: Basis
    source: str = Field(min_length=1, description="source tag(s) from the entry's `sources`")
    note: str | None = None


def _positive(v: Sourced | None, what: str) -> Sourced | None:
    if v is not None and not v.value > 0:
        raise ValueError(f"{what} must be > 0, got {v.value}")
    return v


# --------------------------------------------------------------------------------------
# Hardware
# --------------------------------------------------------------------------------------

HardwareKind = Literal["gpu", "lpu", "prefill_accelerator", "wafer_scale", "tpu", "asic"]
MemoryKind = Literal["hbm", "gddr", "sram", "dram"]


class MemoryTier(Strict):
    name: str
    kind: MemoryKind
    capacity_gb: Sourced  # per chip, decimal GB
    bandwidth_tb_s: Sourced  # per chip
    # Fraction of capacity a serving engine can use for weights + KV (runtime, fragmentation,
    # activations' workspace). On SRAM parts: the share the compiler can give to weights.
    usable_fraction: Sourced

    @field_validator("capacity_gb", "bandwidth_tb_s")
    @classmethod
    def _pos(cls, v: Sourced) -> Sourced:
        return _positive(v, "memory capacity/bandwidth")  # type: ignore[return-value]

    @field_validator("usable_fraction")
    @classmethod
    def _fraction(cls, v: Sourced) -> Sourced:
        if not 0 < v.value <= 1:
            raise ValueError(f"usable_fraction must be in (0, 1], got {v.value}")
        return v


class ScaleUp(Strict):
    """Scale-up fabric (NVLink, Infinity Fabric, ICI, Groq C2C, on-wafer)."""

    fabric: str
    bandwidth_gb_s: Sourced  # per chip, per direction (unidirectional)
    latency_us: Sourced  # one hop, small message
    domain_chips: Sourced  # chips in one scale-up domain

    @field_validator("bandwidth_gb_s", "latency_us", "domain_chips")
    @classmethod
    def _pos(cls, v: Sourced) -> Sourced:
        return _positive(v, "scale-up figure")  # type: ignore[return-value]


class ScaleOut(Strict):
    """Scale-out network (InfiniBand / Ethernet / vendor fabric) between domains."""

    fabric: str
    bandwidth_gb_s: Sourced  # per chip, per direction
    latency_us: Sourced

    @field_validator("bandwidth_gb_s", "latency_us")
    @classmethod
    def _pos(cls, v: Sourced) -> Sourced:
        return _positive(v, "scale-out figure")  # type: ignore[return-value]


class Power(Strict):
    chip_w: Sourced | None = None  # TDP / board power of one chip
    # All-in IT power per chip at the wall: chip + host CPU, NICs, switches, fans, shelves.
    # Facility overhead (cooling) is *not* included: the planner multiplies by PUE.
    all_in_w_per_chip: Sourced

    @field_validator("chip_w", "all_in_w_per_chip")
    @classmethod
    def _pos(cls, v: Sourced) -> Sourced:
        return _positive(v, "all-in power")  # type: ignore[return-value]


class Purchase(Strict):
    unit_name: str  # "HGX 8-GPU server", "NVL72 rack", "CS-3 system"
    chips_per_unit: int = Field(gt=0)
    price_usd: Sourced | None = None  # per purchase unit; None = cannot be bought
    rent_usd_per_chip_hour: Sourced | None = None  # None = not rentable
    lead_time_days: Sourced | None = None
    lifetime_years: Sourced

    @field_validator("price_usd", "rent_usd_per_chip_hour", "lifetime_years")
    @classmethod
    def _pos(cls, v: Sourced | None) -> Sourced | None:
        return _positive(v, "price/lifetime")

    @field_validator("lead_time_days")
    @classmethod
    def _non_negative(cls, v: Sourced | None) -> Sourced | None:
        if v is not None and v.value < 0:
            raise ValueError(f"lead_time_days must be >= 0, got {v.value}")
        return v


class Efficiency(Strict):
    """Achieved fraction of peak: compute per precision, memory bandwidth.

    These are documented defaults; `planner perf calibrate` fits them to published
    measurements and writes catalogs/calibration.yaml, which overrides them.
    """

    compute: dict[MathPrecision, Sourced]
    bandwidth: Sourced
    # Fixed cost per transformer layer per forward step (kernel launches and syncs on a GPU,
    # the per-layer cycle cost of a spatial SRAM pipeline). None: the perf model uses a
    # documented per-kind default and reports the SKU as uncalibrated.
    layer_overhead_us: Sourced | None = None
    # Achieved / catalog latency of all-reduces and chip-to-chip hops, software included
    # (multiplies scale_up.latency_us and scale_out.latency_us). None: 1.
    comm_latency_scale: Sourced | None = None
    # Time from a request's arrival to its first token that the roofline does not see
    # (HTTP, tokenization, scheduling, first-token emission of the serving stack), added to
    # every TTFT on this SKU as prefill hardware. None: 0 (the bare roofline), which is
    # what a catalog without calibration.yaml gets; the calibration fits it to InferenceX's
    # median TTFTs and gives SKUs without TTFT rows the median over all of them.
    request_overhead_ms: Sourced | None = None

    @model_validator(mode="after")
    def _fractions(self) -> Efficiency:
        if self.layer_overhead_us is not None and self.layer_overhead_us.value < 0:
            raise ValueError(f"layer_overhead_us must be >= 0, got {self.layer_overhead_us.value}")
        if self.request_overhead_ms is not None and self.request_overhead_ms.value < 0:
            raise ValueError(
                f"request_overhead_ms must be >= 0, got {self.request_overhead_ms.value}"
            )
        if self.comm_latency_scale is not None and not self.comm_latency_scale.value > 0:
            raise ValueError(f"comm_latency_scale must be > 0, got {self.comm_latency_scale.value}")
        for name, v in [*self.compute.items(), ("bandwidth", self.bandwidth)]:
            if not 0 < v.value <= 1:
                raise ValueError(f"efficiency {name} must be in (0, 1], got {v.value}")
        return self


class Hardware(Strict):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]*$")]
    name: str
    vendor: str
    kind: HardwareKind
    status: Literal["shipping", "announced", "uncertain"]
    available_from: dt.date
    available_from_source: str
    compute_tflops: dict[Precision, Sourced]  # dense peak per chip
    memory: list[MemoryTier] = Field(min_length=1)
    scale_up: ScaleUp | None = None
    scale_out: ScaleOut | None = None
    power: Power
    purchase: Purchase
    efficiency: Efficiency
    conflicts: list[str] = Field(default_factory=list)  # where sources disagree, said plainly
    notes: str = ""
    sources: dict[str, str] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Hardware:
        # Every source tag used must be listed, so no number is left without provenance.
        unknown = sorted(
            {tag for tag in _source_tags(self) if tag not in self.sources}
            | {t for t in self.available_from_source.split() if t not in self.sources}
        )
        if unknown:
            raise ValueError(
                f"source tag(s) {unknown} are used but not listed in `sources` "
                f"(listed: {sorted(self.sources)})"
            )
        missing = sorted(
            p for p in self.efficiency.compute if peak_precision(p) not in self.compute_tflops
        )
        if missing:
            raise ValueError(f"efficiency.compute has precisions {missing} with no peak TFLOPS")
        for p, v in self.compute_tflops.items():
            if v.value <= 0:
                raise ValueError(f"compute_tflops.{p} must be > 0, got {v.value}")
        return self

    # ---- convenience accessors used by the performance model ----
    @property
    def primary_memory(self) -> MemoryTier:
        """The tier weights and KV live in (the first listed)."""
        return self.memory[0]

    @property
    def is_sram(self) -> bool:
        return self.primary_memory.kind == "sram"

    def peak_tflops(self, precision: str) -> float | None:
        """Dense peak of a precision or math (MathPrecision: W4A16 runs at the bf16 peak)."""
        v = self.compute_tflops.get(peak_precision(precision))  # type: ignore[call-overload]
        return v.value if v is not None else None


def _source_tags(obj: object) -> Iterable[str]:
    """All source tags referenced by Sourced values inside a model, recursively."""
    if isinstance(obj, Sourced):
        yield from obj.source.split()
    elif isinstance(obj, BaseModel):
        for name in type(obj).model_fields:
            yield from _source_tags(getattr(obj, name))
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _source_tags(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _source_tags(v)


# --------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------


class Attention(Strict):
    type: Literal["gqa", "mla"]
    q_heads: int = Field(gt=0)
    # GQA
    kv_heads: int | None = Field(default=None, gt=0)
    head_dim: int | None = Field(default=None, gt=0)
    qkv_bias: bool = False
    # MLA (DeepSeek-V3 style): low-rank q and a compressed KV latent plus a decoupled RoPE key
    q_lora_rank: int | None = Field(default=None, gt=0)
    kv_lora_rank: int | None = Field(default=None, gt=0)
    qk_nope_head_dim: int | None = Field(default=None, gt=0)
    qk_rope_head_dim: int | None = Field(default=None, gt=0)
    v_head_dim: int | None = Field(default=None, gt=0)
    # Sliding-window layers (gpt-oss alternates sliding and full attention)
    sliding_window_tokens: int | None = Field(default=None, gt=0)
    sliding_layers: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _fields_for_type(self) -> Attention:
        need = (
            ["kv_heads", "head_dim"]
            if self.type == "gqa"
            else ["kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"]
        )
        missing = [f for f in need if getattr(self, f) is None]
        if missing:
            raise ValueError(f"{self.type} attention needs {missing}")
        if self.sliding_layers and self.sliding_window_tokens is None:
            raise ValueError("sliding_layers > 0 needs sliding_window_tokens")
        return self


class FFN(Strict):
    gated: bool = True  # SwiGLU: three matrices (gate, up, down)
    dense_layers: int = Field(ge=0)  # layers with a dense FFN
    dense_intermediate: int | None = Field(default=None, gt=0)
    experts: int = Field(default=0, ge=0)  # routed experts per MoE layer
    top_k: int = Field(default=0, ge=0)
    shared_experts: int = Field(default=0, ge=0)
    expert_intermediate: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _moe_fields(self) -> FFN:
        if self.dense_layers and self.dense_intermediate is None:
            raise ValueError("dense_layers > 0 needs dense_intermediate")
        if self.experts:
            if not 0 < self.top_k <= self.experts:
                raise ValueError(f"top_k must be in 1..experts ({self.experts}), got {self.top_k}")
            if self.expert_intermediate is None:
                raise ValueError("experts > 0 needs expert_intermediate")
        return self


class Architecture(Strict):
    layers: int = Field(gt=0)
    hidden: int = Field(gt=0)
    vocab: int = Field(gt=0)
    tied_embeddings: bool = False
    max_context: int = Field(gt=0)
    attention: Attention
    ffn: FFN

    @model_validator(mode="after")
    def _layer_counts(self) -> Architecture:
        if self.ffn.dense_layers > self.layers:
            raise ValueError(f"ffn.dense_layers {self.ffn.dense_layers} > layers {self.layers}")
        if self.ffn.dense_layers < self.layers and not self.ffn.experts:
            raise ValueError(
                f"{self.layers - self.ffn.dense_layers} layers are neither dense nor MoE "
                "(set ffn.dense_layers = layers, or give experts)"
            )
        if self.attention.sliding_layers > self.layers:
            raise ValueError("attention.sliding_layers > layers")
        return self


class PublishedCount(Strict):
    """A published figure the derived counts are tested against."""

    value: float
    source: str
    # What the publisher counted. "active" counts differ: some include the input embedding
    # table (a lookup, no FLOPs), some do not. We state it rather than force one convention.
    convention: Literal["total", "active_with_embeddings", "active_without_input_embedding"]


class DraftHead(Strict):
    """An EAGLE/MTP-style draft head that rides on a target model."""

    fraction_of_target_step: Sourced  # cost of one draft token / one target decode step


class ModelSpec(Strict):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]*$")]
    name: str
    role: Literal["target", "draft", "draft_head"] = "target"
    native_precision: Precision = "bf16"
    architecture: Architecture | None = None  # None only for draft heads
    draft_head: DraftHead | None = None
    published_params_b: list[PublishedCount] = Field(default_factory=list)
    sources: dict[str, str] = Field(min_length=1)
    notes: str = ""

    @model_validator(mode="after")
    def _shape(self) -> ModelSpec:
        if self.role == "draft_head":
            if self.draft_head is None:
                raise ValueError("role draft_head needs a `draft_head` block")
        elif self.architecture is None:
            raise ValueError(f"role {self.role} needs an `architecture` block")
        return self

    @property
    def params(self) -> ParamBreakdown:
        # Cached per architecture, not on the instance: model_copy(update=...) copies the
        # instance __dict__, so a per-instance cache returned the old architecture's counts.
        return _param_breakdown_cached(self._arch())

    def kv_bytes_per_token(self, precision: str = "bf16") -> float:
        """KV bytes per token of context over all *full-attention* layers (no window)."""
        a = self._arch()
        return kv_elements_per_token_per_layer(a) * _full_attention_layers(a) * KV_BYTES[precision]

    def kv_bytes_per_sequence(self, context_tokens: float, precision: str = "bf16") -> float:
        """KV bytes one sequence of `context_tokens` holds; sliding layers keep only the window."""
        a = self._arch()
        per_layer = kv_elements_per_token_per_layer(a) * KV_BYTES[precision]
        full = _full_attention_layers(a) * per_layer * context_tokens
        window = a.attention.sliding_window_tokens or 0
        sliding = a.attention.sliding_layers * per_layer * min(context_tokens, window)
        return full + sliding

    def weight_bytes(self, precision: str = "bf16") -> float:
        return self.params.total * WEIGHT_BYTES[precision]

    def _arch(self) -> Architecture:
        if self.architecture is None:
            raise ValueError(f"{self.id} is a draft head; it has no architecture of its own")
        return self.architecture


class ParamBreakdown(BaseModel):
    """Parameter counts per component, in parameters (not billions)."""

    model_config = ConfigDict(frozen=True)

    attention: float  # all layers: projections, norms, biases
    dense_ffn: float  # all dense-FFN layers
    routed_experts: float  # all routed experts of all MoE layers
    shared_experts: float
    router: float
    embedding: float  # input embedding table
    lm_head: float  # 0 when tied to the embedding
    norms: float
    # Per-token active: routed experts scaled by top_k / experts
    active_routed_experts: float

    @property
    def total(self) -> float:
        return (
            self.attention
            + self.dense_ffn
            + self.routed_experts
            + self.shared_experts
            + self.router
            + self.embedding
            + self.lm_head
            + self.norms
        )

    @property
    def active(self) -> float:
        """Parameters a token multiplies against (input embedding is a lookup, excluded)."""
        head = self.lm_head if self.lm_head else self.embedding  # tied: head reuses the table
        return (
            self.attention
            + self.dense_ffn
            + self.active_routed_experts
            + self.shared_experts
            + self.router
            + head
            + self.norms
        )

    @property
    def active_with_embeddings(self) -> float:
        return self.active + (self.embedding if self.lm_head else 0.0)


def attention_params_per_layer(a: Architecture) -> float:
    at, h = a.attention, a.hidden
    if at.type == "gqa":
        assert at.kv_heads is not None and at.head_dim is not None
        q = h * at.q_heads * at.head_dim
        kv = 2 * h * at.kv_heads * at.head_dim
        o = at.q_heads * at.head_dim * h
        bias = (at.q_heads + 2 * at.kv_heads) * at.head_dim + h if at.qkv_bias else 0
        return q + kv + o + bias
    assert at.kv_lora_rank and at.qk_nope_head_dim and at.qk_rope_head_dim and at.v_head_dim
    qk_head = at.qk_nope_head_dim + at.qk_rope_head_dim
    if at.q_lora_rank:
        q = h * at.q_lora_rank + at.q_lora_rank + at.q_lora_rank * at.q_heads * qk_head
    else:
        q = h * at.q_heads * qk_head
    kv_a = h * (at.kv_lora_rank + at.qk_rope_head_dim) + at.kv_lora_rank
    kv_b = at.kv_lora_rank * at.q_heads * (at.qk_nope_head_dim + at.v_head_dim)
    o = at.q_heads * at.v_head_dim * h
    return q + kv_a + kv_b + o


def ffn_matrices(a: Architecture) -> int:
    return 3 if a.ffn.gated else 2


def param_breakdown(a: Architecture) -> ParamBreakdown:
    f, h, m = a.ffn, a.hidden, ffn_matrices(a)
    moe_layers = a.layers - f.dense_layers
    expert = m * h * (f.expert_intermediate or 0)
    routed = moe_layers * f.experts * expert
    return ParamBreakdown(
        attention=a.layers * attention_params_per_layer(a),
        dense_ffn=f.dense_layers * m * h * (f.dense_intermediate or 0),
        routed_experts=routed,
        shared_experts=moe_layers * f.shared_experts * expert,
        router=moe_layers * h * f.experts,
        embedding=a.vocab * h,
        lm_head=0.0 if a.tied_embeddings else a.vocab * h,
        norms=(2 * a.layers + 1) * h,
        active_routed_experts=routed * (f.top_k / f.experts) if f.experts else 0.0,
    )


_param_breakdown_cached = lru_cache(maxsize=256)(param_breakdown)


def kv_elements_per_token_per_layer(a: Architecture) -> int:
    at = a.attention
    if at.type == "mla":
        # The compressed latent plus the decoupled RoPE key, shared by all heads.
        return int(at.kv_lora_rank or 0) + int(at.qk_rope_head_dim or 0)
    return 2 * int(at.kv_heads or 0) * int(at.head_dim or 0)


def _full_attention_layers(a: Architecture) -> int:
    return a.layers - a.attention.sliding_layers


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------

_T = TypeVar("_T", bound=BaseModel)


class Catalog(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    hardware: dict[str, Hardware]
    models: dict[str, ModelSpec]

    def sku(self, sku_id: str, source: str = "hardware id") -> Hardware:
        if sku_id not in self.hardware:
            from planner.errors import unknown_id

            raise PlannerInputError([unknown_id(source, "", sku_id, self.hardware)])
        return self.hardware[sku_id]

    def model(self, model_id: str, source: str = "model id") -> ModelSpec:
        if model_id not in self.models:
            from planner.errors import unknown_id

            raise PlannerInputError([unknown_id(source, "", model_id, self.models)])
        return self.models[model_id]


def _problems_from_validation(path: Path, err: ValidationError) -> list[InputProblem]:
    out = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        value = e.get("input")
        if e["type"] == "missing":
            value, msg = None, "a value (the field is required)"
        else:
            msg = e["msg"]
            if isinstance(value, dict):  # don't dump whole mappings into the message
                value = "{...}"
        out.append(InputProblem(str(path), f"field {loc}", value, msg))
    return out


def _read_yaml(path: Path) -> tuple[object, list[InputProblem]]:
    try:
        return safe_load(path.read_text()), []
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return None, [InputProblem(str(path), where, "unparseable YAML", f"valid YAML ({exc})")]
    except OSError as exc:
        return None, [InputProblem(str(path), "", str(exc), "a readable file")]


def _load_dir(
    paths: Iterable[Path], schema: type[_T], problems: list[InputProblem]
) -> dict[str, _T]:
    out: dict[str, _T] = {}
    where: dict[str, Path] = {}
    for path in paths:
        raw, errs = _read_yaml(path)
        problems.extend(errs)
        if errs:
            continue
        if not isinstance(raw, dict):
            problems.append(InputProblem(str(path), "", type(raw).__name__, "a YAML mapping"))
            continue
        try:
            item = schema.model_validate(raw)
        except ValidationError as exc:
            problems.extend(_problems_from_validation(path, exc))
            continue
        item_id = item.id  # type: ignore[attr-defined]
        if path.stem != item_id:
            problems.append(
                InputProblem(str(path), "field id", item_id, f"the file name's stem {path.stem!r}")
            )
        if item_id in out:
            problems.append(
                InputProblem(
                    str(path), "field id", item_id, f"an id not already in {where[item_id]}"
                )
            )
        out[item_id] = item
        where[item_id] = path
    return out


def yaml_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.yaml") if not p.name.startswith("_"))


def load_catalog(root: Path | None = None) -> Catalog:
    """Load and validate catalogs/hardware/*.yaml and catalogs/models/*.yaml.

    All problems in all files are collected and raised together.
    """
    root = root or data_dir("catalogs")
    problems: list[InputProblem] = []
    hardware = _load_dir(yaml_files(root / "hardware"), Hardware, problems)
    models = _load_dir(yaml_files(root / "models"), ModelSpec, problems)
    if not hardware and not problems:
        problems.append(InputProblem(str(root / "hardware"), "", "no *.yaml", "hardware entries"))
    if problems:
        raise PlannerInputError(problems)
    catalog = Catalog(hardware=hardware, models=models)
    return apply_calibration(catalog, root / "calibration.yaml")


def validate_paths(paths: Iterable[Path]) -> int:
    """Validate individual catalog files or folders; returns how many entries passed."""
    problems: list[InputProblem] = []
    count = 0
    for path in paths:
        files = yaml_files(path) if path.is_dir() else [path]
        if path.is_dir() and (path / "hardware").is_dir():
            files = yaml_files(path / "hardware") + yaml_files(path / "models")
        for f in files:
            schema: type[BaseModel] = Hardware if f.parent.name == "hardware" else ModelSpec
            if f.parent.name not in ("hardware", "models"):
                raw, _ = _read_yaml(f)
                schema = ModelSpec if isinstance(raw, dict) and "architecture" in raw else Hardware
            count += len(_load_dir([f], schema, problems))
    if problems:
        raise PlannerInputError(problems)
    return count


# --------------------------------------------------------------------------------------
# Calibration overrides
# --------------------------------------------------------------------------------------


class CalibratedEfficiency(Strict):
    compute: dict[MathPrecision, float] = Field(default_factory=dict)
    bandwidth: float | None = None
    layer_overhead_us: float | None = Field(default=None, ge=0)
    comm_latency_scale: float | None = Field(default=None, gt=0)
    rows_used: int = Field(ge=0)
    median_abs_pct_error: float | None = None
    # Fitted from this SKU's own TTFT rows (ttft_rows of them); None: the file's default.
    request_overhead_ms: float | None = Field(default=None, ge=0)
    ttft_rows: int | None = Field(default=None, ge=1)


class RequestOverheadDefault(Strict):
    """The TTFT overhead for SKUs without TTFT rows of their own: the median over all."""

    value_ms: float = Field(ge=0)
    rows: int = Field(ge=1)
    method: str


# What the outputs say of an uncalibrated SKU's efficiency (apply_calibration).
UNMEASURED = (
    "no measurements of their own: efficiency estimated from the measured SKUs "
    "(calibration.yaml pooled; SRAM systems: catalog defaults)"
)


class PooledEfficiency(Strict):
    """What an HBM/GDDR SKU without measurements of its own is assumed to reach: its catalog
    compute and bandwidth fractions scaled as the calibrated SKUs' typically fall short of
    theirs (medians of fitted / default), and their median per-layer overhead.

    Without it an unmeasured SKU kept spec-sheet fractions and a 4 us overhead against
    7-172 us fitted on the measured GPUs, so plans leaned on exactly the SKUs nobody had
    measured."""

    compute_ratio: float = Field(gt=0)
    bandwidth_ratio: float = Field(gt=0)
    layer_overhead_us: float = Field(ge=0)
    skus: int = Field(ge=1)  # calibrated SKUs the medians are over
    method: str


class CalibrationFile(Strict):
    fitted_on: dt.date
    method: str
    data: str  # which measurement file, with its source
    request_overhead: RequestOverheadDefault | None = None
    pooled: PooledEfficiency | None = None
    hardware: dict[str, CalibratedEfficiency]


def load_yaml_model(path: Path, schema: type[_T]) -> _T:
    """One YAML file validated against `schema`; PlannerInputError naming the file, the
    field, the value and what was expected if it cannot be read or does not validate."""
    raw, errs = _read_yaml(path)
    if errs:
        raise PlannerInputError(errs)
    try:
        return schema.model_validate(raw or {})
    except ValidationError as exc:
        raise PlannerInputError(_problems_from_validation(path, exc)) from None


def apply_calibration(catalog: Catalog, path: Path) -> Catalog:
    """Overlay fitted efficiency factors from calibration.yaml (if present) onto the catalog."""
    if not path.is_file():
        return catalog
    cal = load_yaml_model(path, CalibrationFile)
    hardware = dict(catalog.hardware)
    problems = []
    for sku_id in cal.hardware:
        if sku_id not in hardware:
            from planner.errors import unknown_id

            problems.append(unknown_id(str(path), f"hardware.{sku_id}", sku_id, hardware))
    if problems:
        raise PlannerInputError(problems)
    for sku_id, hw in hardware.items():
        fit = cal.hardware.get(sku_id)
        source = {**hw.sources, "CAL": f"{path.name}: {cal.method}"}
        eff = _calibrated_efficiency(hw.efficiency, fit, cal, hw.is_sram)
        if eff is not hw.efficiency:
            hardware[sku_id] = hw.model_copy(update={"efficiency": eff, "sources": source})
    return Catalog(hardware=hardware, models=catalog.models)


def pooled_factors(eff: Efficiency, pooled: PooledEfficiency) -> dict[str, object]:
    """An unmeasured SKU's compute and bandwidth fractions and per-layer overhead from the
    calibrated SKUs' medians (PooledEfficiency), as estimates; a fraction stays <= 1."""
    how = f"no measurements of this SKU: {pooled.method}"

    def scaled(v: Sourced, ratio: float) -> Sourced:
        value = min(1.0, round(v.value * ratio, 4))
        note = f"{how}: catalog {v.value:g} x {ratio:g}"
        return Sourced(value=value, basis=Basis.estimate, source="CAL", note=note)

    return {
        "compute": {p: scaled(v, pooled.compute_ratio) for p, v in eff.compute.items()},
        "bandwidth": scaled(eff.bandwidth, pooled.bandwidth_ratio),
        "layer_overhead_us": Sourced(
            value=pooled.layer_overhead_us, basis=Basis.estimate, source="CAL", note=how
        ),
    }


def _calibrated_efficiency(
    eff: Efficiency, fit: CalibratedEfficiency | None, cal: CalibrationFile, sram: bool
) -> Efficiency:
    """One SKU's efficiency with the file's fitted values over the catalog's (the same
    object back when the file says nothing about it). An HBM/GDDR SKU with no fitted rows
    takes the file's pooled estimate (PooledEfficiency) instead: still uncalibrated, its
    factors are estimates, not measurements."""
    update: dict[str, object] = {}
    if fit is not None:
        tag = f"calibrated {cal.fitted_on}: {fit.rows_used} rows of {cal.data}"

        def measured(value: float, note: str = tag) -> Sourced:
            return Sourced(value=value, basis=Basis.measurement, source="CAL", note=note)

        compute = dict(eff.compute)
        compute.update({p: measured(v) for p, v in fit.compute.items()})
        update["compute"] = compute
        for name in ("bandwidth", "layer_overhead_us", "comm_latency_scale"):
            value = getattr(fit, name)
            if value is not None:
                update[name] = measured(value)
        if fit.request_overhead_ms is not None:
            update["request_overhead_ms"] = measured(
                fit.request_overhead_ms,
                f"calibrated {cal.fitted_on}: median over {fit.ttft_rows} TTFT rows of {cal.data}",
            )
    if (fit is None or fit.rows_used == 0) and cal.pooled is not None and not sram:
        update.update(pooled_factors(eff, cal.pooled))
    default = cal.request_overhead
    if "request_overhead_ms" not in update and default is not None:
        update["request_overhead_ms"] = Sourced(
            value=default.value_ms, basis=Basis.estimate, source="CAL",
            note=f"no TTFT rows for this SKU: {default.method} ({default.rows} rows)",
        )  # fmt: skip
    if not update:
        return eff
    return Efficiency.model_validate({**dict(eff), **update})
