"""Hypothesis against the public API: names, metadata, vectors, k and filters.

Whatever a caller passes, vecns either does the documented thing or raises its own typed error; no raw
exception escapes, no file appears outside the store directory, and the store is unchanged by a refusal.
Each test shares one store across its examples (opening a store costs far more than one example).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import vecns
from tests.conftest import vector_objects

FIXTURE_SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture,
                                                                HealthCheck.too_slow]}
DIM = 4


def _store_files(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


def _expected_layout(names: set[str]) -> bool:
    """Only the database, its WAL, indexes/ and index files named by namespace id."""
    for name in names:
        parts = Path(name).parts
        if parts[0] not in ("vecns.duckdb", "vecns.duckdb.wal", "indexes"):
            return False
        if len(parts) > 2 or (len(parts) == 2 and not parts[1].startswith("ns_")):
            return False
    return True


# -- names -----------------------------------------------------------------------------------------

names = st.one_of(
    st.text(max_size=140),
    st.text(alphabet="abcXYZ019_.-/\\ \x00:~$'\";", max_size=12),
    st.sampled_from(["..", ".", "../x", "/etc", "C:\\x", "CON", "nul", "a/../b", "~", "$HOME", "x.", "-x", "_x"]),
)


@settings(max_examples=300, **FIXTURE_SETTINGS)
@given(name=names)
def test_any_name_is_accepted_and_round_trips_or_is_refused(tmp_path_factory, name):
    root = tmp_path_factory.getbasetemp() / "fuzz-names"
    store = _shared_store(root)
    outside = sorted(p.name for p in root.iterdir())
    taken = {n.name for n in store.namespaces()} | {a.name for a in store.aliases.list()}
    try:
        ns = store.create_namespace(name, dim=2)
    except vecns.InvalidNameError:
        accepted = False
    except vecns.NamespaceExistsError:
        assert name in taken
        accepted = True
    else:
        accepted = True
        assert ns.name == name and store.namespace(name).id == ns.id
        store.drop_namespace(name)  # keep the shared store small; the name was proven to round-trip
    if accepted and name in taken:
        assert store.namespace(name).name == name
    else:
        with pytest.raises((vecns.InvalidNameError, vecns.NamespaceNotFoundError)):
            store.aliases.set(name, store.namespaces()[0].name if store.namespaces() else "nothing")
    assert sorted(p.name for p in root.iterdir()) == outside
    assert _expected_layout(_store_files(store.path))


_stores: dict[Path, vecns.Store] = {}


def _shared_store(root: Path) -> vecns.Store:
    """One store per test function across all its examples (closed at the end of the session)."""
    if root not in _stores:
        root.mkdir(parents=True, exist_ok=True)
        _stores[root] = vecns.connect(root / "store")
    return _stores[root]


@pytest.fixture(scope="module", autouse=True)
def _close_shared_stores():
    yield
    while _stores:
        _stores.popitem()[1].close()


# -- metadata --------------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children,
                                                                                max_size=4)),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=12), json_values, max_size=6)


@settings(max_examples=200, **FIXTURE_SETTINGS)
@given(metadata=json_objects)
def test_json_metadata_round_trips_through_add_and_get(tmp_path_factory, metadata):
    ns = _namespace(tmp_path_factory, "fuzz-metadata")
    object_id = f"m{ns._store._catalog.current_seq()}"
    ns.add([{"id": object_id, "vector": [1, 2, 3, 4], "metadata": metadata}])
    got = ns.get(object_id).metadata
    assert _same_json(got if got is not None else {}, metadata)


def _same_json(a: object, b: object) -> bool:
    """Equality that also keeps int and float, and bool and int, apart (as JSON text does)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b and type(a) is type(b)


not_json = st.one_of(
    st.sets(st.integers(), min_size=1, max_size=3),
    st.binary(min_size=1, max_size=5),
    st.complex_numbers(allow_nan=False, allow_infinity=False),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), object(), np.int64(1), np.float32(1.5),
                     Path("/x"), range(3), b"", ...]),
)


@settings(max_examples=200, **FIXTURE_SETTINGS)
@given(base=json_objects, bad=not_json, key=st.text(max_size=5), nested=st.booleans(),
       bad_key=st.sampled_from([None, 1, 2.5, ("a",), b"k"]))
def test_metadata_that_is_not_json_is_refused_and_nothing_is_written(tmp_path_factory, base, bad, key, nested,
                                                                      bad_key):
    ns = _namespace(tmp_path_factory, "fuzz-not-json")
    before = ns.count()
    metadata = dict(base)
    if bad_key is not None and nested:
        metadata[bad_key] = 1  # type: ignore[index]
    else:
        metadata[key] = {"inner": [bad]} if nested else bad
    with pytest.raises(vecns.InvalidObjectError):
        ns.add([{"id": f"n{before}", "vector": [1, 2, 3, 4], "metadata": metadata}])
    assert ns.count() == before


def _namespace(tmp_path_factory, name: str, **kwargs) -> vecns.Namespace:
    store = _shared_store(tmp_path_factory.getbasetemp() / name)
    if not store.namespaces():
        store.create_namespace("docs", dim=DIM, dtype="f32", **kwargs)
    return store.namespace("docs")


# -- vectors ---------------------------------------------------------------------------------------

dtypes = st.one_of(hnp.floating_dtypes(), hnp.integer_dtypes(), hnp.unsigned_integer_dtypes(),
                   hnp.complex_number_dtypes(), hnp.boolean_dtypes())
vectors = st.one_of(
    hnp.arrays(dtypes, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)),
    hnp.arrays(dtypes, st.just((DIM,))),
    hnp.arrays(np.float64, st.just((DIM,)), elements=st.floats(allow_nan=True, allow_infinity=True, width=64)),
    st.lists(st.one_of(st.floats(), st.integers(), st.text(max_size=2), st.none()), max_size=6),
)


@settings(max_examples=300, **FIXTURE_SETTINGS)
@given(vector=vectors, dtype=st.sampled_from(["f32", "f16"]))
def test_any_vector_is_stored_exactly_as_float32_or_refused(tmp_path_factory, vector, dtype):
    store = _shared_store(tmp_path_factory.getbasetemp() / "fuzz-vectors")
    name = f"docs-{dtype}"
    if name not in {n.name for n in store.namespaces()}:
        store.create_namespace(name, dim=DIM, dtype=dtype, metric="cos").add(vector_objects(3, DIM))
    ns = store.namespace(name)
    before = ns.count()
    object_id = f"v{store._catalog.current_seq()}"
    try:
        ns.add([{"id": object_id, "vector": vector}])
    except vecns.ValidationError:
        assert ns.count() == before
    else:
        expected = np.asarray(vector).astype(np.float32)
        assert expected.shape == (DIM,) and np.isfinite(expected).all() and expected.any()
        np.testing.assert_array_equal(ns.get(object_id, include_vector=True).vector, expected)
        assert ns.count() == before + 1
    try:
        hits = ns.search(vector, k=3)
    except vecns.ValidationError:
        pass
    else:
        assert 1 <= len(hits) <= 3
    assert len(ns.search([1, 2, 3, 4], k=3)) == 3  # the index stays usable whatever was refused


# -- k ---------------------------------------------------------------------------------------------

ks = st.one_of(st.integers(), st.floats(), st.text(max_size=4), st.none(), st.booleans(),
               st.integers(min_value=-3, max_value=5000).map(np.int64), st.just(2**64), st.just(1.0))


@settings(max_examples=300, **FIXTURE_SETTINGS)
@given(k=ks)
def test_any_k_is_valid_or_a_validation_error(tmp_path_factory, k):
    ns = _namespace(tmp_path_factory, "fuzz-k")
    if ns.count() == 0:
        ns.add(vector_objects(20, DIM))
    try:
        hits = ns.search([1, 2, 3, 4], k=k)
    except vecns.ValidationError as exc:
        assert "k=" in str(exc)
        assert isinstance(k, (bool, float, str, type(None))) or not 1 <= int(k) <= 4096
    else:
        assert not isinstance(k, (bool, float)) and 1 <= int(k) <= 4096
        assert len(hits) == min(int(k), 20)


# -- filters ---------------------------------------------------------------------------------------

filter_keys = st.one_of(st.sampled_from(["collection_ids", "ids", "date_range", "metadata", "after", "before",
                                         "field", "$or", "$and", "$in", "$nin", "$eq", "$ne", "$gt", "$gte",
                                         "$lt", "$lte", "$exists", "$regex", "i", "g", "a.b", "i.x"]),
                        st.text(max_size=8))
filter_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
    st.sampled_from(["2025-01-01", "2025-01-01T00:00:00Z", "odd", "even", "o1", "1; DROP TABLE changes",
                     "' OR 1=1 --", "read_csv('/etc/passwd')", "\ud800"]),
    st.datetimes(), st.dates(),
)
filter_values = st.recursive(
    filter_scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(filter_keys, children, max_size=4)),
    max_leaves=16,
)
filters = st.one_of(st.dictionaries(filter_keys, filter_values, max_size=4), filter_values)


@settings(max_examples=400, **FIXTURE_SETTINGS)
@given(filters=filters)
def test_any_filter_gives_hits_or_a_filter_error(tmp_path_factory, filters):
    ns = _namespace(tmp_path_factory, "fuzz-filters")
    if ns.count() == 0:
        ns.add(vector_objects(40, DIM))
    tables = ns._store._catalog.fetchone("SELECT count(*) FROM information_schema.tables")
    try:
        hits = ns.search([1, 2, 3, 4], k=10, filters=filters)
    except vecns.ValidationError:
        with pytest.raises(vecns.ValidationError):
            ns.count(filters=filters)
    else:
        matching = ns.count(filters=filters)
        assert len(hits) == min(10, matching)
        assert all(h.id.startswith("o") for h in hits)
    assert ns.count() == 40
    assert ns._store._catalog.fetchone("SELECT count(*) FROM information_schema.tables") == tables


@settings(max_examples=60, **FIXTURE_SETTINGS)
@given(object_id=st.text(max_size=600))
def test_any_object_id_round_trips_or_is_refused(tmp_path_factory, object_id):
    ns = _namespace(tmp_path_factory, "fuzz-ids")
    try:
        ns.upsert([{"id": object_id, "vector": [4, 3, 2, 1]}])
    except vecns.InvalidObjectError:
        assert object_id == "" or len(object_id) > 512 or "\x00" in object_id
        return
    assert ns.get(object_id).id == object_id
    assert ns.delete([object_id]) == 1
    with pytest.raises(vecns.ObjectNotFoundError):
        ns.get(object_id)
