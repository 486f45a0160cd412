"""One sweep point's solution as one row: cost, power, fleet, placement, what binds.

`RowReader` precomputes, once per compiled layout, integer codes for the columns a row
needs (purchases per SKU, chips per instance, load per workload and phase), so reading a
point is a few `np.bincount` calls rather than pandas joins.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from planner.candidates import serving_topology
from planner.model_data import PlanningData
from planner.plan_read import rounded_off
from planner.shortfall import Outcome
from planner.solve import UNSERVED_TOL_RPS, CompiledModel
from planner.sweep_model import Applied

PHASES = ("prefill", "decode")
# Limit rows of formulation.py and the sweep's name for each.
LIMIT_ROWS = {
    "c_power_budget": "power_budget_mw",
    "c_capex_budget": "capex_budget_usd",
    "c_capex_budget_per_period": "capex_budget_usd_per_period",
    "c_peak_power": "peak_power_cap_mw",
}


class RowReader:
    """Index codes for one layout (the persistent model's, or one fresh build's)."""

    def __init__(
        self, applied: Applied, silicon: dict[str, str], data: PlanningData | None = None
    ) -> None:
        """`data`: what the layout was built from (the reference model's union of
        candidates on the persistent path; default: the applied scenario's own)."""
        data = data if data is not None else applied.data
        lay = applied.layout
        self.periods = [str(t) for t in data.periods.index]
        self.skus = sorted(set(data.skus.index) | set(data.units["sku"]))
        sku_code = {h: k for k, h in enumerate(self.skus)}
        self.buy = lay.cols("v_buy")
        self.buy_sku = np.array([sku_code[lay.col_index[j][0]] for j in self.buy], dtype=int)
        self._instances(applied, data, sku_code)
        self._loads(applied)
        self._candidates(data, silicon)
        self._limits(applied)

    def _instances(self, applied: Applied, data: PlanningData, sku_code: dict[str, int]) -> None:
        lay = applied.layout
        self.inst = lay.cols("v_instances")
        period = {t: k for k, t in enumerate(self.periods)}
        per_cand: dict[str, list[tuple[int, float]]] = {}
        for c, h, n in data.units[["candidate", "sku", "chips"]].itertuples(index=False):
            per_cand.setdefault(str(c), []).append((sku_code[str(h)], float(n)))
        e_inst, e_code, e_chips = [], [], []
        for k, j in enumerate(self.inst):
            c, t = lay.col_index[j]
            for h, n in per_cand.get(str(c), []):
                e_inst.append(k)
                e_code.append(h * len(self.periods) + period[str(t)])
                e_chips.append(n)
        self.e_inst = np.array(e_inst, dtype=int)
        self.e_code = np.array(e_code, dtype=int)
        self.e_chips = np.array(e_chips, dtype=float)

    def _loads(self, applied: Applied) -> None:
        lay = applied.layout
        self.load = lay.cols("v_load")
        idx = [lay.col_index[j] for j in self.load]
        self.cands = sorted({c for c, _, _, _ in idx})
        self.wps = sorted({(w, p) for _, w, p, _ in idx})
        cand, wp = {c: k for k, c in enumerate(self.cands)}, {x: k for k, x in enumerate(self.wps)}
        self.load_code = np.array(
            [wp[(w, p)] * len(self.cands) + cand[c] for c, w, p, _ in idx], dtype=int
        )

    def _candidates(self, data: PlanningData, silicon: dict[str, str]) -> None:
        skus = data.units.groupby("candidate")["sku"].agg(lambda s: sorted(set(s)))
        self.cand_skus = ["+".join(skus.get(c, [])) for c in self.cands]
        self.cand_silicon = [
            "+".join(sorted({silicon.get(h, "?") for h in skus.get(c, [])})) for c in self.cands
        ]
        # The serving topology of a workload decoded on each (candidates.serving_topology).
        self.cand_topology = [serving_topology(c) for c in self.cands]

    def _limits(self, applied: Applied) -> None:
        """(label, row, positions of its entries in the CSC value array, their columns)."""
        cm, lay = applied.cm, applied.layout
        col_of_entry = np.repeat(np.arange(cm.n_cols), np.diff(cm.a_start))
        self.limits: list[tuple[str, int, np.ndarray, np.ndarray]] = []
        for comp, label in LIMIT_ROWS.items():
            for r in lay.rows(comp):
                pos = np.flatnonzero(cm.a_index == r)
                self.limits.append((label, int(r), pos, col_of_entry[pos]))

    # -- reading ------------------------------------------------------------------------

    def row(self, applied: Applied, out: Outcome, workloads: list[str]) -> dict[str, Any]:
        row: dict[str, Any] = {"status": out.status, "message": out.message, "objective": out.objective,
                               "gap": out.gap, "solve_s": out.solve_s}  # fmt: skip
        if not out.has_solution or out.x is None:
            return row
        x, t = out.x, applied.terms
        capex, rental = float(t.capex @ x), float(t.rental @ x)
        energy, hosting = float((t.energy_t @ x).sum()), float(t.hosting @ x)
        lost = x[applied.unserved_cols]
        unserved = float(lost[lost > 1e-9].sum())  # as Plan: solver noise is not a shortfall
        row.update(
            total_cost_usd=capex + rental + energy + hosting, capex_usd=capex,
            opex_usd=rental + energy + hosting, rental_usd=rental, energy_usd=energy,
            hosting_usd=hosting, peak_facility_mw=rounded_off(float(np.max(t.power_mw_t @ x, initial=0.0))),
            unserved_rps=unserved,
            binding=self.binding(out.solved_in or applied.cm,
                                 out.first_x if out.first_x is not None else x, unserved),
        )  # fmt: skip
        row.update(self.fleet(x))
        row.update(self.placement(x, workloads))
        return row

    def binding(self, cm: CompiledModel, x: np.ndarray, unserved: float) -> str:
        """Limits at (or near) their bound in the arrays `cm` the plan was solved in: less
        headroom left, in some period, than one more of the largest step the row can take
        (an instance's MW, a unit's price), so the limit shapes the plan. Read on the
        most-served solution when demand is short. Also supply caps bought out, and
        unserved demand. A point that took a looser point's answer is read against the
        looser point's limits (Outcome.solved_in): a budget the plan also meets with
        none in force costs nothing, however little headroom it leaves. (Exact
        attribution would take a re-solve with each limit lifted, as `planner plan` does;
        a sweep with the limit's "none" value shows the same by comparing rows.)"""
        found = set()
        for label, r, pos, cols in self.limits:
            upper = float(cm.row_upper[r])
            if not math.isfinite(upper):
                continue
            coefs = cm.a_value[pos]
            live = (coefs > 0) & (cm.col_upper[cols] > 0)
            step = float(coefs[live].max()) if live.any() else 0.0
            if float(coefs @ x[cols]) > upper - step - 1e-9 * max(1.0, abs(upper)):
                found.add(label)
        ub = cm.col_upper[self.buy]
        capped = np.isfinite(ub) & (ub > 0) & (x[self.buy] >= ub - 0.5)
        found |= {f"supply_cap.{self.skus[h]}" for h in self.buy_sku[capped]}
        if unserved > UNSERVED_TOL_RPS:
            found.add("unserved_demand")
        return ";".join(sorted(found))

    def fleet(self, x: np.ndarray) -> dict[str, float]:
        """Units bought per SKU over the horizon; peak chips in use per SKU."""
        n_h, n_t = len(self.skus), len(self.periods)
        units = np.bincount(self.buy_sku, weights=np.round(x[self.buy]), minlength=n_h)
        chips = np.bincount(self.e_code, weights=self.e_chips * x[self.inst][self.e_inst],
                            minlength=n_h * n_t).reshape(n_h, n_t)  # fmt: skip
        peak = chips.max(axis=1) if n_t else np.zeros(n_h)
        out = {f"units.{h}": float(u) for h, u in zip(self.skus, units, strict=True)}
        out.update({f"chips.{h}": float(c) for h, c in zip(self.skus, peak, strict=True)})
        return out

    def placement(self, x: np.ndarray, workloads: list[str]) -> dict[str, str]:
        """Per workload and phase: the candidate carrying most of it over the horizon (ties:
        the first by name), its SKUs and their memory kind; and the workload's topology."""
        n_c = len(self.cands)
        if not n_c:
            return {}
        load = np.bincount(self.load_code, weights=x[self.load], minlength=len(self.wps) * n_c)
        load = load.reshape(len(self.wps), n_c)
        out: dict[str, str] = {}
        decode: dict[str, int] = {}
        for k, (w, p) in enumerate(self.wps):
            if load[k].max() <= UNSERVED_TOL_RPS:
                continue
            c = int(np.argmax(load[k]))
            out[f"{w}.{p}"] = self.cand_skus[c]
            out[f"{w}.{p}_silicon"] = self.cand_silicon[c]
            if p == "decode":
                decode[w] = c
        for w in workloads:
            if w in decode:
                out[f"{w}.topology"] = self.cand_topology[decode[w]]
        return out
