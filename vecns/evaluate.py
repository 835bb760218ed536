"""Relevance of a namespace on judged queries, side-by-side comparison of two namespaces, model benchmarks.

``evaluate`` searches a namespace with each query (embedded by the namespace's own locked model) and scores
the hits with the trec_eval-compatible metrics of ``vecns.metrics``; the overall numbers are stored so the
cutover gate can compare a migration's source and target. ``compare`` puts two namespaces side by side,
with or without judgements. ``bench_models`` ingests one corpus with several models and reports speed and
relevance together.
"""

from __future__ import annotations

import dataclasses
import math
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vecns.catalog import migrations as mig_db
from vecns.catalog import objects as rows_db
from vecns.errors import (
    ConfigError,
    MigrationNotFoundError,
    NamespaceExistsError,
    ReadOnlyError,
    ValidationError,
)
from vecns.metrics import check_ks, check_qrel, mean_metrics, query_metrics, trec_order
from vecns.namespace import DEFAULT_BATCH_SIZE, Namespace, search_unfiltered
from vecns.validation import check_k

if TYPE_CHECKING:
    from vecns.beir import BeirData
    from vecns.store import Store

Queries = Mapping[str, Any] | Iterable[tuple[str, Any]]
Qrels = Mapping[str, Mapping[str, int]]
# Queries embedded per call, so a progress bar moves during a long evaluation.
QUERY_CHUNK = 256
DEFAULT_KS = (1, 5, 10, 100)


def _render(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True))) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def _fmt(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


@dataclass(frozen=True)
class EvalReport:
    """The relevance of one namespace on judged queries.

    Attributes:
        metrics: Mean of each metric over the evaluated queries (names as ``ndcg@10``, ``map@100``).
        per_query: ``{query_id: {metric: value}}``.
        k: The cutoffs.
        n_queries: Queries evaluated (those both given and judged).
        model_id: The model the namespace's searched feature is locked to.
        namespace: The namespace's name.
        dataset: The label the result is stored under.
        seconds: Wall time of embedding, searching and scoring.
        evaluation_id: The stored evaluation's id (None when not stored).
        migration_id: The migration the evaluation was stored for, if any.
    """

    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]]
    k: tuple[int, ...]
    n_queries: int
    model_id: str
    namespace: str
    dataset: str
    seconds: float
    evaluation_id: str | None = None
    migration_id: str | None = None

    def __repr__(self) -> str:
        key = "ndcg@10" if "ndcg@10" in self.metrics else f"ndcg@{self.k[-1]}"
        return (f"EvalReport({self.namespace!r}, model_id={self.model_id!r}, {key}="
                f"{self.metrics.get(key, float('nan')):.4f}, n_queries={self.n_queries})")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        data = dataclasses.asdict(self)
        data["k"] = list(self.k)
        return data

    def table(self) -> str:
        """A small text table: one row per metric, one column per cutoff (``map`` at the largest)."""
        head = (f"{self.namespace} ({self.model_id}) on {self.dataset}: {self.n_queries} queries, "
                f"{self.seconds:.2f} s")
        rows = [["metric", *(f"@{k}" for k in self.k)]]
        for name in ("ndcg", "recall", "precision", "mrr"):
            rows.append([name, *(_fmt(self.metrics.get(f"{name}@{k}")) for k in self.k)])
        rows.append([f"map@{self.k[-1]}", *(["-"] * (len(self.k) - 1)), _fmt(self.metrics.get(f"map@{self.k[-1]}"))])
        return head + "\n" + _render(rows)


@dataclass(frozen=True)
class Comparison:
    """Two namespaces side by side on the same queries; ``b`` is compared to ``a`` (delta = b - a).

    Attributes:
        a, b: The namespaces' names.
        model_a, model_b: Their models.
        k: The cutoff of every metric and of the overlap.
        n_queries: Queries searched in both.
        metrics_a, metrics_b, delta: Each metric's mean (empty without qrels).
        wins, losses, ties: Per query, whether ``b``'s ndcg@k is above, below or equal to ``a``'s
            (None without qrels).
        overlap: Mean over queries of |A ∩ B| / max(|A|, |B|) for the two top-k id lists, which is
            |A ∩ B| / k when both namespaces return k hits (queries where both return nothing are skipped).
        spearman, kendall: Mean rank correlation (Spearman's rho, Kendall's tau-a) of the ids both lists
            share, by their positions in each list; over queries sharing at least 2 ids (None if none does).
        n_correlated: Queries that share at least 2 ids.
        per_query: ``{query_id: {"overlap", "spearman", "kendall"[, "ndcg_a", "ndcg_b"]}}``.
        seconds: Wall time of the whole comparison.
    """

    a: str
    b: str
    model_a: str
    model_b: str
    k: int
    n_queries: int
    metrics_a: dict[str, float]
    metrics_b: dict[str, float]
    delta: dict[str, float]
    wins: int | None
    losses: int | None
    ties: int | None
    overlap: float
    spearman: float | None
    kendall: float | None
    n_correlated: int
    per_query: dict[str, dict[str, float]]
    seconds: float

    def __repr__(self) -> str:
        main = f"ndcg@{self.k}"
        shown = f", {main} delta={self.delta[main]:+.4f}" if main in self.delta else ""
        return f"Comparison({self.a!r} vs {self.b!r}{shown}, overlap@{self.k}={self.overlap:.4f})"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return dataclasses.asdict(self)

    def table(self) -> str:
        """A small text table: each metric for a and b with the delta, then wins and the label-free numbers."""
        lines = [f"{self.a} ({self.model_a}) vs {self.b} ({self.model_b}): {self.n_queries} queries, "
                 f"{self.seconds:.2f} s"]
        if self.metrics_a:
            rows = [["metric", self.a, self.b, "delta (b-a)"]]
            rows += [[name, _fmt(self.metrics_a[name]), _fmt(self.metrics_b[name]), _fmt(self.delta[name], signed=True)]
                     for name in self.metrics_a]
            lines.append(_render(rows))
            lines.append(f"per query ndcg@{self.k}, {self.b} vs {self.a}: {self.wins} wins, {self.losses} losses, "
                         f"{self.ties} ties")
        lines.append(f"overlap@{self.k} (|A∩B|/k): {self.overlap:.4f}; rank correlation over shared ids "
                     f"({self.n_correlated} queries): spearman {_fmt(self.spearman)}, kendall {_fmt(self.kendall)}")
        return "\n".join(lines)


# -- searching -----------------------------------------------------------------------------------


def _query_items(queries: Queries) -> dict[str, Any]:
    items = queries.items() if isinstance(queries, Mapping) else queries
    out: dict[str, Any] = {}
    try:
        pairs = list(items)
    except TypeError as exc:
        raise ValidationError(f"queries must be a dict {{query_id: text}} or a list of (query_id, text) pairs; "
                              f"got {type(queries).__name__}.") from exc
    for pair in pairs:
        if not (isinstance(pair, Sequence) and not isinstance(pair, str) and len(pair) == 2):
            raise ValidationError(f"a query is {pair!r}; expected a (query_id, text) pair.")
        qid, query = pair
        if not isinstance(qid, str) or not qid:
            raise ValidationError(f"query id {qid!r} is not allowed; query ids are non-empty strings.")
        if qid in out:
            raise ValidationError(f"query id {qid!r} appears twice; each query id may appear once.")
        if isinstance(query, str) and not query.strip():
            raise ValidationError(f"query {qid!r} has no text; give it text (or a vector).")
        out[qid] = query
    if not out:
        raise ValidationError("no queries given; pass {query_id: text} with at least one query.")
    return out


def _rankings(namespace: Namespace, queries: Mapping[str, Any], *, k: int, filters: Mapping[str, Any] | None,
              progress: Callable[[int], None] | None = None) -> dict[str, list[tuple[str, float]]]:
    """Search every query once; texts are embedded, as queries, by the namespace's own model, a chunk at a
    time (``progress`` gets the count of queries embedded after each)."""
    k = check_k(k)
    feature = namespace.feature()
    texts = {qid: q for qid, q in queries.items() if isinstance(q, str)}
    vectors: dict[str, Any] = {}
    if texts and feature.extractor is not None:
        embedder = namespace._store._embedder_for(namespace, feature)
        ids = list(texts)
        for start in range(0, len(ids), QUERY_CHUNK):
            chunk = ids[start:start + QUERY_CHUNK]
            vectors.update(zip(chunk, embedder.embed([texts[q] for q in chunk], kind="query"), strict=True))
            if progress is not None:
                progress(len(chunk))
    rest = [qid for qid in queries if qid not in vectors]
    vectors = {qid: vectors[qid] if qid in vectors else namespace._query_vector(query, feature)
               for qid, query in queries.items()}
    if progress is not None and rest:
        progress(len(rest))
    if filters is not None:
        return {qid: [(hit.id, hit.score) for hit in namespace.search(vector, k=k, filters=filters)]
                for qid, vector in vectors.items()}
    # Without filters, one batched index search and one catalog read replace a search call per query; it
    # searches as Namespace.search does, so the metrics rank what users get.
    index = namespace._store._indexes.get(namespace.record, feature)
    if not len(index):
        return {qid: [] for qid in vectors}
    keys, scores = search_unfiltered(index, np.stack(list(vectors.values())), k)
    found = rows_db.get(namespace._store._catalog, namespace.record, keys=np.unique(keys[keys >= 0]).tolist())
    ids = {stored.key: stored.id for stored in found}
    return {qid: [(ids[key], float(score)) for key, score in zip(keys[i].tolist(), scores[i].tolist(), strict=True)
                  if key in ids]
            for i, qid in enumerate(vectors)}


def _check_namespace(namespace: Any, role: str = "namespace") -> Namespace:
    if not isinstance(namespace, Namespace):
        raise ValidationError(f"the {role} must be a Namespace (store.namespace(name)); got "
                              f"{type(namespace).__name__}.")
    return namespace


def _migration_id(namespace: Namespace, migration: Any) -> str | None:
    if migration is None:
        return None
    migration_id = getattr(migration, "id", migration)
    row = mig_db.get(namespace._store._catalog, migration_id) if isinstance(migration_id, str) else None
    if row is None:
        raise MigrationNotFoundError(f"no migration {migration_id!r} to store this evaluation with; pass a "
                                     "migration (or its id) from store.migrations.list(), or None.")
    if namespace.id not in (row.source_id, row.target_id):
        raise ValidationError(f"namespace {namespace.name!r} is neither the source nor the target of migration "
                              f"{row.id!r}; evaluate its source or target, or pass migration=None.")
    return row.id


# -- evaluate ------------------------------------------------------------------------------------


def evaluate(namespace: Namespace, queries: Queries, qrels: Qrels, *, k: int | Iterable[int] = DEFAULT_KS,
             filters: Mapping[str, Any] | None = None, dataset: str = "default", store_result: bool = True,
             migration: Any = None, progress: Callable[[int, int], None] | None = None) -> EvalReport:
    """Measure how well a namespace ranks judged documents for each query.

    Each query is searched once for ``max(k)`` hits, text embedded by the namespace's own locked model (as a
    query). Metrics follow trec_eval (see ``vecns.metrics``): ``ndcg@k`` is ``ndcg_cut_k`` (linear gain
    ``grade / log2(rank + 1)``), ``recall@k``, ``precision@k`` (``P_k``, divided by k), ``mrr@k`` (reciprocal
    rank cut at k), and ``map@K`` at the largest cutoff K (``map_cut_K``, divided by all relevant docs);
    hits with equal scores are ordered by doc id descending, as trec_eval does. A doc is relevant at grade
    >= 1.

    Which queries count: only those both in ``queries`` and in ``qrels`` (trec_eval skips queries absent
    from the qrels; judged queries without text cannot be searched). A judged query without any relevant
    doc, or that gets no hits, counts with 0 on every metric (trec_eval ``-c``). The overall numbers are the
    means over the counted queries.

    Args:
        namespace: The namespace to search.
        queries: ``{query_id: text}`` or ``[(query_id, text), ...]``; a vector instead of a text is searched as
            is (for namespaces of caller-supplied vectors).
        qrels: ``{query_id: {doc_id: grade}}``, grades ints >= 0 (0 = not relevant).
        k: Cutoffs, e.g. ``(1, 5, 10, 100)``.
        filters: Search only objects matching these filters.
        dataset: Label the stored result carries (the cutover gate may ask for it).
        store_result: Store the overall metrics in the catalog for this namespace (and ``migration``).
        migration: The migration (or its id) this evaluation is for; the namespace must be its source or target.
        progress: Called with (queries embedded, queries to embed) as the queries are embedded.

    Returns:
        The report.

    Raises:
        ValidationError: Malformed queries, qrels or cutoffs, no query is judged, or a bad ``dataset``.
        ReadOnlyError: ``store_result`` on a store opened read-only.
        MigrationNotFoundError: ``migration`` does not exist.
        ModelMismatchError, DimensionMismatchError, FilterError: As ``Namespace.search`` raises them.
    """
    started = time.perf_counter()
    _check_namespace(namespace)
    ks = check_ks(k)
    items = _query_items(queries)
    if not isinstance(qrels, Mapping):
        raise ValidationError(f"qrels must be a dict {{query_id: {{doc_id: grade}}}}; got {type(qrels).__name__}.")
    judged = {qid: check_qrel(qrels[qid], what=f"qrels of query {qid!r}") for qid in items if qid in qrels}
    if not judged:
        raise ValidationError(f"none of the {len(items)} queries is judged in qrels (which judge {len(qrels)} "
                              "queries); query ids must match the qrels' keys.")
    if not isinstance(dataset, str) or not dataset.strip():
        raise ValidationError(f"dataset={dataset!r} is not allowed; expected a non-empty label like 'default'.")
    if store_result and namespace._store.read_only:
        raise ReadOnlyError("cannot store an evaluation: the store is open read-only. Pass store_result=False, "
                            "or open the store with read_only=False.")
    migration_id = _migration_id(namespace, migration)
    rankings = _rankings(namespace, {qid: items[qid] for qid in judged}, k=ks[-1], filters=filters,
                         progress=_counter(progress, len(judged)))
    per_query = {qid: query_metrics(rankings[qid], judged[qid], ks) for qid in judged}
    metrics = mean_metrics(per_query)
    evaluation_id = None
    if store_result:
        evaluation_id = "ev_" + secrets.token_hex(8)
        with namespace._store._catalog.atomic() as tx:
            mig_db.put_evaluation(tx, evaluation_id, namespace.id, dataset, metrics, migration_id)
    return EvalReport(metrics, per_query, ks, len(per_query), namespace.feature().model_id, namespace.name,
                      dataset, time.perf_counter() - started, evaluation_id, migration_id)


def _counter(progress: Callable[[int, int], None] | None, total: int) -> Callable[[int], None] | None:
    """Turn (done, total) progress into a callback that takes how many more are done."""
    if progress is None:
        return None
    done = [0]

    def step(more: int) -> None:
        done[0] += more
        progress(done[0], total)
    return step


# -- compare -------------------------------------------------------------------------------------


def rank_correlation(a: Sequence[str], b: Sequence[str]) -> tuple[float, float] | None:
    """Spearman's rho and Kendall's tau-a of the ids two rankings share, by their order in each.

    Returns:
        ``(spearman, kendall)``, or None when fewer than 2 ids are shared.
    """
    shared = set(a) & set(b)
    n = len(shared)
    if n < 2:
        return None
    rank_b = {doc_id: i for i, doc_id in enumerate(d for d in b if d in shared)}
    order = np.array([rank_b[d] for d in a if d in shared], dtype=np.int64)  # b's ranks in a's order
    d = order - np.arange(n)
    spearman = 1.0 - 6.0 * float(np.sum(d * d)) / (n * (n * n - 1))
    sign = np.sign(order[None, :] - order[:, None])
    kendall = float(np.triu(sign, 1).sum()) / (n * (n - 1) / 2)
    return spearman, kendall


def _overlap(a: Sequence[str], b: Sequence[str]) -> float | None:
    size = max(len(a), len(b))
    return len(set(a) & set(b)) / size if size else None


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return math.fsum(values) / len(values) if values else None


def compare(a: Namespace, b: Namespace, queries: Queries, *, qrels: Qrels | None = None, k: int = 10,
            filters: Mapping[str, Any] | None = None, progress: Callable[[int, int], None] | None = None
            ) -> Comparison:
    """Compare two namespaces (typically a migration's source and target) on the same queries.

    Each namespace embeds the queries with its own locked model. With ``qrels``, every metric at ``k`` is
    reported for both with the delta ``b - a``, and per query wins / losses / ties of ``b`` on ndcg@k (only
    judged queries count, as in ``evaluate``). Always, label-free: the mean overlap of the two top-k lists
    (|A ∩ B| / k) and the mean Spearman and Kendall correlation of the ranks of the ids both lists share.
    Nothing is stored.

    Args:
        a: The reference namespace (e.g. the source).
        b: The namespace compared to it (e.g. the target).
        queries: ``{query_id: text}`` or ``[(query_id, text), ...]``.
        qrels: Optional ``{query_id: {doc_id: grade}}``.
        k: The cutoff of the metrics and of the overlap.
        filters: Search only objects matching these filters, in both.
        progress: Called with (queries embedded, 2 x queries) as each namespace embeds them.

    Returns:
        The comparison.

    Raises:
        ValidationError: Malformed queries, qrels or ``k``, or no query is judged in the given qrels.
        ModelMismatchError, DimensionMismatchError, FilterError: As ``Namespace.search`` raises them.
    """
    started = time.perf_counter()
    _check_namespace(a, "first namespace")
    _check_namespace(b, "second namespace")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValidationError(f"k={k!r} is not allowed; compare takes one cutoff, an int >= 1.")
    items = _query_items(queries)
    judged: dict[str, dict[str, int]] = {}
    if qrels is not None:
        if not isinstance(qrels, Mapping):
            raise ValidationError(f"qrels must be a dict {{query_id: {{doc_id: grade}}}}; got "
                                  f"{type(qrels).__name__}.")
        judged = {qid: check_qrel(qrels[qid], what=f"qrels of query {qid!r}") for qid in items if qid in qrels}
        if not judged:
            raise ValidationError(f"none of the {len(items)} queries is judged in qrels; query ids must match "
                                  "the qrels' keys (or pass qrels=None for a label-free comparison).")
    count = _counter(progress, 2 * len(items))
    run_a = _rankings(a, items, k=k, filters=filters, progress=count)
    run_b = _rankings(b, items, k=k, filters=filters, progress=count)
    per_query: dict[str, dict[str, float]] = {}
    for qid in items:
        ids_a, ids_b = trec_order(run_a[qid]), trec_order(run_b[qid])
        row: dict[str, float] = {}
        overlap = _overlap(ids_a, ids_b)
        if overlap is not None:
            row["overlap"] = overlap
        correlation = rank_correlation(ids_a, ids_b)
        if correlation is not None:
            row["spearman"], row["kendall"] = correlation
        per_query[qid] = row
    metrics_a, metrics_b = _judged_metrics(run_a, judged, k), _judged_metrics(run_b, judged, k)
    wins = losses = ties = None
    if judged:
        for qid in judged:
            per_query[qid]["ndcg_a"] = metrics_a[qid][f"ndcg@{k}"]
            per_query[qid]["ndcg_b"] = metrics_b[qid][f"ndcg@{k}"]
        diffs = [per_query[qid]["ndcg_b"] - per_query[qid]["ndcg_a"] for qid in judged]
        wins, losses = sum(1 for d in diffs if d > 1e-12), sum(1 for d in diffs if d < -1e-12)
        ties = len(diffs) - wins - losses
    mean_a, mean_b = mean_metrics(metrics_a), mean_metrics(metrics_b)
    correlated = [row for row in per_query.values() if "spearman" in row]
    overlap = _mean(row["overlap"] for row in per_query.values() if "overlap" in row)
    return Comparison(
        a.name, b.name, a.feature().model_id, b.feature().model_id, k, len(items), mean_a, mean_b,
        {name: mean_b[name] - mean_a[name] for name in mean_a}, wins, losses, ties,
        0.0 if overlap is None else overlap,
        _mean(row["spearman"] for row in correlated), _mean(row["kendall"] for row in correlated),
        len(correlated), per_query, time.perf_counter() - started,
    )


def _judged_metrics(run: Mapping[str, list[tuple[str, float]]], judged: Mapping[str, dict[str, int]],
                    k: int) -> dict[str, dict[str, float]]:
    return {qid: query_metrics(run[qid], qrel, (k,)) for qid, qrel in judged.items()}


# -- model benchmark -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelBench:
    """One model's speed and relevance on one corpus.

    Attributes:
        model_id: The model.
        namespace: The namespace it filled.
        provider: The ONNX Runtime execution provider that ran it.
        docs: Documents ingested.
        tokens: Tokens the model saw for them (after truncation, special tokens included).
        seconds: Wall time of the ingest (embedding, writing, indexing).
        metrics: The evaluation's overall metrics.
        eval_seconds: Wall time of the evaluation.
    """

    model_id: str
    namespace: str
    provider: str
    docs: int
    tokens: int
    seconds: float
    metrics: dict[str, float]
    eval_seconds: float

    @property
    def docs_per_second(self) -> float:
        """Documents ingested per second."""
        return self.docs / self.seconds if self.seconds > 0 else 0.0

    @property
    def tokens_per_second(self) -> float:
        """Tokens ingested per second."""
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    def __repr__(self) -> str:
        return (f"ModelBench({self.model_id!r}, {self.docs_per_second:.1f} docs/s, "
                f"ndcg@10={self.metrics.get('ndcg@10', float('nan')):.4f})")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (rates included)."""
        return {**dataclasses.asdict(self), "docs_per_second": self.docs_per_second,
                "tokens_per_second": self.tokens_per_second}


def bench_table(rows: Sequence[ModelBench]) -> str:
    """A text table of model benchmarks: speed, then the main metrics."""
    names = [n for n in ("ndcg@10", "recall@10", "mrr@10", "recall@100") if rows and n in rows[0].metrics]
    table = [["model", "provider", "docs", "docs/s", "tokens/s", *names]]
    for row in rows:
        table.append([row.model_id, row.provider.removesuffix("ExecutionProvider"), str(row.docs),
                      f"{row.docs_per_second:.1f}", f"{row.tokens_per_second:.0f}",
                      *(_fmt(row.metrics[n]) for n in names)])
    return _render(table)


def bench_models(store: Store, models: Sequence[str], data: BeirData, *, k: int | Iterable[int] = DEFAULT_KS,
                 batch_size: int = DEFAULT_BATCH_SIZE, prefix: str = "bench-",
                 progress: Callable[[str, int, int | None], bool | None] | None = None) -> list[ModelBench]:
    """Ingest one BEIR corpus with each model into its own namespace, timing it, then evaluate each.

    Namespaces are named ``<prefix><model_id>``; results are stored under ``data.name``.

    Args:
        store: The store to create the namespaces in.
        models: Model ids, each registered in the store.
        data: The corpus, queries and qrels.
        k: Cutoffs for the evaluation.
        batch_size: Objects per ingest transaction.
        prefix: Namespace name prefix.
        progress: Called as ``progress(model_id, done, total)`` during each ingest; returning False stops.

    Returns:
        One entry per model, in the order given.

    Raises:
        NamespaceExistsError: A ``<prefix><model_id>`` namespace exists already (drop it, or pick a prefix).
        ModelNotFoundError: A model is not registered or not installed.
        ValidationError: No model given, a model given twice, or bad data.
    """
    from vecns.beir import ingest_beir

    models = list(models)
    if not models or len(set(models)) != len(models):
        raise ValidationError(f"models={models!r}: give one or more distinct model ids.")
    for model_id in models:
        name = f"{prefix}{model_id}"
        if name in {ns.name for ns in store.namespaces()}:
            raise NamespaceExistsError(f"namespace {name!r} exists already; drop it or bench with another prefix.")
    texts = [data.doc_text(doc_id) for doc_id in data.corpus]
    out = []
    for model_id in models:
        embedder = store.embedder(model_id)
        namespace = store.create_namespace(f"{prefix}{model_id}", model_id)
        report = ingest_beir(namespace, data, batch_size=batch_size,
                             progress=(lambda done, total, m=model_id: progress(m, done, total)) if progress else None)
        store.flush()
        result = evaluate(namespace, data.queries, data.qrels, k=k, dataset=data.name)
        out.append(ModelBench(model_id, namespace.name, embedder.provider, report.count,
                              embedder.count_tokens(texts), report.seconds, result.metrics, result.seconds))
    return out


def plot_bench(rows: Sequence[ModelBench], path: str | Path, *, metric: str = "ndcg@10",
               title: str | None = None) -> Path:
    """Draw speed against relevance, one labelled point per model, into a PNG (needs the ``plot`` extra).

    Returns:
        The PNG's path.

    Raises:
        ConfigError: matplotlib is not installed, or the file cannot be written.
        ValidationError: ``metric`` is not in the benchmarks.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt
    except ImportError as exc:
        raise ConfigError("drawing the chart needs matplotlib: pip install 'vecns[plot]'.") from exc
    if any(metric not in row.metrics for row in rows):
        raise ValidationError(f"metric {metric!r} is not in every benchmark; known: {sorted(rows[0].metrics)}.")
    path = Path(path)
    figure, axes = plt.subplots(figsize=(7, 4.5))
    try:
        for row in rows:
            axes.scatter(row.docs_per_second, row.metrics[metric], s=40)
            axes.annotate(f"{row.model_id} ({row.provider.removesuffix('ExecutionProvider')})",
                          (row.docs_per_second, row.metrics[metric]), textcoords="offset points", xytext=(6, 6),
                          fontsize=8)
        axes.set_xlabel("ingest speed (documents / s)")
        axes.set_ylabel(f"{metric} (0 to 1)")
        axes.set_title(title or f"Embedding models: speed vs {metric}")
        axes.grid(alpha=0.3)
        axes.margins(x=0.35, y=0.2)  # room for the labels right of each point
        figure.tight_layout()
        figure.savefig(path, dpi=120)
    except OSError as exc:
        raise ConfigError(f"cannot write the chart to {path}: {exc.strerror}.") from exc
    finally:
        plt.close(figure)
    return path
