"""kill -9 a re_extract migration at every labelled crash point and at random times, in chains; resume; compare.

Each iteration copies a prepared store (namespace ``docs`` of 600 texts on ``tiny-a``, alias ``prod``),
runs the child flow of ``tests/crash_child.py`` (migrate into ``docs-b`` on ``tiny-b``, cut ``prod`` over)
and kills it at a labelled point or after a random delay; with probability 0.5 the resumed child is killed
again (up to 3 kills in a chain, sometimes with a cancel on the way). After every kill a read-only open
checks the invariants; a final resume without a kill must then reach exactly the state of an
uninterrupted run. ``VECNS_CRASH_ITERATIONS`` raises the iteration count, ``VECNS_CRASH_SEED`` replays one.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import vecns
from tests.crash_child import Forker
from tests.tiny_model import build_tiny_model
from vecns.catalog import objects as rows_db
from vecns.catalog import records
from vecns.corpus import stdlib_docs
from vecns.index import file_checksum

pytestmark = pytest.mark.slow

CHILD = Path(__file__).with_name("crash_child.py")
# 12 batches: a kill costs mostly per batch, and 12 still keep the two pipeline workers several batches in
# flight and give every batch label a first hit well apart from its middle one.
OBJECTS = 600
BATCH = 50
ALIAS = "prod"
CONFIG = {
    "migration_type": "re_extract",
    "source_namespace_id": "docs",
    "target_namespace_name": "docs-b",
    "feature_extractors": [{"feature_extractor_name": "text_extractor", "version": "v1",
                            "params": {"embedding_model": "tiny-b"}}],
    "batch_options": {"batch_size": BATCH, "max_workers": 2},
}
# The crash points of the crash-test design.
DESIGN_LABELS = (
    "before_batch_txn", "after_insert_before_progress", "after_commit", "after_index_add", "cancel_requested",
    "webhook_in_flight", "index_tmp_written", "index_tmp_fsynced", "index_renamed", "index_dir_fsynced",
    "after_index_checksum_commit", "before_alias_commit", "after_alias_commit", "during_old_cleanup",
    "during_checkpoint",
)
CANCEL = "cancel_requested"
# Labels this flow never reaches: it sends no webhooks, and saves each index once, so no older index file is
# removed (tests/test_durability.py kills a second save there). cancel_requested is reached only when a run
# is cancelled, so the cancel steps below cover it.
NOT_INSTRUMENTED = frozenset({"webhook_in_flight", "during_old_cleanup"})
DEFAULT_ITERATIONS = 60
MIN_RANDOM_TIME = 10


def _run(forker: Forker, path: Path, log: Path, *, crash: str | None = None, kill_after: float | None = None,
         cancel_after: int | None = None, report_hits: bool = False) -> tuple[int, float]:
    """Run the child flow once; returns (exit status, seconds). ``kill_after`` SIGKILLs it after a delay."""
    request = {"store": str(path), "config": CONFIG, "log": str(log), "crash": crash, "cancel_after": cancel_after,
               "report_hits": report_hits}
    return forker.run(request, kill_after=kill_after)


@dataclass(frozen=True)
class Dump:
    """A namespace's content: rows (key, id, text, collection, metadata, created_at) and vectors, by key.

    ``changes`` is its change log as sorted (key, id, op): a batch applied twice would show there.
    """

    rows: tuple[tuple, ...]
    keys: np.ndarray
    vectors: np.ndarray
    changes: tuple[tuple, ...]


@dataclass(frozen=True)
class Golden:
    """The uninterrupted run: both dumps, the source's index record, crash point hit counts and wall time."""

    source: Dump
    target: Dump
    source_index: tuple
    hits: dict[str, int]
    seconds: float


@dataclass
class Tally:
    """What the loop did, for the summary line and the final asserts."""

    iterations: int = 0
    kills: int = 0
    time_kills: int = 0
    chains: int = 0
    cancels: int = 0
    killed_at: set[str] = field(default_factory=set)


def _dump(store: vecns.Store, ns_id: str) -> Dump:
    record = records.find_namespace(store._catalog, ns_id=ns_id)
    rows = store._catalog.fetchall(
        f'SELECT key, id, text, collection, CAST(metadata AS VARCHAR), created_at FROM "{record.objects_table}" '
        "ORDER BY key")
    parts = list(rows_db.vectors(store._catalog, record.features[0]))
    keys = np.concatenate([k for k, _ in parts]) if parts else np.empty(0, np.int64)
    vectors = np.concatenate([v for _, v in parts]) if parts else np.empty((0, record.features[0].dim), np.float32)
    changes = store._catalog.fetchall("SELECT key, id, op FROM changes WHERE namespace_id = ? ORDER BY ALL", [ns_id])
    return Dump(tuple(rows), keys, vectors, tuple(changes))


def _source_index(store: vecns.Store, ns_id: str) -> tuple:
    return tuple(store._catalog.fetchall(
        "SELECT feature, file, checksum, seq, count FROM index_files WHERE namespace_id = ?", [ns_id]))


def _base_store(root: Path) -> Path:
    """The store every iteration starts from: ``docs`` on tiny-a (its index saved), alias ``prod``."""
    path = root / "base"
    docs = stdlib_docs(limit=OBJECTS)
    with vecns.connect(path) as store:
        store.models.register(build_tiny_model(root / "tiny-a", dim=8, seed=0), model_id="tiny-a")
        store.models.register(build_tiny_model(root / "tiny-b", dim=16, seed=1), model_id="tiny-b")
        ns = store.create_namespace("docs", "tiny-a", dtype="f32")
        ns.add([{"id": d.id, "text": d.text, "metadata": {"i": i, "g": i % 7}} for i, d in enumerate(docs)])
        ns.search("open a file", k=3)
        store.aliases.set(ALIAS, "docs")
    return path


def _fresh(base: Path, folder: Path) -> Path:
    shutil.copytree(base, folder / "store")
    return folder / "store"


def _golden(forker: Forker, base: Path, folder: Path) -> Golden:
    path = _fresh(base, folder)
    log = folder / "golden.log"
    every = ",".join(f"{label}:1000000" for label in DESIGN_LABELS)
    rc, seconds = _run(forker, path, log, crash=every, report_hits=True)
    text = log.read_text()
    assert rc == 0, text[-3000:]
    hits = json.loads(next(line for line in text.splitlines() if line.startswith("HITS "))[5:])
    assert hits.get("before_batch_txn") == OBJECTS // BATCH, f"expected a transaction per {BATCH} objects: {hits}"
    with vecns.connect(path, read_only=True) as store:
        (migration,) = store.migrations.list()
        status = migration.status()
        assert (status.status, status.processed, status.total, status.failed) == ("completed", OBJECTS, OBJECTS, 0)
        source, target = store.namespace("docs").id, store.namespace("docs-b").id
        assert store.aliases.get(ALIAS).namespace_id == target
        golden = Golden(_dump(store, source), _dump(store, target), _source_index(store, source),
                        {label: hits.get(label, 0) for label in DESIGN_LABELS}, seconds)
    assert golden.target.rows == golden.source.rows, "the migration changed the objects themselves"
    assert len(golden.target.rows) == OBJECTS and golden.target.vectors.shape == (OBJECTS, 16)
    return golden


def _check_dump_equal(seen: Dump, expected: Dump, what: str) -> None:
    assert seen.rows == expected.rows, f"{what}: rows differ from the uninterrupted run"
    assert np.array_equal(seen.keys, expected.keys), f"{what}: vector keys differ"
    assert np.allclose(seen.vectors, expected.vectors, atol=1e-6, rtol=0), f"{what}: vectors differ"
    assert seen.changes == expected.changes, f"{what}: change log differs"


def _check_index_files(store: vecns.Store, path: Path, where: str) -> None:
    for file, checksum in store._catalog.fetchall("SELECT file, checksum FROM index_files"):
        on_disk = path / "indexes" / file
        assert on_disk.is_file() and not on_disk.is_symlink(), f"{where}: recorded index {file} is missing"
        assert file_checksum(on_disk) == checksum, f"{where}: index {file} does not match its catalog checksum"


def _observe(path: Path, golden: Golden, where: str) -> str:
    """Check the invariants that hold after any kill; returns a short description of the state."""
    with vecns.connect(path, read_only=True) as store:
        assert store._catalog.fetchone("SELECT count(*) FROM namespaces")[0] in (1, 2), where
        source = store.namespace("docs")
        alias = store.aliases.get(ALIAS).namespace_id
        _check_index_files(store, path, where)
        found = store.migrations.list()
        if not found:
            assert alias == source.id, f"{where}: alias moved with no migration"
            assert len(store.namespaces()) == 1, f"{where}: a target exists without a migration"
            return "no migration"
        (migration,) = found
        row = migration._row()
        if row.target_id is None:
            assert alias == source.id, f"{where}: alias moved before the target exists"
            return row.status
        assert alias in (source.id, row.target_id), f"{where}: alias names {alias}, neither source nor target"
        cut = alias == row.target_id
        assert cut == (row.cutover_at is not None), f"{where}: alias and the migration's cutover disagree"
        assert not cut or row.status == "completed", f"{where}: alias moved to an unfinished target"
        assert row.total == OBJECTS and 0 <= row.processed <= row.total, f"{where}: counts {row}"
        target = records.find_namespace(store._catalog, ns_id=row.target_id)
        seen = _dump(store, target.id)
        # Batches commit in key order with their checkpoint: the target is exactly a prefix of the golden one.
        assert len(seen.rows) == row.processed, f"{where}: {len(seen.rows)} target rows, processed {row.processed}"
        assert row.last_key == (golden.target.rows[row.processed - 1][0] if row.processed else -1), where
        done = set(golden.target.keys[:row.processed].tolist())
        prefix = Dump(golden.target.rows[:row.processed], golden.target.keys[:row.processed],
                      golden.target.vectors[:row.processed],
                      tuple(c for c in golden.target.changes if c[0] in done))
        _check_dump_equal(seen, prefix, f"{where}: target prefix")
        if records.get_index_file(store._catalog, target.id, target.features[0].name) is not None:
            # Killed in or after the target's index save: the file (caught up if behind) must match the rows.
            index = store._indexes.get(target, target.features[0])
            assert np.array_equal(index.keys(), seen.keys), f"{where}: target index keys differ from its rows"
        return f"{row.status}/{row.stage} {row.processed}{' cut' if cut else ''}"


def _final_checks(path: Path, golden: Golden, where: str) -> None:
    assert not list((path / "indexes").glob("*.tmp")), f"{where}: temp index files left"
    with vecns.connect(path, read_only=True) as store:
        source, target = store.namespace("docs"), store.namespace("docs-b")
        (migration,) = store.migrations.list()
        status = migration.status()
        assert (status.status, status.stage, status.processed, status.total, status.failed) == (
            "completed", "done", OBJECTS, OBJECTS, 0), f"{where}: {status}"
        assert store.aliases.get(ALIAS).namespace_id == target.id, f"{where}: alias does not name the target"
        _check_dump_equal(_dump(store, source.id), golden.source, f"{where}: source")
        assert _source_index(store, source.id) == golden.source_index, f"{where}: source index changed"
        seen = _dump(store, target.id)
        _check_dump_equal(seen, golden.target, f"{where}: target")
        _check_index_files(store, path, where)
        recorded = store._catalog.fetchall("SELECT file, seq FROM index_files WHERE namespace_id = ?", [target.id])
        assert len(recorded) == 1, f"{where}: target index files {recorded}"
        assert recorded[0][1] == rows_db.latest_seq(store._catalog, target.id), f"{where}: saved index is behind"
        files = sorted(p.name for p in (path / "indexes").iterdir())
        expected = sorted(r[0] for r in store._catalog.fetchall("SELECT file FROM index_files"))
        assert files == expected, f"{where}: index files on disk {files}, recorded {expected}"
        index = store._indexes.get(target.record, target.features[0])
        assert np.array_equal(index.keys(), seen.keys), f"{where}: target index keys differ from its rows"


@dataclass(frozen=True)
class Step:
    """One child run: a crash label:n, a kill after a delay, and/or a cancel after some objects."""

    crash: str | None = None
    kill_after: float | None = None
    cancel_after: int | None = None

    def __str__(self) -> str:
        parts = [self.crash, f"t={self.kill_after:.2f}s" if self.kill_after is not None else None,
                 f"cancel@{self.cancel_after}" if self.cancel_after is not None else None]
        return "+".join(p for p in parts if p)


def _systematic(golden: Golden) -> list[Step]:
    steps = []
    for label in DESIGN_LABELS:
        if label == CANCEL:
            steps.append(Step(f"{label}:1", cancel_after=OBJECTS // 2))
            continue
        hits = golden.hits[label]
        steps += [Step(f"{label}:{n}") for n in sorted({1, (hits + 1) // 2}) if hits]
    return steps


def _kill_time(rng: random.Random, golden: Golden) -> float:
    """A random moment inside a child's run: forked children often finish sooner than the timed golden run,
    so draw from its first 60% to keep most random kills inside the run whatever the machine's load."""
    return rng.uniform(0.0, 0.6 * golden.seconds)


def _random_step(rng: random.Random, golden: Golden) -> Step:
    reached = [label for label in DESIGN_LABELS if golden.hits[label]]
    kind = rng.choice(("label", "time", "cancel"))
    if kind == "label":
        label = rng.choice(reached)
        return Step(f"{label}:{rng.randint(1, golden.hits[label])}")
    if kind == "time":
        return Step(kill_after=_kill_time(rng, golden))
    # A cancel ends the run 'cancelled' (resumed by the next step), or is killed at its crash point.
    return Step(f"{CANCEL}:1" if rng.random() < 0.5 else None, cancel_after=rng.randrange(BATCH, OBJECTS, BATCH))


def _plans(golden: Golden, count: int, seed: int) -> Iterator[tuple[int, list[Step]]]:
    """(seed, steps) per iteration: systematic first kills, then random-time ones; half of them chained."""
    systematic = _systematic(golden)
    for i in range(max(count, len(systematic) + MIN_RANDOM_TIME)):
        rng = random.Random(seed + i)
        first = systematic[i] if i < len(systematic) else Step(kill_after=_kill_time(rng, golden))
        steps = [first]
        if rng.random() < 0.5:
            steps += [_random_step(rng, golden) for _ in range(rng.randint(1, 2))]
        yield seed + i, steps


def test_migration_survives_kill_9_anywhere_and_resumes_to_the_golden_state(tmp_path: Path, report_counts):
    count = max(DEFAULT_ITERATIONS, int(os.environ.get("VECNS_CRASH_ITERATIONS", DEFAULT_ITERATIONS)))
    seed = int(os.environ.get("VECNS_CRASH_SEED", secrets.randbelow(2**31)))
    print(f"migration crash test: VECNS_CRASH_SEED={seed}")
    started = time.perf_counter()
    base = _base_store(tmp_path)
    forker = Forker(CHILD)
    tally = Tally()
    try:
        golden = _golden(forker, base, tmp_path / "golden")
        never = {label for label in DESIGN_LABELS if label != CANCEL and not golden.hits[label]}
        assert never == NOT_INSTRUMENTED, (
            f"labels the flow never reaches: {sorted(never)}; expected exactly {sorted(NOT_INSTRUMENTED)}. "
            "Update NOT_INSTRUMENTED when vecns gains or loses a crash point.")
        for number, (iteration_seed, steps) in enumerate(_plans(golden, count, seed)):
            folder = tmp_path / f"it{number:03d}"
            folder.mkdir()
            iteration_started = time.perf_counter()
            path = _fresh(base, folder)
            log = folder / "child.log"
            history = []
            for position, step in enumerate(steps):
                where = f"iteration {number} (seed {iteration_seed}) step {position} [{step}] after {history}"
                rc, _ = _run(forker, path, log, crash=step.crash, kill_after=step.kill_after,
                             cancel_after=step.cancel_after)
                if rc == -signal.SIGKILL:
                    tally.kills += 1
                    tally.time_kills += step.crash is None
                    if step.crash:
                        tally.killed_at.add(step.crash.split(":")[0])
                else:
                    assert rc in (0, 3), f"{where}: child failed (rc {rc}):\n{log.read_text()[-3000:]}"
                    assert rc == 0 or step.cancel_after is not None, f"{where}: {log.read_text()[-3000:]}"
                    tally.cancels += rc == 3
                if position == 0 and step.crash and step.kill_after is None:
                    assert rc == -signal.SIGKILL, f"{where}: crash point never reached:\n{log.read_text()[-2000:]}"
                history.append(f"{step} rc={rc} -> {_observe(path, golden, where)}")
                if rc == 0:
                    break
            tally.chains += len(steps) > 1
            where = f"iteration {number} (seed {iteration_seed}) final resume after {history}"
            rc, _ = _run(forker, path, log)
            assert rc == 0, f"{where}: rc {rc}:\n{log.read_text()[-3000:]}"
            _final_checks(path, golden, where)
            print(f"iteration {number} (seed {iteration_seed}, {time.perf_counter() - iteration_started:.1f} s): "
                  f"{'; '.join(history)}")
            tally.iterations += 1
            shutil.rmtree(folder)
    finally:
        forker.close()
    seconds = time.perf_counter() - started
    summary = (f"migration crash test: {tally.iterations} iterations, {tally.kills} kills ({tally.time_kills} at "
               f"random times), {tally.chains} chains, {tally.cancels} cancels, golden {golden.seconds:.2f} s, "
               f"{seconds:.0f} s in all, seed {seed}")
    print(summary)
    report_counts(summary)
    reached = {label for label in DESIGN_LABELS if golden.hits[label]} | {CANCEL}
    assert tally.killed_at >= reached, f"never killed at {sorted(reached - tally.killed_at)}"
    assert tally.iterations >= count
    assert tally.time_kills >= MIN_RANDOM_TIME // 5, "random-time kills mostly missed the child"
