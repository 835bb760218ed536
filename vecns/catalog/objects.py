"""Objects, vectors and the change log: the namespace tables inside DuckDB.

Each namespace has one objects table (``o_<id>``) and one vector table per feature (``v_<id>_<n>``) whose
column type ``FLOAT[dim]`` makes DuckDB itself refuse a vector of another dimension. Every write appends
one row per object to ``changes`` with a store-wide ``seq``, in the same transaction as the data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from vecns.catalog.connection import Catalog, translated
from vecns.catalog.records import Feature, NamespaceRecord


@dataclass
class ObjectRows:
    """A batch of objects ready to be written (one entry per object, same order everywhere)."""

    keys: np.ndarray
    ids: list[str]
    collections: list[str | None]
    texts: list[str | None]
    metadata: list[str | None]
    created_at: list[dt.datetime]
    updated_at: list[dt.datetime]


@dataclass(frozen=True)
class StoredObject:
    """One object as read back from its namespace."""

    key: int
    id: str
    collection: str | None
    text: str | None
    metadata: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    seq: int


_OBJECT_COLUMNS = "key, id, collection, text, metadata, created_at, updated_at, seq"


def create_tables(tx: Any, record: NamespaceRecord) -> None:
    """Create a namespace's objects table and one vector table per feature."""
    with translated(f"creating tables of namespace {record.name!r}"):
        tx.execute(
            f'CREATE TABLE "{record.objects_table}" (key BIGINT PRIMARY KEY, id VARCHAR NOT NULL UNIQUE, '
            "collection VARCHAR, text VARCHAR, metadata JSON, created_at TIMESTAMPTZ NOT NULL, "
            "updated_at TIMESTAMPTZ NOT NULL, seq BIGINT NOT NULL)"
        )
        for feature in record.features:
            tx.execute(
                f'CREATE TABLE "{feature.table_name}" (key BIGINT PRIMARY KEY, vec FLOAT[{int(feature.dim)}] NOT NULL)'
            )


def vector_array(vectors: np.ndarray) -> pa.FixedSizeListArray:
    """Wrap an (n, dim) float32 array as an Arrow fixed-size list column without copying."""
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, int(vectors.shape[1]))


def existing(cur: Any, record: NamespaceRecord, ids: Sequence[str]) -> dict[str, tuple[int, dt.datetime]]:
    """Map each id already in the namespace to (key, created_at)."""
    if not ids:
        return {}
    with translated("looking up object ids"):
        rows = cur.execute(
            f'SELECT id, key, created_at FROM "{record.objects_table}" WHERE id IN (SELECT unnest(?))',
            [list(ids)],
        ).fetchall()
    return {row[0]: (int(row[1]), row[2]) for row in rows}


def write(tx: Any, catalog: Catalog, record: NamespaceRecord, rows: ObjectRows,
          vectors: dict[str, np.ndarray], *, replace_keys: Sequence[int] = ()) -> int:
    """Insert (or replace) objects and their vectors, and log one change per object.

    Must run inside ``catalog.atomic()``. Returns the last ``seq`` given out.
    """
    n = len(rows.ids)
    first_seq = catalog.next_values(tx, "seq", n)
    seqs = np.arange(first_seq, first_seq + n, dtype=np.int64)
    objects = pa.table({
        "key": pa.array(rows.keys, pa.int64()),
        "id": pa.array(rows.ids, pa.string()),
        "collection": pa.array(rows.collections, pa.string()),
        "text": pa.array(rows.texts, pa.string()),
        "metadata": pa.array(rows.metadata, pa.string()),
        "created_at": pa.array(rows.created_at, pa.timestamp("us", tz="UTC")),
        "updated_at": pa.array(rows.updated_at, pa.timestamp("us", tz="UTC")),
        "seq": pa.array(seqs, pa.int64()),
    })
    with translated(f"writing objects to namespace {record.name!r}"):
        if len(replace_keys):
            _delete_keys(tx, record, list(replace_keys))
        tx.register("_vecns_objects", objects)
        try:
            tx.execute(f'INSERT INTO "{record.objects_table}" SELECT {_OBJECT_COLUMNS} FROM _vecns_objects')
        finally:
            tx.unregister("_vecns_objects")
        for feature in record.features:
            table = pa.table({"key": pa.array(rows.keys, pa.int64()), "vec": vector_array(vectors[feature.name])})
            tx.register("_vecns_vectors", table)
            try:
                tx.execute(f'INSERT INTO "{feature.table_name}" SELECT key, vec FROM _vecns_vectors')
            finally:
                tx.unregister("_vecns_vectors")
        _log_changes(tx, record.id, seqs, rows.keys, rows.ids, "upsert")
    return int(seqs[-1]) if n else catalog.current_seq()


def _log_changes(tx: Any, ns_id: str, seqs: np.ndarray, keys: Any, ids: list[str], op: str) -> None:
    changes = pa.table({
        "seq": pa.array(seqs, pa.int64()),
        "key": pa.array(keys, pa.int64()),
        "id": pa.array(ids, pa.string()),
    })
    tx.register("_vecns_changes", changes)
    try:
        tx.execute("INSERT INTO changes SELECT seq, ?, key, id, ?, now() FROM _vecns_changes", [ns_id, op])
    finally:
        tx.unregister("_vecns_changes")


def _delete_keys(tx: Any, record: NamespaceRecord, keys: list[int]) -> None:
    tx.execute(f'DELETE FROM "{record.objects_table}" WHERE key IN (SELECT unnest(?))', [keys])
    for feature in record.features:
        tx.execute(f'DELETE FROM "{feature.table_name}" WHERE key IN (SELECT unnest(?))', [keys])


def delete(tx: Any, catalog: Catalog, record: NamespaceRecord, found: dict[str, int]) -> int:
    """Delete objects (``found`` maps id -> key) and log one change each; returns the last seq."""
    if not found:
        return catalog.current_seq()
    ids, keys = list(found), list(found.values())
    first_seq = catalog.next_values(tx, "seq", len(ids))
    seqs = np.arange(first_seq, first_seq + len(ids), dtype=np.int64)
    with translated(f"deleting objects from namespace {record.name!r}"):
        _delete_keys(tx, record, keys)
        _log_changes(tx, record.id, seqs, keys, ids, "delete")
    return int(seqs[-1])


# Up to this many keys are written into the query as integer literals: DuckDB then looks them up through
# the primary-key index instead of joining against the whole table (about 1 ms against 7-19 ms on 20k rows).
LITERAL_KEYS = 1024


def get(catalog: Catalog, record: NamespaceRecord, *, ids: Sequence[str] | None = None,
        keys: Sequence[int] | None = None, where: str = "TRUE", params: Sequence[Any] = (),
        with_text: bool = True) -> list[StoredObject]:
    """Read objects by user id or by key (order unspecified), optionally only those matching a filter.

    Without ``with_text`` the (possibly long) text is not read and comes back as None.
    """
    if ids is not None:
        column_filter, args = "id IN (SELECT unnest(?))", [list(ids)]
    else:
        wanted = [int(k) for k in keys or ()]  # int() makes every literal a plain integer, never caller text
        if len(wanted) <= LITERAL_KEYS:
            column_filter, args = f"key IN ({', '.join(map(str, wanted))})", []
        else:
            column_filter, args = "key IN (SELECT unnest(?))", [wanted]
        ids = wanted
    if not ids:
        return []
    columns = _OBJECT_COLUMNS if with_text else _OBJECT_COLUMNS.replace("text", "NULL AS text")
    rows = catalog.fetchall(
        f'SELECT {columns} FROM "{record.objects_table}" WHERE {column_filter} AND ({where})',
        [*args, *params],
    )
    return [StoredObject(*row) for row in rows]


def count(catalog: Catalog, record: NamespaceRecord, where: str = "TRUE", params: Sequence[Any] = ()) -> int:
    """Number of objects matching a compiled filter."""
    return int(catalog.fetchone(f'SELECT count(*) FROM "{record.objects_table}" WHERE {where}', list(params))[0])


def matching_keys(catalog: Catalog, record: NamespaceRecord, where: str, params: Sequence[Any]) -> np.ndarray:
    """Sorted int64 keys of the objects matching a compiled filter."""
    table = catalog.arrow(
        f'SELECT key FROM "{record.objects_table}" WHERE {where} ORDER BY key', list(params)
    )
    return table.column("key").to_numpy().astype(np.int64, copy=False)


def iterate(catalog: Catalog, record: NamespaceRecord, *, batch_size: int = 1024, after_key: int = -1,
            max_seq: int | None = None, where: str = "TRUE",
            params: Sequence[Any] = ()) -> Iterator[list[StoredObject]]:
    """Stream objects in key order, ``batch_size`` at a time, optionally after a key and up to a seq."""
    sql = f'SELECT {_OBJECT_COLUMNS} FROM "{record.objects_table}" WHERE key > ? AND ({where})'
    args: list[Any] = [after_key, *params]
    if max_seq is not None:
        sql += " AND seq <= ?"
        args.append(max_seq)
    for batch in catalog.arrow_batches(sql + " ORDER BY key", args, batch_size=batch_size):
        columns = batch.to_pydict()
        yield [StoredObject(*values) for values in zip(*(columns[c] for c in batch.schema.names), strict=True)]


def vectors(catalog: Catalog, feature: Feature, keys: Sequence[int] | np.ndarray | None = None,
            *, batch_size: int = 8192) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream (keys, vectors) of a feature in key order; all of them, or those of ``keys``."""
    if keys is None:
        sql, args = f'SELECT key, vec FROM "{feature.table_name}" ORDER BY key', None
    else:
        sql = f'SELECT key, vec FROM "{feature.table_name}" WHERE key IN (SELECT unnest(?)) ORDER BY key'
        args = [[int(k) for k in keys]]
    for batch in catalog.arrow_batches(sql, args, batch_size=batch_size):
        if batch.num_rows == 0:
            continue
        flat = batch.column(1).values.to_numpy(zero_copy_only=False)
        yield (batch.column(0).to_numpy().astype(np.int64, copy=False),
               np.asarray(flat, dtype=np.float32).reshape(batch.num_rows, feature.dim))


def changes_since(catalog: Catalog, ns_id: str, seq: int, *,
                  upto: int | None = None) -> list[tuple[int, int, str, str]]:
    """Changes of a namespace after ``seq`` (and up to ``upto``) as (seq, key, id, op), in seq order."""
    sql = "SELECT seq, key, id, op FROM changes WHERE namespace_id = ? AND seq > ?"
    args: list[Any] = [ns_id, seq]
    if upto is not None:
        sql += " AND seq <= ?"
        args.append(upto)
    return [(int(s), int(k), i, o) for s, k, i, o in catalog.fetchall(sql + " ORDER BY seq", args)]


def latest_seq(catalog: Catalog, ns_id: str) -> int:
    """The last change number of a namespace (0 when it never changed)."""
    row = catalog.fetchone("SELECT max(seq) FROM changes WHERE namespace_id = ?", [ns_id])
    return int(row[0]) if row and row[0] is not None else 0
