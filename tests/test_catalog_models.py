"""Model catalog: every required entry exists, and the derived quantities match published figures.

Parameter counts and KV sizes are derived from the architecture fields (planner/catalog.py),
never typed in, so these tests are what catches a wrong dimension in a YAML file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from planner.catalog import (
    KV_BYTES,
    Catalog,
    ModelSpec,
    ParamBreakdown,
    data_dir,
    load_catalog,
)
from planner.errors import PlannerInputError

CATALOGS = data_dir("catalogs")
MODELS_DIR = CATALOGS / "models"
H100_YAML = CATALOGS / "hardware" / "h100-sxm.yaml"

REQUIRED_IDS = [
    "llama-3.1-8b",
    "llama-3.1-70b",
    "llama-3.1-405b",
    "llama-2-70b",
    "deepseek-v3",
    "qwen3-235b-a22b",
    "gpt-oss-120b",
    "kimi-k2",
    "llama-3.2-1b",
    "eagle-head",
]

REL_TOL = 0.02  # derived vs published parameter counts

# Published counts the catalog must carry (id, convention, billions). Checked against the
# derived counts directly, so deleting an entry from a YAML file cannot skip the check.
REQUIRED_PUBLISHED = [
    ("llama-3.1-8b", "total", 8.03),
    ("llama-3.1-70b", "total", 70.6),
    ("llama-3.1-405b", "total", 405.9),
    ("deepseek-v3", "total", 671.0),
    ("deepseek-v3", "active_without_input_embedding", 37.0),
    ("qwen3-235b-a22b", "total", 235.0),
    ("qwen3-235b-a22b", "active_with_embeddings", 22.0),
    ("gpt-oss-120b", "total", 117.0),
    ("gpt-oss-120b", "active_without_input_embedding", 5.1),
    ("kimi-k2", "total", 1000.0),
    ("kimi-k2", "active_without_input_embedding", 32.0),
]

# Headline figures rounded more coarsely than REL_TOL, with the tolerance they get and why.
# Anything not listed here is held to REL_TOL.
COARSE_HEADLINES = {
    # Moonshot's README says "1T"; the dims give 1.026 T (+2.6 %), the tech report 1.04 T,
    # which the YAML also carries and which is held to REL_TOL.
    ("kimi-k2", "total", 1000.0): 0.03,
}


def _derived(p: ParamBreakdown, convention: str) -> float:
    return {
        "total": p.total,
        "active_with_embeddings": p.active_with_embeddings,
        "active_without_input_embedding": p.active,
    }[convention]


def _tolerance(model_id: str, convention: str, value: float) -> float:
    return COARSE_HEADLINES.get((model_id, convention, float(value)), REL_TOL)


def _published_in_yamls() -> list[tuple[str, str, float]]:
    """(id, convention, billions) for every published_params_b entry in the shipped YAMLs."""
    out = []
    for path in sorted(MODELS_DIR.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text()) or {}
        for entry in raw.get("published_params_b", []) or []:
            out.append((path.stem, entry["convention"], float(entry["value"])))
    return out


def _build_catalog_root(root: Path, model_files: list[Path] | None = None) -> Path:
    """A catalog folder holding only h100-sxm.yaml plus the given model files.

    Isolates these tests from hardware YAMLs that others may be half-way through writing.
    """
    (root / "hardware").mkdir(parents=True)
    (root / "models").mkdir()
    shutil.copy(H100_YAML, root / "hardware" / "h100-sxm.yaml")
    for f in model_files or []:
        shutil.copy(f, root / "models" / f.name)
    return root


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    root = _build_catalog_root(
        tmp_path_factory.mktemp("models-catalog"), sorted(MODELS_DIR.glob("*.yaml"))
    )
    return load_catalog(root)


def _targets_and_drafts(catalog: Catalog) -> list[ModelSpec]:
    return [m for m in catalog.models.values() if m.architecture is not None]


# --------------------------------------------------------------------------------------
# Presence and validation
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_id", REQUIRED_IDS)
def test_required_model_files_exist(model_id: str) -> None:
    assert (MODELS_DIR / f"{model_id}.yaml").is_file()


def test_shipped_catalog_loads_cleanly() -> None:
    """The whole shipped catalog (hardware and models) validates with no problems."""
    catalog = load_catalog()
    assert set(REQUIRED_IDS) <= set(catalog.models)


def test_model_catalog_validates(catalog: Catalog) -> None:
    assert set(REQUIRED_IDS) <= set(catalog.models)
    for m in catalog.models.values():
        assert m.sources, m.id
        if m.role != "draft_head":
            assert m.published_params_b, f"{m.id} has no published count to test against"


def test_tests_do_not_depend_on_shared_reference() -> None:
    """The project stands alone: no catalog entry points at the shared reference folder."""
    for path in MODELS_DIR.glob("*.yaml"):
        assert "/work/shared" not in path.read_text(), path


def test_roles(catalog: Catalog) -> None:
    assert catalog.model("llama-3.2-1b").role == "draft"
    assert catalog.model("eagle-head").role == "draft_head"
    for mid in REQUIRED_IDS[:8]:
        assert catalog.model(mid).role == "target", mid


def test_native_precisions(catalog: Catalog) -> None:
    expected = {"deepseek-v3": "fp8", "kimi-k2": "fp8", "gpt-oss-120b": "fp4"}
    for mid in REQUIRED_IDS:
        assert catalog.model(mid).native_precision == expected.get(mid, "bf16"), mid


# --------------------------------------------------------------------------------------
# Parameter counts vs published figures
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("model_id", "convention", "value_b"), _published_in_yamls())
def test_published_counts_in_yamls(
    catalog: Catalog, model_id: str, convention: str, value_b: float
) -> None:
    derived = _derived(catalog.model(model_id).params, convention) / 1e9
    tol = _tolerance(model_id, convention, value_b)
    assert derived == pytest.approx(value_b, rel=tol), (
        f"{model_id} {convention}: derived {derived:.3f} B vs published {value_b} B"
    )


@pytest.mark.parametrize(("model_id", "convention", "value_b"), REQUIRED_PUBLISHED)
def test_required_published_counts(
    catalog: Catalog, model_id: str, convention: str, value_b: float
) -> None:
    spec = catalog.model(model_id)
    recorded = {(p.convention, p.value) for p in spec.published_params_b}
    assert (convention, value_b) in recorded, (
        f"{model_id}.yaml lacks published_params_b {value_b} ({convention})"
    )
    derived = _derived(spec.params, convention) / 1e9
    assert derived == pytest.approx(value_b, rel=_tolerance(model_id, convention, value_b))


def test_required_list_is_all_in_yamls() -> None:
    assert set(REQUIRED_PUBLISHED) <= set(_published_in_yamls())


def test_only_listed_headlines_get_a_looser_tolerance() -> None:
    assert set(COARSE_HEADLINES) <= set(_published_in_yamls())
    assert all(REL_TOL < t <= 0.05 for t in COARSE_HEADLINES.values())


@pytest.mark.parametrize(
    ("model_id", "convention", "value_b"),
    [e for e in _published_in_yamls() if e[1] != "total"],
)
def test_recorded_active_convention_is_the_better_match(
    catalog: Catalog, model_id: str, convention: str, value_b: float
) -> None:
    """Each vendor's active count matches the recorded convention better than the other one."""
    p = catalog.model(model_id).params
    errors = {
        c: abs(_derived(p, c) / 1e9 - value_b)
        for c in ("active_with_embeddings", "active_without_input_embedding")
    }
    assert min(errors, key=errors.__getitem__) == convention, errors


# Counts computed independently by hand from the vendors' dims (billions; total, active incl.
# embedding + head, active excl. the input embedding). Held to 0.1 %, so a typo in one
# dimension that the 2 % published-figure check would let through still fails here.
HAND_COMPUTED_B = {
    "llama-3.1-8b": (8.03, 8.03, 7.50),
    "llama-3.1-70b": (70.55, 70.55, 69.50),
    "llama-3.1-405b": (405.85, 405.85, 403.75),
    "llama-2-70b": (68.98, 68.98, 68.72),
    "deepseek-v3": (671.03, 37.55, 36.63),
    "qwen3-235b-a22b": (235.09, 22.19, 21.57),
    "gpt-oss-120b": (116.83, 5.71, 5.13),  # incl. sinks and expert biases, which we omit
    "kimi-k2": (1026.4, 32.86, 31.69),
    "llama-3.2-1b": (1.236, 1.236, 1.236),
}


@pytest.mark.parametrize("model_id", sorted(HAND_COMPUTED_B))
def test_derived_counts_match_hand_computation(catalog: Catalog, model_id: str) -> None:
    p = catalog.model(model_id).params
    total, with_emb, without = HAND_COMPUTED_B[model_id]
    assert p.total / 1e9 == pytest.approx(total, rel=1e-3)
    assert p.active_with_embeddings / 1e9 == pytest.approx(with_emb, rel=1e-3)
    assert p.active / 1e9 == pytest.approx(without, rel=1e-3)


def test_derived_counts_exact_for_reference_dims(catalog: Catalog) -> None:
    """Spot values computed by hand from the dims (catches formula drift, not just YAML typos)."""
    assert catalog.model("llama-3.1-70b").params.total == 70_553_706_496
    assert catalog.model("llama-3.1-8b").params.total == 8_030_261_248
    assert catalog.model("llama-3.2-1b").params.total == 1_235_814_400


# --------------------------------------------------------------------------------------
# KV cache
# --------------------------------------------------------------------------------------

KIB = 1024


@pytest.mark.parametrize(
    ("model_id", "bf16_bytes"),
    [
        ("llama-3.1-70b", 320 * KIB),  # 327,680
        ("llama-2-70b", 320 * KIB),
        ("llama-3.1-8b", 128 * KIB),
        ("llama-3.1-405b", 504 * KIB),
        ("qwen3-235b-a22b", 188 * KIB),
        ("deepseek-v3", 70_272),  # 68.6 KiB: (512 latent + 64 rope) x 61 layers x 2 B
        ("kimi-k2", 70_272),
        ("gpt-oss-120b", 36 * KIB),  # full-attention layers only (18)
        ("llama-3.2-1b", 32 * KIB),
    ],
)
def test_kv_bytes_per_token_bf16(catalog: Catalog, model_id: str, bf16_bytes: int) -> None:
    assert catalog.model(model_id).kv_bytes_per_token("bf16") == bf16_bytes


def test_kv_fp8_halves_bf16(catalog: Catalog) -> None:
    for m in _targets_and_drafts(catalog):
        assert m.kv_bytes_per_token("fp8") * 2 == m.kv_bytes_per_token("bf16"), m.id
        assert m.kv_bytes_per_sequence(8192, "fp8") * 2 == m.kv_bytes_per_sequence(8192), m.id
    assert KV_BYTES["fp8"] * 2 == KV_BYTES["bf16"]


def test_gpt_oss_sliding_layers_are_bounded(catalog: Catalog) -> None:
    m = catalog.model("gpt-oss-120b")
    full_per_token = 36 * KIB
    growth = m.kv_bytes_per_sequence(1e6) - m.kv_bytes_per_sequence(1e5)
    assert growth == pytest.approx(full_per_token * (1e6 - 1e5), rel=1e-12)
    # The sliding layers hold exactly 18 layers x 128 tokens x 2,048 B = 4.5 MiB per sequence.
    sliding = m.kv_bytes_per_sequence(1e5) - full_per_token * 1e5
    assert sliding == pytest.approx(18 * 128 * 2 * 8 * 64 * 2, rel=1e-12)
    assert sliding == pytest.approx(4.5 * 2**20, rel=1e-12)
    # Below the window every layer holds every token: 72 KiB per token over all 36 layers.
    assert m.kv_bytes_per_sequence(100) == pytest.approx(72 * KIB * 100, rel=1e-12)


def test_dense_kv_per_sequence_is_linear(catalog: Catalog) -> None:
    m = catalog.model("llama-3.1-70b")
    assert m.kv_bytes_per_sequence(131072) == 40 * 2**30  # 40 GiB at 128K context


def test_mla_kv_independent_of_q_heads(catalog: Catalog) -> None:
    ds = catalog.model("deepseek-v3")
    raw = ds.model_dump()
    raw["architecture"]["attention"]["q_heads"] = 32
    fewer_heads = ModelSpec.model_validate(raw)
    assert fewer_heads.kv_bytes_per_token() == ds.kv_bytes_per_token()
    assert fewer_heads.params.attention < ds.params.attention  # the heads did change
    # Kimi-K2 has 64 heads to DeepSeek-V3's 128 and the same latent: same KV per token.
    assert catalog.model("kimi-k2").kv_bytes_per_token() == ds.kv_bytes_per_token()


def test_gqa_kv_scales_with_kv_heads(catalog: Catalog) -> None:
    m = catalog.model("llama-3.1-70b")
    raw = m.model_dump()
    raw["architecture"]["attention"]["kv_heads"] = 16
    assert ModelSpec.model_validate(raw).kv_bytes_per_token() == 2 * m.kv_bytes_per_token()


# --------------------------------------------------------------------------------------
# Weight bytes
# --------------------------------------------------------------------------------------


def test_weight_bytes(catalog: Catalog) -> None:
    assert catalog.model("llama-3.1-70b").weight_bytes("bf16") == pytest.approx(141.1e9, rel=1e-3)
    assert catalog.model("deepseek-v3").weight_bytes("fp8") == pytest.approx(671e9, rel=1e-3)
    assert catalog.model("llama-3.1-405b").weight_bytes("bf16") == pytest.approx(811.7e9, rel=1e-3)
    # gpt-oss as shipped: MXFP4 experts, modelled as 4.5 bits for every parameter.
    assert catalog.model("gpt-oss-120b").weight_bytes("fp4") == pytest.approx(65.7e9, rel=2e-3)


# --------------------------------------------------------------------------------------
# Structural properties
# --------------------------------------------------------------------------------------


def test_active_never_exceeds_total(catalog: Catalog) -> None:
    for m in _targets_and_drafts(catalog):
        p = m.params
        assert 0 < p.active <= p.active_with_embeddings <= p.total, m.id


def test_dense_untied_active_is_total_minus_input_embedding(catalog: Catalog) -> None:
    checked = 0
    for m in _targets_and_drafts(catalog):
        a = m.architecture
        assert a is not None
        if a.ffn.experts or a.tied_embeddings:
            continue
        p = m.params
        assert p.active == pytest.approx(p.total - a.vocab * a.hidden, rel=1e-12), m.id
        assert p.active_with_embeddings == pytest.approx(p.total, rel=1e-12), m.id
        checked += 1
    assert checked >= 4


def test_tied_embeddings_counted_once(catalog: Catalog) -> None:
    m = catalog.model("llama-3.2-1b")
    p = m.params
    assert p.lm_head == 0
    assert p.active == p.total == p.active_with_embeddings
    raw = m.model_dump()
    raw["architecture"]["tied_embeddings"] = False
    untied = ModelSpec.model_validate(raw).params
    assert untied.total - p.total == 128256 * 2048


@pytest.mark.parametrize("model_id", ["deepseek-v3", "qwen3-235b-a22b", "gpt-oss-120b", "kimi-k2"])
def test_moe_active_grows_with_top_k(catalog: Catalog, model_id: str) -> None:
    m = catalog.model(model_id)
    a = m.architecture
    assert a is not None
    raw = m.model_dump()
    raw["architecture"]["ffn"]["top_k"] = 2 * a.ffn.top_k
    doubled = ModelSpec.model_validate(raw)
    p, q = m.params, doubled.params
    assert q.total == p.total  # same weights, more of them used per token
    assert q.active_routed_experts == pytest.approx(2 * p.active_routed_experts, rel=1e-12)
    assert q.active - p.active == pytest.approx(p.active_routed_experts, rel=1e-12)
    assert p.active < q.active < q.total


def test_moe_active_is_a_small_fraction(catalog: Catalog) -> None:
    for mid in ["deepseek-v3", "qwen3-235b-a22b", "gpt-oss-120b", "kimi-k2"]:
        p = catalog.model(mid).params
        assert p.active < 0.15 * p.total, mid


def test_params_follow_a_model_copy(catalog: Catalog) -> None:
    """Derived counts must track the architecture even on a model_copy of a spec already used."""
    m = catalog.model("llama-3.1-70b")
    before = m.params.total
    a = m.architecture
    assert a is not None
    half = a.model_copy(update={"layers": 40, "ffn": a.ffn.model_copy(update={"dense_layers": 40})})
    copy = m.model_copy(update={"architecture": half})
    assert copy.params.total < before
    assert copy.params.attention == pytest.approx(m.params.attention / 2, rel=1e-12)
    assert m.params.total == before


def test_draft_head(catalog: Catalog) -> None:
    head = catalog.model("eagle-head")
    assert head.architecture is None and head.draft_head is not None
    f = head.draft_head.fraction_of_target_step
    assert f.basis == "estimate"
    assert 0.01 <= f.value <= 0.1
    assert set(f.source.split()) <= set(head.sources)
    with pytest.raises(ValueError, match="draft head"):
        _ = head.params
    # The estimate: (1 layer + LM head) / (L layers + LM head) for a 70B-class target.
    p = catalog.model("llama-3.1-70b").params
    layer = (p.attention + p.dense_ffn) / 80
    ratio = (layer + p.lm_head) / (80 * layer + p.lm_head)
    assert f.value == pytest.approx(ratio, abs=0.01)


def test_draft_model_shares_target_vocab(catalog: Catalog) -> None:
    draft = catalog.model("llama-3.2-1b").architecture
    target = catalog.model("llama-3.1-70b").architecture
    assert draft is not None and target is not None
    assert draft.vocab == target.vocab


# --------------------------------------------------------------------------------------
# Validation failures: one fixture per model-schema rule
# --------------------------------------------------------------------------------------


def _valid_model() -> dict:
    return {
        "id": "bad",
        "name": "fixture",
        "role": "target",
        "architecture": {
            "layers": 4,
            "hidden": 256,
            "vocab": 1000,
            "max_context": 4096,
            "attention": {"type": "gqa", "q_heads": 4, "kv_heads": 2, "head_dim": 64},
            "ffn": {"dense_layers": 4, "dense_intermediate": 512},
        },
        "sources": {"X": "fixture"},
    }


def _moe(raw: dict) -> dict:
    raw["architecture"]["ffn"] = {
        "dense_layers": 1,
        "dense_intermediate": 512,
        "experts": 8,
        "top_k": 2,
        "expert_intermediate": 128,
    }
    return raw


def _mla(raw: dict) -> dict:
    raw["architecture"]["attention"] = {
        "type": "mla",
        "q_heads": 4,
        "kv_lora_rank": 64,
        "qk_nope_head_dim": 32,
        "qk_rope_head_dim": 16,
        "v_head_dim": 32,
    }
    return raw


def _drop(d: dict, *path: str) -> dict:
    node = d
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return d


def _set(d: dict, value: object, *path: str) -> dict:
    node = d
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return d


def _case_top_k(raw: dict) -> dict:
    return _set(_moe(raw), 9, "architecture", "ffn", "top_k")


def _case_no_expert_intermediate(raw: dict) -> dict:
    return _drop(_moe(raw), "architecture", "ffn", "expert_intermediate")


def _case_dense_layers(raw: dict) -> dict:
    return _set(raw, 5, "architecture", "ffn", "dense_layers")


def _case_sliding(raw: dict) -> dict:
    return _set(raw, 2, "architecture", "attention", "sliding_layers")


def _case_no_architecture(raw: dict) -> dict:
    return _drop(raw, "architecture")


def _case_draft_head(raw: dict) -> dict:
    return _drop(_set(raw, "draft_head", "role"), "architecture")


def _case_extra(raw: dict) -> dict:
    return _set(raw, 500000, "architecture", "attention", "rope_theta")


BAD_MODELS = [
    # (case, mutate, location that must be named, word that must appear in the message)
    ("gqa-no-kv-heads", lambda r: _drop(r, "architecture", "attention", "kv_heads"),
     "field architecture.attention", "kv_heads"),
    ("mla-no-kv-lora", lambda r: _drop(_mla(r), "architecture", "attention", "kv_lora_rank"),
     "field architecture.attention", "kv_lora_rank"),
    ("top-k-gt-experts", _case_top_k, "field architecture.ffn", "top_k"),
    ("experts-no-intermediate", _case_no_expert_intermediate,
     "field architecture.ffn", "expert_intermediate"),
    ("dense-gt-layers", _case_dense_layers, "field architecture", "dense_layers"),
    ("sliding-no-window", _case_sliding, "field architecture.attention", "sliding_window_tokens"),
    ("target-no-architecture", _case_no_architecture, "field (top level)", "`architecture` block"),
    ("draft-head-no-block", _case_draft_head, "field (top level)", "`draft_head` block"),
    ("unknown-field", _case_extra, "field architecture.attention.rope_theta", "Extra inputs"),
]  # fmt: skip


def _write_model(root: Path, raw: dict) -> Path:
    path = root / "models" / f"{raw['id']}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_valid_fixture_loads(tmp_path: Path) -> None:
    """The base fixture is valid, so each failure below is caused by its one change."""
    root = _build_catalog_root(tmp_path)
    _write_model(root, _valid_model())
    _write_model(root, {**_moe(_valid_model()), "id": "ok-moe"})
    _write_model(root, {**_mla(_valid_model()), "id": "ok-mla"})
    assert len(load_catalog(root).models) == 3


@pytest.mark.parametrize(
    ("case", "mutate", "location", "word"), BAD_MODELS, ids=[c[0] for c in BAD_MODELS]
)
def test_model_schema_rule_fails(
    tmp_path: Path, case: str, mutate, location: str, word: str
) -> None:
    root = _build_catalog_root(tmp_path)
    path = _write_model(root, mutate({**_valid_model(), "id": case}))
    with pytest.raises(PlannerInputError) as exc:
        load_catalog(root)
    message = str(exc.value)
    assert f"{path}: {location}:" in message, message
    assert word in message, message
    assert len(exc.value.problems) == 1, message


def test_all_problems_reported_together(tmp_path: Path) -> None:
    root = _build_catalog_root(tmp_path)
    paths = [
        _write_model(root, mutate({**_valid_model(), "id": case}))
        for case, mutate, _, _ in BAD_MODELS
    ]
    with pytest.raises(PlannerInputError) as exc:
        load_catalog(root)
    message = str(exc.value)
    assert len(exc.value.problems) == len(BAD_MODELS)
    assert all(str(p) in message for p in paths)
    assert message.startswith(f"{len(BAD_MODELS)} problems in the input:")


def test_id_must_match_file_name(tmp_path: Path) -> None:
    root = _build_catalog_root(tmp_path)
    (root / "models" / "other-name.yaml").write_text(yaml.safe_dump(_valid_model()))
    with pytest.raises(PlannerInputError, match="field id"):
        load_catalog(root)


def test_shipped_model_yamls_are_strictly_valid() -> None:
    """Each shipped model YAML validates on its own (the schema forbids unknown fields)."""
    for path in sorted(MODELS_DIR.glob("*.yaml")):
        spec = ModelSpec.model_validate(yaml.safe_load(path.read_text()))
        assert spec.id == path.stem
