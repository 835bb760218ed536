"""Keeps each feature's usearch index in step with the vector tables (the truth).

Index files are derived state. On first use an index is loaded from its recorded file when the checksum
matches, caught up from the change log when it is behind, and rebuilt from the vector table when the file
is missing, damaged or unknown; each of these is logged. Files are named by generation
(``<namespace id>.<feature position>.<generation>.usearch``) so the recorded file stays valid until the
catalog points at its successor.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vecns._crash import crashpoint
from vecns.catalog import Catalog, Feature, IndexFileRecord, NamespaceRecord, records
from vecns.catalog import objects as rows_db
from vecns.errors import IndexCorruptedError
from vecns.hitcache import HitCache
from vecns.index import VectorIndex, cleanup_temp_files

log = logging.getLogger("vecns.index")

# Save an index on its own once this many changes are not in its file.
AUTOSAVE_CHANGES = 50_000


@dataclass
class _Live:
    index: VectorIndex
    seq: int
    unsaved: int = 0


class IndexManager:
    """The store's cache of live indexes, one per (namespace, feature).

    Args:
        catalog: The store's catalog.
        directory: The store's ``indexes/`` folder.
        threads: Threads for index builds and adds (0: usearch's choice, all cores).
    """

    def __init__(self, catalog: Catalog, directory: Path, *, threads: int = 0) -> None:
        self._catalog = catalog
        self._dir = directory
        self._threads = threads
        self.hits = HitCache()
        self._live: dict[tuple[str, str], _Live] = {}
        self._lock = threading.RLock()
        if not catalog.read_only:
            for path in cleanup_temp_files(directory):
                log.info("removed %s left by an interrupted index save", path.name)
            self._remove_orphans()

    def get(self, record: NamespaceRecord, feature: Feature) -> VectorIndex:
        """Return the live index of a feature, loading, catching up or rebuilding it first if needed."""
        live = self._live.get((record.id, feature.name))
        if live is not None:
            return live.index
        with self._catalog.write_lock, self._lock:
            live = self._live.get((record.id, feature.name))
            if live is None:
                live = self._open(record, feature)
                self._live[(record.id, feature.name)] = live
            return live.index

    def apply(self, record: NamespaceRecord, added: dict[str, tuple[np.ndarray, np.ndarray]], *,
              removed: list[int], seq: int) -> None:
        """Apply a committed write to the live indexes; call after the commit, under the write lock.

        Indexes not loaded yet are left alone: they catch up from the change log when first used. An index
        that fails to take the change is dropped from the cache, so its next use catches it up again.
        """
        written = [np.asarray(removed, dtype=np.int64), *(keys for keys, _ in added.values())]
        self.hits.forget(record.id, np.concatenate(written).tolist())
        for feature in record.features:
            live = self._live.get((record.id, feature.name))
            if live is None:
                continue
            try:
                self._apply_one(live, feature, added, removed)
            except Exception:
                log.exception("index of namespace %r feature %r missed a change; it will be caught up",
                              record.name, feature.name)
                self._live.pop((record.id, feature.name), None)
                continue
            live.seq = seq
            if live.unsaved >= AUTOSAVE_CHANGES and not self._catalog.read_only:
                self._save(record, feature, live)

    @staticmethod
    def _apply_one(live: _Live, feature: Feature, added: dict[str, tuple[np.ndarray, np.ndarray]],
                   removed: list[int]) -> None:
        if removed:
            live.index.remove(np.asarray(removed, dtype=np.int64))
        if feature.name in added:
            keys, vectors = added[feature.name]
            live.index.add(keys, vectors)
        live.unsaved += len(removed) + (len(added[feature.name][0]) if feature.name in added else 0)

    def save(self, record: NamespaceRecord | None = None) -> int:
        """Save live indexes with unsaved changes (of one namespace, or all). Returns how many were saved."""
        saved = 0
        with self._catalog.write_lock, self._lock:
            for (ns_id, name), live in list(self._live.items()):
                if record is not None and ns_id != record.id:
                    continue
                if live.unsaved or records.get_index_file(self._catalog, ns_id, name) is None:
                    ns = record if record is not None else records.find_namespace(self._catalog, ns_id=ns_id)
                    if ns is not None:
                        self._save(ns, next(f for f in ns.features if f.name == name), live)
                        saved += 1
        return saved

    def forget(self, record: NamespaceRecord) -> None:
        """Drop a namespace's live indexes and cached hits, and delete its index files."""
        self.hits.forget(record.id)
        with self._lock:
            for feature in record.features:
                self._live.pop((record.id, feature.name), None)
            for path in self._dir.glob(f"{record.id}.*"):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def close(self) -> None:
        """Save what is unsaved (unless read-only) and drop every live index."""
        if not self._catalog.read_only:
            self.save()
        with self._lock:
            self._live.clear()

    # -- internals -------------------------------------------------------------------------------

    def _remove_orphans(self) -> None:
        """Delete index files the catalog does not record (older generations left by an interrupted save)."""
        recorded = {row[0] for row in self._catalog.fetchall("SELECT file FROM index_files")}
        for path in self._dir.glob("*.usearch"):
            if path.name not in recorded and not path.is_symlink():
                log.info("removed %s, an index file the catalog no longer records", path.name)
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def _new(self, feature: Feature) -> VectorIndex:
        return VectorIndex(feature.dim, metric=feature.metric, dtype=feature.dtype, threads=self._threads)

    def _open(self, record: NamespaceRecord, feature: Feature) -> _Live:
        saved = records.get_index_file(self._catalog, record.id, feature.name)
        head = rows_db.latest_seq(self._catalog, record.id)
        if saved is None:
            live = self._rebuild(record, feature, head, reason="no saved index file", expected=True)
        else:
            path = self._dir / saved.file
            try:
                if path.is_symlink():
                    raise IndexCorruptedError(f"index file {path} is a symbolic link; vecns never follows one.")
                index = VectorIndex.load(path, dim=feature.dim, metric=feature.metric, dtype=feature.dtype,
                                         threads=self._threads,
                                         checksum=saved.checksum)
            except IndexCorruptedError as exc:
                live = self._rebuild(record, feature, head, reason=str(exc))
            else:
                live = _Live(index, saved.seq)
                if saved.seq < head:
                    self._catch_up(record, feature, live, head)
        if live.unsaved and not self._catalog.read_only:
            self._save(record, feature, live)
        return live

    def _rebuild(self, record: NamespaceRecord, feature: Feature, head: int, *, reason: str,
                 expected: bool = False) -> _Live:
        log.log(logging.INFO if expected else logging.WARNING,
                "rebuilding index of namespace %r feature %r from the database: %s", record.name, feature.name, reason)
        index = self._new(feature)
        for keys, vectors in rows_db.vectors(self._catalog, feature):
            index.add(keys, vectors)
        return _Live(index, head, unsaved=max(1, len(index)))

    def _catch_up(self, record: NamespaceRecord, feature: Feature, live: _Live, head: int) -> None:
        changes = rows_db.changes_since(self._catalog, record.id, live.seq, upto=head)
        touched = np.unique(np.asarray([key for _, key, _, _ in changes], dtype=np.int64))
        log.info("catching up index of namespace %r feature %r: %d changes since seq %d",
                 record.name, feature.name, len(changes), live.seq)
        present = np.empty(0, dtype=np.int64)
        for keys, vectors in rows_db.vectors(self._catalog, feature, touched):
            live.index.add(keys, vectors)
            present = np.concatenate([present, keys])
        gone = np.setdiff1d(touched, present)
        if len(gone):
            live.index.remove(gone)
        live.seq = head
        live.unsaved += len(touched)

    def _save(self, record: NamespaceRecord, feature: Feature, live: _Live) -> None:
        previous = records.get_index_file(self._catalog, record.id, feature.name)
        generation = int(previous.file.split(".")[-2]) + 1 if previous else 1
        name = f"{record.id}.{feature.position}.{generation}.usearch"
        self._dir.mkdir(parents=True, exist_ok=True)
        checksum = live.index.save(self._dir / name)
        with self._catalog.atomic() as tx:
            records.put_index_file(tx, record.id, feature.name,
                                   IndexFileRecord(name, checksum, live.seq, len(live.index)))
        crashpoint("after_index_checksum_commit")
        live.unsaved = 0
        if previous is not None and previous.file != name:
            crashpoint("during_old_cleanup")
            with contextlib.suppress(FileNotFoundError):
                (self._dir / previous.file).unlink()
