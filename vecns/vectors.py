"""Vector checks, exact search and index-file helpers in numpy alone: no usearch here.

``vecns.index`` wraps usearch with these; they stand on their own for everything that needs no graph:

* ``as_keys``, ``as_matrix`` and ``check_values`` refuse what usearch would silently accept (NaN, inf, zero
  vectors under cosine, negative keys that wrap to 2**64 - 1, f16 overflow);
* ``exact_search`` is the brute-force twin of ``VectorIndex.search``, with the same "higher is better"
  scores (``to_scores``) and a deterministic tie-break;
* ``file_checksum`` and ``cleanup_temp_files`` serve the atomic index save and the checks on open.
"""

from __future__ import annotations

import errno as errno_codes
import hashlib
import numbers
import os
from pathlib import Path

import numpy as np

from vecns.errors import DimensionMismatchError, InvalidVectorError, StoreError, ValidationError

__all__ = [
    "CHUNK_BYTES",
    "DTYPES",
    "MAX_K",
    "METRICS",
    "TEMP_SUFFIX",
    "as_keys",
    "as_matrix",
    "check_choice",
    "check_int",
    "check_k",
    "check_values",
    "cleanup_temp_files",
    "errno_text",
    "exact_search",
    "file_checksum",
    "to_scores",
]

METRICS = ("cos", "ip", "l2sq")
DTYPES = ("f32", "f16", "i8")
MAX_K = 4096
TEMP_SUFFIX = ".tmp"
# Files are read and hashed in pieces of this size.
CHUNK_BYTES = 1 << 20

_MAX_KEY = 2**63
_F16_MAX = float(np.finfo(np.float16).max)
_F32_MAX = float(np.finfo(np.float32).max)


def check_choice(value: object, choices: tuple[str, ...], what: str) -> str:
    """Return ``value`` if it is one of ``choices``.

    Args:
        value: The setting to check.
        choices: The accepted values.
        what: The setting's name, for the message.

    Returns:
        ``value`` as a string.

    Raises:
        ValidationError: ``value`` is not one of ``choices``.
    """
    if value not in choices:
        raise ValidationError(f"{what} {value!r} is not supported; expected one of {', '.join(choices)}")
    return str(value)


def check_int(value: object, what: str, *, low: int, high: int | None = None) -> int:
    """Return ``value`` as an int if it is an integer (not a bool) in ``low..high``.

    Args:
        value: The setting to check.
        what: The setting's name, for the message.
        low: The smallest accepted value.
        high: The largest accepted value, or None for no upper bound.

    Returns:
        ``value`` as an int.

    Raises:
        ValidationError: ``value`` is not an integer, or is out of range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValidationError(f"{what} must be an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise ValidationError(f"{what} must be {bound}, got {value}")
    return value


def check_k(k: object) -> int:
    """Return ``k`` as an int if it is an integer in ``1..MAX_K``.

    Args:
        k: Results wanted per query.

    Returns:
        ``k`` as an int.

    Raises:
        ValidationError: ``k`` is not an integer, or is out of range.
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise ValidationError(f"k must be an int between 1 and {MAX_K}, got {type(k).__name__} {k!r}")
    if not 1 <= int(k) <= MAX_K:
        raise ValidationError(
            f"k={int(k)} is out of range; expected 1 <= k <= {MAX_K}. Ask for at most {MAX_K} results "
            "and page with filters if more are needed."
        )
    return int(k)


def as_keys(keys: object) -> np.ndarray:
    """Return ``keys`` as a 1-D int64 array, refusing anything outside ``[0, 2**63)``.

    Args:
        keys: One key or a 1-D sequence of keys.

    Returns:
        The keys as a 1-D int64 array (empty for an empty input).

    Raises:
        ValidationError: The keys are not integers, not 0-D or 1-D, or outside ``[0, 2**63)``.
    """
    try:
        arr = np.asarray(keys)
    except (OverflowError, ValueError, TypeError) as exc:
        raise ValidationError(f"keys must be integers in [0, 2**63); could not read {keys!r}: {exc}") from exc
    if arr.ndim > 1:
        raise ValidationError(f"keys must be a scalar or a 1-D array, got shape {arr.shape}")
    arr = arr.reshape(-1)
    if arr.size == 0:
        return np.empty(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise ValidationError(f"keys must be integers in [0, 2**63), got dtype {arr.dtype}")
    if arr.dtype.kind == "i" and arr.min() < 0:
        raise ValidationError(f"keys must be integers in [0, 2**63), got {int(arr.min())}")
    if arr.dtype.kind == "u" and int(arr.max()) >= _MAX_KEY:
        raise ValidationError(f"keys must be integers in [0, 2**63), got {int(arr.max())}")
    return arr.astype(np.int64, copy=False)


def as_matrix(vectors: object, dim: int, *, what: str) -> tuple[np.ndarray, bool]:
    """Return ``vectors`` as a C-contiguous float32 (n, dim) array and whether the input was 1-D.

    Args:
        vectors: One vector (dim,) or a batch (n, dim) of real numbers.
        dim: The dimension the vectors must have.
        what: What the vectors are (``"vectors"``, ``"queries"``), for the message.

    Returns:
        ``(matrix, single)``: the (n, dim) float32 array, and whether ``vectors`` was 1-D.

    Raises:
        InvalidVectorError: The input is not a numeric 1-D or 2-D array.
        DimensionMismatchError: The vectors' dimension is not ``dim``.
    """
    try:
        arr = np.asarray(vectors)
    except (ValueError, TypeError) as exc:
        raise InvalidVectorError(f"{what} could not be read as a numeric array: {exc}") from exc
    if arr.dtype.kind not in "iuf":
        raise InvalidVectorError(
            f"{what} have dtype {arr.dtype}; expected real numbers (float32 preferred). "
            "Convert them with numpy before passing them in."
        )
    if arr.ndim not in (1, 2):
        raise InvalidVectorError(f"{what} must be 1-D (dim,) or 2-D (n, dim); got shape {arr.shape}")
    single = arr.ndim == 1
    if single:
        arr = arr.reshape(1, -1)
    if arr.shape[1] != dim:
        raise DimensionMismatchError(
            f"{what} have dim={arr.shape[1]}, but this index is locked to dim={dim}. "
            "Use vectors from the model the index was built with, or build a new index."
        )
    if arr.dtype != np.float32 or not arr.flags.c_contiguous:
        # Casting float64 beyond float32 range would warn; the finiteness check reports it instead.
        with np.errstate(over="ignore", invalid="ignore"):
            arr = np.ascontiguousarray(arr, dtype=np.float32)
    return arr, single


def check_values(arr: np.ndarray, *, metric: str, dtype: str, what: str) -> None:
    """Refuse vectors that usearch would accept but store or rank wrongly.

    Args:
        arr: A float32 (n, dim) array, as ``as_matrix`` returns it.
        metric: The metric the vectors are used with (zero vectors are refused under ``"cos"``).
        dtype: The precision they are stored in (``"f16"`` refuses values beyond its range).
        what: What the vectors are, for the message.

    Raises:
        InvalidVectorError: A row holds NaN or infinity, overflows ``dtype``, or is all zero under cosine.
    """
    # One pass over the data: each row's largest magnitude tells NaN/inf, f16 overflow and (since
    # rounding is monotonic) whether the row rounds to all zeros.
    peak = np.abs(arr).max(axis=1) if arr.size else np.zeros(arr.shape[0], dtype=np.float32)
    limit = _F16_MAX if dtype == "f16" else _F32_MAX
    bad = ~(peak <= limit)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        if not np.isfinite(peak[row]):
            raise InvalidVectorError(
                f"{what}: row {row} contains NaN or infinity; expected finite numbers. "
                "Check the embedding model's output."
            )
        raise InvalidVectorError(
            f"{what}: row {row} has a component beyond the float16 range (+-{_F16_MAX:g}) of this "
            "f16 index; scale the vectors down or use dtype='f32'."
        )
    if metric == "cos":
        zero = (peak.astype(np.float16) if dtype == "f16" else peak) == 0
        if zero.any():
            row = int(np.flatnonzero(zero)[0])
            raise InvalidVectorError(
                f"{what}: row {row} is all zero (after rounding to {dtype}); cosine similarity is "
                "undefined for it. Drop the vector or give it non-zero components."
            )


def to_scores(distances: np.ndarray, metric: str) -> np.ndarray:
    """Turn usearch distances into "higher is better" scores.

    Args:
        distances: Distances as usearch reports them for ``metric``.
        metric: ``"cos"``, ``"ip"`` or ``"l2sq"``.

    Returns:
        ``1 - distance`` for ``cos`` and ``ip`` (cosine similarity, dot product), ``-distance`` for ``l2sq``.
    """
    if metric == "l2sq":
        return -distances
    return 1.0 - distances


def file_checksum(path: str | os.PathLike[str]) -> str:
    """Return the sha256 hex digest of a file, read in 1 MiB chunks.

    Args:
        path: The file to hash.

    Returns:
        The lowercase hex digest.

    Raises:
        StoreError: The file cannot be read.
    """
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                digest.update(chunk)
    except OSError as exc:
        raise StoreError(
            f"cannot read {os.fspath(path)!r} to checksum it ({errno_text(exc)}); "
            "check that the file exists and is readable"
        ) from exc
    return digest.hexdigest()


def errno_text(exc: BaseException) -> str:
    """Describe an OS error for a message: ``errno 28 ENOSPC: No space left on device``.

    Args:
        exc: The exception (its ``errno`` and ``strerror`` when it has them).

    Returns:
        The errno number, its symbolic name and the error's text.
    """
    code = getattr(exc, "errno", None)
    if code is None:
        return f"errno unknown: {exc}"
    return f"errno {code} {errno_codes.errorcode.get(code, '?')}: {getattr(exc, 'strerror', '') or exc}"


def cleanup_temp_files(directory: str | os.PathLike[str]) -> list[Path]:
    """Remove the ``*.tmp`` files an interrupted ``save`` left in ``directory``.

    Only direct children are looked at; sub-directories are left alone.

    Args:
        directory: The index directory.

    Returns:
        The paths removed, sorted.

    Raises:
        StoreError: A leftover file exists but cannot be removed.
    """
    root = Path(directory)
    if not root.is_dir():
        return []
    removed = []
    for entry in sorted(root.iterdir()):
        if entry.name.endswith(TEMP_SUFFIX) and (entry.is_symlink() or entry.is_file()):
            try:
                entry.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise StoreError(
                    f"cannot remove leftover temp file {str(entry)!r} ({errno_text(exc)}); "
                    "remove it by hand"
                ) from exc
            removed.append(entry)
    return removed


def exact_search(
    query: object,
    vectors: object,
    keys: object,
    k: int,
    *,
    metric: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force nearest neighbours in numpy, with the same scores as ``VectorIndex.search``.

    Used for selective filters (few candidates) and as ground truth for recall. Ties are broken by the
    smaller key, so results are deterministic.

    Args:
        query: One query (dim,) or a batch (n, dim).
        vectors: Candidate vectors, shape (m, dim).
        keys: The candidates' keys, shape (m,).
        k: Results wanted per query, 1..MAX_K.
        metric: ``"cos"``, ``"ip"`` or ``"l2sq"``.

    Returns:
        ``(keys, scores)``: int64 and float32 arrays of shape (n, k') with ``k' = min(k, m)``, or (k',) for
        a 1-D query.

    Raises:
        ValidationError: ``k``, ``metric`` or ``keys`` are invalid, or keys and vectors differ in count.
        DimensionMismatchError: The query and the vectors differ in dimension.
        InvalidVectorError: A vector is not finite, or all zero under cosine.
    """
    k = check_k(k)
    metric = check_choice(metric, METRICS, "metric")
    try:
        cand = np.asarray(vectors)
    except (ValueError, TypeError) as exc:
        raise InvalidVectorError(f"candidate vectors could not be read as a numeric array: {exc}") from exc
    if cand.ndim != 2:
        raise InvalidVectorError(f"candidate vectors must be 2-D (m, dim); got shape {cand.shape}")
    cand, _ = as_matrix(cand, cand.shape[1], what="candidate vectors")
    key_arr = as_keys(keys)
    if key_arr.size != cand.shape[0]:
        raise ValidationError(f"got {key_arr.size} keys for {cand.shape[0]} candidate vectors")
    queries, single = as_matrix(query, cand.shape[1], what="queries")
    check_values(queries, metric=metric, dtype="f32", what="queries")
    check_values(cand, metric=metric, dtype="f32", what="candidate vectors")
    out_keys, out_scores = rank_exact(queries, prepare_candidates(cand, metric), key_arr, k, metric=metric)
    if single:
        return out_keys[0], out_scores[0]
    return out_keys, out_scores


def prepare_candidates(vectors: np.ndarray, metric: str) -> np.ndarray:
    """Checked candidate vectors as ``rank_exact`` wants them: unit length for ``cos``, as they are else."""
    if metric == "cos":
        return _unit_rows(vectors)
    return vectors


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    # Scaled by each row's largest magnitude first, so float32 vectors near the type's limit (accepted:
    # they are finite) do not overflow the squared norm.
    scaled = matrix / np.max(np.abs(matrix), axis=1, keepdims=True)
    return scaled / np.linalg.norm(scaled, axis=1, keepdims=True)


def rank_exact(queries: np.ndarray, cand: np.ndarray, key_arr: np.ndarray, k: int, *,
               metric: str) -> tuple[np.ndarray, np.ndarray]:
    """The ranking step of ``exact_search``, on inputs already checked.

    Args:
        queries: float32 (n, dim), finite (non-zero under ``cos``).
        cand: From ``prepare_candidates``, (m, dim).
        key_arr: int64 (m,).
        k: Results wanted per query, already checked.
        metric: ``"cos"``, ``"ip"`` or ``"l2sq"``.

    Returns:
        ``(keys, scores)`` of shape (n, min(k, m)), best first, ties broken by the smaller key.
    """
    count = min(k, cand.shape[0])
    if metric == "cos":
        queries = _unit_rows(queries)
    scores = queries @ cand.T
    if metric == "l2sq":
        sq = (queries * queries).sum(axis=1)[:, None] - 2.0 * scores + (cand * cand).sum(axis=1)[None, :]
        scores = -np.maximum(sq, 0.0)
    out_keys = np.empty((queries.shape[0], count), dtype=np.int64)
    out_scores = np.empty((queries.shape[0], count), dtype=np.float32)
    for row in range(queries.shape[0]):
        row_scores = scores[row]
        pool = np.arange(row_scores.size)
        if count < row_scores.size:
            # Keep every candidate tied with the k-th score so the key tie-break sees all of them.
            kth = np.partition(row_scores, row_scores.size - count)[row_scores.size - count]
            pool = np.flatnonzero(row_scores >= kth)
        order = pool[np.lexsort((key_arr[pool], -row_scores[pool]))[:count]]
        out_keys[row] = key_arr[order]
        out_scores[row] = row_scores[order]
    return out_keys, out_scores
