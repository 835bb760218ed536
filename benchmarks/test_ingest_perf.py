"""Ingest: text end to end (embedding included) per packaged model, and caller-supplied vectors."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("pytest_benchmark")

from conftest import THREADS, clustered_vectors, model_params, open_store  # noqa: E402

import vecns  # noqa: E402

VECTOR_OBJECTS = 10_000
ROUNDS = 3


class FreshStores:
    """Hands out a new empty store for each benchmark round and closes the previous one."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._counter = itertools.count()
        self._current: vecns.Store | None = None

    @property
    def current(self) -> vecns.Store | None:
        """The store of the last round."""
        return self._current

    def next(self) -> vecns.Store:
        self.close()
        self._current = open_store(self._root / f"round-{next(self._counter)}")
        return self._current

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None


@pytest.fixture
def fresh_stores(tmp_path: Path) -> Iterator[FreshStores]:
    stores = FreshStores(tmp_path)
    yield stores
    stores.close()


@pytest.mark.parametrize("model_id", model_params())
def test_text_ingest(benchmark, fresh_stores: FreshStores, docs, model_id: str) -> None:
    objects = [{"id": d.id, "text": d.text} for d in docs]

    def setup() -> tuple[tuple, dict]:
        store = fresh_stores.next()
        # Loading the model (session creation, ~1 s) is a one-off per store, not part of ingest speed.
        store.embedder(model_id)
        return (store,), {}

    def ingest(store: vecns.Store) -> int:
        ns = store.create_namespace("docs", model_id)
        return ns.add(objects)

    written = benchmark.pedantic(ingest, setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert written == len(objects)
    tokens = fresh_stores.current.embedder(model_id).count_tokens([o["text"] for o in objects])
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(
        docs=len(objects), tokens=tokens, threads=THREADS,
        docs_per_s=round(len(objects) / median, 1), tokens_per_s=round(tokens / median),
    )


@pytest.mark.parametrize("batch_size", [256, 2048])
def test_vector_ingest(benchmark, fresh_stores: FreshStores, batch_size: int) -> None:
    vectors = clustered_vectors(VECTOR_OBJECTS)
    objects = [{"id": f"v{i}", "vector": vectors[i], "collection": f"c{i % 100}", "metadata": {"i": i}}
               for i in range(VECTOR_OBJECTS)]

    def setup() -> tuple[tuple, dict]:
        return (fresh_stores.next(),), {}

    def ingest(store: vecns.Store) -> int:
        ns = store.create_namespace("vectors", dim=vectors.shape[1], model_label="bench")
        written = ns.add(objects, batch_size=batch_size)
        # Searching once builds the index from the database, which is what makes the data searchable.
        ns.search(vectors[0], k=1)
        return written

    written = benchmark.pedantic(ingest, setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert written == VECTOR_OBJECTS
    benchmark.extra_info.update(
        objects=VECTOR_OBJECTS, batch_size=batch_size,
        objects_per_s=round(VECTOR_OBJECTS / benchmark.stats.stats.median),
    )
