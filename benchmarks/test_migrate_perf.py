"""Migrate end to end: ``vecns.migrate`` of a re_extract config, with the tiny model and each packaged model.

The source namespace (``VECNS_BENCH_INGEST_DOCS`` stdlib docstrings on the tiny test model) is built once
per module; every round migrates a fresh copy of it, with the target model loaded before the timer starts
(loading is a one-off per store, reported by compare.py). With the tiny target the timing is the engine's
own overhead (read, tokenise, DuckDB writes, index adds, checkpoints); with a real one, inference as well.
"""

from __future__ import annotations

import itertools
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("pytest_benchmark")
pytest.importorskip("onnx")  # the tiny model is built with it (the dev extra)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.tiny_model

from conftest import THREADS, model_params, open_store  # noqa: E402
from migrate_bench import migration_config  # noqa: E402

import vecns  # noqa: E402
from tests.tiny_model import build_tiny_model  # noqa: E402

ROUNDS = 3
TINY_SOURCE = "tiny-a"
TINY_TARGET = "tiny-b"


@pytest.fixture(scope="module")
def source_store(bench_dir: Path, docs) -> Path:
    """A closed store with namespace ``src`` (the docs on tiny-a) and both tiny models registered."""
    root = bench_dir / "source"
    models = bench_dir / "models"
    with open_store(root) as store:
        store.models.register(build_tiny_model(models / "a", dim=8, seed=0), model_id=TINY_SOURCE)
        store.models.register(build_tiny_model(models / "b", dim=16, seed=1), model_id=TINY_TARGET)
        store.create_namespace("src", TINY_SOURCE).add([{"id": d.id, "text": d.text} for d in docs])
    return root


class StoreCopies:
    """Hands out an open copy of the source store for each round and closes the previous one."""

    def __init__(self, source: Path, root: Path) -> None:
        self._source = source
        self._root = root
        self._counter = itertools.count()
        self._current: vecns.Store | None = None

    def next(self) -> vecns.Store:
        self.close()
        copy = self._root / f"round-{next(self._counter)}"
        shutil.copytree(self._source, copy)
        self._current = open_store(copy)
        return self._current

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None


@pytest.fixture
def store_copies(source_store: Path, tmp_path: Path) -> Iterator[StoreCopies]:
    copies = StoreCopies(source_store, tmp_path)
    yield copies
    copies.close()


@pytest.mark.parametrize("model_id", [pytest.param(TINY_TARGET, id="tiny"), *model_params()])
def test_migrate(benchmark, store_copies: StoreCopies, docs, model_id: str) -> None:
    config = migration_config("src", model_id, "dst")

    def setup() -> tuple[tuple, dict]:
        store = store_copies.next()
        store.embedder(model_id)
        return (store,), {}

    def migrate(store: vecns.Store) -> vecns.MigrationStatus:
        return vecns.migrate(store, config)

    status = benchmark.pedantic(migrate, setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert (status.status, status.processed, status.failed) == ("completed", len(docs), 0)
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(docs=len(docs), threads=THREADS, docs_per_s=round(len(docs) / median, 1))
