"""The `planner` launcher's exit: skipping the interpreter's teardown loses nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from planner.launch import exit_code


@pytest.mark.parametrize(("code", "status"), [(None, 0), (0, 0), (3, 3), ("bad", 1)])
def test_exit_code_maps_system_exit_as_the_interpreter_does(code: object, status: int) -> None:
    assert exit_code(code) == status


def _python(source: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", source], capture_output=True, text=True, timeout=60, check=False
    )


def test_exit_now_flushes_output_and_runs_atexit_handlers_first() -> None:
    done = _python(
        "import atexit, sys\n"
        "from planner.launch import exit_now\n"
        "atexit.register(lambda: print('handler', end=''))\n"
        "print('out;', end='')\n"
        "print('err;', end='', file=sys.stderr)\n"
        "exit_now(5)\n"
    )
    assert (done.returncode, done.stdout, done.stderr) == (5, "out;handler", "err;")


def test_exit_now_waits_for_a_running_thread_that_is_not_a_daemon() -> None:
    done = _python(
        "import threading, time\n"
        "from planner.launch import exit_now\n"
        "threading.Thread(target=lambda: (time.sleep(0.3), print('thread done'))).start()\n"
        "exit_now(4)\n"
    )
    assert (done.returncode, done.stdout.strip()) == (4, "thread done")


def test_planner_output_piped_through_the_launcher_is_complete() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "planner", "catalog", "list", "--format", "json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)  # the whole document arrived (nothing left in a buffer)
    assert len(listed) > 0


def test_collecting_less_often_still_frees_cyclic_garbage() -> None:
    """The launcher and the report worker raise the collector's threshold (startup time);
    reference cycles must still be freed, in batches, not accumulate."""
    done = _python(
        "import gc\n"
        "from planner.launch import collect_less_often\n"
        "collect_less_often()\n"
        "freed = [0]\n"
        "class Node:\n"
        "    def __del__(self):\n"
        "        freed[0] += 1\n"
        "for _ in range(200_000):\n"
        "    a, b = Node(), Node()\n"
        "    a.other, b.other = b, a\n"
        "print(gc.get_threshold()[0], freed[0])\n"
    )
    threshold, freed = (int(x) for x in done.stdout.split())
    assert threshold > 700  # CPython's default: the setting took
    assert freed >= 400_000 - 2 * threshold  # all but the last batch of the 400,000


def test_the_first_highs_object_prints_nothing_on_stdout() -> None:
    """HiGHS 1.16 prints a banner on fd 1 when a process makes its first Highs object."""
    done = _python(
        "from planner.solve import new_highs\n"
        "print('before')\n"
        "new_highs().setOptionValue('output_flag', False)\n"
        "new_highs()\n"
        "print('after')\n"
    )
    assert (done.returncode, done.stdout) == (0, "before\nafter\n"), done.stderr


def test_plan_format_json_prints_the_plan_json_only() -> None:
    """`--format json` output piped on parses as one JSON document, solver output and all."""
    done = subprocess.run(
        [sys.executable, "-m", "planner", "plan", str(Path(__file__).parent / "data" / "sweep_small.csv"),
         "--format", "json", "--no-write", "--no-compare"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["status"] == "optimal" and plan["objective"] > 0
