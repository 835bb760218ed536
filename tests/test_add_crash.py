"""kill -9 a process that adds, upserts and deletes, at labelled crash points and at random times.

One store per test takes a chain of kills. Each iteration forks a child (``tests/add_child.py``) that runs
the next few calls on the namespace (adds, upserts of existing ids, deletes, a search that loads the index,
a flush that saves it), acknowledging each call in a fsynced log once it has returned, and kills it at a
crash point or after a random delay. A copy of the killed store is then opened read-write and checked
against a model of what must be there: every acknowledged call in full, the call in flight as whole
batches in order (each batch is one transaction: all or nothing), nothing later, deleted ids gone, the
index caught up with every object found by its own vector, no temp files. The next child continues on the
killed store itself, so that its recovery can be killed too. ``VECNS_CRASH_ITERATIONS`` raises the
iteration count, ``VECNS_CRASH_SEED`` replays one run.
"""

from __future__ import annotations

import json
import math
import os
import random
import secrets
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import vecns
from tests.crash_child import Forker
from tests.tiny_model import build_tiny_model
from vecns.catalog import objects as rows_db
from vecns.index import file_checksum

pytestmark = pytest.mark.slow

CHILD = Path(__file__).with_name("add_child.py")
NAMESPACE = "docs"
DIM = 16
TEXT_MODEL_DIM = 32
INITIAL_OBJECTS = 40
# Points of one write transaction (in add/upsert once per batch, in delete once per call).
WRITE_LABELS = ("write_before_commit", "write_after_commit", "write_after_index_apply")
# Points of an index save: at a flush, at close, and when a loaded index had to be caught up or rebuilt.
SAVE_LABELS = ("index_tmp_written", "index_tmp_fsynced", "index_renamed", "index_dir_fsynced",
               "after_index_checksum_commit", "during_old_cleanup")
CLOSE_LABEL = "during_checkpoint"
DEFAULT_ITERATIONS = {"vectors": 30, "text": 10}
SYSTEMATIC = {"vectors": (*WRITE_LABELS, *SAVE_LABELS, CLOSE_LABEL), "text": (*WRITE_LABELS, CLOSE_LABEL)}
WORDS = ("river", "stone", "cloud", "lamp", "forest", "copper", "engine", "violet", "harbor", "signal", "garden",
         "winter", "ladder", "pepper", "saddle", "tunnel", "marble", "falcon", "canvas", "orbit", "meadow",
         "button", "rocket", "silver", "pillow", "jungle", "anchor", "candle", "mirror", "basket", "thunder")
NEVER_ADDED = "never-added"
# A hit other than the queried object may come first only if its vector is this close (a near-tie).
TIE_COSINE = 0.999


@dataclass(frozen=True)
class Stored:
    """What one object must look like; ``vector`` is None until computed (text namespaces)."""

    text: str | None
    collection: str | None
    metadata: dict[str, Any]
    vector: np.ndarray | None = field(default=None, compare=False)

    def same_fields(self, other: Stored | None) -> bool:
        return other is not None and (self.text, self.collection, self.metadata) == (
            other.text, other.collection, other.metadata)


@dataclass
class Tally:
    """What the loop did, for the summary line and the final asserts."""

    iterations: int = 0
    kills: int = 0
    time_kills: int = 0
    killed_at: set[str] = field(default_factory=set)
    applied: int = 0
    rolled_back: int = 0
    cut_between_batches: int = 0
    temp_files: int = 0


class Writer:
    """Draws the calls of each child from the model of the namespace, so upserts and deletes hit live ids."""

    def __init__(self, kind: str, model: dict[str, Stored], seed: int) -> None:
        self.kind = kind
        self.model = model
        self._rng = random.Random(seed)
        self._vectors = np.random.default_rng(seed)
        self._next_id = 0
        self._next_op = 0
        self._gone: set[str] = set()

    def new_object(self, object_id: str, op: int, position: int) -> dict[str, Any]:
        rng = self._rng
        obj: dict[str, Any] = {"id": object_id, "collection": rng.choice((None, "red", "blue")),
                               "metadata": {"op": op, "at": position}}
        if self.kind == "vectors":
            obj["text"] = f"object {object_id} of call {op}"
            obj["vector"] = (self._vectors.standard_normal(DIM).astype(np.float32) + 1e-3).tolist()
        else:
            obj["text"] = " ".join(rng.sample(WORDS, 5)) + f" {object_id} {op}"
        return obj

    def _fresh_ids(self, live: set[str], count: int) -> list[str]:
        ids = []
        for _ in range(count):
            reusable = sorted(self._gone - live - set(ids))
            if reusable and self._rng.random() < 0.25:
                ids.append(self._rng.choice(reusable))  # a deleted id comes back, with a new key
            else:
                ids.append(f"o{self._next_id}")
                self._next_id += 1
        return ids

    def ops(self, count: int, *, search_first: bool) -> list[dict[str, Any]]:
        """``count`` calls (after a search when ``search_first``), as if each one before it succeeded."""
        rng = self._rng
        live = set(self.model)
        ops: list[dict[str, Any]] = []
        kinds = ["search"] if search_first else []
        kinds += rng.choices(("add", "upsert", "delete", "search", "flush"), weights=(3, 3, 2, 1, 1), k=count)
        if not {"add", "upsert"} & set(kinds):
            kinds[-1] = "add"  # so that every child writes, and has an index to save at close
        for kind in kinds:
            n = self._next_op
            self._next_op += 1
            if kind in ("add", "upsert"):
                if kind == "add" or not live:
                    ids = self._fresh_ids(live, rng.randint(1, 30))
                else:
                    ids = rng.sample(sorted(live), min(len(live), rng.randint(1, 15)))
                    ids += self._fresh_ids(live, rng.randint(0, 5))
                    rng.shuffle(ids)
                objects = [self.new_object(object_id, n, j) for j, object_id in enumerate(ids)]
                ops.append({"n": n, "op": kind, "objects": objects, "batch_size": rng.choice((7, 16, 64))})
                live.update(ids)
            elif kind == "delete":
                ids = rng.sample(sorted(live), min(len(live), rng.randint(1, 10)))
                self._gone.update(ids)
                live.difference_update(ids)
                if rng.random() < 0.3:
                    ids.append(NEVER_ADDED)
                ops.append({"n": n, "op": "delete", "ids": ids})
            elif kind == "search":
                ops.append({"n": n, "op": "search", "query": self._query()})
            else:
                ops.append({"n": n, "op": "flush"})
        return ops

    def _query(self) -> Any:
        if self.kind == "text":
            return "river stone lamp"
        return (self._vectors.standard_normal(DIM).astype(np.float32) + 1e-3).tolist()


def transactions(op: dict[str, Any]) -> int:
    """How many write transactions a call runs."""
    if op["op"] in ("add", "upsert"):
        return math.ceil(len(op["objects"]) / op["batch_size"])
    return 1 if op["op"] == "delete" else 0


def nth_transaction(ops: list[dict[str, Any]], n: int) -> tuple[int, int]:
    """The call running the n-th write transaction of ``ops`` (its ``n``), and how many of its own ran before."""
    for op in ops:
        if n <= transactions(op):
            return op["n"], n - 1
        n -= transactions(op)
    raise ValueError(f"the calls run fewer than {n} more transactions")


def _stored(obj: dict[str, Any]) -> Stored:
    vector = np.asarray(obj["vector"], dtype=np.float32) if "vector" in obj else None
    return Stored(obj["text"], obj["collection"], obj["metadata"], vector)


def _apply(model: dict[str, Stored], op: dict[str, Any], objects: list[dict[str, Any]] | None = None) -> None:
    if op["op"] == "delete":
        for object_id in op["ids"]:
            model.pop(object_id, None)
    elif op["op"] in ("add", "upsert"):
        for obj in op["objects"] if objects is None else objects:
            model[obj["id"]] = _stored(obj)


def _settle(model: dict[str, Stored], op: dict[str, Any], seen: dict[str, Stored], tally: Tally,
            where: str) -> tuple[int | None, str]:
    """Apply to the model what the store shows of the call in flight: whole batches, a prefix of them.

    Returns how many of its transactions committed (None for a call that writes nothing) and a description.
    """
    if op["op"] == "delete":
        targets = [i for i in op["ids"] if i in model]
        gone = [i not in seen for i in targets]
        assert all(gone) or not any(gone), f"{where}: delete #{op['n']} is half applied: {targets} gone {gone}"
        applied = bool(targets) and all(gone)
        if applied:
            _apply(model, op)
        tally.applied += applied
        tally.rolled_back += bool(targets) and not applied
        return (int(applied) if targets else None), f"delete #{op['n']} {'applied' if applied else 'rolled back'}"
    if op["op"] not in ("add", "upsert"):
        return None, f"{op['op']} #{op['n']}"
    size = op["batch_size"]
    batches = [op["objects"][i:i + size] for i in range(0, len(op["objects"]), size)]
    done = []
    for number, batch in enumerate(batches):
        new = [_stored(obj).same_fields(seen.get(obj["id"])) for obj in batch]
        old = [seen.get(obj["id"]) == model.get(obj["id"]) for obj in batch]
        assert all(a or b for a, b in zip(new, old, strict=True)), (
            f"{where}: {op['op']} #{op['n']} batch {number}: an object is neither its old nor its new version")
        assert all(new) or all(old), f"{where}: {op['op']} #{op['n']} batch {number} is half present: {new}"
        done.append(all(new))
    count = sum(done)
    assert done == [True] * count + [False] * (len(batches) - count), (
        f"{where}: {op['op']} #{op['n']} committed batches {done}, not a prefix")
    for batch in batches[:count]:
        _apply(model, op, batch)
    tally.applied += count == len(batches)
    tally.rolled_back += count == 0
    tally.cut_between_batches += 0 < count < len(batches)
    return count, f"{op['op']} #{op['n']} {count}/{len(batches)} batches"


def _dump(store: vecns.Store, ns: vecns.Namespace) -> tuple[dict[str, Stored], dict[str, int]]:
    """Every stored object by id, with its vector, and every id's key."""
    rows = store._catalog.fetchall(
        f'SELECT key, id, text, collection, CAST(metadata AS VARCHAR) FROM "{ns.record.objects_table}"')
    vectors = {}
    for keys, block in rows_db.vectors(store._catalog, ns.features[0]):
        vectors.update(zip(keys.tolist(), block, strict=True))
    assert set(vectors) == {row[0] for row in rows}, "vector rows and object rows disagree"
    seen = {i: Stored(text, collection, json.loads(meta) if meta is not None else None, vectors[key])
            for key, i, text, collection, meta in rows}
    return seen, {row[1]: row[0] for row in rows}


def _fill_vectors(store: vecns.Store, ns: vecns.Namespace, model: dict[str, Stored]) -> None:
    missing = [i for i, s in model.items() if s.vector is None]
    if not missing:
        return
    embedder = store._embedder_for(ns, ns.features[0])
    vectors = embedder.embed([model[i].text for i in missing], kind="document")
    for object_id, vector in zip(missing, vectors, strict=True):
        old = model[object_id]
        model[object_id] = Stored(old.text, old.collection, old.metadata, np.asarray(vector, dtype=np.float32))


def _check(path: Path, model: dict[str, Stored], in_flight: dict[str, Any] | None, tally: Tally, rng: random.Random,
           where: str) -> tuple[int | None, str]:
    """Open the store read-write and check it against the model (after settling the call in flight).

    Returns ``_settle``'s answer for the call in flight.
    """
    with vecns.connect(path) as store:
        assert not list((path / "indexes").glob("*.tmp")), f"{where}: temp index files survived the open"
        ns = store.namespace(NAMESPACE)
        seen, keys = _dump(store, ns)
        outcome = _settle(model, in_flight, seen, tally, where) if in_flight else (None, "between calls")
        _fill_vectors(store, ns, model)
        missing, unexpected = sorted(set(model) - set(seen))[:5], sorted(set(seen) - set(model))[:5]
        assert not missing and not unexpected, f"{where}: ids missing {missing}, unexpected {unexpected}"
        for object_id, expected in model.items():
            got = seen[object_id]
            assert got == expected, f"{where}: object {object_id!r} is {got}, expected {expected}"
            assert np.allclose(got.vector, expected.vector, atol=1e-5, rtol=0), f"{where}: vector of {object_id!r}"
        assert ns.count() == len(model), f"{where}: count {ns.count()}, expected {len(model)}"
        index = store._indexes.get(ns.record, ns.features[0])
        assert np.array_equal(np.sort(index.keys()), np.sort(np.fromiter(keys.values(), np.int64))), (
            f"{where}: index keys differ from the stored objects")
        recent = [obj["id"] for obj in (in_flight or {}).get("objects", []) if obj["id"] in model][:5]
        for object_id in recent + rng.sample(sorted(model), min(len(model), 8)):
            vector = model[object_id].vector
            top = ns.search(vector, k=1)[0]
            cosine = float(model[top.id].vector @ vector) / float(np.linalg.norm(model[top.id].vector) *
                                                                  np.linalg.norm(vector))
            assert top.id == object_id or cosine >= TIE_COSINE, (
                f"{where}: searching by {object_id!r}'s vector found {top.id!r} first (cosine {cosine:.4f})")
        for file, checksum in store._catalog.fetchall("SELECT file, checksum FROM index_files"):
            assert file_checksum(path / "indexes" / file) == checksum, f"{where}: index {file} fails its checksum"
    return outcome


def _create(root: Path, kind: str, writer_seed: int) -> tuple[Path, dict[str, Stored], Writer]:
    """A store whose namespace holds a first few objects and a saved index (so each save replaces a file)."""
    path = root / "store"
    model: dict[str, Stored] = {}
    writer = Writer(kind, model, writer_seed)
    with vecns.connect(path) as store:
        if kind == "vectors":
            ns = store.create_namespace(NAMESPACE, dim=DIM)
        else:
            store.models.register(build_tiny_model(root / "tiny", dim=TEXT_MODEL_DIM, seed=3), model_id="tiny")
            ns = store.create_namespace(NAMESPACE, "tiny")
        objects = [writer.new_object(f"first{i}", -1, i) for i in range(INITIAL_OBJECTS)]
        ns.add(objects)
        _apply(model, {"op": "add", "objects": objects})
        ns.search(objects[0]["vector"] if kind == "vectors" else objects[0]["text"], k=1)
    return path, model, writer


@dataclass(frozen=True)
class Kill:
    """How one child ends: at ``label:n``, after ``delay`` seconds, or not at all."""

    label: str | None = None
    n: int = 1
    delay: float | None = None

    def __str__(self) -> str:
        if self.label:
            return f"{self.label}:{self.n}"
        return f"t={self.delay:.2f}s" if self.delay is not None else "no kill"


def _plan(number: int, kind: str, ops: list[dict[str, Any]], rng: random.Random, run_seconds: float) -> Kill:
    """Iteration 0 runs to the end, then each systematic label once, then label and random-time kills in turn;
    ``run_seconds`` is a typical child's run time."""
    writes = sum(transactions(op) for op in ops)
    systematic = SYSTEMATIC[kind]
    if number == 0:
        return Kill()
    if number <= len(systematic):
        label = systematic[number - 1]
        return Kill(label, rng.randint(1, writes) if label in WRITE_LABELS else 1)
    if number % 2:
        return Kill(delay=rng.uniform(0.0, run_seconds))
    label = rng.choice(systematic)
    if label in WRITE_LABELS:
        return Kill(label, rng.randint(1, writes))
    # A child saves an index at most at its first search, at flushes and at close; it closes once.
    return Kill(label, 1 if label == CLOSE_LABEL else rng.randint(1, 2))


def _acked(ack: Path) -> list[int]:
    text = ack.read_text() if ack.exists() else ""
    return [int(line) for line in text.split("\n")[:-1]]  # a line counts once its newline is written


def _crash_loop(tmp_path: Path, kind: str, report: Callable[[str], None]) -> None:
    default = DEFAULT_ITERATIONS[kind]
    asked = int(os.environ.get("VECNS_CRASH_ITERATIONS", 0))
    count = max(default, asked * default // DEFAULT_ITERATIONS["vectors"])
    seed = int(os.environ.get("VECNS_CRASH_SEED", secrets.randbelow(2**31)))
    print(f"write crash test ({kind}): VECNS_CRASH_SEED={seed}")
    started = time.perf_counter()
    path, model, writer = _create(tmp_path, kind, seed)
    log = tmp_path / "child.log"
    tally = Tally()
    completed: list[float] = []  # run times of children that were not killed
    forker = Forker(CHILD)
    try:
        for number in range(count + 1):  # the last one is the final run, with no kill
            rng = random.Random(seed * 1000 + number)
            final = number == count
            # A search first loads the index: the writes update it live and the close saves it.
            systematic = 0 < number <= len(SYSTEMATIC[kind])
            ops = writer.ops(rng.randint(3, 8), search_first=systematic or final or rng.random() < 0.5)
            # Draw random kills from a typical run, shortened as forked children on an idle machine run faster.
            kill = Kill() if final else _plan(number, kind, ops, rng, 0.7 * float(np.median(completed or [1.0])))
            where = f"{kind} iteration {number} (seed {seed}) [{kill}]"
            ack = tmp_path / f"ack{number}"
            request = {"store": str(path), "namespace": NAMESPACE, "ops": ops, "ack": str(ack), "log": str(log),
                       "crash": str(kill) if kill.label else None}
            rc, seconds = forker.run(request, kill_after=kill.delay)
            acked = _acked(ack)
            assert acked == [op["n"] for op in ops[:len(acked)]], f"{where}: acknowledged {acked}"
            if rc == -signal.SIGKILL:
                tally.kills += 1
                tally.time_kills += kill.label is None
                if kill.label:
                    tally.killed_at.add(kill.label)
            else:
                assert rc == 0, f"{where}: child failed (rc {rc}):\n{log.read_text()[-3000:]}"
                assert len(acked) == len(ops), f"{where}: exited 0 with {len(acked)} of {len(ops)} calls acknowledged"
                assert not systematic, f"{where}: the crash point was never reached:\n{log.read_text()[-2000:]}"
                completed.append(seconds)
            for op in ops[:len(acked)]:
                _apply(model, op)
            in_flight = ops[len(acked)] if len(acked) < len(ops) else None
            tally.temp_files += len(list((path / "indexes").glob("*.tmp")))
            # Check a copy, so that the next child meets the store exactly as the kill left it.
            shutil.rmtree(tmp_path / "check", ignore_errors=True)
            shutil.copytree(path, tmp_path / "check")
            committed, outcome = _check(tmp_path / "check", model, in_flight, tally, rng, where)
            if rc == -signal.SIGKILL and kill.label in WRITE_LABELS:
                # The transaction at the crash point committed exactly when the kill came after its commit.
                call, before = nth_transaction(ops, kill.n)
                expected = before + (kill.label != "write_before_commit")
                assert in_flight is not None and in_flight["n"] == call, f"{where}: killed in call #{call}"
                assert committed in (None, expected), f"{where}: {committed} transactions committed, not {expected}"
            print(f"{where}: rc {rc}, {len(acked)}/{len(ops)} calls acknowledged, {outcome}, {len(model)} objects")
            tally.iterations += not final
        _check(path, model, None, tally, random.Random(seed), f"{kind} final state (seed {seed})")
    finally:
        forker.close()
    seconds = time.perf_counter() - started
    summary = (f"write crash test ({kind}): {tally.iterations} iterations, {tally.kills} kills ({tally.time_kills} "
               f"at random times), calls in flight: {tally.applied} applied, {tally.rolled_back} rolled back, "
               f"{tally.cut_between_batches} cut between batches; {tally.temp_files} temp files left by kills, "
               f"{len(model)} objects, {seconds:.0f} s in all, seed {seed}")
    print(summary)
    report(summary)
    never = set(SYSTEMATIC[kind]) - tally.killed_at
    assert not never, f"never killed at {sorted(never)}"
    assert tally.iterations >= count
    assert tally.time_kills >= 1, "random-time kills all missed the child"


@pytest.mark.parametrize("kind", ["vectors", "text"])
def test_acknowledged_writes_survive_kill_9_anywhere_and_batches_stay_whole(tmp_path: Path, kind: str,
                                                                           report_counts):
    _crash_loop(tmp_path, kind, report_counts)
