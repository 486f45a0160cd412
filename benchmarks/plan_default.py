"""Whole-process time of `planner plan` on the bundled example (target: <= 3 s), and where
it goes (imports, candidate generation, Pyomo build, transfer to HiGHS, solve, verify).
The default run writes its reports in a worker process started with the command
(planner.report_worker); the second line shows the same run with reports in-process.

    python benchmarks/plan_default.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def whole_process(args: list[str], repeat: int, extra_env: dict[str, str]) -> list[float]:
    """Wall seconds of `python -m planner ARGS` (what the `planner` script runs), after one
    warm-up run.

    Bytecode caching is left on (PYTHONDONTWRITEBYTECODE removed) as in an installed copy;
    the warm-up writes the caches."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | extra_env
    out = []
    for i in range(repeat + 1):
        with tempfile.TemporaryDirectory() as tmp:
            argv = [a.replace("{tmp}", tmp) for a in args]
            t = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "planner", *argv],
                check=False,
                capture_output=True,
                env=env,
            )
            if i:
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
    # planner.pyomo_env keeps Pyomo's import hooks from loading these (~1 s); if a Pyomo
    # release moves the internals it touches, this line says so.
    import matplotlib  # noqa: F401  (as the reports import it)

    heavy = [m for m in ("scipy.stats", "matplotlib.pyplot") if m in sys.modules]
    out["pyomo_import_hooks"] = (
        f"loaded {heavy} (planner.pyomo_env no longer works)" if heavy else "kept out"
    )  # type: ignore[assignment]
    out["candidate_pairs"] = run.inputs.candidate_pairs
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    in_process = {"PLANNER_REPORT_WORKER": "0"}
    for label, args, env in (
        ("planner plan (the default: compare, write plan + HTML/MD/XLSX reports)",
         ["plan", "--out", "{tmp}/out"], {}),
        ("  the same, reports written in-process (PLANNER_REPORT_WORKER=0)",
         ["plan", "--out", "{tmp}/out"], in_process),
        ("planner plan --no-report", ["plan", "--no-report", "--out", "{tmp}/out"], {}),
        ("planner plan --no-write", ["plan", "--no-write"], {}),
        ("planner plan --no-write --no-compare", ["plan", "--no-write", "--no-compare"], {}),
    ):  # fmt: skip
        times = whole_process(args, a.repeat, env)
        print(
            f"{label}: median {statistics.median(times):.2f} s, min {min(times):.2f} s "
            f"over {a.repeat} runs (target <= 3 s for the default)"
        )
    for k, v in stages().items():
        print(f"  {k}: {v:.3f}" if isinstance(v, float) else f"  {k}: {v}")


if __name__ == "__main__":
    main()
