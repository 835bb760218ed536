"""The migration engine: a snapshot pass through a bounded pipeline, then catch-up from the change log.

Stages run on their own threads with bounded queues, so memory stays flat whatever the source size::

    read (source rows, key order, seq <= snapshot) -> tokenise -> infer (max_workers) -> write

The writer commits each batch's target rows, vectors, change-log rows and the checkpoint (last source
key, counts) in ONE transaction, in key order. Target rows reuse the source's keys, so a batch replayed
after a crash replaces exactly what it wrote before.

Tokenise and infer work on windows of consecutive batches (up to ``SORT_WINDOW_BATCHES`` of them and about
``SORT_WINDOW`` objects), so texts are sorted by token length across the window rather than within each
batch: on 1,000 docstrings in batches of 256 that cut padded tokens from 1.037x to 1.02x the real ones. A
window only changes how vectors are computed; they are still committed, checkpointed and cancelled batch
by batch. A window that fails is embedded again batch by batch, and only a failing batch object by object.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from vecns._crash import crashpoint
from vecns.catalog import NamespaceRecord, records
from vecns.catalog import migrations as mig_db
from vecns.catalog import objects as rows_db
from vecns.errors import MigrationError, PlanMismatchError, VecnsError
from vecns.migrate.plan import Plan

if TYPE_CHECKING:
    from vecns.store import Store

_DONE = object()
MAX_CATCH_UP_ROUNDS = 20
# Objects tokenised and embedded together: whole batches, at most SORT_WINDOW_BATCHES of them (so progress
# and checkpoints still come every few batches) and no more than SORT_WINDOW objects unless one batch is.
SORT_WINDOW = 1024
SORT_WINDOW_BATCHES = 4


def window_batches(batch_size: int) -> int:
    """How many batches of ``batch_size`` objects one sort window holds (at least one)."""
    return max(1, min(SORT_WINDOW_BATCHES, SORT_WINDOW // batch_size))


class Cancelled(Exception):
    """Raised inside the engine when a cancel was asked for; never escapes ``Engine.run``."""


@dataclass
class Batch:
    """One batch flowing through the pipeline."""

    number: int
    objects: list[rows_db.StoredObject]
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)
    ok: list[int] = field(default_factory=list)


@dataclass
class Window:
    """Consecutive batches tokenised and embedded together; ``tokens`` index their ``ok`` texts in order."""

    batches: list[Batch]
    tokens: dict[str, list[Any]] = field(default_factory=dict)


def now() -> dt.datetime:
    """The current UTC time."""
    return dt.datetime.now(dt.timezone.utc)


class Engine:
    """Runs one migration to completion, cancellation or failure on the calling thread.

    Args:
        store: The open store.
        migration_id: The migration's id (its row holds the checkpoint).
        plan: The resolved plan.
        target: The target namespace (created before the run).
        on_batch: Called after each committed batch with the number of objects written; returning False
            asks for cancellation.
        cancel: Set to cancel at the next batch boundary.
    """

    def __init__(self, store: Store, migration_id: str, plan: Plan, target: NamespaceRecord, *,
                 on_batch: Callable[[], bool], cancel: threading.Event) -> None:
        self._store = store
        self._catalog = store._catalog
        self._id = migration_id
        self._plan = plan
        self._target = target
        self._on_batch = on_batch
        self._cancel = cancel
        self._batch_size = plan.config.batch_options.batch_size
        self._workers = plan.config.batch_options.max_workers
        by_name = {f.name: f for f in plan.source.features}
        self._copied = [f.name for f in target.features if f.name not in plan.extracted]
        self._source_feature = {name: by_name[name] for name in self._copied}
        self._embedders = {f.name: store.embedder(f.model_id) for f in target.features if f.name in plan.extracted}
        for feature in target.features:
            if feature.name in self._embedders and self._embedders[feature.name].fingerprint != feature.fingerprint:
                raise PlanMismatchError(
                    f"model {feature.model_id!r} changed on disk since this migration was planned; its target "
                    f"feature {feature.name!r} is locked to another fingerprint. Restore the model files, or "
                    "delete this migration and its target and start a new one."
                )
        self.provider = next((e.provider for e in self._embedders.values()), None)
        self._pool: ThreadPoolExecutor | None = None
        row = mig_db.get(self._catalog, migration_id)
        self._processed, self._caught_up, self._failed = row.processed, row.caught_up, row.failed

    # -- the snapshot pass -----------------------------------------------------------------------

    def snapshot_pass(self, snapshot_seq: int, after_key: int) -> None:
        """Copy or re-extract every source object with seq <= snapshot after ``after_key``, in key order."""
        filters = self._plan.filters
        source_rows = rows_db.iterate(self._catalog, self._plan.source, batch_size=self._batch_size,
                                      after_key=after_key, max_seq=snapshot_seq, where=filters.where,
                                      params=filters.params)
        for batch in self._pipeline(source_rows):
            self._commit(batch, checkpoint=True)

    def _pipeline(self, source_rows: Iterator[list[rows_db.StoredObject]]) -> Iterator[Batch]:
        depth = max(2, self._workers * 2)
        read_q: queue.Queue = queue.Queue(depth)
        token_q: queue.Queue = queue.Queue(depth)
        out_q: queue.Queue = queue.Queue(depth)
        stop = threading.Event()
        errors: list[BaseException] = []

        def put(q: queue.Queue, item: Any) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def take(q: queue.Queue) -> Any:
            while not stop.is_set():
                try:
                    return q.get(timeout=0.1)
                except queue.Empty:
                    continue
            return _DONE

        def guarded(fn: Callable[[], None], downstream: queue.Queue, count: int = 1) -> Callable[[], None]:
            def run() -> None:
                try:
                    fn()
                except BaseException as exc:  # noqa: BLE001 - handed to the writer thread, re-raised there
                    errors.append(exc)
                    stop.set()
                finally:
                    for _ in range(count):
                        put(downstream, _DONE)
            return run

        def read() -> None:
            for number, objects in enumerate(source_rows):
                if not put(read_q, Batch(number, objects)):
                    return

        def tokenise() -> None:
            ended, batches = False, 1  # the first window is one batch, so inference starts early
            while not ended:
                window = Window([])
                while len(window.batches) < batches:
                    batch = take(read_q)
                    if batch is _DONE:
                        ended = True
                        break
                    window.batches.append(batch)
                if not window.batches:
                    return
                batches = window_batches(self._batch_size)
                self._tokenise(window)
                if not put(token_q, window):
                    return

        def infer() -> None:
            while True:
                window = take(token_q)
                if window is _DONE:
                    put(token_q, _DONE)  # let the other inference workers see the end too
                    return
                self._infer(window, concurrency=self._workers)
                for batch in window.batches:
                    if not put(out_q, batch):
                        return

        # The inference threads hand their batches' token batches to one shared pool of as many workers, so
        # the cores stay busy to the end of the run instead of idling while one batch's tail finishes.
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="vecns-migrate-embed")
        threads = [threading.Thread(target=guarded(read, read_q), name="vecns-migrate-read", daemon=True),
                   threading.Thread(target=guarded(tokenise, token_q), name="vecns-migrate-tokenise", daemon=True)]
        threads += [threading.Thread(target=guarded(infer, out_q), name=f"vecns-migrate-infer-{i}", daemon=True)
                    for i in range(self._workers)]
        for thread in threads:
            thread.start()
        pending: dict[int, Batch] = {}
        expected, finished = 0, 0
        try:
            while finished < self._workers:
                try:
                    item = out_q.get(timeout=0.1)
                except queue.Empty:
                    if errors:  # a stage failed: its end-of-stream marker may never arrive
                        raise errors[0] from None
                    continue
                if item is _DONE:
                    finished += 1
                    continue
                pending[item.number] = item
                while expected in pending:
                    yield pending.pop(expected)
                    expected += 1
            if errors:
                raise errors[0]
            if pending:
                raise MigrationError(f"the pipeline lost batches {sorted(pending)[:3]}; resume the migration.")
        finally:
            stop.set()
            pool, self._pool = self._pool, None
            pool.shutdown(wait=False, cancel_futures=True)  # queued token batches are not run for nothing
            for thread in threads:
                thread.join(timeout=30)
            pool.shutdown(wait=True)

    def _tokenise(self, window: Window) -> None:
        texts = []
        for batch in window.batches:
            batch.ok = [i for i, o in enumerate(batch.objects) if o.text is not None and o.text.strip()]
            if self._embedders:
                missing = set(range(len(batch.objects))) - set(batch.ok)
                batch.failures = [(batch.objects[i].id, "the object has no text to extract a vector from")
                                  for i in sorted(missing)]
            else:
                batch.ok = list(range(len(batch.objects)))
            texts += [batch.objects[i].text for i in batch.ok]
        for name, embedder in self._embedders.items():
            window.tokens[name] = embedder.tokenize(texts, kind="document") if texts else []

    def _infer(self, window: Window, *, concurrency: int = 1) -> None:
        # concurrency: inference threads running at once, so that they share the cores instead of each
        # asking for all of them.
        try:
            vectors = {name: self._embed_tokens(embedder, window.tokens[name],
                                                sum(len(b.ok) for b in window.batches), concurrency)
                       for name, embedder in self._embedders.items()}
        except VecnsError:
            if len(window.batches) > 1:  # find the failing batch; the others keep their batched speed
                window.tokens.clear()
                for batch in window.batches:
                    alone = Window([batch])
                    self._tokenise(alone)
                    self._infer(alone, concurrency=concurrency)
                return
            self._one_by_one(window.batches[0])
        else:
            start = 0
            for batch in window.batches:
                batch.vectors = {name: out[start:start + len(batch.ok)] for name, out in vectors.items()}
                start += len(batch.ok)
        window.tokens.clear()
        for batch in window.batches:
            self._copy_vectors(batch)

    def _embed_tokens(self, embedder: Any, token_batches: list[Any], count: int, concurrency: int) -> np.ndarray:
        out = np.empty((count, embedder.dim), dtype=np.float32)
        pool = self._pool
        if pool is None:
            for tokens in token_batches:
                out[tokens.positions] = embedder.infer(tokens, concurrency=concurrency)
            return out
        futures = [pool.submit(embedder.infer, tokens, concurrency=concurrency) for tokens in token_batches]
        wait(futures)  # all settled before a failure falls back to one object at a time
        for tokens, future in zip(token_batches, futures, strict=True):
            out[tokens.positions] = future.result()
        return out

    def _copy_vectors(self, batch: Batch) -> None:
        if not (self._copied and batch.ok):
            return
        keys = [batch.objects[i].key for i in batch.ok]
        for name in self._copied:
            got_keys, vectors = _concat(rows_db.vectors(self._catalog, self._source_feature[name], keys),
                                        self._source_feature[name].dim)
            if not np.array_equal(got_keys, np.asarray(keys, dtype=np.int64)):
                raise MigrationError(f"source vectors of feature {name!r} are missing for some keys; the "
                                     "source namespace is inconsistent.")
            batch.vectors[name] = vectors

    def _one_by_one(self, batch: Batch) -> None:
        """Embed a failed batch object by object, so one bad object does not fail its neighbours.

        An object is kept only when every extracted feature could be made for it.
        """
        rows: dict[str, list[np.ndarray]] = {name: [] for name in self._embedders}
        keep = []
        for i in batch.ok:
            text = batch.objects[i].text
            vectors = {}
            for name, embedder in self._embedders.items():
                try:
                    vectors[name] = embedder.embed([text])[0]
                except VecnsError as exc:
                    batch.failures.append((batch.objects[i].id, f"model {embedder.spec.model_id}: {exc}"))
                    break
            if len(vectors) < len(self._embedders):
                continue
            keep.append(i)
            for name, vector in vectors.items():
                rows[name].append(vector)
        batch.ok = keep
        batch.vectors = {name: np.asarray(rows[name], dtype=np.float32).reshape(len(keep), e.dim)
                         for name, e in self._embedders.items()}

    # -- writing ---------------------------------------------------------------------------------

    def _commit(self, batch: Batch, *, checkpoint: bool, applied_seq: int | None = None) -> None:
        if batch.failures and self._plan.config.on_error == "fail":
            object_id, error = batch.failures[0]
            raise MigrationError(f"object {object_id!r} failed ({error}) and on_error is 'fail'. Fix the object, "
                                 "or set on_error to 'skip', and resume.")
        objects = [batch.objects[i] for i in batch.ok]
        keys = np.asarray([o.key for o in objects], dtype=np.int64)
        failed_ids = {object_id for object_id, _ in batch.failures}
        crashpoint("before_batch_txn")
        with self._catalog.write_lock:
            with self._catalog.atomic() as tx:
                # Replace what an earlier attempt (or an earlier version of an object) left in the target;
                # an object that fails now must not keep a vector from before.
                present = rows_db.existing(tx, self._target, [o.id for o in batch.objects])
                gone = {i: key for i, (key, _) in present.items() if i in failed_ids}
                replace = [key for i, (key, _) in present.items() if i not in failed_ids]
                seq = rows_db.delete(tx, self._catalog, self._target, gone) if gone else None
                if objects:
                    rows = rows_db.ObjectRows(
                        keys=keys, ids=[o.id for o in objects], collections=[o.collection for o in objects],
                        texts=[o.text for o in objects], metadata=[o.metadata for o in objects],
                        created_at=[o.created_at for o in objects], updated_at=[o.updated_at for o in objects])
                    seq = rows_db.write(tx, self._catalog, self._target, rows, batch.vectors, replace_keys=replace)
                crashpoint("after_insert_before_progress")
                values: dict[str, Any] = {"heartbeat_at": now()}
                if batch.failures or self._failed:
                    mig_db.record_failures(tx, self._id, batch.failures)
                    mig_db.clear_failures(tx, self._id, [o.id for o in objects])
                    values["failed"] = mig_db.count_failures(self._catalog, self._id)
                if checkpoint:
                    values.update(last_key=batch.objects[-1].key, processed=self._processed + len(batch.objects))
                else:
                    values.update(caught_up=self._caught_up + len(batch.objects))
                if applied_seq is not None:
                    values["applied_seq"] = applied_seq
                mig_db.update(tx, self._id, **values)
            self._processed = values.get("processed", self._processed)
            self._caught_up = values.get("caught_up", self._caught_up)
            self._failed = values.get("failed", self._failed)
            if seq is not None:
                added = {name: (keys, vectors) for name, vectors in batch.vectors.items()} if objects else {}
                moved = sorted(set(replace) - set(keys.tolist()))  # an id re-added in the source got a new key
                self._store._indexes.apply(self._target, added, removed=[*gone.values(), *moved], seq=seq)
                crashpoint("after_index_add")
        crashpoint("after_commit")
        if not self._on_batch():
            self._cancel.set()
        if self._cancel.is_set():
            crashpoint("cancel_requested")
            raise Cancelled()

    # -- catch-up --------------------------------------------------------------------------------

    def catch_up(self, applied_seq: int) -> int:
        """Replay the source's changes after ``applied_seq`` into the target; returns the new applied seq.

        Rounds repeat while writes keep arriving (at most ``MAX_CATCH_UP_ROUNDS``); whatever lands after the
        last round is applied by cutover, under the write lock.
        """
        for _ in range(MAX_CATCH_UP_ROUNDS):
            head = self._catalog.current_seq()
            changes = rows_db.changes_since(self._catalog, self._plan.source.id, applied_seq, upto=head)
            if not changes:
                return head
            self._apply_changes(changes, head)
            applied_seq = head
        return applied_seq

    def _apply_changes(self, changes: list[tuple[int, int, str, str]], head: int) -> None:
        last: dict[int, str] = {}
        for _, key, object_id, _ in changes:
            last[key] = object_id
        keys = list(last)
        filters = self._plan.filters
        for start in range(0, len(keys), self._batch_size):
            chunk = keys[start:start + self._batch_size]
            current = {o.key: o for o in rows_db.get(self._catalog, self._plan.source, keys=chunk,
                                                      where=filters.where, params=filters.params)}
            objects = sorted(current.values(), key=lambda o: o.key)
            removed = self._removed_ids([last[k] for k in chunk if k not in current])
            final = start + self._batch_size >= len(keys)
            if objects:
                batch = Batch(0, objects)
                window = Window([batch])
                self._tokenise(window)
                self._infer(window)
                self._commit(batch, checkpoint=False, applied_seq=head if final and not removed else None)
            if removed:
                self._delete(removed, applied_seq=head if final else None)

    def _removed_ids(self, candidates: list[str]) -> list[str]:
        """The ids among ``candidates`` (ids of keys gone from the source or its filter) to delete.

        An id deleted and then added again in the source has a new key; its old key's change must not
        delete the target row that the new key's change writes.
        """
        if not candidates:
            return []
        filters = self._plan.filters
        live = {o.id for o in rows_db.get(self._catalog, self._plan.source, ids=candidates, where=filters.where,
                                          params=filters.params, with_text=False)}
        return [i for i in dict.fromkeys(candidates) if i not in live]

    def _delete(self, ids: list[str], *, applied_seq: int | None) -> None:
        with self._catalog.write_lock:
            with self._catalog.atomic() as tx:
                found = {i: k for i, (k, _) in rows_db.existing(tx, self._target, ids).items()}
                seq = rows_db.delete(tx, self._catalog, self._target, found) if found else None
                values: dict[str, Any] = {"caught_up": self._caught_up + len(ids), "heartbeat_at": now()}
                if applied_seq is not None:
                    values["applied_seq"] = applied_seq
                mig_db.update(tx, self._id, **values)
            self._caught_up += len(ids)
            if seq is not None:
                self._store._indexes.apply(self._target, {}, removed=list(found.values()), seq=seq)

    def finish_index(self) -> None:
        """Build (or catch up) and save the target's indexes, so its first search is fast."""
        for feature in self._target.features:
            self._store._indexes.get(self._target, feature)
        self._store._indexes.save(self._target)


def _concat(parts: Iterator[tuple[np.ndarray, np.ndarray]], dim: int) -> tuple[np.ndarray, np.ndarray]:
    keys, vectors = [], []
    for k, v in parts:
        keys.append(k)
        vectors.append(v)
    if not keys:
        return np.empty(0, np.int64), np.empty((0, dim), np.float32)
    return np.concatenate(keys), np.concatenate(vectors)


def target_record(store: Store, target_id: str) -> NamespaceRecord:
    """The target namespace's catalog record."""
    found = records.find_namespace(store._catalog, ns_id=target_id)
    if found is None:
        raise MigrationError(f"the migration's target namespace {target_id} was dropped; delete the migration "
                             "and create a new one.")
    return found


def throttle(seconds: float) -> Callable[[], bool]:
    """A function that returns True at most once per ``seconds``."""
    last = [0.0]

    def ready() -> bool:
        current = time.monotonic()
        if current - last[0] >= seconds:
            last[0] = current
            return True
        return False

    return ready
