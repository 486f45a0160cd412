"""The planning MIP: what to buy, when, and which candidate carries which load.

`build_model(data)` reads top to bottom: check the data, build the sparse index sets with
pandas (`prepare_sets`), declare the variables, then add one constraint family per
`define_*` function. Every family selects its index, returns early when it is empty and
adds itself in one call, with coefficients pre-grouped in dicts so no Pyomo rule ever
filters a dense product. This module never computes a latency: rates, chips and power per
instance come in `PlanningData`, made by the candidate generator (or by hand in tests).

Indices: SKU h, candidate c, workload w, phase p in {prefill, decode}, period t. Index
lists are named after their dimensions (`load_cwpt`, `instances_ct`, `buy_ht`).

Modelling decisions (the "why" a reader needs):

* Power counts instances in use, not chips owned: idle owned chips are assumed powered
  down (or parked), so `e_power_mw[t] = PUE * sum_c power_w[c] * v_instances[c,t] / 1e6`.
  Rented chips (`rented_power`): "provider" (default; the catalog's rent prices are cloud
  on-demand quotes, which include power, cooling and hosting) takes them out of facility
  power, so they pay no energy or hosting and do not count against the power budget or
  the power objective; every rented chip must then be in use. "facility" (leased racks in
  our hall) counts them like owned chips. Energy and hosting are charged on facility power.
* Hosting is charged per kW per month of 730 h: by default (`hosting_basis` "in_use") on
  facility power in use (IT x PUE); with "installed" on the all-in power of every chip in
  service, busy or idle (`e_installed_mw`: colocation billed on provisioned kW).
* Energy = facility MW x 1000 x hours x the period's energy_load_factor x USD/kWh: sizing
  uses the peak rate, energy the mean-over-peak ratio.
* Capex, "horizon" basis: price x units when paid (the purchase period). "amortized"
  basis: each unit costs price x hours[t] / lifetime_hours for every period it is *in
  service* inside the horizon (lifetime_hours = lifetime_periods x mean period hours), so
  a unit whose whole life is in the horizon costs exactly its price. Existing chips are
  sunk: they carry no capex. Capex budgets always count cash paid (price x units).
* Rentals are continuous chips (cloud rentals come in nodes, but with integer instances
  the optimal rental equals a whole number of chips short anyway).
* Purchases that are impossible are absent rather than fixed to 0: no variable before
  first_buy_period, where unit_price_usd is NaN, where the supply cap is 0, or where the
  unit would only arrive after the horizon. A candidate gets instance (and load)
  variables only in periods where every SKU it needs can exist (existing, deliverable by
  then, or rentable).
* Unserved demand: prefill and decode of a workload share one `v_unserved[w,t]`, so a
  request is served fully or counted unserved. Its penalty per request/s must dominate
  every real cost of serving one request/s; see `unserved_penalty`.
* Objective "power": minimise the peak facility MW with a tiny cost tie-break; `solve()`
  then fixes the peak it found and minimises cost (lexicographic), so the plan buys
  nothing the peak does not need. `peak_power_cap_mw` is an upper bound on `v_peak_mw`
  (epsilon constraint for Pareto tracing); a sweep can change it with `setub`.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyomo.core.expr.numeric_expr import LinearExpression

from planner.errors import InputProblem, PlannerInputError
from planner.model_data import HOURS_PER_MONTH, PlanningData, Settings
from planner.pyomo_env import pyo

PHASES: tuple[str, ...] = ("prefill", "decode")
# The unserved penalty is at least this many times the dearest real cost of serving one
# request/s of any workload (buying or renting everything one instance needs for it,
# plus its energy and hosting over the whole horizon).
PENALTY_SAFETY = 10.0
# Power objective: the whole cost of a plan up to the cost upper bound weighs this
# fraction of the smallest instance power step, so the peak always wins.
TIE_BREAK_FRACTION = 0.01
# Horizon basis: buying a unit earlier than needed costs the same (idle chips are free),
# so each period a purchase is made early adds this fraction of its price to the
# objective (not to the costs reported): between equal plans, buy as late as possible.
BUY_LATE_TIE_BREAK = 1e-9

# Families that only restate other rows, for branch and bound (define_instances_cover_demand):
# planner.solve frees them before reading duals, which they would otherwise share.
REDUNDANT_ROWS: tuple[str, ...] = ("c_instances_cover_demand",)

LoadKey = tuple[str, str, str, str]  # candidate, workload, phase, period
CT = tuple[str, str]  # candidate, period
HT = tuple[str, str]  # sku, period


# --------------------------------------------------------------------------------------
# Checks before the build
# --------------------------------------------------------------------------------------

_REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "periods": ("hours", "energy_load_factor"),
    "skus": (
        "chips_per_unit",
        "unit_price_usd",
        "rent_usd_per_chip_hour",
        "all_in_w_per_chip",
        "first_buy_period",
        "lead_periods",
        "lifetime_periods",
        "supply_cap_units_per_period",
    ),
    "candidates": ("power_w",),
    "units": ("candidate", "sku", "chips"),
    "rates": ("candidate", "workload", "phase", "rate_rps"),
    "demand": ("workload", "period", "requests_per_s"),
    "existing": ("sku", "chips", "retire_period"),
}


def check_planning_data(data: PlanningData) -> None:
    """Raise one PlannerInputError listing every inconsistency that would break the build.

    The candidate generator should never produce these; a hand-made PlanningData can.
    """
    problems: list[InputProblem] = []
    for table, columns in _REQUIRED_COLUMNS.items():
        frame = getattr(data, table)
        missing = [col for col in columns if col not in frame.columns]
        if missing:
            problems.append(InputProblem("PlanningData", table, missing, "these columns"))
    if problems:
        raise PlannerInputError(problems)

    periods, skus, candidates = (
        set(data.periods.index),
        set(data.skus.index),
        set(data.candidates.index),
    )
    bad_phase = sorted(set(data.rates["phase"]) - set(PHASES))
    if bad_phase:
        problems.append(InputProblem("PlanningData", "rates.phase", bad_phase, str(PHASES)))
    if (data.rates["rate_rps"] <= 0).any() or data.rates["rate_rps"].isna().any():
        problems.append(InputProblem("PlanningData", "rates.rate_rps", "<= 0 or NaN", "> 0"))
    if data.rates.duplicated(["candidate", "workload", "phase"]).any():
        problems.append(
            InputProblem(
                "PlanningData", "rates", "duplicate (candidate, workload, phase)", "one row per key"
            )
        )
    if data.demand.duplicated(["workload", "period"]).any():
        problems.append(
            InputProblem(
                "PlanningData", "demand", "duplicate (workload, period)", "one row per key"
            )
        )
    _unknown(problems, "demand.period", data.demand["period"], periods)
    _unknown(problems, "rates.candidate", data.rates["candidate"], candidates)
    _unknown(problems, "units.candidate", data.units["candidate"], candidates)
    _unknown(problems, "units.sku", data.units["sku"], skus)
    _unknown(problems, "existing.sku", data.existing["sku"], skus)
    no_units = sorted(
        set(data.rates["candidate"]) - set(data.units.loc[data.units["chips"] > 0, "candidate"])
    )
    if no_units:
        problems.append(
            InputProblem("PlanningData", "units", no_units[:5], "chips > 0 for every candidate")
        )
    if data.candidates["power_w"].isna().any() or (data.candidates["power_w"] < 0).any():
        problems.append(InputProblem("PlanningData", "candidates.power_w", "NaN or < 0", ">= 0"))
    if (data.skus["chips_per_unit"] <= 0).any():
        problems.append(InputProblem("PlanningData", "skus.chips_per_unit", "<= 0", ">= 1"))
    if (data.skus["lifetime_periods"] <= 0).any():
        problems.append(InputProblem("PlanningData", "skus.lifetime_periods", "<= 0", ">= 1"))
    if problems:
        raise PlannerInputError(problems)


def _unknown(problems: list[InputProblem], where: str, values: pd.Series, known: set) -> None:
    unknown = sorted(set(values) - known)
    if unknown:
        problems.append(InputProblem("PlanningData", where, unknown[:5], "a known id"))


# --------------------------------------------------------------------------------------
# Sparse index sets and grouped coefficients
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSets:
    """Everything the families need, computed once with pandas before any Pyomo object.

    Keys are plain Python tuples so Pyomo indexes stay readable (`v_load[c, w, p, t]`).
    """

    settings: Settings
    periods: list[str]
    hours_t: dict[str, float]
    load_factor_t: dict[str, float]
    demand_wt: dict[tuple[str, str], float]
    # Load variables (c, w, p, t) in order, 1 / rate_rps aligned with them, and the
    # positions of each time-budget row (c, t) and demand row (w, p, t) in that order.
    load_cwpt: list[LoadKey]
    inv_rate_cwpt: np.ndarray
    load_pos_by_ct: dict[CT, np.ndarray]
    load_pos_by_wpt: dict[tuple[str, str, str], np.ndarray]
    # Per load variable: its instance variable's position and the (w, t) demand it serves.
    instance_pos_cwpt: np.ndarray
    demand_cwpt: np.ndarray
    # Colocated candidates serve whole requests: (prefill, decode) load positions per (c, w, t).
    colocated_pairs: np.ndarray
    # Instance variables (c, t) in order; upper bounds, power, and positions per period.
    instances_ct: list[CT]
    instances_ub_ct: np.ndarray
    instances_by_t: dict[str, np.ndarray]
    power_w_ct: np.ndarray
    # Per (sku, period): positions into instances_ct and chips of that SKU per instance.
    fit_ht: dict[HT, tuple[np.ndarray, np.ndarray]]
    fleet_ht: list[HT]
    existing_ht: dict[HT, float]
    buy_ht: list[HT]
    buy_ub_ht: dict[HT, float | None]
    buys_in_service_ht: dict[HT, list[HT]]
    rent_ht: list[HT]
    all_in_w_h: dict[str, float]  # per chip, all-in
    chips_per_unit_h: dict[str, int]
    price_h: dict[str, float]
    rent_usd_per_chip_hour_h: dict[str, float]
    amortized_capex_t: dict[str, list[tuple[HT, float]]]
    penalty_usd_per_rps: float
    penalty_mw_per_rps: float
    tie_break_mw_per_usd: float


def prepare_sets(data: PlanningData) -> ModelSets:
    """Sparse index lists and coefficient dicts, all from vectorised pandas operations."""
    st = data.settings
    periods = [str(t) for t in data.periods.index]
    n_t = len(periods)
    hours = data.periods["hours"].astype(float).to_numpy()
    skus = data.skus

    demand = data.demand.loc[
        data.demand["requests_per_s"] > 0, ["workload", "period", "requests_per_s"]
    ]
    demand_wt = {(str(w), str(t)): float(d) for w, t, d in demand.itertuples(index=False)}

    existing_hp = _existing_chips(data, n_t)
    buy_ht, buy_ub_ht, in_service_hp, buys_in_service = _purchase_windows(data, n_t)
    rentable_h = _rentable_skus(data)

    reachable_hp = {
        h: (existing_hp.get(h, np.zeros(n_t)) > 0)
        | in_service_hp.get(h, np.zeros(n_t, bool))
        | (h in rentable_h)
        for h in skus.index
    }
    rates = usable_rates(data)
    instances = _instances_ct(data, rates, demand, reachable_hp, periods)
    load = _load_cwpt(rates, demand, instances)

    load_keys: list[LoadKey] = list(
        zip(
            *(_objects(load[col]) for col in ("candidate", "workload", "phase", "period")),
            strict=True,
        )
    )
    inv_rate = 1.0 / load["rate_rps"].to_numpy(dtype=float)
    load_pos_by_ct = _positions(load, ["candidate", "period"])
    load_pos_by_wpt = _positions(load, ["workload", "phase", "period"])
    colocated_pairs = _colocated_pairs(load)

    instances_ct: list[CT] = list(
        zip(_objects(instances["candidate"]), _objects(instances["period"]), strict=True)
    )
    # Upper bound: instances enough to carry, alone, every load the candidate can take.
    busy = pd.Series(inv_rate * load["demand_rps"].to_numpy()).groupby(load["_ct"].to_numpy()).sum()
    instances_ub = np.ceil(
        busy.reindex(range(len(instances_ct)), fill_value=0.0).to_numpy() / st.util_max - 1e-9
    )
    instances_by_t = {
        str(t): np.asarray(pos)
        for t, pos in instances.groupby("period", sort=False).indices.items()
    }

    fit = instances.reset_index(names="_ct").merge(
        data.units[data.units["chips"] > 0], on="candidate"
    )
    fit_ct, fit_chips = fit["_ct"].to_numpy(), fit["chips"].to_numpy(float)
    fit_ht = {
        (str(h), str(t)): (fit_ct[idx], fit_chips[idx])
        for (h, t), idx in fit.groupby(["sku", "period"], sort=False).indices.items()
    }

    fit_skus = set(fit["sku"])
    used_skus = [str(h) for h in skus.index if h in fit_skus]
    fleet_ht = [(h, t) for h in used_skus for t in periods]
    existing_ht = {
        (h, periods[i]): float(existing_hp[h][i])
        for h in used_skus
        if h in existing_hp
        for i in range(n_t)
        if existing_hp[h][i] > 0
    }
    buy_ht = [k for k in buy_ht if k[0] in used_skus]
    buys_in_service_ht = {
        (h, periods[i]): [b for b in buys_in_service.get((h, i), []) if b in buy_ub_ht]
        for h in used_skus
        for i in range(n_t)
    }
    rent_ht = [(h, t) for h in used_skus if h in rentable_h for t in periods]
    if st.rented_power == "provider" and rent_ht:
        _check_instance_power_covers_rented_chips(data, {h for h, _ in rent_ht})

    price_h = {str(h): float(p) for h, p in skus["unit_price_usd"].items()}
    penalty_usd, penalty_mw, tie = _penalty_and_tie_break(data, load, demand)
    return ModelSets(
        settings=st,
        periods=periods,
        hours_t=dict(zip(periods, hours.tolist(), strict=True)),
        load_factor_t=dict(
            zip(periods, data.periods["energy_load_factor"].astype(float).tolist(), strict=True)
        ),
        demand_wt=demand_wt,
        load_cwpt=load_keys,
        inv_rate_cwpt=inv_rate,
        load_pos_by_ct=load_pos_by_ct,
        load_pos_by_wpt=load_pos_by_wpt,
        instance_pos_cwpt=load["_ct"].to_numpy(int),
        demand_cwpt=load["demand_rps"].to_numpy(float),
        colocated_pairs=colocated_pairs,
        instances_ct=instances_ct,
        instances_ub_ct=instances_ub,
        instances_by_t=instances_by_t,
        power_w_ct=instances["candidate"].map(data.candidates["power_w"]).to_numpy(float),
        fit_ht=fit_ht,
        fleet_ht=fleet_ht,
        existing_ht=existing_ht,
        buy_ht=buy_ht,
        buy_ub_ht={k: buy_ub_ht[k] for k in buy_ht},
        buys_in_service_ht=buys_in_service_ht,
        rent_ht=rent_ht,
        all_in_w_h={str(h): float(w) for h, w in skus["all_in_w_per_chip"].items()},
        chips_per_unit_h={str(h): int(n) for h, n in skus["chips_per_unit"].items()},
        price_h=price_h,
        rent_usd_per_chip_hour_h={
            str(h): float(r) for h, r in skus["rent_usd_per_chip_hour"].items()
        },
        amortized_capex_t=_amortized_capex(data, buy_ht, periods, hours),
        penalty_usd_per_rps=penalty_usd,
        penalty_mw_per_rps=penalty_mw,
        tie_break_mw_per_usd=tie,
    )


def _objects(column: pd.Series) -> list:
    """Plain Python values of a column (iterating Arrow-backed strings is slow)."""
    return column.to_numpy(dtype=object).tolist()


def _positions(frame: pd.DataFrame, keys: list[str]) -> dict[tuple, np.ndarray]:
    """{key tuple: row positions} in one groupby pass."""
    return {
        tuple(str(k) for k in key): np.asarray(idx)
        for key, idx in frame.groupby(keys, sort=False).indices.items()
    }


def _existing_chips(data: PlanningData, n_t: int) -> dict[str, np.ndarray]:
    """Existing chips in service per SKU and period position (they leave at retire)."""
    out: dict[str, np.ndarray] = {}
    grouped = data.existing.groupby(["sku", "retire_period"], sort=True)["chips"].sum()
    for (h, retire), chips in grouped.items():
        arr = out.setdefault(str(h), np.zeros(n_t))
        arr[: max(0, min(int(retire), n_t))] += float(chips)
    return out


def _purchase_windows(
    data: PlanningData, n_t: int
) -> tuple[
    list[HT], dict[HT, float | None], dict[str, np.ndarray], dict[tuple[str, int], list[HT]]
]:
    """Which (sku, period) can be bought, their caps, and which buys serve which period.

    A unit bought at t' is in service for t' + lead <= t < t' + lead + lifetime.
    """
    periods = [str(t) for t in data.periods.index]
    buy_ht: list[HT] = []
    ub: dict[HT, float | None] = {}
    in_service: dict[str, np.ndarray] = {}
    serving: dict[tuple[str, int], list[HT]] = defaultdict(list)
    for h, row in data.skus.iterrows():
        h = str(h)
        cap = row["supply_cap_units_per_period"]
        cap_units = None if pd.isna(cap) else float(math.floor(cap + 1e-9))
        if pd.isna(row["unit_price_usd"]) or cap_units == 0:
            continue
        lead, life = int(row["lead_periods"]), int(row["lifetime_periods"])
        for i in range(max(0, int(row["first_buy_period"])), n_t - lead):
            key = (h, periods[i])
            buy_ht.append(key)
            ub[key] = cap_units
            window = range(i + lead, min(i + lead + life, n_t))
            in_service.setdefault(h, np.zeros(n_t, bool))[list(window)] = True
            for j in window:
                serving[(h, j)].append(key)
    return buy_ht, ub, in_service, serving


def _check_instance_power_covers_rented_chips(data: PlanningData, rentable: set[str]) -> None:
    """With the provider paying rented chips' power, facility power is an instance's power
    less its rented chips' all-in watts (define_power), which must not go below zero: an
    instance draws at least its rentable chips' watts. Candidates from the perf model draw
    exactly the sum over their chips; this guards hand-made tables."""
    units = data.units[data.units["sku"].isin(list(rentable))]
    if units.empty:
        return
    watts = units["chips"] * units["sku"].map(data.skus["all_in_w_per_chip"])
    chip_w = watts.groupby(units["candidate"]).sum()
    power = data.candidates["power_w"].reindex(chip_w.index)
    short = chip_w[power < chip_w * (1 - 1e-9)]
    if len(short):
        c = str(short.index[0])
        raise ValueError(
            f"candidate {c}: power_w {float(power[c]):g} W is below the "
            f"{float(short[c]):g} W of its rentable chips (all_in_w_per_chip x chips); with "
            "rented_power 'provider' an instance must draw at least its chips' watts"
        )


def _rentable_skus(data: PlanningData) -> set[str]:
    if not data.settings.allow_rent:
        return set()
    rent = data.skus["rent_usd_per_chip_hour"]
    return {str(h) for h in rent[rent.notna()].index}


def usable_rates(data: PlanningData) -> pd.DataFrame:
    """Rate rows a plan can use, flagged colocated or not.

    A colocated candidate serves whole requests, so one with a rate for only one phase of
    a workload cannot serve that workload: those rows are dropped.
    """
    rates = data.rates[["candidate", "workload", "phase", "rate_rps"]]
    colocated = rates["candidate"].map(data.candidates["topology"]).eq("colocated").to_numpy()
    phases = rates.groupby(["candidate", "workload"])["phase"].transform("nunique").to_numpy()
    rates = rates.assign(colocated=colocated)
    return rates[~colocated | (phases == len(PHASES))]


def _instances_ct(
    data: PlanningData,
    rates: pd.DataFrame,
    demand: pd.DataFrame,
    reachable_hp: dict[str, np.ndarray],
    periods: list[str],
) -> pd.DataFrame:
    """(candidate, period) pairs that have demand to serve and can physically exist."""
    serves = rates[["candidate", "workload"]].drop_duplicates()
    ct = serves.merge(demand[["workload", "period"]], on="workload")[["candidate", "period"]]
    ct = ct.drop_duplicates()
    pos = {t: i for i, t in enumerate(periods)}
    units = data.units[data.units["chips"] > 0][["candidate", "sku"]]
    reach = pd.DataFrame(
        [
            (h, t)
            for h, arr in reachable_hp.items()
            for t, ok in zip(periods, arr, strict=True)
            if ok
        ],
        columns=["sku", "period"],
    )
    need = units.merge(ct, on="candidate")
    need = need.merge(reach.assign(ok=True), on=["sku", "period"], how="left")
    blocked = need.loc[need["ok"].isna(), ["candidate", "period"]].drop_duplicates()
    ct = ct.merge(blocked.assign(blocked=True), on=["candidate", "period"], how="left")
    ct = ct.loc[ct["blocked"].isna(), ["candidate", "period"]]
    cand_order = {c: i for i, c in enumerate(data.candidates.index)}
    ct = ct.assign(_t=ct["period"].map(pos), _c=ct["candidate"].map(cand_order))
    ct = ct.sort_values(["_t", "_c"], kind="stable")
    return ct[["candidate", "period"]].astype(str).reset_index(drop=True)


def _load_cwpt(rates: pd.DataFrame, demand: pd.DataFrame, instances: pd.DataFrame) -> pd.DataFrame:
    """Load variables: rate rows x periods with demand, where the candidate can exist.

    Ordered by instance row (`_ct`), then workload, then phase, so the variables of one
    time-budget row are adjacent. Carries demand_rps for the instance upper bounds.
    """
    load = rates.merge(demand.rename(columns={"requests_per_s": "demand_rps"}), on="workload")
    order = instances.reset_index(names="_ct")
    load = load.merge(order, on=["candidate", "period"])
    load = load.assign(_p=load["phase"].map({p: i for i, p in enumerate(PHASES)}))
    load = load.sort_values(["_ct", "workload", "_p"], kind="stable")
    return load.reset_index(drop=True)


def _colocated_pairs(load: pd.DataFrame) -> np.ndarray:
    """(prefill position, decode position) of every colocated (c, w, t), shape (n, 2)."""
    col = load.loc[load["colocated"].to_numpy(bool)]
    if col.empty:
        return np.zeros((0, 2), dtype=int)
    pre = col.index[col["phase"].eq("prefill").to_numpy()].to_numpy()
    dec = col.index[col["phase"].eq("decode").to_numpy()].to_numpy()
    return np.column_stack([pre, dec])  # load is sorted (c, t), w, phase: rows alternate


def _amortized_capex(
    data: PlanningData, buy_ht: list[HT], periods: list[str], hours: np.ndarray
) -> dict[str, list[tuple[HT, float]]]:
    """Per period, (buy key, USD per unit) charged while the unit is in service."""
    pos = {t: i for i, t in enumerate(periods)}
    mean_hours = float(hours.mean()) if len(hours) else 0.0
    out: dict[str, list[tuple[HT, float]]] = defaultdict(list)
    for h, t_buy in buy_ht:
        row = data.skus.loc[h]
        lead, life = int(row["lead_periods"]), int(row["lifetime_periods"])
        usd_per_hour = float(row["unit_price_usd"]) / (life * mean_hours)
        start = pos[t_buy] + lead
        for j in range(start, min(start + life, len(periods))):
            out[periods[j]].append(((h, t_buy), usd_per_hour * float(hours[j])))
    return dict(out)


def unserved_penalty(data: PlanningData) -> tuple[float, float]:
    """(USD, MW) penalty per request/s unserved in one period, as the model uses them."""
    s = prepare_sets(data)
    return s.penalty_usd_per_rps, s.penalty_mw_per_rps


def _penalty_and_tie_break(
    data: PlanningData, load: pd.DataFrame, demand: pd.DataFrame
) -> tuple[float, float, float]:
    """Scale the unserved penalty so that it dominates every real cost of serving.

    Serving 1 request/s of (w, p) on candidate c takes n1 = ceil(1 / (rate x util_max))
    instances. Its cost is bounded by whole purchase units for n1 x chips of every SKU (or
    renting them for the whole horizon, if dearer) plus energy and hosting over the whole
    horizon (with hosting basis "installed", hosting on every chip of those units); its
    power by n1 x power x PUE. In each (w, p, t), only candidates that can
    exist then and that are on the (USD, MW) per request frontier can be the cheapest route
    left under some limit: a candidate dearer *and* hungrier than another one is never
    needed. The penalty is max(setting, 10 x the largest over (w, t) of the sum over phases
    of the dearest frontier route). Scaling over every candidate instead would let one
    absurd configuration (e.g. a 20,000-chip SRAM instance) push the penalty to 1e10+ and
    break the LP numerically. The MW penalty (power objective) is built the same way.
    The tie-break weight keeps the whole cost of any plan below half an instance's power.
    """
    st = data.settings
    if load.empty:
        return st.unserved_penalty_usd_per_rps, 1e-6, 0.0
    keys = ["candidate", "workload", "phase"]
    rates = load[[*keys, "rate_rps"]].drop_duplicates(keys)
    total_hours = float(data.periods["hours"].sum())
    per = rates[keys].assign(n1=np.ceil(1.0 / (rates["rate_rps"].to_numpy() * st.util_max) - 1e-9))
    hw = per.merge(data.units, on="candidate").merge(
        data.skus[["chips_per_unit", "unit_price_usd", "rent_usd_per_chip_hour", "all_in_w_per_chip"]],
        left_on="sku",
        right_index=True,
    )  # fmt: skip
    chips = hw["n1"] * hw["chips"]
    units = np.ceil(chips / hw["chips_per_unit"] - 1e-9)
    buy = units * hw["unit_price_usd"].fillna(0.0)
    rent = chips * hw["rent_usd_per_chip_hour"].fillna(0.0) * total_hours
    if st.hosting_basis == "installed":
        # Hosting on every chip in service: the route's whole units, idle chips included
        # (a 4-chip instance on a 72-chip rack hosts the rack), and its rented chips where
        # they draw facility power. `running` below covers only the instances' own power.
        usd_per_w = st.pue * st.hosting_usd_per_kw_month / HOURS_PER_MONTH / 1e3 * total_hours
        buy = buy + units * hw["chips_per_unit"] * hw["all_in_w_per_chip"] * usd_per_w
        if st.rented_power == "facility":
            rent = rent + chips * hw["all_in_w_per_chip"] * usd_per_w
    hw_usd = hw.assign(usd=np.maximum(buy, rent)).groupby(keys, sort=False)["usd"].sum()
    power_w = per["candidate"].map(data.candidates["power_w"]).to_numpy(float)
    it_w = per["n1"].to_numpy() * power_w
    kw = it_w * st.pue / 1e3
    running = it_w * total_hours * st.running_usd_per_w_hour
    per = per.assign(
        mw=kw / 1e3,
        usd=running + hw_usd.reindex(pd.MultiIndex.from_frame(per[keys])).fillna(0.0).to_numpy(),
    ).set_index(keys)

    wpt = ["workload", "phase", "period"]
    rows = load[[*keys, "period"]].join(per[["usd", "mw"]], on=keys)
    rows = rows.sort_values([*wpt, "usd", "mw"], kind="stable")
    best_mw_before = (
        rows.groupby(wpt, sort=False)["mw"]
        .cummin()
        .groupby([rows[k] for k in wpt], sort=False)
        .shift(1)
    )
    front = rows[best_mw_before.isna() | (rows["mw"] < best_mw_before)]
    worst_wt = front.groupby(wpt)[["usd", "mw"]].max().groupby(["workload", "period"]).sum()
    penalty_usd = max(
        st.unserved_penalty_usd_per_rps, PENALTY_SAFETY * float(worst_wt["usd"].max())
    )
    penalty_mw = max(1e-6, PENALTY_SAFETY * float(worst_wt["mw"].max()))
    # Cost upper bound: every request in every period served the dearest frontier way.
    d_wt = demand.set_index(["workload", "period"])["requests_per_s"]
    cost_ub = float((d_wt * worst_wt["usd"].reindex(d_wt.index).fillna(0.0)).sum())
    positive = power_w[power_w > 0]
    step_mw = positive.min() * st.pue / 1e6 if len(positive) else 1e-6
    tie = TIE_BREAK_FRACTION * step_mw / max(cost_ub, 1.0)
    return penalty_usd, penalty_mw, tie


# --------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------


def build_model(data: PlanningData) -> pyo.ConcreteModel:
    """Build the planning MIP from PlanningData (no solve). Reads top to bottom."""
    start = time.perf_counter()
    check_planning_data(data)
    s = prepare_sets(data)
    m = pyo.ConcreteModel(name="fleet_planner")
    m.sets = s
    define_variables(m, s)
    define_demand_served(m, s)
    define_time_budget(m, s)
    define_colocated_whole_requests(m, s)
    define_load_needs_an_instance(m, s)
    define_instances_cover_demand(m, s)
    define_instances_fit_fleet(m, s)
    define_rented_chips_in_use(m, s)
    define_fleet_accounting(m, s)
    define_power(m, s)
    define_peak_power(m, s)
    define_capex_budget(m, s)
    define_cost_expressions(m, s)
    define_objective(m, s)
    m.build_s = time.perf_counter() - start
    return m


def define_variables(m: pyo.ConcreteModel, s: ModelSets) -> None:
    """All decision variables, on their sparse index lists."""
    nonneg = pyo.NonNegativeReals
    m.v_buy = pyo.Var(
        s.buy_ht, domain=pyo.NonNegativeIntegers, bounds=lambda _m, h, t: (0, s.buy_ub_ht[(h, t)])
    )
    m.v_fleet = pyo.Var(s.fleet_ht, domain=nonneg)
    m.v_rent = pyo.Var(s.rent_ht, domain=nonneg)
    instance_domain = nonneg if s.settings.relax_instances else pyo.NonNegativeIntegers
    ub = s.instances_ub_ct.tolist()
    m.v_instances = pyo.Var(s.instances_ct, domain=instance_domain)
    for v, upper in zip(m.v_instances.values(), ub, strict=True):
        v.setub(upper)
    m.v_load = pyo.Var(s.load_cwpt, domain=nonneg)
    m.v_unserved = pyo.Var(list(s.demand_wt), domain=nonneg)


def _linear(coefs: list[float], variables: list[Any]) -> LinearExpression:
    """sum coef x var as one LinearExpression (no per-term operator overloading)."""
    return LinearExpression(linear_coefs=coefs, linear_vars=variables)


def define_demand_served(m: pyo.ConcreteModel, s: ModelSets) -> None:
    """sum_c v_load[c,w,p,t] + v_unserved[w,t] = demand[w,t] for both phases.

    One unserved amount per (w, t) for both phases: a request is served whole or not at
    all. A phase with no candidate leaves the row as `v_unserved = demand`.
    """
    index = [(w, p, t) for (w, t) in s.demand_wt for p in PHASES]
    if not index:
        return
    loads = list(m.v_load.values())
    empty = np.zeros(0, dtype=int)

    def rule(m: pyo.ConcreteModel, w: str, p: str, t: str) -> object:
        terms = [loads[i] for i in s.load_pos_by_wpt.get((w, p, t), empty).tolist()]
        terms.append(m.v_unserved[w, t])
        return LinearExpression(args=terms) == s.demand_wt[(w, t)]

    m.c_demand_served = pyo.Constraint(index, rule=rule)


def define_time_budget(m: pyo.ConcreteModel, s: ModelSets) -> None:
    """sum_{w,p} v_load / rate <= util_max x v_instances: colocated phases share time."""
    if not s.instances_ct:
        return
    util = s.settings.util_max
    loads = list(m.v_load.values())
    inv_rate = s.inv_rate_cwpt

    def rule(m: pyo.ConcreteModel, c: str, t: str) -> object:
        pos = s.load_pos_by_ct[(c, t)]
        coefs = [*inv_rate[pos].tolist(), -util]
        return _linear(coefs, [*(loads[i] for i in pos.tolist()), m.v_instances[c, t]]) <= 0

    m.c_time_budget = pyo.Constraint(s.instances_ct, rule=rule)


def define_colocated_whole_requests(m: pyo.ConcreteModel, s: ModelSets) -> None:
    """v_load[c,w,prefill,t] = v_load[c,w,decode,t] for colocated candidates.

    A colocated instance serves whole requests; serving only one phase of a request would
    be a PD split, whose KV transfer its rates do not include. (A colocated candidate with a
    rate for only one phase of a workload cannot serve it; those rows have no variable.)
    """
    if not len(s.colocated_pairs):
        return
    loads = list(m.v_load.values())
    pairs = {
        (c, w, t): (pre, dec)
        for pre, dec in s.colocated_pairs.tolist()
        for c, w, _, t in [s.load_cwpt[pre]]
    }

    def rule(m: pyo.ConcreteModel, c: str, w: str, t: str) -> object:
        pre, dec = pairs[(c, w, t)]
        return _linear([1.0, -1.0], [loads[pre], loads[dec]]) == 0

    m.c_colocated_whole_requests = pyo.Constraint(list(pairs), rule=rule)


def define_load_needs_an_instance(m: pyo.ConcreteModel, s: ModelSets) -> None:
    """v_load[c,w,p,t] <= demand[w,t] x v_instances[c,t].

    Implied by the integer model (a load needs at least one instance and never exceeds its
    demand), so it removes no plan; it is here for the LP relaxation. Where one instance
    could carry more than the whole demand, the time budget lets the relaxation open a
    sliver of an instance (load / (rate x util_max)) and the fixed cost of the hardware
    all but vanishes from the bound: the classic weak fixed-charge (facility location)
    relaxation. This disaggregated bound makes that sliver at least load / demand. On the
    bundled forecast it cuts the MIP's solve time three- to five-fold. Where the demand
    exceeds one instance's rate the row is redundant, but it is written anyway so the row
    set does not depend on demand (a sweep then changes coefficients only, and HiGHS was
    faster with the full family than with the binding rows alone). Not valid when
    instances are relaxed to continuous (an instance may then be any fraction): skipped.
    """
    if s.settings.relax_instances or not len(s.load_cwpt):
        return
    loads = list(m.v_load.values())
    instances = list(m.v_instances.values())
    inst_pos = s.instance_pos_cwpt.tolist()
    demand = s.demand_cwpt.tolist()
    position = {key: k for k, key in enumerate(s.load_cwpt)}

    def rule(m: pyo.ConcreteModel, c: str, w: str, p: str, t: str) -> object:
        k = position[(c, w, p, t)]
        return _linear([1.0, -demand[k]], [loads[k], instances[inst_pos[k]]]) <= 0

    # Indexed like v_load, so a row keeps its name when the load set changes (sweeps).
    m.c_load_needs_an_instance = pyo.Constraint(s.load_cwpt, rule=rule)


def instance_cover_rps(
    inv_rate: np.ndarray, colocated_pairs: np.ndarray, util_max: float, demand_rps: np.ndarray
) -> np.ndarray:
    """Per load row (c, w, p, t): the requests/s one instance of c can carry of (w, p)
    alone, at most the demand: min(util_max x rate, demand).

    A colocated instance carries prefill and decode of the same requests, so its share of
    either phase is util_max / (1/rate_prefill + 1/rate_decode). The cap at the demand is
    c_load_needs_an_instance's bound (valid because instances are whole numbers)."""
    inv = inv_rate.astype(float, copy=True)
    if len(colocated_pairs):
        pre, dec = colocated_pairs[:, 0], colocated_pairs[:, 1]
        both = inv[pre] + inv[dec]
        inv[pre] = both
        inv[dec] = both
    return np.minimum(util_max / inv, demand_rps)


def define_instances_cover_demand(m: pyo.ConcreteModel, s: ModelSets) -> None:
    """sum_c cover[c,w,p] x v_instances[c,t] + v_unserved[w,t] >= demand[w,t], with cover
    = instance_cover_rps (what one instance carries of the phase, capped at the demand).

    A redundant row, for branch and bound only. It is the sum over candidates of what the
    time budget (load <= util_max x rate x instances) and c_load_needs_an_instance (load
    <= demand x instances) already say, so it removes no plan and leaves the LP
    relaxation as it was. What it adds is one knapsack row per (w, p, t) over the integer
    instance counts, with unserved demand as its only continuous column: the row HiGHS's
    cut separation (MIR, knapsack covers) would otherwise have to find by aggregating
    three families, with its coefficients already reduced to the demand. Measured on the
    bundled forecasts: default.csv solves in about half the time, the `cover` pruning mode
    1.4-3.8x faster (benchmarks/HISTORY.md). Skipped when instances are relaxed to
    continuous (the cap at the demand is not implied then).
    """
    if s.settings.relax_instances or not len(s.load_cwpt):
        return
    instances = list(m.v_instances.values())
    inst_pos = s.instance_pos_cwpt
    cover = instance_cover_rps(
        s.inv_rate_cwpt, s.colocated_pairs, s.settings.util_max, s.demand_cwpt
    )

    def rule(m: pyo.ConcreteModel, w: str, p: str, t: str) -> object:
        pos = s.load_pos_by_wpt[(w, p, t)]
        coefs = [*cover[pos].tolist(), 1.0]
        variables = [*(instances[i] for i in inst_pos[pos].tolist()), m.v_unserved[w, t]]
        return _linear(coefs, variables) >= s.demand_wt[(w, t)]

    m.c_instances_cover_demand = pyo.Constraint(list(s.load_pos_by_wpt), rule=rule)


def define_instances_fit_fleet(m: pyo.ConcreteModel, s: ModelSets) -> None:
    """sum_c chips[c,h] x v_instances[c,t] <= v_fleet[h,t] + v_rent[h,t]."""
    if not s.fit_ht:
        return
    rentable = set(s.rent_ht)
    instances = list(m.v_instances.values())

    def rule(m: pyo.ConcreteModel, h: str, t: str) -> object:
        pos, chips = s.fit_ht[(h, t)]
        coefs = [*chips.tolist(), -1.0]
        variables = [*(instances[i] for i in pos.tolist()), m.v_fleet[h, t]]
        if (h, t) in rentable:
            coefs.append(-1.0)
            variables.append(m.v_rent[h, t])
        return _linear(coefs, variables) <= 0

    m.c_instances_fit_fleet = pyo.Constraint(list(s.fit_ht), rule=rule)


def _provider_rent_ht(s: ModelSets) -> list[HT]:
    """Rentals whose power the provider pays (rented_power "provider"), where chips are used."""
    if s.settings.rented_power != "provider":
        return []
    return [k for k in s.rent_ht if k in s.fit_ht]


def define_rented_chips_in_use(m: pyo.ConcreteModel, s: ModelSets) -> None:
    """v_rent[h,t] <= sum_c chips[c,h] x v_instances[c,t] when the provider pays rented
    chips' power: facility power then counts only owned chips in use (see define_power),
    and a rented chip left idle must not count as owned power saved."""
    index = _provider_rent_ht(s)
    if not index:
        return
    instances = list(m.v_instances.values())

    def rule(m: pyo.ConcreteModel, h: str, t: str) -> object:
        pos, chips = s.fit_ht[(h, t)]
        coefs = [*chips.tolist(), -1.0]
        return _linear(coefs, [*(instances[i] for i in pos.tolist()), m.v_rent[h, t]]) >= 0

    m.c_rented_chips_in_use = pyo.Constraint(index, rule=rule)


def define_fleet_accounting(m: pyo.ConcreteModel, s: ModelSets) -> None:
    """v_fleet[h,t] = existing in service + chips_per_unit x buys in service at t."""
    if not s.fleet_ht:
        return

    def rule(m: pyo.ConcreteModel, h: str, t: str) -> object:
        bought = pyo.quicksum(m.v_buy[b] for b in s.buys_in_service_ht[(h, t)])
        return m.v_fleet[h, t] == s.existing_ht.get((h, t), 0.0) + s.chips_per_unit_h[h] * bought

    m.c_fleet_accounting = pyo.Constraint(s.fleet_ht, rule=rule)


def define_power(m: pyo.ConcreteModel, s: ModelSets) -> None:
    """e_power_mw[t]: facility MW of the instances in use; <= power_budget_mw when set.

    Idle owned chips are assumed powered down, so they draw nothing. With rented_power
    "provider", rented chips (all in use, define_rented_chips_in_use) are taken out: an
    instance's power is the sum of its chips' all-in watts, so what is left is the power of
    the owned chips in use.
    """
    pue = s.settings.pue
    mw_per_instance = s.power_w_ct * pue / 1e6
    instances = list(m.v_instances.values())
    empty = np.zeros(0, dtype=int)
    rented_by_t = _group_by_period(_provider_rent_ht(s))

    def power(m: pyo.ConcreteModel, t: str) -> object:
        pos = s.instances_by_t.get(t, empty)
        rented = rented_by_t.get(t, ())
        return _linear(
            [*mw_per_instance[pos].tolist(), *(-s.all_in_w_h[h] * pue / 1e6 for h in rented)],
            [*(instances[i] for i in pos.tolist()), *(m.v_rent[h, t] for h in rented)],
        )

    m.e_power_mw = pyo.Expression(s.periods, rule=power)
    budget = s.settings.power_budget_mw
    index = [t for t in s.periods if t in s.instances_by_t]
    if budget is None or not index:
        return
    m.c_power_budget = pyo.Constraint(index, rule=lambda m, t: m.e_power_mw[t] <= budget)


def define_peak_power(m: pyo.ConcreteModel, s: ModelSets) -> None:
    """v_peak_mw >= e_power_mw[t]; its upper bound is the Pareto epsilon (peak cap)."""
    st = s.settings
    if st.objective != "power" and st.peak_power_cap_mw is None:
        return
    m.v_peak_mw = pyo.Var(domain=pyo.NonNegativeReals, bounds=(0, st.peak_power_cap_mw))
    index = [t for t in s.periods if t in s.instances_by_t]
    if not index:
        return
    m.c_peak_power = pyo.Constraint(index, rule=lambda m, t: m.e_power_mw[t] <= m.v_peak_mw)


def define_capex_budget(m: pyo.ConcreteModel, s: ModelSets) -> None:
    """Cash paid for purchases: <= the horizon budget and <= the per-period budget."""
    buys_t = _group_by_period(s.buy_ht)
    m.e_capex_paid_usd = pyo.Expression(
        s.periods,
        rule=lambda m, t: pyo.quicksum(s.price_h[h] * m.v_buy[h, t] for h in buys_t.get(t, ())),
    )
    st = s.settings
    if not s.buy_ht:
        return
    if st.capex_budget_usd is not None:
        m.c_capex_budget = pyo.Constraint(
            expr=pyo.quicksum(m.e_capex_paid_usd[t] for t in s.periods) <= st.capex_budget_usd
        )
    if st.capex_budget_usd_per_period is not None:
        index = sorted({t for _, t in s.buy_ht}, key=s.periods.index)
        limit = st.capex_budget_usd_per_period
        m.c_capex_budget_per_period = pyo.Constraint(
            index, rule=lambda m, t: m.e_capex_paid_usd[t] <= limit
        )


def _installed_mw(m: pyo.ConcreteModel, s: ModelSets) -> Any:
    """e_installed_mw[t]: facility MW of every chip in service at t, busy or idle (owned,
    and rented with rented_power "facility"), at its all-in watts x PUE: what hosting
    basis "installed" charges. It is never below e_power_mw, since the chips in use are
    among them (c_instances_fit_fleet)."""
    mw_per_chip = {h: s.all_in_w_h[h] * s.settings.pue / 1e6 for h in s.all_in_w_h}
    owned_t = _group_by_period(s.fleet_ht)
    rented_t = _group_by_period(s.rent_ht if s.settings.rented_power == "facility" else [])

    def installed(m: pyo.ConcreteModel, t: str) -> object:
        owned, rented = owned_t.get(t, ()), rented_t.get(t, ())
        return _linear(
            [*(mw_per_chip[h] for h in owned), *(mw_per_chip[h] for h in rented)],
            [*(m.v_fleet[h, t] for h in owned), *(m.v_rent[h, t] for h in rented)],
        )

    m.e_installed_mw = pyo.Expression(s.periods, rule=installed)
    return m.e_installed_mw


def define_cost_expressions(m: pyo.ConcreteModel, s: ModelSets) -> None:
    """Per-period cost components in USD: capex (by basis), rental, energy, hosting."""
    st = s.settings
    if st.cost_basis == "amortized":
        m.e_capex_usd = pyo.Expression(
            s.periods,
            rule=lambda m, t: pyo.quicksum(
                usd * m.v_buy[b] for b, usd in s.amortized_capex_t.get(t, ())
            ),
        )
    else:
        m.e_capex_usd = pyo.Expression(s.periods, rule=lambda m, t: m.e_capex_paid_usd[t])
    rent = s.rent_usd_per_chip_hour_h
    rents_t = _group_by_period(s.rent_ht)
    m.e_rental_usd = pyo.Expression(
        s.periods,
        rule=lambda m, t: pyo.quicksum(
            rent[h] * s.hours_t[t] * m.v_rent[h, t] for h in rents_t.get(t, ())
        ),
    )
    usd_per_mw_energy = {
        t: 1000.0 * s.hours_t[t] * s.load_factor_t[t] * st.electricity_usd_per_kwh
        for t in s.periods
    }
    m.e_energy_usd = pyo.Expression(
        s.periods, rule=lambda m, t: usd_per_mw_energy[t] * m.e_power_mw[t]
    )
    usd_per_mw_hosting = {
        t: 1000.0 * st.hosting_usd_per_kw_month * s.hours_t[t] / HOURS_PER_MONTH for t in s.periods
    }
    hosted_mw = m.e_power_mw if st.hosting_basis == "in_use" else _installed_mw(m, s)
    m.e_hosting_usd = pyo.Expression(
        s.periods, rule=lambda m, t: usd_per_mw_hosting[t] * hosted_mw[t]
    )
    m.e_cost_usd = pyo.Expression(
        expr=pyo.quicksum(
            m.e_capex_usd[t] + m.e_rental_usd[t] + m.e_energy_usd[t] + m.e_hosting_usd[t]
            for t in s.periods
        )
    )
    m.e_unserved_rps = pyo.Expression(expr=pyo.quicksum(m.v_unserved.values()))


def define_objective(m: pyo.ConcreteModel, s: ModelSets) -> None:
    """o_cost always exists; with objective "power", o_power is active and o_cost idle."""
    pos = {t: i for i, t in enumerate(s.periods)}
    late = [
        (BUY_LATE_TIE_BREAK * s.price_h[h] * (len(s.periods) - 1 - pos[t]), m.v_buy[h, t])
        for h, t in s.buy_ht
        if pos[t] < len(s.periods) - 1
    ]
    m.e_buy_late_tie_break = pyo.Expression(
        expr=_linear([c for c, _ in late], [v for _, v in late])
    )
    m.o_cost = pyo.Objective(
        expr=m.e_cost_usd + s.penalty_usd_per_rps * m.e_unserved_rps + m.e_buy_late_tie_break,
        sense=pyo.minimize,
    )
    if s.settings.objective != "power":
        return
    m.o_power = pyo.Objective(
        expr=m.v_peak_mw
        + s.penalty_mw_per_rps * m.e_unserved_rps
        + s.tie_break_mw_per_usd * m.e_cost_usd,
        sense=pyo.minimize,
    )
    m.o_cost.deactivate()


def outside_skus(m: pyo.ConcreteModel, data: PlanningData, allowed: set[str]) -> list[Any]:
    """The variables a plan restricted to the SKUs in `allowed` must hold at zero: the
    instances and loads of every candidate that needs another SKU, and the purchases and
    rentals of other SKUs (`only_skus` fixes them; the comparison fleets' LP bounds zero
    their columns in compiled arrays)."""
    skus_of = data.units.groupby("candidate")["sku"].agg(set)
    banned = {c for c, skus in skus_of.items() if not skus <= allowed}
    return [
        v
        for var, is_out in (
            (m.v_instances, lambda k: k[0] in banned),
            (m.v_load, lambda k: k[0] in banned),
            (m.v_buy, lambda k: k[0] not in allowed),
            (m.v_rent, lambda k: k[0] not in allowed),
        )
        for k, v in var.items()
        if is_out(k)
    ]


@contextmanager
def only_skus(m: pyo.ConcreteModel, data: PlanningData, allowed: set[str]) -> Iterator[None]:
    """Within the block the model may use only the SKUs in `allowed`.

    The instances and loads of every candidate that needs another SKU, and the purchases
    and rentals of other SKUs, are fixed at zero; on exit they are freed and their values
    restored. Solving inside is the model built from `restrict_to(data, allowed)` without
    building one per restriction: existing units of other SKUs stay in their fleet rows,
    but nothing can run on them and idle units cost nothing. One difference: the unserved
    penalty is the whole model's; both dominate every serving cost (see
    `_penalty_and_tie_break`), so the restricted optimum is the same.
    """
    fixed = [v for v in outside_skus(m, data, allowed) if not v.fixed]
    saved = [v.value for v in m.component_data_objects(pyo.Var, descend_into=True)]
    for v in fixed:
        v.fix(0)
    try:
        yield
    finally:
        for v in fixed:
            v.unfix()
        for v, value in zip(
            m.component_data_objects(pyo.Var, descend_into=True), saved, strict=True
        ):
            v.set_value(value, skip_validation=True)


def _group_by_period(keys_ht: list[HT]) -> dict[str, list[str]]:
    """{period: [sku, ...]} so per-period expressions never scan the whole list."""
    out: dict[str, list[str]] = defaultdict(list)
    for h, t in keys_ht:
        out[t].append(h)
    return dict(out)


def model_size(m: pyo.ConcreteModel) -> dict[str, int]:
    """Variable and constraint counts (for the golden-size test and the benchmark)."""
    variables = list(m.component_data_objects(pyo.Var, descend_into=True))
    return {
        "variables": len(variables),
        "integer_variables": sum(1 for v in variables if v.is_integer()),
        "constraints": sum(
            1 for _ in m.component_data_objects(pyo.Constraint, active=True, descend_into=True)
        ),
    }
