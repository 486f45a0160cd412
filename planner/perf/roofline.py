"""Roofline: a kernel takes as long as the slower of its math and its memory traffic."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Roofline:
    """Time of one piece of work and which limit set it (all in milliseconds)."""

    compute_ms: Array
    memory_ms: Array

    @property
    def time_ms(self) -> Array:
        return np.maximum(self.compute_ms, self.memory_ms)

    @property
    def compute_bound(self) -> NDArray[np.bool_]:
        return self.compute_ms >= self.memory_ms


def roofline(flops: ArrayLike, bytes_: ArrayLike, tflops: ArrayLike, tb_s: ArrayLike) -> Roofline:
    """`tflops` and `tb_s` are the *achieved* rates of all chips working on the piece."""
    compute_ms = np.asarray(flops, dtype=float) / (np.asarray(tflops, dtype=float) * 1e12) * 1e3
    memory_ms = np.asarray(bytes_, dtype=float) / (np.asarray(tb_s, dtype=float) * 1e12) * 1e3
    return Roofline(compute_ms=np.asarray(compute_ms), memory_ms=np.asarray(memory_ms))
