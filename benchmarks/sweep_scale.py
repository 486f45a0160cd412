"""Time a 100-point sweep against one planning run, and the speedup from 1 to 2 workers.

    /work/venv/bin/python benchmarks/sweep_scale.py [--demand demand/default.csv]
        [--profile default] [--time-limit 30] [--skus a,b,...] [--workers 2] [--sla-only]
        [--rented-power provider|facility]

The sweep (grid, 5 x 5 x 4 = 100 points) varies what a capacity review varies:
  tpot_ms       5 targets around the demand's own (all workloads)
  demand_scale  0.6, 0.8, 1.0, 1.2, 1.5
  power_budget  none and 3 budgets around the base plan's peak facility MW
`--sla-only` instead varies tpot_ms (10) x ttft_ms (10): 100 candidate tables, the case
where every point has its own candidates.

Prints: one `planner plan` run (run_planning: candidates, build, solve, duals, limit
re-solves, verification) and one bare solve (candidates + build + HiGHS), both warm; the
sweep's total wall time with 1 and N workers and its phases; how many points took a
looser point's answer (no MIP of their own) and the solver seconds the rest took, the
slowest first; total / one plan run (the target is <= 10x on 2 cores) and the 1 -> N
worker speedup. Timings on a shared machine vary; the load average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from planner.catalog import load_catalog
from planner.formulation import build_model
from planner.planning import Scenario, prepare, run_planning
from planner.solve import load_profile, solve
from planner.sweep import SweepRequest, parse_axes, run_sweep


def one_plan(demand: Path, sc: Scenario, catalog: object) -> tuple[float, float, float]:
    """Seconds of a warm run_planning, of a warm prepare + build + solve; the peak MW."""
    run_planning(demand, sc, catalog=catalog, explain=False)  # warm-up
    t0 = time.perf_counter()
    run = run_planning(demand, sc, catalog=catalog, explain=False)
    t_plan = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, _, cs = prepare(demand, sc, catalog)
    solve(build_model(cs.data), load_profile(sc.solver_profile))
    t_solve = time.perf_counter() - t0
    return t_plan, t_solve, float(run.plan.power["facility_mw"].max())


def specs_for(
    demand: Path, sc: Scenario, catalog: object, peak_mw: float, sla_only: bool
) -> list[str]:
    _, d, _ = prepare(demand, sc, catalog)
    tpot = float(d.workloads["tpot_ms"].median())
    if sla_only:
        ttft = float(d.workloads["ttft_ms"].median())
        return [
            "tpot_ms="
            + ",".join(
                f"{tpot * f:.4g}" for f in (0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.4, 1.6, 2.0)
            ),
            "ttft_ms="
            + ",".join(
                f"{ttft * f:.4g}" for f in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.5, 2.0, 3.0)
            ),
        ]
    return [
        "tpot_ms=" + ",".join(f"{tpot * f:.4g}" for f in (0.75, 0.9, 1.0, 1.25, 1.5)),
        "demand_scale=0.6,0.8,1,1.2,1.5",
        "power_budget_mw=none," + ",".join(f"{peak_mw * f:.4g}" for f in (0.8, 1.0, 1.3)),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demand", type=Path, default=Path("demand/default.csv"))
    ap.add_argument("--profile", default="default")
    ap.add_argument("--time-limit", type=float, default=30.0, help="solver seconds per plan")
    ap.add_argument("--skus", default=None, help="comma-separated allowed SKUs (default: all)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sla-only", action="store_true")
    ap.add_argument("--rented-power", choices=["provider", "facility"], default="provider",
                    help="facility: rented chips count against the power budget, which then "
                    "leaves demand unserved at the tight points (the hard ones)")  # fmt: skip
    args = ap.parse_args()
    catalog = load_catalog()
    sc = Scenario(solver_profile=args.profile, time_limit_s=args.time_limit,
                  allowed_skus=args.skus.split(",") if args.skus else None,
                  rented_power=args.rented_power)  # fmt: skip
    t_plan, t_solve, peak = one_plan(args.demand, sc, catalog)
    specs = specs_for(args.demand, sc, catalog, peak, args.sla_only)
    print(
        f"demand {args.demand}, profile {args.profile}, rented_power {args.rented_power}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"one planner-plan run (warm): {t_plan:.2f} s; one candidates+build+solve: {t_solve:.2f} s"
    )
    print("sweep:", " ".join(f"--vary {s}" for s in specs))
    request = SweepRequest(args.demand, sc, tuple(parse_axes(specs)))
    totals = {}
    for workers in (1, args.workers):
        result = run_sweep(request, workers=workers, catalog=catalog)
        m, t = result.meta, result.table
        totals[workers] = m["total_s"]
        print(f"  {workers} worker(s): {m['total_s']:.1f} s total (prepare {m['prepare_s']:.1f}, "
              f"candidate tables {m['tables_s']:.1f} [{m['candidate_tables']}], scenarios {m['solve_s']:.1f}); "
              f"{m['points']} points, statuses {t['status'].value_counts().to_dict()}, "
              f"paths {t['path'].value_counts().to_dict()}; mean solve {t['solve_s'].mean():.3f} s/point; "
              f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
        reused = t["message"].str.contains("the answer of scenario")
        slow = t.loc[~reused, "solve_s"].sort_values(ascending=False)
        print(f"    {int(reused.sum())} points took a looser point's answer; the other "
              f"{len(slow)} solved in {slow.sum():.1f} s, the slowest 10 in {slow.head(10).sum():.1f} s "
              f"({', '.join(f'{v:.1f}' for v in slow.head(10))})")  # fmt: skip
        axes = [c for c in (spec.split("=")[0] for spec in specs) if c in t.columns]
        for i in slow.index[:3]:  # where the time goes, for the next round of work
            where = ", ".join(f"{a}={t.at[i, a]}" for a in axes)
            print(f"      {t.at[i, 'solve_s']:.1f} s at {where}: {str(t.at[i, 'message'])[:110]}")
    n = args.workers
    print(
        f"total with {n} workers / one planner-plan run: {totals[n] / t_plan:.1f}x (target <= 10x)"
    )
    print(f"total with {n} workers / one candidates+build+solve: {totals[n] / t_solve:.1f}x")
    print(f"speedup 1 -> {n} workers: {totals[1] / totals[n]:.2f}x")


if __name__ == "__main__":
    main()
