"""Text namespaces on the tiny ONNX model: extraction, the model lock, and text search."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import vecns
from tests.tiny_model import build_tiny_model

TEXTS = {
    "cat": "The cat sat on the mat and purred quietly.",
    "dog": "A dog barked at the mailman all morning long.",
    "sql": "Parameterised SQL keeps user input out of the query text.",
    "db": "DuckDB stores the vectors and the catalog in one file.",
}


def test_text_add_and_search(text_store):
    ns = text_store.create_namespace("docs")
    assert (ns.model_id, ns.dim) == ("tiny", 8)
    assert ns.features[0].name == "text_extractor_v1_embedding"
    ns.add([{"id": k, "text": v, "collection": "c"} for k, v in TEXTS.items()])
    for key, text in TEXTS.items():
        assert ns.search(text, k=1)[0].id == key
    hits = ns.search("the cat sat on the mat", k=2, include_text=True)
    assert hits[0].id == "cat" and hits[0].text == TEXTS["cat"]


def test_stored_vectors_equal_the_embedders(text_store):
    ns = text_store.create_namespace("docs")
    ns.add([{"id": k, "text": v} for k, v in TEXTS.items()])
    embedded = text_store.embedder("tiny").embed(list(TEXTS.values()))
    for i, key in enumerate(TEXTS):
        np.testing.assert_allclose(ns.get(key, include_vector=True).vector, embedded[i], rtol=1e-6, atol=1e-6)


def test_feature_extractors_in_the_hosted_shape(text_store):
    ns = text_store.create_namespace("docs", feature_extractors=[
        {"feature_extractor_name": "text_extractor", "version": "v2", "parameters": {"embedding_model": "tiny"}}])
    assert ns.features[0].name == "text_extractor_v2_embedding"
    with pytest.raises(vecns.ConfigError, match="known extractors"):
        text_store.create_namespace("x", feature_extractors=[{"feature_extractor_name": "image_extractor"}])
    with pytest.raises(vecns.ConfigError, match="unknown fields"):
        text_store.create_namespace("y", feature_extractors=[{"feature_extractor_name": "text_extractor",
                                                               "colour": 1}])
    assert [n.name for n in text_store.namespaces()] == ["docs"]


def test_unknown_model_lists_the_known_ones(text_store):
    with pytest.raises(vecns.ModelNotFoundError, match="tiny"):
        text_store.create_namespace("docs", "no-such-model")


def test_text_objects_need_text_and_refuse_vectors(text_store):
    ns = text_store.create_namespace("docs")
    with pytest.raises(vecns.InvalidObjectError, match="no text"):
        ns.add([{"id": "a"}])
    with pytest.raises(vecns.InvalidObjectError, match="empty text"):
        ns.add([{"id": "a", "text": "   "}])
    with pytest.raises(vecns.InvalidObjectError, match="pass text only"):
        ns.add([{"id": "a", "text": "x", "vector": [0.0] * 8}])
    with pytest.raises(vecns.ValidationError, match="empty"):
        ns.search("  ")
    assert ns.count() == 0


def test_a_vector_query_on_a_text_namespace_is_dim_checked(text_store):
    ns = text_store.create_namespace("docs")
    ns.add([{"id": "a", "text": "hello world"}])
    assert ns.search(np.ones(8), k=1)[0].id == "a"
    with pytest.raises(vecns.DimensionMismatchError, match="dim=8"):
        ns.search(np.ones(384))


def test_a_vector_namespace_refuses_text_queries(store):
    ns = store.create_namespace("docs", dim=4)
    with pytest.raises(vecns.ValidationError, match="not text"):
        ns.search("hello")


def test_changed_model_file_refuses_text_queries_and_writes(tmp_path: Path, tiny_model: Path):
    path = tmp_path / "s"
    with vecns.connect(path) as store:
        store.models.register(tiny_model, model_id="tiny")
        ns = store.create_namespace("docs", "tiny")
        ns.add([{"id": "a", "text": "hello world"}])
    # Same dim, other weights: only the fingerprint can tell.
    other = build_tiny_model(tmp_path / "other", dim=8, seed=1)
    shutil.copyfile(other / "model.onnx", tiny_model / "model.onnx")
    with vecns.connect(path) as store:
        ns = store.namespace("docs")
        with pytest.raises(vecns.ModelMismatchError, match="re_extract migration") as info:
            ns.search("hello")
        assert ns.features[0].fingerprint[:12] in str(info.value)
        with pytest.raises(vecns.ModelMismatchError):
            ns.add([{"id": "b", "text": "more"}])
        assert ns.count() == 1
        assert ns.search(np.ones(8), k=1)[0].id == "a"


def test_model_changed_while_the_store_is_open(text_store, tiny_model: Path):
    text_store.models.register(tiny_model, model_id="mine")
    ns = text_store.create_namespace("docs", "mine")
    ns.add([{"id": "a", "text": "hello"}])
    other = build_tiny_model(tiny_model.parent / "other", dim=8, seed=2)
    shutil.copyfile(other / "model.onnx", tiny_model / "model.onnx")
    with pytest.raises(vecns.ModelMismatchError):
        ns.search("hello")


def test_registry_defaults_do_not_touch_existing_namespaces(store, tiny_folder: Path, tmp_path: Path):
    store.models.register(tiny_folder, model_id="tiny")
    store.models.register(build_tiny_model(tmp_path / "t16", dim=16), model_id="tiny16")
    store.models.set_default("tiny")
    a = store.create_namespace("a")
    store.models.set_default("tiny16")
    b = store.create_namespace("b")
    assert (store.namespace("a").dim, b.dim) == (8, 16)
    assert a.model_id == "tiny"
    with pytest.raises(vecns.ModelExistsError):
        store.models.register(tiny_folder, model_id="tiny")
    listed = {m.model_id: m for m in store.models.list()}
    assert listed["tiny16"].default and not listed["tiny"].default
    assert {"all-minilm-l6-v2-int8", "paraphrase-minilm-l3-v2"} <= set(listed)
