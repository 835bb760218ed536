"""``vecns migrate`` and ``vecns cutover``: move a namespace to a new model, then move its alias."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.text import Text

from vecns.cli import (
    EXIT_INTERRUPTED,
    CliError,
    CliState,
    cli,
    emit_error,
    fields_table,
    pass_state,
    progress_bar,
    table,
)
from vecns.migrate.config import MIGRATION_TYPES
from vecns.migrate.manager import RESUMABLE, STATUSES, Migration, MigrationStatus
from vecns.migrate.plan import ValidationReport
from vecns.store import Store

_CONFIG_OPTION = click.option(
    "--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The migration config: a JSON file with the hosted API's body (migration_type, source, target, ...).")


def _render_report(report: ValidationReport) -> Callable[[Console], None]:
    def render(console: Console) -> None:
        estimate = report.estimate
        fields = {
            "valid": report.valid, "type": report.migration_type, "source": report.source, "target": report.target,
            "models": ", ".join(f"{k}={v}" for k, v in report.models.items()) or None,
            "target dim": report.target_dim, "provider": report.provider,
        }
        if report.valid:
            fields.update({"source objects": report.source_count, "objects to migrate": report.total,
                           "estimated tokens": estimate.get("tokens"),
                           "estimated time": f"{estimate.get('seconds', 0.0):.1f} s",
                           "estimated disk": f"{estimate.get('disk_bytes', 0) / 2**20:.1f} MiB"})
        console.print(fields_table({k: v for k, v in fields.items() if v is not None}))
        for kind, lines in (("error", report.errors), ("warning", report.warnings)):
            if lines:
                console.print(table((kind,), ((line,) for line in lines)))
    return render


def _show_report(state: CliState, report: ValidationReport) -> None:
    """Print a validation report; an invalid one ends the command with exit code 1."""
    state.emit(report.to_dict(), _render_report(report))
    if not report.valid:
        count = len(report.errors)
        raise CliError(f"the migration config has {count} error{'s' if count != 1 else ''} (listed in the report); "
                       "fix the config and run 'vecns migrate validate' again.")


def _status_dict(migration: Migration, status: MigrationStatus | None = None) -> dict[str, Any]:
    status = migration.status() if status is None else status
    # migration_failures holds one row per object, so the length of the full list is the exact count.
    return {**status.to_dict(), "failures": len(migration.failures(limit=2**62))}


@contextlib.contextmanager
def _ctrl_c_cancels() -> Iterator[threading.Event]:
    """Turn the first Ctrl-C into a flag (the run cancels at its next batch boundary); a second one stops at once."""
    pressed = threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        if pressed.is_set():
            raise KeyboardInterrupt
        pressed.set()

    try:
        previous = signal.signal(signal.SIGINT, on_sigint)
        installed = True
    except ValueError:  # handlers can only be set on the main thread, and only it receives Ctrl-C
        installed = False
    try:
        yield pressed
    finally:
        if installed:
            signal.signal(signal.SIGINT, previous)


def _run_foreground(state: CliState, migration: Migration, runner: Callable[[Any], Any]) -> None:
    """Run a migration on this process until it ends, drawing progress; print its final status.

    Args:
        state: The command's state.
        migration: The migration to run.
        runner: Runs it on the calling thread, given the progress callback (``Migration.run`` or a resume).

    Raises:
        CliError: It failed (exit code 1).
        click.exceptions.Exit: It was cancelled by Ctrl-C (exit code 130).
    """
    with contextlib.ExitStack() as stack:
        pressed = stack.enter_context(_ctrl_c_cancels())
        bar = stack.enter_context(progress_bar(state.console)) if state.interactive else None
        task = bar.add_task(f"migrate {migration.id}", total=None) if bar is not None else None

        def progress(status: MigrationStatus) -> bool:
            if bar is not None and task is not None:
                bar.update(task, completed=status.processed, total=status.total or None,
                           description=f"{status.source} -> {status.target} ({status.stage})")
            return not pressed.is_set()

        try:
            runner(progress)
        except KeyboardInterrupt:
            emit_error(f"stopped at once by a second Ctrl-C; migration {migration.id} will show as 'interrupted' "
                       f"when the store next opens; continue it with 'vecns migrate resume {migration.id}'.")
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
    status = migration.status()
    seconds = (status.finished_at - status.started_at).total_seconds() if status.finished_at and status.started_at \
        else 0.0
    state.emit(_status_dict(migration, status), message=(
        f"migration {status.id} {status.status}: {status.processed}/{status.total} objects from {status.source!r} "
        f"into {status.target!r} in {seconds:.1f} s, {status.failed} failed"
    ))
    if status.status == "cancelled":
        emit_error(f"cancelled migration {status.id} at a batch boundary; continue it with "
                   f"'vecns migrate resume {status.id}'.")
        raise click.exceptions.Exit(EXIT_INTERRUPTED)
    if status.status == "failed":
        raise CliError(f"migration {status.id} failed: {status.error} Fix the cause, then "
                       f"'vecns migrate resume {status.id}'.")


@cli.group("migrate")
def migrate_group() -> None:
    """Move a namespace to a new embedding model (re_extract), copy it, or extend it with features."""


@migrate_group.command("validate")
@_CONFIG_OPTION
@pass_state
def migrate_validate(state: CliState, config_path: Path) -> None:
    """Check a migration config against the store and estimate its cost; writes nothing."""
    _show_report(state, state.store().migrations.validate(config_path))


def _create(state: CliState, config_path: Path, *, start: bool) -> None:
    store = state.store()
    report = store.migrations.validate(config_path)
    if not report.valid:
        _show_report(state, report)
    created = store.migrations.create(config_path)
    if isinstance(created, ValidationReport):
        _show_report(state, created)
    elif start:
        _run_foreground(state, created, lambda progress: created.run(progress=progress))
    else:
        state.emit(_status_dict(created), message=created.id)


@migrate_group.command("create")
@_CONFIG_OPTION
@click.option("--start", is_flag=True, help="Run it here right away, until it ends (as 'vecns migrate start').")
@pass_state
def migrate_create(state: CliState, config_path: Path, start: bool) -> None:
    """Create a migration (status draft) and print its id; a config with dry_run only prints the report."""
    _create(state, config_path, start=start)


@migrate_group.command("run")
@_CONFIG_OPTION
@pass_state
def migrate_run(state: CliState, config_path: Path) -> None:
    """Validate, create and run a migration here until it ends (Ctrl-C cancels at the next batch)."""
    _create(state, config_path, start=True)


@migrate_group.command("start")
@click.argument("migration_id")
@pass_state
def migrate_start(state: CliState, migration_id: str) -> None:
    """Run draft MIGRATION_ID here until it ends; Ctrl-C cancels it at the next batch boundary (exit 130)."""
    migration = state.store().migrations.get(migration_id)
    _run_foreground(state, migration, lambda progress: migration.run(progress=progress))


@migrate_group.command("resume")
@click.argument("migration_id", required=False)
@pass_state
def migrate_resume(state: CliState, migration_id: str | None) -> None:
    """Continue an interrupted, cancelled or failed MIGRATION_ID from its checkpoint, here until it ends.

    Without MIGRATION_ID, resumes the store's one interrupted, cancelled or failed migration (a process that
    was killed leaves its migration interrupted); when there are none or several, says which exist.
    """
    store = state.store()
    migration = store.migrations.get(migration_id) if migration_id is not None else _only_resumable(store)
    _run_foreground(state, migration, lambda progress: migration.resume(progress=progress, background=False))


def _only_resumable(store: Store) -> Migration:
    """The store's single interrupted, cancelled or failed migration.

    Raises:
        CliError: There is none (the message names any drafts), or several (the message lists them).
    """
    found = [s for s in (m.status() for m in store.migrations.list()) if s.status in RESUMABLE]
    if len(found) == 1:
        return store.migrations.get(found[0].id)
    if not found:
        drafts = [m.id for m in store.migrations.list(status="draft")]
        hint = (f"; draft migrations start with 'vecns migrate start ID': {', '.join(drafts)}" if drafts
                else "; 'vecns migrate list' shows every migration")
        raise CliError(f"no interrupted, cancelled or failed migration to resume in {str(store.path)!r}{hint}.")
    listed = "; ".join(f"{s.id} ({s.status}, {s.source} -> {s.target}, {s.processed}/{s.total})" for s in found)
    raise CliError(f"{len(found)} migrations can be resumed: {listed}. Pick one: 'vecns migrate resume ID'.")


@migrate_group.command("status")
@click.argument("migration_id")
@pass_state
def migrate_status(state: CliState, migration_id: str) -> None:
    """Show MIGRATION_ID's status, stage, counts, rate and ETA."""
    data = _status_dict(state.store().migrations.get(migration_id))
    state.emit(data, lambda console: console.print(fields_table(data)))


@migrate_group.command("cancel")
@click.argument("migration_id")
@click.option("--reason", default=None, help="Why, kept with the migration [default: cancelled by the caller].")
@pass_state
def migrate_cancel(state: CliState, migration_id: str, reason: str | None) -> None:
    """Cancel MIGRATION_ID; the target keeps what was written, and 'vecns migrate resume' continues it."""
    migration = state.store().migrations.get(migration_id)
    status = migration.cancel(reason)
    state.emit(_status_dict(migration, status), message=f"migration {status.id} is {status.status}")


@migrate_group.command("list")
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only migrations with this status.")
@click.option("--type", "migration_type", type=click.Choice(MIGRATION_TYPES), default=None,
              help="Only migrations of this type.")
@pass_state
def migrate_list(state: CliState, status: str | None, migration_type: str | None) -> None:
    """List migrations, newest first."""
    found = state.store().migrations.list(status=status, migration_type=migration_type)
    data = [m.status().to_dict() for m in found]
    state.emit(data, _render_list(data))


def _render_list(data: list[dict[str, Any]]) -> Callable[[Console], None]:
    def render(console: Console) -> None:
        if not data:
            console.print(Text("no migrations; create one with 'vecns migrate create --config FILE'."))
            return
        console.print(table(
            ("id", "type", "status", "stage", "source", "target", "processed", "failed", "created"),
            ((d["id"], d["migration_type"], d["status"], d["stage"], d["source"], d["target"],
              f"{d['processed']}/{d['total']}", d["failed"], d["created_at"][:19]) for d in data),
        ))
        for d in data:
            if d["status"] in RESUMABLE:
                console.print(Text(f"{d['id']} is {d['status']}; finish it with 'vecns migrate resume {d['id']}'."))
    return render


@migrate_group.command("delete")
@click.argument("migration_id")
@pass_state
def migrate_delete(state: CliState, migration_id: str) -> None:
    """Forget MIGRATION_ID and its failure records (its target namespace stays; drop it with 'vecns ns drop')."""
    state.store().migrations.delete(migration_id)
    state.emit({"deleted": migration_id}, message=f"deleted migration {migration_id}")


@migrate_group.command("failures")
@click.argument("migration_id")
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Show at most this many failures (by object id).")
@pass_state
def migrate_failures(state: CliState, migration_id: str, limit: int) -> None:
    """List the objects MIGRATION_ID could not migrate, with each one's error."""
    found = state.store().migrations.get(migration_id).failures(limit=limit)
    data = [{"id": object_id, "error": error} for object_id, error in found]
    state.emit(data, lambda console: console.print(
        table(("object id", "error"), found) if found else Text(f"migration {migration_id} has no failures")))


@cli.command("cutover")
@click.argument("migration")
@click.option("--alias", required=True, help="The alias applications read through; it moves to the target.")
@click.option("--gate-metric", default=None,
              help="Refuse unless the target's stored evaluation on this metric (e.g. ndcg@10) is good enough.")
@click.option("--max-drop", type=float, default=None,
              help="With --gate-metric: how far below the source the target may score [default: 0.0].")
@click.option("--gate-dataset", default=None,
              help="With --gate-metric: compare evaluations on this dataset [default: that of the target's newest].")
@pass_state
def cutover_command(state: CliState, migration: str, alias: str, gate_metric: str | None, max_drop: float | None,
                    gate_dataset: str | None) -> None:
    """Move ALIAS to the target of MIGRATION (a completed migration's id, or its target namespace)."""
    gate: dict[str, Any] | None = None
    if gate_metric is None:
        if max_drop is not None or gate_dataset is not None:
            raise click.UsageError("--max-drop and --gate-dataset only apply together with --gate-metric.")
    else:
        gate = {"metric": gate_metric, "max_drop": 0.0 if max_drop is None else max_drop}
        if gate_dataset is not None:
            gate["dataset"] = gate_dataset
    result = state.store().cutover(migration, alias=alias, gate=gate)
    verdict = f"; gate: {result.gate}" if result.gate else ""
    state.emit(result.to_dict(), message=(
        f"alias {result.alias!r} -> {result.target!r} (was {result.source!r}); {result.applied_changes} late "
        f"changes applied{verdict}. Undo with 'vecns alias rollback {result.alias}'."
    ))
