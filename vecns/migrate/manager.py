"""``store.migrations``: create, start, watch, cancel, resume and delete migrations."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vecns.catalog import NamespaceRecord, records
from vecns.catalog import migrations as mig_db
from vecns.catalog import objects as rows_db
from vecns.errors import (
    MigrationNotFoundError,
    MigrationStateError,
    PlanMismatchError,
    ValidationError,
    VecnsError,
)
from vecns.migrate.config import MigrationConfig, parse_config
from vecns.migrate.engine import Cancelled, Engine, now, target_record, throttle
from vecns.migrate.events import Event, WebhookSender
from vecns.migrate.plan import Plan, ValidationReport, build_plan, validate

if TYPE_CHECKING:
    from vecns.store import Store

log = logging.getLogger("vecns.migrate")

STATUSES = ("draft", "pending", "in_progress", "completed", "failed", "cancelled", "interrupted")
RUNNING = ("pending", "in_progress")
RESUMABLE = ("interrupted", "cancelled", "failed")
Progress = Callable[["MigrationStatus"], Any]


@dataclass(frozen=True)
class MigrationStatus:
    """Where a migration stands: ``status``, ``stage`` and counts, with rate and ETA while it runs."""

    id: str
    status: str
    stage: str
    migration_type: str
    source: str
    target: str
    processed: int
    total: int
    failed: int
    caught_up: int
    percent: float
    rate: float | None
    eta_seconds: float | None
    provider: str | None
    error: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None

    def __repr__(self) -> str:
        return (f"MigrationStatus({self.id!r}, {self.status}, stage={self.stage}, "
                f"{self.processed}/{self.total}, failed={self.failed})")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        data = dataclasses.asdict(self)
        for key in ("created_at", "started_at", "finished_at"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


class Migration:
    """A handle on one migration. Get it from ``store.migrations.create()`` or ``.get(id)``."""

    def __init__(self, manager: Migrations, migration_id: str) -> None:
        self._manager = manager
        self.id = migration_id

    def __repr__(self) -> str:
        row = self._row()
        return f"Migration({self.id!r}, {row.migration_type}, {row.status})"

    def _row(self) -> mig_db.MigrationRow:
        row = mig_db.get(self._manager._store._catalog, self.id)
        if row is None:
            raise MigrationNotFoundError(f"no migration {self.id!r}; it was deleted.")
        return row

    @property
    def config(self) -> MigrationConfig:
        """The migration's config."""
        return parse_config(self._row().config_dict)

    def status(self) -> MigrationStatus:
        """The migration's current status, counts, rate and ETA."""
        return self._manager._status(self._row())

    def failures(self, *, limit: int = 1000) -> list[tuple[str, str]]:
        """Objects that could not be migrated, as (object id, error)."""
        return mig_db.failures(self._manager._store._catalog, self.id, limit=limit)

    def start(self, *, progress: Progress | None = None) -> Migration:
        """Start the migration on a background thread and return at once.

        Raises:
            MigrationStateError: It is not a draft (use ``resume()`` for an interrupted one).
        """
        self._manager._launch(self.id, allowed=("draft",), progress=progress, background=True)
        return self

    def run(self, *, progress: Progress | None = None) -> MigrationStatus:
        """Run a draft migration on the calling thread until it ends; returns the final status."""
        self._manager._launch(self.id, allowed=("draft",), progress=progress, background=False)
        return self.status()

    def resume(self, *, progress: Progress | None = None, background: bool = True) -> Migration:
        """Continue an interrupted, cancelled or failed migration from its checkpoint.

        Raises:
            MigrationStateError: It is running, completed or a draft.
            PlanMismatchError: A model or the config changed since it was created.
        """
        self._manager._launch(self.id, allowed=RESUMABLE, progress=progress, background=background)
        return self

    def wait(self, timeout: float | None = None) -> MigrationStatus:
        """Wait until the migration stops running (or ``timeout`` seconds pass); returns its status."""
        thread = self._manager._threads.get(self.id)
        if thread is not None:
            thread.join(timeout)
        return self.status()

    def cancel(self, reason: str | None = None) -> MigrationStatus:
        """Cancel: a running migration stops at its next batch boundary (its batches are atomic).

        The target keeps what was committed; ``resume()`` continues, or drop the target to discard it.
        """
        return self._manager._cancel(self.id, reason)


class Migrations:
    """The migrations of one store: ``store.migrations``."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._threads: dict[str, threading.Thread] = {}
        self._cancels: dict[str, threading.Event] = {}
        self._live: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def validate(self, config: Any) -> ValidationReport:
        """Check a config and estimate its cost (tokens, seconds, disk, provider); writes nothing."""
        return validate(self._store, config)

    def create(self, config: Any, *, start_immediately: bool = False,
               progress: Progress | None = None) -> Migration | ValidationReport:
        """Create a migration (status ``draft``); with ``dry_run`` in the config, only validate it.

        Args:
            config: The hosted API's JSON body (dict, JSON text or path) or a ``MigrationConfig``.
            start_immediately: Start it on a background thread right away.
            progress: Progress callback for the run started here.

        Returns:
            The migration, or the ``ValidationReport`` for a dry run.

        Raises:
            ConfigError: The config is malformed.
            ValidationError: The config does not fit the store (the message lists the report's errors).
        """
        parsed = config if isinstance(config, MigrationConfig) else parse_config(config)
        if parsed.dry_run:
            return validate(self._store, parsed)
        report = validate(self._store, parsed, estimate=False)
        if not report.valid:
            raise ValidationError("the migration config is not valid:\n" + "\n".join(report.errors))
        plan = build_plan(self._store, parsed)
        migration_id = "mig_" + secrets.token_hex(8)
        row = mig_db.MigrationRow(
            migration_id, parsed.migration_type, "draft", "created", _config_json(parsed), plan.fingerprint,
            plan.source.id, plan.target_name, None, None, None, -1, 0, 0, 0, 0, None, None, None, now(),
            None, None, None, None, None)
        with self._store._catalog.atomic() as tx:
            mig_db.insert(tx, row)
        migration = Migration(self, migration_id)
        if start_immediately:
            migration.start(progress=progress)
        return migration

    def get(self, migration_id: str) -> Migration:
        """A migration by id.

        Raises:
            MigrationNotFoundError: No migration has this id.
        """
        if mig_db.get(self._store._catalog, migration_id) is None:
            known = ", ".join(r.id for r in mig_db.list_rows(self._store._catalog)[:10]) or "(none)"
            raise MigrationNotFoundError(f"no migration {migration_id!r}; recent migrations: {known}.")
        return Migration(self, migration_id)

    def list(self, *, status: str | None = None, migration_type: str | None = None) -> list[Migration]:
        """Migrations, newest first, optionally of one status and/or type."""
        if status is not None and status not in STATUSES:
            raise ValidationError(f"status {status!r} is not one of {STATUSES}.")
        return [Migration(self, r.id) for r in mig_db.list_rows(self._store._catalog, status=status,
                                                                 migration_type=migration_type)]

    def delete(self, migration_id: str) -> None:
        """Forget a migration that is not running (its target namespace stays; drop it separately).

        Raises:
            MigrationStateError: It is running.
        """
        row = self.get(migration_id)._row()
        if row.status in RUNNING:
            raise MigrationStateError(f"migration {migration_id!r} is {row.status}; cancel it and wait first.")
        with self._store._catalog.atomic() as tx:
            mig_db.delete(tx, migration_id)

    # -- running ---------------------------------------------------------------------------------

    def _launch(self, migration_id: str, *, allowed: tuple[str, ...], progress: Progress | None,
                background: bool) -> None:
        with self._lock:
            row = mig_db.get(self._store._catalog, migration_id)
            if row is None:
                raise MigrationNotFoundError(f"no migration {migration_id!r}.")
            if row.status not in allowed:
                verb = "start" if allowed == ("draft",) else "resume"
                hint = " Use resume()." if row.status in RESUMABLE else ""
                raise MigrationStateError(f"migration {migration_id!r} is {row.status}; only a migration that is "
                                          f"{' or '.join(allowed)} can {verb}.{hint}")
            config = parse_config(row.config_dict)
            plan = build_plan(self._store, config, own_target_id=row.target_id)
            if plan.fingerprint != row.plan_fingerprint:
                raise PlanMismatchError(
                    f"migration {migration_id!r} was planned with other models or settings (plan "
                    f"{row.plan_fingerprint[:12]}, now {plan.fingerprint[:12]}); its checkpoint does not fit. "
                    "Restore the models it was created with, or delete it and create a new migration."
                )
            cancel = threading.Event()
            self._cancels[migration_id] = cancel
            with self._store._catalog.atomic() as tx:
                mig_db.update(tx, migration_id, status="pending", error=None, cancel_reason=None)
            if not background:
                self._execute(migration_id, plan, cancel, progress)
                return
            thread = threading.Thread(target=self._execute, args=(migration_id, plan, cancel, progress),
                                      name=f"vecns-{migration_id}", daemon=True)
            self._threads[migration_id] = thread
            thread.start()

    def _execute(self, migration_id: str, plan: Plan, cancel: threading.Event, progress: Progress | None) -> None:
        sender = _sender(plan.config, migration_id, allow_loopback=self._store.loopback_webhooks)
        live: dict[str, Any] = {"started": time.monotonic(), "done_at_start": 0}
        self._live[migration_id] = live
        emit = _emitter(sender, migration_id)
        status = "failed"
        try:
            target = self._prepare(migration_id, plan)
            row = mig_db.get(self._store._catalog, migration_id)
            live["done_at_start"] = row.processed
            ready = throttle(0.5)

            def on_batch() -> bool:
                current = self._status(mig_db.get(self._store._catalog, migration_id))
                if ready():
                    emit("migration.progress", current)
                return progress(current) is not False if progress else True

            engine = Engine(self._store, migration_id, plan, target, on_batch=on_batch, cancel=cancel)
            live["provider"] = engine.provider
            with self._store._catalog.atomic() as tx:
                mig_db.update(tx, migration_id, status="in_progress", provider=engine.provider,
                              heartbeat_at=now())
            emit("migration.started", self._status(mig_db.get(self._store._catalog, migration_id)))
            if row.stage in ("created", "snapshot"):
                engine.snapshot_pass(row.snapshot_seq, row.last_key)
                with self._store._catalog.atomic() as tx:
                    mig_db.update(tx, migration_id, stage="catch_up")
            row = mig_db.get(self._store._catalog, migration_id)
            applied = engine.catch_up(row.applied_seq)
            engine.finish_index()
            with self._store._catalog.atomic() as tx:
                mig_db.update(tx, migration_id, status="completed", stage="done", applied_seq=applied,
                              finished_at=now())
            status = "completed"
        except Cancelled:
            status = "cancelled"
            with self._store._catalog.atomic() as tx:
                mig_db.update(tx, migration_id, status="cancelled", finished_at=now())
        except Exception as exc:  # noqa: BLE001 - recorded on the migration; the caller reads it from status()
            log.exception("migration %s failed", migration_id)
            message = str(exc) if isinstance(exc, VecnsError) else f"{type(exc).__name__}: {exc}"
            with self._store._catalog.atomic() as tx:
                mig_db.update(tx, migration_id, status="failed", error=message, finished_at=now())
        except BaseException:
            # KeyboardInterrupt or SystemExit on a foreground run: resumable, like a process that died.
            status = "interrupted"
            with self._store._catalog.atomic() as tx:
                mig_db.update(tx, migration_id, status="interrupted")
            raise
        finally:
            final = self._status(mig_db.get(self._store._catalog, migration_id))
            if status != "interrupted":
                emit(f"migration.{status}", final)
            if progress is not None:
                progress(final)
            if sender is not None:
                # Delivery goes on in the background: a slow receiver never holds the migration up.
                threading.Thread(target=sender.close, kwargs={"timeout": 10.0}, daemon=True).start()
            self._live.pop(migration_id, None)

    def _prepare(self, migration_id: str, plan: Plan) -> NamespaceRecord:
        """Create the target and take the snapshot on the first start; on resume, return the target."""
        row = mig_db.get(self._store._catalog, migration_id)
        if row.target_id is not None:
            return target_record(self._store, row.target_id)
        catalog = self._store._catalog
        target_id = "ns_" + secrets.token_hex(8)
        record = NamespaceRecord(target_id, plan.target_name, now(), f"target of {migration_id}",
                                 plan.features_for(target_id))
        with catalog.write_lock, catalog.atomic() as tx:
            snapshot = catalog.current_seq()
            records.insert_namespace(tx, record)
            rows_db.create_tables(tx, record)
            total = rows_db.count(catalog, plan.source, f"({plan.filters.where}) AND seq <= ?",
                                  [*plan.filters.params, snapshot])
            mig_db.update(tx, migration_id, target_id=target_id, snapshot_seq=snapshot, applied_seq=snapshot,
                          total=total, stage="snapshot", started_at=now())
        return record

    def _cancel(self, migration_id: str, reason: str | None) -> MigrationStatus:
        row = Migration(self, migration_id)._row()
        with self._store._catalog.atomic() as tx:
            mig_db.update(tx, migration_id, cancel_reason=reason or "cancelled by the caller")
            if row.status in ("draft", "interrupted", "failed"):
                mig_db.update(tx, migration_id, status="cancelled", finished_at=now())
        event = self._cancels.get(migration_id)
        if event is not None:
            event.set()
        return self._status(mig_db.get(self._store._catalog, migration_id))

    def _status(self, row: mig_db.MigrationRow) -> MigrationStatus:
        source = records.find_namespace(self._store._catalog, ns_id=row.source_id)
        live = self._live.get(row.id)
        percent = 100.0 if row.status == "completed" else (100.0 * row.processed / row.total if row.total else 0.0)
        rate = eta = None
        if live and row.status in RUNNING:
            elapsed = time.monotonic() - live["started"]
            done = row.processed - live["done_at_start"]
            if elapsed > 0 and done > 0:
                rate = done / elapsed
                eta = max(0.0, (row.total - row.processed) / rate)
        return MigrationStatus(row.id, row.status, row.stage, row.migration_type,
                               source.name if source else row.source_id, row.target_name, row.processed, row.total,
                               row.failed, row.caught_up, round(min(percent, 100.0), 2), rate, eta, row.provider,
                               row.error, row.created_at, row.started_at, row.finished_at)


def _config_json(config: MigrationConfig) -> str:
    data = config.to_dict()
    if config.webhook_secret is not None:
        data["webhook_secret"] = config.webhook_secret  # needed to sign events after a resume
    if config.webhook_url is not None:
        data["webhook_url"] = config.webhook_url
    return json.dumps(data, sort_keys=True)


def _sender(config: MigrationConfig, migration_id: str, *, allow_loopback: bool) -> WebhookSender | None:
    """The run's webhook sender, or None: a receiver whose host no longer resolves (or now resolves to a
    refused address) costs the run its events, never the run itself."""
    if not config.webhook_url:
        return None
    try:
        return WebhookSender(config.webhook_url, secret=config.webhook_secret,
                             allow_private=config.allow_private_webhooks, allow_loopback=allow_loopback)
    except VecnsError as exc:
        log.warning("migration %s runs without webhook events: %s", migration_id, exc)
        return None


def _emitter(sender: WebhookSender | None, migration_id: str) -> Callable[[str, MigrationStatus], None]:
    def emit(kind: str, status: MigrationStatus) -> None:
        if sender is not None:
            data = {k: v for k, v in status.to_dict().items() if k not in ("id",)}
            sender.send(Event.new(kind, migration_id, data=data))
    return emit


def migrate(store: Store, config: Any, *, progress: Progress | None = None) -> MigrationStatus | ValidationReport:
    """Validate, create and run a migration to its end on the calling thread.

    Args:
        store: The open store.
        config: The hosted API's JSON body (dict, JSON text or path) or a ``MigrationConfig``.
        progress: Called with a ``MigrationStatus`` after each batch; returning False cancels.

    Returns:
        The final status (``completed``, ``cancelled`` or ``failed``), or the report for a dry run.

    Raises:
        ConfigError, ValidationError: The config is malformed or does not fit the store.
    """
    created = store.migrations.create(config)
    if isinstance(created, ValidationReport):
        return created
    return created.run(progress=progress)
