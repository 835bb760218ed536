"""Threads sharing one store: writers, readers and index saves at once, checked against exact bookkeeping.

Eight threads run for a fixed time on a text namespace (the tiny model): three writers (add, upsert,
delete; each owns its ids, so its own bookkeeping is exact), four readers (text search, vector search,
filtered search, get, count) and one that saves indexes. No thread may see an error, no hit may name an
id that was never written, and at the end the database, the live index and a reopened store all agree
with the bookkeeping. A second process's locking is covered in test_store.py and test_reliability.py.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import vecns
from tests.tiny_model import build_tiny_model

WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo")
WRITERS = 3
READERS = 4


@dataclass
class Ledger:
    """What the writers did: every id ever written, and each writer's live ids (it alone changes its set)."""

    written: set[str] = field(default_factory=set)
    alive: list[set[str]] = field(default_factory=lambda: [set() for _ in range(WRITERS)])
    lock: threading.Lock = field(default_factory=threading.Lock)
    errors: list[BaseException] = field(default_factory=list)
    operations: dict[str, int] = field(default_factory=dict)

    def count(self, name: str) -> None:
        with self.lock:
            self.operations[name] = self.operations.get(name, 0) + 1


def _text(rng: np.random.Generator) -> str:
    return " ".join(rng.choice(WORDS, size=int(rng.integers(3, 12))))


def _writer(ns: vecns.Namespace, ledger: Ledger, me: int, stop: float) -> None:
    rng = np.random.default_rng(100 + me)
    alive = ledger.alive[me]
    serial = 0
    step = 0
    try:
        while time.monotonic() < stop:
            operation = ("add", "upsert", "delete", "add")[step % 4]
            step += 1
            if operation == "add" or len(alive) < 10:
                ids = [f"w{me}-{serial + i}" for i in range(20 if step == 1 else int(rng.integers(1, 20)))]
                serial += len(ids)
                with ledger.lock:
                    ledger.written.update(ids)  # before the call: a reader may see them once committed
                ns.add([{"id": i, "text": _text(rng), "collection": f"c{me}", "metadata": {"w": me}} for i in ids])
                alive.update(ids)
                ledger.count("add")
            elif operation == "upsert":
                old = list(rng.choice(sorted(alive), size=min(5, len(alive)), replace=False))
                new = [f"w{me}-{serial + i}" for i in range(2)]
                serial += len(new)
                with ledger.lock:
                    ledger.written.update(new)
                ns.upsert([{"id": i, "text": _text(rng), "collection": f"c{me}", "metadata": {"w": me}}
                           for i in old + new])
                alive.update(new)
                ledger.count("upsert")
            else:
                gone = list(rng.choice(sorted(alive), size=min(int(rng.integers(1, 10)), len(alive)), replace=False))
                assert ns.delete(gone + [f"never-{me}"]) == len(gone)
                alive.difference_update(gone)
                ledger.count("delete")
    except BaseException as exc:  # noqa: BLE001 - handed to the main thread
        ledger.errors.append(exc)


def _reader(ns: vecns.Namespace, ledger: Ledger, me: int, stop: float) -> None:
    rng = np.random.default_rng(200 + me)
    try:
        while time.monotonic() < stop:
            choice = rng.random()
            if choice < 0.3:
                hits = ns.search(_text(rng), k=10)
            elif choice < 0.6:
                hits = ns.search(rng.standard_normal(8).astype(np.float32), k=int(rng.integers(1, 50)))
            elif choice < 0.85:
                writer = int(rng.integers(0, WRITERS))
                hits = ns.search(_text(rng), k=10, filters={"collection_ids": [f"c{writer}"]})
                assert all(h.collection == f"c{writer}" and h.metadata == {"w": writer} for h in hits)
            else:
                hits = []
                assert ns.count() >= 0
                with ledger.lock:
                    some = next(iter(ledger.written), None)
                if some is not None:
                    with contextlib.suppress(vecns.ObjectNotFoundError):  # deleted, or not committed yet
                        assert ns.get(some).id == some
            with ledger.lock:
                unknown = [h.id for h in hits if h.id not in ledger.written]
            assert unknown == [], f"hits name ids never written: {unknown}"
            scores = [h.score for h in hits]
            assert scores == sorted(scores, reverse=True)
            ledger.count("search")
    except BaseException as exc:  # noqa: BLE001
        ledger.errors.append(exc)


def _saver(store: vecns.Store, ledger: Ledger, stop: float) -> None:
    try:
        while time.monotonic() < stop:
            store.flush()
            ledger.count("flush")
            time.sleep(0.05)
    except BaseException as exc:  # noqa: BLE001
        ledger.errors.append(exc)


def _run_mixed_load(path: Path, model: Path, seconds: float) -> Ledger:
    ledger = Ledger()
    with vecns.connect(path) as store:
        store.models.register(model, model_id="tiny")
        ns = store.create_namespace("docs", "tiny")
        stop = time.monotonic() + seconds
        threads = ([threading.Thread(target=_writer, args=(ns, ledger, i, stop)) for i in range(WRITERS)]
                   + [threading.Thread(target=_reader, args=(ns, ledger, i, stop)) for i in range(READERS)]
                   + [threading.Thread(target=_saver, args=(store, ledger, stop))])
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(seconds + 120)
        assert not any(t.is_alive() for t in threads), "a thread is stuck"
        assert ledger.errors == [], ledger.errors[:3]
        alive = set().union(*ledger.alive)
        assert ns.count() == len(alive)
        assert {o.id for o in ns} == alive
        record, feature = ns._record, ns.features[0]
        index_keys = set(store._indexes.get(record, feature).keys().tolist())
        table_keys = {k for (k,) in store._catalog.fetchall(f'SELECT key FROM "{record.objects_table}"')}
        assert index_keys == table_keys
    with vecns.connect(path) as store:
        ns = store.namespace("docs")
        assert ns.count() == len(alive)
        for some in sorted(alive)[:20]:
            vector = ns.get(some, include_vector=True).vector
            assert some in [h.id for h in ns.search(vector, k=5)]
    return ledger


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", dim=8, seed=0)


def test_eight_threads_mixing_writes_searches_and_saves_for_3_seconds(tmp_path: Path, model: Path):
    ledger = _run_mixed_load(tmp_path / "s", model, seconds=3.0)
    assert {"add", "upsert", "delete", "search", "flush"} <= set(ledger.operations)
    assert ledger.operations["search"] > 20


@pytest.mark.slow
def test_eight_threads_mixing_writes_searches_and_saves_for_30_seconds(tmp_path: Path, model: Path, report_counts):
    ledger = _run_mixed_load(tmp_path / "s", model, seconds=30.0)
    report_counts(f"concurrency: 8 threads for 30 s, operations {dict(sorted(ledger.operations.items()))}")
    assert ledger.operations["add"] > 50 and ledger.operations["search"] > 200


def test_writers_of_two_namespaces_in_parallel_stay_isolated(store):
    a = store.create_namespace("a", dim=8)
    b = store.create_namespace("b", dim=8)
    errors: list[BaseException] = []

    def fill(ns: vecns.Namespace, prefix: str, seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            for round_ in range(15):
                ns.add([{"id": f"{prefix}{round_}-{i}", "vector": rng.standard_normal(8) + 0.01} for i in range(10)])
                hits = ns.search(rng.standard_normal(8), k=20)
                assert all(h.id.startswith(prefix) for h in hits)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=fill, args=(a, "a", 1)), threading.Thread(target=fill, args=(b, "b", 2))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert (a.count(), b.count()) == (150, 150)
    assert {o.id[0] for o in a} == {"a"} and {o.id[0] for o in b} == {"b"}


def test_selective_filter_searches_while_their_matches_are_deleted(store):
    # A filter's matching keys come from DuckDB, their vectors from the index: a delete committed between
    # the two must shrink the candidates, never fail the search.
    ns = store.create_namespace("v", dim=8)
    rng = np.random.default_rng(3)
    ns.add([{"id": f"bulk{i}", "vector": rng.standard_normal(8) + 0.01, "collection": "bulk"} for i in range(1500)])
    hot = [f"hot{i}" for i in range(600)]
    stop = time.monotonic() + 3.0
    errors: list[BaseException] = []
    searches = 0

    def churn() -> None:
        try:
            while time.monotonic() < stop:
                ns.add([{"id": i, "vector": rng.standard_normal(8) + 0.01, "collection": "hot"} for i in hot])
                ns.delete(hot)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def search() -> None:
        nonlocal searches
        query = np.ones(8, dtype=np.float32)
        try:
            while time.monotonic() < stop:
                hits = ns.search(query, k=10, filters={"collection_ids": ["hot"]})
                assert all(h.collection == "hot" for h in hits)
                searches += 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=churn), threading.Thread(target=search), threading.Thread(target=search)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [], errors[:3]
    assert searches > 10  # the race needs searches running; a loaded machine still runs dozens
