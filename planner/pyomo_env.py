"""Pyomo, imported once for the whole package: the modelling core only, without its import
hooks on scipy and matplotlib.

`pyo` is `pyomo.core` (models, variables, constraints, expressions, `value`), which is all
that building a model and compiling it to arrays for HiGHS needs: 0.27 s to import against
0.47 s for `pyomo.environ`, which also loads every solver, DAE, GDP and network plugin.
`environ()` loads those for the Pyomo SolverFactory path (gurobi, cplex, cbc profiles).

On import, `pyomo.common.dependencies` installs an import finder that, the first time any
code in the process imports `scipy` or `matplotlib`, also imports what Pyomo itself would
want of them: scipy.stats, .integrate and .spatial; matplotlib.pyplot and .pylab. We use
neither: the array path needs only scipy.sparse (for Pyomo's standard-form compiler) and
the reports draw on a bare `Figure`. Measured on the CI machine, the hooks cost about 0.9 s
on the first `import scipy.sparse` and 0.2-0.5 s on the first `import matplotlib`, a large
share of an interactive `planner plan`.

Pyomo's own standard-form compiler reaches scipy through its deferred handle
(`pyomo.common.dependencies.scipy`), which runs the same set-up callback. So the hooks are
dropped from the finder and the two handles' callbacks are replaced by lighter ones: scipy's
imports scipy.sparse (all the compiler uses; other submodules still load on first attribute
access, as scipy loads its submodules lazily), matplotlib's does nothing (pyplot is only
needed for interactive windows). These are private Pyomo internals, touched only if they
have the expected shape: if they move in a later release nothing breaks and the imports are
just slower again.
"""

from __future__ import annotations

from types import ModuleType

import pyomo.core as pyo

__all__ = ["environ", "pyo"]


def environ() -> ModuleType:
    """`pyomo.environ`, with its solver plugins registered (imported on first call)."""
    import pyomo.environ

    return pyomo.environ


def _import_scipy_sparse(module: object, available: bool) -> None:
    if available:
        import scipy.sparse  # noqa: F401


_LIGHTER_CALLBACKS = {"scipy": _import_scipy_sparse, "matplotlib": None}


def _drop_import_hooks() -> None:
    try:
        from pyomo.common.dependencies import DeferredImportCallbackFinder
    except ImportError:  # pragma: no cover - a Pyomo without the finder has no hooks
        return
    callbacks = getattr(DeferredImportCallbackFinder, "_callbacks", None)
    if not isinstance(callbacks, dict):
        return
    for name, lighter in _LIGHTER_CALLBACKS.items():
        for indicator in callbacks.pop(name, []):
            # Only handles not yet resolved: a resolved one has run its callback already.
            if getattr(indicator, "_module", "") is None and hasattr(indicator, "_callback"):
                indicator._callback = lighter


_drop_import_hooks()
