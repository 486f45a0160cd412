"""The `planner` console script (and `python -m planner`).

It starts `planner plan`'s report worker (planner.report_worker.prestart) before importing
the CLI, so the worker's preload overlaps the ~0.4 s that typer and rich take to import and
parse; then it runs the CLI. Keep this module's imports light."""

from __future__ import annotations

import sys


def main() -> None:
    from planner import report_worker

    report_worker.prestart(sys.argv[1:])
    try:
        from planner.cli import main as cli_main

        cli_main()
    finally:
        report_worker.discard_prestarted()


if __name__ == "__main__":  # python -m planner.launch
    main()
