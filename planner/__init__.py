"""fleet planner: what LLM inference hardware to buy, when, and how to run each phase on it."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fleet-planner")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+source"
