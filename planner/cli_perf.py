"""`planner perf`: the performance model from the command line (a contract scripts use)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from planner.errors import InputProblem, PlannerInputError

perf_app = typer.Typer(
    help="Latency, throughput, memory fit and breakdown of one serving configuration.",
    invoke_without_command=True,
)

Opt = typer.Option


def _config_kwargs(
    model: str | None,
    hardware: str | None,
    topology: str,
    tp: int | None,
    batch: str,
    prompt_tokens: int,
    context: int | None,
    output_tokens: int,
    precision: str | None,
    ffn_hardware: str | None,
    prefill_hardware: str | None,
    draft_model: str | None,
    draft_hardware: str | None,
    draft_tokens: int,
    acceptance: float,
    tpot_ms: float | None,
    ttft_ms: float | None,
    percentile: float,
    microbatches: int | None,
) -> dict[str, Any]:
    from planner.catalog import PRECISIONS
    from planner.perf.evaluate import TOPOLOGIES

    problems = []
    if not model:
        problems.append(
            InputProblem("--model", "", None, "a model id (see `planner catalog list`)")
        )
    if not hardware:
        problems.append(
            InputProblem("--hardware", "", None, "a SKU id (see `planner catalog list`)")
        )
    if topology not in TOPOLOGIES:
        problems.append(InputProblem("--topology", "", topology, f"one of {', '.join(TOPOLOGIES)}"))
    if precision is not None and precision not in PRECISIONS:
        problems.append(
            InputProblem("--precision", "", precision, f"one of {', '.join(PRECISIONS)}")
        )
    batch_value: int | str = batch
    if batch != "max":
        try:
            batch_value = int(batch)
            if batch_value < 1:
                raise ValueError
        except ValueError:
            problems.append(InputProblem("--batch", "", batch, "a positive integer or 'max'"))
    if not 0 <= acceptance <= 1:
        problems.append(InputProblem("--acceptance", "", acceptance, "a rate in [0, 1]"))
    if problems:
        raise PlannerInputError(problems)
    return dict(
        model=model, hardware=hardware, topology=topology, tp=tp, batch=batch_value,
        prompt_tokens=prompt_tokens, context=context, output_tokens=output_tokens,
        precision=precision, ffn_hardware=ffn_hardware, prefill_hardware=prefill_hardware,
        draft_model=draft_model, draft_hardware=draft_hardware, draft_tokens=draft_tokens,
        acceptance=acceptance, tpot_ms=tpot_ms, ttft_ms=ttft_ms, percentile=percentile,
        microbatches=microbatches,
    )  # fmt: skip


def _print_result(r: Any) -> None:
    from planner.cli import out

    cfg = r.config
    head = f"{cfg.model} on {cfg.hardware} ({cfg.topology}, {r.precision})"
    if not r.feasible:
        out.print(f"[bold red]infeasible[/]: {head}\n  {r.reason}", highlight=False)
        return
    out.print(f"[bold]{head}[/]  batch {r.batch}", highlight=False)
    t = Table(show_header=False, box=None)
    rows = [
        (
            "TTFT at zero load",
            f"{r.ttft_ms:,.1f} ms  (prefill {r.prefill_ms:,.1f} + KV "
            f"transfer {r.kv_transfer_ms:,.1f} + serving overhead {r.request_overhead_ms:,.1f})",
        ),
        ("TPOT (decode step per output token)", f"{r.decode_step_ms:,.2f} ms"),
        ("tokens/s per user", f"{r.tokens_per_s_per_user:,.1f}"),
        ("output tokens/s per instance", f"{r.tokens_per_s:,.0f}"),
        ("requests/s per instance (decode)", f"{r.decode_requests_per_s:,.3f}"),
    ]
    if r.prefill_requests_per_s is not None:
        rows.append(
            (
                f"requests/s per instance (prefill, p{cfg.percentile:g} TTFT <= {cfg.ttft_ms:g} ms)",
                f"{r.prefill_requests_per_s:,.3f} at utilization {r.admissible_prefill_utilization:.2f}",
            )
        )
    if r.tokens_per_step > 1:
        rows.append(("tokens per verify step", f"{r.tokens_per_step:.2f}"))
    rows += [
        ("units", ", ".join(f"{n} x {s}" for s, n in r.units.items())),
        ("parallelism", "; ".join(f"{k}: {v}" for k, v in r.parallelism.items())),
        ("power (all-in IT)", f"{r.power_w / 1000:,.1f} kW"),
    ]
    for k, v in rows:
        t.add_row(k, v)
    out.print(t)
    b = Table(title="Breakdown")
    for col in ("phase", "sku", "ms", "compute ms", "memory ms", "comm ms", "bound"):
        b.add_column(col)
    for p in r.breakdown:
        b.add_row(p.phase, p.sku, f"{p.time_ms:.3f}", f"{p.compute_ms:.3f}", f"{p.memory_ms:.3f}",
                  f"{p.comm_ms:.3f}", p.bound)  # fmt: skip
    out.print(b)
    mt = Table(title="Memory per chip (GB)")
    for col in ("role", "sku", "weights", "KV", "activations", "usable", "fits"):
        mt.add_column(col)
    for mrep in r.memory:
        mt.add_row(mrep.role, mrep.sku, f"{mrep.weights_gb_per_chip:.2f}", f"{mrep.kv_gb_per_chip:.2f}",
                   f"{mrep.activations_gb_per_chip:.3f}", f"{mrep.usable_gb_per_chip:.2f}", str(mrep.fits))  # fmt: skip
    out.print(mt)
    if r.uncalibrated:
        from planner.catalog import UNMEASURED

        out.print(f"[yellow]uncalibrated ({UNMEASURED}):[/] {', '.join(r.uncalibrated)}")


# Shared option declarations (the CLI contract in the README).
M = Annotated[str | None, Opt("--model", help="model id")]
H = Annotated[str | None, Opt("--hardware", help="decode SKU (attention side for afd)")]
TOPO = Annotated[str, Opt("--topology", help="colocated|pd|afd|spec|pd+afd|pd+spec")]
TP = Annotated[
    int | None, Opt("--tp", min=1, help="tensor-parallel degree (default: smallest that fits)")
]
B = Annotated[
    str, Opt("--batch", help="decode batch, or 'max' (largest that fits and meets --tpot-ms)")
]
S = Annotated[int, Opt("--prompt-tokens", min=1)]
C = Annotated[
    int | None,
    Opt("--context", min=1, help="mean context while decoding (default prompt + output/2)"),
]
O = Annotated[int, Opt("--output-tokens", min=1)]  # noqa: E741
P = Annotated[str | None, Opt("--precision", help="bf16|fp8|fp4|int8 (default: model's native)")]
FH = Annotated[str | None, Opt("--ffn-hardware", help="SKU for decode FFN (afd)")]
PH = Annotated[str | None, Opt("--prefill-hardware", help="SKU for prefill (pd)")]
DM = Annotated[str | None, Opt("--draft-model", help="draft model or draft head (spec)")]
DH = Annotated[str | None, Opt("--draft-hardware", help="SKU for the draft (default: same chips)")]
K = Annotated[int, Opt("--draft-tokens", min=1, max=16)]
A = Annotated[float, Opt("--acceptance", help="per-token draft acceptance rate, 0..1")]
TPOT = Annotated[float | None, Opt("--tpot-ms", min=0.0, help="TPOT target")]
TTFT = Annotated[
    float | None, Opt("--ttft-ms", min=0.0, help="TTFT target (adds sustainable request rate)")
]
PCT = Annotated[float, Opt("--percentile", min=1.0, max=99.99, help="SLA percentile")]
MB = Annotated[
    int | None, Opt("--microbatches", min=1, max=8, help="AFD micro-batches (default: best of 1-4)")
]
FMT = Annotated[str, Opt("--format", help="table or json")]


@perf_app.callback()
def perf(
    ctx: typer.Context,
    model: M = None, hardware: H = None, topology: TOPO = "colocated", tp: TP = None,
    batch: B = "1", prompt_tokens: S = 1024, context: C = None, output_tokens: O = 256,
    precision: P = None, ffn_hardware: FH = None, prefill_hardware: PH = None,
    draft_model: DM = None, draft_hardware: DH = None, draft_tokens: K = 4,
    acceptance: A = 0.7, tpot_ms: TPOT = None, ttft_ms: TTFT = None, percentile: PCT = 99.0,
    microbatches: MB = None, fmt: FMT = "table",
) -> None:  # fmt: skip
    """Evaluate one serving configuration (see also: `planner perf frontier`)."""
    if ctx.invoked_subcommand is not None:
        return
    from planner.cli import _check_format, guarded, print_json

    @guarded
    def run() -> None:
        from planner.catalog import load_catalog
        from planner.perf.evaluate import ServingConfig, evaluate

        _check_format(fmt)
        kwargs = _config_kwargs(
            model, hardware, topology, tp, batch, prompt_tokens, context, output_tokens,
            precision, ffn_hardware, prefill_hardware, draft_model, draft_hardware,
            draft_tokens, acceptance, tpot_ms, ttft_ms, percentile, microbatches,
        )  # fmt: skip
        result = evaluate(ServingConfig(**kwargs), load_catalog())
        if fmt == "json":
            print_json(result.model_dump(mode="json"))
        else:
            _print_result(result)

    run()


@perf_app.command("frontier")
def frontier(
    model: M = None, hardware: H = None, topology: Annotated[str, Opt("--topology", help="one topology or a comma list")] = "colocated",
    tp: TP = None, prompt_tokens: S = 1024, context: C = None, output_tokens: O = 256,
    precision: P = None, ffn_hardware: FH = None, prefill_hardware: PH = None,
    draft_model: DM = None, draft_hardware: DH = None, draft_tokens: K = 4,
    acceptance: A = 0.7, microbatches: MB = None, fmt: FMT = "table",
    out_dir: Annotated[Path | None, Opt("--out", help="folder for frontier.csv and frontier.png")] = None,
) -> None:  # fmt: skip
    """Token economics over batch sizes: output tokens/s per MW and per $/h vs tokens/s per user."""
    from planner.cli import _check_format, guarded, out, print_json

    @guarded
    def run() -> None:
        from planner.catalog import load_catalog
        from planner.perf.frontier import frontier_table
        from planner.report.charts import plot_frontier

        _check_format(fmt)
        cat = load_catalog()
        frames = []
        for topo in [t.strip() for t in topology.split(",") if t.strip()]:
            kwargs = _config_kwargs(
                model, hardware, topo, tp, "1", prompt_tokens, context, output_tokens,
                precision, ffn_hardware, prefill_hardware, draft_model, draft_hardware,
                draft_tokens, acceptance, None, None, 99.0, microbatches,
            )  # fmt: skip
            frames.append(frontier_table(kwargs, cat))
        import pandas as pd

        table = pd.concat(frames, ignore_index=True)
        if table.empty:
            raise PlannerInputError(
                [
                    InputProblem(
                        "frontier", "", "no feasible batch", "a configuration that fits memory"
                    )
                ]
            )
        target = _new_dir(out_dir or Path("reports/out") / f"frontier-{model}-{hardware}")
        table.to_csv(target / "frontier.csv", index=False)
        plot_frontier(table, target / "frontier.png", title=f"{model} on {hardware}")
        if fmt == "json":
            print_json({"out": str(target), "points": table.to_dict(orient="records")})
            return
        t = Table(title=f"Token-economics frontier: {model} on {hardware}")
        cols = [
            "topology",
            "batch",
            "tokens_per_s_per_user",
            "tokens_per_s",
            "tokens_per_s_per_mw",
            "tokens_per_usd_hour",
            "on_frontier",
        ]
        for c_ in cols:
            t.add_column(c_)
        for row in table[cols].itertuples(index=False):
            t.add_row(*(f"{v:,.4g}" if isinstance(v, float) else str(v) for v in row))
        out.print(t)
        out.print(f"wrote {target / 'frontier.csv'} and {target / 'frontier.png'}")

    run()


@perf_app.command("calibrate")
def calibrate(
    data: Annotated[Path | None, Opt("--data", help="measurement CSV (default: catalogs/measurements/published.csv)")] = None,
    write: Annotated[bool, Opt("--write/--no-write", help="replace catalogs/calibration.yaml with the fit")] = False,
    out_dir: Annotated[Path | None, Opt("--out", help="folder for errors.csv, exclusions.csv, summaries and the proposed calibration.yaml (a fresh one is made if it exists)")] = None,
) -> None:  # fmt: skip
    """Fit per-SKU efficiency factors to published measurements and report the errors."""
    from planner.cli import guarded, out

    @guarded
    def run() -> None:
        from planner import calibrate as cal

        path = data or cal.default_data_path()
        result = cal.calibrate(
            cal.load_measurements(path), cal.load_uncalibrated_catalog(), cal.data_label(path)
        )
        target = _new_dir(out_dir or Path("reports/out") / "calibration")
        paths = cal.write_outputs(result, target)
        for line in cal.report_lines(result):
            out.print(line, highlight=False, markup=False)
        out.print(f"\nwrote {', '.join(p.name for p in paths.values())} to {target}")
        if write:
            dest = cal.calibration_path()
            dest.write_text(result.yaml_text)
            out.print(f"replaced {dest}")
        else:
            out.print(f"{cal.calibration_path()} unchanged (--write replaces it)")

    run()


def _new_dir(path: Path) -> Path:
    """A fresh output folder: never overwrite what a user already has."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    candidate.mkdir(parents=True)
    return candidate


def register(app: typer.Typer) -> None:
    app.add_typer(perf_app, name="perf")
