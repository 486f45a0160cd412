"""The result of a planning solve as tidy tables: what to buy, rent, run and route, at what cost.

A `Plan` is read from the solved model's variables and the PlanningData, never from solver
internals (planner.plan_read, which needs Pyomo); reports and `verify.py` depend on this
module only, which does not, so `planner report` on a saved plan never loads the solver. Every table has a fixed
schema (`TABLE_SCHEMAS`, units in the column names); `to_json` / `from_json` round-trip
exactly (tables as records) and `write_tables` writes plan.json plus one CSV per table.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from planner.model_data import PlanningData, Settings

TOL = 1e-6
# plan.json's layout version, written as "schema_version". Bump it when a field changes
# meaning or a reader of the old layout would misread the new one; files without it are
# version 0 (before it was recorded), read with the migrations in `from_dict`.
# Version 2 adds shortfall_proven.
PLAN_SCHEMA_VERSION = 2
PLAN_JSON = "plan.json"  # the file name write_tables gives the plan in its folder

TABLE_SCHEMAS: dict[str, dict[str, str]] = {
    "purchases": {
        "sku": "str",
        "period": "str",
        "units": "int64",
        "chips": "int64",
        "capex_usd": "float64",
    },
    "rentals": {"sku": "str", "period": "str", "chips": "float64", "cost_usd": "float64"},
    "fleet": {
        "sku": "str",
        "period": "str",
        "owned_chips": "float64",
        "rented_chips": "float64",
        "used_chips": "float64",
    },
    "instances": {"candidate": "str", "period": "str", "count": "float64"},
    "routing": {
        "workload": "str",
        "phase": "str",
        "period": "str",
        "candidate": "str",
        "load_rps": "float64",
        "share": "float64",
    },
    "unserved": {
        "workload": "str",
        "period": "str",
        "requests_per_s": "float64",
        "share": "float64",
    },
    "costs": {
        "period": "str",
        "capex_usd": "float64",
        "rental_usd": "float64",
        "energy_usd": "float64",
        "hosting_usd": "float64",
        "total_usd": "float64",
    },
    "power": {
        "period": "str",
        "it_mw": "float64",
        "facility_mw": "float64",
        "budget_mw": "float64",
    },
    "utilization": {"candidate": "str", "period": "str", "busy_fraction": "float64"},
    # Only with settings.relax_instances: the LP count and the whole instances to deploy.
    "rounding": {
        "candidate": "str",
        "period": "str",
        "relaxed_count": "float64",
        "rounded_count": "int64",
    },
}


def schema_table(name: str, rows: Any) -> pd.DataFrame:
    """A table with exactly its schema's columns and dtypes (records or a DataFrame)."""
    schema = TABLE_SCHEMAS[name]
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows, columns=list(schema))
    frame = frame.reindex(columns=list(schema))
    return frame.astype(schema).reset_index(drop=True)


@dataclasses.dataclass(frozen=True, eq=False)
class Plan:
    """A solved plan. Tables are tidy DataFrames; see TABLE_SCHEMAS for their columns."""

    status: str
    objective: float | None
    bound: float | None
    gap: float | None
    message: str
    timings: dict[str, float]
    settings: Settings
    penalty_usd_per_rps: float
    instances_relaxed: bool
    purchases: pd.DataFrame
    rentals: pd.DataFrame
    fleet: pd.DataFrame
    instances: pd.DataFrame
    routing: pd.DataFrame
    unserved: pd.DataFrame
    costs: pd.DataFrame
    power: pd.DataFrame
    utilization: pd.DataFrame
    rounding: pd.DataFrame
    # What the plan was built from (workloads, demand, candidates used...), recorded by the
    # planning run so a plan can be verified and reported without the candidate table.
    inputs: dict[str, Any] | None = None
    # With demand unserved: whether the least shortfall is proven even where the cost at it
    # stopped at the time limit (status feasible_at_limit). None: not recorded.
    shortfall_proven: bool | None = None

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_solution(cls, model: Any, data: PlanningData, result: Any) -> Plan:
        """Read the solved model's variables into tables (planner.plan_read.read_plan:
        that module needs Pyomo, so reading a saved plan does not)."""
        from planner.plan_read import read_plan

        return read_plan(model, data, result)

    def with_inputs(self, inputs: dict[str, Any]) -> Plan:
        """The same plan with its recorded inputs."""
        return dataclasses.replace(self, inputs=inputs)

    # -- summaries ------------------------------------------------------------------------

    @property
    def has_solution(self) -> bool:
        """A plan to read: solved to optimality or stopped at a limit with one."""
        return self.status in ("optimal", "feasible_at_limit")

    @property
    def total_cost_usd(self) -> float:
        return float(self.costs["total_usd"].sum())

    @property
    def unserved_rps(self) -> float:
        return float(self.unserved["requests_per_s"].sum())

    # -- serialisation ---------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        scalars = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in TABLE_SCHEMAS
        }
        scalars["settings"] = self.settings.model_dump(mode="json")
        tables = {
            name: [
                {k: _json_number(v) for k, v in rec.items()}
                for rec in getattr(self, name).to_dict(orient="records")
            ]
            for name in TABLE_SCHEMAS
        }
        return {"schema_version": PLAN_SCHEMA_VERSION, **scalars, "tables": tables}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Plan:
        """A Plan from `to_dict`'s layout, this version's or an older one. A newer one is
        refused (ValueError naming both versions) rather than read as something else."""
        raw = dict(raw)
        version = raw.pop("schema_version", 0)
        if not isinstance(version, int) or not 0 <= version <= PLAN_SCHEMA_VERSION:
            raise ValueError(
                f"schema_version {version!r}: this planner reads plan.json versions 0 to "
                f"{PLAN_SCHEMA_VERSION}; a newer planner wrote it (upgrade to read it)"
            )
        tables = {
            name: schema_table(
                name,
                pd.DataFrame.from_records(
                    raw["tables"].get(name, []), columns=list(TABLE_SCHEMAS[name])
                ),
            )
            for name in TABLE_SCHEMAS
        }
        tables = {name: _nan_from_none(t) for name, t in tables.items()}
        raw.pop("tables")
        # Plans saved before rented_power existed were solved with rented chips drawing
        # facility power; reading them as today's default would fail their verification.
        raw["settings"] = Settings.model_validate({"rented_power": "facility", **raw["settings"]})
        return cls(**raw, **tables)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        return cls.from_dict(json.loads(text))

    def write_tables(self, directory: str | Path) -> Path:
        """plan.json plus one CSV per table; returns the directory."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        (out / PLAN_JSON).write_text(self.to_json())
        for name in TABLE_SCHEMAS:
            getattr(self, name).to_csv(out / f"{name}.csv", index=False)
        return out

    def __eq__(self, other: object) -> bool:
        """Same content; timings are measurements of one run, not part of the plan."""
        if not isinstance(other, Plan):
            return False
        mine, theirs = self.to_dict(), other.to_dict()
        mine.pop("timings")
        theirs.pop("timings")
        return mine == theirs

    __hash__ = None  # type: ignore[assignment]


def _nan_from_none(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.fillna(value=np.nan) if frame.isna().any().any() else frame


def _json_number(x: Any) -> Any:
    """NaN / inf -> None (JSON null); everything else unchanged (floats round-trip)."""
    return None if isinstance(x, float) and not math.isfinite(x) else x


def finite_or_none(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)
