"""Demand input: shipped examples, aggregation, period handling and every validation rule."""

from __future__ import annotations

import csv
import math
import re
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.catalog import data_dir, load_catalog
from planner.demand import (
    KNOWN_COLUMNS,
    REQUIRED_COLUMNS,
    aggregate_hourly,
    catalog_model_ids,
    demand_summary,
    load_demand,
    parse_period,
)
from planner.errors import InputProblem, PlannerInputError

TARGETS = frozenset(
    {
        "llama-3.1-8b",
        "llama-3.1-70b",
        "llama-3.1-405b",
        "llama-2-70b",
        "deepseek-v3",
        "qwen3-235b-a22b",
        "gpt-oss-120b",
        "kimi-k2",
    }
)
DRAFTS = frozenset({"llama-3.2-1b", "eagle-head"})
EXAMPLES = sorted(data_dir("demand").glob("*.csv"))

BASE = {
    "period": "2026Q1",
    "workload": "chat",
    "model": "llama-3.1-70b",
    "requests_per_s": "10",
    "prompt_tokens": "1024",
    "output_tokens": "256",
    "ttft_ms": "1000",
    "tpot_ms": "40",
    "percentile": "99",
}


def write(tmp_path: Path, rows: list[dict[str, str]], name: str = "demand.csv") -> Path:
    """Rows as dicts; the header is the union of their keys in first-seen order."""
    header = list(dict.fromkeys(k for r in rows for k in r))
    path = tmp_path / name
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return path


def row(**changes: str) -> dict[str, str]:
    out = {**BASE, **changes}
    return {k: v for k, v in out.items() if v is not None}


def load(path: Path, **kw: object):
    return load_demand(path, TARGETS, draft_ids=DRAFTS, **kw)  # type: ignore[arg-type]


def errors(path: Path, **kw: object) -> PlannerInputError:
    with pytest.raises(PlannerInputError) as info:
        load(path, **kw)
    return info.value


def find(
    err: PlannerInputError, *, row: int | None, column: str | None, value: object
) -> InputProblem:
    """The one problem at (row, column) with `value`; checks the file is named too."""
    hits = [
        p
        for p in err.problems
        if (row is None or re.search(rf"\brows? ([\d, -]*\b)?{row}\b", p.location))
        and (column is None or column in p.location or column in str(p.value))
        and p.value == value
    ]
    assert hits, f"no problem at row {row}, column {column}, value {value!r} in:\n{err}"
    assert len(hits) == 1, err
    text = str(hits[0])
    assert hits[0].source in text and hits[0].source.endswith(".csv")
    assert repr(value) in text
    return hits[0]


# --------------------------------------------------------------------------------------
# Shipped examples
# --------------------------------------------------------------------------------------


def test_examples_are_shipped() -> None:
    names = {p.name for p in EXAMPLES}
    assert {
        "default.csv",
        "voice.csv",
        "agentic_coding.csv",
        "batch_summarization.csv",
        "frontier_moe_chat.csv",
        "hourly_example.csv",
    } <= names
    assert (data_dir("demand") / "README.md").is_file()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_loads(path: Path) -> None:
    d = load(path)
    assert not d.rates.empty
    assert d.periods.index.is_unique
    assert (d.rates["requests_per_s"] > 0).all()
    assert (d.rates["mean_requests_per_s"] <= d.rates["requests_per_s"]).all()
    assert d.periods["energy_load_factor"].between(0, 1).all()
    # Moderate demand: a fleet of tens to low hundreds of GPUs, not tens of thousands.
    assert d.rates["requests_per_s"].max() <= 300
    assert set(d.workloads["model"]) <= TARGETS
    periods, demand = d.to_planning_tables()
    assert list(periods.columns) == ["start", "hours", "energy_load_factor"]
    assert set(demand["period"]) <= set(periods.index)


def test_default_example_shape() -> None:
    d = load(data_dir("demand") / "default.csv")
    assert d.period_names == ["2027Q1", "2027Q2", "2027Q3", "2027Q4", "2028Q1", "2028Q2"]
    assert 3 <= len(d.workloads) <= 5
    assert d.workloads["ttft_ms"].between(500, 3000).all()
    assert d.workloads["tpot_ms"].between(20, 60).all()
    totals = d.rates.groupby("period", sort=False)["requests_per_s"].sum()
    assert totals.is_monotonic_increasing  # growth


def test_examples_name_catalog_targets() -> None:
    """Once the catalog has the models, every example names a target model of it."""
    try:
        targets, drafts = catalog_model_ids(load_catalog())
    except PlannerInputError as exc:
        pytest.skip(f"catalog does not load yet: {exc.problems[0]}")
    if not targets >= TARGETS:
        pytest.skip(f"catalog lacks {sorted(TARGETS - targets)}")
    assert not (drafts & TARGETS)
    for path in EXAMPLES:
        load_demand(path, targets, draft_ids=drafts)


# --------------------------------------------------------------------------------------
# Tables and aggregation
# --------------------------------------------------------------------------------------


def test_hourly_series_aggregates_peak_and_mean(tmp_path: Path) -> None:
    shape_b = {"workload": "batch", "model": "llama-3.1-8b"}
    rows = [
        row(timestamp="2026-03-31T22:00:00Z", requests_per_s="10", period=None),
        row(timestamp="2026-03-31T23:00:00Z", requests_per_s="30", period=None),
        row(timestamp="2026-04-01T00:00:00Z", requests_per_s="5", period=None),
        # 01:00 UTC written with an offset; 01:30 is a second sample in the same hour
        row(timestamp="2026-04-01T03:00:00+02:00", requests_per_s="7", period=None),
        row(timestamp="2026-04-01T01:30:00", requests_per_s="9", period=None),
        row(timestamp="2026-03-31T22:00:00Z", requests_per_s="4", period=None, **shape_b),
        row(timestamp="2026-03-31T23:00:00Z", requests_per_s="0", period=None, **shape_b),
    ]
    d = load(write(tmp_path, rows))
    got = d.rates.set_index(["workload", "period"])
    # chat 2026Q1: hours 22 → 10, 23 → 30: peak 30, mean 20.
    assert got.loc[("chat", "2026Q1")].tolist() == [30.0, 20.0]
    # chat 2026Q2: hour 00 → 5, hour 01 → mean(7, 9) = 8: peak 8, mean 6.5.
    assert got.loc[("chat", "2026Q2")].tolist() == [8.0, 6.5]
    # batch 2026Q1: 4 and an idle hour 0: peak 4, mean 2; no rows in 2026Q2.
    assert got.loc[("batch", "2026Q1")].tolist() == [4.0, 2.0]
    assert ("batch", "2026Q2") not in got.index
    assert d.period_names == ["2026Q1", "2026Q2"]
    assert d.periods.loc["2026Q1", "energy_load_factor"] == pytest.approx((20 + 2) / (30 + 4))
    assert d.periods.loc["2026Q2", "energy_load_factor"] == pytest.approx(6.5 / 8)
    assert d.periods["hours"].tolist() == [90 * 24, 91 * 24]


def test_aggregate_hourly_monthly() -> None:
    series = pd.DataFrame(
        {
            "workload": ["a"] * 4,
            "timestamp": pd.to_datetime(
                ["2026-01-31 10:00", "2026-01-31 11:00", "2026-02-01 10:00", "2026-02-01 11:00"]
            ),
            "requests_per_s": [1.0, 3.0, 2.0, 6.0],
        }
    )
    out = aggregate_hourly(series, "M")
    assert out.to_dict("list") == {
        "workload": ["a", "a"],
        "period": ["2026-01", "2026-02"],
        "requests_per_s": [3.0, 6.0],
        "mean_requests_per_s": [2.0, 4.0],
    }


def test_hourly_example_matches_hand_aggregation() -> None:
    path = data_dir("demand") / "hourly_example.csv"
    raw = pd.read_csv(path)
    assert len(raw) <= 400
    raw["period"] = [str(pd.Period(t[:10], freq="Q")) for t in raw["timestamp"]]
    want = raw.groupby(["workload", "period"])["requests_per_s"].agg(["max", "mean"])
    got = load(path).rates.set_index(["workload", "period"]).sort_index()
    assert got["requests_per_s"].tolist() == want["max"].tolist()
    assert got["mean_requests_per_s"].tolist() == pytest.approx(want["mean"].tolist())


def test_long_format_mean_column_and_default(tmp_path: Path) -> None:
    rows = [
        row(mean_requests_per_s="6"),
        row(period="2026Q2", requests_per_s="20", mean_requests_per_s=""),
    ]
    d = load(write(tmp_path, rows))
    assert d.rates["mean_requests_per_s"].tolist() == [6.0, 20.0]
    assert d.periods["energy_load_factor"].tolist() == [0.6, 1.0]


def test_workload_table_types(tmp_path: Path) -> None:
    rows = [row(precision="FP8"), row(workload="small", model="llama-3.1-8b", precision="")]
    w = load(write(tmp_path, rows)).workloads
    assert list(w.index) == ["chat", "small"]
    assert w.loc["chat", "precision"] == "fp8"
    assert w.loc["small", "precision"] is None
    assert w["prompt_tokens"].dtype == "int64" and w["output_tokens"].dtype == "int64"
    assert w["ttft_ms"].dtype == float and w["percentile"].tolist() == [99.0, 99.0]


@pytest.mark.parametrize(
    ("text", "freq", "want"),
    [
        ("2026Q1", "Q", "2026Q1"),
        ("2026-Q1", "Q", "2026Q1"),
        ("2026 q3", "Q", "2026Q3"),
        ("2026-01-01", "Q", "2026Q1"),
        ("2026-05-17", "Q", "2026Q2"),
        ("2026-12-31T23:59:59", "Q", "2026Q4"),
        ("2026-02", "M", "2026-02"),
        ("2026-02-15", "M", "2026-02"),
        ("2026", "Y", "2026"),
        ("2026-07-01", "Y", "2026"),
    ],
)
def test_period_normalisation(text: str, freq: str, want: str) -> None:
    assert str(parse_period(text, freq)) == want


@pytest.mark.parametrize(
    ("text", "freq"),
    [("2026Q5", "Q"), ("2026Q1", "M"), ("2026", "Q"), ("2026-13", "M"), ("Q1", "Q")],
)
def test_period_refused(text: str, freq: str) -> None:
    with pytest.raises(ValueError):
        parse_period(text, freq)


def test_periods_sorted_and_normalised_in_file(tmp_path: Path) -> None:
    rows = [
        row(period="2027-Q1"),
        row(period="2026-11-30"),
        row(period="2026Q3"),
        row(period="2026 q2"),
    ]
    d = load(write(tmp_path, rows))
    assert d.period_names == ["2026Q2", "2026Q3", "2026Q4", "2027Q1"]
    assert d.periods["start"].is_monotonic_increasing
    assert d.rates["period"].tolist() == d.period_names
    assert d.periods["hours"].tolist() == [91 * 24, 92 * 24, 92 * 24, 90 * 24]


def test_monthly_and_yearly_planning(tmp_path: Path) -> None:
    monthly = load(write(tmp_path, [row(period="2028-02"), row(period="2028-01")]), period_freq="M")
    assert monthly.period_names == ["2028-01", "2028-02"]
    assert monthly.periods["hours"].tolist() == [31 * 24, 29 * 24]  # 2028 is a leap year
    yearly = load(write(tmp_path, [row(period="2028")], "y.csv"), period_freq="Y")
    assert yearly.periods["hours"].tolist() == [366 * 24]


def test_workload_may_skip_periods(tmp_path: Path) -> None:
    rows = [row(), row(period="2026Q2"), row(period="2026Q2", workload="new")]
    d = load(write(tmp_path, rows))
    assert len(d.rates) == 3
    summary = demand_summary(d)
    assert summary.loc["new", "first_period"] == "2026Q2"


def test_to_planning_tables_shapes(tmp_path: Path) -> None:
    d = load(write(tmp_path, [row(), row(period="2026Q2", requests_per_s="15")]))
    periods, demand = d.to_planning_tables()
    assert periods.index.name == "period"
    assert list(periods.index) == ["2026Q1", "2026Q2"]
    assert list(periods.columns) == ["start", "hours", "energy_load_factor"]
    assert isinstance(periods["start"].iloc[0], pd.Timestamp)
    assert list(demand.columns) == ["workload", "period", "requests_per_s", "mean_requests_per_s"]
    assert demand["requests_per_s"].tolist() == [10.0, 15.0]


def test_demand_summary(tmp_path: Path) -> None:
    rows = [
        row(),
        row(period="2026Q2", requests_per_s="15"),
        row(period="2026Q3", requests_per_s="25"),
    ]
    s = demand_summary(load(write(tmp_path, rows)))
    assert s.loc["chat", "first_rps"] == 10 and s.loc["chat", "last_rps"] == 25
    assert s.loc["chat", "growth_x"] == 2.5
    assert s.loc["chat", "precision"] == "native"
    assert {"model", "prompt_tokens", "ttft_ms", "percentile", "peak_rps"} <= set(s.columns)


# --------------------------------------------------------------------------------------
# Validation: one fixture per rule; each names file, row, column and value
# --------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    err = errors(tmp_path / "nope.csv")
    assert "nope.csv" in str(err) and "no such file" in str(err)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert "a demand CSV file" in str(errors(tmp_path))


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    err = errors(path)
    assert str(path) in str(err) and "empty file" in str(err)


def test_header_only(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text(",".join(REQUIRED_COLUMNS) + "\n\n")
    assert "no data rows" in str(errors(path))


def test_bad_quoting_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "quotes.csv"
    path.write_text(",".join(REQUIRED_COLUMNS) + '\n2026Q1,"chat,llama-3.1-70b,10\n')
    err = errors(path)
    assert len(err.problems) == 1
    assert str(path) in str(err) and "row 2" in str(err) and "EOF inside string" in str(err)


def test_ragged_row(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    good = ",".join(BASE.values())
    path.write_text(",".join(BASE) + f"\n{good}\n{good},extra\n")
    err = errors(path)
    assert "line 3" in str(err) and str(path) in str(err)


def test_semicolon_separated(tmp_path: Path) -> None:
    path = tmp_path / "semi.csv"
    path.write_text(";".join(BASE) + "\n" + ";".join(BASE.values()) + "\n")
    assert "comma-separated" in str(errors(path))


def test_missing_required_column(tmp_path: Path) -> None:
    err = errors(write(tmp_path, [row(ttft_ms=None)]))
    p = find(err, row=1, column="ttft_ms", value="no column ttft_ms")
    assert "row 1" in p.location


def test_unknown_column_did_you_mean(tmp_path: Path) -> None:
    rows = [{**row(tpot_ms=None), "tpot": "40"}]
    err = errors(write(tmp_path, rows))
    p = find(err, row=1, column=None, value="tpot")
    assert "did you mean 'tpot_ms'" in p.expected
    assert p.location == f"row 1, column {len(BASE)}"


def test_repeated_column(tmp_path: Path) -> None:
    path = tmp_path / "twice.csv"
    path.write_text(",".join([*BASE, "model"]) + "\n" + ",".join([*BASE.values(), "x"]) + "\n")
    p = find(errors(path), row=1, column=None, value="model")
    assert "each column once" in p.expected


def test_period_and_timestamp_both(tmp_path: Path) -> None:
    err = errors(write(tmp_path, [row(timestamp="2026-01-01T00:00:00Z")]))
    assert "one of period or timestamp" in str(err)


def test_mean_column_in_hourly_series(tmp_path: Path) -> None:
    err = errors(
        write(tmp_path, [row(period=None, timestamp="2026-01-01", mean_requests_per_s="1")])
    )
    find(err, row=1, column="mean_requests_per_s", value="mean_requests_per_s")


def test_empty_required_cell(tmp_path: Path) -> None:
    err = errors(write(tmp_path, [row(), row(period="2026Q2", workload="")]))
    find(err, row=3, column="workload", value="")


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("requests_per_s", "lots", "a number > 0"),
        ("requests_per_s", "0", "a number > 0"),
        ("requests_per_s", "-3", "a number > 0"),
        ("requests_per_s", "nan", "finite"),
        ("prompt_tokens", "1k", "whole number of tokens"),
        ("prompt_tokens", "0", "whole number of tokens > 0"),
        ("output_tokens", "12.5", "whole number of tokens"),
        ("ttft_ms", "-1", "a number > 0 (milliseconds)"),
        ("tpot_ms", "0", "a number > 0 (milliseconds)"),
        ("tpot_ms", "fast", "a number > 0 (milliseconds)"),
        ("percentile", "100", "(0, 100)"),
        ("percentile", "0", "(0, 100)"),
        ("percentile", "0.99", "looks like a fraction"),
        ("percentile", "ninety", "(0, 100)"),
        ("precision", "fp9", "did you mean 'fp8'"),
        ("spec_acceptance", "70", "write 0.7, not 70"),
        ("spec_acceptance", "85", "write 0.85, not 85"),
        ("spec_acceptance", "-0.1", "acceptance rate in [0, 1]"),
        ("spec_acceptance", "high", "acceptance rate in [0, 1]"),
        ("spec_acceptance", "nan", "acceptance rate in [0, 1]"),
        ("mean_requests_per_s", "-1", "a number > 0"),
        ("period", "2026Q5", "a quarter like 2026Q1"),
        ("period", "next year", "a quarter like 2026Q1"),
    ],
)
def test_bad_cell(tmp_path: Path, column: str, value: str, expected: str) -> None:
    rows = [row(), {**row(period="2026Q2", workload="other"), column: value}]
    err = errors(write(tmp_path, rows))
    p = find(err, row=3, column=column, value=value)
    assert p.location == f"row 3, column {column}"
    assert expected in p.expected


def test_integral_tokens_and_p_prefix_accepted(tmp_path: Path) -> None:
    d = load(write(tmp_path, [row(prompt_tokens="1024.0", percentile="p95")]))
    assert d.workloads.loc["chat", "prompt_tokens"] == 1024
    assert d.workloads.loc["chat", "percentile"] == 95.0


def test_unparseable_timestamp(tmp_path: Path) -> None:
    rows = [
        row(period=None, timestamp="2026-01-01T00:00Z"),
        row(period=None, timestamp="yesterday"),
    ]
    p = find(errors(write(tmp_path, rows)), row=3, column="timestamp", value="yesterday")
    assert "ISO 8601" in p.expected


def test_negative_rate_in_series(tmp_path: Path) -> None:
    rows = [row(period=None, timestamp="2026-01-01T00:00Z", requests_per_s="-1")]
    p = find(errors(write(tmp_path, rows)), row=2, column="requests_per_s", value="-1")
    assert ">= 0" in p.expected


def test_unknown_model_did_you_mean(tmp_path: Path) -> None:
    err = errors(write(tmp_path, [row(model="llama-3.1-70")]))
    p = find(err, row=2, column="model", value="llama-3.1-70")
    assert "did you mean 'llama-3.1-70b'" in p.expected
    assert len(err.problems) == 1  # not also reported as a shape conflict


def test_draft_model_refused(tmp_path: Path) -> None:
    err = errors(write(tmp_path, [row(), row(period="2026Q2", workload="d", model="eagle-head")]))
    p = find(err, row=3, column="model", value="eagle-head")
    assert "draft model" in p.expected


def test_draft_model_unknown_without_draft_ids(tmp_path: Path) -> None:
    with pytest.raises(PlannerInputError, match="a known id"):
        load_demand(write(tmp_path, [row(model="llama-3.2-1b")]), TARGETS)


def test_duplicate_period_workload(tmp_path: Path) -> None:
    err = errors(write(tmp_path, [row(), row(), row(period="2026-02-01")]))
    p = find(err, row=3, column="period", value=("2026Q1", "chat"))
    assert "row 2" in p.expected
    p = find(err, row=4, column="period", value=("2026-02-01", "chat"))
    assert "row 2 already has period 2026Q1" in p.expected


def test_duplicate_timestamp_workload(tmp_path: Path) -> None:
    ts = "2026-01-01T00:00:00Z"
    err = errors(write(tmp_path, [row(period=None, timestamp=ts)] * 2))
    find(err, row=3, column="timestamp", value=(ts, "chat"))


def test_gap_in_periods(tmp_path: Path) -> None:
    err = errors(write(tmp_path, [row(), row(period="2026Q4")]))
    assert "no rows for 2026Q2, 2026Q3" in str(err)
    assert "column period" in str(err)


def test_mean_above_peak(tmp_path: Path) -> None:
    p = find(
        errors(write(tmp_path, [row(mean_requests_per_s="11")])), row=2, column="mean", value="11"
    )
    assert "cannot exceed the peak" in p.expected


@pytest.mark.parametrize(
    ("column", "other"),
    [
        ("prompt_tokens", "2048"),
        ("output_tokens", "512"),
        ("ttft_ms", "500"),
        ("tpot_ms", "20"),
        ("percentile", "95"),
        ("model", "llama-3.1-8b"),
        ("precision", "fp8"),
        ("spec_acceptance", "0.8"),
    ],
)
def test_one_shape_per_workload(tmp_path: Path, column: str, other: str) -> None:
    rows = [
        row(precision=""),
        row(period="2026Q2", precision=""),
        {**row(period="2026Q3", precision=""), column: other},
    ]
    err = errors(write(tmp_path, rows))
    assert len(err.problems) == 1, err
    p = find(err, row=4, column=column, value=other)
    assert "row 2" in p.expected and "new workload name" in p.expected


def test_spec_acceptance_per_workload_or_the_default(tmp_path: Path) -> None:
    rows = [
        row(spec_acceptance="0.85"),
        row(period="2026Q2", spec_acceptance="0.85"),
        row(workload="small", model="llama-3.1-8b", spec_acceptance=""),
    ]
    w = load(write(tmp_path, rows)).workloads
    assert w.loc["chat", "spec_acceptance"] == 0.85
    assert math.isnan(w.loc["small", "spec_acceptance"])  # the scenario's default applies
    assert math.isnan(
        load(write(tmp_path, [row()], "plain.csv")).workloads.loc["chat", "spec_acceptance"]
    )


def test_precision_spelled_differently_is_the_same(tmp_path: Path) -> None:
    load(write(tmp_path, [row(precision="fp8"), row(period="2026Q2", precision="FP8")]))


def test_bad_period_freq(tmp_path: Path) -> None:
    with pytest.raises(PlannerInputError, match="period_freq"):
        load(write(tmp_path, [row()]), period_freq="W")


def test_three_problems_in_one_error(tmp_path: Path) -> None:
    rows = [
        row(),
        row(period="2026Q2", requests_per_s="-5"),
        row(period="2026Q3", model="llama-3.1-70"),
        row(period="2026Q4", ttft_ms="soon"),
    ]
    path = write(tmp_path, rows)
    err = errors(path)
    assert len(err.problems) == 3, err
    find(err, row=3, column="requests_per_s", value="-5")
    find(err, row=4, column="model", value="llama-3.1-70")
    find(err, row=5, column="ttft_ms", value="soon")
    text = str(err)
    assert text.startswith("3 problems in the input:")
    assert text.count(str(path)) == 3


def test_blank_lines_count_as_rows(tmp_path: Path) -> None:
    path = tmp_path / "blank.csv"
    good = ",".join(BASE.values())
    bad = good.replace("1000", "-1")
    path.write_text(",".join(BASE) + f"\n{good}\n\n{bad.replace('2026Q1', '2026Q2')}\n")
    find(errors(path), row=4, column="ttft_ms", value="-1")


def test_repeated_problem_is_reported_once(tmp_path: Path) -> None:
    rows = [row(period=f"2026Q{q}", model="gpt-5") for q in (1, 2, 3, 4)]
    err = errors(write(tmp_path, rows))
    assert len(err.problems) == 1
    assert err.problems[0].location == "rows 2-5, column model"


def test_bom_and_case_insensitive_header(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    header = ",".join(k.upper() if k == "model" else k for k in BASE)
    path.write_text(header + "\n" + ",".join(BASE.values()) + "\n", encoding="utf-8-sig")
    assert load(path).workloads.loc["chat", "model"] == "llama-3.1-70b"


def test_known_columns_documented() -> None:
    readme = (data_dir("demand") / "README.md").read_text()
    for column in KNOWN_COLUMNS:
        assert f"`{column}`" in readme


# --------------------------------------------------------------------------------------
# Property: valid long frames round-trip exactly
# --------------------------------------------------------------------------------------

RATES = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def long_frames(draw: st.DrawFn) -> list[dict[str, str]]:
    first = pd.Period(f"{draw(st.integers(2024, 2032))}Q{draw(st.integers(1, 4))}", freq="Q")
    periods = [first + i for i in range(draw(st.integers(1, 6)))]
    names = draw(
        st.lists(
            st.sampled_from(["chat", "code", "voice", "batch"]), min_size=1, max_size=4, unique=True
        )
    )
    rows = []
    for i, p in enumerate(periods):
        present = draw(st.lists(st.booleans(), min_size=len(names), max_size=len(names)))
        present[i % len(names)] = True  # every period needs a row
        for name, here in zip(names, present, strict=True):
            if not here:
                continue
            rate = draw(RATES)
            label = draw(
                st.sampled_from([str(p), f"{p.year}-Q{p.quarter}", str(p.start_time.date())])
            )
            r = row(period=label, workload=name, requests_per_s=repr(rate))
            if draw(st.booleans()):
                r["mean_requests_per_s"] = repr(rate * draw(st.floats(0.01, 1.0)))
            rows.append(r)
    return draw(st.permutations(rows))


@settings(max_examples=60, deadline=None)
@given(long_frames())
def test_long_frames_round_trip(rows: list[dict[str, str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = load(write(Path(tmp), rows))
    want = {
        (r["workload"], str(parse_period(r["period"], "Q"))): (
            float(r["requests_per_s"]),
            float(r.get("mean_requests_per_s") or r["requests_per_s"]),
        )
        for r in rows
    }
    got = {
        (w, p): (rate, mean)
        for w, p, rate, mean in d.rates[
            ["workload", "period", "requests_per_s", "mean_requests_per_s"]
        ].itertuples(index=False)
    }
    assert got == want
    starts = d.periods["start"].tolist()
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert d.period_names == [str(pd.Period(s, freq="Q")) for s in starts]
    assert d.rates["period"].map(d.period_names.index).is_monotonic_increasing
