"""Text to vectors: the only tokenizers code in vecns (onnxruntime is driven through :mod:`vecns.runtime`).

The hot loop (:meth:`Embedder.embed`)::

    prefix -> tokenize (batch, truncated at max_tokens, unpadded) -> sort by token length
      -> batches by a token budget -> pad each batch to its own longest text -> run the graph
      -> pool (masked mean / cls / none) -> L2-normalise -> back to input order

Sorting before batching is the biggest lever on CPU: corpus-order batches of mixed-length text carry
2-3x more padding than real tokens. The second is running batches side by side: the small, length-sorted
batches a CPU wants are matrix products too small to split well across cores, so on CPU ``embed`` runs one
batch per core, each on a single-threaded session, and keeps a session with every thread for a lone batch
(a query). :meth:`Embedder.tokenize` and :meth:`Embedder.infer` expose the two stages separately so a
pipeline can run them on different threads.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from vecns import graphs, runtime
from vecns.errors import EmbeddingError, ModelLoadError, ValidationError
from vecns.graphs import PRECISIONS, Rewrite
from vecns.models import ModelSpec, check_sha256, file_version, fingerprint_of
from vecns.runtime import CPU, CUDA, InferenceSession, cuda_available

__all__ = [
    "CPU_TOKEN_BUDGET",
    "CUDA_TOKEN_BUDGET",
    "FP16_MIN_COSINE",
    "KINDS",
    "MAX_BATCH_ROWS",
    "PRECISIONS",
    "Embedder",
    "TokenBatch",
    "cuda_available",
    "load_embedder",
    "probe_dim",
]

KINDS = ("document", "query")
# An fp16 graph is used only when its vectors stay this close to fp32's on PROBE_TEXTS.
FP16_MIN_COSINE = 0.999
# Real English of mixed length (one past any model's truncation) for the fp16 check at load time.
PROBE_TEXTS = (
    "Return the number of items in a container.",
    "How do I read a file line by line?",
    "The quick brown fox jumps over the lazy dog.",
    "Namespaces lock their embedding model and dimension when they are created, so a new model needs a "
    "migration: every object is embedded again and written to a new namespace before an alias moves.",
    "Open the file and return a stream. Raise OSError upon failure. The mode is an optional string that "
    "specifies the mode in which the file is opened; it defaults to 'r', which means open for reading in "
    "text mode. Other common values are 'w' for writing, 'x' for exclusive creation and 'a' for appending.",
    "ok",
    " ".join(["Sorting texts by length before batching removes most of the padding."] * 40),
)
# Padded tokens per batch. On CPU small, length-sorted batches win (they stay in cache; attention grows
# with length squared). On 1,000 stdlib docstrings, per CPU-second, a 512-token budget beat 1024 and 2048
# by 17% and 39% (paraphrase L3) and by 3% and 20% (int8 L6); 256 was within 1-7% of 512.
# A GPU wants large batches (not yet measured: 32768 keeps a 256-token batch of 128 rows).
CPU_TOKEN_BUDGET = 512
CUDA_TOKEN_BUDGET = 32768
MAX_BATCH_ROWS = 512
NO_REWRITE = Rewrite()


@dataclass(frozen=True)
class TokenBatch:
    """Texts tokenised and padded together, ready for :meth:`Embedder.infer`.

    Attributes:
        positions: int64 (n,), each row's index in the list given to ``tokenize``.
        input_ids: int64 (n, t), padded with the tokenizer's pad id.
        attention_mask: int64 (n, t), 1 for real tokens.
        token_type_ids: int64 (n, t).
    """

    positions: np.ndarray
    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray

    def __len__(self) -> int:
        return int(self.positions.shape[0])

    def __repr__(self) -> str:
        return f"TokenBatch(rows={len(self)}, width={self.input_ids.shape[1]}, tokens={self.n_tokens})"

    @property
    def n_tokens(self) -> int:
        """Real (unpadded) tokens in the batch."""
        return int(self.attention_mask.sum())

    def to_dict(self) -> dict[str, object]:
        """Shape summary (not the token ids), JSON-able."""
        return {"rows": len(self), "width": int(self.input_ids.shape[1]), "tokens": self.n_tokens}


def _read_file(spec: ModelSpec, path: Path, what: str) -> tuple[bytes, tuple[int, int, int, int]]:
    # Stat, read, stat again: a file replaced mid-read is read again, so the bytes match the version.
    try:
        for _ in range(3):
            before = file_version(path)
            data = path.read_bytes()
            if file_version(path) == before:
                return data, before
    except OSError as exc:
        raise ModelLoadError(
            f"model {spec.model_id!r}: cannot read the {what} file {str(path)!r}: {exc.strerror or exc}."
        ) from exc
    raise ModelLoadError(f"model {spec.model_id!r}: the {what} file {str(path)!r} kept changing while read.")


_tokenizer_lock = threading.Lock()
_tokenizer_cache: dict[tuple[str, int], tuple[Tokenizer, int]] = {}
TOKENIZER_CACHE_SIZE = 8


def _open_tokenizer(spec: ModelSpec, data: bytes) -> tuple[Tokenizer, int]:
    # Parsing a BERT tokenizer.json takes ~50 ms; configured tokenizers are read-only after this, and
    # encoding is thread-safe, so embedders with the same file and max_tokens share one.
    key = (hashlib.sha256(data).hexdigest(), spec.max_tokens)
    with _tokenizer_lock:
        cached = _tokenizer_cache.get(key)
    if cached is not None:
        return cached
    opened = _parse_tokenizer(spec, data)
    with _tokenizer_lock:
        if len(_tokenizer_cache) >= TOKENIZER_CACHE_SIZE:
            _tokenizer_cache.pop(next(iter(_tokenizer_cache)))
        _tokenizer_cache[key] = opened
    return opened


def _parse_tokenizer(spec: ModelSpec, data: bytes) -> tuple[Tokenizer, int]:
    try:
        tokenizer = Tokenizer.from_str(data.decode("utf-8"))
        padding = tokenizer.padding or {}
        pad_id = padding.get("pad_id")
        if pad_id is None:
            pad_id = next((tokenizer.token_to_id(t) for t in ("[PAD]", "<pad>") if tokenizer.token_to_id(t)), 0)
        # The shipped BERT files pad to 128 and truncate at 128; the card decides instead.
        tokenizer.enable_truncation(max_length=spec.max_tokens)
        tokenizer.no_padding()
    except Exception as exc:
        raise ModelLoadError(
            f"model {spec.model_id!r}: tokenizer file {str(spec.tokenizer_path)!r} is not a valid "
            f"tokenizer.json ({exc}). Replace it with the tokenizer.json the model was exported with."
        ) from exc
    return tokenizer, int(pad_id)


class Embedder:
    """A loaded model: tokenizer + ONNX Runtime session. Create it with :func:`load_embedder`.

    ``embed``, ``tokenize``, ``infer`` and ``count_tokens`` may be called from several threads at once.

    Attributes:
        spec: The model spec it was loaded from.
        dim: Vector dimension.
        fingerprint: Model fingerprint of the bytes actually loaded.
        provider: The execution provider that really runs, e.g. ``CPUExecutionProvider``.
        token_budget: Padded tokens per batch when ``batch_size`` is not given.
        threads: Intra-op threads of a lone batch; on CPU, batches run this many at a time.
        precision: ``fp32``, or ``fp16`` when the graph runs in half precision.
        pooled_in_graph: Whether pooling and normalisation run inside the graph (on CUDA, when onnx is
            installed) instead of in numpy.
    """

    def __init__(
        self,
        spec: ModelSpec,
        *,
        session: InferenceSession,
        tokenizer: Tokenizer,
        pad_id: int,
        fingerprint: str,
        file_versions: tuple[tuple[int, int, int, int], tuple[int, int, int, int]],
        token_budget: int,
        threads: int,
        graph_sha256: str,
        rewrite: Rewrite = NO_REWRITE,
    ) -> None:
        self.spec = spec
        self.dim = spec.dim
        self.fingerprint = fingerprint
        self.provider = session.get_providers()[0]
        self.token_budget = token_budget
        self.threads = threads
        self.precision = rewrite.precision
        self.pooled_in_graph = rewrite.pooled
        self._rewrite = rewrite
        self._session = session
        self._tokenizer = tokenizer
        self._inputs, self._output = runtime.check_io(spec, session)
        self._pooling = "none" if rewrite.pooled else spec.pooling
        self._normalize = spec.normalize and not rewrite.pooled
        self._io_binding = self.provider == CUDA
        self._file_versions = file_versions
        self._pad_id = pad_id
        self._graph_sha256 = graph_sha256
        # Sessions by intra-op thread count, opened when first needed (see _session_for).
        self._sessions: dict[int, InferenceSession] = {threads: session}
        self._sessions_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Embedder(model_id={self.spec.model_id!r}, dim={self.dim}, provider={self.provider!r})"

    def is_stale(self) -> bool:
        """Whether the graph or tokenizer file changed on disk (size, mtime or inode) since loading."""
        try:
            now = (file_version(self.spec.graph_path), file_version(self.spec.tokenizer_path))
        except OSError:
            return True
        return now != self._file_versions

    def _encode(self, texts: Iterable[str], kind: str) -> list:
        texts = _text_list(texts)
        if kind not in KINDS:
            raise ValidationError(f"kind={kind!r} is not supported; expected one of {KINDS}.")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValidationError(f"texts[{i}] is a {type(text).__name__}; expected a string.")
        prefix = self.spec.query_prefix if kind == "query" else self.spec.document_prefix
        prefixed = [prefix + t for t in texts] if prefix else list(texts)
        try:
            encode = getattr(self._tokenizer, "encode_batch_fast", self._tokenizer.encode_batch)
            return encode(prefixed, add_special_tokens=True)
        except Exception as exc:
            raise EmbeddingError(f"model {self.spec.model_id!r}: tokenizing {len(texts)} texts failed: {exc}.") from exc

    def count_tokens(self, texts: Sequence[str], *, kind: str = "document") -> int:
        """Tokens the model will see for these texts (prefix and special tokens included, after truncation).

        Raises:
            ValidationError: ``texts`` is not a list of strings, or ``kind`` is unknown.
        """
        return sum(len(e.ids) for e in self._encode(texts, kind))

    def tokenize(
        self, texts: Sequence[str], *, kind: str = "document", batch_size: int | None = None
    ) -> list[TokenBatch]:
        """Tokenise, sort by token length and cut into padded batches.

        Args:
            texts: The texts.
            kind: ``document`` or ``query`` (chooses the prefix).
            batch_size: Rows per batch; default: as many as fit ``token_budget`` padded tokens
                (at most ``MAX_BATCH_ROWS``).

        Returns:
            Batches, shortest texts first; each knows its rows' positions in ``texts``.

        Raises:
            ValidationError: Bad ``texts``, ``kind`` or ``batch_size``.
            EmbeddingError: The tokenizer failed.
        """
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise ValidationError(f"batch_size={batch_size!r} is invalid; expected a positive integer or None.")
        encodings = self._encode(texts, kind)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(lengths, kind="stable")
        batches = []
        start = 0
        while start < len(order):
            stop = start + 1
            if batch_size is not None:
                stop = min(start + batch_size, len(order))
            else:
                # Sorted ascending, so the last row added is the widest: rows * its length = padded tokens.
                while (
                    stop < len(order)
                    and stop - start < MAX_BATCH_ROWS
                    and (stop - start + 1) * lengths[order[stop]] <= self.token_budget
                ):
                    stop += 1
            batches.append(self._pad([encodings[i] for i in order[start:stop]], order[start:stop]))
            start = stop
        return batches

    def _pad(self, encodings: list, positions: np.ndarray) -> TokenBatch:
        width = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        types = np.zeros((len(encodings), width), dtype=np.int64)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            ids[row, :n] = enc.ids
            mask[row, :n] = 1
            types[row, :n] = enc.type_ids
        return TokenBatch(
            positions=np.asarray(positions, dtype=np.int64),
            input_ids=ids,
            attention_mask=mask,
            token_type_ids=types,
        )

    def _session_for(self, concurrency: int) -> InferenceSession:
        """The session for ``concurrency`` callers at once: ``threads // concurrency`` intra-op threads each.

        On CUDA there is one session whatever the concurrency. Another CPU session is opened from the
        graph file on first use, after checking the file still holds the bytes this embedder loaded.
        """
        if self.provider != CPU:
            return self._session
        intra = max(1, self.threads // max(1, concurrency))
        session = self._sessions.get(intra)
        if session is not None:
            return session
        with self._sessions_lock:
            session = self._sessions.get(intra)
            if session is None:
                graph, _ = _read_file(self.spec, self.spec.graph_path, "graph")
                if hashlib.sha256(graph).hexdigest() != self._graph_sha256:
                    raise EmbeddingError(
                        f"model {self.spec.model_id!r}: the graph file {str(self.spec.graph_path)!r} changed "
                        "since the model was loaded. Reopen the store to load the new file (a namespace "
                        "locked to the old one will then refuse it)."
                    )
                graph = self._rewrite.apply(self.spec, graph)
                session = runtime.open_session(self.spec, graph, [CPU], intra)
                self._sessions[intra] = session
        return session

    def infer(self, batch: TokenBatch, *, concurrency: int = 1) -> np.ndarray:
        """Run one batch through the graph, pool and normalise.

        Args:
            batch: From :meth:`tokenize`.
            concurrency: How many threads call ``infer`` at the same time (a pipeline's inference
                workers). On CPU each call then gets ``threads // concurrency`` intra-op threads, so the
                cores are shared instead of oversubscribed.

        Returns:
            float32 (len(batch), dim), rows in the batch's order (see ``batch.positions``).

        Raises:
            ValidationError: ``concurrency`` is not a positive integer.
            EmbeddingError: Inference failed, or the output has an unexpected shape or dimension.
        """
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValidationError(f"concurrency={concurrency!r} is invalid; expected a positive integer.")
        vectors = runtime.run(self.spec, self._session_for(concurrency), self._inputs, self._output, batch,
                       pooling=self._pooling, normalize=self._normalize, io_binding=self._io_binding)
        if vectors.shape != (len(batch), self.dim):
            raise EmbeddingError(
                f"model {self.spec.model_id!r} produced vectors of shape {vectors.shape}; expected "
                f"({len(batch)}, {self.dim}) (dim from the spec: {self.dim}, "
                f"from the graph: {vectors.shape[-1]}). "
                "Fix 'dim' in the model card, or re-register the model."
            )
        return vectors

    def embed(self, texts: Sequence[str], *, kind: str = "document", batch_size: int | None = None) -> np.ndarray:
        """Embed texts.

        Args:
            texts: The texts.
            kind: ``document`` or ``query`` (chooses the prefix).
            batch_size: Rows per batch; default: by token budget.

        Returns:
            float32, C-contiguous, shape (len(texts), dim), rows in input order.

        Raises:
            ValidationError: Bad ``texts``, ``kind`` or ``batch_size``.
            EmbeddingError: Tokenising or inference failed, or the output has the wrong shape.
        """
        texts = _text_list(texts)
        batches = self.tokenize(texts, kind=kind, batch_size=batch_size)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        workers = min(self.threads, len(batches)) if self.provider == CPU else 1
        if workers <= 1:
            for batch in batches:
                out[batch.positions] = self.infer(batch)
            return out
        # Each worker thread runs whole batches on a one-thread session (onnxruntime releases the GIL);
        # the batches are length-sorted, so handing them out in order keeps the workers evenly loaded.
        with ThreadPoolExecutor(workers, thread_name_prefix="vecns-embed") as pool:
            done = pool.map(lambda b: self.infer(b, concurrency=workers), batches)
            for batch, vectors in zip(batches, done, strict=True):
                out[batch.positions] = vectors
        return out


def _text_list(texts: Iterable[str]) -> list[str]:
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Iterable):
        raise ValidationError(
            f"texts must be a list of strings; got {type(texts).__name__}. Wrap a single text: [text]."
        )
    return texts if isinstance(texts, list) else list(texts)


def load_embedder(
    spec: ModelSpec,
    *,
    providers: str = "auto",
    threads: int | None = None,
    token_budget: int | None = None,
    precision: str = "fp32",
    pool_in_graph: bool | None = None,
) -> Embedder:
    """Load a model's tokenizer and graph.

    Args:
        spec: The model.
        providers: ``auto`` (CUDA when its libraries really load, else CPU), ``cpu``, or ``cuda``
            (required: fails when CUDA does not run).
        threads: Cores to use (default ``os.cpu_count()``): a lone batch runs on this many intra-op
            threads; on CPU, several batches run side by side, one per thread.
        token_budget: Padded tokens per batch; default ``CUDA_TOKEN_BUDGET`` on CUDA, ``CPU_TOKEN_BUDGET``
            on CPU.
        precision: ``fp32`` (the file as it is) or ``fp16`` (converted in memory; for GPUs, where it halves
            memory traffic; on CPU it is slower). An fp16 graph is used only if its vectors on
            ``PROBE_TEXTS`` keep a cosine of at least ``FP16_MIN_COSINE`` with fp32's. The model's
            fingerprint is the file's either way.
        pool_in_graph: Append pooling and normalisation to the graph (default: on CUDA when the onnx
            package is installed), so only ``[batch, dim]`` leaves the device.

    Returns:
        The embedder.

    Raises:
        ModelNotFoundError: A file is missing (for a builtin: its package is not installed).
        ModelLoadError: A file is unreadable, corrupt, differs from its pinned sha256, its inputs or
            outputs do not fit, CUDA was required and did not load, or the fp16 graph strays from fp32
            (or cannot be made: onnx missing, weights outside the file).
        ValidationError: ``providers``, ``token_budget``, ``precision`` or ``pool_in_graph`` is invalid.
    """
    if precision not in PRECISIONS:
        raise ValidationError(f"precision={precision!r} is not supported; expected one of {PRECISIONS}.")
    if pool_in_graph is not None and not isinstance(pool_in_graph, bool):
        raise ValidationError(f"pool_in_graph={pool_in_graph!r} is invalid; expected True, False or None.")
    if token_budget is not None and (
        isinstance(token_budget, bool) or not isinstance(token_budget, int) or token_budget < 1
    ):
        raise ValidationError(f"token_budget={token_budget!r} is invalid; expected a positive integer or None.")
    chosen = runtime.choose_providers(spec, providers)
    spec.check_files()
    graph, graph_version = _read_file(spec, spec.graph_path, "graph")
    vocab, tokenizer_version = _read_file(spec, spec.tokenizer_path, "tokenizer")
    graph_sha = hashlib.sha256(graph).hexdigest()
    tokenizer_sha = hashlib.sha256(vocab).hexdigest()
    check_sha256(spec, spec.graph_path, graph_sha, spec.graph_sha256)
    check_sha256(spec, spec.tokenizer_path, tokenizer_sha, spec.tokenizer_sha256)
    tokenizer, pad_id = _open_tokenizer(spec, vocab)
    threads = threads or os.cpu_count() or 1
    session = runtime.open_session(spec, graph, chosen, threads)
    provider = session.get_providers()[0]
    if providers == "cuda" and provider != CUDA:
        raise ModelLoadError(
            f"model {spec.model_id!r}: providers='cuda' was asked for, but the session runs on {provider}. "
            "Check the GPU driver and the CUDA/cuDNN versions onnxruntime needs, or use providers='auto'."
        )
    if token_budget is None:
        token_budget = CUDA_TOKEN_BUDGET if provider == CUDA else CPU_TOKEN_BUDGET
    def make(session: InferenceSession, rewrite: Rewrite) -> Embedder:
        return Embedder(
            spec,
            session=session,
            tokenizer=tokenizer,
            pad_id=pad_id,
            fingerprint=fingerprint_of(graph_sha, tokenizer_sha, spec.settings()),
            file_versions=(graph_version, tokenizer_version),
            token_budget=token_budget,
            threads=threads,
            graph_sha256=graph_sha,
            rewrite=rewrite,
        )

    embedder = make(session, NO_REWRITE)
    declared = session.get_outputs()[[o.name for o in session.get_outputs()].index(embedder._output)].shape
    if declared and isinstance(declared[-1], int) and declared[-1] != spec.dim:
        raise ModelLoadError(
            f"model {spec.model_id!r}: graph output {embedder._output!r} has dim {declared[-1]}; "
            f"the spec says dim={spec.dim}. Fix 'dim' in the model card."
        )
    rewrite, data = _plan_rewrite(spec, graph, embedder._output, precision=precision, provider=provider,
                                  asked=pool_in_graph)
    if rewrite.precision == "fp32" and not rewrite.pooled:
        return embedder
    return _rewritten(embedder, data, chosen, rewrite, make)


def _plan_rewrite(spec: ModelSpec, graph: bytes, output: str, *, precision: str, provider: str,
                  asked: bool | None) -> tuple[Rewrite, bytes]:
    """The rewrite to load with, and the graph's bytes under it.

    Pooling goes inside the graph when asked, else on CUDA when onnx is installed and the graph can take
    it (a graph that cannot, e.g. an opset below 13, is pooled in numpy rather than refused).
    """
    wanted = asked if asked is not None else provider == CUDA and graphs.available()
    pooled = bool(wanted) and spec.pooling in graphs.POOLINGS
    if precision == "fp32" and not pooled:
        return NO_REWRITE, graph
    return Rewrite(precision, pooled, output).resolve(spec, graph, required=asked is True)


def _rewritten(reference: Embedder, data: bytes, providers: list[str], rewrite: Rewrite,
               make: Callable[[InferenceSession, Rewrite], Embedder]) -> Embedder:
    """The embedder on the rewritten graph ``data``, checked against the file's own on ``PROBE_TEXTS``."""
    spec = reference.spec
    embedder = make(runtime.open_session(spec, data, providers, reference.threads), rewrite)
    want = reference.embed(list(PROBE_TEXTS))
    got = embedder.embed(list(PROBE_TEXTS))
    cosine = float(np.min(np.sum(want * got, axis=1) / np.maximum(
        np.linalg.norm(want, axis=1) * np.linalg.norm(got, axis=1), 1e-12)))
    floor = FP16_MIN_COSINE if rewrite.precision == "fp16" else 1 - 1e-5
    if not cosine >= floor:
        raise ModelLoadError(
            f"model {spec.model_id!r}: its {rewrite.precision} graph"
            f"{' with pooling inside' if rewrite.pooled else ''} gives vectors with a cosine of {cosine:.5f} "
            f"to the file's own on the probe texts; at least {floor} is required. "
            + ("Use precision='fp32' for this model." if rewrite.precision == "fp16" else "Use pool_in_graph=False.")
        )
    return embedder


def probe_dim(spec: ModelSpec) -> int:
    """Run the graph once on a short text (CPU) and return the vector dimension it produces.

    ``spec.dim`` is ignored.

    Raises:
        ModelNotFoundError: A file is missing.
        ModelLoadError: The graph or tokenizer cannot be loaded.
        EmbeddingError: The graph fails on the probe, or its output does not fit ``spec.pooling``.
    """
    spec.check_files()
    tokenizer, _ = _open_tokenizer(spec, _read_file(spec, spec.tokenizer_path, "tokenizer")[0])
    session = runtime.open_session(spec, _read_file(spec, spec.graph_path, "graph")[0], [CPU], 1)
    inputs, output = runtime.check_io(spec, session)
    enc = tokenizer.encode("vecns probe", add_special_tokens=True)
    batch = TokenBatch(
        positions=np.zeros(1, dtype=np.int64),
        input_ids=np.asarray([enc.ids], dtype=np.int64),
        attention_mask=np.ones((1, len(enc.ids)), dtype=np.int64),
        token_type_ids=np.asarray([enc.type_ids], dtype=np.int64),
    )
    return int(runtime.run(spec, session, inputs, output, batch).shape[1])
