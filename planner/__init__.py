"""fleet planner: what LLM inference hardware to buy, when, and how to run each phase on it."""

from __future__ import annotations

import functools


@functools.cache
def _version() -> str:
    # importlib.metadata costs ~0.1 s to import: paid only when the version is asked for.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fleet-planner")
    except PackageNotFoundError:  # running from a source tree without an install
        return "0.0.0+source"


def __getattr__(name: str) -> str:
    if name == "__version__":
        return _version()
    raise AttributeError(f"module 'planner' has no attribute {name!r}")
