"""Cutover: hold source writes, apply the last delta, move the alias in one transaction; gated on relevance."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vecns._crash import crashpoint
from vecns.catalog import migrations as mig_db
from vecns.catalog import records
from vecns.errors import CutoverRefusedError, MigrationNotFoundError, MigrationStateError, ValidationError
from vecns.migrate.config import parse_config
from vecns.migrate.engine import Engine, now, target_record
from vecns.migrate.plan import build_plan
from vecns.validation import check_name

if TYPE_CHECKING:
    from vecns.migrate.manager import Migration
    from vecns.store import Store

Gate = Mapping[str, Any] | Callable[[Any, Any], tuple[bool, str]]


@dataclass(frozen=True)
class CutoverResult:
    """What a cutover did: which alias moved from which namespace to which, and the gate's verdict."""

    alias: str
    source: str
    target: str
    applied_changes: int
    gate: str | None
    at: dt.datetime

    def __repr__(self) -> str:
        return f"CutoverResult({self.alias!r}: {self.source!r} -> {self.target!r})"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        data = dataclasses.asdict(self)
        data["at"] = self.at.isoformat()
        return data


def _find(store: Store, ref: Migration | str) -> mig_db.MigrationRow:
    migration_id = getattr(ref, "id", ref)
    row = mig_db.get(store._catalog, migration_id) if isinstance(migration_id, str) else None
    if row is None and isinstance(migration_id, str):
        rows = [r for r in mig_db.list_rows(store._catalog, status="completed")
                if migration_id in (r.target_name, r.target_id)]
        row = rows[0] if rows else None
    if row is None:
        raise MigrationNotFoundError(f"no migration (or completed migration into target) {migration_id!r}.")
    return row


def check_gate(store: Store, gate: Gate | None, source_id: str, target_id: str) -> str | None:
    """Apply a cutover gate; returns its verdict text, or raises ``CutoverRefusedError``.

    A dict gate ``{"metric": "ndcg@10", "max_drop": 0.0, "dataset": optional}`` compares stored evaluations
    (``vecns.evaluate`` stores them) that hold the metric: the target's newest (on ``dataset`` when given)
    and the source's newest on that same dataset. A callable gate gets the source and target namespaces and
    returns ``(ok, message)``.
    """
    if gate is None:
        return None
    if callable(gate):
        ok, message = gate(store.namespace(source_id), store.namespace(target_id))
        if not ok:
            raise CutoverRefusedError(f"the cutover gate refused: {message}")
        return message
    unknown = set(gate) - {"metric", "max_drop", "dataset"}
    if unknown or "metric" not in gate:
        raise ValidationError(f"a gate is {{'metric': 'ndcg@10', 'max_drop': 0.0, 'dataset': optional}}; got "
                              f"{dict(gate)!r}.")
    metric, max_drop, dataset = gate["metric"], float(gate.get("max_drop", 0.0)), gate.get("dataset")
    found = {}
    # The target's newest evaluation names the dataset (unless the gate does); the source must have been
    # measured on that same dataset, or the two numbers say nothing about each other.
    for role, ns_id in (("target", target_id), ("source", source_id)):
        stored = mig_db.latest_evaluation(store._catalog, ns_id, dataset=dataset, metric=metric)
        if stored is None:
            on = f" on dataset {dataset!r}" if dataset is not None else ""
            raise CutoverRefusedError(
                f"the gate needs {metric} of the {role} namespace{on}, and none is stored. Evaluate both "
                "namespaces on the same queries first (vecns.evaluate / vecns eval), then cut over."
            )
        dataset = stored[0]
        found[role] = float(stored[1][metric])
    drop = found["source"] - found["target"]
    verdict = (f"{metric} on {dataset!r}: source {found['source']:.4f}, target {found['target']:.4f} "
               f"(drop {drop:+.4f}, allowed {max_drop:.4f})")
    if drop > max_drop:
        raise CutoverRefusedError(f"the target is worse than allowed: {verdict}. Keep the source, or relax max_drop.")
    return verdict


def cutover(store: Store, migration: Migration | str, *, alias: str, gate: Gate | None = None) -> CutoverResult:
    """Move ``alias`` from a completed migration's source to its target, atomically.

    Source writes are held (the store's write lock) while the last changes are applied to the target and the
    alias moves, in one transaction: a crash leaves the alias naming exactly the old or the new namespace.

    Args:
        store: The open store.
        migration: The migration, its id, or its target namespace's name.
        alias: The alias to move (created when missing; it must not name another namespace).
        gate: Optional relevance gate, see ``check_gate``.

    Returns:
        What moved where.

    Raises:
        MigrationStateError: The migration is not completed.
        CutoverRefusedError: The gate found the target worse than allowed.
        ValidationError: The alias names a namespace other than the source.
    """
    check_name("alias", alias)
    row = _find(store, migration)
    if row.status != "completed":
        raise MigrationStateError(f"migration {row.id!r} is {row.status}; only a completed migration can be cut "
                                  "over. Wait for it, or resume it.")
    verdict = check_gate(store, gate, row.source_id, row.target_id)
    current = records.get_alias(store._catalog, alias)
    if current is not None and current[0] not in (row.source_id, row.target_id):
        raise ValidationError(f"alias {alias!r} names another namespace ({current[0]}), not the migration's source; "
                              "move it with aliases.set() first if that is what you mean.")
    plan = build_plan(store, parse_config(row.config_dict), own_target_id=row.target_id)
    target = target_record(store, row.target_id)
    engine = Engine(store, row.id, plan, target, on_batch=lambda: True, cancel=threading.Event())
    catalog = store._catalog
    with catalog.write_lock:
        before = row.caught_up
        with catalog.atomic() as tx:
            applied = engine.catch_up(row.applied_seq)
            crashpoint("before_alias_commit")
            if current is None or current[0] != row.target_id:
                records.put_alias(tx, alias, row.target_id, row.source_id)
            mig_db.update(tx, row.id, applied_seq=applied, cutover_alias=alias, cutover_at=now())
        crashpoint("after_alias_commit")
        after = mig_db.get(catalog, row.id)
    source = records.find_namespace(catalog, ns_id=row.source_id)
    return CutoverResult(alias, source.name if source else row.source_id, target.name, after.caught_up - before,
                         verdict, after.cutover_at)
