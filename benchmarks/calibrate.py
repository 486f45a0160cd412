"""Calibrate the performance model against the published measurements and print the figures.

A thin wrapper around `planner perf calibrate` (planner/calibrate.py): fits per-SKU
efficiency factors to catalogs/measurements/published.csv, prints exclusions by reason,
the fitted factors and the median / worst absolute % error per SKU family and overall
for the fit and held-out rows, and writes the per-row errors to a fresh folder. It never
touches catalogs/calibration.yaml unless --write is given.

    /work/venv/bin/python benchmarks/calibrate.py [--data CSV] [--out DIR] [--write]
"""

from __future__ import annotations

import sys
import time

from typer.testing import CliRunner

from planner.cli import app


def main(argv: list[str]) -> int:
    t0 = time.perf_counter()
    result = CliRunner().invoke(app, ["perf", "calibrate", *argv])
    sys.stdout.write(result.output)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    sys.stdout.write(f"\ncalibration took {time.perf_counter() - t0:.1f} s\n")
    return result.exit_code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
