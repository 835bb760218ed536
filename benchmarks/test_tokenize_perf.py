"""Tokenisation: ``Embedder.tokenize`` (encode, sort by length, pad into batches) on every stdlib docstring."""

from __future__ import annotations

import pytest

pytest.importorskip("pytest_benchmark")

from conftest import THREADS, model_params  # noqa: E402

from vecns.embed import load_embedder  # noqa: E402
from vecns.models import builtin_specs  # noqa: E402


@pytest.mark.parametrize("kind", ["document", "query"])
@pytest.mark.parametrize("model_id", model_params())
def test_tokenize(benchmark, all_docs, model_id: str, kind: str) -> None:
    embedder = load_embedder(builtin_specs()[model_id], providers="cpu", threads=THREADS)
    texts = [d.text for d in all_docs]
    embedder.tokenize(texts[:200], kind=kind)
    batches = benchmark(embedder.tokenize, texts, kind=kind)
    assert sum(len(b) for b in batches) == len(texts)
    tokens = sum(b.n_tokens for b in batches)
    padded = sum(b.input_ids.size for b in batches)
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(
        docs=len(texts), tokens=tokens, padded_tokens=padded, batches=len(batches),
        docs_per_s=round(len(texts) / median), tokens_per_s=round(tokens / median),
    )
