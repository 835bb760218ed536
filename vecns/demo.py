"""``vecns demo``: the whole mission on real text and real models, in a few minutes on a laptop.

It builds a namespace of the installed standard library's docstrings with ``paraphrase-minilm-l3-v2``,
points alias ``prod`` at it, validates and runs a ``re_extract`` migration to ``all-minilm-l6-v2-int8``
while it keeps writing to the source, evaluates both on a labelled query set, compares them, cuts ``prod``
over if the relevance gate passes, and searches through ``prod``. No display code lives here: the CLI
renders the steps it reports.

A re-run picks up whatever a stopped run (even a ``kill -9``) left: it adds the docstrings the source lacks,
points ``prod`` back at the source, names any migration left unfinished (and the command that would finish
it), and starts a fresh migration.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import vecns
from vecns.datasets import stdlib_qa
from vecns.errors import CutoverRefusedError, NamespaceNotFoundError, ObjectNotFoundError, StoreError
from vecns.evaluate import compare, evaluate

SOURCE_MODEL = "paraphrase-minilm-l3-v2"
TARGET_MODEL = "all-minilm-l6-v2-int8"
SOURCE = "stdlib-l3"
TARGET = "stdlib-l6"
ALIAS = "prod"
GATE = {"metric": "ndcg@10", "max_drop": 0.0}
DEFAULT_PATH = "./vecns-demo"
SAMPLE_QUERY = "how do I read a file line by line"
MAX_BATCH = 256
MIN_BATCH = 16
# The migration embeds windows of up to four batches at once (vecns.migrate.engine), so its progress moves
# about every fourth batch: 32 batches make the bar move about eight times.
BATCHES = 32


@dataclass
class DemoResult:
    """What the demo did and measured; ``to_dict()`` for ``--json``."""

    path: str
    objects: int = 0
    queries: int = 0
    live_writes: dict[str, int] = field(default_factory=dict)
    live_writes_arrived: bool = False
    validation: dict[str, Any] = field(default_factory=dict)
    migration: dict[str, Any] = field(default_factory=dict)
    comparison: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    cutover: str = ""
    cut_over: bool = False
    hits: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return dict(self.__dict__)


def reset_store(path: Path) -> None:
    """Delete a previous demo store, refusing to touch a folder that is not a vecns store."""
    if not path.exists():
        return
    entries = {p.name for p in path.iterdir()}
    if entries and "vecns.duckdb" not in entries:
        raise StoreError(f"{path} is not a vecns store (no vecns.duckdb in it); refusing to delete it. "
                         "Pick another --path.")
    shutil.rmtree(path)


def run_demo(path: str | Path = DEFAULT_PATH, *, limit: int | None = None, reset: bool = False,
             step: Callable[[str], None] = lambda text: None,
             progress: Callable[[str, int, int], None] = lambda stage, done, total: None) -> DemoResult:
    """Run the demo end to end.

    Args:
        path: The store directory (created; reused on a re-run unless ``reset``).
        limit: Cap on the number of documents (default: the whole docstring corpus, a few thousand).
        reset: Delete the store first.
        step: Called with a one-line description as each step starts.
        progress: Called with (stage, done, total) during ingest and migration.

    Returns:
        What happened, with the numbers measured.
    """
    path = Path(path)
    if reset:
        reset_store(path)
    result = DemoResult(str(path))
    clock = time.perf_counter
    step(f"reading the standard library's docstrings{f' (at most {limit})' if limit else ''}")
    data = stdlib_qa(limit=limit)
    result.objects, result.queries = len(data.corpus), len(data.queries)
    batch_size = batch_size_for(len(data.corpus))
    with vecns.connect(path) as store:
        source = _source(store, data, result, step, progress, clock)
        _clear_previous_run(store, source, step)
        config = {
            "migration_type": "re_extract", "source_namespace_id": SOURCE, "target_namespace_name": TARGET,
            "feature_extractors": [{"feature_extractor_name": "text_extractor", "version": "v1",
                                    "params": {"embedding_model": TARGET_MODEL}}],
            "batch_options": {"batch_size": batch_size, "max_workers": 2},
        }
        step(f"validating a re_extract migration {SOURCE} -> {TARGET} ({TARGET_MODEL})")
        report = store.migrations.validate(config)
        result.validation = report.to_dict()
        if not report.valid:
            raise vecns.ValidationError("the demo migration is not valid:\n" + "\n".join(report.errors))
        step("migrating, while the application keeps writing to prod")
        start = clock()
        migration = store.migrations.create(config)
        migration.start(progress=lambda s: progress("migrate", s.processed, s.total))
        written = _write_while_migrating(store, data, migration)
        status = migration.wait()
        result.seconds["migrate"] = round(clock() - start, 2)
        result.migration = status.to_dict()
        result.live_writes = {k: len(v) for k, v in written.items()}
        if status.status != "completed":
            raise vecns.MigrationError(f"the demo migration ended {status.status}: {status.error}")
        step("evaluating both namespaces on the labelled queries")
        start = clock()
        target = store.namespace(TARGET)
        for ns in (source, target):
            report_ = evaluate(ns, data.queries, data.qrels, k=(1, 10), dataset="stdlib-qa",
                                     migration=migration.id)
            result.metrics[ns.name] = dict(report_.metrics)
        result.comparison = compare(source, target, data.queries, qrels=data.qrels, k=10).to_dict()
        result.seconds["evaluate"] = round(clock() - start, 2)
        step(f"cutting {ALIAS} over if {GATE['metric']} does not drop")
        try:
            done = store.cutover(migration, alias=ALIAS, gate=GATE)
            result.cutover, result.cut_over = f"{ALIAS} -> {done.target}: {done.gate}", True
        except CutoverRefusedError as exc:
            result.cutover = f"refused, {ALIAS} stays on {SOURCE}: {exc}"
        prod = store.namespace(ALIAS)
        result.live_writes_arrived = _arrived(store.namespace(TARGET), written)
        step(f"searching through {ALIAS} ({prod.name}, {prod.model_id})")
        result.hits = [h.to_dict() for h in prod.search(SAMPLE_QUERY, k=3, include_text=True)]
    return result


def batch_size_for(objects: int) -> int:
    """The demo's ingest and migration batch size for a corpus of ``objects`` documents.

    About 32 batches, each of 16 to 256 documents: a small ``--limit`` still shows progress (the migration
    reports it every few batches), and a stop (Ctrl-C, ``kill -9``) lands between batches that are each
    all-or-nothing.

    Args:
        objects: How many documents the demo ingests.

    Returns:
        Documents per batch.
    """
    return max(MIN_BATCH, min(MAX_BATCH, objects // BATCHES))


def _source(store: Any, data: Any, result: DemoResult, step: Callable[[str], None],
            progress: Callable[[str, int, int], None], clock: Callable[[], float]) -> Any:
    """The source namespace, holding every docstring of ``data``; ``prod`` is pointed at it if it is missing.

    A namespace left by an earlier run is reused, and the docstrings it lacks (an ingest that was stopped, or
    the last run's live deletes) are added, so every labelled query finds its documents.
    """
    try:
        source = store.namespace(SOURCE)
    except NamespaceNotFoundError:
        step(f"creating namespace {SOURCE} locked to {SOURCE_MODEL} and ingesting {len(data.corpus)} docstrings")
        source = store.create_namespace(SOURCE, SOURCE_MODEL)
        missing = list(data.corpus)
    else:
        present = {obj.id for obj in source}
        missing = [doc_id for doc_id in data.corpus if doc_id not in present]
        adding = f", adding the {len(missing)} docstrings it lacks" if missing else ""
        step(f"reusing namespace {SOURCE} ({len(present)} objects{adding}); --reset starts over")
    if missing:
        start = clock()
        size = batch_size_for(len(data.corpus))
        for begin in range(0, len(missing), size):
            chunk = missing[begin:begin + size]
            source.add([{"id": doc_id, "text": data.corpus[doc_id]["text"], "collection": doc_id.split(".")[0]}
                        for doc_id in chunk])
            progress("ingest", begin + len(chunk), len(missing))
        result.seconds["ingest"] = round(clock() - start, 2)
    if ALIAS not in {info.name for info in store.aliases.list()}:
        store.aliases.set(ALIAS, SOURCE)
    return source


def _clear_previous_run(store: Any, source: Any, step: Callable[[str], None]) -> None:
    """On a re-run, move prod back to the source and forget the previous target and its migrations.

    A migration a stopped run left unfinished is named with the command that would have finished it, so the
    user learns the way to continue a real one; the demo itself starts over with a fresh migration.
    """
    store.aliases.set(ALIAS, source.name)
    for migration in store.migrations.list():
        status = migration.status()
        if status.status in ("pending", "in_progress"):
            migration.cancel("a new demo run started")
            migration.wait()
        elif status.status in ("draft", "interrupted", "failed", "cancelled"):
            verb = "start" if status.status == "draft" else "resume"
            step(f"an earlier run left migration {status.id} {status.status} at {status.processed}/{status.total} "
                 f"objects; 'vecns --store {store.path} migrate {verb} {status.id}' would finish it, and this "
                 "run starts a fresh one instead")
        store.migrations.delete(migration.id)
    with contextlib.suppress(NamespaceNotFoundError):
        store.drop_namespace(TARGET)


def _write_while_migrating(store: Any, data: Any, migration: Any) -> dict[str, list[str]]:
    """Write to ``prod`` (the source) while the migration runs: updates, adds and deletes, ~2% of objects."""
    prod = store.namespace(ALIAS)
    ids = sorted(data.corpus)
    count = max(3, len(ids) // 150)
    updated = ids[1:count * 3:3]
    deleted = ids[2:count * 3:3]
    written = {"updated": updated, "added": [f"demo-note-{i}" for i in range(count)], "deleted": deleted}
    # Write as soon as the first batch is in: well inside the snapshot pass, so the catch-up carries it.
    while migration.status().processed == 0 and migration.status().status in ("draft", "pending", "in_progress"):
        time.sleep(0.05)
    prod.upsert([{"id": doc_id, "text": data.corpus[doc_id]["text"] + " (edited while migrating)",
                  "collection": "edited"} for doc_id in updated])
    prod.upsert([{"id": i, "text": f"Note {i}: written to prod while the migration ran.", "collection": "notes"}
              for i in written["added"]])
    prod.delete(deleted)
    return written


def _arrived(target: Any, written: dict[str, list[str]]) -> bool:
    try:
        edited = all(target.get(i).text.endswith("(edited while migrating)") for i in written["updated"])
        added = all(target.get(i) for i in written["added"])
    except ObjectNotFoundError:
        return False
    gone = all(_missing(target, i) for i in written["deleted"])
    return edited and added and gone


def _missing(namespace: Any, object_id: str) -> bool:
    try:
        namespace.get(object_id)
    except ObjectNotFoundError:
        return True
    return False
