"""How many (configuration x workload) decode + prefill evaluations per second the
vectorized performance model does. Target (issue 3): >= 1e6 per second on 2 cores.

Each evaluation is one decode step time (attention, FFN incl. MoE expert touching, LM head,
TP all-reduces, pipeline hops, per-layer overhead), its memory fit, and one prefill time,
for one (SKU, tp, batch) configuration and one workload shape (prompt, output lengths).

    python benchmarks/perf_throughput.py
"""

from __future__ import annotations

import time

import numpy as np

from planner.catalog import load_catalog
from planner.perf.memory import max_batch
from planner.perf.phases import decode_step, prefill
from planner.perf.specs import chip_spec, kv_bytes_per_elem, model_dims, weight_bytes_per_param


def main() -> None:
    catalog = load_catalog()
    rng = np.random.default_rng(0)
    n_workloads = 200
    prompts = rng.integers(256, 32768, n_workloads).astype(float)
    outputs = rng.integers(64, 2048, n_workloads).astype(float)
    batches = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256, 512], dtype=float)
    tps = [1, 2, 4, 8]
    total = 0
    t0 = time.perf_counter()
    for model_id in [
        "llama-3.1-8b",
        "llama-3.1-70b",
        "deepseek-v3",
        "qwen3-235b-a22b",
        "gpt-oss-120b",
    ]:
        spec = catalog.models[model_id]
        m = model_dims(spec)
        p = "fp8"
        wb, kvb = weight_bytes_per_param(p), kv_bytes_per_elem(p)
        for hw in catalog.hardware.values():
            try:
                chip = chip_spec(hw, p)
            except ValueError:
                continue
            for tp in tps:
                # shape (workloads, batches): one evaluation per element
                ctx = (prompts + outputs / 2)[:, None]
                step = decode_step(m, chip, batches[None, :], ctx, tp, 1, wb, kvb).total_ms
                fits = batches[None, :] <= max_batch(
                    m, chip, (prompts + outputs)[:, None], tp, 1, wb, kvb
                )
                pre = prefill(m, chip, prompts, tp, 1, wb, kvb).total_ms
                assert step.shape == fits.shape == (n_workloads, len(batches)) and pre.shape == (
                    n_workloads,
                )
                total += step.size
    dt = time.perf_counter() - t0
    print(f"evaluations: {total:,} (config x workload) in {dt:.3f} s")
    print(f"rate: {total / dt:,.0f} evaluations per second (target >= 1,000,000)")


if __name__ == "__main__":
    main()
