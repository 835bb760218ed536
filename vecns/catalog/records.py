"""Catalog rows: namespaces, features, aliases, registered models and index files."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from typing import Any

from vecns.catalog.connection import Catalog, translated


@dataclass(frozen=True)
class Feature:
    """One named vector per object, locked at namespace creation.

    Attributes:
        name: e.g. ``text_extractor_v1_embedding``.
        extractor: The extractor that makes it (``text_extractor``), or None for caller-supplied vectors.
        version: The extractor's version (``v1``), or None.
        model_id: The model the feature is locked to (a label for caller-supplied vectors).
        fingerprint: sha256 over the model's graph, tokenizer and settings.
        dim: The vector dimension, enforced by the database column type ``FLOAT[dim]``.
        metric: ``cos``, ``ip`` or ``l2sq``.
        dtype: The index's scalar type (``f16``, ``f32`` or ``i8``).
        table_name: The vector table's name (derived from the namespace id, never from a user name).
        position: Order of the feature in its namespace; 0 is the default for search.
    """

    name: str
    extractor: str | None
    version: str | None
    model_id: str
    fingerprint: str
    dim: int
    metric: str
    dtype: str
    table_name: str
    position: int = 0

    def __repr__(self) -> str:
        return f"Feature({self.name!r}, model_id={self.model_id!r}, dim={self.dim}, metric={self.metric!r})"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the feature."""
        return asdict(self)


@dataclass(frozen=True)
class NamespaceRecord:
    """A namespace as the catalog stores it."""

    id: str
    name: str
    created_at: dt.datetime
    description: str | None
    features: tuple[Feature, ...]

    @property
    def objects_table(self) -> str:
        """Name of the namespace's objects table."""
        return f"o_{self.id}"


_FEATURE_COLUMNS = "name, extractor, version, model_id, fingerprint, dim, metric, dtype, table_name, position"


def insert_namespace(tx: Any, record: NamespaceRecord) -> None:
    """Insert a namespace and its features (tables are created by ``objects.create_tables``)."""
    with translated(f"creating namespace {record.name!r}"):
        tx.execute(
            "INSERT INTO namespaces (id, name, created_at, description) VALUES (?, ?, ?, ?)",
            [record.id, record.name, record.created_at, record.description],
        )
        for f in record.features:
            tx.execute(
                f"INSERT INTO features (namespace_id, {_FEATURE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [record.id, f.name, f.extractor, f.version, f.model_id, f.fingerprint, f.dim, f.metric,
                 f.dtype, f.table_name, f.position],
            )


def _features(catalog: Catalog, ns_id: str) -> tuple[Feature, ...]:
    rows = catalog.fetchall(
        f"SELECT {_FEATURE_COLUMNS} FROM features WHERE namespace_id = ? ORDER BY position", [ns_id]
    )
    return tuple(Feature(*row) for row in rows)


def _record(catalog: Catalog, row: tuple) -> NamespaceRecord:
    ns_id, name, created_at, description = row
    return NamespaceRecord(ns_id, name, created_at, description, _features(catalog, ns_id))


def find_namespace(catalog: Catalog, *, ns_id: str | None = None, name: str | None = None) -> NamespaceRecord | None:
    """Look a namespace up by id or by name; None when absent."""
    column, value = ("id", ns_id) if ns_id is not None else ("name", name)
    row = catalog.fetchone(
        f"SELECT id, name, created_at, description FROM namespaces WHERE {column} = ?", [value]
    )
    return _record(catalog, row) if row else None


def list_namespaces(catalog: Catalog) -> list[NamespaceRecord]:
    """Every namespace, ordered by name."""
    rows = catalog.fetchall("SELECT id, name, created_at, description FROM namespaces ORDER BY name")
    return [_record(catalog, row) for row in rows]


def delete_namespace(tx: Any, record: NamespaceRecord) -> None:
    """Remove a namespace's rows and tables from the catalog (index files are removed by the caller)."""
    with translated(f"dropping namespace {record.name!r}"):
        for feature in record.features:
            tx.execute(f'DROP TABLE IF EXISTS "{feature.table_name}"')
        tx.execute(f'DROP TABLE IF EXISTS "{record.objects_table}"')
        for table in ("features", "changes", "index_files"):
            tx.execute(f"DELETE FROM {table} WHERE namespace_id = ?", [record.id])
        tx.execute("UPDATE aliases SET previous_namespace_id = NULL WHERE previous_namespace_id = ?", [record.id])
        tx.execute("DELETE FROM namespaces WHERE id = ?", [record.id])


# -- aliases -------------------------------------------------------------------------------------


def get_alias(catalog: Catalog, name: str) -> tuple[str, str | None] | None:
    """Return (namespace_id, previous_namespace_id) for an alias, or None."""
    row = catalog.fetchone("SELECT namespace_id, previous_namespace_id FROM aliases WHERE name = ?", [name])
    return (row[0], row[1]) if row else None


def list_aliases(catalog: Catalog) -> list[tuple[str, str, str | None, dt.datetime]]:
    """Every alias as (name, namespace_id, previous_namespace_id, updated_at), ordered by name."""
    return catalog.fetchall(
        "SELECT name, namespace_id, previous_namespace_id, updated_at FROM aliases ORDER BY name"
    )


def aliases_of(catalog: Catalog, ns_id: str) -> list[str]:
    """Names of the aliases that point at a namespace."""
    return [r[0] for r in catalog.fetchall("SELECT name FROM aliases WHERE namespace_id = ? ORDER BY name", [ns_id])]


def put_alias(tx: Any, name: str, ns_id: str, previous: str | None) -> None:
    """Point an alias at a namespace, remembering where it pointed before."""
    with translated(f"setting alias {name!r}"):
        tx.execute("DELETE FROM aliases WHERE name = ?", [name])
        tx.execute("INSERT INTO aliases VALUES (?, ?, ?, now())", [name, ns_id, previous])


def delete_alias(tx: Any, name: str) -> None:
    """Remove an alias."""
    with translated(f"deleting alias {name!r}"):
        tx.execute("DELETE FROM aliases WHERE name = ?", [name])


# -- registered models ---------------------------------------------------------------------------


def put_model(tx: Any, model_id: str, spec: dict[str, Any]) -> None:
    """Record a user-registered model's spec."""
    with translated(f"registering model {model_id!r}"):
        tx.execute("INSERT INTO models VALUES (?, ?, now())", [model_id, json.dumps(spec, sort_keys=True)])


def get_models(catalog: Catalog) -> dict[str, dict[str, Any]]:
    """Every user-registered model's spec, by model id."""
    return {mid: json.loads(spec) for mid, spec in catalog.fetchall("SELECT model_id, spec FROM models")}


def delete_model(tx: Any, model_id: str) -> None:
    """Forget a user-registered model."""
    with translated(f"removing model {model_id!r}"):
        tx.execute("DELETE FROM models WHERE model_id = ?", [model_id])


def get_default_model(catalog: Catalog, extractor: str) -> str | None:
    """The default model id for new namespaces of an extractor, if one was set."""
    row = catalog.fetchone("SELECT model_id FROM model_defaults WHERE extractor = ?", [extractor])
    return row[0] if row else None


def put_default_model(tx: Any, extractor: str, model_id: str) -> None:
    """Set the default model for new namespaces of an extractor."""
    with translated("setting the default model"):
        tx.execute("DELETE FROM model_defaults WHERE extractor = ?", [extractor])
        tx.execute("INSERT INTO model_defaults VALUES (?, ?)", [extractor, model_id])


# -- index files ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexFileRecord:
    """Where a feature's index file is, its checksum and the last change it includes."""

    file: str
    checksum: str
    seq: int
    count: int


def get_index_file(catalog: Catalog, ns_id: str, feature: str) -> IndexFileRecord | None:
    """The recorded index file of a feature, or None when it was never saved."""
    row = catalog.fetchone(
        "SELECT file, checksum, seq, count FROM index_files WHERE namespace_id = ? AND feature = ?",
        [ns_id, feature],
    )
    return IndexFileRecord(row[0], row[1], int(row[2]), int(row[3])) if row else None


def put_index_file(tx: Any, ns_id: str, feature: str, record: IndexFileRecord) -> None:
    """Record a freshly saved index file."""
    with translated("recording an index file"):
        tx.execute("DELETE FROM index_files WHERE namespace_id = ? AND feature = ?", [ns_id, feature])
        tx.execute(
            "INSERT INTO index_files VALUES (?, ?, ?, ?, ?, ?, now())",
            [ns_id, feature, record.file, record.checksum, record.seq, record.count],
        )
