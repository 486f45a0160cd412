"""Pinned reference scenario (TEMOA-style regression): the shipped default forecast must keep
its model size and its proven optimum. A change here is a change in what the planner tells a
user; if it is intended (catalog, calibration or model change), re-pin these numbers in the
same commit and say why in its message.

Re-pin with:
    python -c "from tests.test_pinned import current; print(current())"
"""

from __future__ import annotations

from pathlib import Path

import pytest

from planner.catalog import data_dir
from planner.formulation import build_model, model_size
from planner.planning import Scenario, prepare
from planner.solve import solve

PINNED_SIZE = {"variables": 563, "integer_variables": 215, "constraints": 721}
PINNED_OBJECTIVE_USD = 1_354_611.58


def current() -> tuple[dict[str, int], float | None]:
    _, _, cs = prepare(Path(data_dir("demand")) / "default.csv", Scenario())
    m = build_model(cs.data)
    r = solve(m, "exact")
    return model_size(m), r.objective


def test_default_forecast_size_and_optimum() -> None:
    size, objective = current()
    assert size == PINNED_SIZE
    assert objective == pytest.approx(PINNED_OBJECTIVE_USD, rel=1e-6)
