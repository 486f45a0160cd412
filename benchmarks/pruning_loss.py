"""What the candidate pruning costs: each bundled demand file planned with each pruning
mode, side by side: `frontier` (the default), `cover` (`--pruning cover`) and `none`
(`--exhaustive`: every candidate not dominated chip for chip).

    /work/venv/bin/python benchmarks/pruning_loss.py [--time-limit 120] [--scenario YAML]
        [FILE ...]

Prints per file and mode: candidate pairs, cost, status and seconds, and how far each
plan is above the exhaustive plan and above the exhaustive MIP's lower bound (a bound on
every plan: a plan is at most that much above the true optimum). The frontier ignores
whole instances (candidates.prune_to_frontier), so its loss is largest where workloads
need only a few instances each; `cover` keeps the whole-instance covers it misses
(candidates.cover_candidates). Exhaustive solves are slow (tens of seconds to minutes);
at the time limit their plan and bound still count. `--scenario` plans under a scenario
file (an existing fleet, a capex budget: the pruning ranks those differently, see
candidates.prune_to_frontier), its time limit replaced by --time-limit.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from planner.catalog import data_dir, load_catalog
from planner.planning import Scenario, run_planning
from planner.scenario import load_scenario


def run(path: Path, sc: Scenario, catalog: object) -> tuple[object, float]:
    t0 = time.perf_counter()
    r = run_planning(path, sc, catalog=catalog, explain=False)
    return r, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", help="demand CSVs (default: every bundled one)")
    ap.add_argument("--time-limit", type=float, default=120.0, help="solver seconds per plan")
    ap.add_argument("--scenario", type=Path, default=None, help="a scenario YAML to plan under")
    args = ap.parse_args()
    base = load_scenario(args.scenario) if args.scenario else Scenario()
    files = [Path(f) for f in args.files] or sorted(Path(data_dir("demand")).glob("*.csv"))
    catalog = load_catalog()
    for path in files:
        sc = base.model_copy(update={"time_limit_s": args.time_limit})
        runs = {mode: run(path, sc.model_copy(update={"pruning": mode}), catalog)
                for mode in ("frontier", "cover", "none")}  # fmt: skip
        full = runs["none"][0].plan
        print(f"{path.name}{f' under {args.scenario.name}' if args.scenario else ''}:")
        for mode, (r, t) in runs.items():
            gap = f", gap {r.plan.gap:.2%}" if r.plan.gap is not None else ""
            line = (f"  {mode:>8}: {r.inputs.candidate_pairs:>6,} pairs, "
                    f"{r.plan.objective or float('nan'):>14,.0f} USD, {r.plan.status}{gap}, "
                    f"{t:.1f} s, verify {'passed' if r.verification.passed else 'FAILED'}")  # fmt: skip
            if mode != "none" and r.plan.objective and full.objective:
                line += f"; {r.plan.objective / full.objective - 1:+.1%} vs exhaustive"
                if full.bound:
                    line += f", at most {r.plan.objective / full.bound - 1:+.1%} above the optimum"
            print(line, flush=True)


if __name__ == "__main__":
    main()
