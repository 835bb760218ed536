"""Search on ~20k vectors: by vector and by text, unfiltered and filtered to 1%, 10% and 50% of objects.

Filters select collections (object ``i`` is in ``c{i % 100}``), so the three shares exercise both filtered
paths: 1% (200 objects) is searched exactly over the matching keys, 10% and 50% oversample the graph.

The text namespaces hold the chunked standard-library docstrings with the same clustered vectors as the
vector namespace: embedding 20k texts would take minutes on a laptop CPU, and the search cost does not
depend on which vectors sit in the graph as long as they are structured. Each text search still embeds
its query with the real model.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pytest_benchmark")

from conftest import COLLECTIONS, SEARCH_VECTORS, SEED, clustered_vectors, corpus, model_params  # noqa: E402

import vecns  # noqa: E402
from vecns.embed import Embedder  # noqa: E402

SHARES = {"all": None, "1pct": 1, "10pct": 10, "50pct": 50}
WARMUP_QUERIES = 20
K = 10


def share_filter(share: str) -> dict[str, Any] | None:
    """The filter selecting ``share`` of the objects (``None`` for unfiltered)."""
    wanted = SHARES[share]
    if wanted is None:
        return None
    return {"collection_ids": [f"c{i}" for i in range(wanted)]}


@pytest.fixture(scope="module")
def corpus_vectors() -> np.ndarray:
    return clustered_vectors(SEARCH_VECTORS)


@pytest.fixture(scope="module")
def vector_ns(module_store: vecns.Store, corpus_vectors: np.ndarray) -> vecns.Namespace:
    ns = module_store.create_namespace("vectors", dim=corpus_vectors.shape[1], model_label="bench")
    ns.add([{"id": f"v{i}", "vector": vec, "collection": f"c{i % COLLECTIONS}"}
            for i, vec in enumerate(corpus_vectors)], batch_size=2048)
    return ns


@pytest.fixture(scope="module")
def chunk_texts() -> list[str]:
    texts = [d.text for d in corpus(unit="chunk")]
    # Fewer chunks than vectors on an older Python: repeat them; ids stay unique.
    return [texts[i % len(texts)] for i in range(SEARCH_VECTORS)]


class TextNamespaces:
    """Text namespaces of the module store, one per model, built on first use."""

    def __init__(self, store: vecns.Store, texts: Sequence[str], vectors: np.ndarray) -> None:
        self._store = store
        self._texts = texts
        self._vectors = vectors
        self._built: dict[str, vecns.Namespace] = {}

    def get(self, model_id: str) -> vecns.Namespace:
        """The namespace of ``model_id``, holding the texts with the clustered vectors as their embeddings."""
        if model_id not in self._built:
            self._built[model_id] = self._build(model_id)
        return self._built[model_id]

    def _build(self, model_id: str) -> vecns.Namespace:
        # Repeated texts share a vector, as they would share an embedding.
        row_of = {text: i for i, text in enumerate(self._texts)}
        vectors = self._vectors

        def stored_vectors(_: Embedder, batch: Sequence[str], **__: Any) -> np.ndarray:
            return vectors[[row_of[text] for text in batch]]

        ns = self._store.create_namespace(f"text-{model_id}", model_id)
        objects = [{"id": f"t{i}", "text": text, "collection": f"c{i % COLLECTIONS}"}
                   for i, text in enumerate(self._texts)]
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(Embedder, "embed", stored_vectors)
            ns.add(objects, batch_size=2048)
        return ns


@pytest.fixture(scope="module")
def text_namespaces(module_store: vecns.Store, chunk_texts: list[str],
                    corpus_vectors: np.ndarray) -> TextNamespaces:
    return TextNamespaces(module_store, chunk_texts, corpus_vectors)


def vector_queries(vectors: np.ndarray, n: int = 200) -> list[np.ndarray]:
    rng = np.random.default_rng(SEED + 1)
    picked = vectors[rng.choice(len(vectors), n, replace=False)]
    noisy = picked + 0.1 * rng.standard_normal(picked.shape).astype(np.float32)
    return list(noisy / np.linalg.norm(noisy, axis=1, keepdims=True))


def text_queries(texts: Sequence[str], n: int = 200) -> list[str]:
    step = max(1, len(texts) // n)
    return [" ".join(t.split()[:8]) for t in texts[::step][:n]]


def run_search(benchmark, ns: vecns.Namespace, queries: Sequence[Any], share: str) -> None:
    filters = share_filter(share)
    cycle = itertools.cycle(queries)
    for _ in range(WARMUP_QUERIES):
        ns.search(next(cycle), k=K, filters=filters)
    hits = benchmark(lambda: ns.search(next(cycle), k=K, filters=filters))
    assert len(hits) == K
    if filters is not None:
        assert {h.collection for h in hits} <= set(filters["collection_ids"])
    benchmark.extra_info.update(objects=len(ns), share=share, k=K)


@pytest.mark.parametrize("share", list(SHARES))
def test_vector_search(benchmark, vector_ns: vecns.Namespace, corpus_vectors: np.ndarray, share: str) -> None:
    run_search(benchmark, vector_ns, vector_queries(corpus_vectors), share)


@pytest.mark.parametrize("share", list(SHARES))
@pytest.mark.parametrize("model_id", model_params())
def test_text_search(benchmark, text_namespaces: TextNamespaces, chunk_texts: list[str], model_id: str,
                     share: str) -> None:
    ns = text_namespaces.get(model_id)
    run_search(benchmark, ns, text_queries(chunk_texts), share)
