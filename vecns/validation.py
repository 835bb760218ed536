"""Checks on everything a caller hands vecns: names, ids, objects, vectors and ``k``.

Each check raises a ``VecnsError`` subclass whose message says what was seen, what was expected and the fix,
before anything is written.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from vecns.errors import (
    DimensionMismatchError,
    InvalidNameError,
    InvalidObjectError,
    InvalidVectorError,
    ValidationError,
)
from vecns.vectors import MAX_K  # one limit for the index and the public API

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
_NAME = re.compile(NAME_PATTERN)
MAX_ID_CHARS = 512
MAX_TEXT_BYTES = 4 * 1024 * 1024
MAX_METADATA_BYTES = 1024 * 1024
MAX_METADATA_DEPTH = 32
F16_MAX = 65504.0
OBJECT_FIELDS = frozenset({"id", "text", "collection", "metadata", "vector", "vectors", "created_at"})


def check_name(kind: str, name: object) -> str:
    """Return ``name`` if it is a valid namespace/alias/collection/feature/model name.

    Raises:
        InvalidNameError: It is not a string matching ``NAME_PATTERN`` (no paths, no spaces, 1–128 chars).
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidNameError(
            f"{kind} name {name!r} is not allowed; expected 1-128 characters of letters, digits, '_', '.' "
            "or '-', starting with a letter or digit (no '/', spaces or '..'). Pick a name like 'docs-v2'."
        )
    if name in (".", "..") or name.endswith("."):
        raise InvalidNameError(f"{kind} name {name!r} may not end with '.'; pick a name like 'docs-v2'.")
    return name


def check_k(k: object) -> int:
    """Return ``k`` if it is an int between 1 and ``MAX_K``.

    Raises:
        ValidationError: It is not an int in that range.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= MAX_K:
        raise ValidationError(f"k={k!r} is not allowed; expected an int from 1 to {MAX_K}.")
    return int(k)


def check_id(value: object) -> str:
    """Return an object id if it is a non-empty string of at most ``MAX_ID_CHARS`` characters."""
    if not isinstance(value, str) or not value or len(value) > MAX_ID_CHARS or "\x00" in value:
        raise InvalidObjectError(
            f"object id {value!r:.80} is not allowed; expected a non-empty string of at most {MAX_ID_CHARS} "
            "characters without NUL bytes."
        )
    _check_utf8("id", value)
    return value


def _check_utf8(field: str, value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidObjectError(
            f"object {field} holds text that is not valid UTF-8 ({exc.reason} at position {exc.start}); "
            "remove lone surrogates before storing it."
        ) from exc


def check_text(object_id: str, text: object, *, required: bool) -> str | None:
    """Validate an object's text; ``required`` when a feature is extracted from it."""
    if text is None:
        if required:
            raise InvalidObjectError(
                f"object {object_id!r} has no text, but this namespace extracts its vectors from text; "
                "give it a non-empty 'text'."
            )
        return None
    if not isinstance(text, str):
        raise InvalidObjectError(f"object {object_id!r} has text of type {type(text).__name__}; expected str.")
    if required and not text.strip():
        raise InvalidObjectError(
            f"object {object_id!r} has empty text; a vector cannot be extracted from it. Give it text or skip it."
        )
    _check_utf8("text", text)
    if len(text) > MAX_TEXT_BYTES // 4 and len(text.encode("utf-8")) > MAX_TEXT_BYTES:
        raise InvalidObjectError(
            f"object {object_id!r} has {len(text.encode('utf-8'))} bytes of text; at most {MAX_TEXT_BYTES} are "
            "accepted (the model reads only its first tokens anyway). Split the text into several objects."
        )
    return text


def check_metadata(object_id: str, metadata: object) -> str | None:
    """Validate metadata and return it as a JSON string (None when absent)."""
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise InvalidObjectError(
            f"object {object_id!r} has metadata of type {type(metadata).__name__}; expected a dict."
        )
    _check_depth(object_id, metadata, 1)
    try:
        encoded = json.dumps(dict(metadata), allow_nan=False, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InvalidObjectError(
            f"object {object_id!r} has metadata that is not JSON ({exc}); use str, int, float (finite), bool, "
            "None, lists and dicts with string keys."
        ) from exc
    _check_utf8("metadata", encoded)
    if len(encoded.encode("utf-8")) > MAX_METADATA_BYTES:
        raise InvalidObjectError(
            f"object {object_id!r} has {len(encoded)} bytes of metadata; at most {MAX_METADATA_BYTES} are accepted."
        )
    return encoded


def _check_depth(object_id: str, value: Any, depth: int) -> None:
    if depth > MAX_METADATA_DEPTH:
        raise InvalidObjectError(
            f"object {object_id!r} has metadata nested deeper than {MAX_METADATA_DEPTH} levels; flatten it."
        )
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidObjectError(
                    f"object {object_id!r} has a metadata key {key!r} of type {type(key).__name__}; keys must be str."
                )
            _check_depth(object_id, item, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_depth(object_id, item, depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidObjectError(f"object {object_id!r} has a non-finite number ({value}) in its metadata.")


def check_timestamp(object_id: str, value: object) -> dt.datetime | None:
    """Parse an optional ``created_at`` (datetime or ISO string; naive means UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidObjectError(
                f"object {object_id!r} has created_at {value!r}; expected an ISO 8601 date-time."
            ) from exc
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if not isinstance(value, dt.datetime):
        raise InvalidObjectError(
            f"object {object_id!r} has created_at of type {type(value).__name__}; expected an ISO 8601 string, "
            "a datetime or a date."
        )
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def as_vectors(value: object, *, dim: int, metric: str, what: str, fix: str, single: bool = False,
               dtype: str = "f32") -> np.ndarray:
    """Turn a vector or a batch of vectors into a C-contiguous float32 (n, dim) array.

    Args:
        value: A 1-D vector or 2-D batch (list, tuple or numpy array of real numbers).
        dim: The dimension the feature is locked to.
        metric: The feature's metric; all-zero vectors are refused under ``cos``.
        what: How the message names the vector's owner.
        fix: What the message suggests when the dimension is wrong.
        single: Accept only one 1-D vector.
        dtype: The scalar type of the index the vectors go to; ``f16`` also refuses components beyond
            float16's range and rows that round to all zero in it.

    Raises:
        DimensionMismatchError: The vector's dimension is not ``dim``.
        InvalidVectorError: Not numeric, not 1-D/2-D, not finite, or zero under cosine.
    """
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise InvalidVectorError(f"{what}: cannot read it as a numeric array ({exc}).") from exc
    if array.dtype.kind not in "fiu" or array.dtype == np.bool_:
        raise InvalidVectorError(
            f"{what}: got values of type {array.dtype}; expected real numbers (float32 is stored)."
        )
    if single and array.ndim != 1:
        raise InvalidVectorError(f"{what}: got an array of shape {array.shape}; expected one vector of shape ({dim},).")
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2:
        raise InvalidVectorError(f"{what}: got an array of shape {array.shape}; expected (dim,) or (n, dim).")
    if array.shape[1] != dim:
        raise DimensionMismatchError(f"{what}: expected dim={dim}, got a vector of dim={array.shape[1]}. {fix}")
    with np.errstate(over="ignore"):  # values beyond float32 become inf and are refused just below
        array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        raise InvalidVectorError(f"{what}: the vector holds NaN or infinite values; expected finite numbers.")
    if metric == "cos" and array.size and (~array.any(axis=1)).any():
        raise InvalidVectorError(
            f"{what}: an all-zero vector has no direction, so cosine similarity is undefined; store a non-zero vector."
        )
    if dtype == "f16" and array.size:
        # Stored rows must also fit the index, or the index could never be rebuilt from the database.
        peak = np.abs(array).max(axis=1)
        if (peak > F16_MAX).any():
            raise InvalidVectorError(
                f"{what}: a component is beyond the float16 range (+-{F16_MAX:g}) of this f16 index; "
                "scale the vectors down, or store them in a namespace created with dtype='f32'."
            )
        if metric == "cos" and (peak.astype(np.float16) == 0).any():
            raise InvalidVectorError(
                f"{what}: the vector rounds to all zero in float16 (largest component {peak.min():g}), so this "
                "f16 index could not rank it under cosine; scale it up or use dtype='f32'."
            )
    return array
