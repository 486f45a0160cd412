"""`planner report PLAN_JSON`: procurement reports from a saved plan (never re-solves)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from planner.errors import InputProblem, PlannerInputError

Opt = typer.Option


EXPECTED_PLAN = "a plan.json written by `planner plan`, or the folder that holds it"


def plan_file(path: Path) -> Path:
    """The plan.json meant by PLAN_JSON: the file itself, or the one in a plan's folder
    (the folder is what `planner plan` prints it wrote)."""
    from planner.plan import PLAN_JSON

    return path / PLAN_JSON if path.is_dir() else path


def load_plan(path: Path) -> Any:
    """A Plan from plan.json; a missing or malformed file is an input error (exit 2)."""
    from planner.plan import Plan

    if not path.is_file():
        found = "not a file" if path.exists() else "no such file"
        raise PlannerInputError([InputProblem(str(path), "", found, EXPECTED_PLAN)])
    try:
        return Plan.from_json(path.read_text())
    except Exception as exc:  # JSON or schema: name the file and what is wrong
        raise PlannerInputError([
            InputProblem(str(path), "", f"{type(exc).__name__}: {str(exc)[:200]}",
                         EXPECTED_PLAN)
        ]) from None  # fmt: skip


def refuse_to_overwrite(target: Path, formats: list[str]) -> None:
    """Reports already in `target` stay as they are (a user may have edited or sent one):
    name them, and how to write elsewhere or replace them."""
    from planner.report.write import report_path

    there = [p for p in (report_path(target, f) for f in formats) if p.exists()]
    if there:
        raise PlannerInputError([
            InputProblem(str(p), "", "exists", "a new file: give --out with another folder, or "
                         "--force to replace the reports there") for p in there
        ])  # fmt: skip


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
        plan_json: Annotated[Path, typer.Argument(metavar="PLAN_JSON", help="plan.json written by `planner plan`, or its folder")],
        fmt: Annotated[str, Opt("--format", help="comma-separated: html, pdf, xlsx, md, json")] = "html,md,xlsx",
        out_dir: Annotated[Path | None, Opt("--out", help="folder for report.* (default: the plan's folder)")] = None,
        force: Annotated[bool, Opt("--force", help="replace report.* files already in that folder")] = False,
    ) -> None:  # fmt: skip
        """Write procurement reports (HTML, PDF, XLSX, Markdown, JSON) for a saved plan."""
        from planner.cli import guarded, out

        @guarded
        def run() -> None:
            from planner.report import parse_formats, write_reports

            formats = parse_formats(fmt)
            path_json = plan_file(plan_json)
            plan = load_plan(path_json)
            target = out_dir or path_json.parent
            if not force:
                refuse_to_overwrite(target, formats)
            for path in write_reports(plan, target, formats, **sidecars(path_json.parent)):
                out.print(f"wrote {path}", highlight=False)

        run()


__all__ = [
    "load_plan",
    "plan_file",
    "refuse_to_overwrite",
    "register",
    "sidecars",
    "write_plan_reports",
]
