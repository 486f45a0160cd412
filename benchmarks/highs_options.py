"""HiGHS MIP time on the bundled demand files, per set of HiGHS options and random seed.

    python benchmarks/highs_options.py [--profile default] [--seeds 3]
        [--try '{"mip_allow_restart": false}' ...]

Each bundled demand file (demand/*.csv, all shipped SKUs, the planner's default settings)
is compiled once; its MIP is then solved by HiGHS alone (no rounded start, no shortfall
stages) under the profile with its `highs_options` removed (HiGHS's own defaults), with
them as shipped, and with each `--try` set on top of the profile. Prints HiGHS seconds and
the objective per file and seed, and the total per option set: the evidence for the
options shipped in solvers/*.yaml. Seeds matter: one seed can be 3x another on the same
model, so compare totals over seeds, and rerun on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import time

from planner.catalog import data_dir, load_catalog
from planner.formulation import build_model
from planner.planning import Scenario, prepare
from planner.solve import compile_model, load_profile, make_highs, objective_scale

FILES = ("default", "agentic_coding", "batch_summarization", "frontier_moe_chat", "voice")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="default")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--try", dest="tries", action="append", default=[], help="JSON options")
    args = ap.parse_args()
    catalog = load_catalog()
    shipped = load_profile(args.profile)
    variants = {
        "HiGHS defaults": shipped.model_copy(update={"highs_options": {}}),
        f"{args.profile} as shipped": shipped,
    }
    for text in args.tries:
        extra = json.loads(text)
        variants[f"+ {text}"] = shipped.model_copy(
            update={"highs_options": {**shipped.highs_options, **extra}}
        )
    models = {}
    for name in FILES:
        _, _, cs = prepare(data_dir("demand") / f"{name}.csv", Scenario(), catalog)
        models[name] = compile_model(build_model(cs.data))
    for label, profile in variants.items():
        total, cells = 0.0, []
        for name, cm in models.items():
            for seed in range(args.seeds):
                h = make_highs(cm, profile, integral=True, log=False)
                h.setOptionValue("random_seed", seed)
                t = time.perf_counter()
                h.run()
                dt = time.perf_counter() - t
                total += dt
                # make_highs scales the objective (objective_scale): USD again here
                obj = h.getInfo().objective_function_value / objective_scale(cm)
                cells.append(f"{name[:8]}/{seed} {dt:.2f} s {obj:.5g}")
        print(f"{total:7.2f} s  {label}: {profile.highs_options}", flush=True)
        print("          " + "; ".join(cells), flush=True)


if __name__ == "__main__":
    main()
