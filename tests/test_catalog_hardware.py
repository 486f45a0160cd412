"""Hardware catalog: the shipped entries load, every number has provenance, every
validation rule fails with a message that names the file, the field and the bad value,
and the shipped numbers obey physical sanity properties that a typo would break.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from planner.catalog import (
    Basis,
    Hardware,
    Sourced,
    data_dir,
    load_catalog,
    validate_paths,
)
from planner.errors import PlannerInputError

CATALOGS = data_dir("catalogs")
HARDWARE_DIR = CATALOGS / "hardware"
H100_YAML = HARDWARE_DIR / "h100-sxm.yaml"
BAD = Path(__file__).parent / "data" / "catalog_bad"

REQUIRED_IDS = {
    "h100-sxm",
    "h200-sxm",
    "b200",
    "gb200-nvl72",
    "b300",
    "gb300-nvl72",
    "vr200-nvl72",
    "rubin-cpx",
    "groq-lpu",
    "lpx",
    "cs-3",
    "mi300x",
    "mi325x",
    "mi355x",
    "tpu-v6e",
    "tpu-v7",
    "trainium2",
    "inferentia2",
}
SRAM_IDS = {"groq-lpu", "lpx", "cs-3"}
NVL72_IDS = {"gb200-nvl72", "gb300-nvl72", "vr200-nvl72"}
RENTAL_ONLY_IDS = {"tpu-v6e", "tpu-v7", "trainium2", "inferentia2"}
# Where the shared reference says sources disagree; each entry must say so in `conflicts`.
KNOWN_CONFLICTS = {"b200", "gb200-nvl72", "b300", "vr200-nvl72", "rubin-cpx", "cs-3", "mi355x"}
TODAY = dt.date(2026, 11, 22)  # the planning date the catalog was written for

CATALOG = load_catalog()
HARDWARE = CATALOG.hardware
IDS = sorted(REQUIRED_IDS)


def sourced_values(obj: object, path: str = "") -> Iterator[tuple[str, Sourced]]:
    """Every Sourced value inside a model, with its dotted path."""
    if isinstance(obj, Sourced):
        yield path, obj
    elif isinstance(obj, BaseModel):
        for name in type(obj).model_fields:
            yield from sourced_values(getattr(obj, name), f"{path}.{name}" if path else name)
    elif isinstance(obj, dict):
        for key, v in obj.items():
            yield from sourced_values(v, f"{path}.{key}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from sourced_values(v, f"{path}[{i}]")


# --------------------------------------------------------------------------------------
# The shipped catalog
# --------------------------------------------------------------------------------------


def test_shipped_catalog_holds_exactly_the_required_skus() -> None:
    assert set(HARDWARE) == REQUIRED_IDS
    assert {p.stem for p in HARDWARE_DIR.glob("*.yaml")} == REQUIRED_IDS


def test_validate_paths_accepts_the_shipped_hardware_folder() -> None:
    # What `planner catalog validate catalogs/hardware` runs.
    assert validate_paths([HARDWARE_DIR]) == len(REQUIRED_IDS)


@pytest.mark.parametrize("sku", IDS)
def test_every_number_names_sources_listed_in_the_entry(sku: str) -> None:
    hw = HARDWARE[sku]
    values = list(sourced_values(hw))
    assert values, f"{sku}: no Sourced values found"
    for path, v in values:
        tags = v.source.split()
        assert tags, f"{sku}.{path}: empty source"
        missing = [t for t in tags if t not in hw.sources]
        assert not missing, f"{sku}.{path}: source tag(s) {missing} not in `sources`"
    for tag in hw.available_from_source.split():
        assert tag in hw.sources, f"{sku}.available_from_source: {tag} not in `sources`"
    for tag, description in hw.sources.items():
        assert description.strip(), f"{sku}: source {tag} has no description"


@pytest.mark.parametrize("sku", IDS)
def test_every_estimate_says_how_it_was_derived(sku: str) -> None:
    for path, v in sourced_values(HARDWARE[sku]):
        if v.basis is Basis.estimate:
            assert v.note and v.note.strip(), f"{sku}.{path}: estimate without a note"
        if v.source.split() == ["E1"]:  # our own figure can never be a vendor spec
            assert v.basis is Basis.estimate, f"{sku}.{path}: E1-only value marked {v.basis}"


def test_every_sku_has_an_estimate_tag_described_when_used() -> None:
    for sku, hw in HARDWARE.items():
        used = {t for _, v in sourced_values(hw) for t in v.source.split()}
        if "E1" in used:
            assert "estimate" in hw.sources["E1"], sku


@pytest.mark.parametrize("sku", sorted(KNOWN_CONFLICTS))
def test_known_source_conflicts_are_stated(sku: str) -> None:
    assert HARDWARE[sku].conflicts, f"{sku}: sources disagree but `conflicts` is empty"


# --------------------------------------------------------------------------------------
# Physical sanity of the shipped numbers (each could be false after a typo)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("sku", IDS)
def test_narrower_precisions_are_not_slower(sku: str) -> None:
    peaks = [HARDWARE[sku].peak_tflops(p) for p in ("bf16", "fp8", "fp4")]
    present = [p for p in peaks if p is not None]
    assert present == sorted(present), f"{sku}: bf16/fp8/fp4 peaks {peaks} not ascending"


@pytest.mark.parametrize("sku", IDS)
def test_all_in_power_covers_the_chip(sku: str) -> None:
    power = HARDWARE[sku].power
    if power.chip_w is not None:
        assert power.all_in_w_per_chip.value >= power.chip_w.value


@pytest.mark.parametrize("sku", IDS)
def test_scale_up_link_is_slower_than_local_memory(sku: str) -> None:
    # Catches GB/s typed as TB/s (or the reverse) in either field.
    hw = HARDWARE[sku]
    if hw.scale_up is not None:
        link_tb_s = hw.scale_up.bandwidth_gb_s.value / 1000
        assert link_tb_s < hw.primary_memory.bandwidth_tb_s.value


def test_sram_skus_are_lpus_or_wafers_with_sram_first() -> None:
    sram = {sku for sku, hw in HARDWARE.items() if hw.is_sram}
    spatial = {sku for sku, hw in HARDWARE.items() if hw.kind in ("lpu", "wafer_scale")}
    assert sram == spatial == SRAM_IDS
    for sku in SRAM_IDS:
        assert HARDWARE[sku].memory[0].kind == "sram"
        assert HARDWARE[sku].primary_memory.capacity_gb.value < 100  # on-die, not HBM


def test_nvl72_racks_are_72_gpus_in_one_nvlink_domain() -> None:
    assert {sku for sku in HARDWARE if "nvl72" in sku} == NVL72_IDS
    for sku in NVL72_IDS:
        hw = HARDWARE[sku]
        assert hw.purchase.chips_per_unit == 72
        assert hw.scale_up is not None and hw.scale_up.domain_chips.value == 72
        rack_kw = hw.power.all_in_w_per_chip.value * 72 / 1000
        assert 100 <= rack_kw <= 250, f"{sku}: {rack_kw:.0f} kW per rack"


def test_every_sku_can_be_bought_or_rented() -> None:
    for sku, hw in HARDWARE.items():
        p = hw.purchase
        assert p.price_usd is not None or p.rent_usd_per_chip_hour is not None, sku
    for sku in RENTAL_ONLY_IDS:
        p = HARDWARE[sku].purchase
        assert p.price_usd is None and p.rent_usd_per_chip_hour is not None, sku


def test_status_agrees_with_the_availability_date() -> None:
    for sku, hw in HARDWARE.items():
        if hw.status == "shipping":
            assert hw.available_from <= TODAY, f"{sku}: shipping but available {hw.available_from}"
    assert HARDWARE["rubin-cpx"].status == "uncertain"
    assert HARDWARE["rubin-cpx"].kind == "prefill_accelerator"
    assert HARDWARE["rubin-cpx"].primary_memory.kind == "gddr"


@pytest.mark.parametrize(
    ("sku", "model", "precision", "chips"),
    [
        ("groq-lpu", "llama-2-70b", "fp8", 576),  # Groq's reported 576-chip system
        ("cs-3", "llama-3.1-70b", "bf16", 4),  # Cerebras' reported 4 CS-3
    ],
)
def test_documented_sram_deployments_fit_the_usable_fraction(
    sku: str, model: str, precision: str, chips: int
) -> None:
    # usable_fraction is derived from these deployments: they must fit, and not by a mile.
    mem = HARDWARE[sku].primary_memory
    usable_gb = chips * mem.capacity_gb.value * mem.usable_fraction.value
    weights_gb = CATALOG.models[model].weight_bytes(precision) / 1e9
    assert weights_gb <= usable_gb <= 1.1 * weights_gb


# --------------------------------------------------------------------------------------
# Validation failures: one fixture per rule, message names file, field and bad value
# --------------------------------------------------------------------------------------


def h100_raw() -> dict[str, Any]:
    raw = yaml.safe_load(H100_YAML.read_text())
    assert isinstance(raw, dict)
    return raw


def write_entry(root: Path, raw: dict[str, Any], stem: str | None = None) -> Path:
    (root / "hardware").mkdir(parents=True, exist_ok=True)
    (root / "models").mkdir(exist_ok=True)
    path = root / "hardware" / f"{stem or raw['id']}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def load_error(root: Path) -> PlannerInputError:
    with pytest.raises(PlannerInputError) as info:
        load_catalog(root)
    return info.value


Mutation = Callable[[dict[str, Any]], None]


def _set(*keys: str | int, value: Any) -> Mutation:
    def mutate(raw: dict[str, Any]) -> None:
        node: Any = raw
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value

    return mutate


def _delete(*keys: str) -> Mutation:
    def mutate(raw: dict[str, Any]) -> None:
        node: Any = raw
        for k in keys[:-1]:
            node = node[k]
        del node[keys[-1]]

    return mutate


def _add_fp4_efficiency(raw: dict[str, Any]) -> None:
    raw["efficiency"]["compute"]["fp4"] = {"value": 0.7, "basis": "estimate", "source": "E1"}


def _w4a16_efficiency_without_a_bf16_peak(raw: dict[str, Any]) -> None:
    """W4A16 runs at the bf16 peak: its fraction needs one."""
    raw["compute_tflops"].pop("bf16")
    raw["efficiency"]["compute"].pop("bf16", None)
    raw["efficiency"]["compute"]["w4a16"] = {"value": 0.2, "basis": "estimate", "source": "E1"}


# (rule, mutation, text that must appear in the message: field, bad value, reason)
RULES: list[tuple[str, Mutation, list[str]]] = [
    (
        "unknown extra field",
        _set("purchase", "colour", value="teal"),
        ["field purchase.colour", "'teal'", "Extra inputs are not permitted"],
    ),
    (
        "missing required field",
        _delete("power", "all_in_w_per_chip"),
        ["field power.all_in_w_per_chip", "the field is required"],
    ),
    (
        "zero memory capacity",
        _set("memory", 0, "capacity_gb", "value", value=0),
        ["field memory.0.capacity_gb", "must be > 0, got 0.0"],
    ),
    (
        "negative memory bandwidth",
        _set("memory", 0, "bandwidth_tb_s", "value", value=-3.35),
        ["field memory.0.bandwidth_tb_s", "must be > 0, got -3.35"],
    ),
    (
        "zero price",
        _set("purchase", "price_usd", "value", value=0),
        ["field purchase.price_usd", "must be > 0, got 0.0"],
    ),
    (
        "negative compute peak",
        _set("compute_tflops", "bf16", "value", value=-989),
        ["compute_tflops.bf16 must be > 0, got -989.0"],
    ),
    (
        "usable_fraction above 1",
        _set("memory", 0, "usable_fraction", "value", value=1.5),
        ["field memory.0.usable_fraction", "usable_fraction must be in (0, 1], got 1.5"],
    ),
    (
        "usable_fraction zero",
        _set("memory", 0, "usable_fraction", "value", value=0),
        ["field memory.0.usable_fraction", "usable_fraction must be in (0, 1], got 0.0"],
    ),
    (
        "compute efficiency above 1",
        _set("efficiency", "compute", "bf16", "value", value=1.2),
        ["field efficiency", "efficiency bf16 must be in (0, 1], got 1.2"],
    ),
    (
        "bandwidth efficiency zero",
        _set("efficiency", "bandwidth", "value", value=0),
        ["field efficiency", "efficiency bandwidth must be in (0, 1], got 0.0"],
    ),
    (
        "efficiency for a precision with no peak",
        _add_fp4_efficiency,
        ["efficiency.compute has precisions ['fp4'] with no peak TFLOPS"],
    ),
    (
        "W4A16 efficiency on a chip with no bf16 peak",
        _w4a16_efficiency_without_a_bf16_peak,
        ["efficiency.compute has precisions ['w4a16'] with no peak TFLOPS"],
    ),
    (
        "unknown basis",
        _set("compute_tflops", "bf16", "basis", value="guess"),
        ["field compute_tflops.bf16.basis", "'guess'"],
    ),
    (
        "empty source",
        _set("compute_tflops", "bf16", "source", value=""),
        ["field compute_tflops.bf16.source", "''", "at least 1 character"],
    ),
    (
        "unknown kind",
        _set("kind", value="fpga"),
        ["field kind", "'fpga'"],
    ),
    (
        "zero chips per unit",
        _set("purchase", "chips_per_unit", value=0),
        ["field purchase.chips_per_unit", "got 0"],
    ),
]


@pytest.mark.parametrize(("rule", "mutate", "expected"), RULES, ids=[r[0] for r in RULES])
def test_each_rule_fails_naming_file_field_and_value(
    tmp_path: Path, rule: str, mutate: Mutation, expected: list[str]
) -> None:
    raw = h100_raw()
    mutate(raw)
    path = write_entry(tmp_path, raw)
    message = str(load_error(tmp_path))
    assert str(path) in message, rule
    for text in expected:
        assert text in message, f"{rule}: {text!r} not in:\n{message}"


def test_unlisted_source_tag_fails_naming_the_tag(tmp_path: Path) -> None:
    raw = h100_raw()
    raw["compute_tflops"]["bf16"]["source"] = "S1 S99"
    path = write_entry(tmp_path, raw)
    message = str(load_error(tmp_path))
    assert str(path) in message
    assert "source tag(s) ['S99'] are used but not listed in `sources`" in message


def test_unlisted_availability_source_fails_naming_the_tag(tmp_path: Path) -> None:
    raw = h100_raw()
    raw["available_from_source"] = "S77"
    path = write_entry(tmp_path, raw)
    message = str(load_error(tmp_path))
    assert str(path) in message and "['S77']" in message


def test_id_must_match_the_file_name(tmp_path: Path) -> None:
    path = write_entry(tmp_path, h100_raw(), stem="h100-renamed")
    error = load_error(tmp_path)
    assert len(error.problems) == 1
    message = str(error)
    assert str(path) in message
    assert "field id: got 'h100-sxm'; expected the file name's stem 'h100-renamed'" in message


def test_duplicate_id_in_two_files_is_reported(tmp_path: Path) -> None:
    first = write_entry(tmp_path, h100_raw())
    second = write_entry(tmp_path, h100_raw(), stem="zz-copy")  # sorts after the original
    message = str(load_error(tmp_path))
    assert f"{second}: field id: got 'h100-sxm'; expected an id not already in {first}" in message


def test_unparseable_yaml_gives_line_and_column() -> None:
    root = BAD / "unparseable"
    message = str(load_error(root))
    assert str(root / "hardware" / "broken.yaml") in message
    assert "line 7, column 5" in message and "unparseable YAML" in message


def test_a_list_instead_of_a_mapping_is_rejected() -> None:
    root = BAD / "not_a_mapping"
    message = str(load_error(root))
    assert f"{root / 'hardware' / 'a-list.yaml'}: got 'list'; expected a YAML mapping" in message


def test_all_problems_in_all_files_are_reported_at_once(tmp_path: Path) -> None:
    (tmp_path / "hardware").mkdir()
    broken = tmp_path / "hardware" / "broken.yaml"
    listed = tmp_path / "hardware" / "a-list.yaml"
    shutil.copy(BAD / "unparseable" / "hardware" / "broken.yaml", broken)
    shutil.copy(BAD / "not_a_mapping" / "hardware" / "a-list.yaml", listed)
    error = load_error(tmp_path)
    assert len(error.problems) == 2
    assert {p.source for p in error.problems} == {str(broken), str(listed)}
    assert "2 problems in the input" in str(error)


def test_two_schema_errors_in_two_files_are_both_reported(tmp_path: Path) -> None:
    good = h100_raw()
    a = h100_raw()
    a["purchase"]["colour"] = "teal"
    b = h100_raw()
    b["id"] = "h100-zero"
    b["memory"][0]["capacity_gb"]["value"] = 0
    write_entry(tmp_path, good)
    path_a = write_entry(tmp_path, a, stem="h100-colour")
    path_b = write_entry(tmp_path, b)
    error = load_error(tmp_path)
    by_file = {p.source for p in error.problems}
    assert {str(path_a), str(path_b)} <= by_file
    assert str(tmp_path / "hardware" / "h100-sxm.yaml") not in by_file  # the valid one


def test_cli_validate_exits_2_and_names_the_bad_file() -> None:
    from typer.testing import CliRunner

    from planner.cli import app

    bad = BAD / "not_a_mapping" / "hardware"
    result = CliRunner().invoke(app, ["catalog", "validate", str(bad)])
    assert result.exit_code == 2
    output = "".join(result.output.split())  # immune to the console wrapping long lines
    assert f"{bad / 'a-list.yaml'}:got'list';expectedaYAMLmapping" in output
    ok = CliRunner().invoke(app, ["catalog", "validate", str(HARDWARE_DIR)])
    assert ok.exit_code == 0 and f"{len(REQUIRED_IDS)} entries valid" in ok.output


def test_an_h100_copy_with_nothing_changed_is_valid(tmp_path: Path) -> None:
    # Guards the fixtures above: each failure comes from its one change, not from the base.
    write_entry(tmp_path, h100_raw())
    catalog = load_catalog(tmp_path)
    assert set(catalog.hardware) == {"h100-sxm"}
    assert isinstance(catalog.hardware["h100-sxm"], Hardware)
