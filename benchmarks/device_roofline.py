"""Measure a GPU's achieved matrix throughput and memory bandwidth (needs PyTorch and CUDA).

    python3 benchmarks/device_roofline.py --sku h100-sxm [--out results.csv]

Not part of the product or its tests: the catalog's efficiency factors for H100 and H200 are
checked against what this script measured on a lent machine, and the rows it wrote are kept in
catalogs/measurements/device_microbench.csv with the date and software they were taken with.

What it times (CUDA events around each call, after warm-up; the median of the repeats; random
inputs, never zeros, which run faster):
  gemm        square bf16 and fp8 (e4m3, per-tensor scales, bf16 out) matrix products that
              fill the chip: the compute ceiling the catalog's `efficiency.compute` scales;
  copy        a 4 GiB device-to-device copy, bytes read + written: the bandwidth ceiling;
  decode_gemm x[M, 8192] @ W[8192, 28672] (a Llama-70B-sized FFN projection, 470 MB of bf16
              weights, far above the L2) for M = 1 ... 4096: weight streaming at small M, where
              decode lives, turning compute-bound at large M: the roofline the perf model uses;
  decode_attention  one query token per sequence against a bf16 KV cache (GQA, 64 query and
              8 KV heads of 128; m = batch, n = context): the KV bytes read per second.
Prints a table and writes one CSV row per measurement.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import statistics
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _time_ms(fn: Callable[[], Any], torch: Any, warmup: int = 5, repeat: int = 30) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def _rel_err(out: Any, ref: Any) -> float:
    return float((out.double() - ref).norm() / ref.norm())


def main() -> None:
    import torch  # only on the device machine: the project does not depend on it

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sku", required=True, help="catalog id of the GPU measured")
    ap.add_argument("--out", type=Path, default=Path("device_roofline.csv"))
    args = ap.parse_args()
    dev = torch.device("cuda")
    torch.manual_seed(0)
    props = torch.cuda.get_device_properties(dev)
    driver = subprocess.run(
        ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    env = {"sku": args.sku, "gpu": props.name, "date": dt.date.today().isoformat(),
           "torch": torch.__version__, "driver": driver}  # fmt: skip
    rows: list[dict[str, Any]] = []

    def record(test: str, dtype: str, m: int, n: int, k: int, ms: float, flops: float,
               nbytes: float, err: float | None) -> None:  # fmt: skip
        rows.append({**env, "test": test, "dtype": dtype, "m": m, "n": n, "k": k,
                     "median_ms": round(ms, 5), "tflops": round(flops / ms / 1e9, 1),
                     "tb_s": round(nbytes / ms / 1e9, 3),
                     "rel_err": "" if err is None else f"{err:.1e}"})  # fmt: skip

    fp8 = torch.float8_e4m3fn
    one = torch.ones((), device=dev)

    def fp8_mm(a8: Any, b8t: Any) -> Any:
        return torch._scaled_mm(a8, b8t, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)

    # Square products: the compute ceilings.
    for size in (4096, 8192, 16384):
        a = torch.randn(size, size, device=dev, dtype=torch.bfloat16)
        b = torch.randn(size, size, device=dev, dtype=torch.bfloat16)
        ref = a[:256].double() @ b.double()
        err = _rel_err(a[:256] @ b, ref)
        ms = _time_ms(lambda a=a, b=b: a @ b, torch)
        record("gemm", "bf16", size, size, size, ms, 2 * size**3, 3 * 2 * size * size, err)
        a8 = (a / 4).to(fp8)
        b8t = (b / 4).to(fp8).t().contiguous().t()  # column-major, as _scaled_mm wants
        ref8 = a8[:256].double() @ b8t.double()
        err8 = _rel_err(fp8_mm(a8[:256].contiguous(), b8t), ref8)
        ms = _time_ms(lambda a8=a8, b8t=b8t: fp8_mm(a8, b8t), torch)
        record("gemm", "fp8", size, size, size, ms, 2 * size**3, 2 * size * size * 2, err8)
        del a, b, a8, b8t
        torch.cuda.empty_cache()

    # Copy: the bandwidth ceiling, bytes read + written.
    n_el = 2 * 1024**3  # 4 GiB of bf16
    src = torch.randn(n_el, device=dev, dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    ms = _time_ms(lambda src=src, dst=dst: dst.copy_(src), torch, repeat=20)
    err = float((dst[:1_000_000] != src[:1_000_000]).float().mean())  # share that differs
    record("copy", "bf16", n_el, 1, 1, ms, 0.0, 2 * 2 * n_el, err)
    del src, dst
    torch.cuda.empty_cache()

    # Decode-shaped products: weights streamed once per call.
    k, n = 8192, 28672
    w = torch.randn(k, n, device=dev, dtype=torch.bfloat16) / 64
    w8t = (w * 16).to(fp8).t().contiguous().t()
    for m in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096):
        x = torch.randn(m, k, device=dev, dtype=torch.bfloat16)
        err = _rel_err(x @ w, x.double() @ w.double())
        ms = _time_ms(lambda x=x: x @ w, torch)
        record("decode_gemm", "bf16", m, n, k, ms, 2 * m * n * k, 2 * (k * n + m * k + m * n), err)
        if m >= 16:  # _scaled_mm wants dimensions divisible by 16
            x8 = x.to(fp8)
            err8 = _rel_err(fp8_mm(x8, w8t), x8.double() @ w8t.double())
            ms = _time_ms(lambda x8=x8: fp8_mm(x8, w8t), torch)
            record("decode_gemm", "fp8", m, n, k, ms, 2 * m * n * k,
                   k * n + m * k + 2 * m * n, err8)  # fmt: skip

    # Decode attention: one query token per sequence against its KV cache (GQA, Llama-70B
    # shaped: 64 query heads, 8 KV heads, head dim 128): bytes are the K and V read once.
    sdpa = torch.nn.functional.scaled_dot_product_attention
    for batch, ctx in ((1, 8192), (8, 8192), (32, 8192), (8, 32768), (64, 4096), (64, 16384)):
        q = torch.randn(batch, 64, 1, 128, device=dev, dtype=torch.bfloat16)
        kv = torch.randn(2, batch, 8, ctx, 128, device=dev, dtype=torch.bfloat16)
        out = sdpa(q, kv[0], kv[1], enable_gqa=True)
        kd, vd = (
            kv[0, :1].double().repeat_interleave(8, 1),
            kv[1, :1].double().repeat_interleave(8, 1),
        )
        ref = torch.softmax(q[:1].double() @ kd.transpose(-1, -2) / 128**0.5, -1) @ vd
        err = _rel_err(out[:1], ref)
        ms = _time_ms(lambda q=q, kv=kv: sdpa(q, kv[0], kv[1], enable_gqa=True), torch)
        record("decode_attention", "bf16", batch, ctx, 128, ms, 4 * batch * 64 * ctx * 128,
               kv.numel() * 2 + 2 * q.numel() * 2, err)  # fmt: skip
        del q, kv
        torch.cuda.empty_cache()

    with args.out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"{props.name}, torch {torch.__version__}, driver {driver}")
    print(f"{'test':12} {'dtype':5} {'m':>6} {'n':>6} {'k':>6} {'ms':>9} {'TFLOP/s':>8} "
          f"{'TB/s':>6} {'rel_err':>8}")  # fmt: skip
    for r in rows:
        print(f"{r['test']:12} {r['dtype']:5} {r['m']:>6} {r['n']:>6} {r['k']:>6} "
              f"{r['median_ms']:>9.4f} {r['tflops']:>8.1f} {r['tb_s']:>6.3f} {r['rel_err']:>8}")  # fmt: skip


if __name__ == "__main__":
    main()
