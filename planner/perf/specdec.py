"""Speculative decoding: a draft proposes k tokens, the target verifies k + 1 at once."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]


def expected_tokens_per_step(acceptance: ArrayLike, k: ArrayLike) -> Array:
    """Tokens emitted per verify step, (1 - a^(k+1)) / (1 - a), for i.i.d. acceptance a.

    At a = 0 the step still emits the target's own token (1); at a = 1 all k + 1.
    """
    a = np.asarray(acceptance, dtype=float)
    kk = np.asarray(k, dtype=float)
    safe = np.where(a < 1.0, a, 0.5)
    geometric = (1.0 - safe ** (kk + 1.0)) / (1.0 - safe)
    return np.where(a < 1.0, geometric, kk + 1.0)


def spec_tpot_ms(
    draft_token_ms: ArrayLike,
    k: ArrayLike,
    verify_step_ms: ArrayLike,
    link_ms: ArrayLike,
    acceptance: ArrayLike,
) -> Array:
    """Effective time per output token: (k drafts + one verify + link) / expected tokens."""
    step = (
        np.asarray(k, dtype=float) * np.asarray(draft_token_ms, dtype=float)
        + np.asarray(verify_step_ms, dtype=float)
        + np.asarray(link_ms, dtype=float)
    )
    return step / expected_tokens_per_step(acceptance, k)
