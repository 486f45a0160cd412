"""What the cost-power frontier pruning of candidates costs: each bundled demand file
planned as `planner plan` does (pruned) and with `--exhaustive` (every candidate not
dominated chip for chip), side by side.

    /work/venv/bin/python benchmarks/pruning_loss.py [--time-limit 120] [FILE ...]

Prints per file: candidate pairs, cost, status and solve seconds both ways, and how far
the pruned plan is above the exhaustive plan and above the exhaustive MIP's lower bound (a
bound on every plan: the pruned plan is at most that much above the true optimum). The
pruning ignores whole instances (candidates.prune_to_frontier), so the loss is largest
where workloads need only a few instances each. Exhaustive solves are slow (tens of
seconds to minutes); at the time limit their plan and bound still count.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from planner.catalog import data_dir, load_catalog
from planner.planning import Scenario, run_planning


def run(path: Path, sc: Scenario, catalog: object) -> tuple[object, float]:
    t0 = time.perf_counter()
    r = run_planning(path, sc, catalog=catalog, explain=False)
    return r, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", help="demand CSVs (default: every bundled one)")
    ap.add_argument("--time-limit", type=float, default=120.0, help="solver seconds per plan")
    args = ap.parse_args()
    files = [Path(f) for f in args.files] or sorted(Path(data_dir("demand")).glob("*.csv"))
    catalog = load_catalog()
    for path in files:
        sc = Scenario(time_limit_s=args.time_limit)
        pruned, t_p = run(path, sc, catalog)
        full, t_f = run(path, sc.model_copy(update={"exhaustive": True}), catalog)
        p, f = pruned.plan, full.plan
        print(f"{path.name}:")
        for name, r, t in (("pruned", pruned, t_p), ("exhaustive", full, t_f)):
            gap = f", gap {r.plan.gap:.2%}" if r.plan.gap is not None else ""
            print(f"  {name:>10}: {r.inputs.candidate_pairs:>6,} pairs, "
                  f"{r.plan.objective or float('nan'):>14,.0f} USD, {r.plan.status}{gap}, "
                  f"{t:.1f} s, verify {'passed' if r.verification.passed else 'FAILED'}")  # fmt: skip
        if p.objective and f.objective:
            line = f"  pruned plan is {p.objective / f.objective - 1:+.1%} vs the exhaustive plan"
            if f.bound:
                line += f", at most {p.objective / f.bound - 1:+.1%} above the optimum (bound)"
            print(line)


if __name__ == "__main__":
    main()
