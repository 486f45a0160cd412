"""Candidate table: SLA filter, agreement with the scalar perf path, pruning safety."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from planner.candidates import COLOCATED_SPEC, CandidateOptions, build_candidates, serving_topology
from planner.catalog import data_dir, load_catalog
from planner.demand import catalog_model_ids, load_demand
from planner.perf.evaluate import ServingConfig, evaluate
from planner.perf.specdec import expected_tokens_per_step

CATALOG = load_catalog()
TARGETS, DRAFTS = catalog_model_ids(CATALOG)


def demand_from(tmp_path: Path, rows: list[dict]) -> object:
    base = {"percentile": 99, "precision": "fp8"}
    df = pd.DataFrame([{**base, **r} for r in rows])
    path = tmp_path / "d.csv"
    df.to_csv(path, index=False)
    return load_demand(path, TARGETS, draft_ids=DRAFTS)


@pytest.fixture(scope="module")
def default_set():
    d = load_demand(data_dir("demand") / "default.csv", TARGETS, draft_ids=DRAFTS)
    return d, build_candidates(CATALOG, d)


def test_every_row_meets_its_sla(default_set) -> None:
    d, cs = default_set
    t = cs.table.join(d.workloads[["tpot_ms", "ttft_ms"]].add_prefix("sla_"), on="workload")
    dec = t[t["phase"] == "decode"]
    assert (dec["tpot_ms"] <= dec["sla_tpot_ms"] + 1e-9).all()
    pre = t[t["phase"] == "prefill"]
    assert (pre["ttft0_ms"] <= pre["sla_ttft_ms"] + 1e-9).all()
    assert (t["rate_rps"] > 0).all()


@pytest.fixture(scope="module")
def unpruned_default():
    d = load_demand(data_dir("demand") / "default.csv", TARGETS, draft_ids=DRAFTS)
    opts = CandidateOptions(prune_dominated=False, prune_frontier=False)
    return d, build_candidates(CATALOG, d, options=opts)


@pytest.mark.parametrize("kind", ["colocated", COLOCATED_SPEC])
def test_colocated_rows_agree_with_scalar_evaluate(unpruned_default, kind: str) -> None:
    """Colocated instances, plain and decoding speculatively (perf topology "spec"): the
    table's TPOT (with the prefill stall) and rates equal the scalar `evaluate`'s."""
    d, cs = unpruned_default
    t = cs.table[(cs.table["topology"] == "colocated") & (cs.table["phase"] == "decode")]
    col = t[t["candidate"].str.split("|").str[0] == kind]
    sample = col.sort_values(["candidate", "workload"]).iloc[:: max(1, len(col) // 12)]
    assert len(sample) >= 5
    for row in sample.itertuples():
        w = d.workloads.loc[row.workload]
        assert row.config["topology"] == ("spec" if kind == COLOCATED_SPEC else "colocated")
        r = evaluate(
            ServingConfig(
                **row.config, batch=int(row.batch), prompt_tokens=int(w["prompt_tokens"]),
                output_tokens=int(w["output_tokens"]), tpot_ms=float(w["tpot_ms"]),
            ),
            CATALOG,
        )  # fmt: skip
        assert r.feasible, r.reason
        assert r.decode_step_ms == pytest.approx(row.tpot_ms, rel=1e-9)
        assert r.prefill_stall_ms > 0  # the same chips prefill: the stall is in TPOT
        # decode requests/s of one instance = batch / (output x decode step without the
        # stall), the plan's time budget charging prefill separately
        pure = r.decode_step_ms - r.prefill_stall_ms
        assert row.rate_rps == pytest.approx(
            int(row.batch) * 1000.0 / (int(w["output_tokens"]) * pure), rel=1e-9
        )
        assert row.rate_rps >= r.decode_requests_per_s * (1 - 1e-9)
        # ... and its prefill row is the plain colocated prefill rate of the same chips
        pre = cs.table[(cs.table["candidate"] == row.candidate) & (cs.table["phase"] == "prefill")
                       & (cs.table["workload"] == row.workload)]  # fmt: skip
        r_pre = evaluate(
            ServingConfig(
                **row.config, batch=1, prompt_tokens=int(w["prompt_tokens"]),
                output_tokens=int(w["output_tokens"]), ttft_ms=float(w["ttft_ms"]),
                percentile=float(w["percentile"]),
            ),
            CATALOG,
        )  # fmt: skip
        assert float(pre["rate_rps"].iloc[0]) == pytest.approx(r_pre.prefill_requests_per_s)


def test_tighter_tpot_never_adds_rows(tmp_path: Path) -> None:
    rows = [{"period": "2027Q1", "workload": "w", "model": "llama-3.1-70b", "requests_per_s": 5,
             "prompt_tokens": 2000, "output_tokens": 300, "ttft_ms": 2000, "tpot_ms": t} for t in [60]]  # fmt: skip
    loose = build_candidates(
        CATALOG,
        demand_from(tmp_path, rows),
        options=CandidateOptions(prune_dominated=False, prune_frontier=False),
    )
    rows[0]["tpot_ms"] = 15
    tight = build_candidates(
        CATALOG,
        demand_from(tmp_path, rows),
        options=CandidateOptions(prune_dominated=False, prune_frontier=False),
    )
    key = ["candidate", "workload", "phase"]
    lt = loose.table.set_index(key)["rate_rps"]
    tt = tight.table.set_index(key)["rate_rps"]
    assert set(tt.index) <= set(lt.index)
    # and where both exist, the tight SLA never allows a higher rate
    common = tt.index.intersection(lt.index)
    assert (tt.loc[common] <= lt.loc[common] * (1 + 1e-9)).all()
    assert len(tt) < len(lt)


def test_a_workloads_own_acceptance_drives_only_its_speculative_rows(tmp_path: Path) -> None:
    """spec_acceptance per workload (demand CSV): its speculative rows emit the expected
    tokens per step at its own acceptance; a higher acceptance never lowers a rate and never
    touches the other workload or any row that does not decode speculatively."""
    base = {"period": "2027Q1", "model": "llama-3.1-70b", "requests_per_s": 5,
            "prompt_tokens": 2000, "output_tokens": 300, "ttft_ms": 2000, "tpot_ms": 30}  # fmt: skip
    unpruned = CandidateOptions(prune_dominated=False, prune_frontier=False)

    def table(a_w: object) -> pd.DataFrame:
        rows = [{**base, "workload": "w", "spec_acceptance": a_w},
                {**base, "workload": "other", "spec_acceptance": ""}]  # fmt: skip
        t = build_candidates(CATALOG, demand_from(tmp_path, rows), options=unpruned).table
        return t.set_index(["candidate", "workload", "phase"])

    def speculative(t: pd.DataFrame) -> pd.Series:
        return t["config"].map(lambda c: c.get("draft_model") is not None)

    default, high = table(""), table(0.9)
    for t, a_w in ((default, 0.7), (high, 0.9)):
        decode = t.index.get_level_values("phase") == "decode"
        rows = t.loc[speculative(t).to_numpy() & decode]
        assert len(rows) and (~speculative(t)).any()
        a = np.where(rows.index.get_level_values("workload") == "w", a_w, 0.7)
        assert rows["acceptance"].to_numpy() == pytest.approx(a)
        k = rows["config"].map(lambda c: c["draft_tokens"]).to_numpy()
        assert rows["tokens_per_step"].to_numpy() == pytest.approx(expected_tokens_per_step(a, k))
    assert set(default.index) <= set(high.index)  # nothing met the SLA that now misses it
    common = default.index.intersection(high.index)
    low_rate, high_rate = default.loc[common, "rate_rps"], high.loc[common, "rate_rps"]
    assert (high_rate >= low_rate * (1 - 1e-12)).all()
    own = (
        speculative(default.loc[common]) & (common.get_level_values("workload") == "w")
    ).to_numpy()
    assert (high_rate[own] > low_rate[own]).any()
    assert high_rate[~own].to_numpy() == pytest.approx(low_rate[~own].to_numpy(), rel=1e-12)


def test_pruning_keeps_the_best_rate_per_chip(default_set) -> None:
    d, _ = default_set
    full = build_candidates(
        CATALOG, d, options=CandidateOptions(prune_dominated=False, prune_frontier=False)
    ).table
    pruned = build_candidates(CATALOG, d, options=CandidateOptions(prune_frontier=False)).table
    assert len(pruned) < len(full)

    def best(t: pd.DataFrame) -> pd.Series:
        chips = t["units"].map(lambda u: sum(u.values()))
        sku = t["units"].map(lambda u: "+".join(sorted(u)))
        return (
            (t["rate_rps"] / chips).groupby([t["topology"], sku, t["workload"], t["phase"]]).max()
        )

    b_full, b_pruned = best(full), best(pruned)
    assert b_full.index.equals(b_pruned.index) or set(b_full.index) == set(b_pruned.index)
    assert (b_pruned.reindex(b_full.index) >= b_full * (1 - 1e-12)).all()


def test_unservable_workload_has_no_rows_but_a_best_reachable(tmp_path: Path) -> None:
    rows = [{"period": "2027Q1", "workload": "impossible", "model": "llama-3.1-405b", "requests_per_s": 1,
             "prompt_tokens": 1000, "output_tokens": 100, "ttft_ms": 1000, "tpot_ms": 0.05}]  # fmt: skip
    cs = build_candidates(CATALOG, demand_from(tmp_path, rows))
    assert not (cs.table["phase"] == "decode").any() if len(cs.table) else True
    best = cs.best_reachable.set_index("workload")
    assert best.at["impossible", "best_tpot_ms"] > 0.05
    # The best TPOT counts speculative drafting too (k tokens per verify step at batch 1):
    # lower than plain decode's, and it names the draft.
    plain = CandidateOptions(topologies=["colocated", "pd", "afd", "pd+afd"])
    no_spec = build_candidates(CATALOG, demand_from(tmp_path, rows), options=plain)
    plain_best = no_spec.best_reachable.set_index("workload").loc["impossible"]
    assert "with" not in plain_best["tpot_where"]
    assert best.at["impossible", "best_tpot_ms"] < plain_best["best_tpot_ms"]
    assert " k=" in best.at["impossible", "tpot_where"]
    assert best.at["impossible", "best_ttft_ms"] == plain_best["best_ttft_ms"]


def test_planning_data_is_consistent(default_set) -> None:
    _, cs = default_set
    data = cs.data
    assert set(data.rates["candidate"]) == set(data.candidates.index)
    assert set(data.units["candidate"]) == set(data.candidates.index)
    assert set(data.units["sku"]) <= set(data.skus.index)
    assert (data.skus["chips_per_unit"] > 0).all()
    # every SKU in the table can be bought or rented
    priced = data.skus["unit_price_usd"].notna() | data.skus["rent_usd_per_chip_hour"].notna()
    assert priced.all()


def test_frontier_keeps_the_cheapest_and_the_leanest_per_workload(default_set) -> None:
    from planner.candidates import chip_hour_usd

    d, pruned = default_set
    full = build_candidates(CATALOG, d, options=CandidateOptions(prune_frontier=False))
    assert pruned.table["candidate"].nunique() < full.table["candidate"].nunique()
    settings = full.data.settings
    chip_usd = chip_hour_usd(full.data.skus, settings, len(full.data.periods))  # with running
    t = full.table.assign(
        usd_per_rps=[
            sum(n * chip_usd[k] for k, n in u.items()) / r
            for u, r in zip(full.table["units"], full.table["rate_rps"], strict=True)
        ],
        w_per_rps=full.table["power_w"] / full.table["rate_rps"],
    )
    kept = set(pruned.table["candidate"])
    for (w, p), g in t.groupby(["workload", "phase"]):
        for col in ("usd_per_rps", "w_per_rps"):
            best = g[col].min()
            winners = set(g.loc[g[col] <= best * (1 + 1e-9), "candidate"])
            assert winners & kept, f"{w} {p}: the best {col} candidate was pruned"


def test_draft_lengths_are_enumerated_and_the_best_survives() -> None:
    d = load_demand(data_dir("demand") / "default.csv", TARGETS, draft_ids=DRAFTS)

    def spec_rows(ks: list[int], **prune: bool) -> pd.DataFrame:
        opts = CandidateOptions(spec_draft_tokens=ks, prune_frontier=False, **prune)
        t = build_candidates(CATALOG, d, options=opts).table
        t = t[t["topology"] == "spec"].copy()
        # spec candidates are named "spec|<model>|<chips>|<draft>|k<k>"
        name = t["candidate"].str.rsplit("|", n=1)
        t["server"], t["k"] = name.str[0], name.str[1].str[1:].astype(int)
        return t

    every = spec_rows([1, 2, 3, 4, 5], prune_dominated=False)
    assert set(every["k"]) == {1, 2, 3, 4, 5}
    # The same server at another k has the same chips and power: of a server the exact
    # dominance pruning keeps, it keeps the best k for each workload.
    kept = spec_rows([1, 2, 3, 4, 5])
    best = every.groupby(["server", "workload"])["rate_rps"].max()
    got = kept.groupby(["server", "workload"])["rate_rps"].max()
    assert len(got) > 10
    assert got.to_numpy() == pytest.approx(best.reindex(got.index).to_numpy())
    # ... so more draft lengths never lower a server's best rate, and here some win over k=3
    only3 = spec_rows([3]).groupby(["server", "workload"])["rate_rps"].max()
    assert (best.reindex(only3.index) >= only3 * (1 - 1e-12)).all()
    assert (best.reindex(only3.index) > only3 * 1.01).any()
    assert set(kept["k"]) - {3}


def test_draft_lengths_setting_is_checked() -> None:
    from pydantic import ValidationError

    from planner.scenario import Scenario

    assert Scenario(spec_draft_tokens=[4, 2, 2]).spec_draft_tokens == [2, 4]
    for bad in ([], [0], [17]):
        with pytest.raises(ValidationError, match="spec_draft_tokens"):
            Scenario(spec_draft_tokens=bad)


def test_serving_topology_from_the_name_is_the_configs(unpruned_default) -> None:
    """Sweep rows name a workload's topology from its decode candidate's name
    (candidates.serving_topology): it must be the topology the candidate's configuration,
    which verify and `planner perf` evaluate, says."""
    _, cs = unpruned_default
    dec = cs.table[cs.table["phase"] == "decode"].drop_duplicates("candidate")
    named = dec["candidate"].map(serving_topology)
    configured = dec["config"].map(lambda c: c["topology"])
    assert set(configured) == {"colocated", "spec", "pd", "pd+spec", "pd+afd"}
    assert (named == configured).all(), dec.loc[named != configured, "candidate"].head().tolist()
