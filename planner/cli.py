"""`planner`: a thin typer shell over the library. No modelling happens here."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

import planner
from planner.errors import InputProblem, PlannerInputError

app = typer.Typer(
    help="Fleet planner: what LLM inference hardware to buy, when, and how to run it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
catalog_app = typer.Typer(
    help="Inspect and validate the hardware and model catalogs.", no_args_is_help=True
)
demand_app = typer.Typer(help="Validate and summarise demand forecasts.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
app.add_typer(demand_app, name="demand")

# Piped output (CI logs, `| less`) gets a wide console instead of rich's 80 columns.
_WIDTH = None if sys.stdout.isatty() else 160
out = Console(soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, soft_wrap=True, width=_WIDTH)
_state = {"debug": False}

# Exit codes (documented in the README): 0 ok, 2 bad input, 3 demand unserved, 4 no solution.
EXIT_BAD_INPUT = 2


def fail_input(exc: PlannerInputError) -> NoReturn:
    err.print(f"[bold red]error:[/] {exc.render()}", highlight=False)
    raise typer.Exit(EXIT_BAD_INPUT)


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn input errors into exit 2 with a readable message; tracebacks only with --debug."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PlannerInputError as exc:
            if _state["debug"]:
                raise
            fail_input(exc)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:  # a bug: say so plainly, keep the traceback for --debug
            if _state["debug"]:
                raise
            err.print(f"[bold red]internal error:[/] {type(exc).__name__}: {exc}", highlight=False)
            err.print("Run again with --debug for the traceback, and please report it.")
            raise typer.Exit(1) from None

    return wrapper


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str, allow_nan=True) + "\n")


def cell(v: Any, column: str = "") -> str:
    """A table cell: "-" for a missing value, thousands separators, no exponents; a gap
    column as a percentage."""
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    if isinstance(v, float):
        if column == "gap":
            return f"{v:.2%}"
        return f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return str(v)


def _version(value: bool) -> None:
    if value:
        out.print(f"fleet-planner {planner.__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    _state["debug"] = debug


# --------------------------------------------------------------------------------------
# catalog
# --------------------------------------------------------------------------------------

FormatOpt = Annotated[str, typer.Option("--format", help="table or json")]


def _check_format(fmt: str, allowed: tuple[str, ...] = ("table", "json")) -> None:
    if fmt not in allowed:
        raise PlannerInputError([InputProblem("--format", "", fmt, f"one of {', '.join(allowed)}")])


@catalog_app.command("list")
@guarded
def catalog_list(
    kind: Annotated[
        str | None,
        typer.Option(
            "--kind", help="gpu, lpu, prefill_accelerator, wafer_scale, tpu, asic, or model"
        ),
    ] = None,
    fmt: FormatOpt = "table",
) -> None:
    """List SKUs (and models) in the catalog."""
    from planner.catalog import load_catalog

    _check_format(fmt)
    cat = load_catalog()
    kinds = sorted({h.kind for h in cat.hardware.values()} | {"model"})
    if kind is not None and kind not in kinds:
        from planner.errors import unknown_id

        raise PlannerInputError([unknown_id("--kind", "", kind, kinds)])
    rows = []
    for h in sorted(cat.hardware.values(), key=lambda h: h.id):
        if kind in (None, h.kind):
            mem = h.primary_memory
            rows.append({
                "id": h.id, "kind": h.kind, "name": h.name, "status": h.status,
                "available_from": str(h.available_from),
                "bf16_tflops": h.peak_tflops("bf16"), "fp8_tflops": h.peak_tflops("fp8"),
                "fp4_tflops": h.peak_tflops("fp4"),
                "memory_gb": mem.capacity_gb.value, "memory_kind": mem.kind,
                "bandwidth_tb_s": mem.bandwidth_tb_s.value,
                "chips_per_unit": h.purchase.chips_per_unit,
                "unit_price_usd": h.purchase.price_usd.value if h.purchase.price_usd else None,
            })  # fmt: skip
    models = []
    if kind in (None, "model"):
        for m in sorted(cat.models.values(), key=lambda m: m.id):
            entry: dict[str, Any] = {"id": m.id, "kind": "model", "role": m.role, "name": m.name}
            if m.architecture is not None:
                entry.update(
                    total_params_b=round(m.params.total / 1e9, 2),
                    active_params_b=round(m.params.active / 1e9, 2),
                    kv_kib_per_token_bf16=round(m.kv_bytes_per_token("bf16") / 1024, 1),
                    native_precision=m.native_precision,
                )
            models.append(entry)
    if fmt == "json":
        print_json({"hardware": rows, "models": models})
        return
    if rows:
        t = Table(title="Hardware (per chip; dense TFLOPS)")
        for col in [
            "id",
            "kind",
            "status",
            "from",
            "bf16",
            "fp8",
            "fp4",
            "mem GB",
            "TB/s",
            "chips/unit",
            "unit USD",
        ]:
            t.add_column(col)
        for r in rows:
            t.add_row(
                r["id"], r["kind"], r["status"], r["available_from"],
                *(f"{r[k]:,.0f}" if r[k] else "-" for k in ("bf16_tflops", "fp8_tflops", "fp4_tflops")),
                f"{r['memory_gb']:g} {r['memory_kind']}", f"{r['bandwidth_tb_s']:g}",
                str(r["chips_per_unit"]),
                f"{r['unit_price_usd']:,.0f}" if r["unit_price_usd"] else "-",
            )  # fmt: skip
        out.print(t)
    if models:
        t = Table(title="Models")
        for col in ["id", "role", "total B", "active B", "KV KiB/token (bf16)", "native"]:
            t.add_column(col)
        for m in models:
            t.add_row(
                m["id"], m["role"], str(m.get("total_params_b", "-")),
                str(m.get("active_params_b", "-")), str(m.get("kv_kib_per_token_bf16", "-")),
                m.get("native_precision", "-"),
            )  # fmt: skip
        out.print(t)


@catalog_app.command("show")
@guarded
def catalog_show(
    item_id: Annotated[str, typer.Argument(metavar="ID", help="a SKU or model id")],
    fmt: FormatOpt = "table",
) -> None:
    """Show one SKU or model with every number's source and basis."""
    from planner.catalog import load_catalog
    from planner.errors import unknown_id

    _check_format(fmt)
    cat = load_catalog()
    if item_id in cat.hardware:
        data = cat.hardware[item_id].model_dump(mode="json")
    elif item_id in cat.models:
        m = cat.models[item_id]
        data = m.model_dump(mode="json")
        if m.architecture is not None:
            p = m.params
            data["derived"] = {
                "params_b": {k: round(v / 1e9, 4) for k, v in p.model_dump().items()},
                "total_params_b": round(p.total / 1e9, 3),
                "active_params_b": round(p.active / 1e9, 3),
                "kv_bytes_per_token": {q: m.kv_bytes_per_token(q) for q in ("bf16", "fp8", "fp4")},
                "weight_gb": {q: round(m.weight_bytes(q) / 1e9, 1) for q in ("bf16", "fp8", "fp4")},
            }
    else:
        raise PlannerInputError([unknown_id("ID", "", item_id, [*cat.hardware, *cat.models])])
    if fmt == "json":
        print_json(data)
    else:
        import yaml

        out.print(yaml.safe_dump(data, sort_keys=False, width=100), highlight=False)


@catalog_app.command("validate")
@guarded
def catalog_validate(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="files or folders; default: the shipped catalogs")
    ] = None,
) -> None:
    """Validate catalog YAML files; reports every problem at once."""
    from planner.catalog import data_dir, load_catalog, validate_paths

    if not paths:
        cat = load_catalog()
        out.print(
            f"ok: {len(cat.hardware)} hardware entries and {len(cat.models)} models in "
            f"{data_dir('catalogs')} are valid"
        )
        return
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise PlannerInputError(
            [InputProblem(str(p), "", "missing", "an existing file or folder") for p in missing]
        )
    n = validate_paths(paths)
    out.print(f"ok: {n} entries valid")


# --------------------------------------------------------------------------------------
# demand
# --------------------------------------------------------------------------------------


@demand_app.command("validate")
@guarded
def demand_validate(
    file: Annotated[Path, typer.Argument(help="demand CSV (long format or hourly series)")],
    fmt: FormatOpt = "table",
) -> None:
    """Validate a demand CSV and summarise its workloads."""
    from planner.catalog import load_catalog
    from planner.demand import catalog_model_ids, demand_summary, load_demand

    _check_format(fmt)
    targets, drafts = catalog_model_ids(load_catalog())
    d = load_demand(file, targets, draft_ids=drafts)
    summary = demand_summary(d)
    if fmt == "json":
        print_json(
            {
                "file": str(file),
                "periods": list(d.periods.index),
                "workloads": json.loads(summary.reset_index().to_json(orient="records")),
            }
        )
        return
    out.print(f"ok: {file} — {len(d.workloads)} workloads over {len(d.periods)} periods")
    t = Table()
    frame = summary.reset_index()
    for col in frame.columns:
        t.add_column(str(col))
    for row in frame.itertuples(index=False):
        t.add_row(*(f"{v:,.4g}" if isinstance(v, float) else str(v) for v in row))
    out.print(t)


def main() -> None:
    app()


# Sub-command groups that live in their own modules register themselves on `app`.
from planner.cli_perf import register as _register_perf  # noqa: E402
from planner.cli_plan import register as _register_plan  # noqa: E402
from planner.cli_report import register as _register_report  # noqa: E402
from planner.cli_sweep import register as _register_sweep  # noqa: E402

_register_perf(app)
_register_plan(app)
_register_report(app)
_register_sweep(app)

if __name__ == "__main__":  # python -m planner.cli
    main()
