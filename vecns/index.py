"""The approximate-nearest-neighbour index: a typed, validated wrapper around usearch.

This is the only module that imports usearch. Index files are derived state: the database holds the
vectors, and a damaged or missing file is rebuilt from it. What this module adds on top of usearch:

* every key and vector is validated (usearch silently accepts NaN, inf, zero vectors under cosine,
  wraps key -1 to 2**64 - 1, and allocates ``rows * k`` results for any ``k``), by the numpy-only
  checks in ``vecns.vectors``, which also holds ``exact_search``, ``file_checksum`` and
  ``cleanup_temp_files`` (re-exported here);
* ``save`` is atomic (temp file, fsync, rename, directory fsync) and returns the file's sha256, because
  usearch writes in place and a failed save destroys the previous file;
* ``load`` verifies that checksum and the file header before usearch parses the file, never memory-maps
  (``add`` on a memory-mapped usearch index kills the process), and trusts the header, not the Python
  attributes, which usearch leaves stale after a load;
* scores are "higher is better" for every metric.

Concurrency: a ``VectorIndex`` may be shared between threads. Searches, ``get``, ``contains`` and ``keys``
take a shared lock and run concurrently (usearch searches are read-only on the graph and release the
GIL); ``add`` and ``remove`` take the exclusive lock, so a search never sees a key half-replaced; saves
are serialised among themselves and run alongside searches but not alongside writes.
"""

from __future__ import annotations

import contextlib
import errno as errno_codes
import hashlib
import os
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from usearch.index import Index as _UsearchIndex
from usearch.index import MetricKind as _MetricKind
from usearch.index import ScalarKind as _ScalarKind

from vecns._crash import crashpoint
from vecns.errors import (
    DuplicateIdError,
    IndexCorruptedError,
    InvalidVectorError,
    ObjectNotFoundError,
    StoreError,
    ValidationError,
)
from vecns.vectors import (
    CHUNK_BYTES,
    DTYPES,
    MAX_K,
    METRICS,
    TEMP_SUFFIX,
    as_keys,
    as_matrix,
    check_choice,
    check_int,
    check_k,
    check_values,
    cleanup_temp_files,
    errno_text,
    exact_search,
    file_checksum,
    prepare_candidates,
    rank_exact,
    to_scores,
)

__all__ = [
    "DTYPES",
    "MAX_K",
    "METRICS",
    "VectorIndex",
    "cleanup_temp_files",
    "exact_search",
    "file_checksum",
]

_METRIC_KINDS = {"cos": _MetricKind.Cos, "ip": _MetricKind.IP, "l2sq": _MetricKind.L2sq}
_SCALAR_KINDS = {"f32": _ScalarKind.F32, "f16": _ScalarKind.F16, "i8": _ScalarKind.I8}
_SCALAR_BYTES = {"f32": 4, "f16": 2, "i8": 1}
_USEARCH_ERRNOS = (
    errno_codes.ENOENT,
    errno_codes.EACCES,
    errno_codes.ENOSPC,
    errno_codes.EDQUOT,
    errno_codes.EROFS,
    errno_codes.ENOTDIR,
    errno_codes.EISDIR,
)
_REBUILD_HINT = "vecns rebuilds this index from the database on the next open"
# usearch 2.26 adding on several threads leaves some nodes that no search reaches: building 6 indexes of
# 1,000 random 16-d vectors in adds of 37, 17 vectors were not in the top 10 of a search by themselves,
# none when each add ran on one thread (at 1.4-1.7x the add time). Small adds are the incremental ones
# (ingest batches, catch-up), where that time does not matter; large bulk builds keep every core.
SINGLE_THREAD_ADDS_BELOW = 10_000


class _ReadWriteLock:
    """Many readers or one writer; a waiting writer blocks new readers so writes are not starved."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextlib.contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


def _fsync_directory(directory: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class VectorIndex:
    """An HNSW index of int64 keys to fixed-dimension vectors.

    Args:
        dim: Vector dimension, locked for the index's life.
        metric: ``"cos"``, ``"ip"`` or ``"l2sq"``.
        dtype: Storage precision: ``"f32"``, ``"f16"`` or ``"i8"`` (``"i8"`` only with ``"cos"``: usearch
            normalises i8 vectors, which breaks the other metrics).
        connectivity: HNSW neighbours per node (M).
        expansion_add: Candidate list size while building (ef_construction).
        expansion_search: Candidate list size while searching (ef).
        threads: Threads for batch ``search`` and for an ``add`` of at least ``SINGLE_THREAD_ADDS_BELOW``
            vectors (smaller adds run on one thread); 0 lets usearch use every core. Builds are
            byte-for-byte reproducible only with ``threads=1``.

    Raises:
        ValidationError: A setting is out of range or unsupported.
    """

    def __init__(
        self,
        dim: int,
        *,
        metric: str = "cos",
        dtype: str = "f16",
        connectivity: int = 16,
        expansion_add: int = 128,
        expansion_search: int = 64,
        threads: int = 0,
    ) -> None:
        self._dim = check_int(dim, "dim", low=1, high=2**31 - 1)
        self._metric = check_choice(metric, METRICS, "metric")
        self._dtype = check_choice(dtype, DTYPES, "dtype")
        if self._dtype == "i8" and self._metric != "cos":
            raise ValidationError(
                f"dtype 'i8' works only with metric 'cos' (usearch normalises i8 vectors); got metric "
                f"{self._metric!r}. Use dtype 'f16' or 'f32'."
            )
        self._connectivity = check_int(connectivity, "connectivity", low=2, high=1024)
        self._expansion_add = check_int(expansion_add, "expansion_add", low=1, high=1 << 16)
        self._expansion_search = check_int(expansion_search, "expansion_search", low=1, high=1 << 16)
        self._threads = check_int(threads, "threads", low=0, high=4096)
        self._lock = _ReadWriteLock()
        self._save_lock = threading.Lock()
        self._index = self._new_usearch_index()
        # Keys, vectors and rank_exact's prepared vectors of the current contents, read-only; dropped by
        # every add and remove.
        self._items: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def _new_usearch_index(self) -> _UsearchIndex:
        return _UsearchIndex(
            ndim=self._dim,
            metric=_METRIC_KINDS[self._metric],
            dtype=self._dtype,
            connectivity=self._connectivity,
            expansion_add=self._expansion_add,
            expansion_search=self._expansion_search,
        )

    @property
    def dim(self) -> int:
        """The vector dimension."""
        return self._dim

    @property
    def metric(self) -> str:
        """The metric name."""
        return self._metric

    @property
    def dtype(self) -> str:
        """The storage precision."""
        return self._dtype

    def settings(self) -> dict[str, Any]:
        """Return every constructor argument, so an identical empty index can be built."""
        return {
            "dim": self._dim,
            "metric": self._metric,
            "dtype": self._dtype,
            "connectivity": self._connectivity,
            "expansion_add": self._expansion_add,
            "expansion_search": self._expansion_search,
            "threads": self._threads,
        }

    def __repr__(self) -> str:
        return (
            f"VectorIndex(dim={self._dim}, metric={self._metric!r}, dtype={self._dtype!r}, len={len(self)})"
        )

    def __len__(self) -> int:
        return len(self._index)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        dim: int,
        metric: str,
        dtype: str,
        checksum: str | None,
        **settings: Any,
    ) -> VectorIndex:
        """Read an index file written by ``save``, after checking that it is the expected one.

        The file is read once into memory; the checksum (when given) and the header are checked on those
        bytes before usearch parses them. The result is never memory-mapped, so it can be written to.

        Args:
            path: The index file.
            dim: The dimension the file must have.
            metric: The metric the file must have.
            dtype: The storage precision the file must have.
            checksum: The sha256 hex digest ``save`` returned, or None to skip that check (then a
                flipped byte inside the vectors or graph goes unnoticed).
            **settings: ``expansion_add``, ``expansion_search``, ``threads``; ``connectivity`` is
                accepted but the file's own value wins (the graph was built with it).

        Returns:
            The loaded index.

        Raises:
            IndexCorruptedError: The file is missing, empty, truncated, a symbolic link, fails its
                checksum, or holds an index of another dimension, metric or precision.
            ValidationError: An argument is invalid.
        """
        index = cls(dim, metric=metric, dtype=dtype, **settings)
        target = Path(path)
        expected = f"dim={index.dim}, metric={index.metric}, dtype={index.dtype}"

        def corrupted(seen: str) -> IndexCorruptedError:
            return IndexCorruptedError(
                f"index file {str(target)!r} {seen}; expected a vecns index with {expected}"
                + (f" and sha256 {checksum}" if checksum else "")
                + f". The file is derived state: {_REBUILD_HINT}, or delete it to force that."
            )

        if checksum is not None and not isinstance(checksum, str):
            raise ValidationError(f"checksum must be a sha256 hex string or None, got {type(checksum).__name__}")
        if target.is_symlink():
            raise corrupted("is a symbolic link, which vecns refuses to follow")
        # One read serves the checksum, the header checks and usearch, so a file replaced midway by
        # another writer cannot pass the checks and then be parsed in its new form.
        try:
            data = target.read_bytes()
        except FileNotFoundError as exc:
            raise corrupted("is missing") from exc
        except OSError as exc:
            raise corrupted(f"cannot be read ({errno_text(exc)})") from exc
        if not data:
            raise corrupted("is empty (0 bytes)")
        if checksum is not None:
            seen = hashlib.sha256(data).hexdigest()
            if seen != checksum.lower():
                raise corrupted(f"has sha256 {seen}, which does not match")
        index._check_header(data, corrupted)
        try:
            # Loading from a buffer copies it: the result is a normal, writable index, never a view.
            index._index.load(data)
        except Exception as exc:  # usearch raises RuntimeError/ValueError with free-form text
            raise corrupted(f"could not be parsed by usearch ({type(exc).__name__}: {exc})") from exc
        # The graph's connectivity is fixed in the file; the expansions are runtime knobs it may reset.
        index._connectivity = int(index._index.connectivity)
        index._index.expansion_add = index._expansion_add
        index._index.expansion_search = index._expansion_search
        return index

    def _check_header(self, data: bytes, corrupted: Any) -> None:
        try:
            meta = _UsearchIndex.metadata(data)
        except Exception as exc:  # usearch raises ValueError("End of file reached!") and the like
            raise corrupted(f"has no readable usearch header ({type(exc).__name__}: {exc})") from exc
        if not meta:
            raise corrupted("has no readable usearch header")
        seen = (
            f"dim={meta.get('dimensions')}, metric={meta.get('kind_metric')}, "
            f"dtype={meta.get('kind_scalar')}"
        )
        if (
            meta.get("dimensions") != self._dim
            or meta.get("kind_metric") != _METRIC_KINDS[self._metric]
            or meta.get("kind_scalar") != _SCALAR_KINDS[self._dtype]
            or not meta.get("matrix_included")
        ):
            raise corrupted(f"holds an index with {seen}")
        # The vector matrix precedes the graph; its row count sizes an allocation usearch makes before
        # reading, so a damaged count could ask for terabytes. Check it against the file size first.
        wide = bool(meta.get("matrix_uses_64_bit_dimensions"))
        header_format = "<QQ" if wide else "<II"
        header_size = struct.calcsize(header_format)
        try:
            rows, cols = struct.unpack_from(header_format, data)
        except struct.error as exc:
            raise corrupted(f"has an unreadable vector matrix header ({exc})") from exc
        # usearch records the matrix width in bytes per row, not in scalars.
        matrix_bytes = header_size + rows * cols
        row_bytes = self._dim * _SCALAR_BYTES[self._dtype]
        if cols != row_bytes or rows < meta.get("count_present", 0) or matrix_bytes > len(data):
            raise corrupted(
                f"has a vector matrix header of {rows} rows x {cols} bytes that does not fit its "
                f"{len(data)} bytes and {meta.get('count_present')} vectors"
            )

    def add(self, keys: object, vectors: object) -> None:
        """Insert vectors; a key already present has its vector replaced.

        Args:
            keys: int64 keys in ``[0, 2**63)``, one per row, no repeats.
            vectors: float32 array of shape (n, dim).

        Raises:
            DimensionMismatchError: The vectors' dimension is not the index's.
            InvalidVectorError: A vector is not finite, the wrong shape, out of the f16 range, or all zero
                under cosine.
            ValidationError: A key is out of range, repeated, or the counts differ.
            StoreError: usearch failed to insert (out of memory).
        """
        key_arr = as_keys(keys)
        matrix, single = as_matrix(vectors, self._dim, what="vectors")
        if single and key_arr.size != 1:
            raise InvalidVectorError(f"vectors must be 2-D (n, dim); got shape {np.shape(vectors)}")
        if key_arr.size != matrix.shape[0]:
            raise ValidationError(
                f"got {key_arr.size} keys for {matrix.shape[0]} vectors; expected one key per vector"
            )
        if key_arr.size == 0:
            return
        unique, counts = np.unique(key_arr, return_counts=True)
        if (counts > 1).any():
            raise DuplicateIdError(
                f"key {int(unique[counts > 1][0])} appears {int(counts.max())} times in one add; "
                "expected each key once per batch"
            )
        check_values(matrix, metric=self._metric, dtype=self._dtype, what="vectors")
        with self._lock.write():
            present = key_arr[np.asarray(self._index.contains(key_arr), dtype=bool)]
            try:
                if present.size:
                    self._index.remove(present)
                self._items = None
                threads = 1 if key_arr.size < SINGLE_THREAD_ADDS_BELOW else self._threads
                self._index.add(key_arr, matrix, threads=threads)
            except Exception as exc:  # usearch raises RuntimeError (e.g. allocation failure)
                raise StoreError(
                    f"usearch failed to add {key_arr.size} vectors ({type(exc).__name__}: {exc}); the "
                    f"index is now incomplete: {_REBUILD_HINT}"
                ) from exc

    def remove(self, keys: object) -> int:
        """Remove keys; keys not in the index are ignored.

        Args:
            keys: int64 keys in ``[0, 2**63)``.

        Returns:
            How many keys were removed.

        Raises:
            ValidationError: A key is out of range.
        """
        key_arr = np.unique(as_keys(keys))
        if key_arr.size == 0:
            return 0
        with self._lock.write():
            present = key_arr[np.asarray(self._index.contains(key_arr), dtype=bool)]
            if present.size:
                self._index.remove(present)
                self._items = None
            return int(present.size)

    def search(self, queries: object, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Find the ``k`` nearest keys for each query.

        Scores are "higher is better": ``1 - distance`` for ``cos`` and ``ip`` (so cosine similarity and
        dot product), ``-distance`` for ``l2sq``. Rows are sorted best first. In the rare case that the
        graph yields fewer than ``k'`` hits for a query, the row is padded with key -1 and score -inf.

        Args:
            queries: One query (dim,) or a batch (n, dim).
            k: Results wanted per query, 1..MAX_K.

        Returns:
            ``(keys, scores)``: int64 and float32 arrays of shape (n, k') where
            ``k' = min(k, len(self))``, or (k',) for a 1-D query.

        Raises:
            ValidationError: ``k`` is not an int in 1..MAX_K.
            DimensionMismatchError: The queries' dimension is not the index's.
            InvalidVectorError: A query is not finite, or all zero under cosine.
        """
        k = check_k(k)
        matrix, single = as_matrix(queries, self._dim, what="queries")
        check_values(matrix, metric=self._metric, dtype=self._dtype, what="queries")
        with self._lock.read():
            count = min(k, len(self._index))
            if count == 0 or matrix.shape[0] == 0:
                keys = np.empty((matrix.shape[0], count), dtype=np.int64)
                scores = np.empty((matrix.shape[0], count), dtype=np.float32)
            else:
                result = self._index.search(matrix[0] if single else matrix, count, threads=self._threads)
                keys, scores = _padded_results(result, matrix.shape[0], count, self._metric)
        if single:
            return keys[0], scores[0]
        return keys, scores

    def get(self, keys: object) -> np.ndarray:
        """Return the stored vectors, rounded to the index's precision.

        Args:
            keys: Keys present in the index.

        Returns:
            float32 array of shape (n, dim), in the order of ``keys``. For ``i8`` indexes these are the
            normalised, quantised vectors usearch keeps.

        Raises:
            ObjectNotFoundError: A key is not in the index.
            ValidationError: A key is out of range.
        """
        key_arr = as_keys(keys)
        present, vectors = self.get_present(key_arr)
        if present.size != key_arr.size:
            missing = key_arr[~np.isin(key_arr, present)]
            raise ObjectNotFoundError(
                f"the index has no vector for key(s) {missing[:10].tolist()}"
                f"{' and more' if missing.size > 10 else ''}; expected keys it holds "
                "(check with contains())"
            )
        return vectors

    def get_present(self, keys: object) -> tuple[np.ndarray, np.ndarray]:
        """The keys of ``keys`` that the index holds, with their vectors, read under one lock.

        Unlike ``contains`` followed by ``get``, a remove on another thread cannot take a key away between
        the two, so searching a filter's matching keys never fails on a concurrent delete.

        Args:
            keys: Keys to look up; absent ones are left out.

        Returns:
            ``(present, vectors)``: the present keys (int64, in the order given) and their stored vectors
            (float32, shape (n, dim), rounded as in ``get``).

        Raises:
            ValidationError: A key is out of range.
        """
        key_arr = as_keys(keys)
        with self._lock.read():
            if key_arr.size:
                key_arr = key_arr[np.asarray(self._index.contains(key_arr), dtype=bool).reshape(-1)]
            if key_arr.size == 0:
                return key_arr, np.empty((0, self._dim), dtype=np.float32)
            vectors = self._index.get(key_arr, dtype=np.float32)
        return key_arr, np.asarray(vectors, dtype=np.float32).reshape(key_arr.size, self._dim)

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """Every key (sorted, int64) with its stored vector (float32, rounded as in ``get``), read together.

        One read lock covers both, so a concurrent remove cannot take a key away between them. The arrays
        are read-only and shared until the next add or remove.
        """
        keys, vectors, _ = self._snapshot()
        return keys, vectors

    def search_exact(self, queries: object, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Like ``search``, but exact: numpy over every stored vector instead of the graph.

        Same scores and tie-break (the smaller key) as ``exact_search``. It reaches every vector whatever
        updates and deletes did to the graph, and on a small index costs about what the graph does: the
        stored vectors are read and prepared once per change, not per query.

        Raises:
            DimensionMismatchError: A query of another dimension.
            InvalidVectorError: A query that is not finite, or all zero under ``cos``.
            ValidationError: ``k`` out of range.
        """
        k = check_k(k)
        matrix, single = as_matrix(queries, self._dim, what="queries")
        check_values(matrix, metric=self._metric, dtype="f32", what="queries")
        keys, _, prepared = self._snapshot()
        if keys.size == 0:
            empty = (np.empty((matrix.shape[0], 0), np.int64), np.empty((matrix.shape[0], 0), np.float32))
            return (empty[0][0], empty[1][0]) if single else empty
        out_keys, out_scores = rank_exact(matrix, prepared, keys, k, metric=self._metric)
        return (out_keys[0], out_scores[0]) if single else (out_keys, out_scores)

    def _snapshot(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with self._lock.read():
            cached = self._items
            if cached is not None:
                return cached
            if len(self._index):
                keys = np.sort(np.asarray(self._index.keys[:]).astype(np.int64))
                vectors = np.asarray(self._index.get(keys, dtype=np.float32), dtype=np.float32)
            else:
                keys, vectors = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
            vectors = vectors.reshape(keys.size, self._dim)
            prepared = prepare_candidates(vectors, self._metric) if keys.size else vectors
            for array in (keys, vectors, prepared):
                array.setflags(write=False)
            # Safe under the read lock: no writer runs while it is held.
            self._items = (keys, vectors, prepared)
            return self._items

    def contains(self, keys: object) -> np.ndarray:
        """Return a bool array: is each key in the index?

        Args:
            keys: Keys to look up.

        Returns:
            bool array of shape (n,).

        Raises:
            ValidationError: A key is out of range.
        """
        key_arr = as_keys(keys)
        if key_arr.size == 0:
            return np.empty(0, dtype=bool)
        with self._lock.read():
            return np.asarray(self._index.contains(key_arr), dtype=bool).reshape(-1)

    def keys(self) -> np.ndarray:
        """Return every key in the index, sorted ascending, as int64."""
        with self._lock.read():
            raw = self._index.keys[:] if len(self._index) else np.empty(0)
        return np.sort(np.asarray(raw).astype(np.int64))

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write the index to ``path`` atomically and return the file's sha256.

        The bytes go to ``path + ".tmp"``, which is fsynced and hashed, then renamed over ``path``, and the
        directory is fsynced. A failure before the rename leaves the previous file untouched; after the
        rename the file at ``path`` is the new, complete one. The temp file never outlives a failure
        (a kill -9 can leave it behind: ``cleanup_temp_files`` removes it).

        Args:
            path: Destination file; its directory must exist.

        Returns:
            The sha256 hex digest of the saved bytes, to pass to ``load``.

        Raises:
            StoreError: Writing, syncing or renaming failed (names the path and errno).
        """
        target = Path(path)
        tmp = target.with_name(target.name + TEMP_SUFFIX)
        with self._save_lock, self._lock.read():
            stage = "write"
            try:
                # A planted file or symlink at the temp name must not redirect usearch's fopen.
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                self._usearch_save(tmp)
                crashpoint("index_tmp_written")
                stage = "fsync"
                digest = _hash_and_fsync(tmp)
                crashpoint("index_tmp_fsynced")
                stage = "rename"
                os.replace(tmp, target)
                crashpoint("index_renamed")
                stage = "directory fsync"
                _fsync_directory(target.parent)
                crashpoint("index_dir_fsynced")
            except OSError as exc:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                after = stage == "directory fsync"
                raise StoreError(
                    f"saving index to {str(target)!r} failed at the {stage} step ({errno_text(exc)}); "
                    + (
                        "the new file is in place but may not survive a power loss"
                        if after
                        else "the previous file there is untouched"
                    )
                    + ". Check that the directory exists, is writable and has free space, then save again."
                ) from exc
        return digest

    def _usearch_save(self, tmp: Path) -> None:
        try:
            self._index.save(os.fspath(tmp))
        except OSError:
            raise
        except Exception as exc:  # usearch raises RuntimeError with the C library's text, no errno
            text = str(exc)
            message = f"usearch could not write the file ({type(exc).__name__}: {text}); a full disk is likely"
            code = next((c for c in _USEARCH_ERRNOS if os.strerror(c) in text), None)
            raise (OSError(message) if code is None else OSError(code, message)) from exc


def _padded_results(result: Any, rows: int, count: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Turn usearch matches into (rows, count) keys and scores, padding short rows with -1 and -inf."""
    raw_keys = np.asarray(result.keys)
    raw_distances = np.asarray(result.distances)
    if raw_keys.ndim == 1:
        # A single query comes back as ``Matches``, already cut to the hits found.
        if raw_keys.size == count:
            return raw_keys.astype(np.int64).reshape(1, count), to_scores(raw_distances, metric).reshape(1, count)
        found = np.array([raw_keys.size])
        raw_keys = raw_keys.reshape(1, -1)
        raw_distances = raw_distances.reshape(1, -1)
    else:
        found = np.asarray(result.counts).reshape(-1)
    keys = np.full((rows, count), -1, dtype=np.int64)
    scores = np.full((rows, count), -np.inf, dtype=np.float32)
    width = min(count, raw_keys.shape[1])
    keys[:, :width] = raw_keys[:, :width].astype(np.int64)
    scores[:, :width] = to_scores(raw_distances[:, :width], metric)
    hole = np.arange(count)[None, :] >= found[:, None]
    keys[hole] = -1
    scores[hole] = -np.inf
    return keys, scores


def _hash_and_fsync(path: Path) -> str:
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY)
    try:
        while chunk := os.read(fd, CHUNK_BYTES):
            digest.update(chunk)
        os.fsync(fd)
    finally:
        os.close(fd)
    return digest.hexdigest()
