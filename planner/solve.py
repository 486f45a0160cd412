"""Solve a planning model; the outcome is our own status, never a solver's exception.

Default path ("highs"): Pyomo's standard-form compiler (LinearStandardFormCompiler)
turns the model into sparse arrays, which go to highspy in one `passModel` call. That is
the cheapest Pyomo -> HiGHS transfer we measured (ARCHITECTURE.md: 3-4 s at 1e5 variables
against 10-30 s through appsi / contrib). Then:

1. the LP relaxation is solved (with at most half the time budget; if it cannot finish,
   the MIP runs without a start rather than the solve ending empty);
2. on models of ROUNDED_START_MIN_COLUMNS or more, a MIP start is built from it by
   rounding up, group by group (instances, then purchases), re-solving the LP after each
   group is fixed so the next group is sized for the rounded values (see
   `mip_start_from_relaxation`); small models first fix at zero every integer column one
   unit of which costs more than a plan found by rounding the relaxation without such
   columns (`fix_unaffordable_units`: a 4.3 M USD rack in a 1.3 M USD plan), then build a
   start from the purchases of the MIP with only purchases integer and one small MIP per
   period for the instances, with DECOMPOSED_START_SHARE of the time left
   (`packing.purchases_then_periods`), kept unless a start given is no dearer;
3. if that start is already within the profile's gap of the LP bound, it is the answer
   (proven); otherwise, on models of PACK_MIN_COLUMNS or more, a second start fixes
   purchases at the relaxation's running totals rounded up and packs instances into that
   fleet with one small MIP per period (planner.packing), with PACK_SHARE of the time
   left; then, with SUPPORT_MIP_SHARE of the time left, the packed start is improved one
   period at a time over every candidate (`packing.improve_period_by_period`), or, where
   the packing did not give the start, a sub-MIP restricted to the candidates the
   relaxation runs improves it (see `improve_on_support`); the MIP runs from the better
   start for the rest (ARCHITECTURE: always pass a MIP start), in a child process for
   large models (see below);
4. the solution is written back into the Pyomo variables, so a Plan reads the model.

HiGHS traps handled here: the time limit counts on the solver object's run clock, so it is
set to run time so far + what is left of the budget before every run; some phases overrun
the limit anyway (upstream #2226), so a watchdog thread cancels a run a few seconds after
it, and MIPs of HARD_STOP_MIN_COLUMNS or more run in a spawned process that is killed
after the deadline (at 5e5 columns HiGHS ignored both the limit and the interrupt for
minutes), keeping the best incumbent it streamed back; options persist on an object, so every object is fresh and `resetOptions` is called
before options are set; the thread pool is global, so a change of `threads` resets it;
a MIP has no duals, so duals (when asked) come from the LP with integers fixed at the MIP
solution. Solver options map to HiGHS in one place (`_highs_options`).

Other Pyomo solvers (gurobi, cplex, cbc, appsi_highs) are reached by profile through
`SolverFactory`, with their option names mapped in `_PYOMO_OPTION_NAMES`.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import math
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import highspy
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pyomo.repn.plugins.standard_form import LinearStandardFormCompiler

from planner.catalog import data_dir, load_yaml_model
from planner.errors import InputProblem, PlannerInputError
from planner.formulation import REDUNDANT_ROWS, build_model
from planner.model_data import PlanningData
from planner.packing import (
    improve_period_by_period,
    pack_into_rounded_fleet,
    purchases_then_periods,
)
from planner.pyomo_env import environ, pyo

Status = Literal["optimal", "feasible_at_limit", "infeasible", "error"]
INT_TOL = 1e-6
UNSERVED_TOL_RPS = 1e-6  # as Plan: less than this (summed over rows) is served
LP_BUDGET_SHARE = 0.5
WATCHDOG_GRACE_S = 5.0
# MIPs with at least this many columns run in a child process the parent can kill, this
# long after the deadline (see _mip_in_child); below it the in-process watchdog suffices.
# At 34,569 columns (benchmarks/plan_scale.py) an in-process MIP with 13.8 s left ran
# 28.3 s: the watchdog cancelled it 5 s late and HiGHS took ~9.5 s more to stop, so a
# 60 s --time-limit took 74 s. (Spawning the child costs ~1 s.)
HARD_STOP_MIN_COLUMNS = 20_000
HARD_STOP_GRACE_S = 1.0
# The child's HiGHS is asked to stop this share of its time left (at most EARLY_STOP_MAX_S)
# before the deadline, so that it usually ends on its own, with its final bound, before
# the parent has to kill it.
EARLY_STOP_SHARE = 0.1
EARLY_STOP_MAX_S = 5.0
# Continuous columns held at their LP values while integers are rounded up (see
# mip_start_from_relaxation): the routing stays feasible when capacity only grows.
HELD_WHEN_ROUNDING_UP = ("v_load",)
# After the rounded start, a sub-MIP on the relaxation's support (improve_on_support), or
# after the packing start the per-period improvement (packing.improve_period_by_period),
# may use this share of the time left; the whole MIP gets the rest, for its bound. Pipeline
# benchmark, 60 s: share 0.5 -> 51.7 M USD, gap 9.6 %; 0.75 -> 49.4 M, gap 5.5 % (the
# whole MIP raised the bound only 46.3 -> 46.8 M in 150 s, finding no better plan).
SUPPORT_MIP_SHARE = 0.75
# After the rounded start, the packing start (planner.packing: purchases rounded first,
# then one small MIP per period) may use this share of the time left. Pipeline benchmark,
# 60 s: 48.2 M USD in ~35 s, where the rounded start was 53.6 M and the support sub-MIP
# from it reached 51.8 M.
PACK_SHARE = 0.6
# ... on models of this many columns or more. Below it HiGHS's own search from the rounded
# start does as well or better in the limit: `--pruning none` on demand/default.csv (11,684
# columns) reached 1.190 M USD in 60 s from the rounded start and 1.214 M from the packed
# one (the start changes HiGHS's path; both at the limit), agentic_coding.csv the same
# within 0.04 % in 30 s.
PACK_MIN_COLUMNS = 20_000
# Small models (below ROUNDED_START_MIN_COLUMNS): share of the time
# left that packing.purchases_then_periods may take to build the MIP start.
DECOMPOSED_START_SHARE = 0.25
# Integer columns the support sub-MIP fixes at zero where the relaxation and the start
# leave them there: candidates' instances (purchases stay free, to re-pack onto).
SUPPORT_GROUPS = ("v_instances",)
# Largest objective coefficient HiGHS sees (objective_scale); HiGHS warns above ~1e6.
OBJECTIVE_SCALE_MAX = 1e6
# Relative slack on the peak fixed between the two stages of the "power" objective.
PEAK_SLACK = 1e-6

# The wall-clock deadline (time.perf_counter) of the planning run in progress, if any
# (`run_deadline`): no solve inside it runs past it, whatever its own profile's limit.
_RUN_DEADLINE: ContextVar[float | None] = ContextVar("planner_run_deadline", default=None)


def new_highs() -> highspy.Highs:
    """A fresh Highs object; the first one a process makes is made with its stdout muted.

    HiGHS 1.16 (the release pyproject.toml pins) prints its two-line banner straight to
    file descriptor 1 when a process makes its first Highs object, whatever `output_flag`
    is later set to; 1.15 did not. Left alone, it lands ahead of `planner plan --format
    json`'s JSON (which then no longer parses) and on top of the printed plan."""
    if _FIRST_HIGHS_MADE:
        return highspy.Highs()
    with _stdout_fd_muted():
        h = highspy.Highs()
    _FIRST_HIGHS_MADE.append(True)
    return h


_FIRST_HIGHS_MADE: list[bool] = []


@contextmanager
def _stdout_fd_muted() -> Iterator[None]:
    """File descriptor 1 points at the null device for the block: C++ code writes there
    directly, past sys.stdout. C's buffered output is flushed before fd 1 is restored."""
    if sys.stdout is not None:
        sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no fd 1 (a daemon's closed stdout): nothing to mute
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        yield
    finally:
        _flush_c_stdio()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)


def _flush_c_stdio() -> None:
    # No C runtime by that name (Windows): nothing to flush that way.
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None).fflush(None)


@contextmanager
def run_deadline(seconds: float) -> Iterator[float]:
    """Every solve started inside ends within `seconds` from now (or an enclosing run's
    deadline, if sooner): the time limit of a whole planning run, its plan and the
    follow-up solves that explain it, rather than of each solve. Yields the deadline."""
    deadline = time.perf_counter() + seconds
    outer = _RUN_DEADLINE.get()
    if outer is not None:
        deadline = min(deadline, outer)
    token = _RUN_DEADLINE.set(deadline)
    try:
        yield deadline
    finally:
        _RUN_DEADLINE.reset(token)


def run_seconds_left() -> float:
    """Seconds to the run's deadline (`run_deadline`); inf outside one."""
    deadline = _RUN_DEADLINE.get()
    return math.inf if deadline is None else max(0.0, deadline - time.perf_counter())


def within_run(seconds: float) -> float:
    """`seconds`, or what is left of the run's deadline if that is less."""
    return min(seconds, run_seconds_left())


# A follow-up solve (a limit lifted, a comparison fleet, a re-solve of the unserved
# diagnosis) starts only with this much of the run's deadline left, or this share of the
# profile's limit if more: with less it would stop at the deadline having shown nothing.
FOLLOW_UP_MIN_S = 1.0
FOLLOW_UP_MIN_SHARE = 0.02
TIME_SPENT = "not solved: the run's time limit was spent first"


def time_for_follow_up(profile: SolverProfile) -> bool:
    """Whether the run's deadline leaves enough time for one more follow-up solve (always,
    outside `run_deadline`)."""
    return run_seconds_left() >= max(FOLLOW_UP_MIN_S, FOLLOW_UP_MIN_SHARE * profile.time_limit_s)


class SolverProfile(BaseModel):
    """One solver profile (solvers/*.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    solver: str = "highs"  # "highs" = our array path; else a Pyomo SolverFactory name
    mip_rel_gap: float = Field(default=1e-3, ge=0)
    time_limit_s: float = Field(default=300.0, gt=0)
    threads: int = Field(default=0, ge=0)  # 0 = the solver decides
    random_seed: int = Field(default=0, ge=0)
    presolve: bool = True
    # Further HiGHS options by their HiGHS names (our array path only), e.g.
    # {mip_allow_restart: false}; a name HiGHS does not know is an error at load time.
    highs_options: dict[str, bool | int | float | str] = Field(default_factory=dict)

    @field_validator("highs_options")
    @classmethod
    def _known_highs_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            return value
        h = new_highs()
        h.setOptionValue("output_flag", False)  # no "unknown option" line on the console
        unknown = [k for k in value if h.getOptionType(k)[0] != highspy.HighsStatus.kOk]
        if unknown:
            raise ValueError(f"HiGHS has no option {', '.join(map(repr, sorted(unknown)))}")
        owned = sorted(set(value) & _PROFILE_FIELDS_IN_HIGHS)
        if owned:
            raise ValueError(f"set {', '.join(owned)} as the profile's own field, not here")
        return value

    @model_validator(mode="after")
    def _highs_options_need_highs(self) -> SolverProfile:
        # Other solvers run through Pyomo's SolverFactory, which never sees these options:
        # refuse them rather than ignore them.
        if self.highs_options and self.solver != "highs":
            raise ValueError(f"highs_options apply to solver 'highs' only, not {self.solver!r}")
        return self


class SolverUnavailableError(RuntimeError):
    """The profile names a solver that is not installed here."""


def load_profile(name_or_path: str | Path) -> SolverProfile:
    """A profile by name (solvers/<name>.yaml) or by path to a YAML file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = data_dir("solvers") / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in data_dir("solvers").glob("*.yaml"))
        raise PlannerInputError([InputProblem(
            "--solver-profile", "", str(name_or_path),
            f"a profile name (known: {', '.join(known)}) or the path of a profile YAML",
        )])  # fmt: skip
    return load_yaml_model(path, SolverProfile)


@dataclass
class SolveResult:
    """What a solve produced; the solution itself lives in the model's variables."""

    status: Status
    objective: float | None
    bound: float | None
    gap: float | None
    solver: str
    message: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    model: pyo.ConcreteModel | None = None
    duals: dict[str, float] | None = None  # constraint name -> d objective / d rhs
    # With demand left unserved: whether the least shortfall itself is proven (the cost
    # at it may still stop at the time limit). None: not known (no shortfall stage ran).
    shortfall_proven: bool | None = None

    @property
    def has_solution(self) -> bool:
        return self.status in ("optimal", "feasible_at_limit")


def solve(
    model_or_data: pyo.ConcreteModel | PlanningData,
    profile: SolverProfile | str | Path = "default",
    *,
    duals: bool = False,
    log: bool = False,
    warm_start: bool = False,
) -> SolveResult:
    """Solve a model (or build one from PlanningData first) under a solver profile.

    `warm_start`: the variables' current values are a feasible solution (e.g. an earlier
    stage's answer); they become the MIP start, through the array path whatever the size.

    Never raises for an infeasible or failed solve: the status says what happened. It does
    raise SolverUnavailableError when the profile's solver is not installed.
    """
    if not isinstance(profile, SolverProfile):
        profile = load_profile(profile)
    build_s = 0.0
    if isinstance(model_or_data, PlanningData):
        model = build_model(model_or_data)
        build_s = float(model.build_s)
    else:
        model = model_or_data
    solve_one = _solve_pyomo
    if profile.solver == "highs":
        solve_one = functools.partial(_solve_highs, start_from_values=warm_start)
    try:
        if _objective_is_power(model):
            result = _solve_lexicographic(model, profile, solve_one, duals=duals, log=log)
        else:
            result = solve_one(model, profile, duals=duals, log=log)
    except SolverUnavailableError:
        raise
    except Exception as exc:  # a solver failure becomes a status, never a crash
        result = SolveResult(
            "error", None, None, None, profile.solver, f"{type(exc).__name__}: {exc}"
        )
    result.model = model
    result.timings = {"build_s": build_s, **result.timings}
    return result


def copy_values(src: pyo.ConcreteModel, dst: pyo.ConcreteModel) -> None:
    """Give every variable of `dst` the value of the same-named, same-indexed variable of
    `src` (0 where `src` has none): a solved model's plan as another model's warm start
    (`solve(..., warm_start=True)`). The models may differ in rows and in which indices
    exist (a budget lifted, fewer candidates); variables are matched by name and index."""
    for var in dst.component_objects(pyo.Var, active=True):
        same = src.find_component(var.local_name)
        for index, v in var.items():
            w = None  # IndexedVar has no .get()
            if same is not None and not same.is_indexed():
                w = same
            elif same is not None and index in same.index_set():
                w = same[index]
            v.set_value(
                w.value if w is not None and w.value is not None else 0.0, skip_validation=True
            )


# Below this many columns the MIP runs without the rounded-relaxation start: HiGHS's own
# root heuristics find a better incumbent sooner than our rounding does on small models
# (default example: rounded start 5.5 M USD against the 1.445 M optimum, and the MIP took
# 1.0-1.3 s with it, 0.5 s without). On large models HiGHS's heuristics find nothing in the
# time limit and the start is the plan (ARCHITECTURE: always pass a MIP start there).
ROUNDED_START_MIN_COLUMNS = 5_000
# Relative margin by which one unit of a column must exceed a known plan's cost before
# fix_unaffordable_units fixes it at zero (the plan's LP re-solve is feasible only to
# HiGHS's tolerances).
UNAFFORDABLE_MARGIN = 1e-6
# Price levels fix_unaffordable_units tries (one LP and its rounding each).
UNAFFORDABLE_ROUNDS = 3


def lp_optimum(cm: CompiledModel, profile: SolverProfile, seconds: float) -> float | None:
    """The optimum of `cm` with integrality relaxed, within `seconds` (under the watchdog);
    None if the LP does not finish optimal."""
    lp = make_highs(cm, profile, integral=False, log=False)
    _run(lp, seconds)
    if lp.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    return float(lp.getInfo().objective_function_value) / objective_scale(cm)


def has_integer_solution(
    cm: CompiledModel, profile: SolverProfile, seconds: float, max_nodes: int | None = None
) -> bool:
    """Whether HiGHS finds a feasible integer solution of `cm` within `seconds` (and
    `max_nodes` branch-and-bound nodes). With no objective (cost zero) the first solution
    found is optimal and ends the run."""
    h = make_highs(cm, profile, integral=True, log=False)
    if max_nodes is not None:
        h.setOptionValue("mip_max_nodes", max_nodes)
    _run(h, seconds)
    feasible = highspy.SolutionStatus.kSolutionStatusFeasible
    return h.getInfo().primal_solution_status == feasible


def _objective_is_power(model: pyo.ConcreteModel) -> bool:
    return hasattr(model, "o_power") and model.o_power.active


def lexicographic_gap(
    peak_status: str, peak_gap: float | None, cost_gap: float | None, profile: SolverProfile
) -> float | None:
    """The relative gap a plan of objective "power" reports: the larger of its two stages'.

    A peak stage HiGHS calls optimal with a relative gap above the profile's was proven by
    its absolute tolerance instead: a peak at or near 0 MW (everything rented from a
    provider), where the objective is the tiny cost tie-break and a relative gap says
    nothing (the default forecast's read 24.5 % for a proven 0 MW). It counts 0.
    """
    if peak_status == "optimal" and (peak_gap is None or peak_gap > profile.mip_rel_gap):
        peak_gap = 0.0
    gaps = [g for g in (peak_gap, cost_gap) if g is not None]
    return max(gaps) if gaps else None


def _solve_lexicographic(
    model: pyo.ConcreteModel, profile: SolverProfile, solve_one: Any, **kw: Any
) -> SolveResult:
    """Objective "power": minimise peak MW, then minimise cost with the peak held there.

    The in-objective cost tie-break is too small to steer a MIP inside its gap, so the
    second stage makes the cheapest plan at the peak found deterministic and waste-free.
    The result reports the first stage's objective (peak MW + penalty) and bound, and the
    larger of the two stages' gaps (`lexicographic_gap`).
    """
    first = solve_one(model, profile, **kw)
    if not first.has_solution:
        return first
    peak_mw = max((pyo.value(model.e_power_mw[t]) for t in model.e_power_mw), default=0.0)
    old_ub = model.v_peak_mw.ub
    model.v_peak_mw.setub(peak_mw * (1 + PEAK_SLACK) + 1e-9)
    model.o_power.deactivate()
    model.o_cost.activate()
    try:
        second = solve_one(model, profile, **kw)
    finally:
        model.v_peak_mw.setub(old_ub)
        model.o_cost.deactivate()
        model.o_power.activate()
    timings = {
        k: first.timings.get(k, 0.0) + second.timings.get(k, 0.0)
        for k in first.timings.keys() | second.timings.keys()
    }
    if not second.has_solution:
        second.timings = timings
        return second
    status: Status = (
        "optimal" if first.status == second.status == "optimal" else "feasible_at_limit"
    )
    return SolveResult(
        status,
        first.objective,
        first.bound,
        lexicographic_gap(first.status, first.gap, second.gap, profile),
        first.solver,
        f"lexicographic: peak {peak_mw:.6g} MW, then cost {second.objective:.6g}"
        f" USD (gap {second.gap})",
        timings,
        duals=second.duals,
    )


# --------------------------------------------------------------------------------------
# The HiGHS array path
# --------------------------------------------------------------------------------------


SERVING_GROUPS = ("v_load", "v_instances", "v_unserved")  # indexed (..., period)


@dataclass
class CompiledModel:
    """The model as arrays, and the Pyomo objects behind rows and columns."""

    columns: list[Any]
    rows: list[Any]
    cost: np.ndarray
    offset: float
    col_lower: np.ndarray
    col_upper: np.ndarray
    row_lower: np.ndarray
    row_upper: np.ndarray
    a_start: np.ndarray
    a_index: np.ndarray
    a_value: np.ndarray
    integer: np.ndarray  # bool per column
    # Pyomo component name per column ("v_instances", ...), kept as plain strings so the
    # arrays stay usable (and picklable) after the Pyomo model is gone.
    column_group: np.ndarray
    # Purchases as series: per v_buy column its SKU (None for every other column; with
    # buy_period, so a MIP start can round cumulative purchases).
    buy_sku: np.ndarray | None = None
    # Period position of every column indexed by a period (its index's last element is a
    # period name: loads, instances, unserved, purchases, fleet, rentals; -1 for the rest).
    column_period: np.ndarray | None = None
    # Pyomo component name per row ("c_power_budget", ...), plain strings like column_group.
    row_group: np.ndarray | None = None

    @property
    def buy_period(self) -> np.ndarray | None:
        """Period position of every v_buy column, -1 for the rest (None: not known)."""
        return self._period_of(("v_buy",))

    @property
    def serving_period(self) -> np.ndarray | None:
        """Period position of every column that serves one period (SERVING_GROUPS: loads,
        instances, unserved), -1 for the rest: the shortfall stage solves per period."""
        return self._period_of(SERVING_GROUPS)

    def _period_of(self, groups: tuple[str, ...]) -> np.ndarray | None:
        if self.column_period is None:
            return None
        return np.where(np.isin(self.column_group, groups), self.column_period, -1)

    @property
    def n_cols(self) -> int:
        return len(self.columns)

    @property
    def n_rows(self) -> int:
        return len(self.rows)

    def matrix(self) -> Any:
        """The constraint matrix as a SciPy CSC matrix (rows x columns)."""
        import scipy.sparse as sp  # only when needed (0.1-0.3 s import; see pyomo_env)

        return sp.csc_matrix(
            (self.a_value, self.a_index, self.a_start), shape=(self.n_rows, self.n_cols)
        )


def compile_model(model: pyo.ConcreteModel) -> CompiledModel:
    """Pyomo -> standard-form arrays (mixed form: rows keep ==, <= or >=)."""
    info = LinearStandardFormCompiler().write(model, mixed_form=True)
    inf = highspy.kHighsInf
    rhs = np.asarray(info.rhs, dtype=float)
    kind = np.fromiter((r.bound_type for r in info.rows), dtype=np.int8, count=len(info.rows))
    row_lower = np.where(kind == 1, -inf, rhs)
    row_upper = np.where(kind == -1, inf, rhs)
    cols = info.columns
    lower = np.fromiter((-inf if v.lb is None else v.lb for v in cols), float, len(cols))
    upper = np.fromiter((inf if v.ub is None else v.ub for v in cols), float, len(cols))
    integer = np.fromiter((v.is_integer() for v in cols), bool, len(cols))
    group = np.array([v.parent_component().local_name for v in cols], dtype=object)
    buy_sku = _buy_skus(cols, group)
    column_period = _column_periods(model, cols)
    row_group = np.array(
        [r.constraint.parent_component().local_name for r in info.rows], dtype=object
    )
    n_obj = info.c.shape[0]
    cost = info.c.toarray()[0] if n_obj else np.zeros(len(cols))
    offset = float(info.c_offset[0]) if n_obj else 0.0
    a = info.A
    return CompiledModel(
        columns=cols,
        rows=info.rows,
        cost=np.ascontiguousarray(cost, dtype=float),
        offset=offset,
        col_lower=lower,
        col_upper=upper,
        row_lower=row_lower,
        row_upper=row_upper,
        a_start=a.indptr.astype(np.int32),
        a_index=a.indices.astype(np.int32),
        a_value=a.data.astype(float),
        integer=integer,
        column_group=group,
        buy_sku=buy_sku,
        column_period=column_period,
        row_group=row_group,
    )


def _period_order(model: pyo.ConcreteModel) -> dict[str, int]:
    """Period name -> position, from the model's sets (empty for a model without them)."""
    sets = getattr(model, "sets", None)
    return {t: i for i, t in enumerate(getattr(sets, "periods", []) or [])}


def _buy_skus(cols: list[Any], group: np.ndarray) -> np.ndarray:
    """SKU of every v_buy column, None for the rest (see CompiledModel.buy_sku)."""
    sku = np.full(len(cols), None, dtype=object)
    for j in np.flatnonzero(group == "v_buy").tolist():
        sku[j] = cols[j].index()[0]
    return sku


def _column_periods(model: pyo.ConcreteModel, cols: list[Any]) -> np.ndarray:
    """Period position of each column whose index ends in a period name; -1 elsewhere."""
    order = _period_order(model)
    out = np.full(len(cols), -1, dtype=np.int64)
    if not order:
        return out
    for j, v in enumerate(cols):
        index = v.index()
        last = index[-1] if isinstance(index, tuple) else index
        if isinstance(last, str):
            out[j] = order.get(last, -1)
    return out


def objective_scale(cm: CompiledModel) -> float:
    """The power of two HiGHS's objective is multiplied by (make_highs): one that brings the
    largest cost coefficient down to OBJECTIVE_SCALE_MAX, or 1.

    Why: the unserved penalty (formulation.unserved_penalty) puts costs of ~1e9 next to
    ones of ~1e3, which HiGHS flags as "excessively large" and which made its dual simplex
    fail outright on one small model ("ratio test failed due to excessive dual values").
    Scaled, that model solves, and the bundled forecasts' MIPs ran about a quarter faster.
    HiGHS's own option for this (user_objective_scale) returned the MIP dual bound
    unscaled in HiGHS 1.15 (ERGO-Code/HiGHS #3178, #3186), so the scaling is done here and
    every objective value, bound and dual read back is divided by it."""
    largest = float(np.abs(cm.cost).max(initial=0.0))
    if not largest > OBJECTIVE_SCALE_MAX:
        return 1.0
    return 2.0 ** -math.ceil(math.log2(largest / OBJECTIVE_SCALE_MAX))


def make_highs(
    cm: CompiledModel, profile: SolverProfile, *, integral: bool, log: bool
) -> highspy.Highs:
    """A fresh Highs object holding the compiled model, with the profile's options and
    its objective multiplied by objective_scale(cm)."""
    h = new_highs()
    h.resetOptions()
    for name, value in _highs_options(profile, log).items():
        h.setOptionValue(name, value)
    scale = objective_scale(cm)
    integrality = (cm.integer if integral else np.zeros(cm.n_cols, bool)).astype(np.int32)
    h.passModel(
        cm.n_cols,
        cm.n_rows,
        len(cm.a_value),
        int(highspy.MatrixFormat.kColwise),
        int(highspy.ObjSense.kMinimize),
        cm.offset * scale,
        cm.cost * scale,
        cm.col_lower,
        cm.col_upper,
        cm.row_lower,
        cm.row_upper,
        cm.a_start,
        cm.a_index,
        cm.a_value,
        integrality,
    )
    return h


_LAST_THREADS: list[int] = []


def _highs_options(profile: SolverProfile, log: bool) -> dict[str, Any]:
    """The one place profile fields become HiGHS option names."""
    if profile.threads and _LAST_THREADS and _LAST_THREADS[-1] != profile.threads:
        # HiGHS keeps one global thread pool sized on first use.
        highspy.Highs.resetGlobalScheduler(True)
    _LAST_THREADS[:] = [profile.threads]
    return {
        "output_flag": log,
        "mip_rel_gap": profile.mip_rel_gap,
        "threads": profile.threads,
        "random_seed": profile.random_seed,
        "presolve": "on" if profile.presolve else "off",
        **profile.highs_options,
    }


# HiGHS options that a profile field already sets (time_limit is set per run).
_PROFILE_FIELDS_IN_HIGHS = {
    "mip_rel_gap", "threads", "random_seed", "presolve", "time_limit", "output_flag",
}  # fmt: skip


def _run(h: highspy.Highs, seconds_left: float, *, within_deadline: bool = True) -> bool:
    """Run with the budget left (and within the run's deadline, `run_deadline`, unless
    `within_deadline` is False); True if the watchdog had to stop it.

    HiGHS's limit is on its run clock, so it is set to run time so far + what is left. Some
    phases (root heuristics, upstream HiGHS #2226) overrun the limit, so a watchdog thread
    cancels the run WATCHDOG_GRACE_S after it: the status is then kInterrupt, and the best
    solution so far is kept.
    """
    seconds_left = max(within_run(seconds_left) if within_deadline else seconds_left, 0.01)
    h.setOptionValue("time_limit", h.getRunTime() + seconds_left)
    if not h.HandleUserInterrupt:  # the setter adds callbacks: only once per object
        h.HandleUserInterrupt = True
    fired = threading.Event()

    def stop() -> None:
        fired.set()
        h.cancelSolve()

    watchdog = threading.Timer(seconds_left + WATCHDOG_GRACE_S, stop)
    watchdog.daemon = True
    watchdog.start()
    try:
        h.solve()  # runs HiGHS in its own thread, so the watchdog can cancel it
    finally:
        watchdog.cancel()
    return fired.is_set()


def _solve_highs(
    model: pyo.ConcreteModel,
    profile: SolverProfile,
    *,
    duals: bool,
    log: bool,
    start_from_values: bool = False,
) -> SolveResult:
    t0 = time.perf_counter()
    cm = compile_model(model)
    start = None
    if start_from_values:
        values = [v.value for v in cm.columns]
        if all(x is not None for x in values):
            start = np.asarray(values, dtype=float)
    transfer_s = time.perf_counter() - t0
    solved = solve_compiled(cm, profile, log=log, start=start)
    result = solved.result
    t1 = time.perf_counter()
    if solved.x is not None:
        write_back(cm, solved.x)
        if duals:
            result.duals = (
                fixed_lp_duals(cm, profile, solved.x, log)
                if solved.lp_row_duals is None
                else _named_duals(cm, solved.lp_row_duals)
            )
    transfer_s += time.perf_counter() - t1
    result.timings = {"transfer_s": transfer_s, **result.timings}
    return result


@dataclass
class CompiledSolution:
    """What `solve_compiled` found: our status and the column values (None: no solution)."""

    result: SolveResult
    x: np.ndarray | None
    lp_row_duals: np.ndarray | None = None  # pure LPs only: d objective / d rhs per row


def solve_compiled(
    cm: CompiledModel,
    profile: SolverProfile,
    *,
    log: bool = False,
    start: np.ndarray | None = None,
    incumbent: np.ndarray | None = None,
) -> CompiledSolution:
    """The planner's HiGHS recipe on arrays (see the module docstring): LP relaxation,
    rounded MIP start (the answer when it is within the gap of the LP bound), MIP.

    `start`: a known feasible solution (an earlier stage's answer); when given it is the
    MIP start if it is feasible here and no worse than the rounded relaxation (large
    models) or the purchases-then-periods start (small ones).
    `incumbent`: a known feasible solution kept aside: the answer (with the MIP's bound)
    when the MIP ends with nothing cheaper, so the result is never dearer than it. It is
    not handed to HiGHS: on the exhaustive default forecast a start made HiGHS spend its
    8 s strong-branching, and the bound it left was 15 % lower.

    Nothing is written back into Pyomo, so sweeps re-solve changed arrays with it;
    integers in `x` are as HiGHS returns them (`write_back` rounds them).
    """
    if cm.n_cols == 0:  # nothing to decide (e.g. no demand): HiGHS would say "empty"
        empty = SolveResult(
            "optimal", cm.offset, cm.offset, 0.0, "highs", "empty model", {"solve_s": 0.0}
        )
        return CompiledSolution(empty, np.zeros(0))
    deadline = time.perf_counter() + within_run(profile.time_limit_s)
    timings: dict[str, float] = {}
    scale = objective_scale(cm)  # make_highs applies it; values read back divide by it

    t1 = time.perf_counter()
    lp = make_highs(cm, profile, integral=False, log=log)
    # The relaxation gets at most half the budget: if it cannot finish, the MIP still
    # gets time to find a plan on its own rather than the whole solve ending empty.
    _run(lp, LP_BUDGET_SHARE * profile.time_limit_s)
    lp_status = lp.getModelStatus()
    timings["lp_s"] = time.perf_counter() - t1
    ms = highspy.HighsModelStatus
    if not cm.integer.any() or lp_status in (
        ms.kInfeasible,
        ms.kUnboundedOrInfeasible,
        ms.kUnbounded,
    ):
        result = _result_from(lp, "highs", lp_status, is_mip=False, scale=scale)
        timings["solve_s"] = timings["lp_s"]
        result.timings = timings
        if not result.has_solution:
            return CompiledSolution(result, None)
        solution = lp.getSolution()
        return CompiledSolution(
            result,
            np.asarray(solution.col_value),
            np.asarray(solution.row_dual) / scale,
        )

    # The relaxation's optimum bounds the MIP; read it now, before the start's re-solves.
    lp_bound = lp.getInfo().objective_function_value / scale if lp_status == ms.kOptimal else None
    x_lp = np.asarray(lp.getSolution().col_value) if lp_status == ms.kOptimal else None
    t2 = time.perf_counter()
    large = cm.n_cols >= ROUNDED_START_MIN_COLUMNS
    cm_mip, n_fixed = cm, 0
    if lp_bound is not None and not large:
        cm_mip, n_fixed = fix_unaffordable_units(cm, profile, lp_bound, deadline)
        timings["fix_s"] = time.perf_counter() - t2
        t2 = time.perf_counter()
    given = _feasible_or_none(cm_mip, start)
    given_note = " (MIP start: the given solution)"
    # (Not for the per-period models the heuristic itself solves: they have no periods.)
    decomposed = lp_bound is not None and not large and cm.column_period is not None
    if decomposed:
        t_dec = time.perf_counter()
        built = purchases_then_periods(
            cm_mip, profile, t_dec + DECOMPOSED_START_SHARE * (deadline - t_dec)
        )
        timings["decomposed_start_s"] = time.perf_counter() - t_dec
        if built is not None and (given is None or cm.cost @ built < cm.cost @ given):
            given = built
            given_note = (
                " (MIP start: purchases from a purchases-only MIP, then instances per period)"
            )
        t2 = time.perf_counter()
    start = None
    lost = np.flatnonzero(cm.column_group == "v_unserved")
    # Small models round the relaxation too where the decomposed start (above) found no
    # plan, or none that serves what the relaxation serves: it runs out of time first
    # under a short --time-limit (0.3 s on default.csv left demand unserved that the
    # rounding serves). Not the per-period models it solves: it has its own fallbacks.
    if x_lp is not None and (
        large
        or (
            decomposed
            and (
                given is None or (leaves_unserved(lost, given) and not leaves_unserved(lost, x_lp))
            )
        )
    ):
        start = mip_start_from_relaxation(lp, cm, deadline)
    start_note = ""
    if given is not None and (start is None or cm.cost @ given <= cm.cost @ start):
        start, start_note = given, given_note
    elif start is not None:
        start_note = " (MIP start: the rounded relaxation)"
    timings["start_s"] = time.perf_counter() - t2
    proven = _start_within_gap(cm, start, lp_bound, profile)
    packed_start = False
    if proven is None and x_lp is not None and cm.n_cols >= PACK_MIN_COLUMNS:
        t_pack = time.perf_counter()
        packed = pack_into_rounded_fleet(
            cm, profile, x_lp, t_pack + PACK_SHARE * (deadline - t_pack)
        )
        timings["pack_s"] = time.perf_counter() - t_pack
        packed_start = packed is not None and (start is None or cm.cost @ packed < cm.cost @ start)
        if packed_start:
            start, start_note = packed, " (MIP start: instances packed into rounded purchases)"
            proven = _start_within_gap(cm, start, lp_bound, profile)
    if proven is None and start is not None and x_lp is not None and large:
        t_sub = time.perf_counter()
        if packed_start:  # re-choose each period's instances among every candidate
            sub_deadline = t_sub + SUPPORT_MIP_SHARE * (deadline - t_sub)
            improved = improve_period_by_period(cm, profile, start, sub_deadline)
            timings["period_mip_s"] = time.perf_counter() - t_sub
            note = " (MIP start: instances packed into rounded purchases, then improved per period)"
        else:
            improved = improve_on_support(cm, profile, x_lp, start, deadline, log)
            timings["support_mip_s"] = time.perf_counter() - t_sub
            note = " (MIP start: sub-MIP on the relaxation's support)"
        if improved is not None:
            start, start_note = improved, note
            proven = _start_within_gap(cm, start, lp_bound, profile)
    if proven is not None:
        proven.message += start_note
        timings["mip_s"] = 0.0
        timings["solve_s"] = sum(timings.values())
        proven.timings = timings
        return CompiledSolution(proven, start)

    t3 = time.perf_counter()
    result, x_mip = _run_mip(cm_mip, profile, start, deadline, lp_bound, log)
    result, x_mip = _no_dearer_than(cm, incumbent, result, x_mip, profile, lp_bound)
    # HiGHS drops a start it had no time to read in (a limit reached in its presolve).
    result, x_mip = _no_dearer_than(
        cm, start, result, x_mip, profile, lp_bound,
        "the MIP start: the MIP had no time to improve it",
    )  # fmt: skip
    timings["mip_s"] = time.perf_counter() - t3
    if start is None and lp_status != ms.kOptimal:
        result.message += (
            f" (LP relaxation unfinished: {lp.modelStatusToString(lp_status)}; no MIP start)"
        )
    timings["solve_s"] = sum(timings.values())
    result.timings = timings
    result.message += start_note
    if cm_mip is not cm:
        result.message += (
            f" ({n_fixed} integer columns fixed at 0: one unit costs more than a known plan)"
        )
    return CompiledSolution(result, x_mip if result.has_solution else None)


def _no_dearer_than(
    cm: CompiledModel,
    incumbent: np.ndarray | None,
    result: SolveResult,
    x: np.ndarray | None,
    profile: SolverProfile,
    lp_bound: float | None,
    what: str = "the known incumbent: the MIP found nothing cheaper",
) -> tuple[SolveResult, np.ndarray | None]:
    """The MIP's result, or `incumbent` with the MIP's bound (the LP's where the MIP has
    none) where the MIP found nothing cheaper (solve_compiled's `incumbent`, or its start)."""
    known = _feasible_or_none(cm, incumbent)
    if known is None:
        return result, x
    known_obj = float(cm.cost @ known + cm.offset)
    # (Equal within rounding is no worse: HiGHS reports its objective from scaled values.)
    tie = 1e-9 * max(1.0, abs(known_obj))
    if result.has_solution and result.objective is not None and result.objective <= known_obj + tie:
        return result, x
    # A limit reached with no solution comes back as "error": the known plan still stands.
    bound = result.bound if result.has_solution and result.bound is not None else lp_bound
    gap = _gap(known_obj, bound)
    status = "optimal" if gap is not None and gap <= profile.mip_rel_gap else "feasible_at_limit"
    note = f" (the plan is {what})"
    return SolveResult(status, known_obj, bound, gap, "highs", result.message + note), known


def unit_cost_floor(cm: CompiledModel) -> np.ndarray | None:
    """Per column, the least objective of any solution in which that column is at least 1:
    the offset, its own cost once, and every other column at its cheapest bound. None when
    some column can lower the objective without limit (no such floor)."""
    cheapest = np.zeros(cm.n_cols)
    pos, neg = cm.cost > 0, cm.cost < 0
    cheapest[pos] = cm.cost[pos] * cm.col_lower[pos]
    cheapest[neg] = cm.cost[neg] * cm.col_upper[neg]
    if not np.isfinite(cheapest).all():
        return None
    return cm.offset + cm.cost + (cheapest.sum() - cheapest)


def fix_unaffordable_units(
    cm: CompiledModel, profile: SolverProfile, lp_bound: float, deadline: float
) -> tuple[CompiledModel, int]:
    """`cm` with every integer column fixed at zero whose single unit costs more than a
    plan known to exist; the number fixed.

    An NVL72 rack (4.3 M USD) priced into a 1.3 M USD plan: the relaxation buys 0.06 of
    one, and HiGHS spends its tree proving no whole rack pays. Columns whose unit floor
    (unit_cost_floor) is above the LP bound are the suspects. Dearest first (one price
    level at a time, at most UNAFFORDABLE_ROUNDS levels), the relaxation without the
    suspects of that level and above, rounded up (mip_start_from_relaxation), is a plan;
    every suspect whose floor is above the cheapest such plan cannot be in any plan at
    least as cheap, so fixing it removes no optimum. It stops at the first level that is
    not dearer than that plan (default example: 1.3-2.0 s -> 1.1-1.5 s, 93 -> 76 nodes).
    """
    floor = unit_cost_floor(cm)
    if floor is None:
        return cm, 0
    suspects = cm.integer & (cm.col_lower == 0) & (cm.col_upper >= 1) & (floor > lp_bound)
    if not suspects.any():
        return cm, 0
    # Price levels to 3 significant digits: one SKU's purchases in every period are one.
    level = np.zeros(cm.n_cols)
    level[suspects] = [float(f"{v:.3g}") for v in floor[suspects]]

    def dear(bound: float) -> np.ndarray:
        return suspects & (floor > bound * (1 + UNAFFORDABLE_MARGIN) + UNAFFORDABLE_MARGIN)

    known = math.inf
    for lv in np.unique(level[suspects])[::-1][:UNAFFORDABLE_ROUNDS]:
        if dear(known)[suspects & (level == lv)].all():
            continue  # this level is already dearer than a known plan
        without = dataclasses.replace(
            cm, col_upper=np.where(suspects & (level >= lv), 0.0, cm.col_upper)
        )
        lp = make_highs(without, profile, integral=False, log=False)
        _run(lp, deadline - time.perf_counter())
        if lp.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            break
        plan = _feasible_or_none(cm, mip_start_from_relaxation(lp, without, deadline))
        if plan is None:
            break
        known = min(known, cm.offset + float(cm.cost @ plan))
        if not dear(known)[suspects & (level == lv)].all():
            break  # this level is not dearer than the plan: cheaper ones are not either
    fix = dear(known)
    if not fix.any():
        return cm, 0
    return dataclasses.replace(cm, col_upper=np.where(fix, 0.0, cm.col_upper)), int(fix.sum())


def _start_within_gap(
    cm: CompiledModel, start: np.ndarray | None, lp_bound: float | None, profile: SolverProfile
) -> SolveResult | None:
    """The start as the proven answer if it is within the profile's gap of the LP bound
    (LP bound <= MIP optimum <= start); None otherwise."""
    if start is None or lp_bound is None:
        return None
    start_obj = float(cm.cost @ start + cm.offset)
    gap = _gap(start_obj, lp_bound)
    if gap is None or gap > profile.mip_rel_gap:
        return None
    return SolveResult(
        "optimal",
        start_obj,
        lp_bound,
        gap,
        "highs",
        "MIP start within the gap of the LP bound; no branch and bound",
    )


def _run_mip(
    cm: CompiledModel,
    profile: SolverProfile,
    start: np.ndarray | None,
    deadline: float,
    lp_bound: float | None,
    log: bool,
) -> tuple[SolveResult, np.ndarray | None]:
    """The MIP from `start` until `deadline`: in a child process for large models (see
    _mip_in_child), else in-process under the watchdog; its bound tightened by lp_bound."""
    if cm.n_cols >= HARD_STOP_MIN_COLUMNS:
        return _mip_in_child(cm, profile, start, deadline, lp_bound, log)
    mip = make_highs(cm, profile, integral=True, log=log)
    if start is not None:
        mip.setSolution(cm.n_cols, np.arange(cm.n_cols, dtype=np.int32), start)
    overran = _run(mip, deadline - time.perf_counter())
    result = _with_lp_bound(
        _result_from(mip, "highs", mip.getModelStatus(), is_mip=True, scale=objective_scale(cm)),
        lp_bound,
        profile,
    )
    x_mip = np.asarray(mip.getSolution().col_value) if result.has_solution else None
    if overran:
        result.message += f" (HiGHS overran its time limit; stopped {WATCHDOG_GRACE_S:g} s after)"
    return result, x_mip


def support_neighbourhood(
    cm: CompiledModel, x_lp: np.ndarray, start: np.ndarray
) -> CompiledModel | None:
    """The model with every integer column of SUPPORT_GROUPS that both the relaxation and
    the start leave at zero fixed at zero (None if that fixes nothing).

    The start stays feasible in it, and every solution of it is one of the model's (only
    upper bounds shrink). On the pipeline benchmark the relaxation runs 318 of 1,789
    (candidate, period) instance columns: the rest are candidates it never needs."""
    zero = (
        cm.integer
        & np.isin(cm.column_group, SUPPORT_GROUPS)
        & (np.abs(x_lp) <= INT_TOL)
        & (np.abs(start) <= INT_TOL)
        & (cm.col_lower <= 0.0)
    )
    if not zero.any():
        return None
    upper = np.where(zero, 0.0, cm.col_upper)
    return dataclasses.replace(cm, col_upper=upper)


def improve_on_support(
    cm: CompiledModel,
    profile: SolverProfile,
    x_lp: np.ndarray,
    start: np.ndarray,
    deadline: float,
    log: bool,
) -> np.ndarray | None:
    """A better MIP start from a sub-MIP on the relaxation's support; None if none found.

    The start rounds each instance count up next to the relaxation's, so it keeps the
    relaxation's candidates and their fractional purchases (3.15 racks -> 4 on the
    pipeline benchmark, a tenth of the plan's cost). HiGHS on the whole model spends the
    minute in its root and improves nothing, while the same MIP restricted to the candidates
    the relaxation uses (support_neighbourhood) re-packs the instances onto fewer units
    (52.6 M -> 49.4 M USD there in 45 s). It gets SUPPORT_MIP_SHARE of the time left;
    its bound is the neighbourhood's, not the model's, so only its solution is kept.
    """
    sub = support_neighbourhood(cm, x_lp, start)
    now = time.perf_counter()
    if sub is None or deadline - now <= 0:
        return None
    sub_deadline = now + SUPPORT_MIP_SHARE * (deadline - now)
    result, x = _run_mip(sub, profile, start, sub_deadline, None, log)
    if not result.has_solution or x is None:
        return None
    x = _feasible_or_none(cm, x)
    if x is None or cm.cost @ x >= cm.cost @ start:
        return None
    return x


def leaves_unserved(unserved_cols: np.ndarray, x: np.ndarray) -> bool:
    """Whether `x` leaves demand unserved: its unserved columns sum above solver noise."""
    return float(x[unserved_cols].sum()) > UNSERVED_TOL_RPS


def mip_start_from_relaxation(
    lp: highspy.Highs, cm: CompiledModel, deadline: float
) -> np.ndarray | None:
    """A feasible integer start from the LP relaxation, rounded up group by group.

    Groups are the integer variable components in order (v_instances first, then v_buy,
    then any other); each is fixed and the LP re-solved so later groups are sized for it:

    1. round the group up, holding the routing columns (HELD_WHEN_ROUNDING_UP) at their LP
       values: more capacity keeps the routing feasible, and with the stale basis dropped
       presolve removes every fixed column, so the re-solve is tiny (a full warm re-solve
       took as long as the relaxation itself at 5e5 columns);
    2. if that is infeasible (a supply cap, a power or capex budget binds), find the rows
       that block it (HiGHS feasibility relaxation), round down only the fractional
       columns in those rows, and free only the routing that shares a row with them (the
       unserved slack takes what they carried);
    3. else round the whole group down with all routing free;
    4. as a last resort every integer sits at its lower bound (always feasible here: buy
       nothing, leave demand unserved).
    """
    x = np.asarray(lp.getSolution().col_value)
    names = cm.column_group
    held = np.flatnonzero(np.isin(names, HELD_WHEN_ROUNDING_UP)).astype(np.int32)
    for cols in _integer_groups(cm, names):
        cols = cols.astype(np.int32)
        rounded = _round_group(lp, cm, cols, held, x, deadline)
        if rounded is None:
            return _lower_bound_start(lp, cm, deadline)
        x = rounded
    return _with_routing_free(lp, cm, held, x, deadline)


def _with_routing_free(
    lp: highspy.Highs, cm: CompiledModel, held: np.ndarray, x: np.ndarray, deadline: float
) -> np.ndarray:
    """The rounded start with every integer as it is and the routing re-optimised.

    Rounding holds the routing a hair below its LP values, so that hair of each demand is
    left unserved at the penalty (27 k USD on the pipeline benchmark: half its 0.1 % gap).
    With all integers fixed the re-solve is a small LP; if it fails, `x` stands."""
    _set_bounds(lp, held, cm.col_lower[held], cm.col_upper[held])
    lp.clearSolver()
    _run(lp, deadline - time.perf_counter())
    if lp.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return x
    return np.asarray(lp.getSolution().col_value)


def _round_group(
    lp: highspy.Highs,
    cm: CompiledModel,
    cols: np.ndarray,
    held: np.ndarray,
    x: np.ndarray,
    deadline: float,
) -> np.ndarray | None:
    """Fix one integer group (steps 1-3 of mip_start_from_relaxation); the LP solution."""
    lower, upper = cm.col_lower[cols], cm.col_upper[cols]
    up = np.clip(np.ceil(x[cols] - 1e-9), lower, upper)
    down = np.clip(np.floor(x[cols] + 1e-9), lower, upper)
    # 1. up, routing held a hair below its LP values (noise never overfills a demand row)
    hold = np.clip(x[held] * (1 - 1e-9), cm.col_lower[held], cm.col_upper[held])
    _set_bounds(lp, held, hold, hold)
    # 0. purchases: round the running total up, not each period's buy. The relaxation
    # buys 0.3 of a rack every period; rounding each up buys a rack every period, rounding
    # the total buys one more rack, once (an 8-rack start against a 3.2-rack relaxation).
    cumulative = _cumulative_round_up(cm, cols, x)
    tried = cumulative is not None and not np.array_equal(cumulative, up)
    if tried and _fixed_lp(lp, cols, cumulative, deadline):
        return np.asarray(lp.getSolution().col_value)
    if _fixed_lp(lp, cols, up, deadline):
        return np.asarray(lp.getSolution().col_value)
    # 2. down only the fractional columns that block, freeing the routing tied to them
    fractional = up > down
    blocking = _blocking(lp, cm, cols[fractional], up[fractional], deadline)
    if len(blocking) and time.perf_counter() < deadline:
        freed = _sharing_a_row(cm, blocking, held)
        _set_bounds(lp, freed, cm.col_lower[freed], cm.col_upper[freed])
        if _fixed_lp(lp, cols, np.where(np.isin(cols, blocking), down, up), deadline):
            return np.asarray(lp.getSolution().col_value)
    # 3. the whole group down, all routing free
    _set_bounds(lp, held, cm.col_lower[held], cm.col_upper[held])
    if _fixed_lp(lp, cols, down, deadline):
        return np.asarray(lp.getSolution().col_value)
    return None


def _feasible_or_none(
    cm: CompiledModel, x: np.ndarray | None, tol: float = 1e-6
) -> np.ndarray | None:
    """`x` with integers rounded, if it satisfies bounds, integrality and every row."""
    if x is None or len(x) != cm.n_cols or not np.isfinite(x).all():
        return None
    x = np.where(cm.integer, np.round(x), x)
    scale = 1.0 + np.abs(x)
    if (x < cm.col_lower - tol * scale).any() or (x > cm.col_upper + tol * scale).any():
        return None
    activity = cm.matrix() @ x
    slack = tol * (1.0 + np.abs(activity))
    if (activity < cm.row_lower - slack).any() or (activity > cm.row_upper + slack).any():
        return None
    return x


def _cumulative_round_up(cm: CompiledModel, cols: np.ndarray, x: np.ndarray) -> np.ndarray | None:
    """Per SKU, buys whose running total is the relaxation's running total rounded up;
    None unless `cols` are purchases with known periods. Within the columns' bounds (a
    clipped value may make it infeasible: the caller then falls back to plain rounding)."""
    buy_period = cm.buy_period
    if cm.buy_sku is None or buy_period is None or not len(cols):
        return None
    if (buy_period[cols] < 0).any():
        return None
    out = np.empty(len(cols))
    _, sku = np.unique(cm.buy_sku[cols].astype(str), return_inverse=True)
    order = np.lexsort((buy_period[cols], sku))
    for k in np.split(order, np.flatnonzero(np.diff(sku[order])) + 1):
        total = np.ceil(np.cumsum(x[cols[k]]) - 1e-9)
        out[k] = np.diff(total, prepend=0.0)
    return np.clip(out, cm.col_lower[cols], cm.col_upper[cols])


def _set_bounds(h: highspy.Highs, cols: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> None:
    if len(cols):
        h.changeColsBounds(len(cols), cols.astype(np.int32), lower, upper)


def _fixed_lp(h: highspy.Highs, cols: np.ndarray, values: np.ndarray, deadline: float) -> bool:
    """Fix cols at values, drop the stale basis (so presolve runs), solve; optimal?"""
    _set_bounds(h, cols, values, values)
    h.clearSolver()
    _run(h, deadline - time.perf_counter())
    return h.getModelStatus() == highspy.HighsModelStatus.kOptimal


def _blocking(
    h: highspy.Highs,
    cm: CompiledModel,
    candidates: np.ndarray,
    fixed_at: np.ndarray,
    deadline: float,
) -> np.ndarray:
    """Columns among `candidates` (now fixed at `fixed_at`) that must go lower.

    HiGHS's feasibility relaxation may lower only these columns' lower bounds (penalty 1
    each; every other bound and row is hard, penalty -1): the columns it lowers block.
    """
    if not len(candidates):
        return candidates
    lower_penalty = np.full(cm.n_cols, -1.0)
    lower_penalty[candidates] = 1.0
    h.clearSolver()
    h.setOptionValue("time_limit", h.getRunTime() + max(deadline - time.perf_counter(), 0.01))
    status = h.feasibilityRelaxation(-1.0, -1.0, -1.0, lower_penalty, None, None)
    if status != highspy.HighsStatus.kOk or not h.getSolution().value_valid:
        return candidates  # cannot tell: treat all as blocking
    lowered = np.asarray(h.getSolution().col_value)[candidates]
    return candidates[lowered < fixed_at - 1e-7]


def _sharing_a_row(
    cm: CompiledModel, cols: np.ndarray, among: np.ndarray, hops: int = 3
) -> np.ndarray:
    """Columns of `among` reachable from `cols` through shared rows, via continuous columns.

    Three hops reach what a rounded-down instance's routing touches: its time-budget row
    -> its loads -> their demand rows -> the shared unserved amount -> the other phase's
    demand row -> that phase's loads, which must be free to shrink with it.
    """
    entry_col = np.repeat(np.arange(cm.n_cols), np.diff(cm.a_start))
    frontier = np.zeros(cm.n_cols, dtype=bool)
    frontier[cols] = True
    reached = np.zeros(cm.n_cols, dtype=bool)
    for _ in range(hops):
        rows = np.zeros(cm.n_rows, dtype=bool)
        rows[cm.a_index[frontier[entry_col]]] = True
        touched = np.zeros(cm.n_cols, dtype=bool)
        touched[entry_col[rows[cm.a_index]]] = True
        frontier = touched & ~cm.integer & ~reached
        reached |= touched
    return among[reached[among]].astype(np.int32)


def _integer_groups(cm: CompiledModel, names: np.ndarray) -> list[np.ndarray]:
    order = ["v_instances", "v_buy"]
    order += sorted(set(names[cm.integer]) - set(order))
    return [cols for n in order if len(cols := np.flatnonzero((names == n) & cm.integer))]


def _lower_bound_start(lp: highspy.Highs, cm: CompiledModel, deadline: float) -> np.ndarray | None:
    """Every integer at its lower bound (here: buy nothing, serve from what exists)."""
    cols = np.flatnonzero(cm.integer).astype(np.int32)
    lo = cm.col_lower[cols]
    lp.changeColsBounds(len(cols), cols, lo, lo)
    everything = np.arange(cm.n_cols, dtype=np.int32)[~cm.integer]
    lp.changeColsBounds(
        len(everything), everything, cm.col_lower[~cm.integer], cm.col_upper[~cm.integer]
    )
    lp.clearSolver()
    _run(lp, deadline - time.perf_counter())
    if lp.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    return np.asarray(lp.getSolution().col_value)


def _result_from(
    h: highspy.Highs,
    solver: str,
    status: highspy.HighsModelStatus,
    *,
    is_mip: bool,
    scale: float,
) -> SolveResult:
    """HiGHS model status -> our status; objective and bound divided by the objective's
    scale (objective_scale)."""
    info = h.getInfo()
    has_x = info.primal_solution_status == highspy.SolutionStatus.kSolutionStatusFeasible
    obj = float(info.objective_function_value) / scale if has_x else None
    bound = float(info.mip_dual_bound) / scale if is_mip else obj
    return _result_from_values(
        status.name, h.modelStatusToString(status), obj, bound, solver, is_mip=is_mip
    )


def _result_from_values(
    status: str,
    name: str,
    obj: float | None,
    bound: float | None,
    solver: str,
    *,
    is_mip: bool,
) -> SolveResult:
    """HiGHS model status (its enum name, e.g. "kOptimal") and values -> our status."""
    if bound is not None and not math.isfinite(bound):
        bound = None  # HiGHS says -inf when it has no bound yet; "unknown" is clearer
    gap = _gap(obj, bound) if is_mip else (0.0 if obj is not None else None)
    if status == "kOptimal":
        return SolveResult("optimal", obj, bound, gap, solver, name)
    if status == "kInfeasible":
        return SolveResult("infeasible", None, None, None, solver, name)
    limits = (
        "kTimeLimit",
        "kIterationLimit",
        "kSolutionLimit",
        "kInterrupt",
        "kObjectiveBound",
        "kObjectiveTarget",
        "kHighsInterrupt",
    )
    if status in limits and obj is not None:
        return SolveResult("feasible_at_limit", obj, bound, gap, solver, name)
    return SolveResult("error", None, None, None, solver, f"HiGHS: {name}")


# --------------------------------------------------------------------------------------
# Hard stop: large MIPs run in a child process
# --------------------------------------------------------------------------------------


def _mip_in_child(
    cm: CompiledModel,
    profile: SolverProfile,
    start: np.ndarray | None,
    deadline: float,
    lp_bound: float | None,
    log: bool,
) -> tuple[SolveResult, np.ndarray | None]:
    """Run the MIP in a spawned process that streams its improving incumbents back.

    HiGHS ignored both its time limit and the interrupt callback for over five minutes in
    the root of a 5e5-column MIP here (ARCHITECTURE: upstream #2226, "run long solves in a
    process you can stop"). The child's HiGHS is asked to stop a little before the deadline
    (EARLY_STOP_SHARE) and the child is killed HARD_STOP_GRACE_S after it; the
    best incumbent it reported (or the MIP start) is kept, bounded by the best of its last
    dual bound and the LP relaxation, so the gap stays valid.
    """
    import multiprocessing  # here: its import costs ~0.05 s that small plans never need

    ctx = multiprocessing.get_context("spawn")  # a fork would copy HiGHS's thread pool
    receive, send = ctx.Pipe(duplex=False)
    portable = dataclasses.replace(cm, columns=range(cm.n_cols), rows=range(cm.n_rows))
    left = deadline - time.perf_counter()
    deadline_epoch = time.time() + left - min(EARLY_STOP_MAX_S, EARLY_STOP_SHARE * max(left, 0.0))
    child = ctx.Process(
        target=_mip_child, args=(portable, profile, start, deadline_epoch, log, send), daemon=True
    )
    child.start()
    send.close()
    best_obj = float(cm.cost @ start + cm.offset) if start is not None else None
    best_x, best_bound = start, lp_bound
    done = None
    stop_at = deadline + HARD_STOP_GRACE_S
    while (left := stop_at - time.perf_counter()) > 0:
        if receive.poll(min(left, 0.5)):
            try:
                message = receive.recv()
            except EOFError:
                break
            if message[0] == "incumbent":
                _, best_obj, dual_bound, best_x = message
                best_bound = _max_bound(best_bound, dual_bound)
                continue
            done = message
            break
        if not child.is_alive():
            break
    if done is None and child.is_alive():
        child.kill()
    child.join(timeout=10)
    if done is not None and done[0] == "done":
        _, status, name, obj, bound, x = done
        result = _result_from_values(
            status, name, obj, _max_bound(bound, lp_bound), "highs", is_mip=True
        )
        return result, x
    if best_obj is None:
        why = done[1] if done is not None else "stopped before any incumbent"
        return SolveResult("error", None, None, None, "highs", f"HiGHS process: {why}"), None
    gap = _gap(best_obj, best_bound)
    within = gap is not None and gap <= profile.mip_rel_gap
    result = SolveResult(
        "optimal" if within else "feasible_at_limit",
        best_obj,
        best_bound,
        gap,
        "highs",
        "HiGHS overran its time limit; its process was stopped "
        f"{HARD_STOP_GRACE_S:g} s after the deadline, keeping the best incumbent",
    )
    return result, best_x


def _with_lp_bound(
    result: SolveResult, lp_bound: float | None, profile: SolverProfile
) -> SolveResult:
    """Tighten a MIP result's bound with the LP relaxation's optimum.

    HiGHS reports a dual bound of -inf when a time limit stops it before the root is done,
    yet the relaxation solved earlier already bounds the optimum from below; using it keeps
    the gap of a time-limited plan known, and a plan already within the profile's gap of
    that bound is proven."""
    if result.objective is None:
        return result
    bound = _max_bound(result.bound, lp_bound)
    gap = _gap(result.objective, bound)
    status = result.status
    if status == "feasible_at_limit" and gap is not None and gap <= profile.mip_rel_gap:
        status = "optimal"
    return dataclasses.replace(result, status=status, bound=bound, gap=gap)


def _max_bound(a: float | None, b: float | None) -> float | None:
    finite = [v for v in (a, b) if v is not None and math.isfinite(v)]
    return max(finite) if finite else None


def _mip_child(
    cm: CompiledModel,
    profile: SolverProfile,
    start: np.ndarray | None,
    deadline_epoch: float,
    log: bool,
    send: Any,
) -> None:
    """Child process: run the MIP, send ("incumbent", obj, bound, x) on each improvement,
    then ("done", status name, status text, obj, bound, x) or ("failed", error)."""
    try:
        h = make_highs(cm, profile, integral=True, log=log)
        scale = objective_scale(cm)
        if start is not None:
            h.setSolution(cm.n_cols, np.arange(cm.n_cols, dtype=np.int32), start)

        def improving(event: Any) -> None:
            out = event.data_out
            send.send(
                (
                    "incumbent",
                    float(out.objective_function_value) / scale,
                    float(out.mip_dual_bound) / scale,
                    np.asarray(out.mip_solution, dtype=float),
                )
            )

        h.cbMipImprovingSolution.subscribe(improving)
        h.setOptionValue("time_limit", max(deadline_epoch - time.time(), 0.01))
        h.run()
        status = h.getModelStatus()
        info = h.getInfo()
        has_x = info.primal_solution_status == highspy.SolutionStatus.kSolutionStatusFeasible
        x = np.asarray(h.getSolution().col_value) if has_x else None
        send.send(
            (
                "done",
                status.name,
                h.modelStatusToString(status),
                float(info.objective_function_value) / scale if has_x else None,
                float(info.mip_dual_bound) / scale,
                x,
            )
        )
    except Exception as exc:  # reported to the parent as a status, never raised there
        send.send(("failed", f"{type(exc).__name__}: {exc}"))
    finally:
        send.close()


def _gap(obj: float | None, bound: float | None) -> float | None:
    if obj is None or bound is None or not math.isfinite(bound):
        return None
    return abs(obj - bound) / max(abs(obj), 1e-10) if obj != bound else 0.0


def write_back(cm: CompiledModel, x: np.ndarray) -> None:
    """Solution -> Pyomo variable values (integers snapped to whole numbers)."""
    snapped = np.where(cm.integer, np.round(x), x)
    for v, val in zip(cm.columns, snapped.tolist(), strict=True):
        v.set_value(val, skip_validation=True)


def fixed_lp_duals(
    cm: CompiledModel, profile: SolverProfile, x: np.ndarray, log: bool
) -> dict[str, float]:
    """Row duals of the LP with integers fixed at the MIP solution (a MIP has no duals).

    Rows that only restate others for branch and bound (REDUNDANT_ROWS) are freed first:
    with the integers fixed they duplicate the demand rows, and the dual of one limit
    would be split between the two at random."""
    lp = make_highs(cm, profile, integral=False, log=log)
    cols = np.flatnonzero(cm.integer).astype(np.int32)
    vals = np.round(x[cols])
    lp.changeColsBounds(len(cols), cols, vals, vals)
    if cm.row_group is not None:
        rows = np.flatnonzero(np.isin(cm.row_group, REDUNDANT_ROWS)).astype(np.int32)
        free = np.full(len(rows), highspy.kHighsInf)
        lp.changeRowsBounds(len(rows), rows, -free, free)
    # Part of the plan it explains, not a solve of its own: a plan found at the run's
    # deadline still gets its duals (an LP with every integer fixed: a small share of it).
    _run(lp, profile.time_limit_s, within_deadline=False)
    if lp.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return {}
    return _row_duals(cm, lp)


def _row_duals(cm: CompiledModel, h: highspy.Highs) -> dict[str, float]:
    """{constraint name: d objective / d right-hand side} from a solved LP."""
    return _named_duals(cm, np.asarray(h.getSolution().row_dual) / objective_scale(cm))


def _named_duals(cm: CompiledModel, row_dual: np.ndarray) -> dict[str, float]:
    out: dict[str, float] = {}
    for row, d in zip(cm.rows, row_dual.tolist(), strict=True):
        name = row.constraint.name
        out[name] = out.get(name, 0.0) + float(d)
    return out


# --------------------------------------------------------------------------------------
# Other solvers through Pyomo's SolverFactory
# --------------------------------------------------------------------------------------

# profile field -> option name, per solver (presolve values mapped in _pyomo_options).
_PYOMO_OPTION_NAMES: dict[str, dict[str, str]] = {
    "gurobi": {
        "mip_rel_gap": "MIPGap",
        "time_limit_s": "TimeLimit",
        "threads": "Threads",
        "random_seed": "Seed",
        "presolve": "Presolve",
    },
    "cplex": {
        "mip_rel_gap": "mipgap",
        "time_limit_s": "timelimit",
        "threads": "threads",
        "random_seed": "randomseed",
        "presolve": "preprocessing_presolve",
    },
    "cbc": {
        "mip_rel_gap": "ratioGap",
        "time_limit_s": "seconds",
        "threads": "threads",
        "random_seed": "randomSeed",
        "presolve": "presolve",
    },
    "appsi_highs": {
        "mip_rel_gap": "mip_rel_gap",
        "time_limit_s": "time_limit",
        "threads": "threads",
        "random_seed": "random_seed",
        "presolve": "presolve",
    },
}
_PRESOLVE_VALUES: dict[str, tuple[Any, Any]] = {
    "gurobi": (-1, 0),
    "cplex": ("y", "n"),
    "cbc": ("on", "off"),
    "appsi_highs": ("on", "off"),
}


def _pyomo_options(profile: SolverProfile) -> dict[str, Any]:
    base = profile.solver.split("_persistent")[0]
    names = _PYOMO_OPTION_NAMES.get(base)
    if names is None:
        return {}
    on, off = _PRESOLVE_VALUES[base]
    values = {
        "mip_rel_gap": profile.mip_rel_gap,
        # At least a second: a run deadline already passed must not read as 0 = no limit.
        "time_limit_s": max(within_run(profile.time_limit_s), 1.0),
        "threads": profile.threads,
        "random_seed": profile.random_seed,
        "presolve": on if profile.presolve else off,
    }
    if not profile.threads:
        values.pop("threads")
    return {names[k]: v for k, v in values.items()}


def _number(x: Any) -> float | None:
    """A finite float from a Pyomo results field, or None (fields may be UndefinedData)."""
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _solve_pyomo(
    model: pyo.ConcreteModel, profile: SolverProfile, *, duals: bool, log: bool
) -> SolveResult:
    env = environ()  # the solver plugins: only this path needs them
    opt = env.SolverFactory(profile.solver)
    if opt is None or not opt.available(exception_flag=False):
        raise SolverUnavailableError(
            f"solver {profile.solver!r} is not installed or not licensed here; install it "
            "(and its Python bindings or executable) or use a profile with solver: highs"
        )
    for name, value in _pyomo_options(profile).items():
        opt.options[name] = value
    t0 = time.perf_counter()
    results = opt.solve(model, tee=log, load_solutions=False)
    wall_s = time.perf_counter() - t0
    term = results.solver.termination_condition
    tc = env.TerminationCondition
    has_x = len(getattr(results, "solution", [])) > 0
    status: Status
    if term == tc.optimal and has_x:
        status = "optimal"
    elif term in (tc.infeasible, tc.infeasibleOrUnbounded):
        status = "infeasible"
    elif (term in (tc.maxTimeLimit, tc.maxIterations, tc.userInterrupt) and has_x) or (
        has_x and term == tc.feasible
    ):
        status = "feasible_at_limit"
    else:
        status = "error"
    obj = bound = gap = None
    if status in ("optimal", "feasible_at_limit"):
        model.solutions.load_from(results)
        obj = float(
            pyo.value(next(o for o in model.component_data_objects(pyo.Objective, active=True)))
        )
        bound = _number(results.problem.lower_bound)
        gap = _gap(obj, bound) if bound is not None else None
    solver_s = _number(getattr(results.solver, "wallclock_time", None)) or wall_s
    timings = {"transfer_s": max(wall_s - solver_s, 0.0), "solve_s": solver_s}
    return SolveResult(status, obj, bound, gap, profile.solver, str(term), timings)
