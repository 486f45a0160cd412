"""A planning scenario: every setting of a run (the CLI flags, or a scenario YAML), and the
catalog price / rent overrides it carries.

Kept apart from planner.planning so that reading a saved plan (`planner report` re-applies
the plan's price overrides to the catalog) does not load the solver.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from planner.catalog import Basis, Catalog, Sourced
from planner.errors import InputProblem, PlannerInputError, named_in, unknown_id
from planner.model_data import (
    SPEC_DRAFT_TOKENS,
    DraftLengths,
    HostingBasis,
    RentedPower,
    Settings,
)
from planner.yamlio import safe_load


class ExistingFleet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sku: str
    chips: int = Field(gt=0)
    retire_period: str | None = None  # first period it is gone; None = stays


class Scenario(BaseModel):
    """Every setting of a planning run; a scenario YAML holds the same as the CLI flags."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "default"
    demand: str | None = None  # CSV path, relative to the scenario file
    objective: Literal["cost", "power"] = "cost"
    cost_basis: Literal["horizon", "amortized"] = "horizon"
    pue: float = Field(default=1.3, gt=1.0, le=3.0)
    electricity_usd_per_kwh: float = Field(default=0.08, ge=0)
    hosting_usd_per_kw_month: float = Field(default=130.0, ge=0)
    hosting_basis: HostingBasis = "in_use"  # see model_data.Settings
    util_max: float = Field(default=0.9, gt=0, le=1)
    power_budget_mw: float | None = Field(default=None, gt=0)
    capex_budget_usd: float | None = Field(default=None, ge=0)
    capex_budget_usd_per_period: float | None = Field(default=None, ge=0)
    allow_rent: bool = True
    rented_power: RentedPower = "provider"  # see model_data.Settings
    allowed_skus: list[str] | None = None
    exclude_skus: list[str] = Field(default_factory=list)
    price_usd_per_unit: dict[str, float] = Field(default_factory=dict)  # overrides
    rent_usd_per_chip_hour: dict[str, float] = Field(default_factory=dict)  # overrides
    supply_cap_units_per_period: dict[str, float] = Field(default_factory=dict)
    existing_fleet: list[ExistingFleet] = Field(default_factory=list)
    horizon: list[str] | None = None  # [first, last] period to plan; None = all in demand
    topologies: list[str] | None = None
    spec_acceptance: float = Field(default=0.7, ge=0, le=1)
    spec_draft_tokens: DraftLengths = Field(default_factory=lambda: list(SPEC_DRAFT_TOKENS))
    # Which candidates reach the MIP. "frontier" (default, fastest): only those on the
    # cost-power frontier per request/s (candidates.prune_to_frontier), a heuristic that
    # ignores whole instances. "cover": those too that carry some workload's load (or
    # what is left of it) in whole instances most cheaply (candidates.cover_candidates):
    # cheaper plans where workloads need few instances each, a slower MIP. "none": every
    # candidate not dominated chip for chip: the largest, slowest MIP.
    pruning: Literal["frontier", "cover", "none"] = "frontier"
    exhaustive: bool = False  # shorthand for pruning "none" (`--exhaustive`)
    solver_profile: str = "default"
    time_limit_s: float | None = Field(default=None, gt=0)
    relax_instances: bool = False

    @model_validator(mode="after")
    def _one_pruning(self) -> Scenario:
        if self.exhaustive and self.pruning != "frontier":
            raise ValueError(
                f"exhaustive: true means pruning: none; it cannot be combined with pruning: "
                f"{self.pruning}"
            )
        return self

    @property
    def pruning_mode(self) -> str:
        """The pruning in force (`exhaustive` is pruning "none")."""
        return pruning_mode({"exhaustive": self.exhaustive, "pruning": self.pruning})

    def settings(self) -> Settings:
        return Settings(
            objective=self.objective, cost_basis=self.cost_basis, pue=self.pue,
            electricity_usd_per_kwh=self.electricity_usd_per_kwh,
            hosting_usd_per_kw_month=self.hosting_usd_per_kw_month,
            hosting_basis=self.hosting_basis, util_max=self.util_max,
            power_budget_mw=self.power_budget_mw, capex_budget_usd=self.capex_budget_usd,
            capex_budget_usd_per_period=self.capex_budget_usd_per_period,
            allow_rent=self.allow_rent, rented_power=self.rented_power,
            relax_instances=self.relax_instances,
        )  # fmt: skip


PRUNING_NOTES = {
    "frontier": "cost-power frontier per request/s, a heuristic that ignores whole instances: "
    "the status holds among the candidates kept",
    "cover": "the frontier plus, per workload and period, the candidates that carry its load "
    "in whole instances most cheaply, a heuristic: the status holds among the candidates kept",
    "none": "every candidate not dominated chip for chip",
}


def pruning_mode(recorded: dict[str, Any]) -> str:
    """The pruning in force for scenario settings (a Scenario's, or the ones a plan
    recorded; older plans have no `pruning`): `exhaustive` is pruning "none"."""
    return "none" if recorded.get("exhaustive") else str(recorded.get("pruning") or "frontier")


def load_scenario(path: Path) -> Scenario:
    try:
        raw = safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PlannerInputError(
            [InputProblem(str(path), "", str(exc).splitlines()[0], "a readable YAML file")]
        ) from None
    if not isinstance(raw, dict):
        raise PlannerInputError(
            [InputProblem(str(path), "", type(raw).__name__, "a YAML mapping of settings")]
        )
    try:
        sc = Scenario.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            loc = ".".join(str(p) for p in e["loc"])
            expected = e["msg"]
            if e["type"] == "extra_forbidden":
                from planner.errors import did_you_mean

                expected = f"a known setting{did_you_mean(str(e['loc'][0]), Scenario.model_fields)}"
            where = f"field {loc}" if loc else "settings"
            problems.append(
                InputProblem(str(path), where, named_in(expected, e.get("input")), expected)
            )
        raise PlannerInputError(problems) from None
    if sc.demand and not Path(sc.demand).is_absolute():
        sc = sc.model_copy(update={"demand": str((path.parent / sc.demand).resolve())})
    return sc


def apply_overrides(catalog: Catalog, sc: Scenario, source: str) -> Catalog:
    """The scenario's price and rent overrides, as estimates sourced to the scenario."""
    problems = [
        unknown_id(source, f"{field}.{sku}", sku, catalog.hardware)
        for field, table in (("price_usd_per_unit", sc.price_usd_per_unit), ("rent_usd_per_chip_hour", sc.rent_usd_per_chip_hour),
                             ("supply_cap_units_per_period", sc.supply_cap_units_per_period))
        for sku in table if sku not in catalog.hardware
    ]  # fmt: skip
    for sku in [*(sc.allowed_skus or []), *sc.exclude_skus, *(e.sku for e in sc.existing_fleet)]:
        if sku not in catalog.hardware:
            problems.append(unknown_id(source, "SKU", sku, catalog.hardware))
    if problems:
        raise PlannerInputError(problems)
    if not sc.price_usd_per_unit and not sc.rent_usd_per_chip_hour:
        return catalog
    hardware = dict(catalog.hardware)
    for sku in set(sc.price_usd_per_unit) | set(sc.rent_usd_per_chip_hour):
        hw = hardware[sku]
        p = hw.purchase
        upd: dict[str, Any] = {}
        note = f"override from scenario {sc.name}"
        if sku in sc.price_usd_per_unit:
            upd["price_usd"] = Sourced(
                value=sc.price_usd_per_unit[sku], basis=Basis.estimate, source="SCN", note=note
            )
        if sku in sc.rent_usd_per_chip_hour:
            upd["rent_usd_per_chip_hour"] = Sourced(
                value=sc.rent_usd_per_chip_hour[sku], basis=Basis.estimate, source="SCN", note=note
            )
        hardware[sku] = hw.model_copy(
            update={
                "purchase": p.model_copy(update=upd),
                "sources": {**hw.sources, "SCN": f"scenario {sc.name}"},
            }
        )
    return Catalog(hardware=hardware, models=catalog.models)
