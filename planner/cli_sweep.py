"""`planner sweep`: plan many scenarios and tabulate them (CSV, Parquet, charts, HTML)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

EXIT_OK, EXIT_SOME_FAILED = 0, 4
Opt = typer.Option
SHOWN_ROWS = 60


def register(app: typer.Typer) -> None:
    @app.command("sweep")
    def sweep_cmd(
        demand: Annotated[Path | None, typer.Argument(help="demand CSV (default: the bundled demand/default.csv)")] = None,
        vary: Annotated[list[str] | None, Opt("--vary", help="NAME=START:STOP:STEP or NAME=V1,V2,... (repeat). NAME: tpot_ms, ttft_ms, spec_acceptance (0..1), demand_scale, power_budget_mw (none = no budget), capex_budget_usd, electricity_usd_per_kwh, price.<sku>, rent.<sku>")] = None,
        workload: Annotated[str | None, Opt("--workload", help="apply SLA and demand_scale variations to this workload only")] = None,
        grid: Annotated[bool, Opt("--grid/--one-at-a-time", help="every combination, or each parameter alone")] = True,
        scenario: Annotated[Path | None, Opt("--scenario", help="scenario YAML with the base settings")] = None,
        objective: Annotated[str | None, Opt("--objective", help="cost or power")] = None,
        solver_profile: Annotated[str | None, Opt("--solver-profile", help="default, fast, exact, or a YAML path")] = None,
        time_limit: Annotated[float | None, Opt("--time-limit", help="solver seconds per scenario")] = None,
        workers: Annotated[int | None, Opt("--workers", min=1, help="worker processes (default: one per usable CPU core, at most one per scenario)")] = None,
        executor: Annotated[str, Opt("--executor", help="local, dask or ray (dask/ray: pip install 'fleet-planner[cluster]')")] = "local",
        address: Annotated[str | None, Opt("--address", help="dask scheduler or ray cluster address (default: start a local one)")] = None,
        out_dir: Annotated[Path | None, Opt("--out", help="output folder (new or empty)")] = None,
        fmt: Annotated[str, Opt("--format", help="table or json")] = "table",
        no_write: Annotated[bool, Opt("--no-write", help="print only; write no files")] = False,
        no_progress: Annotated[bool, Opt("--no-progress", help="no progress bar")] = False,
        pruning: Annotated[str | None, Opt("--pruning", help="frontier, cover or none (see planner plan --pruning)")] = None,
        exhaustive: Annotated[bool, Opt("--exhaustive", help="same as --pruning none")] = False,
    ) -> None:  # fmt: skip
        """Plan a grid of scenarios (SLA, demand, budgets, prices) and tabulate the results.

        Exit code 0 when every scenario has a plan, 4 when some do not (their rows say why),
        2 for bad input (a malformed --vary, an unknown SKU or workload).
        """
        from planner.cli import _check_format, guarded

        @guarded
        def run() -> int:
            from planner.cli_plan import _scenario, claimed_out_dir
            from planner.sweep import Mode, SweepRequest, parse_axes, points_of, run_sweep
            from planner.sweep_exec import default_workers

            _check_format(fmt)
            axes = parse_axes(vary or [])
            path, sc = _scenario(demand, scenario, {"objective": objective, "solver_profile": solver_profile,
                                                    "time_limit_s": time_limit, "pruning": pruning,
                                                    "exhaustive": exhaustive or None})  # fmt: skip
            mode: Mode = "grid" if grid else "one-at-a-time"
            request = SweepRequest(path, sc, tuple(axes), mode, workload)
            n_workers = workers or default_workers(len(points_of(axes, mode)))
            with (
                claimed_out_dir(out_dir, f"{Path(path).stem}-sweep", no_write) as target,
                _Progress(enabled=not no_progress) as tell,
            ):
                result = run_sweep(
                    request, workers=n_workers, executor=executor, address=address, progress=tell
                )
            if target is not None:
                _write(result, target)
            _show(result, target, fmt)
            return EXIT_OK if result.ok else EXIT_SOME_FAILED

        raise typer.Exit(run() or 0)


def _write(result: Any, target: Path) -> None:
    from planner.cli import err
    from planner.sweep import write_tables
    from planner.sweep_report import write_report

    write_tables(result, target)
    try:
        write_report(result, target)
    except Exception as exc:  # charts are a convenience: the tables are written
        err.print(
            f"[yellow]charts / summary not written:[/] {type(exc).__name__}: {exc}", highlight=False
        )


class _Progress:
    """A rich progress bar on stderr, one task per phase."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> Any:
        if not self.enabled:
            return None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        from planner.cli import err

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=err, transient=False)  # fmt: skip
        self.bar.start()
        return self.tell

    def tell(self, phase: str, done: int, total: int) -> None:
        label = {"candidates": "candidate tables", "points": "scenarios"}.get(phase, phase)
        if phase not in self.tasks:
            self.tasks[phase] = self.bar.add_task(label, total=total)
        self.bar.update(self.tasks[phase], completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def _show(result: Any, target: Path | None, fmt: str) -> None:
    from planner.cli import out, print_json

    table = result.table
    if fmt == "json":
        print_json({"meta": result.meta, "rows": table.to_dict(orient="records"),
                    "out": str(target) if target else None})  # fmt: skip
        return
    counts = table["status"].value_counts().to_dict()
    meta = result.meta
    out.print(
        f"[bold]Sweep[/] of {meta['demand']}: {meta['points']} scenarios ({result.mode}), "
        f"{meta['candidate_tables']} candidate tables, {meta['workers']} worker(s), "
        f"{meta['total_s']:.1f} s — " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
        highlight=False,
    )
    for note in meta.get("persistent_notes", []):
        out.print(f"[yellow]note:[/] {note}", highlight=False)
    out.print(_rich_table(result))
    if len(table) > SHOWN_ROWS:
        out.print(f"... {len(table) - SHOWN_ROWS} more rows in sweep.csv", highlight=False)
    if target is not None:
        out.print(
            f"wrote {target}/sweep.csv, sweep.parquet, charts and summary.html", highlight=False
        )


def _rich_table(result: Any) -> Table:
    from planner.cli import cell

    params = [a.name for a in result.axes]
    cols = [*params, "status", "total_cost_usd", "capex_usd", "opex_usd", "peak_facility_mw",
            "unserved_rps", "binding"]  # fmt: skip
    t = Table(title="Scenarios (costs in USD over the horizon)")
    for c in cols:
        # the title gives the results' currency; a varied parameter keeps its full name
        t.add_column(
            (c if c in params else c.replace("_usd", "")).replace("_", " "),
            justify="left" if c in ("status", "binding") else "right",
        )
    for r in result.table.head(SHOWN_ROWS).to_dict(orient="records"):
        t.add_row(*(cell(r.get(c)) for c in cols))
    return t


__all__ = ["register"]
