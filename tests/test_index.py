"""Tests for vecns.index: validation, search semantics, atomic save, checksummed load, crash safety."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import usearch.index

import vecns
from vecns import _crash
from vecns.errors import (
    ConfigError,
    DimensionMismatchError,
    DuplicateIdError,
    IndexCorruptedError,
    InvalidVectorError,
    ObjectNotFoundError,
    StoreError,
    ValidationError,
    VecnsError,
)
from vecns.index import (
    DTYPES,
    MAX_K,
    METRICS,
    VectorIndex,
    cleanup_temp_files,
    exact_search,
    file_checksum,
)

COMBOS = [(m, d) for m in METRICS for d in DTYPES if d != "i8" or m == "cos"]
TOLERANCE = {"f32": 1e-5, "f16": 2e-2, "i8": 6e-2}
REPO_ROOT = Path(vecns.__file__).resolve().parents[1]


def _vectors(n: int, dim: int, *, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def _filled(
    n: int = 50, dim: int = 8, *, metric: str = "cos", dtype: str = "f16", seed: int = 0
) -> VectorIndex:
    index = VectorIndex(dim, metric=metric, dtype=dtype, threads=1)
    index.add(np.arange(n, dtype=np.int64), _vectors(n, dim, seed=seed))
    return index


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, str, VectorIndex]:
    index = _filled(200, 16)
    path = tmp_path / "ns.usearch"
    return path, index.save(path), index


# --- construction -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"dim": 0},
        {"dim": -3},
        {"dim": 2.5},
        {"dim": True},
        {"dim": 4, "metric": "hamming"},
        {"dim": 4, "dtype": "f64"},
        {"dim": 4, "metric": "ip", "dtype": "i8"},
        {"dim": 4, "metric": "l2sq", "dtype": "i8"},
        {"dim": 4, "connectivity": 1},
        {"dim": 4, "expansion_search": 0},
        {"dim": 4, "threads": -1},
    ],
)
def test_invalid_settings_are_refused(kwargs: dict) -> None:
    dim = kwargs.pop("dim")
    with pytest.raises(ValidationError):
        VectorIndex(dim, **kwargs)


def test_settings_round_trip() -> None:
    index = VectorIndex(5, metric="l2sq", dtype="f32", connectivity=8, expansion_search=99, threads=1)
    assert VectorIndex(**index.settings()).settings() == index.settings()
    assert (index.dim, index.metric, index.dtype, len(index)) == (5, "l2sq", "f32", 0)
    assert "dim=5" in repr(index)


# --- add / get / search round trip --------------------------------------------------------------------


@pytest.mark.parametrize("dim", [1, 3, 97, 384])
@pytest.mark.parametrize(("metric", "dtype"), COMBOS)
def test_add_get_search_round_trip(dim: int, metric: str, dtype: str) -> None:
    n = 40
    vectors = _vectors(n, dim, seed=dim)
    keys = np.arange(1000, 1000 + n, dtype=np.int64)
    index = VectorIndex(dim, metric=metric, dtype=dtype)
    index.add(keys, vectors)

    assert len(index) == n
    np.testing.assert_array_equal(index.keys(), keys)
    stored = index.get(keys[::-1])
    assert stored.dtype == np.float32 and stored.shape == (n, dim)
    expected = vectors[::-1]
    if dtype == "i8":
        expected = expected / np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(stored, expected, atol=TOLERANCE[dtype] * max(1.0, np.abs(expected).max()))

    found_keys, scores = index.search(vectors[:5], 3)
    assert found_keys.shape == scores.shape == (5, 3)
    assert found_keys.dtype == np.int64 and scores.dtype == np.float32
    assert np.isin(found_keys, keys).all()
    assert (np.diff(scores, axis=1) <= 1e-6).all(), "rows must be sorted best first"
    # Scores agree with a brute-force rescoring of the stored vectors, whatever the ties.
    truth_keys, truth_scores = exact_search(vectors[:5], index.get(keys), keys, n, metric=metric)
    for row in range(5):
        rescored = dict(zip(truth_keys[row].tolist(), truth_scores[row].tolist(), strict=True))
        got = np.array([rescored[int(key)] for key in found_keys[row]])
        scale = max(1.0, float(np.abs(truth_scores[row]).max()))
        np.testing.assert_allclose(scores[row], got, atol=TOLERANCE[dtype] * scale * 4)
        assert scores[row, 0] >= truth_scores[row, 0] - TOLERANCE[dtype] * scale * 4


# Inner product does not rank a vector first against itself, so it is left out here.
@pytest.mark.parametrize(("metric", "dtype"), [c for c in COMBOS if c[0] != "ip"])
def test_self_query_finds_itself_first(metric: str, dtype: str) -> None:
    index = _filled(100, 32, metric=metric, dtype=dtype)
    vectors = _vectors(100, 32)
    keys, _ = index.search(vectors, 1)
    np.testing.assert_array_equal(keys[:, 0], np.arange(100))


@pytest.mark.parametrize("seed", range(3))
def test_every_vector_added_in_small_batches_is_reachable(seed: int) -> None:
    # usearch adding on several threads left about 3 in 1,000 such vectors out of their own top 10.
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((1000, 16)).astype(np.float32)
    index = VectorIndex(16, threads=0)
    for start in range(0, 1000, 37):
        index.add(np.arange(start, min(start + 37, 1000)), vectors[start:start + 37])
    keys, _ = index.search(vectors, 10)
    missing = [k for k in range(1000) if k not in keys[k]]
    assert missing == []


def test_one_dimensional_query_returns_one_dimensional_arrays() -> None:
    index = _filled()
    keys, scores = index.search(_vectors(1, 8)[0], 4)
    assert keys.shape == scores.shape == (4,)
    batch_keys, _ = index.search(_vectors(1, 8), 4)
    assert batch_keys.shape == (1, 4)
    np.testing.assert_array_equal(batch_keys[0], keys)


@pytest.mark.parametrize("batch", [1, 7, 1024])
def test_add_in_batches_sizes(batch: int) -> None:
    index = VectorIndex(4, dtype="f32")
    vectors = _vectors(batch, 4, seed=batch)
    index.add(np.arange(batch), vectors)
    assert len(index) == batch
    np.testing.assert_allclose(index.get(np.arange(batch)), vectors, rtol=1e-6)


def test_score_conventions_match_metric_definitions() -> None:
    vectors = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    query = np.array([1.0, 1.0], dtype=np.float32)
    expected = {
        "cos": vectors @ query / np.linalg.norm(vectors, axis=1) / np.linalg.norm(query),
        "ip": vectors @ query,
        "l2sq": -((vectors - query) ** 2).sum(axis=1),
    }
    for metric, want in expected.items():
        index = VectorIndex(2, metric=metric, dtype="f32")
        index.add([0, 1, 2], vectors)
        keys, scores = index.search(query, 3)
        np.testing.assert_allclose(scores, want[keys], rtol=1e-5, atol=1e-5)
        exact_keys, exact_scores = exact_search(query, vectors, [0, 1, 2], 3, metric=metric)
        np.testing.assert_allclose(exact_scores, want[exact_keys], rtol=1e-5, atol=1e-5)


def test_re_adding_a_key_replaces_its_vector() -> None:
    index = VectorIndex(3, dtype="f32")
    index.add([7, 8], np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32))
    index.add([7], np.array([[0, 0, 1]], dtype=np.float32))
    assert len(index) == 2
    np.testing.assert_array_equal(index.get([7]), [[0, 0, 1]])
    keys, scores = index.search(np.array([0, 0, 1.0]), 2)
    assert keys[0] == 7 and scores[0] == pytest.approx(1.0)
    np.testing.assert_array_equal(index.keys(), [7, 8])


def test_remove_counts_present_keys_and_ignores_absent_ones() -> None:
    index = _filled(10, 4)
    assert index.remove([3, 3, 4, 99]) == 2
    assert index.remove([]) == 0
    assert index.remove(3) == 0
    assert len(index) == 8
    np.testing.assert_array_equal(index.contains([2, 3, 4, 99]), [True, False, False, False])
    np.testing.assert_array_equal(index.keys(), [0, 1, 2, 5, 6, 7, 8, 9])
    keys, _ = index.search(_vectors(10, 4), 8)
    assert not np.isin(keys, [3, 4]).any()


def test_get_of_missing_key_raises_not_found() -> None:
    index = _filled(5, 4)
    with pytest.raises(ObjectNotFoundError, match=r"\[42\]") as info:
        index.get([1, 42])
    assert isinstance(info.value, KeyError)
    assert index.get([]).shape == (0, 4)


def test_get_present_leaves_out_absent_keys_and_keeps_the_order() -> None:
    index = _filled(5, 4)
    present, vectors = index.get_present([3, 42, 0, 7])
    np.testing.assert_array_equal(present, [3, 0])
    np.testing.assert_array_equal(vectors, index.get([3, 0]))
    empty_keys, empty = index.get_present([42])
    assert empty_keys.size == 0 and empty.shape == (0, 4)
    assert index.get_present([])[1].shape == (0, 4)


@pytest.mark.parametrize("k", [1, 5, 10, 11, MAX_K])
def test_k_beyond_count_returns_every_key(k: int) -> None:
    index = _filled(10, 4)
    keys, scores = index.search(_vectors(3, 4, seed=9), k)
    assert keys.shape == scores.shape == (3, min(k, 10))
    if k >= 10:
        for row in keys:
            assert sorted(row.tolist()) == list(range(10))


def test_search_on_empty_index_returns_empty_rows() -> None:
    index = VectorIndex(4)
    keys, scores = index.search(_vectors(3, 4), 10)
    assert keys.shape == scores.shape == (3, 0)
    assert index.search(_vectors(1, 4)[0], 10)[0].shape == (0,)
    assert index.keys().shape == (0,)


@pytest.mark.parametrize("k", [0, -1, 10**9, MAX_K + 1, 2.0, True, "3", None])
def test_invalid_k_is_refused(k: object) -> None:
    index = _filled(5, 4)
    with pytest.raises(ValidationError, match="k"):
        index.search(_vectors(1, 4)[0], k)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        exact_search(_vectors(1, 4)[0], _vectors(5, 4), np.arange(5), k, metric="cos")  # type: ignore[arg-type]


# --- input validation -----------------------------------------------------------------------------------


def _bad(value: float, *, row: int = 1) -> np.ndarray:
    vectors = _vectors(3, 4)
    vectors[row, 2] = value
    return vectors


@pytest.mark.parametrize(
    ("vectors", "error", "dtype"),
    [
        (_bad(np.nan), InvalidVectorError, "f16"),
        (_bad(np.inf), InvalidVectorError, "f32"),
        (_bad(-np.inf), InvalidVectorError, "f16"),
        (_bad(1e6), InvalidVectorError, "f16"),
        (np.array([[1, 2, 3, 4], [0, 0, 0, 0], [1, 1, 1, 1]], dtype=np.float32), InvalidVectorError, "f32"),
        (np.full((3, 4), 1e-9, dtype=np.float32), InvalidVectorError, "f16"),
        (np.full((3, 4), 1e300, dtype=np.float64), InvalidVectorError, "f32"),
        (_vectors(3, 5), DimensionMismatchError, "f16"),
        (_vectors(3, 4).reshape(3, 2, 2), InvalidVectorError, "f16"),
        (_vectors(3, 4).astype(np.complex64), InvalidVectorError, "f16"),
        (np.array([["a"] * 4] * 3), InvalidVectorError, "f16"),
        (np.array([[object()] * 4] * 3), InvalidVectorError, "f16"),
        ([[1, 2], [3]], InvalidVectorError, "f16"),
    ],
)
def test_bad_vectors_are_refused_and_nothing_is_added(vectors: object, error: type, dtype: str) -> None:
    index = VectorIndex(4, dtype=dtype)
    with pytest.raises(error):
        index.add([1, 2, 3], vectors)
    assert len(index) == 0
    index.add([9], _vectors(1, 4))
    if isinstance(vectors, np.ndarray) and vectors.shape[0] == 3 and vectors.ndim == 2:
        with pytest.raises(error):
            index.search(vectors, 1)


def test_dimension_mismatch_names_both_dims() -> None:
    index = VectorIndex(384)
    with pytest.raises(DimensionMismatchError, match=r"dim=768.*dim=384"):
        index.add([1], _vectors(1, 768))
    with pytest.raises(DimensionMismatchError, match="768"):
        index.search(_vectors(1, 768)[0], 1)


def test_zero_vector_is_allowed_under_l2sq_and_ip() -> None:
    for metric in ("l2sq", "ip"):
        index = VectorIndex(3, metric=metric, dtype="f32")
        index.add([0], np.zeros((1, 3)))
        assert index.search(np.zeros(3), 1)[0].tolist() == [0]


def test_integer_and_float64_vectors_are_cast() -> None:
    index = VectorIndex(3, dtype="f32")
    index.add([1, 2], np.array([[1, 2, 3], [4, 5, 6]]))
    index.add([3], np.array([[0.5, 0.25, 0.125]], dtype=np.float64))
    np.testing.assert_array_equal(index.get([1, 3]), [[1, 2, 3], [0.5, 0.25, 0.125]])
    # A non-contiguous view is copied, not misread.
    strided = np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2] + 1
    index.add([10, 11, 12, 13], strided)
    np.testing.assert_array_equal(index.get([10, 11, 12, 13]), strided)


@pytest.mark.parametrize(
    ("keys", "error"),
    [
        ([-1, 2, 3], ValidationError),
        ([2**63, 2, 3], ValidationError),
        ([2**64, 2, 3], ValidationError),
        (np.array([1.0, 2.0, 3.0]), ValidationError),
        (["a", "b", "c"], ValidationError),
        ([True, False, True], ValidationError),
        ([1, 2], ValidationError),
        ([[1, 2, 3]], ValidationError),
        ([1, 2, 1], DuplicateIdError),
    ],
)
def test_bad_keys_are_refused(keys: object, error: type) -> None:
    index = VectorIndex(4)
    with pytest.raises(error):
        index.add(keys, _vectors(3, 4))
    assert len(index) == 0


@pytest.mark.parametrize("keys", [[-1], [2**63], np.array([2**64 - 1], dtype=np.uint64)])
def test_out_of_range_keys_are_refused_by_every_method(keys: object) -> None:
    index = _filled(5, 4)
    for method in (index.remove, index.get, index.contains):
        with pytest.raises(ValidationError):
            method(keys)
    assert len(index) == 5


def test_largest_key_round_trips() -> None:
    index = VectorIndex(2, dtype="f32")
    big = np.array([2**63 - 1, 0], dtype=np.int64)
    index.add(big, np.array([[1, 0], [0, 1]], dtype=np.float32))
    np.testing.assert_array_equal(index.keys(), [0, 2**63 - 1])
    assert index.search(np.array([1.0, 0.0]), 1)[0].tolist() == [2**63 - 1]


def test_single_vector_needs_single_key() -> None:
    index = VectorIndex(4)
    index.add([5], _vectors(1, 4)[0])
    assert index.keys().tolist() == [5]
    with pytest.raises(InvalidVectorError):
        index.add([6, 7], _vectors(1, 4)[0])


# --- exact search ---------------------------------------------------------------------------------------


def test_exact_search_breaks_ties_by_key_and_clamps_k() -> None:
    vectors = np.array([[1, 0], [1, 0], [0, 1], [1, 0]], dtype=np.float32)
    keys, scores = exact_search(np.array([1.0, 0.0]), vectors, [30, 10, 5, 20], 10, metric="cos")
    assert keys.tolist() == [10, 20, 30, 5]
    np.testing.assert_allclose(scores, [1, 1, 1, 0], atol=1e-6)
    top2, _ = exact_search(np.array([1.0, 0.0]), vectors, [30, 10, 5, 20], 2, metric="cos")
    assert top2.tolist() == [10, 20]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((np.ones(3), np.ones((4, 3)), np.arange(3)), ValidationError),
        ((np.ones(2), np.ones((4, 3)), np.arange(4)), DimensionMismatchError),
        ((np.ones(3), np.ones(3), np.arange(1)), InvalidVectorError),
        ((np.zeros(3), np.ones((4, 3)), np.arange(4)), InvalidVectorError),
        ((np.ones(3), np.full((4, 3), np.nan), np.arange(4)), InvalidVectorError),
    ],
)
def test_exact_search_validates_inputs(args: tuple, error: type) -> None:
    with pytest.raises(error):
        exact_search(*args, 2, metric="cos")


def test_hnsw_recall_at_10_against_exact_search() -> None:
    n, dim, queries = 5000, 64, 200
    vectors = _vectors(n, dim, seed=1)
    keys = np.arange(n, dtype=np.int64)
    # Gaussian noise is harder than real embeddings: the default ef=64 reaches only ~0.90 here.
    index = VectorIndex(dim, metric="cos", dtype="f16", expansion_search=128)
    index.add(keys, vectors)
    query = _vectors(queries, dim, seed=2)
    approx, _ = index.search(query, 10)
    truth, _ = exact_search(query, vectors, keys, 10, metric="cos")
    pairs = zip(approx.tolist(), truth.tolist(), strict=True)
    recall = np.mean([len(set(a) & set(t)) / 10 for a, t in pairs])
    assert recall >= 0.95, f"recall@10 = {recall:.3f}"


# --- save and load --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("metric", "dtype"), COMBOS)
def test_save_then_load_gives_identical_results(tmp_path: Path, metric: str, dtype: str) -> None:
    index = _filled(300, 24, metric=metric, dtype=dtype)
    index.remove([5, 6])
    path = tmp_path / "a.usearch"
    digest = index.save(path)
    assert digest == file_checksum(path)
    assert not list(tmp_path.glob("*.tmp"))
    loaded = VectorIndex.load(path, dim=24, metric=metric, dtype=dtype, checksum=digest, threads=1)
    assert (loaded.dim, loaded.metric, loaded.dtype, len(loaded)) == (24, metric, dtype, 298)
    np.testing.assert_array_equal(loaded.keys(), index.keys())
    np.testing.assert_array_equal(loaded.get(loaded.keys()), index.get(index.keys()))
    query = _vectors(20, 24, seed=5)
    for got, want in zip(loaded.search(query, 10), index.search(query, 10), strict=True):
        np.testing.assert_array_equal(got, want)
    # The loaded index is writable (never a memory-mapped view, on which usearch's add crashes).
    loaded.add([1000], _vectors(1, 24, seed=6))
    assert len(loaded) == 299


def test_save_is_deterministic_with_one_thread(tmp_path: Path) -> None:
    first = _filled(500, 16).save(tmp_path / "a.usearch")
    second = _filled(500, 16).save(tmp_path / "b.usearch")
    assert first == second


def test_save_of_empty_index_loads(tmp_path: Path) -> None:
    digest = VectorIndex(4).save(tmp_path / "e.usearch")
    loaded = VectorIndex.load(tmp_path / "e.usearch", dim=4, metric="cos", dtype="f16", checksum=digest)
    assert len(loaded) == 0


def test_load_applies_search_settings(saved: tuple[Path, str, VectorIndex]) -> None:
    path, digest, _ = saved
    loaded = VectorIndex.load(
        path, dim=16, metric="cos", dtype="f16", checksum=digest, expansion_search=200, threads=1
    )
    assert loaded.settings()["expansion_search"] == 200


def test_load_reports_the_files_connectivity(tmp_path: Path) -> None:
    index = VectorIndex(16, connectivity=8, expansion_add=40)
    index.add(np.arange(300), _vectors(300, 16))
    digest = index.save(tmp_path / "c.usearch")
    loaded = VectorIndex.load(
        tmp_path / "c.usearch", dim=16, metric="cos", dtype="f16", checksum=digest, connectivity=32,
        expansion_add=50,
    )
    assert loaded.settings()["connectivity"] == 8
    assert loaded.settings()["expansion_add"] == 50
    loaded.add(np.arange(300, 600), _vectors(300, 16, seed=1))
    assert len(loaded) == 600


def _assert_corrupted(path: Path, **expect: object) -> IndexCorruptedError:
    kwargs = {"dim": 16, "metric": "cos", "dtype": "f16", "checksum": None, **expect}
    with pytest.raises(IndexCorruptedError) as info:
        VectorIndex.load(path, **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert str(path) in message and "rebuild" in message
    return info.value


def test_checksum_mismatch_is_refused(saved: tuple[Path, str, VectorIndex]) -> None:
    path, digest, _ = saved
    error = _assert_corrupted(path, checksum="0" * 64)
    assert digest in str(error)


def test_flipped_bytes_are_caught_by_the_checksum(saved: tuple[Path, str, VectorIndex]) -> None:
    path, digest, _ = saved
    original = path.read_bytes()
    rng = np.random.default_rng(7)
    for position in rng.choice(len(original), size=100, replace=False):
        damaged = bytearray(original)
        damaged[position] ^= 1 << int(rng.integers(8))
        path.write_bytes(bytes(damaged))
        _assert_corrupted(path, checksum=digest)


@pytest.mark.parametrize("with_checksum", [True, False])
def test_truncated_files_are_refused(saved: tuple[Path, str, VectorIndex], with_checksum: bool) -> None:
    path, digest, _ = saved
    original = path.read_bytes()
    offsets = sorted({*np.linspace(1, len(original) - 1, 20).astype(int).tolist(), 7, 8, len(original) - 1})
    for offset in offsets:
        path.write_bytes(original[:offset])
        _assert_corrupted(path, checksum=digest if with_checksum else None)


def test_header_damage_is_refused_without_checksum(saved: tuple[Path, str, VectorIndex]) -> None:
    path, _, _ = saved
    original = path.read_bytes()
    for position in (0, 1, 2, 3, 4, 5, 6, 7):
        damaged = bytearray(original)
        damaged[position] ^= 0xFF
        path.write_bytes(bytes(damaged))
        _assert_corrupted(path)


def test_empty_missing_and_symlinked_files_are_refused(
    saved: tuple[Path, str, VectorIndex], tmp_path: Path
) -> None:
    path, digest, _ = saved
    assert "missing" in str(_assert_corrupted(tmp_path / "nope.usearch"))
    link = tmp_path / "link.usearch"
    link.symlink_to(path)
    assert "symbolic link" in str(_assert_corrupted(link, checksum=digest))
    path.write_bytes(b"")
    assert "empty" in str(_assert_corrupted(path))


@pytest.mark.parametrize(
    "expect",
    [{"dim": 17}, {"dim": 8}, {"metric": "l2sq"}, {"metric": "ip"}, {"dtype": "f32"}, {"dtype": "i8"}],
)
def test_file_of_another_dim_metric_or_dtype_is_refused(
    saved: tuple[Path, str, VectorIndex], expect: dict
) -> None:
    path, digest, _ = saved
    for checksum in (digest, None):
        error = _assert_corrupted(path, checksum=checksum, **expect)
        assert "dim=16" in str(error)


def test_checksum_is_case_insensitive_and_must_be_a_string(saved: tuple[Path, str, VectorIndex]) -> None:
    path, digest, _ = saved
    loaded = VectorIndex.load(path, dim=16, metric="cos", dtype="f16", checksum=digest.upper())
    assert len(loaded) == 200
    with pytest.raises(ValidationError, match="checksum"):
        VectorIndex.load(path, dim=16, metric="cos", dtype="f16", checksum=bytes.fromhex(digest))  # type: ignore[arg-type]


def test_directory_in_place_of_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dir.usearch"
    path.mkdir()
    assert "cannot be read" in str(_assert_corrupted(path))


def test_garbage_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "g.usearch"
    path.write_bytes(os.urandom(5000))
    _assert_corrupted(path)


# --- save faults ----------------------------------------------------------------------------------------


class _Injector:
    """Fail the n-th filesystem step of a save (usearch write, fsync, rename) with an OSError."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail_at: int, code: int) -> None:
        self.calls = 0
        self.fail_at = fail_at
        self.code = code
        real_fsync, real_replace, real_save = os.fsync, os.replace, usearch.index.Index.save

        def fsync(fd: int) -> None:
            self._step()
            real_fsync(fd)

        def replace(src: object, dst: object) -> None:
            self._step()
            real_replace(src, dst)

        def save(index: object, path: str, *args: object, **kwargs: object) -> None:
            if self._counts():
                # What usearch does on a full disk: a partial file, then an error without an errno.
                real_save(index, path, *args, **kwargs)
                with open(path, "r+b") as handle:
                    handle.truncate(os.path.getsize(path) // 2)
                raise RuntimeError("Failed to serialize into stream")
            real_save(index, path, *args, **kwargs)

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(usearch.index.Index, "save", save)

    def _counts(self) -> bool:
        self.calls += 1
        return self.calls == self.fail_at

    def _step(self) -> None:
        if self._counts():
            raise OSError(self.code, os.strerror(self.code))


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO])
def test_save_faults_leave_previous_file_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    path = tmp_path / "ns.usearch"
    old_digest = _filled(100, 16).save(path)
    new = _filled(150, 16, seed=3)
    failures = 0
    for fail_at in range(1, 20):
        with monkeypatch.context() as patch:
            injector = _Injector(patch, fail_at, code)
            try:
                new_digest = new.save(path)
            except StoreError as exc:
                failures += 1
                message = str(exc)
                assert str(path) in message
                renamed = "directory fsync" in message
                assert "errno" in message
                if fail_at > 1:
                    assert errno.errorcode[code] in message
            else:
                break
        assert injector.calls == fail_at, "the save stops at the first failing step"
        assert not list(tmp_path.glob("*.tmp")), f"temp file left after failure at step {fail_at}"
        current = file_checksum(path)
        # Only a failure after the rename (the directory fsync) may leave the new file in place.
        if renamed:
            assert current != old_digest
            assert len(VectorIndex.load(path, dim=16, metric="cos", dtype="f16", checksum=current)) == 150
        else:
            assert current == old_digest
            assert len(VectorIndex.load(path, dim=16, metric="cos", dtype="f16", checksum=old_digest)) == 100
    else:
        pytest.fail("save never completed")
    assert failures == 4  # usearch write, file fsync, rename, directory fsync
    assert new_digest == file_checksum(path)
    assert not list(tmp_path.glob("*.tmp"))


_FULL_DISK_CHILD = """
import json, resource, signal, sys
import numpy as np
from pathlib import Path
from vecns.errors import StoreError
from vecns.index import VectorIndex, file_checksum
path = Path(sys.argv[1])
old = VectorIndex(16)
old.add(np.arange(100), np.random.default_rng(0).standard_normal((100, 16)))
old_digest = old.save(path)
new = VectorIndex(16)
new.add(np.arange(1000), np.random.default_rng(1).standard_normal((1000, 16)))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size + 1000, resource.RLIM_INFINITY))
try:
    new.save(path)
    error = None
except StoreError as exc:
    error = str(exc)
print(json.dumps({"error": error, "intact": file_checksum(path) == old_digest}))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX only")
def test_real_short_write_in_usearch_leaves_previous_file_intact(tmp_path: Path) -> None:
    # A file-size limit makes usearch's own fwrite fail part-way, like a full disk does.
    path = tmp_path / "ns.usearch"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-c", _FULL_DISK_CHILD, str(path)]
    child = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert child.returncode == 0, child.stderr
    result = json.loads(child.stdout)
    assert result["error"] is not None and str(path) in result["error"] and "write step" in result["error"]
    assert result["intact"] is True
    assert not list(tmp_path.glob("*.tmp"))
    assert len(VectorIndex.load(path, dim=16, metric="cos", dtype="f16", checksum=None)) == 100


def test_save_replaces_a_planted_temp_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    path = tmp_path / "ns.usearch"
    (tmp_path / "ns.usearch.tmp").symlink_to(victim)
    digest = _filled(10, 16).save(path)
    assert victim.read_text() == "keep me"
    assert not path.is_symlink() and file_checksum(path) == digest


def test_save_into_missing_directory_raises_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="ENOENT"):
        _filled(10, 4).save(tmp_path / "missing" / "x.usearch")


def test_cleanup_temp_files_removes_only_leftovers(tmp_path: Path) -> None:
    (tmp_path / "a.usearch.tmp").write_bytes(b"partial")
    (tmp_path / "b.usearch").write_bytes(b"keep")
    (tmp_path / "dir.tmp").mkdir()
    (tmp_path / "dangling.tmp").symlink_to(tmp_path / "nowhere")
    removed = cleanup_temp_files(tmp_path)
    assert removed == [tmp_path / "a.usearch.tmp", tmp_path / "dangling.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.usearch", "dir.tmp"]
    assert cleanup_temp_files(tmp_path / "absent") == []


def test_file_checksum_of_missing_file_raises_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="ENOENT"):
        file_checksum(tmp_path / "absent")


# --- kill -9 during save --------------------------------------------------------------------------------

_CHILD = """
import sys
import numpy as np
from vecns.index import VectorIndex
index = VectorIndex(16, threads=1)
index.add(np.arange(150), np.random.default_rng(3).standard_normal((150, 16)).astype(np.float32))
index.save(sys.argv[1])
print("saved")
"""


@pytest.mark.parametrize(
    ("label", "survivor"),
    [
        ("index_tmp_written", "old"),
        ("index_tmp_fsynced", "old"),
        ("index_renamed", "new"),
        ("index_dir_fsynced", "new"),
    ],
)
def test_kill_during_save_keeps_a_whole_index(tmp_path: Path, label: str, survivor: str) -> None:
    path = tmp_path / "ns.usearch"
    old_digest = _filled(100, 16).save(path)
    env = {**os.environ, "VECNS_CRASH": f"{label}:1", "PYTHONPATH": str(REPO_ROOT)}
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)], env=env, capture_output=True, text=True, timeout=60
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert "saved" not in child.stdout
    leftovers = cleanup_temp_files(tmp_path)
    assert [p.name for p in leftovers] == (["ns.usearch.tmp"] if survivor == "old" else [])
    if survivor == "old":
        loaded = VectorIndex.load(path, dim=16, metric="cos", dtype="f16", checksum=old_digest)
        assert len(loaded) == 100
    else:
        loaded = VectorIndex.load(path, dim=16, metric="cos", dtype="f16", checksum=None)
        assert len(loaded) == 150


def test_crashpoint_fires_on_the_nth_hit_only(tmp_path: Path) -> None:
    script = "from vecns._crash import crashpoint\nfor i in range(5):\n    print(i, flush=True); crashpoint('x')"
    env = {**os.environ, "VECNS_CRASH": "y:1, x:3", "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-c", script]
    child = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert child.stdout.split() == ["0", "1", "2"]


@pytest.mark.parametrize("spec", ["x", "x:0", "x:-1", ":2", "x:two", "a:1,b"])
def test_malformed_crash_spec_is_refused(monkeypatch: pytest.MonkeyPatch, spec: str) -> None:
    monkeypatch.setenv("VECNS_CRASH", spec)
    _crash._reset_for_tests()
    try:
        with pytest.raises(ConfigError, match="VECNS_CRASH"):
            _crash.crashpoint("x")
    finally:
        monkeypatch.delenv("VECNS_CRASH")
        _crash._reset_for_tests()


def test_crashpoint_without_env_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VECNS_CRASH", raising=False)
    _crash._reset_for_tests()
    for _ in range(3):
        _crash.crashpoint("index_tmp_written")
    assert _crash._targets == {}


# --- threads --------------------------------------------------------------------------------------------


def test_concurrent_searches_match_serial_results() -> None:
    index = _filled(2000, 32)
    queries = _vectors(64, 32, seed=11)
    expected = index.search(queries, 10)
    results: list[tuple[np.ndarray, np.ndarray]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(5):
                results.append(index.search(queries, 10))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == 40
    for keys, scores in results:
        np.testing.assert_array_equal(keys, expected[0])
        np.testing.assert_array_equal(scores, expected[1])


def test_writers_and_readers_in_threads_see_whole_keys() -> None:
    index = VectorIndex(16, dtype="f32")
    index.add(np.arange(100), _vectors(100, 16))
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        try:
            for step in range(30):
                keys = np.arange(offset + step * 10, offset + step * 10 + 10)
                index.add(keys, _vectors(10, 16, seed=step))
                index.add(keys[:5], _vectors(5, 16, seed=step + 100))
                index.remove(keys[5:])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def reader() -> None:
        try:
            while not stop.is_set():
                keys, scores = index.search(_vectors(4, 16, seed=1), 5)
                assert (keys >= 0).all() and np.isfinite(scores).all()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    readers = [threading.Thread(target=reader) for _ in range(4)]
    writers = [threading.Thread(target=writer, args=(1000 * (i + 1),)) for i in range(2)]
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    for thread in readers:
        thread.join()
    assert not errors
    assert len(index) == 100 + 2 * 30 * 5


def test_every_error_is_a_vecns_error() -> None:
    index = _filled(5, 4)
    calls = [
        lambda: index.add([1], [[np.nan] * 4]),
        lambda: index.search([1, 2], 1),
        lambda: index.search(np.ones(4), 0),
        lambda: index.get([77]),
        lambda: index.remove([-5]),
        lambda: VectorIndex.load("/nonexistent/x", dim=4, metric="cos", dtype="f16", checksum=None),
    ]
    for call in calls:
        with pytest.raises(VecnsError):
            call()


def test_items_returns_every_key_with_its_vector() -> None:
    index = VectorIndex(8, dtype="f32", threads=1)
    assert [a.shape for a in index.items()] == [(0,), (0, 8)]
    vectors = _vectors(50, 8)
    index.add(np.arange(50)[::-1], vectors[::-1])
    index.remove([3, 7])
    keys, stored = index.items()
    np.testing.assert_array_equal(keys, [k for k in range(50) if k not in (3, 7)])
    assert keys.dtype == np.int64 and stored.dtype == np.float32
    np.testing.assert_allclose(stored, index.get(keys))
    np.testing.assert_allclose(stored, vectors[keys], atol=1e-6)


def test_items_are_shared_read_only_until_the_next_write() -> None:
    index = VectorIndex(8, dtype="f32", threads=1)
    index.add(np.arange(10), _vectors(10, 8))
    first = index.items()
    assert index.items()[1] is first[1] and not first[0].flags.writeable and not first[1].flags.writeable
    index.add([20], _vectors(1, 8, seed=5))
    assert index.items()[1] is not first[1] and 20 in index.items()[0]
    current = index.items()
    index.remove([999])  # nothing removed: nothing changes
    assert index.items()[1] is current[1]
    index.remove([20])
    assert 20 not in index.items()[0]
