"""`planner plan`: plan purchases and placement from a demand CSV (the main job)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from planner.errors import InputProblem, PlannerInputError, named_in

EXIT_OK, EXIT_BAD_INPUT, EXIT_UNSERVED, EXIT_NO_SOLUTION, EXIT_VERIFY = 0, 2, 3, 4, 5
Opt = typer.Option


def _scenario(
    demand: Path | None, scenario_file: Path | None, overrides: dict[str, Any]
) -> tuple[Path, Any]:
    from planner.catalog import data_dir
    from planner.scenario import Scenario, load_scenario

    sc = load_scenario(scenario_file) if scenario_file else Scenario()
    updates = {k: v for k, v in overrides.items() if v is not None}
    if updates:
        try:
            sc = Scenario.model_validate({**sc.model_dump(), **updates})
        except Exception as exc:  # pydantic ValidationError -> the flag and the value
            errs = getattr(exc, "errors", lambda: [])()
            raise PlannerInputError([
                InputProblem(_flag(e["loc"]), "", named_in(e["msg"], e.get("input")), e["msg"]) for e in errs
            ]) from None  # fmt: skip
    path = demand or (Path(sc.demand) if sc.demand else data_dir("demand") / "default.csv")
    if not path.is_file():
        raise PlannerInputError([InputProblem(str(path), "", "missing", "an existing demand CSV")])
    return path, sc


def _flag(loc: tuple) -> str:
    """The flag a validation error is about ("flags" where it is about two of them)."""
    return f"--{str(loc[0]).replace('_', '-')}" if loc else "flags"


def new_out_dir(base: Path | None, name: str) -> Path:
    """A fresh folder; an existing one is never reused or overwritten."""
    if base is not None:
        if base.exists() and any(base.iterdir()):
            raise PlannerInputError(
                [
                    InputProblem(
                        "--out",
                        "",
                        str(base),
                        "a new or empty folder (plans are never overwritten)",
                    )
                ]
            )
        base.mkdir(parents=True, exist_ok=True)
        return base
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    root = Path("reports/out")
    candidate, n = root / f"{stamp}-{name}", 1
    while candidate.exists():
        n += 1
        candidate = root / f"{stamp}-{name}-{n}"
    candidate.mkdir(parents=True)
    return candidate


@contextlib.contextmanager
def claimed_out_dir(base: Path | None, name: str, no_write: bool) -> Iterator[Path | None]:
    """The output folder (new_out_dir), claimed before any solving so that a refused --out
    costs no solve; None with --no-write. If the work inside fails (bad input found while
    planning, an interrupt), a folder made here that is still empty is removed again, so a
    failed run leaves nothing behind; one that existed before is left as it was."""
    if no_write:
        yield None
        return
    existed = base is not None and base.exists()
    target = new_out_dir(base, name)
    try:
        yield target
    except BaseException:
        if not existed and target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        raise


def print_plan(run: Any, out_dir: Path | None) -> None:
    from planner.cli import out

    plan, inputs = run.plan, run.inputs
    gap = f", gap {plan.gap:.2%}" if plan.gap is not None else ""
    out.print(
        f"[bold]Plan[/] for {inputs.demand_source} — status [bold]{plan.status}[/]{gap}, "
        f"objective {run.plan.settings.objective}, {inputs.candidate_pairs:,} candidate pairs",
        highlight=False,
    )
    from planner.scenario import pruning_mode

    pruning = pruning_mode(inputs.scenario)
    if plan.has_solution and pruning != "none":
        better = "--pruning cover or --exhaustive" if pruning == "frontier" else "--exhaustive"
        out.print(
            f"[dim]status among the candidates kept by {pruning} pruning, a heuristic: where "
            f"workloads need few instances each, {better} (slower) can find a cheaper plan[/]",
            highlight=False,
        )
    if not plan.purchases.empty or not plan.rentals.empty:
        t = Table(title="What to buy (units) and rent (chips) per period")
        periods = [p["period"] for p in inputs.periods]
        t.add_column("SKU")
        for p in periods:
            t.add_column(p, justify="right")
        buys = plan.purchases.pivot_table(
            index="sku", columns="period", values="units", aggfunc="sum"
        )
        rents = plan.rentals.pivot_table(
            index="sku", columns="period", values="chips", aggfunc="sum"
        )
        for sku in sorted(set(buys.index) | set(rents.index)):
            cells = []
            for p in periods:
                b = buys.at[sku, p] if sku in buys.index and p in buys.columns else 0
                r = rents.at[sku, p] if sku in rents.index and p in rents.columns else 0
                txt = []
                if b == b and b > 0:  # NaN != NaN: a cell the pivot left empty
                    txt.append(f"buy {int(b)}")
                if r == r and r > 1e-9:
                    txt.append(f"rent {r:g}")
                cells.append(", ".join(txt) or "-")
            t.add_row(sku, *cells)
        out.print(t)
    _print_placement(run)
    c = plan.costs.merge(plan.power, on="period", how="left")
    t = Table(title="Cost (USD) and power per period")
    for col in ("period", "capex", "rental", "energy", "hosting", "total", "facility MW"):
        t.add_column(col, justify="right")
    for r in c.itertuples():
        t.add_row(r.period, f"{r.capex_usd:,.0f}", f"{r.rental_usd:,.0f}", f"{r.energy_usd:,.0f}",
                  f"{r.hosting_usd:,.0f}", f"{r.total_usd:,.0f}", f"{r.facility_mw:.3f}")  # fmt: skip
    t.add_row("total", *(f"{c[k].sum():,.0f}" for k in ("capex_usd", "rental_usd", "energy_usd", "hosting_usd", "total_usd")),
              f"peak {c['facility_mw'].max():.3f}")  # fmt: skip
    out.print(t)
    if plan.unserved_rps > 1e-6:
        out.print("[bold red]Unserved demand[/]")
        for r in run.explanation.itertuples() if not run.explanation.empty else []:
            out.print(f"  - {r.workload} ({r.periods}): {r.detail}", highlight=False)
        if run.explanation.empty:
            u = plan.unserved.groupby("workload")["requests_per_s"].max()
            for w, v in u.items():
                out.print(f"  - {w}: up to {v:.3g} req/s unserved", highlight=False)
    for c in inputs.comparisons or []:
        if c["status"] == "skipped":
            out.print(f"vs {c['fleet']}: {c['note']}", highlight=False)
        if c["fleet"] == "this plan" or c["total_cost_usd"] is None:
            continue
        if (c["unserved_rps"] or 0.0) > max(1e-6, plan.unserved_rps + 1e-6):
            msg = f"cannot serve {c['unserved_rps']:.3g} req/s of the demand under the same limits"
        else:
            saving = 1.0 - plan.total_cost_usd / c["total_cost_usd"] if c["total_cost_usd"] else 0.0
            msg = (f"{c['total_cost_usd']:,.0f} USD; this plan saves {saving:.1%}" if saving > 5e-4
                   else f"{c['total_cost_usd']:,.0f} USD, the same as this plan")  # fmt: skip
        out.print(f"vs {c['fleet']}: {msg}", highlight=False)
    for b in inputs.binding:
        if (
            b.get("binds", True)
            and b["row"] != "c_demand_served"
            and not b["row"].startswith("c_demand")
        ):
            out.print(f"binding: {b['constraint']} — {b['note']}", highlight=False)
        elif "binds" in b and b["binds"] is None:  # its re-solve did not run
            out.print(f"{b['constraint']}: {b['note']}", highlight=False)
    v = run.verification
    out.print(
        f"verify: {'[green]passed[/]' if v.passed else '[red]FAILED[/]'} "
        f"({sum(v.checks.values()):,} checks: {', '.join(f'{k} {n}' for k, n in sorted(v.checks.items()))})",
        highlight=False,
    )
    if inputs.uncalibrated_skus:
        from planner.catalog import UNMEASURED

        out.print(
            f"[yellow]uncalibrated SKUs in this plan ({UNMEASURED}):[/] {', '.join(inputs.uncalibrated_skus)}"
        )
    st = run.plan.settings
    if st.rented_power == "provider" and len(run.plan.rentals):
        lead = "the power objective favours them; " if st.objective == "power" else ""
        out.print(
            "[dim]facility MW leaves out rented chips (their provider powers them, "
            f"rented_power: provider): {lead}a scenario with rented_power: facility counts "
            "them as racks in this facility[/]",
            highlight=False,
        )
    tm = inputs.timings
    out.print(
        "timings: " + ", ".join(f"{k.removesuffix('_s')} {v:.2f} s" for k, v in tm.items()),
        highlight=False,
    )
    if out_dir is not None:
        out.print(f"wrote {out_dir}/plan.json and one CSV per table", highlight=False)


def _print_placement(run: Any) -> None:
    from planner.cli import out

    plan, inputs = run.plan, run.inputs
    if plan.routing.empty:
        return
    cands = {c["candidate"]: c for c in inputs.candidates}
    rows = {(r["candidate"], r["workload"], r["phase"]): r for r in inputs.rows}
    last = inputs.periods[-1]["period"]
    r = plan.routing[(plan.routing["period"] == last) & (plan.routing["load_rps"] > 1e-9)]
    t = Table(title=f"Placement per workload ({last})")
    for col in ("workload", "phase", "runs on", "batch", "TPOT ms", "share", "instances"):
        t.add_column(col)
    inst = plan.instances.set_index(["candidate", "period"])["count"]
    for x in r.sort_values(
        ["workload", "phase", "load_rps"], ascending=[True, True, False]
    ).itertuples():
        c = cands.get(x.candidate, {})
        row = rows.get((x.candidate, x.workload, x.phase), {})
        tpot = row.get("tpot_ms")
        t.add_row(x.workload, x.phase, c.get("description", x.candidate),
                  str(int(row["batch"])) if row.get("batch") else "-",
                  f"{tpot:.1f}" if tpot is not None and x.phase == "decode" else "-",
                  f"{x.share:.0%}", f"{inst.get((x.candidate, last), 0):g}")  # fmt: skip
    out.print(t)


def register(app: typer.Typer) -> None:
    @app.command("plan")
    def plan_cmd(
        demand: Annotated[Path | None, typer.Argument(help="demand CSV (default: the bundled demand/default.csv)")] = None,
        scenario: Annotated[Path | None, Opt("--scenario", help="scenario YAML with the same settings as the flags")] = None,
        objective: Annotated[str | None, Opt("--objective", help="cost or power")] = None,
        power_budget_mw: Annotated[float | None, Opt("--power-budget-mw", help="facility MW per period")] = None,
        capex_budget_usd: Annotated[float | None, Opt("--capex-budget-usd", help="purchases over the horizon")] = None,
        pue: Annotated[float | None, Opt("--pue")] = None,
        electricity_usd_per_kwh: Annotated[float | None, Opt("--electricity-usd-per-kwh")] = None,
        cost_basis: Annotated[str | None, Opt("--cost-basis", help="horizon (cash) or amortized")] = None,
        hosting_basis: Annotated[str | None, Opt("--hosting-basis", help="in_use (kW drawn) or installed (kW of every chip in service)")] = None,
        solver_profile: Annotated[str | None, Opt("--solver-profile", help="default, fast, exact, or a YAML path")] = None,
        time_limit: Annotated[float | None, Opt("--time-limit", help="solver seconds for the run: the plan's MIP may use all of them; the re-solves that explain it (limits lifted, comparison fleets, the unserved diagnosis) share what it leaves")] = None,
        out_dir: Annotated[Path | None, Opt("--out", help="output folder (new or empty)")] = None,
        fmt: Annotated[str, Opt("--format", help="table or json")] = "table",
        pareto: Annotated[int | None, Opt("--pareto", min=2, max=50, help="trace N cost-vs-power points")] = None,
        no_write: Annotated[bool, Opt("--no-write", help="print only; write no files")] = False,
        no_report: Annotated[bool, Opt("--no-report", help="write no HTML/Markdown/XLSX report")] = False,
        compare: Annotated[bool, Opt("--compare/--no-compare", help="also solve best single-SKU and GPU-only fleets")] = True,
        pruning: Annotated[str | None, Opt("--pruning", help="candidates the MIP sees: frontier (fast), cover (also the cheapest in whole instances per workload), none")] = None,
        exhaustive: Annotated[bool, Opt("--exhaustive", help="same as --pruning none: slowest, can be cheapest on small fleets")] = False,
    ) -> None:  # fmt: skip
        """Plan what to buy per period and where each workload's phases run."""
        from planner.cli import _check_format, guarded, print_json

        @guarded
        def run() -> int:
            # Started first, so its imports overlap everything below (planner.report_worker).
            wants_reports = not (no_write or no_report or pareto)
            with _report_worker(wants_reports) as worker:
                return plan_and_write(worker)

        def plan_and_write(worker: Any) -> int:
            from planner.planning import run_planning, trace_pareto

            _check_format(fmt)
            path, sc = _scenario(demand, scenario, {
                "objective": objective, "power_budget_mw": power_budget_mw, "capex_budget_usd": capex_budget_usd,
                "pue": pue, "electricity_usd_per_kwh": electricity_usd_per_kwh, "cost_basis": cost_basis,
                "hosting_basis": hosting_basis, "solver_profile": solver_profile, "time_limit_s": time_limit,
                "pruning": pruning, "exhaustive": exhaustive or None,
            })  # fmt: skip
            if pareto:
                return _run_pareto(path, sc, pareto, out_dir, fmt, no_write, trace_pareto)
            with claimed_out_dir(out_dir, Path(path).stem, no_write) as target:
                on_solved = worker.draft if worker is not None else None
                with stage_status() as on_stage:
                    result = run_planning(
                        path, sc, compare=compare, on_solved=on_solved, on_stage=on_stage
                    )
            if target is not None:
                _write_plan_folder(result, target)
                if worker is not None:
                    worker.submit(target)  # reports written while the plan prints
            if fmt == "json":
                print_json(result.plan.to_dict())
            else:
                print_plan(result, target)
            if target is not None and not no_report:
                _finish_reports(result, target, worker)
            return _exit_code(result)

        code = run()
        raise typer.Exit(code or 0)


@contextlib.contextmanager
def stage_status() -> Iterator[Any]:
    """A spinner on stderr naming the stage `run_planning` is in (its `on_stage`), while
    stderr is a terminal; no output at all otherwise (pipes, files, tests). Gone before
    the plan prints."""
    from planner.cli import err

    if not err.is_terminal:
        yield None
        return
    with err.status("planning", spinner="dots") as status:
        yield lambda text: status.update(f"{text} ...")


@contextlib.contextmanager
def _report_worker(wanted: bool) -> Iterator[Any]:
    """A report worker (planner.report_worker): the one the launcher started, or one
    started now; None when no reports are wanted or it is switched off. Stopped on the way
    out, whatever happens."""
    from planner import report_worker

    worker = report_worker.take_prestarted()
    if worker is not None and not wanted:
        worker.close()
        worker = None
    if worker is None and wanted and report_worker.enabled():
        worker = report_worker.ReportWorker.start()
    try:
        yield worker
    finally:
        if worker is not None:
            worker.close()


def _write_plan_folder(result: Any, target: Path) -> None:
    """plan.json, one CSV per table, verify.json and the unserved diagnosis (if any)."""
    result.plan.write_tables(target)
    (target / "verify.json").write_text(json.dumps(result.verification.summary(), indent=1))
    if not result.explanation.empty:
        result.explanation.to_csv(target / "unserved_explained.csv", index=False)


def _finish_reports(result: Any, target: Path, worker: Any) -> None:
    """The worker's reports, or, if it could not write them, the same reports in-process."""
    if worker is not None:
        if worker.result() is not None:
            return
        from planner.cli import err

        err.print(f"report worker: {worker.error}; writing the reports here", style="dim",
                  highlight=False)  # fmt: skip
    from planner.cli_report import write_plan_reports

    write_plan_reports(result, target)


def _exit_code(result: Any) -> int:
    from planner.cli import err

    if not result.verification.passed:
        err.print(
            "[bold red]The plan failed independent verification — this is a bug; do not act on it:[/]"
        )
        for m in result.verification.mismatches[:20]:
            err.print(f"  - {m}", highlight=False)
        return EXIT_VERIFY
    if not result.plan.has_solution:
        return EXIT_NO_SOLUTION
    if result.plan.unserved_rps > 1e-6:
        return EXIT_UNSERVED
    return EXIT_OK


def _run_pareto(
    path: Path, sc: Any, n: int, out_dir: Path | None, fmt: str, no_write: bool, trace: Any
) -> int:
    from planner.cli import cell, out, print_json

    with claimed_out_dir(out_dir, f"{Path(path).stem}-pareto", no_write) as target:
        table = trace(path, sc, n)
    if target is not None:
        table.to_csv(target / "pareto.csv", index=False)
    if fmt == "json":
        print_json(table.to_dict(orient="records"))
        return EXIT_OK
    t = Table(title="Cost versus peak facility power (epsilon constraint on power)")
    for col in table.columns:
        t.add_column(col.replace("_usd", " (USD)").replace("_mw", " (MW)").replace("_rps", " (req/s)")
                     .replace("_", " "), justify="left" if col in ("point", "status") else "right")  # fmt: skip
    for row in table.to_dict(orient="records"):
        t.add_row(*(cell(v, col) for col, v in row.items()))
    out.print(t)
    least = table.loc[table["point"] == "min power", "peak_facility_mw"]
    if sc.rented_power == "provider" and len(least) and float(least.iloc[0]) <= 1e-9:
        # Not wrong, but not the trade-off most users mean: power here is this facility's.
        out.print(
            "[dim]min power rents every chip: rented chips draw no facility power "
            "(rented_power: provider), so this frontier trades owned against rented hardware; "
            "a scenario with rented_power: facility traces the power of the whole fleet[/]",
            highlight=False,
        )
    if target is not None:
        out.print(f"wrote {target / 'pareto.csv'}")
    return (
        EXIT_OK
        if (table["status"].isin(["optimal", "feasible_at_limit"])).all()
        else EXIT_NO_SOLUTION
    )


__all__ = ["claimed_out_dir", "new_out_dir", "register"]
