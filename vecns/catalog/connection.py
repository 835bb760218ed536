"""The DuckDB connection: opening, locking, a cursor per thread, transactions and schema upgrades.

This package is the only place vecns imports duckdb. Everything it raises is a ``VecnsError``.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

from vecns._crash import crashpoint
from vecns.errors import (
    ReadOnlyError,
    StoreClosedError,
    StoreCorruptedError,
    StoreError,
    StoreLockedError,
    StoreVersionError,
)

SCHEMA_VERSION = 2
_LOCK_PID = re.compile(r"PID (\d+)")
# Database files this process has open. DuckDB hands a second connect() of an open file the same database,
# which would give one store two independent sets of live indexes; vecns refuses that instead.
_open_paths: set[Path] = set()
_open_paths_lock = threading.Lock()


def _schema_steps() -> list[tuple[int, str, str]]:
    """Return the (version, description, sql) upgrade steps shipped with vecns, in order."""
    steps = []
    folder = resources.files("vecns.catalog") / "schema"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        number, _, rest = entry.name.partition("_")
        steps.append((int(number), rest.removesuffix(".sql").replace("_", " "), entry.read_text()))
    return steps


@contextlib.contextmanager
def translated(action: str) -> Iterator[None]:
    """Turn any DuckDB error raised inside the block into a vecns error that names ``action``."""
    try:
        yield
    except duckdb.Error as exc:
        raise _translate(exc, action) from exc


def _translate(exc: Exception, action: str) -> StoreError:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, duckdb.IOException) and "lock" in text.lower():
        return StoreLockedError(f"{action}: the database file is locked by another process ({text}). Only one "
                                "process may write a store: close it there, then retry.")
    if "read-only" in text.lower() or "read only" in text.lower():
        return ReadOnlyError(f"{action}: the store is open read-only ({text}). Open it with read_only=False.")
    if isinstance(exc, (duckdb.FatalException, duckdb.InternalException)) or "corrupt" in text.lower():
        return StoreCorruptedError(
            f"{action}: the database reported a fatal error ({text}). Close the store and reopen it; "
            "if reopening fails, keep the file and restore it from a backup."
        )
    return StoreError(f"{action} failed: the database reported {text}. If it persists, close and reopen the store; "
                      "if that fails too, keep the files and report the message.")


class Catalog:
    """One DuckDB database file, opened once per process, with a cursor per thread.

    Args:
        path: The database file (``<store>/vecns.duckdb``).
        read_only: Open without write access (several processes may do this when none writes).

    Raises:
        StoreLockedError: Another process holds the file open for writing.
        StoreVersionError: The file was written by a newer vecns schema.
        StoreCorruptedError: DuckDB could not read the file.
    """

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._local = threading.local()
        self._closed = False
        self._pid = os.getpid()
        self.write_lock = threading.RLock()
        self._key = self.path.resolve()
        with _open_paths_lock:
            if self._key in _open_paths:
                raise StoreLockedError(
                    f"store database {self.path} is already open in this process; use that Store object "
                    "(one per store per process), or close it before opening the store again."
                )
            _open_paths.add(self._key)
        try:
            self._open(read_only)
        except BaseException:
            with _open_paths_lock:
                _open_paths.discard(self._key)
            raise

    def _open(self, read_only: bool) -> None:
        try:
            self._con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as exc:
            text = str(exc).splitlines()[0]
            if "lock" in text.lower():
                match = _LOCK_PID.search(text)
                holder = f"process {match.group(1)}" if match else "another process"
                raise StoreLockedError(
                    f"store database {self.path} is locked by {holder} ({text}). "
                    "Only one process may open a store for writing: close it there, or open this one "
                    "with read_only=True once no process writes."
                ) from exc
            raise StoreCorruptedError(f"cannot open store database {self.path}: {text}") from exc
        except duckdb.Error as exc:
            raise StoreCorruptedError(
                f"cannot open store database {self.path}: {str(exc).splitlines()[0]}. "
                "It may be damaged or written by an incompatible DuckDB; restore it from a backup."
            ) from exc
        try:
            self._upgrade()
        except (StoreVersionError, StoreLockedError, ReadOnlyError):
            self._con.close()
            raise
        except StoreError as exc:
            self._con.close()
            raise StoreCorruptedError(
                f"cannot read store database {self.path}: {exc}. It may be truncated or damaged; keep the file "
                "and restore it from a backup."
            ) from exc

    # -- connection management -------------------------------------------------------------------

    def cursor(self) -> Any:
        """Return this thread's cursor, creating it on first use.

        Raises:
            StoreClosedError: The catalog was closed, or is used in a forked child process.
        """
        self.check_usable()
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            with translated("opening a cursor"):
                cur = self._con.cursor()
            self._local.cursor = cur
        return cur

    def check_usable(self) -> None:
        """Raise ``StoreClosedError`` when the catalog was closed or this is a forked child process.

        Reads served from memory (indexes, cached hits) call this too, so they refuse exactly when a
        database read would.
        """
        if self._closed:
            raise StoreClosedError(f"store {self.path.parent} is closed; open it again with vecns.connect().")
        if self.forked:
            raise StoreClosedError(
                f"store {self.path.parent} was opened in process {self._pid} and used after fork() in "
                f"process {os.getpid()}. Open the store in the child instead (use the 'spawn' start method)."
            )

    def close(self) -> None:
        """Close the database; later use raises ``StoreClosedError``. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self.forked:
            # The database belongs to the parent process: a checkpoint here would write its file, and can
            # hang on locks held by threads that fork() did not copy.
            return
        with _open_paths_lock:
            _open_paths.discard(self._key)
        with contextlib.suppress(duckdb.Error):
            if not self.read_only:
                crashpoint("during_checkpoint")
                self._con.execute("CHECKPOINT")
        with contextlib.suppress(duckdb.Error):
            self._con.close()

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._closed

    @property
    def forked(self) -> bool:
        """Whether this is a child process forked after the catalog was opened (it may not be used here)."""
        return os.getpid() != self._pid

    @contextlib.contextmanager
    def atomic(self) -> Iterator[Any]:
        """Run the block as one transaction under the store's write lock; yields the cursor.

        Nested use joins the outer transaction. On any exception the whole transaction is rolled back.
        """
        if self.read_only:
            raise ReadOnlyError(
                f"store {self.path.parent} is open read-only; reopen it with read_only=False to write."
            )
        with self.write_lock:
            cur = self.cursor()
            if getattr(self._local, "depth", 0):
                self._local.depth += 1
                try:
                    yield cur
                finally:
                    self._local.depth -= 1
                return
            with translated("starting a transaction"):
                cur.execute("BEGIN TRANSACTION")
            self._local.depth = 1
            try:
                yield cur
            except BaseException:
                self._local.depth = 0
                with contextlib.suppress(duckdb.Error):
                    cur.execute("ROLLBACK")
                raise
            self._local.depth = 0
            with translated("committing a transaction"):
                cur.execute("COMMIT")

    # -- plain queries ---------------------------------------------------------------------------

    def fetchall(self, sql: str, params: Any = None) -> list[tuple]:
        """Run one statement and return all rows."""
        cur = self.cursor()
        with translated("a catalog query"):
            return (cur.execute(sql, params) if params is not None else cur.execute(sql)).fetchall()

    def fetchone(self, sql: str, params: Any = None) -> tuple | None:
        """Run one statement and return its first row, or None."""
        cur = self.cursor()
        with translated("a catalog query"):
            rows = (cur.execute(sql, params) if params is not None else cur.execute(sql)).fetchall()
        return rows[0] if rows else None

    def arrow(self, sql: str, params: Any = None) -> Any:
        """Run one query and return its result as a pyarrow Table."""
        cur = self.cursor()
        with translated("a catalog query"):
            return cur.sql(sql, params=params).to_arrow_table()

    def arrow_batches(self, sql: str, params: Any = None, *, batch_size: int = 1024) -> Iterator[Any]:
        """Stream a query's committed result as pyarrow RecordBatches of at most ``batch_size`` rows.

        The stream reads through a cursor of its own, so other queries may run while it is open.
        """
        self.cursor()  # raises when closed or forked
        with translated("a catalog query"):
            cur = self._con.cursor()
            reader = cur.sql(sql, params=params).to_arrow_reader(batch_size)
        while True:
            with translated("reading a query result"):
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
            yield batch

    # -- counters --------------------------------------------------------------------------------

    def next_values(self, cur: Any, name: str, count: int) -> int:
        """Reserve ``count`` consecutive values of counter ``name`` inside the open transaction.

        Returns the first reserved value; the reserved range is ``[first, first + count)``.
        """
        with translated(f"reserving {name} numbers"):
            ((last,),) = cur.execute(
                "UPDATE vecns_counters SET value = value + ? WHERE name = ? RETURNING value", [count, name]
            ).fetchall()
        return int(last) - count + 1

    def current_seq(self) -> int:
        """The highest change number given out so far."""
        row = self.fetchone("SELECT value FROM vecns_counters WHERE name = 'seq'")
        return int(row[0]) if row else 0

    # -- schema ----------------------------------------------------------------------------------

    def _upgrade(self) -> None:
        cur = self.cursor()
        with translated("reading the schema version"):
            has_meta = cur.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'vecns_meta'"
            ).fetchall()[0][0]
            version = 0
            if has_meta:
                rows = cur.execute("SELECT value FROM vecns_meta WHERE key = 'schema_version'").fetchall()
                version = int(rows[0][0]) if rows else 0
        if version > SCHEMA_VERSION:
            raise StoreVersionError(
                f"store {self.path.parent} has schema version {version}, but this vecns understands up to "
                f"{SCHEMA_VERSION}. Upgrade vecns to open it."
            )
        pending = [step for step in _schema_steps() if step[0] > version]
        if not pending:
            return
        if self.read_only:
            raise StoreVersionError(
                f"store {self.path.parent} has schema version {version} and needs an upgrade to "
                f"{SCHEMA_VERSION}; open it once with read_only=False."
            )
        from vecns import __version__

        with self.atomic() as tx:
            for number, description, sql in pending:
                with translated(f"applying schema step {number}"):
                    code = "\n".join(ln for ln in sql.splitlines() if not ln.lstrip().startswith("--"))
                    for statement in (part.strip() for part in code.split(";")):
                        if statement:
                            tx.execute(statement)
                    if number == 1:
                        tx.execute(
                            "CREATE TABLE vecns_schema_history (version INTEGER PRIMARY KEY, "
                            "description VARCHAR, applied_at TIMESTAMPTZ, vecns_version VARCHAR, "
                            "duckdb_version VARCHAR)"
                        )
                    tx.execute(
                        "INSERT INTO vecns_schema_history VALUES (?, ?, now(), ?, ?)",
                        [number, description, __version__, duckdb.__version__],
                    )
                    tx.execute(
                        "INSERT OR REPLACE INTO vecns_meta VALUES ('schema_version', ?)", [str(number)]
                    )


def duckdb_version() -> str:
    """The version of the DuckDB library in use."""
    return str(duckdb.__version__)
