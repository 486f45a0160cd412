"""Calibrate the performance model's per-SKU efficiency factors against published measurements.

The measurements (catalogs/measurements/published.csv: MLPerf Inference, TensorRT-LLM perf
tables, SemiAnalysis InferenceX, vendor single-user speeds) are mapped row by row onto the
planner's own query, `evaluate(ServingConfig, catalog)`, and a few physically meaningful
factors per SKU are fitted so that the model's predictions match:

* achieved fraction of peak compute, per math the SKU's rows run in (a precision, or
  W4A16: fp4 weights dequantized into bf16 matmuls where the chip has no FP4 math),
* achieved fraction of peak memory bandwidth,
* a fixed cost per transformer layer per forward step, in microseconds,
* for SRAM systems only, a scale on chip-to-chip hop and all-reduce latencies.

Never one factor per row. The fit is a bounded, robust (soft-L1) least squares on log errors,
deterministic, with a pull toward the catalog's documented defaults so a factor the data
barely constrains stays near its default. Every fifth run (by a hash of its id) is held out
and reported separately, because the model is judged on measurements not in this file.

Everything here is a pure function of (measurement table, uncalibrated catalog) except
`write_outputs`. The fit evaluates a vectorised replica of `evaluate()` built from the same
phase functions (`Terms`); `check_surrogate` and the tests hold it equal to `evaluate()`, and
every reported error is recomputed through `evaluate()` on the catalog with the fitted file
applied by the normal loader (`apply_calibration`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml
from numpy.typing import NDArray
from scipy.optimize import least_squares

from planner.catalog import (
    MATHS,
    CalibratedEfficiency,
    CalibrationFile,
    Catalog,
    Efficiency,
    Hardware,
    ModelSpec,
    PooledEfficiency,
    RequestOverheadDefault,
    _load_dir,
    apply_calibration,
    data_dir,
    peak_precision,
    pooled_factors,
    yaml_files,
)
from planner.errors import InputProblem, PlannerInputError
from planner.perf.evaluate import PerfResult, ServingConfig, evaluate
from planner.perf.memory import max_batch
from planner.perf.phases import PREFILL_CHUNK_TOKENS, decode_step, prefill
from planner.perf.specs import (
    chip_spec,
    compute_fraction,
    compute_precision,
    kv_bytes_per_elem,
    model_dims,
    weight_bytes_per_param,
)
from planner.perf.topology import place

Array = NDArray[np.float64]

# --------------------------------------------------------------------------------------
# Stated assumptions (named so the report and README can quote them)
# --------------------------------------------------------------------------------------

MEASUREMENTS_CSV = "measurements/published.csv"  # relative to the catalogs folder
# Kernel-level ceilings measured on lent GPUs by benchmarks/device_roofline.py.
DEVICE_CSV = "measurements/device_microbench.csv"
# Decode-shaped products with at most this many rows stream their weights (the measured
# time is flat up to here on H100 and H200): their bytes / time is the decode bandwidth.
STREAM_MAX_ROWS = 64

# MLPerf does not publish mean input lengths. These are our assumptions, used as the
# prompt length of every MLPerf row of the model (the mean output length is published per
# row, or below where a row lacks it):
# * llama2-70b, OpenOrca (GPT-4 answers subset, inputs < 1,024 tokens): a system prompt
#   plus a question, a few hundred tokens; we assume 300. The data agree: with 250-300 the
#   MLPerf rows and the TensorRT-LLM tables (known lengths) on the same GPUs need the same
#   compute fraction; with 600 the MLPerf rows are underpredicted by ~13 % and the tables
#   overpredicted by ~19 %, and the median error rises from ~9 % to ~16 %.
# * llama3.1-405b, the long-context mix (LongBench/RULER/GSM8K/MBPP..., max about 20k
#   input tokens): heavy-tailed; we assume a mean of 9,400.
# * llama3.1-8b, CNN/DailyMail articles to summarise (~780 words): about 1,000 tokens.
# * deepseek-r1, reasoning prompts (max 3,140 input tokens): short questions; we assume 800.
MLPERF_MEAN_ISL: dict[str, int] = {
    "llama-2-70b": 300,
    "llama-3.1-405b": 9400,
    "llama-3.1-8b": 1000,
    "deepseek-v3": 800,
}
# MLPerf output lengths are a dataset's natural spread (reasoning traces are heavy-tailed),
# not fixed: the mean context a generated token sees is prompt + E[O^2] / (2 E[O]), which is
# prompt + mean output for exponential-like lengths. 0.5 would be fixed-length outputs.
MLPERF_CONTEXT_OUTPUT_FRACTION = 1.0
# Mean output lengths where a row does not give one (README of the data; 8B from the
# derived mean OSL of its Offline rows).
MLPERF_MEAN_OSL: dict[str, int] = {
    "llama-2-70b": 294,
    "llama-3.1-405b": 685,
    "llama-3.1-8b": 129,
    "deepseek-v3": 3886,
}
# InferenceX draws each input length uniformly from 80-100 % of the nominal ISL.
INFERENCEX_ISL_FRACTION = 0.9
# Vendor single-user speeds give no lengths: Artificial Analysis' standard prompt is about
# 1,000 tokens; we assume a 500-token answer.
VENDOR_PROMPT_TOKENS = 1000
VENDOR_OUTPUT_TOKENS = 500
# Max-throughput rows (MLPerf Offline, TensorRT-LLM tables) run the largest batch that
# fits KV memory, capped by the engine's batch limit: the submission's gpu_batch_size where
# its notes give one, else TensorRT-LLM's default max_batch_size.
ENGINE_MAX_BATCH = 2048
# InferenceX rows whose own figures disagree on how many GPUs one instance has
# (concurrency x tokens/s/user / tokens/s/GPU) by more than this factor are not used.
GPU_COUNT_TOLERANCE = 1.35

# Fit settings.
HOLDOUT_EVERY = 5  # a run is held out when md5(run id) % 5 == 0
EFF_BOUNDS = (0.15, 1.0)
OVERHEAD_BOUNDS_US = (0.0, 500.0)
# Achieved / catalog latency of all-reduces and chip-to-chip hops (software included).
COMM_LATENCY_SCALE_BOUNDS = (0.25, 100.0)
COMM_SCALE_STARTS = (3.0, 10.0, 30.0)  # extra starting points of the fit (besides 1)
SOFT_L1_SCALE = 0.1  # log-error scale beyond which the loss grows linearly (about 10 %)
# Pull toward the catalog defaults, on log(factor / default): with the soft-L1 loss, moving
# a factor e-fold costs about as much as one row being off by a factor e, so a factor
# moves only when several rows agree. The comm-latency scale multiplies latencies that are
# unsourced estimates on the SRAM parts it is fitted for (and only where rows on one and on
# several devices pin it down), so it has no pull.
PRIOR_WEIGHT = 1.0
PRIOR_WEIGHT_COMM = 0.0
PRIOR_OVERHEAD_SCALE_US = 100.0
MIN_ROWS_PER_FACTOR = 3
# The comm-latency scale is fitted only for SRAM systems, whose single-user speeds are set
# by per-layer cost and chip-to-chip hops, and only when rows on one device (no hops) sit
# next to rows on several, at least this many of each; otherwise it cannot be told apart
# from the per-layer overhead. (On GPUs it was tried: it split the same fixed cost between
# overhead and all-reduce latency differently per SKU without lowering held-out error.)
MIN_ROWS_EACH_SIDE = 2

Metric = Literal[
    "output_tok_s_system",  # output tokens/s of the whole measured system (N instances)
    "output_tok_s_per_chip",  # output tokens/s per GPU
    "tpot_ms",  # time per output token
    "tok_s_per_user",  # 1 / TPOT, single-user speed
    "ttft_ms",  # time to first token (diagnostic only)
]

# --------------------------------------------------------------------------------------
# Name tables
# --------------------------------------------------------------------------------------

# Hardware strings as the sources spell them -> SKU id, or None with the reason.
HARDWARE_NAMES: list[tuple[str, str | None, str]] = [
    (r"^NVIDIA H100[- ]SXM", "h100-sxm", ""),
    (r"^NVIDIA H100-NVL", None, "no catalog SKU: H100 NVL (PCIe card, 94 GB)"),
    (r"^NVIDIA H100-PCIe", None, "no catalog SKU: H100 PCIe"),
    (r"^(Virtualized )?NVIDIA H200[- ]SXM", "h200-sxm", ""),
    (r"^NVIDIA H200-NVL", None, "no catalog SKU: H200 NVL (PCIe card)"),
    (r"^NVIDIA GH200", None, "no catalog SKU: GH200 Grace Hopper"),
    (r"^NVIDIA B200", "b200", ""),
    (r"^NVIDIA GB200", "gb200-nvl72", ""),
    (r"^NVIDIA B300", "b300", ""),
    (r"^NVIDIA GB300", "gb300-nvl72", ""),
    (r"^(AMD )?(Instinct )?MI300X", "mi300x", ""),
    (r"^AMD (Instinct )?MI300X", "mi300x", ""),
    (r"^AMD (Instinct )?MI325X", "mi325x", ""),
    (r"^AMD (Instinct )?MI355X", "mi355x", ""),
    (r"^Cerebras CS-3", "cs-3", ""),
    (r"^Groq LPU", "groq-lpu", ""),
    (r"^SambaNova", None, "no catalog SKU: SambaNova SN40L"),
]

MODEL_NAMES: list[tuple[str, str]] = [
    (r"^Llama-2-70B", "llama-2-70b"),
    (r"^Llama-3\.1-405B", "llama-3.1-405b"),
    (r"^Llama-3\.1-70B", "llama-3.1-70b"),
    (r"^Llama-3\.3-70B", "llama-3.1-70b"),  # same architecture as 3.1 70B
    (r"^Llama-3\.1-8B", "llama-3.1-8b"),
    (r"^DeepSeek-R1", "deepseek-v3"),  # R1 is the DeepSeek-V3 architecture
    (r"^gpt-oss-120b", "gpt-oss-120b"),
    (r"^Qwen3-235B-A22B", "qwen3-235b-a22b"),
    (r"^Kimi-K2", "kimi-k2"),
]

SKU_FAMILY: dict[str, str] = {
    "h100-sxm": "nvidia-hopper",
    "h200-sxm": "nvidia-hopper",
    "b200": "nvidia-blackwell",
    "gb200-nvl72": "nvidia-blackwell",
    "b300": "nvidia-blackwell",
    "gb300-nvl72": "nvidia-blackwell",
    "mi300x": "amd-cdna3",
    "mi325x": "amd-cdna3",
    "mi355x": "amd-cdna4",
    "groq-lpu": "groq-lpu",
    "cs-3": "cerebras-wse",
}


def map_hardware(name: str) -> tuple[str | None, str]:
    """SKU id for a source's hardware string, or (None, why it is not usable)."""
    for pattern, sku, reason in HARDWARE_NAMES:
        if re.search(pattern, name.strip()):
            return sku, reason
    return None, f"no catalog SKU: unrecognised hardware name {name!r}"


def map_model(name: str) -> str | None:
    for pattern, model_id in MODEL_NAMES:
        if re.search(pattern, name.strip()):
            return model_id
    return None


def parse_precision(text: str, sku: str) -> str | None:
    """Weight precision a row ran at, or None when the source leaves it ambiguous.

    v4.1 NVIDIA rows that declare fp16 but ran FP8 say 'FP8' in the column, so FP8 is
    matched before 16-bit. A bare 'fp16' (Dell's v4.1 MI300X rows, same vLLM/ROCm stack and
    the same throughput as AMD's FP8 rows) is ambiguous. Groq's 8-bit path is int8.
    """
    t = text.lower()
    if "fp4" in t:
        return "fp4"
    if "fp8" in t or "8-bit" in t:
        return "int8" if sku == "groq-lpu" else "fp8"
    if "bf16" in t:
        return "bf16"
    if t.strip() == "unknown" and sku == "groq-lpu":
        # The 576-chip Llama-2-70B system only fits the weights at 8 bits (576 x 230 MB).
        return "int8"
    return None


def parse_parallelism(text: str) -> tuple[int | None, int | None] | str:
    """(tp, pp) of one instance; (None, None) when unknown; a reason string when unusable.

    DEPn (attention data-parallel + expert-parallel over n GPUs) and TPn EPm are taken as
    tp = n: the model splits every layer's weights n ways and (for MLA) the KV cache with
    the ranks, which is what DP attention does; expert all-to-all is approximated by the
    tensor-parallel all-reduces.
    """
    t = text.strip()
    if t.startswith("disagg"):
        return "disaggregated prefill/decode run (per-GPU normalisation inconsistent, multi-node wide-EP not modelled)"
    if t == "unknown":
        return (None, None)
    dep = re.search(r"\bDEP(\d+)", t)
    tp = re.search(r"\bTP(\d+)", t)
    pp = re.search(r"\bPP(\d+)", t)
    n = int(dep.group(1)) if dep else int(tp.group(1)) if tp else None
    if n is None:
        return f"unparseable parallelism {t!r}"
    return (n, int(pp.group(1)) if pp else 1)


def run_id(row_id: str) -> str:
    """Rows of one measured run share this id (MLPerf / InferenceX metric suffixes dropped)."""
    return re.sub(r"-(tput|ttft|tpot|intvty|power)$", "", row_id)


def is_holdout(run: str) -> bool:
    return int(hashlib.md5(run.encode()).hexdigest(), 16) % HOLDOUT_EVERY == 0


def source_of(row_id: str) -> str:
    for prefix in ("mlperf", "trtllm", "inferencex", "vendor"):
        if row_id.startswith(prefix):
            return prefix
    return "other"


def _num(text: object) -> float | None:
    try:
        v = float(str(text).replace(",", ""))
    except ValueError:
        return None
    return v if math.isfinite(v) else None


# --------------------------------------------------------------------------------------
# Rows -> cases
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One usable measurement as the planner's own query plus the figure to compare."""

    id: str
    run: str
    source: str
    sku: str
    model: str
    precision: str
    compute_precision: str
    tp: int
    pp: int
    batch: int
    prompt_tokens: int
    output_tokens: int
    metric: Metric
    measured: float  # in the metric's model units (ms, tokens/s)
    instances: float  # instances in the measured system (output_tok_s_system only)
    context: int | None  # mean context while decoding; None: prompt + output / 2
    holdout: bool
    # False: a TTFT row. The efficiency fit does not see it; it fits the SKU's request
    # overhead (fit_request_overheads) and is reported on its own.
    fitted: bool
    note: str = ""

    @property
    def chips(self) -> int:
        return self.tp * self.pp

    @property
    def family(self) -> str:
        return SKU_FAMILY.get(self.sku, self.sku)

    def config(self) -> ServingConfig:
        return ServingConfig(
            model=self.model,
            hardware=self.sku,
            tp=self.tp,
            pp=self.pp,
            batch=self.batch,
            prompt_tokens=self.prompt_tokens,
            output_tokens=self.output_tokens,
            context=self.context,
            precision=self.precision,
        )


@dataclass(frozen=True)
class Exclusion:
    id: str
    reason: str


@dataclass
class _Draft:
    """Fields gathered from a row before placement fixes tp, pp and the batch."""

    row: pd.Series
    sku: str
    model: str
    precision: str
    tp: int | None
    pp: int | None
    prompt_tokens: int
    output_tokens: int
    metric: Metric
    measured: float
    system_chips: int | None  # chips in the measured system (for system-wide metrics)
    batch: int | None  # per instance; None: the largest that fits (capped by batch_cap)
    batch_cap: int = ENGINE_MAX_BATCH
    system_concurrency: float | None = None  # sequences in decode over the whole system
    context: int | None = None  # mean context while decoding (None: prompt + output / 2)
    fitted: bool = True
    notes: list[str] = field(default_factory=list)


def load_measurements(path: Path) -> pd.DataFrame:
    """The measurement table, every column as text (parsing is explicit per column)."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError) as exc:
        raise PlannerInputError([InputProblem(str(path), "", str(exc), "a readable CSV")]) from None
    need = {"id", "model", "precision", "hardware", "count", "parallelism", "concurrency",
            "isl", "osl", "metric", "value", "unit", "source", "notes"}  # fmt: skip
    missing = sorted(need - set(df.columns))
    if missing:
        raise PlannerInputError(
            [InputProblem(str(path), "header", ",".join(df.columns), f"columns {missing}")]
        )
    return df


def duplicate_ids(df: pd.DataFrame) -> set[str]:
    """Rows repeating an earlier row's configuration and value (MLPerf 99 / 99.9 % pairs).

    The two accuracy targets of one submission differ only in the benchmark name inside
    `notes` (llama2-70b-99 vs -99.9); everything else, the value included, is identical.
    """
    norm = df["notes"].str.replace(r"-99(\.9)?\b", "", regex=True)
    keys = ["model", "precision", "hardware", "count", "parallelism", "concurrency", "isl",
            "osl", "metric", "value"]  # fmt: skip
    frame = df[keys].assign(_notes=norm)
    return set(df.loc[frame.duplicated(keep="first"), "id"])


def _mlperf_scenario(row: pd.Series) -> str:
    m = re.search(r"\b(Offline|Server|Interactive);", row["notes"])
    if m:
        return m.group(1)
    c = row["concurrency"].lower()
    return "Offline" if "offline" in c else "Interactive" if "interactive" in c else "Server"


def _draft_row(
    row: pd.Series, by_run: dict[str, pd.DataFrame], catalog: Catalog
) -> _Draft | Exclusion:
    """Everything about a row that does not need placement, or why it is not usable."""
    rid, metric = row["id"], row["metric"]
    src = source_of(rid)
    if metric.startswith("avg_") and "power" in metric:
        return Exclusion(rid, "power measurement (not a performance metric)")
    if metric == "total_throughput_per_gpu":
        return Exclusion(rid, "input+output throughput (the model predicts output tokens/s)")
    if metric == "interactivity_median":
        return Exclusion(rid, "redundant: interactivity = 1000 / tpot_median of the same run")
    sku, why = map_hardware(row["hardware"])
    if sku is None:
        return Exclusion(rid, why)
    if sku not in catalog.hardware:
        return Exclusion(rid, f"SKU {sku} not in the catalog")
    model = map_model(row["model"])
    if model is None or model not in catalog.models:
        return Exclusion(rid, f"no catalog model for {row['model']!r}")
    precision = parse_precision(row["precision"], sku)
    if precision is None:
        return Exclusion(rid, f"precision ambiguous ({row['precision']!r})")
    if model == "gpt-oss-120b" and precision == "fp8":
        # The checkpoint is MXFP4; on Hopper engines run it W4A8 (FP8 math), which is what
        # the model does with fp4 weights on an fp8-only chip.
        precision = "fp4"
    if compute_precision(catalog.hardware[sku], precision) is None:
        return Exclusion(rid, f"{sku} has no compute peak for {precision}")
    if "spec_decode=mtp" in row["notes"]:
        return Exclusion(rid, "MTP speculative decoding on (acceptance rate not published)")
    par = parse_parallelism(row["parallelism"])
    if isinstance(par, str):
        return Exclusion(rid, par)
    tp, pp = par
    count = _num(row["count"])
    notes: list[str] = []

    if src == "mlperf":
        scenario = _mlperf_scenario(row)
        osl = _num(row["osl"]) or MLPERF_MEAN_OSL.get(model)
        isl = MLPERF_MEAN_ISL.get(model)
        if osl is None or isl is None:
            return Exclusion(rid, f"no stated mean ISL/OSL for MLPerf {model}")
        if count is None:
            return Exclusion(rid, "system chip count not given")
        gbs = re.search(r"gpu_batch_size=(\d+)", row["notes"])
        cap = int(gbs.group(1)) if gbs else ENGINE_MAX_BATCH
        if gbs and "attnDP" in row["parallelism"]:
            cap *= tp or 1  # per-rank batch with attention data-parallel
        base = dict(row=row, sku=sku, model=model, precision=precision, tp=tp, pp=pp,
                    prompt_tokens=int(isl), output_tokens=round(osl), system_chips=int(count),
                    batch_cap=cap * (pp or 1),
                    context=round(isl + MLPERF_CONTEXT_OUTPUT_FRACTION * osl))  # fmt: skip
        if metric == "ttft_mean":
            return Exclusion(
                rid, "MLPerf TTFT under Poisson load includes queueing (the model's TTFT has none)"
            )
        if metric == "tpot_mean":
            return Exclusion(
                rid, "redundant: sets the batch of the paired throughput row (Little's law)"
            )
        if metric == "throughput_output_tokens_per_s":
            return _Draft(**base, metric="output_tok_s_system", measured=float(row["value"]),  # type: ignore[arg-type]
                          batch=None)  # fmt: skip
        if metric == "throughput_output_tokens_per_s_at_SLA":
            run = by_run.get(run_id(rid))
            tpot = None
            if run is not None:
                hit = run.loc[run["metric"] == "tpot_mean", "value"]
                tpot = _num(hit.iloc[0]) if len(hit) else None
            if tpot is None:
                return Exclusion(rid, f"{scenario}: no mean TPOT to fix the operating point")
            # Little's law: sequences in decode = output tokens/s x seconds per token.
            concurrency = float(row["value"]) * tpot / 1e3
            return _Draft(**base, metric="output_tok_s_system", measured=float(row["value"]),  # type: ignore[arg-type]
                          batch=None, system_concurrency=concurrency)  # fmt: skip
        return Exclusion(rid, f"unhandled MLPerf metric {metric}")

    if src == "trtllm":
        isl, osl = _num(row["isl"]), _num(row["osl"])
        if isl is None or osl is None:
            return Exclusion(rid, "ISL/OSL not given")
        per_gpu = "per GPU" in row["notes"] or metric.endswith("per_gpu")
        return _Draft(row=row, sku=sku, model=model, precision=precision, tp=tp, pp=pp,
                      prompt_tokens=int(isl), output_tokens=int(osl),
                      metric="output_tok_s_per_chip" if per_gpu else "output_tok_s_system",
                      measured=float(row["value"]), system_chips=int(count) if count else None,
                      batch=None)  # fmt: skip

    if src == "inferencex":
        isl, osl, conc = _num(row["isl"]), _num(row["osl"]), _num(row["concurrency"])
        if isl is None or osl is None or conc is None:
            return Exclusion(rid, "ISL/OSL/concurrency not given")
        run = by_run.get(run_id(rid))
        chips = (tp or 0) * (pp or 1)
        if run is not None and chips:
            vals = {m: _num(v) for m, v in zip(run["metric"], run["value"], strict=True)}
            tput, intv = vals.get("output_throughput_per_gpu"), vals.get("interactivity_median")
            if tput and intv:
                implied = conc * intv / tput
                if not 1 / GPU_COUNT_TOLERANCE <= implied / chips <= GPU_COUNT_TOLERANCE:
                    return Exclusion(
                        rid,
                        "per-GPU normalisation inconsistent with concurrency x tokens/s/user",
                    )
        base = dict(row=row, sku=sku, model=model, precision=precision, tp=tp, pp=pp,
                    prompt_tokens=round(isl * INFERENCEX_ISL_FRACTION), output_tokens=int(osl),
                    system_chips=None, batch=int(conc))  # fmt: skip
        if metric == "output_throughput_per_gpu":
            return _Draft(**base, metric="output_tok_s_per_chip", measured=float(row["value"]))  # type: ignore[arg-type]
        if metric == "tpot_median":
            return _Draft(**base, metric="tpot_ms", measured=float(row["value"]))  # type: ignore[arg-type]
        if metric == "ttft_median":
            return _Draft(**base, metric="ttft_ms", measured=float(row["value"]) * 1e3,  # type: ignore[arg-type]
                          fitted=False)  # fmt: skip
        return Exclusion(rid, f"unhandled InferenceX metric {metric}")

    if src == "vendor":
        if metric != "output_speed_per_user":
            return Exclusion(rid, f"unhandled vendor metric {metric}")
        if "not retrieved" in row["notes"]:
            return Exclusion(rid, "vendor claim known only second-hand (original not retrieved)")
        if tp is not None:
            notes.append("vendor chip count not honoured: placement sized by the model")
        return _Draft(row=row, sku=sku, model=model, precision=precision, tp=None, pp=None,
                      prompt_tokens=VENDOR_PROMPT_TOKENS, output_tokens=VENDOR_OUTPUT_TOKENS,
                      metric="tok_s_per_user", measured=float(row["value"]), system_chips=None,
                      batch=1, notes=notes)  # fmt: skip
    return Exclusion(rid, f"unknown source for id {rid}")


def _place_draft(d: _Draft, catalog: Catalog) -> Case | Exclusion:
    """Fix tp, pp and batch with the model's own placement and memory fit."""
    rid = d.row["id"]
    spec = catalog.models[d.model]
    m = model_dims(spec)
    hw = catalog.hardware[d.sku]
    chip = chip_spec(hw, d.precision)
    wb, kvb = weight_bytes_per_param(d.precision), kv_bytes_per_elem(d.precision)
    domain = max(1, chip.domain_chips)
    if d.tp is not None and d.tp > domain and not chip.is_sram:
        return Exclusion(rid, f"tp={d.tp} exceeds {d.sku}'s scale-up domain ({domain})")
    g = place(m, chip, wb, tp=d.tp, pp=d.pp)
    ctx_max = d.prompt_tokens + d.output_tokens
    limit = float(max_batch(m, chip, ctx_max, g.tp, g.pp, wb, kvb))
    if limit < 1:
        return Exclusion(rid, "model infeasible: weights + one sequence's KV exceed memory")
    notes = list(d.notes)
    if d.system_concurrency is not None:  # Little's law concurrency of the whole system
        if d.system_chips is None or d.system_chips % g.chips:
            return Exclusion(
                rid, f"system of {d.system_chips} chips is not whole instances of {g.chips}"
            )
        batch = max(1, round(d.system_concurrency / (d.system_chips // g.chips)))
        if batch > limit:
            notes.append(f"Little's-law batch {batch} clamped to the KV limit {int(limit)}")
            batch = int(limit)
    elif d.batch is None:
        batch = int(min(limit, d.batch_cap))
    else:
        batch = d.batch
        if batch > limit:
            notes.append(f"concurrency {batch} above the KV limit: running batch {int(limit)}")
            batch = int(limit)
    instances = 1.0
    if d.metric == "output_tok_s_system":
        chips = d.system_chips or g.chips
        if chips % g.chips:
            return Exclusion(rid, f"system of {chips} chips is not whole instances of {g.chips}")
        instances = float(chips // g.chips)
    cp = compute_precision(hw, d.precision)
    assert cp is not None
    run = run_id(rid)
    return Case(
        id=rid, run=run, source=source_of(rid), sku=d.sku, model=d.model,
        precision=d.precision, compute_precision=cp, tp=g.tp, pp=g.pp, batch=batch,
        prompt_tokens=d.prompt_tokens, output_tokens=d.output_tokens, metric=d.metric,
        measured=d.measured, instances=instances, context=d.context, holdout=is_holdout(run),
        fitted=d.fitted,
        note="; ".join(notes),
    )  # fmt: skip


def build_cases(df: pd.DataFrame, catalog: Catalog) -> tuple[list[Case], list[Exclusion]]:
    """Map every row to a case or an exclusion with its reason (none is dropped silently)."""
    dups = duplicate_ids(df)
    by_run = {k: g for k, g in df.groupby(df["id"].map(run_id))}
    cases: list[Case] = []
    excluded: list[Exclusion] = []
    for _, row in df.iterrows():
        rid = row["id"]
        if rid in dups:
            excluded.append(
                Exclusion(rid, "duplicate of an identical row (MLPerf 99 / 99.9 % pair)")
            )
            continue
        value = _num(row["value"])
        if value is None or value <= 0:
            excluded.append(Exclusion(rid, "no positive numeric value"))
            continue
        draft = _draft_row(row, by_run, catalog)
        placed = draft if isinstance(draft, Exclusion) else _place_draft(draft, catalog)
        (excluded if isinstance(placed, Exclusion) else cases).append(placed)  # type: ignore[arg-type]
    return cases, excluded


def exclusion_counts(excluded: list[Exclusion]) -> list[tuple[str, int]]:
    """Exclusions by reason, most frequent first (reasons with a free-text tail grouped)."""
    c = Counter(re.sub(r" \(.*\)$|: unrecognised.*$", "", e.reason) for e in excluded)
    return sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))


# --------------------------------------------------------------------------------------
# Prediction through evaluate()
# --------------------------------------------------------------------------------------


def metric_of(result: PerfResult, case: Case) -> float:
    """The case's metric from a PerfResult, in the measurement's units."""
    if not result.feasible:
        return float("nan")
    match case.metric:
        case "output_tok_s_system":
            return case.instances * result.tokens_per_s
        case "output_tok_s_per_chip":
            return result.tokens_per_s / case.chips
        case "tpot_ms":
            return result.decode_step_ms
        case "tok_s_per_user":
            return result.tokens_per_s_per_user
        case "ttft_ms":
            return result.ttft_ms
    raise ValueError(case.metric)


def predict(case: Case, catalog: Catalog) -> float:
    return metric_of(evaluate(case.config(), catalog), case)


# --------------------------------------------------------------------------------------
# Vectorised replica of evaluate() for the fit
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Terms:
    """Per-case pieces of one SKU's predictions at unit efficiencies and zero overhead.

    A roofline piece takes max(compute_ms / eff_compute, memory_ms / eff_bandwidth); the
    per-layer overhead adds layers x overhead_us per forward step (a prompt pays its token
    share of a prefill pass), and latencies scale with the comm-latency factor.
    Colocated serving then gives TPOT = step(B) + B / O x prefill(S), as in evaluate().
    """

    cp_index: NDArray[np.int64]  # which compute precision (index into `precisions`)
    precisions: tuple[str, ...]
    dec_compute_ms: Array  # (n, 3): attention, FFN, LM head
    dec_memory_ms: Array
    dec_comm_ms: Array  # bandwidth part of the all-reduces and hops
    dec_comm_latency_ms: Array  # latency part, at the catalog latencies
    pre_compute_ms: Array
    pre_memory_ms: Array
    pre_comm_ms: Array
    pre_comm_latency_ms: Array
    pre_passes: Array  # the prompt's token share of forward passes (prompt / chunk tokens)
    layers: Array
    batch: Array
    output_tokens: Array
    metric: tuple[str, ...]
    scale: Array  # instances (system), 1 / chips (per chip), else 1
    request_overhead_ms: Array  # the catalog's, added to TTFT only (it is not fitted here)

    def predict(
        self,
        eff_compute: Array,
        eff_bandwidth: float,
        overhead_us: float,
        comm_latency_scale: float = 1.0,
    ) -> Array:
        ec = np.asarray(eff_compute, dtype=float)[self.cp_index][:, None]
        ov_ms = self.layers * overhead_us / 1e3
        dec = (
            np.maximum(self.dec_compute_ms / ec, self.dec_memory_ms / eff_bandwidth).sum(axis=1)
            + self.dec_comm_ms
            + comm_latency_scale * self.dec_comm_latency_ms
            + ov_ms
        )
        pre = (
            np.maximum(self.pre_compute_ms / ec, self.pre_memory_ms / eff_bandwidth).sum(axis=1)
            + self.pre_comm_ms
            + comm_latency_scale * self.pre_comm_latency_ms
            + self.pre_passes * ov_ms
        )
        tpot = dec + self.batch / self.output_tokens * pre
        out = np.empty_like(tpot)
        for i, kind in enumerate(self.metric):
            if kind in ("output_tok_s_system", "output_tok_s_per_chip"):
                out[i] = self.scale[i] * self.batch[i] * 1e3 / tpot[i]
            elif kind == "tpot_ms":
                out[i] = tpot[i]
            elif kind == "tok_s_per_user":
                out[i] = 1e3 / tpot[i]
            else:  # ttft_ms (colocated: no KV transfer)
                out[i] = pre[i] + self.request_overhead_ms[i]
        return out


def case_terms(cases: list[Case], catalog: Catalog) -> Terms:
    """Build `Terms` for cases of one SKU from the perf model's own phase functions."""
    precisions = tuple(sorted({c.compute_precision for c in cases}))
    n = len(cases)
    dec_c, dec_m, pre_c, pre_m = (np.zeros((n, 3)) for _ in range(4))
    dec_comm, pre_comm, layers = np.zeros(n), np.zeros(n), np.zeros(n)
    dec_lat, pre_lat, req = np.zeros(n), np.zeros(n), np.zeros(n)
    for i, c in enumerate(cases):
        m = model_dims(catalog.models[c.model])
        chip = chip_spec(catalog.hardware[c.sku], c.precision)
        req[i] = chip.request_overhead_ms
        unit = replace(chip, eff_compute=1.0, eff_bandwidth=1.0, layer_overhead_us=0.0)
        no_lat = replace(unit, link_latency_us=0.0, net_latency_us=0.0)
        wb, kvb = weight_bytes_per_param(c.precision), kv_bytes_per_elem(c.precision)
        ctx = c.config().mean_context
        b = np.array([float(c.batch)])
        st = decode_step(m, unit, b, ctx, c.tp, c.pp, wb, kvb)
        pr = prefill(m, unit, c.prompt_tokens, c.tp, c.pp, wb, kvb)
        st0 = decode_step(m, no_lat, b, ctx, c.tp, c.pp, wb, kvb)
        pr0 = prefill(m, no_lat, c.prompt_tokens, c.tp, c.pp, wb, kvb)
        for j, (d, p) in enumerate(
            zip((st.attention, st.ffn, st.lm_head), (pr.attention, pr.ffn, pr.lm_head), strict=True)
        ):
            dec_c[i, j], dec_m[i, j] = _scalar(d.compute_ms), _scalar(d.memory_ms)
            pre_c[i, j], pre_m[i, j] = _scalar(p.compute_ms), _scalar(p.memory_ms)
        dec_comm[i], pre_comm[i] = _scalar(st0.comm_ms), _scalar(pr0.comm_ms)
        dec_lat[i] = _scalar(st.comm_ms) - dec_comm[i]
        pre_lat[i] = _scalar(pr.comm_ms) - pre_comm[i]
        layers[i] = m.layers
    return Terms(
        cp_index=np.array([precisions.index(c.compute_precision) for c in cases], dtype=np.int64),
        precisions=precisions,
        dec_compute_ms=dec_c,
        dec_memory_ms=dec_m,
        dec_comm_ms=dec_comm,
        dec_comm_latency_ms=dec_lat,
        pre_compute_ms=pre_c,
        pre_memory_ms=pre_m,
        pre_comm_ms=pre_comm,
        pre_comm_latency_ms=pre_lat,
        pre_passes=np.array([c.prompt_tokens / PREFILL_CHUNK_TOKENS for c in cases], dtype=float),
        layers=layers,
        batch=np.array([c.batch for c in cases], dtype=float),
        output_tokens=np.array([c.output_tokens for c in cases], dtype=float),
        metric=tuple(c.metric for c in cases),
        scale=np.array([_metric_scale(c) for c in cases]),
        request_overhead_ms=req,
    )


def _scalar(a: object) -> float:
    return float(np.ravel(np.asarray(a, dtype=float))[0])


def _metric_scale(c: Case) -> float:
    if c.metric == "output_tok_s_system":
        return c.instances
    if c.metric == "output_tok_s_per_chip":
        return 1.0 / c.chips
    return 1.0


# --------------------------------------------------------------------------------------
# The fit
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SkuFit:
    sku: str
    compute: dict[str, float]  # fitted compute fraction per compute precision
    bandwidth: float | None
    layer_overhead_us: float | None
    comm_latency_scale: float | None
    rows_fit: int
    defaults: dict[str, float]  # catalog values the fit started from
    sd: dict[str, float]  # approximate 1-sigma (relative for fractions/scales; us for overhead)
    success: bool
    message: str

    @property
    def written(self) -> bool:
        return self.layer_overhead_us is not None


def _defaults(hw: Hardware) -> dict[str, float]:
    from planner.perf.specs import DEFAULT_LAYER_OVERHEAD_US

    eff = hw.efficiency
    ov = eff.layer_overhead_us
    cs = eff.comm_latency_scale
    # Every math the chip has a peak for, at the fraction the perf model uses for it
    # (specs.compute_fraction: W4A16 without its own falls back to bf16's).
    return {
        **{f"compute.{m}": compute_fraction(hw, m).value for m in MATHS if hw.peak_tflops(m)},
        "bandwidth": eff.bandwidth.value,
        "layer_overhead_us": ov.value if ov is not None else DEFAULT_LAYER_OVERHEAD_US[hw.kind],
        "comm_latency_scale": cs.value if cs is not None else 1.0,
    }


def device_ceilings(df: pd.DataFrame, catalog: Catalog) -> dict[str, dict[str, float]]:
    """Per SKU measured on a lent GPU, as fractions of the catalog's peaks:
    `compute.<precision>` the best square matrix product, `bandwidth` the device-to-device
    copy (bytes read + written), `stream_bandwidth` the median decode-shaped product of at
    most STREAM_MAX_ROWS rows (weights streamed once). An end-to-end efficiency above the
    first two would mean a fit absorbing a model error, so the calibration caps at them."""
    unknown = sorted(set(df["sku"].astype(str)) - set(catalog.hardware))
    if unknown:
        raise PlannerInputError(
            [InputProblem(DEVICE_CSV, "column sku", s, "a catalog SKU id") for s in unknown]
        )
    out: dict[str, dict[str, float]] = {}
    for sku, rows in df.groupby("sku", sort=True):
        hw = catalog.hardware[str(sku)]
        spec_tb_s = hw.primary_memory.bandwidth_tb_s.value
        ceil: dict[str, float] = {}
        for prec, g in rows[rows["test"] == "gemm"].groupby("dtype"):
            peak = hw.peak_tflops(str(prec))
            if peak:
                ceil[f"compute.{prec}"] = float(g["tflops"].max()) / peak
        copy = rows[rows["test"] == "copy"]
        if len(copy):
            ceil["bandwidth"] = float(copy["tb_s"].max()) / spec_tb_s
        stream = rows[
            (rows["test"] == "decode_gemm") & (rows["dtype"] == "bf16")
            & (rows["m"] <= STREAM_MAX_ROWS)
        ]  # fmt: skip
        if len(stream):
            ceil["stream_bandwidth"] = float(stream["tb_s"].median()) / spec_tb_s
        out[str(sku)] = ceil
    return out


def load_device_ceilings(catalog: Catalog, path: Path | None = None) -> dict[str, dict[str, float]]:
    path = path or data_dir("catalogs") / DEVICE_CSV
    return device_ceilings(pd.read_csv(path), catalog) if path.exists() else {}


def _peak_key(name: str) -> str:
    """`compute.<math>` -> `compute.<precision whose peak it runs at>` (peak_precision)."""
    kind, _, math_ = name.partition(".")
    return f"{kind}.{peak_precision(math_)}" if kind == "compute" else name


def _bounds(name: str, ceilings: Mapping[str, float] | None = None) -> tuple[float, float]:
    if name == "layer_overhead_us":
        return OVERHEAD_BOUNDS_US
    if name == "comm_latency_scale":
        return COMM_LATENCY_SCALE_BOUNDS
    lo, hi = EFF_BOUNDS
    # A dequantizing matmul (W4A16) cannot beat the plain GEMM at the peak it runs at.
    return lo, min(hi, (ceilings or {}).get(_peak_key(name), hi))


def _prior(name: str, value: float, default: float) -> float:
    if name == "layer_overhead_us":
        return PRIOR_WEIGHT * (value - default) / PRIOR_OVERHEAD_SCALE_US
    if name == "comm_latency_scale":
        return PRIOR_WEIGHT_COMM * math.log(value / default)
    return PRIOR_WEIGHT * math.log(value / default)


def fit_sku(
    sku: str, cases: list[Case], catalog: Catalog, ceilings: Mapping[str, float] | None = None
) -> SkuFit:
    """Fit one SKU's factors to its fitted (non-holdout) cases.

    Which factors are free: the compute fraction of every compute precision with at least
    MIN_ROWS_PER_FACTOR rows, the bandwidth fraction and the per-layer overhead. SRAM parts:
    the overhead, plus the communication-latency scale where rows on one device and on
    several exist; their rows are single-user speeds that compute and bandwidth barely touch.
    `ceilings` (from device_ceilings) caps fractions at what the chip was measured to reach.
    """
    hw = catalog.hardware[sku]
    defaults = _defaults(hw)
    use = [c for c in cases if c.fitted and not c.holdout]
    if len(use) < MIN_ROWS_PER_FACTOR:
        return SkuFit(sku, {}, None, None, None, len(use), defaults, {}, False, "too few rows")
    terms = case_terms(use, catalog)
    counts = Counter(c.compute_precision for c in use)
    multi = sum(c.chips > 1 for c in use)
    names: list[str] = []
    if not hw.is_sram:
        names += [f"compute.{p}" for p in terms.precisions if counts[p] >= MIN_ROWS_PER_FACTOR]
        names.append("bandwidth")
    names.append("layer_overhead_us")
    if hw.is_sram and min(multi, len(use) - multi) >= MIN_ROWS_EACH_SIDE:
        names.append("comm_latency_scale")
    base_comp = np.array([defaults[f"compute.{p}"] for p in terms.precisions])
    measured = np.array([c.measured for c in use], dtype=float)

    # The optimiser works on z: the factor itself, except the comm-latency scale, which
    # spans orders of magnitude and is searched on its logarithm.
    log_z = [n == "comm_latency_scale" for n in names]

    def values(z: Array) -> Array:
        return np.where(log_z, np.exp(z), z)

    def unpack(x: Array) -> tuple[Array, float, float, float]:
        comp = base_comp.copy()
        vals = {k: defaults[k] for k in ("bandwidth", "layer_overhead_us", "comm_latency_scale")}
        for name, v in zip(names, x, strict=True):
            if name.startswith("compute."):
                comp[terms.precisions.index(name.split(".", 1)[1])] = v
            else:
                vals[name] = float(v)
        return comp, vals["bandwidth"], vals["layer_overhead_us"], vals["comm_latency_scale"]

    lo = np.array([_bounds(n, ceilings)[0] for n in names])
    hi = np.array([_bounds(n, ceilings)[1] for n in names])
    x0 = np.clip(np.array([defaults[n] for n in names]), lo, hi)
    prior0 = {n: float(v) for n, v in zip(names, x0, strict=True)}

    def residuals(z: Array) -> Array:
        x = values(z)
        data = np.log(terms.predict(*unpack(x)) / measured)
        prior = [_prior(n, float(v), prior0[n]) for n, v in zip(names, x, strict=True)]
        return np.concatenate([data, np.array(prior)])

    def to_z(x: Array) -> Array:
        return np.where(log_z, np.log(np.where(log_z, x, 1.0)), x)

    z_scale = np.array([10.0 if n == "layer_overhead_us" else 1.0 if lz else 0.1
                        for n, lz in zip(names, log_z, strict=True)])  # fmt: skip
    # Deterministic multi-start over the comm-latency scale (its cost surface has a local
    # minimum near the catalog latency when one row disagrees with the rest).
    starts = [to_z(x0)]
    for c0 in COMM_SCALE_STARTS if any(log_z) else ():
        z = to_z(x0)
        z[log_z.index(True)] = math.log(c0)
        starts.append(z)
    res = min(
        (
            least_squares(residuals, z, bounds=(to_z(lo), to_z(hi)), loss="soft_l1",
                          f_scale=SOFT_L1_SCALE, x_scale=z_scale, method="trf", max_nfev=5000)
            for z in starts
        ),
        key=lambda r: float(r.cost),
    )  # fmt: skip
    x_fit = values(res.x)
    comp, bw, ov, cs = unpack(x_fit)
    # Approximate 1-sigma from the data Jacobian, scaled by the typical residual: relative
    # for fractions and scales, in microseconds for the overhead.
    sd: dict[str, float] = {}
    jac = res.jac[: len(use)]
    sigma2 = float(np.median(np.abs(res.fun[: len(use)]))) ** 2 + 1e-12
    cov = np.linalg.pinv(jac.T @ jac) * sigma2
    for i, n in enumerate(names):
        s = math.sqrt(max(float(cov[i, i]), 0.0))
        sd[n] = s if n == "layer_overhead_us" or log_z[i] else s / max(float(x_fit[i]), 1e-9)
    return SkuFit(
        sku=sku,
        compute={
            n.split(".", 1)[1]: float(comp[terms.precisions.index(n.split(".", 1)[1])])
            for n in names
            if n.startswith("compute.")
        },
        bandwidth=float(bw) if "bandwidth" in names else None,
        layer_overhead_us=float(ov),
        comm_latency_scale=float(cs) if "comm_latency_scale" in names else None,
        rows_fit=len(use),
        defaults=defaults,
        sd=sd,
        success=bool(res.success),
        message=str(res.message),
    )


# --------------------------------------------------------------------------------------
# Request overhead (TTFT)
# --------------------------------------------------------------------------------------

OVERHEAD_METHOD = (
    "median over InferenceX TTFT rows (not held out) of measured median TTFT - the model's "
    "zero-load TTFT without overhead, at least 0"
)


@dataclass(frozen=True)
class OverheadFit:
    """Serving-stack time per request that measured TTFTs show beyond the roofline."""

    per_sku: dict[str, tuple[float, int]]  # SKU -> (overhead ms, rows), SKUs with enough rows
    default_ms: float | None  # over every SKU's rows, for SKUs without their own
    default_rows: int


def fit_request_overheads(cases: list[Case], catalog: Catalog) -> OverheadFit:
    """Per SKU, the median gap between measured TTFT and the model's zero-load TTFT.

    A median, not a least-squares fit: the published TTFTs come from several serving
    stacks and scheduler settings (a few runs wait seconds for their first token at the
    same load where others take 0.1 s), and a median is what one such outlier cannot drag.
    The gap barely moves with concurrency in these rows (the prefill pools of the
    benchmarks are lightly loaded), so it is a per-request latency, not queueing."""
    gaps: dict[str, list[float]] = {}
    for c in cases:
        if c.metric != "ttft_ms" or c.holdout:
            continue
        r = evaluate(c.config(), catalog)
        if r.feasible:
            bare = r.ttft_ms - r.request_overhead_ms
            gaps.setdefault(c.sku, []).append(c.measured - bare)
    per_sku = {
        sku: (max(0.0, float(np.median(g))), len(g))
        for sku, g in sorted(gaps.items())
        if len(g) >= MIN_ROWS_PER_FACTOR
    }
    pooled = [x for g in gaps.values() for x in g]
    return OverheadFit(
        per_sku=per_sku,
        default_ms=max(0.0, float(np.median(pooled))) if pooled else None,
        default_rows=len(pooled),
    )


# --------------------------------------------------------------------------------------
# Errors and summaries
# --------------------------------------------------------------------------------------


def error_table(cases: list[Case], catalog: Catalog) -> pd.DataFrame:
    """Per-case prediction through evaluate() and its error."""
    recs = []
    for c in cases:
        pred = predict(c, catalog)
        ape = abs(pred / c.measured - 1.0) * 100 if math.isfinite(pred) else float("inf")
        recs.append(
            dict(
                id=c.id, run=c.run, source=c.source, sku=c.sku, family=c.family, model=c.model,
                precision=c.precision, tp=c.tp, pp=c.pp, batch=c.batch,
                prompt_tokens=c.prompt_tokens, output_tokens=c.output_tokens, metric=c.metric,
                measured=c.measured, predicted=pred,
                log_error=math.log(pred / c.measured) if math.isfinite(pred) else float("nan"),
                abs_pct_error=ape,
                set=("ttft_" if not c.fitted else "") + ("holdout" if c.holdout else "fit"),
                note=c.note,
            )
        )  # fmt: skip
    return pd.DataFrame.from_records(recs)


def summarize(errors: pd.DataFrame, by: str = "family", prefix: str = "") -> pd.DataFrame:
    """Median and worst absolute % error per group and overall, for fit and held-out rows
    (prefix "ttft_": the TTFT rows, which the efficiency fit does not use)."""
    used = errors[errors["set"].isin([f"{prefix}fit", f"{prefix}holdout"])]
    out = []
    for group, g in [*used.groupby(by), ("ALL", used)]:
        rec: dict[str, object] = {by: group}
        for s in ("fit", "holdout", "all"):
            part = g if s == "all" else g[g["set"] == prefix + s]
            rec[f"n_{s}"] = len(part)
            rec[f"median_ape_{s}"] = (
                float(part["abs_pct_error"].median()) if len(part) else float("nan")
            )
            rec[f"worst_ape_{s}"] = (
                float(part["abs_pct_error"].max()) if len(part) else float("nan")
            )
        out.append(rec)
    return pd.DataFrame.from_records(out)


def median_ape_by_sku(errors: pd.DataFrame) -> dict[str, float]:
    """Median absolute % error of every used (fit + held-out) row, per SKU."""
    used = errors[errors["set"].isin(["fit", "holdout"])]
    return {k: float(g["abs_pct_error"].median()) for k, g in used.groupby("sku")}


# --------------------------------------------------------------------------------------
# Catalog plumbing and the calibration file
# --------------------------------------------------------------------------------------


def load_uncalibrated_catalog(root: Path | None = None) -> Catalog:
    """The catalog as the YAML files state it, without catalogs/calibration.yaml applied."""
    root = root or data_dir("catalogs")
    problems: list[InputProblem] = []
    hardware = _load_dir(yaml_files(root / "hardware"), Hardware, problems)
    models = _load_dir(yaml_files(root / "models"), ModelSpec, problems)
    if problems:
        raise PlannerInputError(problems)
    return Catalog(hardware=hardware, models=models)


METHOD = (
    "scipy least_squares (trf, soft_l1, f_scale 0.1) on log(predicted / measured) through "
    "evaluate(); per SKU: compute fraction per math (a precision, or w4a16: fp4 weights in "
    "bf16 matmuls on chips without FP4 math) and bandwidth fraction in [0.15, 1] "
    f"(capped at the kernel ceilings in {DEVICE_CSV} where measured), "
    "per-layer overhead in [0, 500] us, and for SRAM systems a comm-latency scale; prior "
    "toward catalog defaults (weight 1, none on comm); runs with md5(run id) % 5 == 0 held out. "
    f"request_overhead_ms: {OVERHEAD_METHOD}, per SKU with >= {MIN_ROWS_PER_FACTOR} rows"
)


def calibration_file(
    fits: dict[str, SkuFit], median_ape: dict[str, float], data_label: str, today: dt.date,
    overheads: OverheadFit | None = None, pooled: PooledEfficiency | None = None,
) -> CalibrationFile:  # fmt: skip
    """The CalibrationFile for SKUs that had enough rows (others stay uncalibrated)."""
    hw: dict[str, CalibratedEfficiency] = {}
    own = overheads.per_sku if overheads is not None else {}
    for sku, f in sorted(fits.items()):
        if not f.written and sku not in own:
            continue
        ov, n_ttft = own.get(sku, (None, None))
        hw[sku] = CalibratedEfficiency(
            compute={p: round(v, 4) for p, v in f.compute.items()},  # type: ignore[misc]
            bandwidth=round(f.bandwidth, 4) if f.bandwidth is not None else None,
            layer_overhead_us=(
                round(f.layer_overhead_us, 2) if f.layer_overhead_us is not None else None
            ),
            comm_latency_scale=(
                round(f.comm_latency_scale, 3) if f.comm_latency_scale is not None else None
            ),
            rows_used=f.rows_fit if f.written else 0,
            # Rounded up so a recomputation never exceeds the recorded figure.
            median_abs_pct_error=math.ceil(median_ape[sku] * 10) / 10
            if sku in median_ape
            else None,
            request_overhead_ms=round(ov, 1) if ov is not None else None,
            ttft_rows=n_ttft,
        )
    default = None
    if overheads is not None and overheads.default_ms is not None:
        default = RequestOverheadDefault(
            value_ms=round(overheads.default_ms, 1), rows=overheads.default_rows,
            method=f"{OVERHEAD_METHOD}, pooled over every SKU with TTFT rows",
        )  # fmt: skip
    return CalibrationFile(
        fitted_on=today, method=METHOD, data=data_label, request_overhead=default,
        pooled=pooled, hardware=hw,
    )  # fmt: skip


def calibration_yaml(cal: CalibrationFile, summary: pd.DataFrame | None = None) -> str:
    """The file's text: a provenance header (with the error summary) and the fitted factors."""
    head = [
        "# Fitted by `planner perf calibrate` (planner/calibrate.py) from",
        "# catalogs/measurements/published.csv; see catalogs/measurements/README.md.",
        "# SKUs not listed have no measurements: they keep catalog defaults and every",
        "# output marks them uncalibrated. median_abs_pct_error: over all used rows",
        "# (fit + held out) of that SKU, recomputed through evaluate().",
    ]
    if summary is not None:
        head.append("# Median / worst absolute % error, fit rows | held-out rows:")
        for r in summary.itertuples(index=False):
            head.append(
                f"#   {r[0]:<17} {r.median_ape_fit:5.1f} / {r.worst_ape_fit:6.1f} (n={r.n_fit})"
                f"  |  {r.median_ape_holdout:5.1f} / {r.worst_ape_holdout:6.1f} (n={r.n_holdout})"
            )
    body = cal.model_dump(mode="json", exclude_none=True)
    return "\n".join(head) + "\n" + yaml.safe_dump(body, sort_keys=False, width=100)


# --------------------------------------------------------------------------------------
# The whole pipeline
# --------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------
# SKUs without measurements: the calibrated SKUs' typical shortfall from their defaults
# --------------------------------------------------------------------------------------

POOLED_METHOD = (
    "medians over the calibrated HBM/GDDR SKUs of fitted / catalog compute fraction (native "
    "precisions), fitted / catalog bandwidth fraction, and fitted per-layer overhead"
)
# Fewer calibrated SKUs than this and unmeasured SKUs keep their catalog defaults.
MIN_POOLED_SKUS = 3


def pooled_efficiency(
    fits: Mapping[str, SkuFit], raw: Catalog, exclude: Collection[str] = ()
) -> PooledEfficiency | None:
    """What an unmeasured HBM/GDDR SKU is assumed to reach (catalog.PooledEfficiency), from
    the fitted SKUs other than `exclude`. SRAM systems are left out: their fits are of
    overheads and hop latencies, not of the roofline fractions. W4A16 fractions are left
    out of the compute ratio: they measure dequantization (and one model), not a chip."""
    comp: list[float] = []
    bw: list[float] = []
    overhead: list[float] = []
    for sku, f in sorted(fits.items()):
        if not f.written or sku in exclude or raw.hardware[sku].is_sram:
            continue
        comp += [v / f.defaults[f"compute.{p}"] for p, v in f.compute.items()
                 if peak_precision(p) == p]  # fmt: skip
        if f.bandwidth is not None:
            bw.append(f.bandwidth / f.defaults["bandwidth"])
        overhead.append(float(f.layer_overhead_us))  # type: ignore[arg-type]
    if len(overhead) < MIN_POOLED_SKUS or not comp or not bw:
        return None
    return PooledEfficiency(
        compute_ratio=round(float(np.median(comp)), 4),
        bandwidth_ratio=round(float(np.median(bw)), 4),
        layer_overhead_us=round(float(np.median(overhead)), 2),
        skus=len(overhead),
        method=POOLED_METHOD,
    )


def pooled_cross_check(cases: list[Case], raw: Catalog, fits: Mapping[str, SkuFit]) -> pd.DataFrame:
    """Leave one SKU out: each calibrated HBM/GDDR SKU's throughput and latency rows (fit and
    held out) predicted with its catalog defaults and with the pooled estimate made from the
    *other* SKUs' fits, as if it had never been measured. Whether pooling beats the
    defaults is measured here, not assumed."""
    out = []
    for sku, f in sorted(fits.items()):
        if not f.written or raw.hardware[sku].is_sram:
            continue
        pooled = pooled_efficiency(fits, raw, exclude={sku})
        rows = [c for c in cases if c.sku == sku and c.fitted]
        if pooled is None or not rows:
            continue
        hw = raw.hardware[sku]
        eff = Efficiency.model_validate(
            {**dict(hw.efficiency), **pooled_factors(hw.efficiency, pooled)}
        )
        sources = {**hw.sources, "CAL": POOLED_METHOD}
        unmeasured = hw.model_copy(update={"efficiency": eff, "sources": sources})
        as_pooled = Catalog(hardware={**raw.hardware, sku: unmeasured}, models=raw.models)
        measured = np.array([c.measured for c in rows])
        for label, catalog in (("catalog defaults", raw), ("pooled from the others", as_pooled)):
            log_err = np.log(np.array([predict(c, catalog) for c in rows]) / measured)
            out.append({
                "sku": sku, "estimate": label, "rows": len(rows),
                "median_abs_pct_error": float(np.median(np.abs(np.expm1(log_err))) * 100),
                "rms_log_error": float(np.sqrt(np.mean(log_err**2))),
            })  # fmt: skip
    return pd.DataFrame(out)


@dataclass(frozen=True)
class CalibrationResult:
    cases: list[Case]
    excluded: list[Exclusion]
    fits: dict[str, SkuFit]
    overheads: OverheadFit
    errors_before: pd.DataFrame  # catalog defaults
    errors: pd.DataFrame  # calibrated
    calibration: CalibrationFile
    yaml_text: str
    skus: list[str]  # every catalog SKU (those not in `calibration` stay uncalibrated)
    pooled_check: pd.DataFrame  # pooled_cross_check
    sram: dict[str, bool]  # per catalog SKU: an SRAM system (no pooled estimate)


def calibrate(
    df: pd.DataFrame, raw: Catalog, data_label: str, today: dt.date | None = None
) -> CalibrationResult:
    """Fit every SKU with rows, apply the fit to `raw`, and measure errors through evaluate()."""
    import tempfile

    cases, excluded = build_cases(df, raw)
    by_sku: dict[str, list[Case]] = {}
    for c in cases:
        by_sku.setdefault(c.sku, []).append(c)
    ceilings = load_device_ceilings(raw)
    fits = {sku: fit_sku(sku, cs, raw, ceilings.get(sku)) for sku, cs in sorted(by_sku.items())}
    errors_before = error_table(cases, raw)
    today = today or dt.date.today()

    def applied(cal: CalibrationFile) -> Catalog:  # through the real loader path
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "calibration.yaml"
            path.write_text(calibration_yaml(cal))
            return apply_calibration(raw, path)

    # The request overhead is the TTFT left over once the efficiencies are fitted; the
    # median errors are then computed through the file as written.
    pooled = pooled_efficiency(fits, raw)
    first = calibration_file(fits, {}, data_label, today, pooled=pooled)
    overheads = fit_request_overheads(cases, applied(first))
    draft = calibration_file(fits, {}, data_label, today, overheads, pooled)
    errors = error_table(cases, applied(draft))
    cal = calibration_file(fits, median_ape_by_sku(errors), data_label, today, overheads, pooled)
    return CalibrationResult(
        cases=cases, excluded=excluded, fits=fits, overheads=overheads,
        errors_before=errors_before, errors=errors,
        calibration=cal, yaml_text=calibration_yaml(cal, summarize(errors, "family")),
        skus=sorted(raw.hardware), pooled_check=pooled_cross_check(cases, raw, fits),
        sram={k: h.is_sram for k, h in raw.hardware.items()},
    )  # fmt: skip


def data_label(path: Path) -> str:
    """Which measurement file, with a content hash so the provenance is checkable."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    try:
        shown = str(path.resolve().relative_to(data_dir("catalogs").parent))
    except ValueError:
        shown = str(path)
    return (
        f"{shown} (sha256 {digest}): MLPerf Inference v4.1/v5.1 closed, TensorRT-LLM "
        "perf-overview tables, SemiAnalysis InferenceX, vendor single-user speeds"
    )


def default_data_path() -> Path:
    return data_dir("catalogs") / MEASUREMENTS_CSV


def calibration_path() -> Path:
    """The only file `--write` replaces."""
    return data_dir("catalogs") / "calibration.yaml"


def write_outputs(result: CalibrationResult, out_dir: Path) -> dict[str, Path]:
    """Per-row errors, exclusions, summaries and the proposed calibration.yaml into out_dir
    (a folder the caller created fresh)."""
    paths = {
        "errors": out_dir / "errors.csv",
        "errors_before": out_dir / "errors_uncalibrated.csv",
        "exclusions": out_dir / "exclusions.csv",
        "summary_family": out_dir / "summary_by_family.csv",
        "summary_sku": out_dir / "summary_by_sku.csv",
        "calibration": out_dir / "calibration.yaml",
        "pooled_check": out_dir / "pooled_check.csv",
    }
    result.errors.to_csv(paths["errors"], index=False)
    result.errors_before.to_csv(paths["errors_before"], index=False)
    pd.DataFrame([{"id": e.id, "reason": e.reason} for e in result.excluded]).to_csv(
        paths["exclusions"], index=False
    )
    summarize(result.errors, "family").to_csv(paths["summary_family"], index=False)
    summarize(result.errors, "sku").to_csv(paths["summary_sku"], index=False)
    paths["calibration"].write_text(result.yaml_text)
    result.pooled_check.to_csv(paths["pooled_check"], index=False)
    return paths


def report_lines(result: CalibrationResult) -> list[str]:
    """The figures a person reads: exclusions, factors, errors before and after."""
    n_rows = len(result.cases) + len(result.excluded)
    used = [c for c in result.cases if c.fitted]
    lines = [
        f"rows: {n_rows}; used {len(used)} ({sum(not c.holdout for c in used)} fit, "
        f"{sum(c.holdout for c in used)} held out); diagnostic {len(result.cases) - len(used)}; "
        f"excluded {len(result.excluded)}",
        "",
        "excluded, by reason:",
        *(f"  {n:5d}  {reason}" for reason, n in exclusion_counts(result.excluded)),
        "",
        "fitted factors (catalog default -> fit, approx. 1-sigma):",
    ]
    for sku, f in result.fits.items():
        if not f.written:
            lines.append(f"  {sku:<12} not written ({f.message}, {f.rows_fit} rows)")
            continue
        parts = [f"compute.{p} {f.defaults['compute.' + p]:.2f}->{v:.2f}"
                 for p, v in f.compute.items()]  # fmt: skip
        if f.bandwidth is not None:
            parts.append(f"bandwidth {f.defaults['bandwidth']:.2f}->{f.bandwidth:.2f}")
        parts.append(
            f"overhead {f.defaults['layer_overhead_us']:.0f}->{f.layer_overhead_us:.1f} us"
            f" (+-{f.sd.get('layer_overhead_us', float('nan')):.1f})"
        )
        if f.comm_latency_scale is not None:
            parts.append(f"comm latency x{f.comm_latency_scale:.2f}")
        lines.append(f"  {sku:<12} {f.rows_fit:4d} rows: " + ", ".join(parts))
    for title, table in (("before (catalog defaults)", result.errors_before),
                         ("after calibration", result.errors)):  # fmt: skip
        lines += ["", f"absolute % error {title}: median / worst, fit | held out"]
        for by in ("family", "sku"):
            for r in summarize(table, by).itertuples(index=False):
                lines.append(
                    f"  {r[0]:<17} {r.median_ape_fit:6.1f} / {r.worst_ape_fit:7.1f} (n={r.n_fit:3d})"
                    f"  |  {r.median_ape_holdout:6.1f} / {r.worst_ape_holdout:7.1f} (n={r.n_holdout:3d})"
                )
            if by == "family" and title.startswith("before"):
                break
    lines += ttft_lines(result)
    lines += pooled_lines(result)
    fitted = {k for k, v in result.calibration.hardware.items() if v.rows_used}
    uncal = sorted(set(result.skus) - fitted)
    lines += ["", "uncalibrated (no usable rows; marked in every output): "
              + (", ".join(uncal) or "none")]  # fmt: skip
    if result.calibration.pooled is not None:
        sram = [k for k in uncal if result.sram.get(k)]
        lines.append("  they get the pooled estimate above"
                     + (f", except SRAM systems, which keep catalog defaults: {', '.join(sram)}" if sram else ""))  # fmt: skip
    return lines


def pooled_lines(result: CalibrationResult) -> list[str]:
    """The pooled estimate for unmeasured SKUs and its leave-one-SKU-out check."""
    p = result.calibration.pooled
    if p is None:
        return ["", "no pooled estimate (fewer than "
                f"{MIN_POOLED_SKUS} calibrated HBM/GDDR SKUs): unmeasured SKUs keep catalog defaults"]  # fmt: skip
    lines = [
        "",
        f"unmeasured HBM/GDDR SKUs (pooled over {p.skus} calibrated ones): compute fraction "
        f"x {p.compute_ratio:.3f}, bandwidth fraction x {p.bandwidth_ratio:.3f} of the catalog's, "
        f"per-layer overhead {p.layer_overhead_us:.1f} us",
        "  leave-one-SKU-out check (each calibrated SKU predicted as if unmeasured), "
        "median abs % error / RMS log error:",
    ]
    chk = result.pooled_check
    for sku, g in chk.groupby("sku", sort=True):
        d, q = (
            g[g["estimate"] == e].iloc[0] for e in ("catalog defaults", "pooled from the others")
        )
        lines.append(f"    {sku:<12} defaults {d.median_abs_pct_error:6.1f} % / {d.rms_log_error:.3f}"
                     f"   pooled {q.median_abs_pct_error:6.1f} % / {q.rms_log_error:.3f}  (n={d.rows})")  # fmt: skip
    if len(chk):
        med = chk.groupby("estimate")[["median_abs_pct_error", "rms_log_error"]].median()
        d, q = med.loc["catalog defaults"], med.loc["pooled from the others"]
        lines.append(f"    median over SKUs: defaults {d.median_abs_pct_error:.1f} % / "
                     f"{d.rms_log_error:.3f}, pooled {q.median_abs_pct_error:.1f} % / {q.rms_log_error:.3f}")  # fmt: skip
    return lines


def ttft_lines(result: CalibrationResult) -> list[str]:
    """The request-overhead fit and the TTFT rows' errors without and with it."""
    ov = result.overheads
    if ov.default_ms is None:
        return []
    lines = [
        "",
        f"TTFT: serving overhead per request ({OVERHEAD_METHOD}):",
        *(f"  {sku:<12} {ms:6.1f} ms  ({n} rows)" for sku, (ms, n) in ov.per_sku.items()),
        f"  {'other SKUs':<12} {ov.default_ms:6.1f} ms  (median over all {ov.default_rows} rows)",
        "TTFT absolute % error before (catalog defaults, no overhead) and after calibration:",
        "  median / worst, fit | held out (these rows fit only the overhead)",
    ]
    for title, table in (("before", result.errors_before), ("after", result.errors)):
        r = summarize(table, "family", prefix="ttft_").iloc[-1]
        rows = table[table["set"].str.startswith("ttft_")]
        ratio = float(np.exp(rows["log_error"].median())) if len(rows) else float("nan")
        lines.append(
            f"  {title:<17} {r.median_ape_fit:6.1f} / {r.worst_ape_fit:7.1f} (n={r.n_fit:3d})"
            f"  |  {r.median_ape_holdout:6.1f} / {r.worst_ape_holdout:7.1f} (n={r.n_holdout:3d})"
            f"   median predicted / measured {ratio:.2f}"
        )
    return lines


def check_surrogate(cases: list[Case], catalog: Catalog) -> float:
    """Largest relative difference between `Terms.predict` at the catalog's factors and
    evaluate() over `cases` (the fit's replica must be the model itself)."""
    worst = 0.0
    by_sku: dict[str, list[Case]] = {}
    for c in cases:
        by_sku.setdefault(c.sku, []).append(c)
    for sku, cs in by_sku.items():
        d = _defaults(catalog.hardware[sku])
        t = case_terms(cs, catalog)
        comp = np.array([d[f"compute.{p}"] for p in t.precisions])
        fast = t.predict(comp, d["bandwidth"], d["layer_overhead_us"], d["comm_latency_scale"])
        for c, f in zip(cs, fast, strict=True):
            worst = max(worst, abs(f / predict(c, catalog) - 1.0))
    return worst
