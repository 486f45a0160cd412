"""Regenerate reports/examples/ from demand/default.csv (see reports/README.md).

    python reports/make_examples.py            # plan (with comparison fleets), then report
    python reports/make_examples.py --no-plan  # re-render from reports/examples/plan.json

Writes plan.json, verify.json and report.{html,md,xlsx,json} (and report.pdf when a PDF
renderer is installed) into reports/examples/.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from planner.catalog import data_dir
from planner.cli_report import load_plan, sidecars
from planner.planning import Scenario, run_planning
from planner.report import write_reports
from planner.report.pdf import pdf_renderer

EXAMPLES = Path(__file__).resolve().parent / "examples"


def plan_default(time_limit_s: float) -> None:
    run = run_planning(
        data_dir("demand") / "default.csv", Scenario(time_limit_s=time_limit_s), compare=True
    )
    # Record the demand file relative to the repository, not this machine's checkout.
    plan = run.plan.with_inputs({**(run.plan.inputs or {}), "demand_source": "demand/default.csv"})
    EXAMPLES.mkdir(parents=True, exist_ok=True)
    (EXAMPLES / "plan.json").write_text(plan.to_json() + "\n")
    (EXAMPLES / "verify.json").write_text(json.dumps(run.verification.summary(), indent=1) + "\n")
    explained = EXAMPLES / "unserved_explained.csv"
    explained.unlink(missing_ok=True)
    if not run.explanation.empty:
        run.explanation.to_csv(explained, index=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-plan", action="store_true", help="reuse reports/examples/plan.json")
    ap.add_argument("--time-limit", type=float, default=120.0, help="solver seconds per solve")
    args = ap.parse_args()
    if not args.no_plan:
        plan_default(args.time_limit)
    formats = ["html", "md", "xlsx", "json"] + (["pdf"] if pdf_renderer() else [])
    plan = load_plan(EXAMPLES / "plan.json")
    for path in write_reports(plan, EXAMPLES, formats, **sidecars(EXAMPLES)):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
