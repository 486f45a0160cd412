"""Whole-process time of `planner plan` on the bundled example (target: <= 3 s), and where
it goes (imports, candidate generation, Pyomo build, transfer to HiGHS, solve, verify).

    python benchmarks/plan_default.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def whole_process(args: list[str], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "planner.cli", *args], check=False, capture_output=True
        )
        out.append(time.perf_counter() - t)
    return out


def stages() -> dict[str, float]:
    t0 = time.perf_counter()
    from pathlib import Path

    import planner.cli  # noqa: F401  (the imports a CLI run pays)
    from planner.catalog import data_dir
    from planner.planning import Scenario, run_planning

    t_import = time.perf_counter() - t0
    t1 = time.perf_counter()
    run = run_planning(
        Path(data_dir("demand") / "default.csv"), Scenario(), compare=False, explain=False
    )
    total = time.perf_counter() - t1
    out = {"imports_s": t_import, **run.inputs.timings, "run_planning_s": total}
    out["verify_and_rest_s"] = (
        total
        - run.inputs.timings.get("candidates_s", 0)
        - run.inputs.timings.get("solve_s", 0)
        - run.inputs.timings.get("transfer_s", 0)
        - run.inputs.timings.get("build_s", 0)
    )
    out["status"] = run.plan.status  # type: ignore[assignment]
    out["candidate_pairs"] = run.inputs.candidate_pairs
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    for label, args in (
        ("plan --no-write --no-compare", ["plan", "--no-write", "--no-compare"]),
        ("plan --no-write (with comparison fleets)", ["plan", "--no-write"]),
    ):
        times = whole_process(args, a.repeat)
        print(
            f"{label}: median {statistics.median(times):.2f} s over {a.repeat} runs (target <= 3 s for the first)"
        )
    for k, v in stages().items():
        print(f"  {k}: {v:.3f}" if isinstance(v, float) else f"  {k}: {v}")


if __name__ == "__main__":
    main()
