"""`planner sweep`: many planning scenarios, one tidy table.

    --vary specs -> points -> candidate tables (phase 1) -> reference MIP -> rows (phase 2)

A sweep varies a few parameters (`PARAMETERS`) over a grid (or one at a time) and solves
every point as `planner plan` would, faster:

* A point's candidates depend on its SLA (tpot_ms, ttft_ms) and, through the cost-power
  frontier pruning, on its prices and electricity tariff. The performance model runs once
  for every SLA variant of every workload, side by side; each distinct (SLA, prices)
  combination then gets its table by pruning those rows, and its exact unserved-demand
  penalty (phase 1, in parallel; `planner.sweep_candidates`).
* One reference MIP over the union of all tables is built and compiled once per worker;
  each point rewrites only right-hand sides, bounds and coefficients, with candidates it
  lacks switched off (`planner.sweep_model`): demand scale, budgets, prices, electricity
  and SLAs never rebuild the model. Each worker first checks the mapping against a fresh
  build of a probe point and falls back to rebuilding every point if they differ.
* Points that differ only in power / capex budgets form a group, solved loosest first: a
  point whose budgets the answer of a looser one already meets takes that answer, which
  is provably its optimum too (`sweep_model.reuse`), instead of a MIP of its own.
* Points run in chunks of whole groups on worker processes (`--workers`), locally or on a
  Dask / Ray cluster (`--executor`; `planner.sweep_exec`). Nothing carries between groups
  and every MIP runs with one solver thread, so rows are identical whatever the worker
  count and chunking, and come back in grid order.

A point that fails (an invalid value such as power_budget_mw=0, a solver error) gets a row
saying so; the sweep goes on. A malformed --vary is a PlannerInputError (exit code 2).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import ValidationError

from planner.candidates import candidate_options, capex_limit, covers_fill_by_watts, usable_skus
from planner.catalog import Catalog, load_catalog
from planner.demand import Demand
from planner.errors import InputProblem, PlannerInputError, did_you_mean, unknown_id
from planner.formulation import unserved_penalty
from planner.model_data import PlanningData, Settings
from planner.planning import Scenario, prepare
from planner.shortfall import Outcome
from planner.solve import SolverProfile, load_profile
from planner.sweep_candidates import (
    CandidateTables,
    Economics,
    SlaKey,
    TableKey,
    assemble,
    base_key,
    base_sla,
    scale_demand,
    slim,
    union_table,
)
from planner.sweep_exec import InProcess, chunks_of, make_executor
from planner.sweep_model import (
    Applied,
    NotPersistent,
    PersistentModel,
    check_apply,
    fresh,
    reuse,
    solve_scenario,
    with_own_penalty,
)
from planner.sweep_rows import RowReader

Mode = Literal["grid", "one-at-a-time"]
Value = float | None
Progress = Callable[[str, int, int], None]  # (phase, done, total)
MAX_POINTS = 100_000
STATUS_OK = ("optimal", "feasible_at_limit")
LIMITS = ("power_budget_mw", "capex_budget_usd")
ECONOMICS = ("electricity_usd_per_kwh",)  # besides price.<sku> and rent.<sku>
TABLES_PER_WORKER = 8  # fewer candidate tables than this per worker: build them in-process

# --------------------------------------------------------------------------------------
# Parameters and --vary specs
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """A parameter a sweep can vary: its kind, unit and valid range."""

    kind: Literal["sla", "demand", "limit", "economics"]
    unit: str
    minimum: float
    strict: bool  # value > minimum (else >=)
    allows_none: bool = False  # "none" = no limit
    maximum: float = math.inf  # value <= maximum

    def problem(self, name: str, value: Value) -> str | None:
        if value is None:
            return None if self.allows_none else f"{name} needs a number"
        ok = value > self.minimum if self.strict else value >= self.minimum
        if not ok or not math.isfinite(value):
            return f"{name} must be {'>' if self.strict else '>='} {self.minimum:g}; got {value:g}"
        if value > self.maximum:
            return f"{name} must be <= {self.maximum:g}; got {value:g}"
        return None


PARAMETERS: dict[str, Param] = {
    "tpot_ms": Param("sla", "ms", 0.0, strict=True),
    "ttft_ms": Param("sla", "ms", 0.0, strict=True),
    # Per-token draft acceptance of speculative decoding (the workloads' own, as the demand
    # CSV's spec_acceptance column sets it): it changes the candidates as an SLA does.
    "spec_acceptance": Param("sla", "", 0.0, strict=False, maximum=1.0),
    "demand_scale": Param("demand", "x", 0.0, strict=True),
    "power_budget_mw": Param("limit", "MW", 0.0, strict=True, allows_none=True),
    "capex_budget_usd": Param("limit", "USD", 0.0, strict=False, allows_none=True),
    "electricity_usd_per_kwh": Param("economics", "USD/kWh", 0.0, strict=False),
}
# Per-SKU parameters: "price.<sku>" (USD per purchase unit), "rent.<sku>" (USD per chip-hour).
SKU_PARAMETERS: dict[str, tuple[str, Param]] = {
    "price": ("unit_price_usd", Param("economics", "USD/unit", 0.0, strict=False)),
    "rent": ("rent_usd_per_chip_hour", Param("economics", "USD/chip-hour", 0.0, strict=False)),
}
KNOWN = [*PARAMETERS, *(f"{p}.<sku>" for p in SKU_PARAMETERS)]


def param_of(name: str) -> Param:
    if name in PARAMETERS:
        return PARAMETERS[name]
    return SKU_PARAMETERS[name.partition(".")[0]][1]


@dataclass(frozen=True)
class Axis:
    name: str
    values: tuple[Value, ...]

    @property
    def sku(self) -> str | None:
        head, dot, tail = self.name.partition(".")
        return tail if dot and head in SKU_PARAMETERS else None


def _bad(spec: str, location: str, value: object, expected: str) -> PlannerInputError:
    return PlannerInputError([InputProblem(f"--vary {spec}", location, value, expected)])


def parse_vary(spec: str) -> Axis:
    """'name=start:stop:step' (inclusive) or 'name=v1,v2,...' ("none" = no limit)."""
    name, eq, body = (s.strip() for s in spec.partition("="))
    if not eq or not name:
        raise _bad(spec, "", spec, "NAME=START:STOP:STEP or NAME=V1,V2,... e.g. tpot_ms=5:50:5")
    head, dot, sku = name.partition(".")
    known = name in PARAMETERS or (dot and head in SKU_PARAMETERS and sku)
    if not known:
        raise _bad(
            spec, "parameter", name, f"one of {', '.join(KNOWN)}{did_you_mean(name, PARAMETERS)}"
        )
    if not body:
        raise _bad(spec, name, body, "at least one value")
    values = _range(spec, name, body) if ":" in body else _listed(spec, name, body)
    if len(set(values)) != len(values):
        raise _bad(spec, name, body, "distinct values")
    return Axis(name, tuple(values))


def _number(spec: str, name: str, text: str, allow_none: bool) -> Value:
    if allow_none and text.lower() in ("none", "off"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise _bad(spec, name, text, "a number" + (' or "none"' if allow_none else "")) from None
    if not math.isfinite(value):
        raise _bad(spec, name, text, "a finite number")
    return value


def _listed(spec: str, name: str, body: str) -> list[Value]:
    items = [t.strip() for t in body.split(",")]
    if any(not t for t in items):
        raise _bad(spec, name, body, "comma-separated values with none empty")
    return [_number(spec, name, t, param_of(name).allows_none) for t in items]


def _range(spec: str, name: str, body: str) -> list[Value]:
    parts = [t.strip() for t in body.split(":")]
    if len(parts) != 3:
        raise _bad(spec, name, body, "START:STOP:STEP (three numbers)")
    start, stop, step = (_number(spec, name, t, False) for t in parts)
    assert start is not None and stop is not None and step is not None
    if step <= 0:
        raise _bad(spec, name, body, "a step > 0")
    if stop < start:
        raise _bad(spec, name, body, "STOP >= START")
    n = math.floor((stop - start) / step + 1e-9) + 1
    if n > MAX_POINTS:
        raise _bad(spec, name, body, f"at most {MAX_POINTS:,} values")
    return [round(start + k * step, 12) for k in range(n)]


def parse_axes(specs: Sequence[str]) -> list[Axis]:
    if not specs:
        raise PlannerInputError(
            [InputProblem("--vary", "", None, "at least one --vary NAME=VALUES")]
        )
    axes = [parse_vary(s) for s in specs]
    names = [a.name for a in axes]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise PlannerInputError(
            [InputProblem("--vary", "parameter", dup[0], "each parameter varied once")]
        )
    return axes


def points_of(axes: Sequence[Axis], mode: Mode) -> list[dict[str, Value]]:
    """Grid: the product, last axis fastest. One at a time: each axis alone, in order."""
    if mode == "grid":
        n = math.prod(len(a.values) for a in axes)
        if n > MAX_POINTS:
            raise PlannerInputError(
                [InputProblem("--vary", "grid", n, f"at most {MAX_POINTS:,} points")]
            )
        return [dict(zip((a.name for a in axes), combo, strict=True))
                for combo in itertools.product(*(a.values for a in axes))]  # fmt: skip
    return [{a.name: v} for a in axes for v in a.values]


# --------------------------------------------------------------------------------------
# Phase 0 (parent): points, table keys, one evaluation of every SLA variant
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepRequest:
    demand_path: Path
    scenario: Scenario
    axes: tuple[Axis, ...]
    mode: Mode = "grid"
    workload: str | None = None  # SLA and demand_scale apply to this one (default: all)


@dataclass
class SweepJob:
    """What the parent knows before phase 1 (picklable: phase-1 workers get it)."""

    axes: tuple[Axis, ...]
    mode: Mode
    points: list[dict[str, Value]]
    keys: list[TableKey]
    key_of_point: list[int]
    probe: dict[str, Value]  # every axis at its last valid value: checks the mapping
    probe_key: int
    pool: CandidateTables
    targets: list[str]  # workloads SLA / demand_scale apply to
    profile: SolverProfile
    silicon: dict[str, str]  # SKU -> memory kind (hbm, sram, gddr...)
    workloads: list[str]


def plan_sweep(request: SweepRequest, catalog: Catalog | None = None) -> SweepJob:
    """Validate the request against the inputs; evaluate every SLA variant once."""
    sc = request.scenario
    catalog, demand, cs = prepare(request.demand_path, sc, catalog or load_catalog())
    targets = _targets(request.workload, demand)
    _check_skus(request.axes, catalog, sc)
    points = points_of(request.axes, request.mode)
    probe = _probe(request.axes)
    cover = sc.pruning_mode == "cover"
    keys, key_of_point = _table_keys(
        [*points, probe], demand, targets, cover=cover, settings=sc.settings(),
        acceptance=sc.spec_acceptance,
    )  # fmt: skip
    probe_key = key_of_point.pop()
    return SweepJob(
        axes=tuple(request.axes), mode=request.mode, points=points, keys=keys,
        key_of_point=key_of_point, probe=probe, probe_key=probe_key,
        pool=CandidateTables(catalog, demand, cs, sc, keys, targets), targets=targets,
        profile=_profile(sc), workloads=list(demand.workloads.index),
        silicon={h: catalog.hardware[h].primary_memory.kind for h in catalog.hardware},
    )  # fmt: skip


def _profile(sc: Scenario) -> SolverProfile:
    profile = load_profile(sc.solver_profile)
    if sc.time_limit_s is not None:
        profile = profile.model_copy(update={"time_limit_s": sc.time_limit_s})
    # One thread per solve: sweeps parallelise across points, and a fixed thread count
    # keeps results independent of the number of workers.
    return profile.model_copy(update={"threads": 1})


def _targets(workload: str | None, demand: Demand) -> list[str]:
    names = list(demand.workloads.index)
    if workload is None:
        return names
    if workload not in names:
        raise PlannerInputError([unknown_id("--workload", "", workload, names)])
    return [workload]


def _check_skus(axes: Iterable[Axis], catalog: Catalog, sc: Scenario) -> None:
    """price.<sku> / rent.<sku> must name a SKU this scenario plans with (else the sweep
    would silently change nothing)."""
    owned = {e.sku for e in sc.existing_fleet}
    usable = set(usable_skus(catalog, candidate_options(sc, catalog).allowed_skus, owned))
    problems = []
    for a in axes:
        if a.sku is None:
            continue
        if a.sku not in catalog.hardware:
            problems.append(unknown_id(f"--vary {a.name}", "SKU", a.sku, catalog.hardware))
        elif a.sku not in usable:
            problems.append(InputProblem(f"--vary {a.name}", "SKU", a.sku,
                "a SKU this scenario plans with (allowed_skus / exclude_skus; a SKU with neither "
                "price nor rental needs one in the scenario's price_usd_per_unit first)"))  # fmt: skip
    if problems:
        raise PlannerInputError(problems)


def _probe(axes: Sequence[Axis]) -> dict[str, Value]:
    out: dict[str, Value] = {}
    for a in axes:
        valid = [v for v in a.values if param_of(a.name).problem(a.name, v) is None]
        if valid:
            out[a.name] = valid[-1]
    return out


def _sla_of(
    point: dict[str, Value], demand: Demand, targets: list[str], acceptance: float
) -> SlaKey:
    """(tpot_ms, ttft_ms, spec_acceptance) per workload at `point` (`acceptance`: the
    scenario's, for workloads without their own)."""
    out = []
    base = base_sla(demand, acceptance)
    for (tpot, ttft, acc), name in zip(base, demand.workloads.index, strict=True):
        if name in targets:
            tpot = _or(point.get("tpot_ms"), tpot)
            ttft = _or(point.get("ttft_ms"), ttft)
            acc = _or(point.get("spec_acceptance"), acc)
        out.append((tpot, ttft, acc))
    return tuple(out)


def _or(value: Value, default: float) -> float:
    return default if value is None else float(value)


def economics_of(point: dict[str, Value]) -> Economics:
    """The point's values that move the frontier pruning (prices, rents, electricity)."""
    return tuple(sorted((k, float(v)) for k, v in point.items()
                        if v is not None and (k in ECONOMICS or k.partition(".")[0] in SKU_PARAMETERS)))  # fmt: skip


def _table_keys(
    points: list[dict[str, Value]], demand: Demand, targets: list[str], *, cover: bool,
    settings: Settings, acceptance: float,
) -> tuple[list[TableKey], list[int]]:  # fmt: skip
    """Distinct table keys (first-use order) and each point's. A point with an invalid
    value maps to the base key (it is reported invalid before it is solved). With pruning
    "cover" the kept candidates depend on the load, so the demand scale is in the key,
    and on whether power is limited (candidates.covers_fill_by_watts); what the capex
    budgets leave to buy with is in it always (`settings`: the base scenario's;
    `acceptance`: its spec_acceptance)."""
    base = base_key(demand, acceptance, settings, cover=cover)
    keys: list[TableKey] = []
    of_point = []
    for p in points:
        scale = float(p.get("demand_scale") or 1.0) if cover else 1.0
        budget = p.get("capex_budget_usd", settings.capex_budget_usd)
        capex = capex_limit(settings.model_copy(update={"capex_budget_usd": budget}))
        mw = p.get("power_budget_mw", settings.power_budget_mw)
        fill = cover and covers_fill_by_watts(settings.model_copy(update={"power_budget_mw": mw}))
        key = (
            TableKey(_sla_of(p, demand, targets, acceptance), economics_of(p), scale, capex, fill)
            if not point_problems(p)
            else base
        )
        if key not in keys:
            keys.append(key)
        of_point.append(keys.index(key))
    return keys, of_point


# --------------------------------------------------------------------------------------
# Phase 1 (workers): each table key's candidate table and unserved penalty
# --------------------------------------------------------------------------------------

TableResult = tuple[int, pd.DataFrame, str]  # key index, table, error ("" if none)


def compute_tables(job: SweepJob, indices: Sequence[int]) -> list[TableResult]:
    """Each key's table, pruned as build_candidates prunes. A key that fails is reported
    in its points' rows."""
    out = []
    for i in indices:
        try:
            out.append((i, job.pool.table(job.keys[i]), ""))
        except Exception as exc:  # a failing point is a row, never the end of the sweep
            out.append((i, slim(job.pool.cs.table.iloc[:0]), f"{type(exc).__name__}: {exc}"))
    return out


# --------------------------------------------------------------------------------------
# The sweep context (phase 2's shared object)
# --------------------------------------------------------------------------------------


@dataclass
class SweepContext:
    """Picklable: shipped once to every phase-2 worker."""

    sweep_id: str
    axes: tuple[Axis, ...]
    mode: Mode
    points: list[dict[str, Value]]
    key_of_point: list[int]  # index into tables
    tables: list[pd.DataFrame]  # per table key: candidate, workload, phase, rate_rps, ...
    economics: list[Economics]  # per table key: its prices, rents, electricity
    key_errors: dict[int, str]  # table keys whose candidates could not be built
    exact: dict[int, PlanningData]  # keys whose data is the planner's own (base SLA, prices)
    sku_all: pd.DataFrame  # SKU table over every usable SKU
    base: PlanningData  # the planner's data at the base scenario (demand, periods, ...)
    reference: PlanningData  # union of candidates, reference prices and limits
    probe: dict[str, Value]
    probe_key: int
    targets: list[str]
    profile: SolverProfile
    silicon: dict[str, str]
    workloads: list[str]
    sku_columns: list[str]
    group_of: list[int]  # per point: its limit group (`limit_groups`)
    order: list[int]  # points in solve order: group by group, loosest first


def context_of(job: SweepJob, results: Iterable[TableResult]) -> SweepContext:
    done = {i: (t, e) for i, t, e in results}
    tables = [done[i][0] for i in range(len(job.keys))]
    cs = job.pool.cs
    union = assemble(union_table(tables), cs.data, job.pool.sku_all)
    group_of, order = limit_groups(job.points, cs.data.settings)
    return SweepContext(
        sweep_id=uuid.uuid4().hex, axes=job.axes, mode=job.mode, points=job.points,
        key_of_point=job.key_of_point, tables=tables,
        economics=[k.economics for k in job.keys],
        key_errors={i: done[i][1] for i in range(len(job.keys)) if done[i][1]},
        exact={i: cs.data for i, k in enumerate(job.keys) if k == job.pool.base},
        sku_all=job.pool.sku_all, base=cs.data, reference=_reference(union, job.axes),
        probe=job.probe, probe_key=job.probe_key, targets=job.targets, profile=job.profile,
        silicon=job.silicon, workloads=job.workloads, sku_columns=sorted(union.skus.index),
        group_of=group_of, order=order,
    )  # fmt: skip


def _reference(union: PlanningData, axes: Sequence[Axis]) -> PlanningData:
    """The union with a positive reference for every varied price and a row for every
    varied limit, so each point is the reference with numbers changed."""
    st = union.settings
    upd: dict[str, Any] = {}
    skus = union.skus.copy()
    for a in axes:
        finite = [
            v for v in a.values if v is not None and param_of(a.name).problem(a.name, v) is None
        ]
        positive = [v for v in finite if v > 0]
        if a.name in LIMITS and finite:
            upd[a.name] = max(finite)
        elif a.name in ECONOMICS and not getattr(st, a.name) > 0:
            upd[a.name] = max(positive, default=1.0)
        elif a.sku is not None and a.sku in skus.index:
            column = SKU_PARAMETERS[a.name.partition(".")[0]][0]
            if not float(skus.at[a.sku, column]) > 0:
                skus.loc[a.sku, column] = max(positive, default=1.0)
    return dataclasses.replace(union, skus=skus, settings=st.model_copy(update=upd))


# --------------------------------------------------------------------------------------
# One point: its PlanningData
# --------------------------------------------------------------------------------------


def point_problems(point: dict[str, Value]) -> list[str]:
    return [p for k, v in point.items() if (p := param_of(k).problem(k, v)) is not None]


def scenario_data(
    ctx: SweepContext, point: dict[str, Value], key_data: PlanningData
) -> PlanningData:
    """What `planner plan` would build for this point (given its table key's data)."""
    base = ctx.base
    demand, periods = base.demand, base.periods
    scale = point.get("demand_scale")
    if scale is not None and scale != 1.0:
        every = set(ctx.targets) == set(ctx.workloads)
        demand, periods = _scaled(base, ctx.targets, float(scale), all_workloads=every)
    skus = key_data.skus
    prices = {k: v for k, v in point.items() if k.partition(".")[0] in SKU_PARAMETERS}
    if prices:
        skus = skus.copy()
        for name, value in prices.items():
            kind, _, sku = name.partition(".")
            if sku in skus.index:
                skus.loc[sku, SKU_PARAMETERS[kind][0]] = value
    upd = {k: point[k] for k in (*LIMITS, *ECONOMICS) if k in point}
    settings = _settings(base.settings, upd) if upd else base.settings
    return dataclasses.replace(
        key_data, demand=demand, periods=periods, skus=skus, settings=settings
    )


def _settings(settings: Settings, update: dict[str, Any]) -> Settings:
    try:
        return Settings.model_validate({**settings.model_dump(), **update})
    except ValidationError as exc:
        raise PlannerInputError([InputProblem("--vary", str(e["loc"][0]), e.get("input"), e["msg"])
                                 for e in exc.errors()]) from None  # fmt: skip


def _scaled(
    base: PlanningData, targets: list[str], scale: float, *, all_workloads: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Demand of the target workloads times `scale`; the energy load factor recomputed as
    demand.period_table does when only some workloads scale (uniform scaling keeps it)."""
    d = scale_demand(base.demand, targets, scale)
    if all_workloads:
        return d, base.periods
    totals = d.groupby("period", sort=False)[["requests_per_s", "mean_requests_per_s"]].sum()
    peak = totals["requests_per_s"].reindex(base.periods.index).fillna(0.0)
    mean = totals["mean_requests_per_s"].reindex(base.periods.index).fillna(0.0)
    factor = [min(1.0, m / k) if k > 0 else 0.0 for m, k in zip(mean, peak, strict=True)]
    return d, base.periods.assign(energy_load_factor=factor)


# --------------------------------------------------------------------------------------
# Phase 2 (workers): solve points
# --------------------------------------------------------------------------------------


@dataclass
class WorkerState:
    """Per worker process and sweep: the persistent model and caches."""

    ctx: SweepContext
    pm: PersistentModel | None = None
    note: str = ""  # why the persistent path is off, if it is
    ready: bool = False
    key_data: dict[int, PlanningData] = field(default_factory=dict)
    penalties: dict[int, tuple[float, float]] = field(default_factory=dict)
    _reader: RowReader | None = None

    def penalty(self, key: int, data: PlanningData) -> Callable[[], tuple[float, float]]:
        """The scenario's unserved penalty, computed once per table key (it depends on the
        candidates and prices, not on demand or limits)."""

        def own() -> tuple[float, float]:
            if key not in self.penalties:
                self.penalties[key] = unserved_penalty(data)
            return self.penalties[key]

        return own

    def data_for_key(self, key: int) -> PlanningData:
        if key not in self.key_data:
            exact = self.ctx.exact.get(key)
            table = self.ctx.tables[key]
            self.key_data[key] = exact or assemble(table, self.ctx.base, self.ctx.sku_all)
        return self.key_data[key]

    def start(self) -> None:
        """Build the reference model and check it against a fresh build of the probe."""
        if self.ready:
            return
        self.ready = True
        if len(self.ctx.points) < 2:
            self.note = "a single point: built directly"
            return
        try:
            pm = PersistentModel(self.ctx.reference)
            key = self.ctx.probe_key
            data = scenario_data(self.ctx, self.ctx.probe, self.data_for_key(key))
            problems = check_apply(pm.apply(data, rates_key=key), fresh(data))
        except Exception as exc:  # the points then rebuild, and report their own errors
            self.note = f"persistent model off: {type(exc).__name__}: {exc}"
            return
        if problems:
            self.note = "persistent model off (differs from a fresh build): " + "; ".join(
                problems[:3]
            )
            return
        self.pm = pm

    def applied(self, data: PlanningData, key: int) -> tuple[Applied, str]:
        if self.pm is not None:
            try:
                return self.pm.apply(data, rates_key=key), "persistent"
            except NotPersistent:
                pass
        return fresh(data), "rebuild"

    def reader(self, applied: Applied, path: str) -> RowReader:
        """The persistent layout's reader is built once; a fresh build needs its own."""
        if path != "persistent":
            return RowReader(applied, self.ctx.silicon)
        if self._reader is None:
            assert self.pm is not None
            self._reader = RowReader(applied, self.ctx.silicon, self.pm.data)
        return self._reader


_STATES: dict[str, WorkerState] = {}


def _state(ctx: SweepContext) -> WorkerState:
    state = _STATES.get(ctx.sweep_id)
    if state is None:
        _STATES.clear()  # one sweep at a time per process
        state = _STATES[ctx.sweep_id] = WorkerState(ctx)
    return state


Solved = tuple[int, Applied, Outcome]  # scenario, its arrays, its result


def run_chunk(ctx: SweepContext, indices: Sequence[int]) -> list[dict[str, Any]]:
    """Solve the points `indices` (what every executor runs in phase 2): whole limit groups
    (`point_chunks`), each loosest first, so a point can take the answer of a looser one
    of its group (`sweep_model.reuse`). Nothing else carries from point to point, so a
    row does not depend on which worker solved what before it."""
    state = _state(ctx)
    state.start()
    rows = []
    group, solved = -1, []
    for i in indices:
        if ctx.group_of[i] != group:
            group, solved = ctx.group_of[i], []
        rows.append(solve_point(state, i, solved))
    return rows


def solve_point(state: WorkerState, i: int, solved: list[Solved] | None = None) -> dict[str, Any]:
    """One point's row. `solved`: the points of its limit group solved so far (this one is
    added when it is solved on the persistent path)."""
    ctx = state.ctx
    point = ctx.points[i]
    t0 = time.perf_counter()
    row: dict[str, Any] = {"scenario": i}
    try:
        problems = point_problems(point)
        if problems:
            row.update(status="invalid", message="; ".join(problems))
        elif ctx.key_of_point[i] in ctx.key_errors:
            row.update(status="error", message=f"candidates: {ctx.key_errors[ctx.key_of_point[i]]}")
        else:
            key = ctx.key_of_point[i]
            data = scenario_data(ctx, point, state.data_for_key(key))
            applied, path = state.applied(data, key)
            if path == "persistent":
                applied = with_own_penalty(applied, state.penalty(key, data))
            outcome = _reused(applied, solved or [])
            if outcome is None:
                outcome = solve_scenario(applied, ctx.profile)
                if solved is not None and path == "persistent":
                    solved.append((i, applied, outcome))
            row.update(state.reader(applied, path).row(applied, outcome, ctx.workloads), path=path)
    except PlannerInputError as exc:
        row.update(status="invalid", message="; ".join(str(p) for p in exc.problems))
    except Exception as exc:  # a failing point is a row, never the end of the sweep
        row.update(status="error", message=f"{type(exc).__name__}: {exc}")
    row["wall_s"] = time.perf_counter() - t0
    if state.note:
        row["note"] = state.note
    return row


def _reused(applied: Applied, solved: list[Solved]) -> Outcome | None:
    """The first solved point of the group whose answer is provably this one's too."""
    for j, other, out in solved:
        found = reuse(applied, other, out)
        if found is not None:
            found.message = (
                f"{found.message} (the answer of scenario {j}: it meets this scenario's "
                "tighter limits, so it is optimal here too)"
            ).strip()
            return found
    return None


# --------------------------------------------------------------------------------------
# Phase-2 chunks: limit groups, loosest first
# --------------------------------------------------------------------------------------


def limit_groups(points: list[dict[str, Value]], base: Settings) -> tuple[list[int], list[int]]:
    """Group of each point (points equal but for power / capex budgets) and the order to
    solve them in: group by group in grid order, each group loosest first (a point's
    budgets, "none" first, compared lexicographically: a looser point never comes after
    a tighter one), so tighter points can reuse a looser one's answer."""
    keys: dict[tuple[tuple[str, Value], ...], int] = {}
    group_of = []
    for p in points:
        key = tuple(sorted((k, v) for k, v in p.items() if k not in LIMITS))
        group_of.append(keys.setdefault(key, len(keys)))

    def looseness(i: int) -> tuple[float, ...]:
        out = []
        for name in LIMITS:
            v = points[i].get(name, getattr(base, name))
            out.append(-math.inf if v is None else -float(v))
        return tuple(out)

    order = sorted(range(len(points)), key=lambda i: (group_of[i], looseness(i), i))
    return group_of, order


def point_chunks(ctx: SweepContext, workers: int, per_worker: int = 16) -> list[list[int]]:
    """Whole limit groups, each in solve order, merged up to about n / (per_worker x
    workers) points a chunk; the chunks largest expected work first. Many small chunks
    keep both workers busy when a few points take far longer than the rest (a budget
    that binds); a row never depends on the chunking or the chunks' order."""
    target = max(1, math.ceil(len(ctx.points) / (per_worker * workers)))
    chunks: list[list[int]] = []
    current: list[int] = []
    for i in ctx.order:
        if current and ctx.group_of[i] != ctx.group_of[current[-1]] and len(current) >= target:
            chunks.append(current)
            current = []
        current.append(i)
    if current:
        chunks.append(current)
    # Largest expected work first (longest-processing-time scheduling), so the slowest
    # groups do not come last and leave one worker idle while the other finishes them
    # (in grid order the loosest TPOT at the largest demand, a fifth of the solver time on
    # the benchmark grid, came last). Rows never depend on the order (tidy_table sorts).
    return sorted(chunks, key=lambda c: -sum(expected_work(ctx, i) for i in c))


def expected_work(ctx: SweepContext, i: int) -> float:
    """A rough size of point i's MIP, only to order the chunks: its candidate rows times
    its demand scale (more demand means more instances to place; on the benchmark grid
    the solve time grows about 10x from demand x0.6 to x1.5 at every TPOT)."""
    scale = ctx.points[i].get("demand_scale")
    return len(ctx.tables[ctx.key_of_point[i]]) * (1.0 if scale is None else float(scale))


# --------------------------------------------------------------------------------------
# The sweep
# --------------------------------------------------------------------------------------


@dataclass
class SweepResult:
    table: pd.DataFrame
    axes: tuple[Axis, ...]
    mode: Mode
    workload: str | None
    meta: dict[str, Any]

    @property
    def ok(self) -> bool:
        return bool(self.table["status"].isin(STATUS_OK).all())


def run_sweep(
    request: SweepRequest, *, workers: int = 1, executor: str = "local",
    address: str | None = None, catalog: Catalog | None = None, progress: Progress | None = None,
) -> SweepResult:  # fmt: skip
    """Solve every point; `progress(phase, done, total)` as chunks finish."""
    t0 = time.perf_counter()
    runner = make_executor(executor, workers, address)  # fails fast on a missing extra
    timings: dict[str, float] = {}
    try:
        job = plan_sweep(request, catalog)
        timings["prepare_s"] = time.perf_counter() - t0
        results: list[TableResult] = []
        # Tables take 0.05-0.3 s each: a few are quicker here than starting workers.
        tables_on = runner if len(job.keys) >= TABLES_PER_WORKER * workers else InProcess()
        for chunk in tables_on.run(compute_tables, job, chunks_of(len(job.keys), workers, 1)):
            results += chunk
            _tell(progress, "candidates", len(results), len(job.keys))
        ctx = context_of(job, results)
        timings["tables_s"] = time.perf_counter() - t0 - timings["prepare_s"]
        rows: list[dict[str, Any]] = []
        for chunk in runner.run(run_chunk, ctx, point_chunks(ctx, workers)):
            rows += chunk
            _tell(progress, "points", len(rows), len(ctx.points))
    finally:
        runner.close()
    timings["total_s"] = time.perf_counter() - t0
    timings["solve_s"] = timings["total_s"] - timings["prepare_s"] - timings["tables_s"]
    meta = {
        "points": len(ctx.points), "candidate_tables": len(ctx.tables), "workers": workers,
        "executor": executor, **timings, "mode": ctx.mode, "workload": request.workload,
        "persistent_notes": sorted({r["note"] for r in rows if r.get("note")}),
        "axes": {a.name: list(a.values) for a in ctx.axes}, "demand": str(request.demand_path),
        "profile": ctx.profile.model_dump(), "cpu_count": os.cpu_count(),
    }  # fmt: skip
    return SweepResult(tidy_table(ctx, rows), ctx.axes, ctx.mode, request.workload, meta)


def _tell(progress: Progress | None, phase: str, done: int, total: int) -> None:
    if progress is not None:
        progress(phase, done, total)


BASE_COLUMNS = [
    "status", "objective", "gap", "total_cost_usd", "capex_usd", "opex_usd", "rental_usd",
    "energy_usd", "hosting_usd", "peak_facility_mw", "unserved_rps", "binding", "path",
    "solve_s", "wall_s", "message",
]  # fmt: skip
TIMING_COLUMNS = ("solve_s", "wall_s")
PLACEMENT = ("topology", "prefill", "decode", "prefill_silicon", "decode_silicon")


def tidy_table(ctx: SweepContext, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per point in grid order; fixed columns whatever the points produced."""
    rows = sorted(rows, key=lambda r: r["scenario"])
    params = [a.name for a in ctx.axes]
    oat = ["varied"] if ctx.mode == "one-at-a-time" else []
    records = []
    for r in rows:
        point = ctx.points[r["scenario"]]
        rec = {"scenario": r["scenario"], **{p: point.get(p, _base_value(ctx, p)) for p in params}}
        if oat:
            rec["varied"] = next(iter(point))
        rec.update({k: v for k, v in r.items() if k not in ("scenario", "note")})
        records.append(rec)
    units = [f"units.{s}" for s in ctx.sku_columns] + [f"chips.{s}" for s in ctx.sku_columns]
    place = [f"{w}.{k}" for w in ctx.workloads for k in PLACEMENT]
    columns = ["scenario", *params, *oat, *BASE_COLUMNS, *units, *place]
    table = pd.DataFrame.from_records(records).reindex(columns=columns)
    solved = table["status"].isin(STATUS_OK)
    table[units] = table[units].astype(float)
    table.loc[solved, units] = table.loc[solved, units].fillna(0.0)
    text = [*place, "binding", "path", "message", "status", *oat]
    table[text] = table[text].astype(object).where(table[text].notna(), "").astype(str)
    for c in params:
        table[c] = pd.to_numeric(table[c], errors="coerce").astype(float)
    return table


def _base_value(ctx: SweepContext, name: str) -> Value:
    """A parameter's value where a one-at-a-time point leaves it alone (SLA: as in demand)."""
    st = ctx.base.settings
    if name in (*LIMITS, *ECONOMICS):
        return getattr(st, name)
    if name == "demand_scale":
        return 1.0
    head, _, sku = name.partition(".")
    if head in SKU_PARAMETERS and sku in ctx.sku_all.index:
        value = float(ctx.sku_all.at[sku, SKU_PARAMETERS[head][0]])
        return None if math.isnan(value) else value
    return None


def write_tables(result: SweepResult, out_dir: Path) -> list[Path]:
    """sweep.csv, sweep.parquet (when pyarrow is installed) and sweep.json (the run)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "sweep.csv"]
    result.table.to_csv(written[0], index=False)
    try:
        result.table.to_parquet(out_dir / "sweep.parquet", index=False)
        written.append(out_dir / "sweep.parquet")
    except ImportError:
        result.meta["parquet"] = "not written: pyarrow is not installed"
    (out_dir / "sweep.json").write_text(json.dumps(result.meta, indent=1, default=str))
    written.append(out_dir / "sweep.json")
    return written
