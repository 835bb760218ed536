"""A bounded cache of what a search hit shows (id, collection, metadata), so hot hits skip the database.

Derived state like the indexes: every write reaches it through ``IndexManager.apply`` (under the store's
write lock, after the commit), which forgets the written keys and bumps the namespace's generation. A reader
fills the cache only if the generation did not move while it read the database, so a row read before a
concurrent write can never be cached after that write.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

MAX_ENTRIES = 200_000


class HitCache:
    """Least-recently-used entries of (namespace id, key) -> stored object without its text."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: OrderedDict[tuple[str, int], Any] = OrderedDict()
        self._generation: dict[str, int] = {}
        self._max = max_entries
        self._lock = threading.Lock()

    def generation(self, ns_id: str) -> int:
        """The namespace's current generation; read it before reading the database."""
        with self._lock:
            return self._generation.get(ns_id, 0)

    def lookup(self, ns_id: str, keys: Iterable[int]) -> tuple[dict[int, Any], list[int]]:
        """Split keys into those cached (key -> entry) and those to read from the database."""
        found: dict[int, Any] = {}
        missing: list[int] = []
        with self._lock:
            for key in keys:
                entry = self._entries.get((ns_id, key))
                if entry is None:
                    missing.append(key)
                else:
                    self._entries.move_to_end((ns_id, key))
                    found[key] = entry
        return found, missing

    def fill(self, ns_id: str, entries: dict[int, Any], generation: int) -> None:
        """Cache entries read from the database while the namespace was at ``generation``."""
        with self._lock:
            if self._generation.get(ns_id, 0) != generation:
                return
            for key, entry in entries.items():
                self._entries[(ns_id, key)] = entry
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def forget(self, ns_id: str, keys: Iterable[int] | None = None) -> None:
        """Drop the given keys of a namespace (all of them when None) and bump its generation."""
        with self._lock:
            self._generation[ns_id] = self._generation.get(ns_id, 0) + 1
            if keys is None:
                for cached in [k for k in self._entries if k[0] == ns_id]:
                    del self._entries[cached]
                return
            for key in keys:
                self._entries.pop((ns_id, int(key)), None)
