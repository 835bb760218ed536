"""Objects in a namespace: writes, reads, validation, the change log, and search with filters."""

from __future__ import annotations

import numpy as np
import pytest

import vecns
from tests.conftest import random_vectors, vector_objects


@pytest.fixture
def ns(store):
    return store.create_namespace("docs", dim=4)


def test_add_get_count_iterate(ns):
    assert ns.add(vector_objects(10, 4)) == 10
    assert ns.count() == len(ns) == 10
    obj = ns.get("o3", include_vector=True)
    assert (obj.id, obj.collection, obj.metadata) == ("o3", "odd", {"i": 3, "g": 3})
    np.testing.assert_allclose(obj.vector, random_vectors(10, 4)[3])
    assert [o.id for o in ns] == [f"o{i}" for i in range(10)]
    assert ns.count(filters={"collection_ids": ["odd"]}) == 5


@pytest.mark.parametrize("batch_size", [1, 7, 1024])
def test_batch_sizes_write_the_same_objects(store, batch_size):
    ns = store.create_namespace("docs", dim=3)
    ns.add(vector_objects(20, 3), batch_size=batch_size)
    assert ns.count() == 20
    assert ns.search(random_vectors(20, 3)[5], k=1)[0].id == "o5"


def test_add_refuses_existing_ids_and_writes_nothing(ns):
    ns.add(vector_objects(3, 4))
    seq = ns._store._catalog.current_seq()
    batch = vector_objects(5, 4, prefix="n") + [{"id": "o1", "vector": [1, 2, 3, 4]}]
    with pytest.raises(vecns.ObjectExistsError, match="upsert"):
        ns.add(batch)
    assert ns.count() == 3
    assert ns._store._catalog.current_seq() == seq


def test_upsert_replaces_and_keeps_created_at(ns):
    ns.add([{"id": "a", "vector": [1, 0, 0, 0], "metadata": {"v": 1}}])
    first = ns.get("a")
    ns.upsert([{"id": "a", "vector": [0, 1, 0, 0], "metadata": {"v": 2}}, {"id": "b", "vector": [0, 0, 1, 0]}])
    second = ns.get("a", include_vector=True)
    assert second.metadata == {"v": 2}
    assert second.created_at == first.created_at and second.updated_at >= first.updated_at
    np.testing.assert_array_equal(second.vector, [0, 1, 0, 0])
    assert ns.search([0, 1, 0, 0], k=1)[0].id == "a"
    assert ns.count() == 2


def test_delete(ns):
    ns.add(vector_objects(5, 4))
    assert ns.delete(["o1", "o2", "missing"]) == 2
    assert ns.delete("o3") == 1
    assert {o.id for o in ns} == {"o0", "o4"}
    assert all(h.id in {"o0", "o4"} for h in ns.search([1, 1, 1, 1], k=5))
    with pytest.raises(vecns.ObjectNotFoundError):
        ns.get("o1")


def test_every_write_logs_a_change_in_the_same_transaction(ns):
    catalog = ns._store._catalog
    ns.add(vector_objects(3, 4))
    ns.upsert([{"id": "o0", "vector": [1, 2, 3, 4]}])
    ns.delete(["o1"])
    rows = catalog.fetchall("SELECT seq, id, op FROM changes WHERE namespace_id = ? ORDER BY seq", [ns.id])
    assert [(i, op) for _, i, op in rows] == [("o0", "upsert"), ("o1", "upsert"), ("o2", "upsert"),
                                               ("o0", "upsert"), ("o1", "delete")]
    seqs = [s for s, _, _ in rows]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    assert catalog.current_seq() == seqs[-1]
    stored = dict(catalog.fetchall(f'SELECT id, seq FROM "o_{ns.id}"'))
    assert stored == {"o0": seqs[3], "o2": seqs[2]}


def test_duplicate_ids_in_one_batch_are_refused(ns):
    with pytest.raises(vecns.DuplicateIdError, match="o1"):
        ns.add([{"id": "o1", "vector": [1, 2, 3, 4]}, {"id": "o1", "vector": [4, 3, 2, 1]}])
    assert ns.count() == 0


@pytest.mark.parametrize("vector", [[1, 2, 3], [1, 2, 3, 4, 5]])
def test_wrong_dim_on_add_names_both_dims_and_the_fix(ns, vector):
    with pytest.raises(vecns.DimensionMismatchError,
                       match=rf"expected dim=4, got a vector of dim={len(vector)}.*re_extract migration") as info:
        ns.add([{"id": "x", "vector": vector}])
    assert isinstance(info.value, ValueError)
    assert ns.count() == 0


@pytest.mark.parametrize("vector", [[[1, 2, 3, 4], [1, 2, 3, 4]], []])
def test_a_vector_of_the_wrong_shape_is_refused(ns, vector):
    with pytest.raises((vecns.DimensionMismatchError, vecns.InvalidVectorError), match="dim=4|shape"):
        ns.add([{"id": "x", "vector": vector}])
    assert ns.count() == 0


def test_wrong_dim_on_search(ns):
    ns.add(vector_objects(3, 4))
    with pytest.raises(vecns.DimensionMismatchError, match=r"expected dim=4, got a vector of dim=3.*re_extract"):
        ns.search([1, 2, 3])


@pytest.mark.parametrize("vector", [[np.nan, 1, 1, 1], [np.inf, 1, 1, 1], [0, 0, 0, 0], ["a", "b", "c", "d"],
                                    [1 + 2j, 1, 1, 1], [[[1, 2, 3, 4]]], [True, False, True, True]])
def test_bad_vectors_are_refused(ns, vector):
    with pytest.raises(vecns.InvalidVectorError):
        ns.add([{"id": "x", "vector": vector}])
    with pytest.raises(vecns.InvalidVectorError):
        ns.search(vector)
    assert ns.count() == 0


def test_int_and_non_contiguous_vectors_are_cast(ns):
    base = np.arange(1, 33, dtype=np.float64).reshape(4, 8)
    ns.add([{"id": "a", "vector": base[0, ::2]}, {"id": "b", "vector": [1, 2, 3, 4]}])
    np.testing.assert_array_equal(ns.get("a", include_vector=True).vector, [1, 3, 5, 7])


@pytest.mark.parametrize("obj, match", [
    ({"vector": [1, 2, 3, 4]}, "id"),
    ({"id": "", "vector": [1, 2, 3, 4]}, "id"),
    ({"id": 7, "vector": [1, 2, 3, 4]}, "id"),
    ({"id": "a", "vector": [1, 2, 3, 4], "colour": "red"}, "unknown fields"),
    ({"id": "a", "vector": [1, 2, 3, 4], "metadata": "x"}, "dict"),
    ({"id": "a", "vector": [1, 2, 3, 4], "metadata": {"x": float("nan")}}, "non-finite"),
    ({"id": "a", "vector": [1, 2, 3, 4], "metadata": {"x": object()}}, "not JSON"),
    ({"id": "a", "vector": [1, 2, 3, 4], "metadata": {1: "x"}}, "keys must be str"),
    ({"id": "a", "vector": [1, 2, 3, 4], "collection": "../x"}, "collection"),
    ({"id": "a\ud800", "vector": [1, 2, 3, 4]}, "UTF-8"),
    ({"id": "a"}, "no vector"),
])
def test_bad_objects_are_refused(ns, obj, match):
    with pytest.raises((vecns.InvalidObjectError, vecns.InvalidNameError), match=match):
        ns.add([{"id": "ok", "vector": [1, 1, 1, 1]}, obj])
    assert ns.count() == 0


def test_deep_and_huge_metadata_are_refused(ns):
    deep: dict = {}
    cursor = deep
    for _ in range(40):
        cursor["a"] = {}
        cursor = cursor["a"]
    with pytest.raises(vecns.InvalidObjectError, match="deeper"):
        ns.add([{"id": "a", "vector": [1, 1, 1, 1], "metadata": deep}])
    with pytest.raises(vecns.InvalidObjectError, match="bytes of metadata"):
        ns.add([{"id": "a", "vector": [1, 1, 1, 1], "metadata": {"x": "y" * 2_000_000}}])
    assert ns.count() == 0


def test_a_single_dict_is_refused_with_a_hint(ns):
    with pytest.raises(vecns.InvalidObjectError, match="Wrap it in a list"):
        ns.add({"id": "a", "vector": [1, 1, 1, 1]})


def test_empty_add_is_a_no_op(ns):
    assert ns.add([]) == 0
    assert ns.count() == 0


@pytest.mark.parametrize("k", [0, -1, 10**9, 2.5, "3", True])
def test_k_is_validated(ns, k):
    ns.add(vector_objects(3, 4))
    with pytest.raises(vecns.ValidationError, match="k="):
        ns.search([1, 1, 1, 1], k=k)


def test_k_larger_than_count_returns_everything(ns):
    ns.add(vector_objects(5, 4))
    assert len(ns.search([1, 1, 1, 1], k=100)) == 5
    assert ns.search([1, 1, 1, 1], k=1, filters={"ids": ["zzz"]}) == []


def test_search_of_an_empty_namespace(ns):
    assert ns.search([1, 2, 3, 4]) == []


def test_search_returns_scores_best_first_and_text_on_request(store):
    ns = store.create_namespace("docs", dim=3)
    ns.add([{"id": "x", "vector": [1, 0, 0], "text": "ex"}, {"id": "y", "vector": [0, 1, 0], "text": "why"},
            {"id": "xy", "vector": [1, 1, 0], "text": "both"}])
    hits = ns.search([1, 0.1, 0], k=3)
    assert [h.id for h in hits] == ["x", "xy", "y"]
    assert hits[0].score == pytest.approx(1 / np.sqrt(1.01), abs=1e-3)
    assert hits[0].score > hits[1].score > hits[2].score
    assert hits[0].text is None
    assert ns.search([1, 0, 0], k=1, include_text=True)[0].text == "ex"
    assert hits[0].to_dict()["id"] == "x"


@pytest.mark.parametrize("value", ["O'Brien", "x'; DROP TABLE changes; --", "1 OR 1=1", "/* */", "\\'", '"'])
def test_filter_values_are_plain_data(ns, value):
    ns.add([{"id": "a", "vector": [1, 1, 1, 1], "metadata": {"name": value}},
            {"id": "b", "vector": [1, 1, 1, 2], "metadata": {"name": "other"}}])
    hits = ns.search([1, 1, 1, 1], k=5, filters={"metadata": {"name": value}})
    assert [h.id for h in hits] == ["a"]
    assert ns.count(filters={"metadata": {"name": value}}) == 1
    assert ns._store._catalog.fetchone("SELECT count(*) FROM changes")[0] == 2


def test_bad_filters_are_refused(ns):
    with pytest.raises(vecns.FilterError):
        ns.search([1, 1, 1, 1], filters={"sql": "1=1"})
    with pytest.raises(vecns.FilterError):
        ns.count(filters={"metadata": {"a": {"$regex": "x"}}})


def test_filtered_search_exact_and_oversampled_paths_agree_with_brute_force(store):
    n, dim = 3000, 16
    ns = store.create_namespace("docs", dim=dim)
    ns.add(vector_objects(n, dim), batch_size=1000)
    vectors = random_vectors(n, dim)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    rng = np.random.default_rng(5)
    cases = [{"metadata": {"i": {"$lt": 30}}},                      # 1%: exact
             {"metadata": {"g": 3}},                                 # ~14%, 429 matches: exact
             {"collection_ids": ["odd"]}]                            # 50%: oversampled
    for filters in cases:
        allowed = np.array([i for i in range(n) if _matches(i, filters)])
        for _ in range(10):
            q = rng.standard_normal(dim).astype(np.float32)
            truth = allowed[np.argsort(-(unit[allowed] @ (q / np.linalg.norm(q))))[:10]]
            got = [int(h.id[1:]) for h in ns.search(q, k=10, filters=filters)]
            assert len(got) == 10
            assert all(_matches(i, filters) for i in got)
            assert len(set(got) & set(truth.tolist())) >= 8


def test_a_loose_filter_whose_matches_lie_far_from_the_query_widens_until_k_hits(store, monkeypatch):
    # 1,500 objects near +e0 (collection "near") and 1,500 near -e0 ("far"): a query at +e0 filtered to "far"
    # finds none of them in the first oversampled candidates, so the search must widen (or fall back to
    # exact) to return the true 10 nearest "far" objects.
    rng = np.random.default_rng(11)
    dim = 8
    near = rng.normal(0, 0.2, (1500, dim)) + np.eye(dim)[0]
    far = rng.normal(0, 0.2, (1500, dim)) - np.eye(dim)[0]
    ns = store.create_namespace("docs", dim=dim)
    ns.add([{"id": f"n{i}", "vector": v, "collection": "near"} for i, v in enumerate(near)]
           + [{"id": f"f{i}", "vector": v, "collection": "far"} for i, v in enumerate(far)])
    index = store._indexes.get(ns.record, ns.features[0])
    asked: list[int] = []
    search = type(index).search
    monkeypatch.setattr(type(index), "search", lambda self, q, k: asked.append(k) or search(self, q, k))
    query = np.eye(dim, dtype=np.float32)[0]
    hits = ns.search(query, k=10, filters={"collection_ids": ["far"]})
    unit = far / np.linalg.norm(far, axis=1, keepdims=True)
    truth = {f"f{i}" for i in np.argsort(-(unit @ query))[:10]}
    assert len(hits) == 10 and all(h.collection == "far" for h in hits)
    assert len({h.id for h in hits} & truth) >= 9
    assert len(asked) >= 2 and asked == sorted(asked)  # it widened


def _matches(i: int, filters: dict) -> bool:
    if "collection_ids" in filters:
        return i % 2 == 1
    meta = filters["metadata"]
    if "g" in meta:
        return i % 7 == 3
    return i < 30


def test_date_range_filters_on_created_at(ns):
    ns.add([{"id": "old", "vector": [1, 1, 1, 1], "created_at": "2024-01-01T00:00:00Z"},
            {"id": "new", "vector": [1, 1, 1, 2], "created_at": "2025-06-01"}])
    hits = ns.search([1, 1, 1, 1], k=5, filters={"date_range": {"after": "2025-01-01"}})
    assert [h.id for h in hits] == ["new"]
    assert ns.count(filters={"date_range": {"before": "2025-01-01"}}) == 1


def test_namespace_with_several_vector_features(store):
    ns = store.create_namespace("docs", dim=4)
    assert ns.feature().name == "vector"
    with pytest.raises(vecns.ValidationError, match="no feature"):
        ns.feature("nope")
    with pytest.raises(vecns.InvalidObjectError, match="unknown features"):
        ns.add([{"id": "a", "vectors": {"vector": [1, 1, 1, 1], "other": [1, 2]}}])


def test_search_hits_show_the_latest_write_through_the_hit_cache(ns):
    ns.add([{"id": "a", "vector": [1, 0, 0, 0], "metadata": {"v": 1}, "collection": "c1"}])
    assert ns.search([1, 0, 0, 0], k=1)[0].metadata == {"v": 1}  # read from the database, then cached
    ns.upsert([{"id": "a", "vector": [1, 0, 0, 0], "metadata": {"v": 2}, "collection": "c2"}])
    hit = ns.search([1, 0, 0, 0], k=1)[0]
    assert (hit.metadata, hit.collection) == ({"v": 2}, "c2")
    ns.delete("a")
    assert ns.search([1, 0, 0, 0], k=1) == []


def test_the_hit_cache_never_keeps_a_row_read_before_a_concurrent_write():
    from vecns.hitcache import HitCache

    cache = HitCache(max_entries=2)
    generation = cache.generation("ns")
    cache.forget("ns", [1])  # a write lands while a reader is still reading key 1
    cache.fill("ns", {1: "stale"}, generation)
    assert cache.lookup("ns", [1]) == ({}, [1])
    cache.fill("ns", {1: "a", 2: "b", 3: "c"}, cache.generation("ns"))
    assert cache.lookup("ns", [1, 2, 3]) == ({2: "b", 3: "c"}, [1])  # bounded: the oldest entry went
    cache.forget("ns")
    assert cache.lookup("ns", [2, 3]) == ({}, [2, 3])


def test_a_small_namespace_is_searched_exactly_after_updates_and_deletes(store):
    # Removed and replaced nodes stay in the graph as tombstones; a namespace of at most
    # EXACT_MAX_MATCHES objects is searched exactly, so each vector finds itself first whatever the churn.
    rng = np.random.default_rng(3)
    ns = store.create_namespace("churn", dim=16, dtype="f32")
    current = {}
    for _ in range(30):
        batch = {f"o{i}": rng.standard_normal(16).astype(np.float32) for i in rng.choice(400, 20, replace=False)}
        ns.upsert([{"id": i, "vector": v} for i, v in batch.items()])
        current.update(batch)
        gone = [i for i in sorted(current) if rng.random() < 0.02]
        ns.delete(gone)
        for i in gone:
            current.pop(i)
    assert 0 < len(current) <= vecns.namespace.EXACT_MAX_MATCHES and ns.count() == len(current)
    for object_id, vector in current.items():
        assert ns.search(vector, k=1)[0].id == object_id
    ids = sorted(current)
    matrix = np.stack([current[i] for i in ids])
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    query = rng.standard_normal(16).astype(np.float32)
    order = np.argsort(-(unit @ (query / np.linalg.norm(query))), kind="stable")[:10]
    assert [h.id for h in ns.search(query, k=10)] == [ids[j] for j in order]
