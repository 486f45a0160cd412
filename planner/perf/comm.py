"""Communication costs: tensor-parallel all-reduce, point-to-point hops, KV transfer.

A message costs latency + bytes / bandwidth (the alpha-beta model). Bandwidths are per chip
per direction in GB/s, latencies in microseconds, as the catalog stores them.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]


def p2p_ms(msg_bytes: ArrayLike, gb_s: ArrayLike, latency_us: ArrayLike) -> Array:
    """One point-to-point message."""
    return (
        np.asarray(latency_us, dtype=float) / 1e3
        + np.asarray(msg_bytes, dtype=float) / (np.asarray(gb_s, dtype=float) * 1e9) * 1e3
    )


def allreduce_ms(
    msg_bytes: ArrayLike, ranks: ArrayLike, gb_s: ArrayLike, latency_us: ArrayLike
) -> Array:
    """Ring all-reduce of `msg_bytes` over `ranks` chips: 2 (n-1)/n of it crosses each link.

    One latency per all-reduce: NVLink-switch and one-shot kernels used for small decode
    messages keep the latency term flat in n (an estimate; calibration absorbs the rest).
    """
    n = np.asarray(ranks, dtype=float)
    traffic = 2.0 * (n - 1.0) / np.maximum(n, 1.0) * np.asarray(msg_bytes, dtype=float)
    t = (
        np.asarray(latency_us, dtype=float) / 1e3
        + traffic / (np.asarray(gb_s, dtype=float) * 1e9) * 1e3
    )
    return np.where(n > 1, t, 0.0)


def tp_allreduces_ms(
    tokens: ArrayLike,
    hidden: int,
    layers: int,
    tp: ArrayLike,
    gb_s: ArrayLike,
    latency_us: ArrayLike,
    act_bytes: float = 2.0,
) -> Array:
    """Two all-reduces per layer (after attention, after the FFN) of tokens x hidden."""
    msg = np.asarray(tokens, dtype=float) * hidden * act_bytes
    return 2.0 * layers * allreduce_ms(msg, tp, gb_s, latency_us)


def pipeline_hops_ms(
    tokens: ArrayLike,
    hidden: int,
    pp: ArrayLike,
    gb_s: ArrayLike,
    latency_us: ArrayLike,
    act_bytes: float = 2.0,
) -> Array:
    """(pp - 1) stage-to-stage hops of the activations of `tokens` tokens."""
    hops = np.maximum(np.asarray(pp, dtype=float) - 1.0, 0.0)
    return hops * p2p_ms(np.asarray(tokens, dtype=float) * hidden * act_bytes, gb_s, latency_us)


def afd_crossings_ms(
    tokens: ArrayLike,
    hidden: int,
    layers: int,
    gb_s: ArrayLike,
    latency_us: ArrayLike,
    act_bytes: float = 2.0,
) -> Array:
    """Attention-FFN disaggregation: activations cross the link twice per layer."""
    return (
        2.0
        * layers
        * p2p_ms(np.asarray(tokens, dtype=float) * hidden * act_bytes, gb_s, latency_us)
    )


def kv_transfer_ms(kv_bytes: ArrayLike, gb_s: ArrayLike, latency_us: ArrayLike) -> Array:
    """Moving one request's KV cache from the prefill pool to the decode pool."""
    return p2p_ms(kv_bytes, gb_s, latency_us)
