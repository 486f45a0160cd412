"""`planner report PLAN_JSON`: procurement reports from a saved plan (never re-solves)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from planner.errors import InputProblem, PlannerInputError

Opt = typer.Option


def load_plan(path: Path) -> Any:
    """A Plan from plan.json; a missing or malformed file is an input error (exit 2)."""
    from planner.plan import Plan

    if not path.is_file():
        raise PlannerInputError([InputProblem(str(path), "", "missing", "an existing plan.json")])
    try:
        return Plan.from_json(path.read_text())
    except Exception as exc:  # JSON or schema: name the file and what is wrong
        raise PlannerInputError([
            InputProblem(str(path), "", f"{type(exc).__name__}: {str(exc)[:200]}",
                         "a plan.json written by `planner plan`")
        ]) from None  # fmt: skip


def sidecars(folder: Path) -> dict[str, Any]:
    """What `planner plan` writes next to plan.json that the report can use."""
    found: dict[str, Any] = {}
    explained = folder / "unserved_explained.csv"
    if explained.is_file():
        import pandas as pd

        found["explanation"] = pd.read_csv(explained)
    verify = folder / "verify.json"
    if verify.is_file():
        with contextlib.suppress(json.JSONDecodeError):
            found["verification"] = json.loads(verify.read_text())
    return found


def write_plan_reports(
    run: Any, target: Path, formats: tuple[str, ...] | None = None
) -> list[Path]:
    """The reports `planner plan` writes next to plan.json (a PlanRun in, paths out)."""
    from planner.report import DEFAULT_FORMATS, write_reports

    return write_reports(
        run.plan, target, list(formats or DEFAULT_FORMATS), run.catalog,
        explanation=None if run.explanation.empty else run.explanation,
        verification=run.verification.summary(),
    )  # fmt: skip


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report_cmd(
        plan_json: Annotated[Path, typer.Argument(metavar="PLAN_JSON", help="plan.json written by `planner plan`")],
        fmt: Annotated[str, Opt("--format", help="comma-separated: html, pdf, xlsx, md, json")] = "html,md,xlsx",
        out_dir: Annotated[Path | None, Opt("--out", help="folder for report.* (default: the plan's folder)")] = None,
    ) -> None:  # fmt: skip
        """Write procurement reports (HTML, PDF, XLSX, Markdown, JSON) for a saved plan."""
        from planner.cli import guarded, out

        @guarded
        def run() -> None:
            from planner.report import parse_formats, write_reports

            formats = parse_formats(fmt)
            plan = load_plan(plan_json)
            target = out_dir or plan_json.parent
            for path in write_reports(plan, target, formats, **sidecars(plan_json.parent)):
                out.print(f"wrote {path}", highlight=False)

        run()


__all__ = ["load_plan", "register", "sidecars", "write_plan_reports"]
