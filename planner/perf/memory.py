"""Memory fit: weights + KV cache + activation workspace within usable capacity per chip.

SRAM devices hold weights and KV on chip, so the same check decides how many chips an
SRAM deployment needs. A configuration that does not fit is infeasible with a reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from planner.perf.phases import kv_bytes_per_seq
from planner.perf.specs import ACT_BYTES, ChipSpec, ModelDims

Array = NDArray[np.float64]

# Activation workspace per in-flight token per chip, as a multiple of hidden x act bytes
# (residual stream, attention/FFN intermediates of one layer at a time). An estimate; it
# matters only for very large decode batches.
ACTIVATION_HIDDEN_MULTIPLE = 8.0


@dataclass(frozen=True)
class MemoryUse:
    weights_gb_per_chip: Array
    kv_gb_per_chip: Array
    activations_gb_per_chip: Array
    usable_gb_per_chip: float

    @property
    def used_gb_per_chip(self) -> Array:
        return self.weights_gb_per_chip + self.kv_gb_per_chip + self.activations_gb_per_chip

    @property
    def fits(self) -> NDArray[np.bool_]:
        return self.used_gb_per_chip <= self.usable_gb_per_chip * (1 + 1e-9)


def kv_split(m: ModelDims, tp: ArrayLike) -> Array:
    """How many ways TP splits the KV cache: by KV head up to kv_heads, then replicated."""
    return np.minimum(np.asarray(tp, dtype=float), m.kv_shard_limit)


def memory_use(
    m: ModelDims,
    chip: ChipSpec,
    batch: ArrayLike,
    context: ArrayLike,
    tp: ArrayLike,
    pp: ArrayLike,
    w_bytes: float,
    kv_bytes: float,
    weight_params: float | None = None,
) -> MemoryUse:
    """Per-chip memory for `batch` sequences of `context` tokens on tp x pp chips.

    `weight_params` overrides the parameters held (e.g. only the FFN side in AFD).
    """
    chips = np.asarray(tp, dtype=float) * np.asarray(pp, dtype=float)
    params = m.total_params if weight_params is None else weight_params
    weights = params * w_bytes / chips / 1e9
    kv_total = np.asarray(batch, dtype=float) * kv_bytes_per_seq(m, context, kv_bytes)
    kv = kv_total / (np.asarray(pp, dtype=float) * kv_split(m, tp)) / 1e9
    act = (
        np.asarray(batch, dtype=float)
        * m.hidden
        * ACT_BYTES
        * ACTIVATION_HIDDEN_MULTIPLE
        / chips
        / 1e9
    )
    return MemoryUse(
        weights_gb_per_chip=np.asarray(weights, dtype=float),
        kv_gb_per_chip=np.asarray(kv, dtype=float),
        activations_gb_per_chip=np.asarray(act, dtype=float),
        usable_gb_per_chip=chip.usable_gb,
    )


def max_batch(
    m: ModelDims,
    chip: ChipSpec,
    context: ArrayLike,
    tp: ArrayLike,
    pp: ArrayLike,
    w_bytes: float,
    kv_bytes: float,
    weight_params: float | None = None,
) -> Array:
    """Largest batch whose KV and activations fit next to the weights (0 if weights alone don't)."""
    chips = np.asarray(tp, dtype=float) * np.asarray(pp, dtype=float)
    params = m.total_params if weight_params is None else weight_params
    free = chip.usable_gb * 1e9 - params * w_bytes / chips
    per_seq = kv_bytes_per_seq(m, context, kv_bytes) / (
        np.asarray(pp, dtype=float) * kv_split(m, tp)
    )
    per_seq = per_seq + m.hidden * ACT_BYTES * ACTIVATION_HIDDEN_MULTIPLE / chips
    return np.maximum(np.floor(free / per_seq), 0.0)


def chips_for_weights(params: float, w_bytes: float, chip: ChipSpec, headroom: float = 0.8) -> int:
    """Fewest chips whose usable memory holds the weights with `headroom` left for KV."""
    return max(1, math.ceil(params * w_bytes / (chip.usable_gb * 1e9 * headroom)))
