"""Loading objects from a JSONL, Parquet or CSV file into a namespace, batch by batch.

DuckDB reads the file (see ``vecns.catalog.files``); each batch of rows becomes objects and is written
with ``Namespace.add`` (or ``upsert``), so memory stays bounded whatever the file size.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vecns.catalog.files import FILE_FORMATS, FileRows, format_of
from vecns.errors import InvalidObjectError, ValidationError, VecnsError
from vecns.namespace import DEFAULT_BATCH_SIZE
from vecns.validation import check_name

if TYPE_CHECKING:
    from vecns.namespace import Namespace

__all__ = ["FILE_FORMATS", "IngestReport", "ingest_file"]

Progress = Callable[[int, "int | None"], "bool | None"]


@dataclass(frozen=True)
class IngestReport:
    """What one ``ingest_file`` call wrote."""

    namespace: str
    path: str
    file_format: str
    count: int
    seconds: float
    cancelled: bool = False

    @property
    def docs_per_second(self) -> float:
        """Objects written per second of wall time (0 when nothing was timed)."""
        return self.count / self.seconds if self.seconds > 0 else 0.0

    def __repr__(self) -> str:
        return (f"IngestReport({self.namespace!r}, count={self.count}, seconds={self.seconds:.3f}, "
                f"cancelled={self.cancelled})")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (``docs_per_second`` included)."""
        return {"namespace": self.namespace, "path": self.path, "file_format": self.file_format,
                "count": self.count, "seconds": self.seconds, "docs_per_second": self.docs_per_second,
                "cancelled": self.cancelled}


@dataclass(frozen=True)
class _Fields:
    id: str
    text: str | None
    collection_field: str | None
    collection: str | None
    vector: str | None
    metadata: tuple[str, ...]


def ingest_file(namespace: Namespace, path: str | Path, *, file_format: str | None = None, id_field: str = "id",
                text_field: str = "text", collection_field: str | None = None, collection: str | None = None,
                metadata_fields: Sequence[str] | None = None, vector_field: str = "vector",
                batch_size: int = DEFAULT_BATCH_SIZE, upsert: bool = False, progress: Progress | None = None,
                clock: Callable[[], float] = time.perf_counter) -> IngestReport:
    """Read a file's rows and write them into ``namespace`` as objects, one batch per transaction.

    Each row becomes ``{"id", "text", "collection", "metadata"[, "vector"]}``. Integer ids are turned into
    strings. Metadata gets the ``metadata_fields`` columns, or by default every column not used otherwise;
    null values are left out, dates and times become ISO 8601 strings.

    Args:
        namespace: Where to write.
        path: A JSONL, Parquet or CSV file (optionally ``.gz`` / ``.zst`` compressed).
        file_format: ``jsonl``, ``parquet`` or ``csv``; default: from the extension.
        id_field: Column holding each object's id.
        text_field: Column holding the text (required when the namespace extracts vectors from text).
        collection_field: Column holding each object's collection; default: ``collection`` when present.
        collection: One collection for every object instead of a column.
        metadata_fields: Columns that go into metadata; default: all columns not used otherwise.
        vector_field: Column holding the vector, for namespaces whose vectors the caller brings.
        batch_size: Rows read and written per transaction.
        upsert: Replace objects whose id exists instead of refusing them.
        progress: Called after each batch with (rows written, total rows); returning ``False`` stops at that
            batch boundary. The total is counted first only when a callback is given.
        clock: Seconds counter used for the timing (injectable for tests).

    Returns:
        The count written, the time taken, and whether ``progress`` stopped it.

    Raises:
        ValidationError: The file cannot be read, or a named column is missing.
        InvalidObjectError: A row has no usable id, or a value that cannot be stored.
        ObjectExistsError: Without ``upsert``, an id exists already (batches before it stay written).
    """
    if collection is not None and collection_field is not None:
        raise ValidationError("give either collection (one for every object) or collection_field, not both.")
    if collection is not None:
        check_name("collection", collection)
    file_format = file_format or format_of(path)
    start = clock()
    written = 0
    cancelled = False
    with FileRows(path, file_format=file_format) as rows:
        fields = _plan_fields(namespace, rows, id_field=id_field, text_field=text_field,
                              collection_field=collection_field, collection=collection,
                              metadata_fields=metadata_fields, vector_field=vector_field)
        total = rows.count() if progress is not None else None
        write = namespace.upsert if upsert else namespace.add
        for batch in rows.batches(batch_size):
            objects = [_object(row, fields, written + i + 1, rows.path) for i, row in enumerate(batch)]
            try:
                written += write(objects, batch_size=batch_size)
            except VecnsError as exc:
                if written == 0:
                    raise
                raise type(exc)(
                    f"{exc} ({written} objects from the start of {str(rows.path)!r} were written before this "
                    "batch; rerun with upsert to continue.)"
                ) from exc
            if progress is not None and progress(written, total) is False:
                cancelled = True
                break
    return IngestReport(namespace.name, str(path), file_format, written, clock() - start, cancelled)


def _plan_fields(namespace: Namespace, rows: FileRows, *, id_field: str, text_field: str,
                 collection_field: str | None, collection: str | None, metadata_fields: Sequence[str] | None,
                 vector_field: str) -> _Fields:
    columns = rows.columns

    def require(column: str, role: str) -> str:
        if column not in columns:
            raise ValidationError(
                f"{str(rows.path)!r} has no column {column!r} for the {role}; its columns are: "
                f"{', '.join(columns) or '(none)'}. Name the right column with the {role} field option."
            )
        return column

    require(id_field, "id")
    needs_text = any(f.extractor for f in namespace.features)
    needs_vector = any(f.extractor is None for f in namespace.features)
    text = require(text_field, "text") if needs_text else (text_field if text_field in columns else None)
    vector = require(vector_field, "vector") if needs_vector else None
    if collection_field is not None:
        require(collection_field, "collection")
    elif collection is None and "collection" in columns:
        collection_field = "collection"
    used = {id_field, text, collection_field, vector, vector_field} - {None}
    if metadata_fields is None:
        metadata = tuple(c for c in columns if c not in used)
    else:
        metadata = tuple(require(c, "metadata") for c in metadata_fields)
    return _Fields(id_field, text, collection_field, collection, vector, metadata)


def _object(row: Mapping[str, Any], fields: _Fields, number: int, path: Path) -> dict[str, Any]:
    raw_id = row[fields.id]
    if isinstance(raw_id, str):
        object_id = raw_id
    elif isinstance(raw_id, int) and not isinstance(raw_id, bool):
        object_id = str(raw_id)
    else:
        raise InvalidObjectError(
            f"row {number} of {str(path)!r} has {fields.id}={raw_id!r}; expected a string or an integer id."
        )
    obj: dict[str, Any] = {"id": object_id}
    if fields.text is not None:
        obj["text"] = row[fields.text]
    if fields.collection is not None:
        obj["collection"] = fields.collection
    elif fields.collection_field is not None:
        obj["collection"] = row[fields.collection_field]
    if fields.vector is not None:
        obj["vector"] = row[fields.vector]
    metadata = {name: _plain(row[name]) for name in fields.metadata if row[name] is not None}
    obj["metadata"] = metadata or None
    return obj


def _plain(value: Any) -> Any:
    """A JSON-able version of a value DuckDB produced."""
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
