"""The `planner` console script (and `python -m planner`).

It starts `planner plan`'s report worker (planner.report_worker.prestart) before importing
the CLI, so the worker's preload overlaps the ~0.4 s that typer and rich take to import and
parse; then it runs the CLI, and ends the process without the interpreter's teardown when
that is safe (`exit_now`). Keep this module's imports light."""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import sys
import threading

# Cyclic garbage is collected every 20,000 net allocations of container objects instead of
# CPython's 700 (the older generations keep their ratios of 10).
GC_THRESHOLD = (20_000, 10, 10)


def collect_less_often() -> None:
    """Run the cycle collector less often.

    Why: a `planner plan` imports pandas, Pyomo, SciPy and the report stack, then builds
    a Pyomo model: hundreds of thousands of long-lived objects, each young one traversed
    by a collection that finds almost nothing to free. With CPython's default threshold,
    collections took 0.14-0.16 s of the parent's run on the bundled example (365 of them)
    and 0.21-0.26 s of the report worker's; at 20,000 they take 0.06-0.09 s each (11-13
    collections; measured with gc.callbacks). Garbage is still collected, only in larger
    batches: at most ~20,000 young objects wait for the next collection."""
    gc.set_threshold(*GC_THRESHOLD)


def main() -> None:
    collect_less_often()
    from planner import report_worker

    report_worker.prestart(sys.argv[1:])
    try:
        from planner.cli import main as cli_main

        cli_main()
        code: object = 0
    except SystemExit as exc:  # how typer ends every command
        code = exc.code
    finally:
        report_worker.discard_prestarted()
    exit_now(code)


def exit_code(code: object) -> int:
    """SystemExit's code as the process's exit status (as the interpreter maps it)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def exit_now(code: object) -> None:
    """End the process with `code` once every output is flushed and every atexit handler
    has run, skipping the interpreter's teardown.

    Why: a `planner plan` has pandas, Pyomo, HiGHS and the catalog loaded, and tearing
    them down module by module took 0.25-0.35 s after the last line was printed (measured
    on the bundled example, whose whole run targets 3 s). Nothing is left to do by then:
    every file the CLI writes is closed by its own `with`, the report worker has replied,
    and the atexit handlers (logging, Ray or Dask clients, process pools) run first. Where
    a thread that is not a daemon still runs, the normal exit (which waits for it) is
    kept."""
    status = exit_code(code)
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if any(not t.daemon for t in others):
        sys.exit(status)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (`planner plan | head`)
            stream.flush()
    os._exit(status)


if __name__ == "__main__":  # python -m planner.launch
    main()
