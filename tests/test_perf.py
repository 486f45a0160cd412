"""Performance-model properties: physical limits, monotonicity, fit checks, topology sanity."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from planner.catalog import load_catalog
from planner.cli import app
from planner.perf.evaluate import ServingConfig, evaluate
from planner.perf.phases import decode_step, experts_touched, prefill
from planner.perf.specdec import expected_tokens_per_step
from planner.perf.specs import chip_spec, compute_precision, model_dims, weight_bytes_per_param

CATALOG = load_catalog()
GPUS = ["h100-sxm", "h200-sxm", "b200", "mi300x"]
MODELS = ["llama-3.1-8b", "llama-3.1-70b", "deepseek-v3", "qwen3-235b-a22b", "gpt-oss-120b"]


def run(**kw: object):
    return evaluate(ServingConfig(**kw), CATALOG)  # type: ignore[arg-type]


# ---- roofline limits -------------------------------------------------------------------


@pytest.mark.parametrize("sku", GPUS)
@pytest.mark.parametrize("model", MODELS)
def test_decode_never_faster_than_weights_over_peak_bandwidth(sku: str, model: str) -> None:
    spec = CATALOG.models[model]
    precision = spec.native_precision
    r = run(model=model, hardware=sku, batch=1, precision=precision)
    if not r.feasible:
        pytest.skip(r.reason)
    hw = CATALOG.hardware[sku]
    chips = r.units[sku]
    # At batch 1 a step must at least stream the active weights once (MoE: top-k experts).
    active_bytes = spec.params.active * weight_bytes_per_param(precision)
    floor_ms = active_bytes / (chips * hw.primary_memory.bandwidth_tb_s.value * 1e12) * 1e3
    assert r.decode_step_ms >= floor_ms


def test_llama70b_bf16_batch1_h100x8_bound() -> None:
    """The issue's worked bound: 141 GB over 8 x 3.35 TB/s."""
    r = run(model="llama-3.1-70b", hardware="h100-sxm", tp=8, batch=1, precision="bf16")
    assert r.feasible
    assert r.units == {"h100-sxm": 8}
    assert r.decode_step_ms >= 141e9 / (8 * 3.35e12) * 1e3  # 5.26 ms


@pytest.mark.parametrize("sku", GPUS)
@pytest.mark.parametrize("prompt", [128, 2048, 32768])
def test_prefill_never_faster_than_flops_over_peak_compute(sku: str, prompt: int) -> None:
    spec = CATALOG.models["llama-3.1-70b"]
    m = model_dims(spec)
    chip = chip_spec(CATALOG.hardware[sku], "fp8")
    t = prefill(m, chip, prompt, tp=8, pp=1, w_bytes=1.0, kv_bytes=1.0)
    flops = 2 * prompt * spec.params.active
    floor_ms = flops / (8 * chip.peak_tflops * 1e12) * 1e3
    assert float(t.total_ms) >= floor_ms


# ---- monotonicity -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model,sku",
    [("llama-3.1-70b", "h100-sxm"), ("deepseek-v3", "b200"), ("llama-3.1-8b", "mi300x")],
)
def test_throughput_and_tpot_rise_with_batch(model: str, sku: str) -> None:
    spec = CATALOG.models[model]
    m = model_dims(spec)
    p = spec.native_precision
    chip = chip_spec(CATALOG.hardware[sku], p)
    batch = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256], dtype=float)
    step = decode_step(
        m, chip, batch, 2048, tp=8, pp=1, w_bytes=weight_bytes_per_param(p), kv_bytes=1.0
    )
    tpot = step.total_ms
    assert np.all(np.diff(tpot) > 0)
    assert np.all(np.diff(batch / tpot) > 0)


@settings(max_examples=60, deadline=None)
@given(
    e=st.integers(min_value=2, max_value=512),
    data=st.data(),
    tokens=st.integers(min_value=1, max_value=100_000),
)
def test_experts_touched_between_topk_and_e(e: int, data: st.DataObject, tokens: int) -> None:
    k = data.draw(st.integers(min_value=1, max_value=e))
    touched = float(experts_touched(e, k, tokens))
    assert k - 1e-9 <= touched <= e + 1e-9
    assert touched <= tokens * k + 1e-9  # never more experts than token-expert picks


def test_expected_tokens_per_step_limits() -> None:
    assert float(expected_tokens_per_step(0.0, 4)) == pytest.approx(1.0)
    assert float(expected_tokens_per_step(1.0, 4)) == pytest.approx(5.0)
    a = np.linspace(0, 0.99, 50)
    assert np.all(np.diff(expected_tokens_per_step(a, 4)) > 0)


@pytest.mark.parametrize("draft", ["llama-3.2-1b", "eagle-head"])
@pytest.mark.parametrize("batch", [1, 8, 64])
def test_spec_with_zero_acceptance_never_faster(draft: str, batch: int) -> None:
    plain = run(model="llama-3.1-70b", hardware="h100-sxm", tp=8, batch=batch, precision="fp8")
    spec = run(
        model="llama-3.1-70b", hardware="h100-sxm", tp=8, batch=batch, precision="fp8",
        topology="spec", draft_model=draft, acceptance=0.0, draft_tokens=4,
    )  # fmt: skip
    assert plain.feasible and spec.feasible
    assert spec.decode_step_ms >= plain.decode_step_ms


def test_spec_with_high_acceptance_beats_plain_at_small_batch() -> None:
    plain = run(model="llama-3.1-70b", hardware="h100-sxm", tp=8, batch=1, precision="fp8")
    spec = run(
        model="llama-3.1-70b", hardware="h100-sxm", tp=8, batch=1, precision="fp8",
        topology="spec", draft_model="eagle-head", acceptance=0.8, draft_tokens=4,
    )  # fmt: skip
    assert spec.decode_step_ms < plain.decode_step_ms
    assert spec.tokens_per_step == pytest.approx((1 - 0.8**5) / 0.2)


# ---- memory fit ---------------------------------------------------------------------------


def test_70b_bf16_on_one_groq_chip_is_infeasible_naming_sram() -> None:
    r = run(model="llama-3.1-70b", hardware="groq-lpu", tp=1, pp=1, precision="bf16")
    assert not r.feasible
    assert "SRAM" in r.reason and "groq-lpu" in r.reason


def test_sram_deployment_gets_enough_chips_for_weights() -> None:
    r = run(model="llama-3.1-70b", hardware="groq-lpu", precision="fp8")
    assert r.feasible, r.reason
    hw = CATALOG.hardware["groq-lpu"]
    usable_gb = hw.primary_memory.capacity_gb.value * hw.primary_memory.usable_fraction.value
    assert (
        r.units["groq-lpu"] * usable_gb >= CATALOG.models["llama-3.1-70b"].weight_bytes("fp8") / 1e9
    )


def test_batch_max_respects_memory_and_tpot() -> None:
    r = run(
        model="llama-3.1-70b",
        hardware="h100-sxm",
        tp=4,
        batch="max",
        tpot_ms=40,
        precision="fp8",
        prompt_tokens=4096,
    )
    assert r.feasible
    assert r.decode_step_ms <= 40
    assert all(m.fits for m in r.memory)
    # One batch step larger must break either memory or the TPOT target.
    bigger = run(
        model="llama-3.1-70b",
        hardware="h100-sxm",
        tp=4,
        batch=int(r.batch * 1.5) + 1,
        precision="fp8",
        prompt_tokens=4096,
    )
    assert (not bigger.feasible) or bigger.decode_step_ms > 40


def test_h100_memory_is_the_decimal_gb_nvidia_smi_reports() -> None:
    """The performance model counts bytes in decimal (weights are parameters x bytes), so the
    catalog's capacity must be too: an "80 GB" H100 shows 81,559 MiB = 85.52 GB. Read as
    80 decimal GB (the catalog until session 19), Llama-3.1-70B FP8 on one H100 held 3
    sequences of 2,500 tokens where TensorRT-LLM runs about 15-20."""
    capacity = CATALOG.hardware["h100-sxm"].memory[0].capacity_gb.value
    assert capacity == pytest.approx(81_559 * 2**20 / 1e9, abs=0.01)
    # By hand: usable 0.9 x 85.52 = 76.97 GB; weights 70.55 GB (fp8); 6.41 GB left. One
    # sequence: 2,500 tokens x 163,840 B of KV (80 layers x 8 heads x 128 x K,V) = 0.41 GB,
    # plus 131 kB of activations (8,192 x 2 B x 8): 15.66, so 15 fit and 16 do not.
    kw = dict(model="llama-3.1-70b", hardware="h100-sxm", tp=1, pp=1, precision="fp8",
              prompt_tokens=500, output_tokens=2000)  # fmt: skip
    assert run(batch=15, **kw).feasible
    sixteen = run(batch=16, **kw)
    assert not sixteen.feasible and "at most 15 sequences" in sixteen.reason


def test_longer_context_lowers_max_batch() -> None:
    short = run(
        model="llama-3.1-70b",
        hardware="h200-sxm",
        tp=4,
        batch="max",
        precision="fp8",
        prompt_tokens=2048,
    )
    long = run(
        model="llama-3.1-70b",
        hardware="h200-sxm",
        tp=4,
        batch="max",
        precision="fp8",
        prompt_tokens=65536,
    )
    assert long.batch < short.batch


def test_mla_kv_is_small_and_sliding_window_bounds_gptoss() -> None:
    ds = CATALOG.models["deepseek-v3"]
    assert ds.kv_bytes_per_token("bf16") == 61 * 576 * 2
    oss = CATALOG.models["gpt-oss-120b"]
    grow = oss.kv_bytes_per_sequence(200_000) - oss.kv_bytes_per_sequence(100_000)
    assert grow == pytest.approx(100_000 * oss.kv_bytes_per_token("bf16"))


# ---- topologies --------------------------------------------------------------------------


def test_colocated_tpot_includes_prefill_stall_that_pd_avoids() -> None:
    kw = dict(
        model="llama-3.1-70b",
        hardware="h100-sxm",
        tp=8,
        batch=32,
        precision="fp8",
        prompt_tokens=8192,
        output_tokens=256,
    )
    col = run(**kw)
    pd_ = run(**kw, topology="pd")
    assert col.decode_step_ms > pd_.decode_step_ms
    # pd pays the KV transfer in TTFT, colocated does not
    assert pd_.kv_transfer_ms > 0 and col.kv_transfer_ms == 0
    assert pd_.ttft_ms > pd_.prefill_ms


def test_afd_counts_two_link_crossings_per_layer() -> None:
    r = run(
        model="llama-3.1-70b",
        hardware="h100-sxm",
        topology="afd",
        ffn_hardware="lpx",
        tp=8,
        batch=16,
        precision="fp8",
        microbatches=1,
    )
    assert r.feasible, r.reason
    link = next(p for p in r.breakdown if p.phase == "afd_link")
    hw = CATALOG.hardware["h100-sxm"]
    floor = 2 * 80 * hw.scale_out.latency_us.value / 1e3  # 2 x layers x latency at least
    assert link.time_ms >= floor
    assert set(r.units) == {"h100-sxm", "lpx"}


def test_afd_microbatching_never_slower_than_sequential() -> None:
    kw = dict(
        model="llama-3.1-70b",
        hardware="h100-sxm",
        topology="afd",
        ffn_hardware="lpx",
        tp=8,
        batch=64,
        precision="fp8",
    )
    one = run(**kw, microbatches=1)
    best = run(**kw)
    assert best.decode_step_ms <= one.decode_step_ms + 1e-9


def test_ttft_target_gives_sustainable_rate_below_service_rate() -> None:
    r = run(
        model="llama-3.1-70b", hardware="h100-sxm", tp=8, batch=32, precision="fp8", ttft_ms=1000
    )
    assert r.prefill_requests_per_s is not None
    assert 0 < r.prefill_requests_per_s < 1000.0 / r.prefill_ms
    tight = run(
        model="llama-3.1-70b", hardware="h100-sxm", tp=8, batch=32, precision="fp8", ttft_ms=400
    )
    assert (
        tight.prefill_requests_per_s is not None
        and tight.prefill_requests_per_s < r.prefill_requests_per_s
    )


def test_vectorized_equals_scalar() -> None:
    m = model_dims(CATALOG.models["qwen3-235b-a22b"])
    chip = chip_spec(CATALOG.hardware["b200"], "fp8")
    batch = np.array([1.0, 7.0, 64.0])
    ctx = np.array([512.0, 4096.0, 32768.0])
    vec = decode_step(m, chip, batch, ctx, tp=8, pp=1, w_bytes=1.0, kv_bytes=1.0).total_ms
    for i in range(3):
        one = decode_step(m, chip, batch[i], ctx[i], tp=8, pp=1, w_bytes=1.0, kv_bytes=1.0).total_ms
        assert float(one) == pytest.approx(float(vec[i]))


# ---- CLI contract -----------------------------------------------------------------------


def test_cli_perf_json_contract() -> None:
    res = CliRunner().invoke(
        app,
        [
            "perf",
            "--model",
            "llama-3.1-70b",
            "--hardware",
            "h100-sxm",
            "--batch",
            "max",
            "--tpot-ms",
            "40",
            "--ttft-ms",
            "2000",
            "--precision",
            "fp8",
            "--format",
            "json",
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    for key in [
        "feasible",
        "reason",
        "prefill_ms",
        "decode_step_ms",
        "tokens_per_s_per_user",
        "tokens_per_s",
        "units",
        "power_w",
        "breakdown",
        "batch",
        "prefill_requests_per_s",
    ]:
        assert key in data
    assert data["feasible"] is True and data["decode_step_ms"] <= 40
    assert {p["bound"] for p in data["breakdown"]} <= {
        "compute",
        "memory",
        "communication",
        "overhead",
    }


def test_cli_perf_bad_input_exit_2_with_message() -> None:
    res = CliRunner().invoke(app, ["perf", "--model", "llama-3.1-70c", "--hardware", "h100-sxm"])
    assert res.exit_code == 2
    assert "llama-3.1-70b" in res.output  # did-you-mean
    assert "Traceback" not in res.output
    res = CliRunner().invoke(
        app, ["perf", "--model", "llama-3.1-70b", "--hardware", "h100-sxm", "--batch", "lots"]
    )
    assert res.exit_code == 2 and "--batch" in res.output


def test_cli_frontier_writes_png(tmp_path) -> None:
    out = tmp_path / "fr"
    res = CliRunner().invoke(
        app,
        [
            "perf",
            "frontier",
            "--model",
            "llama-3.1-8b",
            "--hardware",
            "h100-sxm",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    png = out / "frontier.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import pandas as pd

    table = pd.read_csv(out / "frontier.csv")
    assert table["on_frontier"].any()
    # per-user speed falls as batch grows, and throughput per MW rises
    t = table.sort_values("batch")
    assert t["tokens_per_s_per_user"].is_monotonic_decreasing
    assert t["tokens_per_s_per_mw"].is_monotonic_increasing


# ---- FP4 checkpoints on chips without FP4 math ------------------------------------------


def test_fp4_weights_without_fp4_math_run_as_w4a16_at_the_bf16_peak() -> None:
    """Engines dequantize FP4 weights into BF16 matmuls where the chip has no FP4 math
    (W4A16), so the roofline's compute side is the bf16 peak at the W4A16 fraction (bf16's
    where the chip has none of its own), while the weights still stream at FP4's bytes."""
    h100, b200, mi300x = (CATALOG.hardware[k] for k in ("h100-sxm", "b200", "mi300x"))
    assert compute_precision(h100, "fp4") == "w4a16"
    assert compute_precision(b200, "fp4") == "fp4"
    assert compute_precision(h100, "fp8") == "fp8"
    h = chip_spec(h100, "fp4")
    assert h.peak_tflops == h100.compute_tflops["bf16"].value
    assert h.eff_compute == h100.efficiency.compute["w4a16"].value  # fitted on gpt-oss rows
    assert h.eff_compute < chip_spec(h100, "fp8").eff_compute
    m = chip_spec(mi300x, "fp4")
    assert "w4a16" not in mi300x.efficiency.compute
    assert (m.peak_tflops, m.eff_compute) == (
        mi300x.compute_tflops["bf16"].value,
        mi300x.efficiency.compute["bf16"].value,
    )
    assert chip_spec(b200, "fp4").peak_tflops == b200.compute_tflops["fp4"].value


def test_w4a16_fraction_slows_fp4_models_only() -> None:
    """Lowering the W4A16 fraction slows gpt-oss prefill on H100 in proportion where it is
    compute-bound, and leaves an FP8 model's prefill on the same chip unchanged."""
    hw = CATALOG.hardware["h100-sxm"]
    w = hw.efficiency.compute["w4a16"]
    halved = hw.efficiency.model_copy(
        update={
            "compute": {
                **hw.efficiency.compute,
                "w4a16": w.model_copy(update={"value": w.value / 2}),
            }
        }
    )
    slow = CATALOG.model_copy(
        update={
            "hardware": {
                **CATALOG.hardware,
                "h100-sxm": hw.model_copy(update={"efficiency": halved}),
            }
        }
    )
    fp4 = dict(
        model="gpt-oss-120b",
        hardware="h100-sxm",
        tp=1,
        batch=8,
        precision="fp4",
        prompt_tokens=8192,
    )
    fp8 = dict(
        model="llama-3.1-70b",
        hardware="h100-sxm",
        tp=2,
        batch=8,
        precision="fp8",
        prompt_tokens=8192,
    )
    a, b = (evaluate(ServingConfig(**fp4), c) for c in (CATALOG, slow))  # type: ignore[arg-type]
    assert a.feasible and b.feasible
    assert b.prefill_ms > 1.5 * a.prefill_ms
    c8, d8 = (evaluate(ServingConfig(**fp8), c) for c in (CATALOG, slow))  # type: ignore[arg-type]
    assert c8.prefill_ms == d8.prefill_ms
