"""Migration rows, their checkpoints and per-object failures, and stored evaluations."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from vecns.catalog.connection import Catalog, translated


@dataclass(frozen=True)
class MigrationRow:
    """A migration as the catalog stores it (its checkpoint included)."""

    id: str
    migration_type: str
    status: str
    stage: str
    config: str
    plan_fingerprint: str
    source_id: str
    target_name: str
    target_id: str | None
    snapshot_seq: int | None
    applied_seq: int | None
    last_key: int
    total: int
    processed: int
    failed: int
    caught_up: int
    provider: str | None
    error: str | None
    cancel_reason: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    heartbeat_at: dt.datetime | None
    cutover_alias: str | None
    cutover_at: dt.datetime | None

    @property
    def config_dict(self) -> dict[str, Any]:
        """The stored config body."""
        return json.loads(self.config)


_COLUMNS = ", ".join(f.name for f in fields(MigrationRow))
_MUTABLE = frozenset(f.name for f in fields(MigrationRow)) - {"id", "migration_type", "config", "created_at"}


def insert(tx: Any, row: MigrationRow) -> None:
    """Insert a new migration."""
    with translated("creating a migration"):
        tx.execute(f"INSERT INTO migrations ({_COLUMNS}) VALUES ({', '.join('?' * len(fields(row)))})",
                   [getattr(row, f.name) for f in fields(row)])


def update(tx: Any, migration_id: str, **values: Any) -> None:
    """Set some columns of a migration row (inside a transaction)."""
    unknown = set(values) - _MUTABLE
    if unknown:
        raise ValueError(f"not migration columns: {sorted(unknown)}")
    assignments = ", ".join(f"{name} = ?" for name in values)
    with translated("updating a migration"):
        tx.execute(f"UPDATE migrations SET {assignments} WHERE id = ?", [*values.values(), migration_id])


def get(catalog: Catalog, migration_id: str) -> MigrationRow | None:
    """A migration by id, or None."""
    row = catalog.fetchone(f"SELECT {_COLUMNS} FROM migrations WHERE id = ?", [migration_id])
    return MigrationRow(*row) if row else None


def list_rows(catalog: Catalog, *, status: str | None = None, migration_type: str | None = None) -> list[MigrationRow]:
    """Migrations, newest first, optionally only of one status and/or type."""
    sql, args = f"SELECT {_COLUMNS} FROM migrations WHERE TRUE", []
    if status is not None:
        sql += " AND status = ?"
        args.append(status)
    if migration_type is not None:
        sql += " AND migration_type = ?"
        args.append(migration_type)
    return [MigrationRow(*r) for r in catalog.fetchall(sql + " ORDER BY created_at DESC, id", args)]


def delete(tx: Any, migration_id: str) -> None:
    """Remove a migration and its failure records."""
    with translated("deleting a migration"):
        tx.execute("DELETE FROM migration_failures WHERE migration_id = ?", [migration_id])
        tx.execute("DELETE FROM migrations WHERE id = ?", [migration_id])


def mark_interrupted(tx: Any) -> list[str]:
    """Mark every running migration as interrupted; returns their ids.

    Called when a store is opened for writing: DuckDB lets one process write, so a migration recorded as
    running belongs to a process that is gone.
    """
    with translated("marking interrupted migrations"):
        rows = tx.execute(
            "UPDATE migrations SET status = 'interrupted' WHERE status IN ('pending', 'in_progress') RETURNING id"
        ).fetchall()
    return [r[0] for r in rows]


def record_failures(tx: Any, migration_id: str, failures: Sequence[tuple[str, str]]) -> None:
    """Record per-object failures as (object id, error); a later failure of the same object replaces it."""
    if not failures:
        return
    with translated("recording migration failures"):
        ids = [f[0] for f in failures]
        tx.execute("DELETE FROM migration_failures WHERE migration_id = ? AND object_id IN (SELECT unnest(?))",
                   [migration_id, ids])
        tx.execute(
            "INSERT INTO migration_failures SELECT ?, unnest(?), unnest(?), now()",
            [migration_id, ids, [f[1] for f in failures]],
        )


def clear_failures(tx: Any, migration_id: str, object_ids: Sequence[str]) -> None:
    """Forget failures of objects that have since been written."""
    if object_ids:
        with translated("clearing migration failures"):
            tx.execute("DELETE FROM migration_failures WHERE migration_id = ? AND object_id IN (SELECT unnest(?))",
                       [migration_id, list(object_ids)])


def failures(catalog: Catalog, migration_id: str, *, limit: int = 1000) -> list[tuple[str, str]]:
    """Per-object failures of a migration as (object id, error), by object id."""
    return [(r[0], r[1]) for r in catalog.fetchall(
        "SELECT object_id, error FROM migration_failures WHERE migration_id = ? ORDER BY object_id LIMIT ?",
        [migration_id, limit])]


def count_failures(catalog: Catalog, migration_id: str) -> int:
    """How many objects of a migration are recorded as failed."""
    return int(catalog.fetchone("SELECT count(*) FROM migration_failures WHERE migration_id = ?",
                                [migration_id])[0])


# -- evaluations ---------------------------------------------------------------------------------


def put_evaluation(tx: Any, evaluation_id: str, namespace_id: str, dataset: str, metrics: dict[str, Any],
                   migration_id: str | None = None) -> None:
    """Store an evaluation's overall metrics for a namespace (and the migration it was run for)."""
    with translated("storing an evaluation"):
        tx.execute("INSERT INTO evaluations VALUES (?, ?, ?, ?, ?, now())",
                   [evaluation_id, namespace_id, migration_id, dataset, json.dumps(metrics, sort_keys=True)])


def latest_evaluation(catalog: Catalog, namespace_id: str, *, dataset: str | None = None,
                      metric: str | None = None) -> tuple[str, dict] | None:
    """The newest stored evaluation of a namespace (on ``dataset``, holding ``metric``) as (dataset, metrics)."""
    sql, args = "SELECT dataset, metrics FROM evaluations WHERE namespace_id = ?", [namespace_id]
    if dataset is not None:
        sql += " AND dataset = ?"
        args.append(dataset)
    for found, metrics in catalog.fetchall(sql + " ORDER BY created_at DESC, id DESC", args):
        values = json.loads(metrics)
        if metric is None or metric in values:
            return found, values
    return None
