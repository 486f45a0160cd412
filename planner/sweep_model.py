"""One compiled planning MIP, re-solved for many scenarios (the fast path of `planner sweep`).

Rebuilding the Pyomo model and compiling it costs far more than the HiGHS solve on
sweep-sized models, so a sweep builds one *reference* model, compiles it to arrays once
(`PersistentModel`) and, for each scenario, rewrites only the numbers that differ:

  scenario input (PlanningData)          where it lives in the compiled model
  demand.requests_per_s                  right-hand sides of c_demand_served; upper bounds
                                         of v_instances (recomputed as formulation does)
  rates (an SLA re-filters candidates)   time-budget coefficients 1/rate of v_load; load
                                         columns of (candidate, workload, phase) rows the
                                         scenario lacks get upper bound 0
  demand and rates together              coefficients and lower bounds of
                                         c_instances_cover_demand (instance_cover_rps)
  settings.power_budget_mw               row upper bounds of c_power_budget (None = inf)
  settings.capex_budget_usd              row upper bound of c_capex_budget
  skus.unit_price_usd                    objective coefficients of v_buy[sku, *] and their
                                         capex-budget coefficients (scaled by the ratio)
  skus.rent_usd_per_chip_hour            objective coefficients of v_rent[sku, *]
  settings.electricity_usd_per_kwh,      energy part of the v_instances objective
  periods.energy_load_factor             coefficients (scaled per period)

The reference model holds the union of every scenario's candidates, a power / capex budget
row wherever some scenario sets one, and positive reference prices, so every scenario is
the reference with numbers changed. `apply(data)` reads a scenario from the same
`PlanningData` that `planner plan` would build; anything else that differs (another PUE, a
new SKU, other periods...) raises `NotPersistent`, and the caller rebuilds. `check_apply`
compares an applied model with a fresh build of the same scenario, entry by entry, so a
change in formulation.py that this mapping does not know about is caught, not trusted.

The unserved-demand penalty is scaled by formulation.py from the candidates and prices, so
a scenario's own (`formulation.unserved_penalty`, which the caller caches per candidate
table and prices) replaces the reference's before the first solve, as a fresh build would
have it. (Solving with the reference's first and again only on a shortfall cost a third
MIP on exactly the scenarios whose MIPs are hardest.)

A scenario whose arrays are a *restriction* of an already solved one (the same objective
and matrix, bounds no looser: a tighter power or capex budget) and where every solution
that one rests on is feasible, has that solution as its optimum (`reuse`): the other's
bound bounds it too, and its own optimum can be no better. The sweep tries this within
groups of points that differ only in limits, solved loosest first.

Solving follows `planner plan` step for step (`solve_scenario`): LP relaxation, rounded MIP
start, MIP (planner.solve's recipe, on arrays); objective "power" lexicographic (peak MW with
the scenario's own cost tie-break, then cost at that peak); objective "cost" by
`planner.shortfall.least_unserved_then_cheapest`, the one implementation `planner plan`
calls too (planning.cheapest_at_shortfall): with a shortfall, the least unserved demand, then the
cheapest plan at it, started from the first stage's answer. Every solve uses fresh HiGHS
objects and no other scenario's solution as a start, so a scenario's result does not
depend on which worker solved what before it; `reuse` is deterministic too as long as a limit group is solved together, in
its fixed order (planner.sweep chunks by whole groups).

Starting each scenario from a neighbour's solution was measured and left out: on the
default forecast HiGHS spends its time on root cuts and on proving the bound, so neither
neighbours' solutions (completed by an LP with their integers fixed: 1.6 s -> 1.6-2.1 s)
nor even the scenario's own optimum (1.6 s -> 1.9 s) shortened an unconstrained solve,
and the own optimum cut a power-capped one by only 40 % (11.5 s -> 6.9 s).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from planner.formulation import build_model, instance_cover_rps, prepare_sets
from planner.model_data import PlanningData
from planner.pyomo_env import pyo
from planner.shortfall import (
    Outcome,
    least_unserved_then_cheapest,
    linear_coefficients,
    solve_arrays,
)
from planner.solve import (
    PEAK_SLACK,
    CompiledModel,
    SolverProfile,
    compile_model,
    lexicographic_gap,
)

# Settings a scenario may change on the persistent path; any other difference rebuilds.
PERSISTENT_SETTINGS = ("power_budget_mw", "capex_budget_usd", "electricity_usd_per_kwh")
# formulation.py components the mapping reads (see the module docstring).
_REQUIRED = ("v_buy", "v_instances", "v_load", "v_unserved", "c_demand_served", "c_time_budget")
_SKU_PRICE_COLUMNS = ("unit_price_usd", "rent_usd_per_chip_hour")


class NotPersistent(Exception):
    """This scenario differs from the reference in a way the persistent path cannot express."""


# --------------------------------------------------------------------------------------
# Compiled model with named rows and columns
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Terms:
    """Cost and power as linear functions of the solution vector (reference numbers)."""

    capex: np.ndarray  # USD per unit of each column, summed over periods
    rental: np.ndarray
    hosting: np.ndarray
    energy_t: sp.csr_matrix  # (periods x columns) USD
    power_mw_t: sp.csr_matrix  # (periods x columns) facility MW

    def cost(self) -> np.ndarray:
        """USD per unit of each column: e_cost_usd (capex, rental, energy, hosting)."""
        return (
            self.capex + self.rental + self.hosting + np.asarray(self.energy_t.sum(axis=0)).ravel()
        )

    def scaled(
        self, buy_ratio: np.ndarray, rent_ratio: np.ndarray, energy_ratio_t: np.ndarray
    ) -> Terms:
        return Terms(
            capex=self.capex * buy_ratio,
            rental=self.rental * rent_ratio,
            hosting=self.hosting,
            energy_t=sp.diags(energy_ratio_t) @ self.energy_t,
            power_mw_t=self.power_mw_t,
        )


@dataclass
class Layout:
    """Which column and row is which: component name and index tuple of each."""

    col_comp: np.ndarray  # str per column
    col_index: list[tuple[Any, ...]]
    row_comp: np.ndarray
    row_index: list[tuple[Any, ...]]
    col_pos: dict[tuple[str, tuple[Any, ...]], int] = field(init=False)
    row_pos: dict[tuple[str, tuple[Any, ...]], int] = field(init=False)

    def __post_init__(self) -> None:
        self.col_pos = {(str(c), i): j for j, (c, i) in enumerate(zip(self.col_comp, self.col_index, strict=True))}  # fmt: skip
        self.row_pos = {(str(c), i): j for j, (c, i) in enumerate(zip(self.row_comp, self.row_index, strict=True))}  # fmt: skip

    def cols(self, comp: str) -> np.ndarray:
        return np.flatnonzero(self.col_comp == comp)

    def rows(self, comp: str) -> np.ndarray:
        return np.flatnonzero(self.row_comp == comp)


def _as_tuple(index: Any) -> tuple[Any, ...]:
    if index is None:
        return ()
    return tuple(index) if isinstance(index, tuple) else (index,)


def _layout(cm: CompiledModel) -> Layout:
    """Component names from the compile (column_group, row_group), indices from Pyomo."""
    rows = [r.constraint for r in cm.rows]
    row_comp = cm.row_group
    if row_comp is None:
        row_comp = np.array([c.parent_component().local_name for c in rows], dtype=object)
    return Layout(
        col_comp=cm.column_group,
        col_index=[_as_tuple(v.index()) for v in cm.columns],
        row_comp=row_comp,
        row_index=[_as_tuple(c.index()) for c in rows],
    )


def _per_period(
    m: pyo.ConcreteModel, name: str, periods: list[str], col_of: dict[int, int], n: int
) -> np.ndarray:
    """(periods x columns) coefficients of an expression indexed by period."""
    comp = getattr(m, name, None)
    if comp is None:
        return np.zeros((len(periods), n))
    return np.vstack([linear_coefficients(comp[t], col_of, n)[0] for t in periods])


def _terms(m: pyo.ConcreteModel, periods: list[str], col_of: dict[int, int], n: int) -> Terms:
    def each(name: str) -> np.ndarray:
        return _per_period(m, name, periods, col_of, n)

    return Terms(
        capex=each("e_capex_usd").sum(axis=0),
        rental=each("e_rental_usd").sum(axis=0),
        hosting=each("e_hosting_usd").sum(axis=0),
        energy_t=sp.csr_matrix(each("e_energy_usd")),
        power_mw_t=sp.csr_matrix(each("e_power_mw")),
    )


# --------------------------------------------------------------------------------------
# The persistent model
# --------------------------------------------------------------------------------------


@dataclass
class Applied:
    """One scenario's numbers on the reference layout, ready to solve."""

    cm: CompiledModel  # objective = the active one (cost, or stage 1 of power)
    cost_usd: np.ndarray  # o_cost coefficients (stage 2 of the power objective)
    terms: Terms
    layout: Layout
    objective: str
    penalty: tuple[float, float]  # (USD, MW) per request/s unserved, as in the arrays
    unserved_cols: np.ndarray
    peak_col: int | None
    data: PlanningData

    def with_penalty(self, usd: float, mw: float) -> Applied:
        cols = self.unserved_cols
        cost_usd = self.cost_usd.copy()
        cost_usd[cols] = usd
        active = self.cm.cost.copy()
        active[cols] = mw if self.objective == "power" else usd
        cm = dataclasses.replace(self.cm, cost=active)
        return dataclasses.replace(self, cm=cm, cost_usd=cost_usd, penalty=(usd, mw))


class PersistentModel:
    """The reference model compiled once; `apply` gives any scenario's arrays."""

    def __init__(self, data: PlanningData) -> None:
        t0 = time.perf_counter()
        model = build_model(data)
        missing = [c for c in _REQUIRED if not hasattr(model, c)]
        if missing:
            raise NotPersistent(f"formulation has no {missing}")
        self.model = model  # the compiled columns are its variables: keep them alive
        self.data = data
        self.objective = data.settings.objective
        self.cm = compile_model(model)
        self.layout = _layout(self.cm)
        n = self.cm.n_cols
        col_of = {id(v): j for j, v in enumerate(self.cm.columns)}
        self.cost_usd, _ = linear_coefficients(model.o_cost.expr, col_of, n)
        self.periods = [str(t) for t in data.periods.index]
        self.terms = _terms(model, self.periods, col_of, n)
        self._index()
        self._rates_cache: dict[Hashable, tuple[np.ndarray, np.ndarray]] = {}
        self.build_s = time.perf_counter() - t0

    # -- index arrays built once --------------------------------------------------------

    def _index(self) -> None:
        lay, cm = self.layout, self.cm
        self.unserved_cols = lay.cols("v_unserved")
        self.penalty = self._penalty_in_arrays()
        peak = lay.cols("v_peak_mw")
        self.peak_col = int(peak[0]) if len(peak) else None
        # demand rows -> (workload, period)
        self.demand_rows = lay.rows("c_demand_served")
        self.demand_key = [(i[0], i[2]) for i in (lay.row_index[r] for r in self.demand_rows)]
        # load columns -> (candidate, workload, phase) and (workload, period); time-budget entry
        self.load_cols = lay.cols("v_load")
        idx = [lay.col_index[j] for j in self.load_cols]
        self.load_cwp = [(c, w, p) for c, w, p, _ in idx]
        self._demand_pos = {k: i for i, k in enumerate(self.demand_key)}
        self.load_demand_row = np.array([self._demand_pos[(w, t)] for _, w, _, t in idx], dtype=int)
        r = self.data.rates
        self._ref_cwp = set(zip(r["candidate"], r["workload"], r["phase"], strict=True))
        self._ref_candidates = set(self.data.candidates.index)
        self._ref_sku_terms = dict(
            zip(self.data.skus.index, _fixed_terms(self.data.skus), strict=True)
        )
        self._sku_cols: dict[int, dict[str, np.ndarray]] = {}
        csc = cm.matrix()
        self.csr = csc.tocsr()
        tb_rows = set(lay.rows("c_time_budget").tolist())
        self.tb_entry = np.array([self._entry(j, tb_rows) for j in self.load_cols], dtype=int)
        inst = lay.cols("v_instances")
        self.inst_cols = inst
        inst_pos = {lay.col_index[j]: k for k, j in enumerate(inst)}
        self.load_inst = np.array([inst_pos[(c, t)] for c, _, _, t in idx], dtype=int)
        self.inst_period = np.array([self.periods.index(lay.col_index[j][1]) for j in inst])
        # price-scaled entries
        self.buy_sku = np.array([lay.col_index[j][0] if c == "v_buy" else "" for j, c in enumerate(lay.col_comp)], dtype=object)  # fmt: skip
        self.rent_sku = np.array([lay.col_index[j][0] if c == "v_rent" else "" for j, c in enumerate(lay.col_comp)], dtype=object)  # fmt: skip
        capex_rows = np.isin(lay.row_comp, ["c_capex_budget", "c_capex_budget_per_period"])
        self.entry_col = np.repeat(np.arange(cm.n_cols), np.diff(cm.a_start))  # column of entry
        self.capex_entries = np.flatnonzero(capex_rows[cm.a_index])
        self.power_rows = lay.rows("c_power_budget")
        self.capex_row = lay.rows("c_capex_budget")
        self._index_load_needs_an_instance(inst)
        self._index_instances_cover_demand(inst)

    def _index_load_needs_an_instance(self, inst_cols: np.ndarray) -> None:
        """Entries of c_load_needs_an_instance that hold -demand (v_load <= demand x
        v_instances, formulation.py), and the demand row each one follows."""
        lay, cm = self.layout, self.cm
        in_family = np.zeros(cm.n_rows, dtype=bool)
        in_family[lay.rows("c_load_needs_an_instance")] = True
        entries = np.flatnonzero(in_family[cm.a_index])
        on_instance = np.isin(self.entry_col[entries], inst_cols)
        load_of_row = dict(
            zip(
                cm.a_index[entries[~on_instance]].tolist(),
                self.entry_col[entries[~on_instance]].tolist(),
                strict=True,
            )
        )
        load_pos = {int(j): k for k, j in enumerate(self.load_cols)}
        self.lni_entries = entries[on_instance]
        self.lni_demand_row = np.array(
            [
                self.load_demand_row[load_pos[load_of_row[r]]]
                for r in cm.a_index[self.lni_entries].tolist()
            ],
            dtype=int,
        )

    def _index_instances_cover_demand(self, inst_cols: np.ndarray) -> None:
        """Entries of c_instances_cover_demand on instance columns (formulation.py: cover
        x v_instances + v_unserved >= demand), the load column each one stands for, and
        the (prefill, decode) load columns of each colocated (candidate, workload, period)."""
        lay, cm = self.layout, self.cm
        rows = lay.rows("c_instances_cover_demand")
        self.cover_rows = rows
        in_family = np.zeros(cm.n_rows, dtype=bool)
        in_family[rows] = True
        entries = np.flatnonzero(in_family[cm.a_index])
        entries = entries[np.isin(self.entry_col[entries], inst_cols)]
        load_pos = {
            (c, w, p, lay.col_index[j][-1]): k
            for k, ((c, w, p), j) in enumerate(zip(self.load_cwp, self.load_cols, strict=True))
        }
        self.cover_entries = entries
        self.cover_load = np.array(
            [
                load_pos[(lay.col_index[j][0], *lay.row_index[r])]
                for j, r in zip(
                    self.entry_col[entries].tolist(), cm.a_index[entries].tolist(), strict=True
                )
            ],
            dtype=int,
        )
        self.cover_demand_row = np.array(
            [self._demand_pos[(w, t)] for w, _, t in (lay.row_index[r] for r in rows)], dtype=int
        )
        row_of = {int(r): i for i, r in enumerate(rows.tolist())}
        self.cover_entry_row = np.array([row_of[int(r)] for r in cm.a_index[entries]], dtype=int)
        colocated = self.data.candidates["topology"].eq("colocated")
        self.colocated_pairs = np.array(
            [
                (k, load_pos[(c, w, "decode", t)])
                for (c, w, p, t), k in load_pos.items()
                if p == "prefill" and colocated.get(c, False) and (c, w, "decode", t) in load_pos
            ],
            dtype=int,
        ).reshape(-1, 2)

    def _cover(
        self, rate: np.ndarray, present: np.ndarray, demand: np.ndarray, util: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """c_instances_cover_demand for this scenario: the instance entries' coefficients
        (formulation.instance_cover_rps; 0 where the scenario lacks the load) and the rows'
        lower bounds (the demand; free where no load of the row is left)."""
        inv_rate = np.where(present, 1.0 / rate, 0.0)  # a missing partner adds no time
        with np.errstate(divide="ignore"):
            cover = instance_cover_rps(
                inv_rate, self.colocated_pairs, util, demand[self.load_demand_row]
            )
        k = self.cover_load
        coef = np.where(present[k], cover[k], 0.0)
        live = np.bincount(
            self.cover_entry_row, weights=(coef > 0).astype(float), minlength=len(self.cover_rows)
        )
        lower = demand[self.cover_demand_row]
        return coef, np.where((live > 0) & (lower > 0), lower, -np.inf)

    def _entry(self, col: int, rows: set[int]) -> int:
        cm = self.cm
        for k in range(cm.a_start[col], cm.a_start[col + 1]):
            if int(cm.a_index[k]) in rows:
                return k
        raise NotPersistent("a load column has no time-budget row")

    def _penalty_in_arrays(self) -> tuple[float, float]:
        cols = self.unserved_cols
        if not len(cols):
            return (math.nan, math.nan)
        usd = float(self.cost_usd[cols[0]])
        mw = float(self.cm.cost[cols[0]]) if self.objective == "power" else math.nan
        return usd, mw

    # -- one scenario ---------------------------------------------------------------------

    def apply(self, data: PlanningData, rates_key: Hashable | None = None) -> Applied:
        """The scenario's arrays; NotPersistent if it is not the reference with numbers changed."""
        ref = self.data
        self._check_same_frame(data)
        cm = self.cm
        cost_usd = self.cost_usd.copy()
        col_lower, col_upper = cm.col_lower.copy(), cm.col_upper.copy()
        row_lower, row_upper = cm.row_lower.copy(), cm.row_upper.copy()
        a_value = cm.a_value.copy()

        buy_ratio, buy_off = self._sku_ratio(data, "unit_price_usd", self.buy_sku)
        rent_ratio, rent_off = self._sku_ratio(data, "rent_usd_per_chip_hour", self.rent_sku)
        cost_usd *= buy_ratio * rent_ratio
        a_value[self.capex_entries] *= buy_ratio[self.entry_col[self.capex_entries]]
        col_upper[buy_off | rent_off] = 0.0

        energy_ratio = self._energy_ratio(data)
        delta = (sp.diags(energy_ratio - 1.0) @ self.terms.energy_t).sum(axis=0)
        cost_usd += np.asarray(delta).ravel()

        demand = self._demand(data)
        row_lower[self.demand_rows] = demand
        row_upper[self.demand_rows] = demand
        a_value[self.lni_entries] = -demand[self.lni_demand_row]

        rate, present = self._rates(data, rates_key)
        a_value[self.tb_entry] = np.where(present, 1.0 / rate, a_value[self.tb_entry])
        col_upper[self.load_cols[~present]] = 0.0
        util = data.settings.util_max
        col_upper[self.inst_cols] = self._instance_ub(rate, present, demand, util)
        a_value[self.cover_entries], row_lower[self.cover_rows] = self._cover(
            rate, present, demand, util
        )

        st, rst = data.settings, ref.settings
        row_upper[self.power_rows] = self._limit(st.power_budget_mw, rst.power_budget_mw,
                                                 len(self.power_rows), "power_budget_mw")  # fmt: skip
        row_upper[self.capex_row] = self._limit(st.capex_budget_usd, rst.capex_budget_usd,
                                                len(self.capex_row), "capex_budget_usd")  # fmt: skip

        terms = self.terms.scaled(buy_ratio, rent_ratio, energy_ratio)
        active = self._power_objective(terms, data) if self.objective == "power" else cost_usd
        new = dataclasses.replace(
            cm, cost=active, col_lower=col_lower, col_upper=col_upper,
            row_lower=row_lower, row_upper=row_upper, a_value=a_value,
        )  # fmt: skip
        return Applied(new, cost_usd, terms, self.layout, self.objective, self.penalty,
                       self.unserved_cols, self.peak_col, data)  # fmt: skip

    def _power_objective(self, terms: Terms, data: PlanningData) -> np.ndarray:
        """Stage 1 of objective "power", as formulation.define_objective: peak MW + MW
        penalty x unserved + tie-break x cost. The tie-break weight depends on demand and
        prices, so it is the scenario's own (formulation.prepare_sets)."""
        if self.peak_col is None:
            raise NotPersistent("objective power without a peak variable")
        tie = float(prepare_sets(data).tie_break_mw_per_usd)
        active = tie * terms.cost()
        active[self.peak_col] += 1.0
        active[self.unserved_cols] = self.penalty[1]
        return active

    def _check_same_frame(self, data: PlanningData) -> None:
        ref = self.data
        mine = ref.settings.model_dump(exclude=set(PERSISTENT_SETTINGS))
        theirs = data.settings.model_dump(exclude=set(PERSISTENT_SETTINGS))
        if mine != theirs:
            raise NotPersistent(
                f"settings differ: {sorted(k for k in mine if mine[k] != theirs[k])}"
            )
        if list(data.periods.index) != self.periods or not np.array_equal(
            data.periods["hours"].to_numpy(float), ref.periods["hours"].to_numpy(float)
        ):
            raise NotPersistent("periods differ")
        if not self._ref_candidates.issuperset(data.candidates.index):
            raise NotPersistent("a candidate outside the reference union")
        for sku, fixed in zip(data.skus.index, _fixed_terms(data.skus), strict=True):
            if sku not in self._ref_sku_terms:
                raise NotPersistent(f"SKU {sku} is not in the reference")
            if fixed != self._ref_sku_terms[sku]:
                raise NotPersistent(f"terms of {sku} other than prices differ")
        if not _same_existing(data.existing, ref.existing):
            raise NotPersistent("existing fleet differs")

    def _sku_ratio(
        self, data: PlanningData, column: str, sku_of_col: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per column: new / reference value of the SKU's price or rent; and columns to
        switch off (a SKU the scenario cannot buy or rent, or does not use at all)."""
        ratio = np.ones(self.cm.n_cols)
        off = np.zeros(self.cm.n_cols, dtype=bool)
        ref = self.data.skus[column]
        new = dict(zip(data.skus.index, data.skus[column].to_numpy(float), strict=True))
        for sku, cols in self._cols_of_sku(sku_of_col).items():
            ref_v, new_v = float(ref[sku]), new.get(sku, math.nan)
            if math.isnan(new_v):
                off[cols] = True
            elif new_v != ref_v:
                if not ref_v > 0:
                    raise NotPersistent(f"{column} of {sku} has no positive reference")
                ratio[cols] = new_v / ref_v
        return ratio, off

    def _cols_of_sku(self, sku_of_col: np.ndarray) -> dict[str, np.ndarray]:
        key = id(sku_of_col)
        if key not in self._sku_cols:
            skus = sorted(set(sku_of_col) - {""})
            self._sku_cols[key] = {h: np.flatnonzero(sku_of_col == h) for h in skus}
        return self._sku_cols[key]

    def _energy_ratio(self, data: PlanningData) -> np.ndarray:
        ref = self.data
        e_new, e_ref = data.settings.electricity_usd_per_kwh, ref.settings.electricity_usd_per_kwh
        new = e_new * data.periods["energy_load_factor"].to_numpy(float)
        old = e_ref * ref.periods["energy_load_factor"].to_numpy(float)
        same = new == old
        if np.any(~same & ~(old > 0)):
            raise NotPersistent("energy price or load factor has no positive reference")
        return np.where(same, 1.0, new / np.where(old > 0, old, 1.0))

    def _demand(self, data: PlanningData) -> np.ndarray:
        """Requests/s per demand row of the reference (0 where the scenario has none)."""
        d = data.demand
        given = dict(zip(zip(d["workload"], d["period"], strict=True),
                         d["requests_per_s"].to_numpy(float), strict=True))  # fmt: skip
        if any(v > 0 and k not in self._demand_pos for k, v in given.items()):
            raise NotPersistent("demand in a (workload, period) the reference does not have")
        return np.array([given.get(k, 0.0) for k in self.demand_key], dtype=float)

    def _rates(self, data: PlanningData, key: Hashable | None) -> tuple[np.ndarray, np.ndarray]:
        """Rate of each load column in this scenario, and whether the scenario has it."""
        if key is not None and key in self._rates_cache:
            return self._rates_cache[key]
        r = data.rates
        given = dict(zip(zip(r["candidate"], r["workload"], r["phase"], strict=True),
                         r["rate_rps"].to_numpy(float), strict=True))  # fmt: skip
        if not self._ref_cwp.issuperset(given):
            raise NotPersistent("a (candidate, workload, phase) outside the reference union")
        rate = np.array([given.get(k, math.nan) for k in self.load_cwp], dtype=float)
        present = ~np.isnan(rate)
        out = (np.where(present, rate, 1.0), present)
        if key is not None:
            self._rates_cache[key] = out
        return out

    def _instance_ub(
        self, rate: np.ndarray, present: np.ndarray, demand: np.ndarray, util: float
    ) -> np.ndarray:
        """As formulation: instances to carry, alone, every load the candidate can take."""
        busy = np.where(present, (1.0 / rate) * demand[self.load_demand_row], 0.0)
        total = np.bincount(self.load_inst, weights=busy, minlength=len(self.inst_cols))
        return np.ceil(total / util - 1e-9)

    @staticmethod
    def _limit(new: float | None, ref: float | None, n_rows: int, name: str) -> float:
        if not n_rows:
            if new is not None and ref is None:
                raise NotPersistent(f"{name} set but the reference has no such row")
            return math.inf
        return math.inf if new is None else float(new)


def _fixed_terms(skus: pd.DataFrame) -> list[tuple[Any, ...]]:
    """Per SKU, the terms a scenario may not change (NaN written as None to compare)."""
    cols = [c for c in skus.columns if c not in _SKU_PRICE_COLUMNS]
    values = skus[cols].astype(float).to_numpy()
    return [tuple(None if math.isnan(v) else v for v in row) for row in values.tolist()]


def _same_existing(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    cols = ["sku", "chips", "retire_period"]
    if len(a) != len(b):
        return False
    if not len(a):
        return True
    return (
        a[cols]
        .reset_index(drop=True)
        .astype(str)
        .equals(b[cols].reset_index(drop=True).astype(str))
    )


def fresh(data: PlanningData) -> Applied:
    """A scenario built and compiled from scratch (the rebuild path), as an Applied."""
    pm = PersistentModel(data)
    return pm.apply(data)


# --------------------------------------------------------------------------------------
# Checking the mapping against a fresh build
# --------------------------------------------------------------------------------------


def check_apply(applied: Applied, rebuilt: Applied, rtol: float = 1e-9) -> list[str]:
    """Where `applied` (reference arrays, numbers changed) differs from `rebuilt` (a fresh
    build of the same scenario). Columns and rows the fresh build lacks must be switched
    off (upper bound 0), unused (a SKU's purchase, fleet or rental no candidate needs) or
    free."""
    problems: list[str] = []
    a_lay, b_lay = applied.layout, rebuilt.layout
    a, b = applied.cm, rebuilt.cm
    cols = np.array([a_lay.col_pos.get(k, -1) for k in _keys(b_lay.col_comp, b_lay.col_index)])
    if (cols < 0).any():
        return [f"{int((cols < 0).sum())} columns of the fresh build are not in the reference"]
    penalty = np.isin(b_lay.col_comp, ["v_unserved"])  # set per scenario by solve_scenario
    none = np.zeros_like(penalty)
    for name, x, y, skip in (
        ("objective", applied.cost_usd[cols], rebuilt.cost_usd, penalty),
        ("active objective", applied.cm.cost[cols], rebuilt.cm.cost, penalty),
        ("column lower", a.col_lower[cols], b.col_lower, none),
        ("column upper", a.col_upper[cols], b.col_upper, none),
    ):
        bad = ~skip & ~_close(x, y, rtol)
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            problems.append(
                f"{name} of {b_lay.col_comp[j]}{b_lay.col_index[j]}: {x[j]!r} vs {y[j]!r}"
            )
    if not np.array_equal(a.integer[cols], b.integer):
        problems.append("integrality differs")
    extra = np.setdiff1d(np.arange(a.n_cols), cols)
    inert = np.isin(a_lay.col_comp[extra], ["v_buy", "v_fleet", "v_rent"]) | (
        a.col_upper[extra] == 0
    )
    if not inert.all():
        j = int(extra[~inert][0])
        problems.append(f"extra column {a_lay.col_comp[j]}{a_lay.col_index[j]} is live")
    problems += _check_rows(applied, rebuilt, cols, rtol)
    return problems


def _check_rows(applied: Applied, rebuilt: Applied, cols: np.ndarray, rtol: float) -> list[str]:
    a_lay, b_lay = applied.layout, rebuilt.layout
    a, b = applied.cm, rebuilt.cm
    rows = np.array([a_lay.row_pos.get(k, -1) for k in _keys(b_lay.row_comp, b_lay.row_index)])
    if (rows < 0).any():
        return [f"{int((rows < 0).sum())} rows of the fresh build are not in the reference"]
    problems = []
    for name, x, y in (("row lower", a.row_lower[rows], b.row_lower),
                       ("row upper", a.row_upper[rows], b.row_upper)):  # fmt: skip
        bad = ~_close(x, y, rtol)
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            problems.append(
                f"{name} of {b_lay.row_comp[r]}{b_lay.row_index[r]}: {x[r]!r} vs {y[r]!r}"
            )
    ma = sp.csc_matrix((a.a_value, a.a_index, a.a_start), shape=(a.n_rows, a.n_cols))
    mb = sp.csc_matrix((b.a_value, b.a_index, b.a_start), shape=(b.n_rows, b.n_cols))
    sub = ma[rows][:, cols]
    diff = (sub - mb).tocoo()
    scale = np.abs(mb).max() if mb.nnz else 1.0
    big = np.abs(diff.data) > rtol * max(float(scale), 1.0)
    if big.any():
        k = int(np.flatnonzero(big)[0])
        r, j = int(diff.row[k]), int(diff.col[k])
        problems.append(f"coefficient {b_lay.row_comp[r]}{b_lay.row_index[r]} x "
                        f"{b_lay.col_comp[j]}{b_lay.col_index[j]}: {sub[r, j]!r} vs {mb[r, j]!r}")  # fmt: skip
    extra = np.setdiff1d(np.arange(a.n_rows), rows)
    live = (a.col_upper > 0) & ~np.isin(a_lay.col_comp, ["v_buy", "v_fleet", "v_rent"])
    live[cols] = False
    by_row = ma.tocsr()
    for r in extra:
        free = math.isinf(a.row_lower[r]) and math.isinf(a.row_upper[r])
        touched = by_row.indices[by_row.indptr[r] : by_row.indptr[r + 1]]
        if not free and live[touched].any():
            problems.append(f"extra row {a_lay.row_comp[r]}{a_lay.row_index[r]} binds live columns")
            break
    return problems


def _keys(comp: np.ndarray, index: list[tuple[Any, ...]]) -> list[tuple[str, tuple[Any, ...]]]:
    return [(str(c), i) for c, i in zip(comp, index, strict=True)]


def _close(x: np.ndarray, y: np.ndarray, rtol: float) -> np.ndarray:
    both_inf = np.isinf(x) & np.isinf(y) & (np.sign(x) == np.sign(y))
    with np.errstate(invalid="ignore"):
        near = np.abs(x - y) <= rtol * np.maximum(np.maximum(np.abs(x), np.abs(y)), 1.0)
    return both_inf | near


# --------------------------------------------------------------------------------------
# Solving a scenario
# --------------------------------------------------------------------------------------


def solve_scenario(
    applied: Applied,
    profile: SolverProfile,
    penalty: Callable[[], tuple[float, float]] | None = None,
) -> Outcome:
    """Solve one scenario as `planner plan` does: objective "power" lexicographic (as
    planner.solve); objective "cost" by `least_unserved_then_cheapest` (as
    planning.cheapest_at_shortfall).

    `penalty()`: the scenario's own (USD, MW) unserved penalty, put in the arrays before
    solving (`with_own_penalty`). None: the arrays' penalty is the scenario's own.
    """
    t0 = time.perf_counter()
    applied = with_own_penalty(applied, penalty)
    if applied.objective == "power" and applied.peak_col is not None:
        out = _lexicographic(applied, profile)
    else:
        out = least_unserved_then_cheapest(
            applied.cm, applied.unserved_cols, applied.terms.cost, profile
        )
    out.solve_s = time.perf_counter() - t0
    return out


def with_own_penalty(
    applied: Applied, penalty: Callable[[], tuple[float, float]] | None
) -> Applied:
    """The arrays with the scenario's own unserved penalty (None: they have it already)."""
    if penalty is None:
        return applied
    own = penalty()
    same = all(math.isclose(a, b, rel_tol=1e-12) for a, b in zip(own, applied.penalty, strict=True))
    return applied if same else applied.with_penalty(*own)


def _lexicographic(applied: Applied, profile: SolverProfile) -> Outcome:
    """As solve(): minimise peak MW, then cost with the peak held (planner.solve)."""
    first = solve_arrays(applied.cm, profile)
    if not first.has_solution or first.x is None:
        return first
    peak_mw = float((applied.terms.power_mw_t @ first.x).max(initial=0.0))
    upper = applied.cm.col_upper.copy()
    assert applied.peak_col is not None
    upper[applied.peak_col] = peak_mw * (1 + PEAK_SLACK) + 1e-9
    second_cm = dataclasses.replace(applied.cm, cost=applied.cost_usd, col_upper=upper)
    second = solve_arrays(second_cm, profile)
    if not second.has_solution:
        return second
    both_optimal = first.status == second.status == "optimal"
    gap = lexicographic_gap(first.status, first.gap, second.gap, profile)
    out = Outcome("optimal" if both_optimal else "feasible_at_limit", first.objective,
                  first.bound, gap, second.x,
                  f"lexicographic: peak {peak_mw:.6g} MW, then cost {second.objective:.6g} USD")  # fmt: skip
    out.stages = (first.x, second.x) if second.x is not None else (first.x,)
    out.proven = both_optimal
    return out


# --------------------------------------------------------------------------------------
# Reusing a solved scenario's answer for a restriction of it
# --------------------------------------------------------------------------------------

# Slack on a row or bound when a solution is checked against another scenario's arrays:
# HiGHS's own primal feasibility tolerance (1e-7), relative to the bound's size.
REUSE_TOL = 1e-7


def restricts(target: Applied, solved: Applied) -> bool:
    """Whether `target`'s arrays are `solved`'s with no bound looser: the same layout,
    objective(s), matrix and integrality, every row and column range inside `solved`'s.
    Then any solution of `solved` feasible in `target` is optimal for `target` too."""
    a, b = target.cm, solved.cm
    if target.layout is not solved.layout or target.objective != solved.objective:
        return False
    same = (
        a.offset == b.offset
        and np.array_equal(a.cost, b.cost)
        and np.array_equal(target.cost_usd, solved.cost_usd)
        and np.array_equal(target.terms.cost(), solved.terms.cost())
        and np.array_equal(a.a_value, b.a_value)
        and np.array_equal(a.integer, b.integer)
    )
    return bool(
        same
        and (a.col_lower >= b.col_lower).all()
        and (a.col_upper <= b.col_upper).all()
        and (a.row_lower >= b.row_lower).all()
        and (a.row_upper <= b.row_upper).all()
    )


def feasible_in(target: CompiledModel, solved: CompiledModel, x: np.ndarray) -> bool:
    """x (a solution of `solved`) within every range that `target` tightens, with
    REUSE_TOL relative slack. Ranges the two share need no check: the solver accepted x
    there already (and integers rounded as planner.solve rounds them stay as they were)."""
    for value, lo, hi, lo0, hi0 in (
        (x, target.col_lower, target.col_upper, solved.col_lower, solved.col_upper),
        (None, target.row_lower, target.row_upper, solved.row_lower, solved.row_upper),
    ):
        changed = np.flatnonzero((lo != lo0) | (hi != hi0))
        if not len(changed):
            continue
        if value is None:
            value = solved.matrix() @ x
        v, lower, upper = value[changed], lo[changed], hi[changed]
        with np.errstate(invalid="ignore"):
            below = v < lower - REUSE_TOL * np.maximum(1.0, np.abs(lower))
            above = v > upper + REUSE_TOL * np.maximum(1.0, np.abs(upper))
        if (below | above).any():
            return False
    return True


def reuse(target: Applied, solved: Applied, out: Outcome) -> Outcome | None:
    """`out` (solved's proven-optimal result) as target's, when target restricts solved and
    every stage's solution is feasible in target; else None.

    Why it is target's answer: each stage's model of target is the same stage's model of
    solved with bounds no looser (the shortfall cap and held peak of the second stage are
    the first stage's values, equal here), so a feasible optimum of the looser model is an
    optimum of the tighter one, and the looser model's bound is a bound of the tighter
    one. Only "optimal" results are reused: a time-limited one could be beaten by a solve
    of target's own. The first stage may be of another kind than target's own would be
    (the penalised MIP where only target's relaxation is short of capacity): both find
    the least unserved within the gap, so the answer holds."""
    if not out.proven or not out.stages or not restricts(target, solved):
        return None
    if not all(feasible_in(target.cm, solved.cm, x) for x in out.stages):
        return None
    return dataclasses.replace(out, solve_s=0.0, solved_in=out.solved_in or solved.cm)
