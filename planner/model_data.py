"""The frozen hand-over between the performance side and the optimization side.

`candidates.py` (and tests, with hand-made numbers) build a `PlanningData`; `formulation.py`
only reads it. Everything the MIP sees is here as tidy pandas tables with units in the column
names, so a model can be built, written as LP and inspected without touching perf/.

Tables (index → columns):

periods     period (str, ordered as planned) → start (Timestamp), hours (float),
            energy_load_factor (mean / peak demand in the period, 0..1, for energy)
skus        sku → chips_per_unit (int), unit_price_usd (float, NaN = cannot be bought),
            rent_usd_per_chip_hour (float, NaN = cannot be rented),
            all_in_w_per_chip (float), first_buy_period (int position into periods; a
            purchase before it is impossible; len(periods) = never), lead_periods (int),
            lifetime_periods (int), supply_cap_units_per_period (float, NaN = no cap)
existing    tidy: sku, chips, retire_period (int position; chips leave at that period;
            len(periods) = never). May be empty.
candidates  candidate (str) → topology (str), power_w (float, all-in IT power of one
            instance, before PUE), description (str)
units       tidy: candidate, sku, chips (float, chips of that SKU in one instance)
rates       tidy: candidate, workload, phase ("prefill" | "decode"), rate_rps (float > 0:
            requests/s one instance sustains for that phase inside the workload's SLA)
demand      tidy: workload, period, requests_per_s (sizing statistic, peak),
            mean_requests_per_s (for energy)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

import pandas as pd
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

HOURS_PER_MONTH = 730.0  # hosting is priced per kW-month
Objective = Literal["cost", "power"]
RentedPower = Literal["provider", "facility"]
CostBasis = Literal["horizon", "amortized"]
HostingBasis = Literal["in_use", "installed"]

# Speculative decoding: the draft lengths k (tokens drafted per verify step) to enumerate.
# With acceptance a = 0.7 a step emits 1.7 (k = 1) to 2.9 (k = 5) tokens; past 5 each extra
# drafted token adds under 6 % while the verify step keeps growing.
SPEC_DRAFT_TOKENS = (1, 2, 3, 4, 5)
DraftLengths = Annotated[
    list[Annotated[int, Field(ge=1, le=16)]],
    Field(min_length=1),
    AfterValidator(lambda ks: sorted(set(ks))),  # order and repeats mean nothing
]


class Settings(BaseModel):
    """Economic and facility settings; the scenario YAML and CLI flags fill these."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    objective: Objective = "cost"
    # horizon: capex counted when paid, over the planning horizon (cash view).
    # amortized: each owned unit costs price x period_hours / lifetime_hours (P&L view).
    cost_basis: CostBasis = "horizon"
    pue: float = Field(default=1.3, gt=1.0, le=3.0)  # estimate: modern liquid-cooled halls 1.1-1.4
    electricity_usd_per_kwh: float = Field(default=0.08, ge=0)  # estimate: US industrial tariff
    hosting_usd_per_kw_month: float = Field(default=130.0, ge=0)  # estimate: wholesale colo
    # What hosting is charged on. "in_use": the facility power the instances draw (a hall
    # billed on metered use). "installed": the all-in power of every chip in service, busy
    # or idle (colocation billed on provisioned kW; rented chips too with rented_power
    # "facility"), so a unit bought early or left idle pays for its space.
    hosting_basis: HostingBasis = "in_use"
    # Fraction of an instance's time budget usable in planning: headroom for failures,
    # bursts inside the period and rebalancing. Prefill rates already include queueing.
    util_max: float = Field(default=0.9, gt=0, le=1)
    power_budget_mw: float | None = Field(default=None, gt=0)  # facility MW (x PUE), each period
    capex_budget_usd: float | None = Field(default=None, ge=0)  # over the whole horizon
    capex_budget_usd_per_period: float | None = Field(default=None, ge=0)
    allow_rent: bool = True
    # Where rented chips draw their power. "provider": the hourly rent covers power, cooling
    # and hosting (cloud on-demand, which is what the catalog's rent prices are), so rented
    # chips add no facility MW, energy or hosting and do not count against the power budget
    # or the power objective. "facility": rented racks stand in our hall (leased capacity)
    # and draw facility power, energy and hosting like owned chips.
    rented_power: RentedPower = "provider"
    # Penalty per request/s left unserved in one period. It must dominate any real cost of
    # serving so the solver serves whatever it can; formulation.py scales it if needed.
    unserved_penalty_usd_per_rps: float = Field(default=1e9, gt=0)
    # Epsilon constraint (Pareto tracing): peak facility MW <= this while minimising cost.
    peak_power_cap_mw: float | None = Field(default=None, gt=0)
    # Relax integer instance counts (speed option); purchases stay integer.
    relax_instances: bool = False

    @property
    def running_usd_per_w_hour(self) -> float:
        """Energy and hosting per watt of IT power in use per hour, at the peak rate: both
        are charged on facility power (IT x PUE), as the formulation charges them."""
        per_kw = self.electricity_usd_per_kwh + self.hosting_usd_per_kw_month / HOURS_PER_MONTH
        return self.pue * per_kw / 1000.0


@dataclass(frozen=True)
class PlanningData:
    periods: pd.DataFrame
    skus: pd.DataFrame
    candidates: pd.DataFrame
    units: pd.DataFrame
    rates: pd.DataFrame
    demand: pd.DataFrame
    existing: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["sku", "chips", "retire_period"])
    )
    settings: Settings = field(default_factory=Settings)

    @property
    def period_names(self) -> list[str]:
        return list(self.periods.index)

    @property
    def workloads(self) -> list[str]:
        return sorted(self.demand["workload"].unique())
