"""Ranking metrics: hand-computed cases, input checks, and agreement with trec_eval (via pytrec_eval)."""

from __future__ import annotations

import math
import random

import pytest

from vecns.errors import ValidationError
from vecns.metrics import (
    average_precision,
    check_ks,
    mean_metrics,
    metric_names,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    query_metrics,
    recall_at_k,
    trec_order,
)

# One query worked by hand. Ranked: c (grade 1), b (0), a (2), d (unjudged); z (grade 1) is never retrieved.
# a and b tie at 0.5, so trec order puts b (the larger id) first. R = 3 relevant docs (a, c, z).
RUN = [("a", 0.5), ("b", 0.5), ("c", 0.9), ("d", 0.1)]
QREL = {"a": 2, "b": 0, "c": 1, "z": 1}
L2_3 = math.log2(3)
IDEAL = 2 + 1 / L2_3 + 1 / 2  # grades 2, 1, 1 at ranks 1, 2, 3


def test_trec_order_breaks_score_ties_by_doc_id_descending():
    assert trec_order(RUN) == ["c", "b", "a", "d"]
    assert trec_order([("d1", 1.0), ("d10", 1.0), ("d2", 1.0)]) == ["d2", "d10", "d1"]
    assert trec_order(["x", "a", "m"]) == ["x", "a", "m"]  # ids alone: rank order as given


@pytest.mark.parametrize(("k", "expected"), [
    (1, 1 / 2),                                       # dcg 1 (c); ideal 2 (a)
    (2, 1 / (2 + 1 / L2_3)),                          # dcg 1; ideal 2 + 1/log2(3)
    (3, (1 + 2 / 2) / IDEAL),                         # a (grade 2) at rank 3: 2/log2(4)
    (10, (1 + 2 / 2) / IDEAL),                        # k past the ranking changes nothing
])
def test_ndcg_by_hand(k, expected):
    assert ndcg_at_k(RUN, QREL, k) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("k", "recall", "precision", "mrr", "ap"), [
    (1, 1 / 3, 1.0, 1.0, (1 / 1) / 3),
    (2, 1 / 3, 1 / 2, 1.0, (1 / 1) / 3),
    (3, 2 / 3, 2 / 3, 1.0, (1 / 1 + 2 / 3) / 3),
    (100, 2 / 3, 2 / 100, 1.0, (1 / 1 + 2 / 3) / 3),  # P divides by k even past the ranking's end
])
def test_recall_precision_mrr_map_by_hand(k, recall, precision, mrr, ap):
    assert recall_at_k(RUN, QREL, k) == pytest.approx(recall, abs=1e-12)
    assert precision_at_k(RUN, QREL, k) == pytest.approx(precision, abs=1e-12)
    assert mrr_at_k(RUN, QREL, k) == pytest.approx(mrr, abs=1e-12)
    assert average_precision(RUN, QREL, k) == pytest.approx(ap, abs=1e-12)


def test_mrr_is_cut_at_k():
    ranking = ["n1", "n2", "n3", "r"]
    assert mrr_at_k(ranking, {"r": 1}, 3) == 0.0
    assert mrr_at_k(ranking, {"r": 1}, 4) == 0.25
    assert average_precision(ranking, {"r": 1, "gone": 3}) == pytest.approx(0.25 / 2)


@pytest.mark.parametrize("qrel", [{}, {"a": 0, "b": 0}])
def test_a_query_without_relevant_docs_scores_zero(qrel):
    values = query_metrics(RUN, qrel, (1, 10))
    assert set(values) == set(metric_names((1, 10)))
    assert all(v == 0.0 for v in values.values())


def test_an_empty_ranking_scores_zero():
    assert query_metrics([], QREL, (5,)) == {"ndcg@5": 0.0, "recall@5": 0.0, "precision@5": 0.0, "mrr@5": 0.0,
                                             "map@5": 0.0}


def test_query_metrics_names_and_mean():
    assert metric_names([10, 1, 10]) == ["ndcg@1", "ndcg@10", "recall@1", "recall@10", "precision@1",
                                         "precision@10", "mrr@1", "mrr@10", "map@10"]
    assert list(query_metrics(RUN, QREL, (10, 1))) == metric_names((1, 10))
    mean = mean_metrics({"q1": {"ndcg@1": 1.0, "mrr@1": 0.0}, "q2": {"ndcg@1": 0.5, "mrr@1": 1.0}})
    assert mean == {"ndcg@1": 0.75, "mrr@1": 0.5}
    assert mean_metrics({}) == {}
    with pytest.raises(ValidationError, match="expected"):
        mean_metrics({"q1": {"ndcg@1": 1.0}, "q2": {"mrr@1": 1.0}})


@pytest.mark.parametrize(("ranking", "qrel", "k", "match"), [
    ([("a", 1.0), ("a", 0.5)], {}, 1, "appears twice"),
    (["a", "b", "a"], {}, 1, "appears twice"),
    ([("a", float("nan"))], {}, 1, "finite"),
    ([("a", "high")], {}, 1, "finite"),
    ([("a",)], {}, 1, "pair"),
    ([(1, 0.5)], {}, 1, "pair"),
    (["a", ("b", 1.0)], {}, 1, "mixes"),
    (["a"], {"a": -1}, 1, "grades"),
    (["a"], {"a": 1.5}, 1, "grades"),
    (["a"], {"a": True}, 1, "grades"),
    (["a"], {1: 1}, 1, "strings"),
    (["a"], [("a", 1)], 1, "dict"),
    (["a"], {"a": 1}, 0, "cutoff"),
    (["a"], {"a": 1}, True, "cutoff"),
    (["a"], {"a": 1}, 2.0, "cutoff"),
])
def test_malformed_input_is_refused(ranking, qrel, k, match):
    with pytest.raises(ValidationError, match=match):
        ndcg_at_k(ranking, qrel, k)


@pytest.mark.parametrize("ks", [[], [0], [1, -5], ["10"]])
def test_check_ks_refuses_bad_cutoffs(ks):
    with pytest.raises(ValidationError):
        check_ks(ks)


# -- agreement with trec_eval --------------------------------------------------------------------------

KS = (1, 3, 5, 10, 100)


def _random_case(rng: random.Random) -> tuple[dict[str, float], dict[str, int]]:
    """A run with many tied scores and a graded qrel; about one query in six has no relevant doc."""
    pool = [f"d{i}" for i in range(rng.randint(1, 40))]
    ranked = rng.sample(pool, rng.randint(1, len(pool)))
    levels = [round(rng.random(), 1) for _ in range(rng.randint(1, 4))]  # few distinct scores: many ties
    run = {doc: rng.choice(levels) if rng.random() < 0.6 else rng.random() for doc in ranked}
    judged = rng.sample(pool, rng.randint(1, len(pool)))
    no_relevant = rng.random() < 1 / 6
    qrel = {doc: 0 if no_relevant else rng.choice((0, 0, 1, 2, 3)) for doc in judged}
    qrel.update({f"unretrieved{i}": rng.choice((1, 2)) for i in range(rng.randint(0, 3))} if not no_relevant else {})
    return run, qrel


def _reference(pytrec_eval, runs: dict, qrels: dict) -> dict[str, dict[str, float]]:
    """Our metric names from trec_eval: mrr@k is recip_rank over the run cut at k (trec order)."""
    cuts = ",".join(map(str, KS))
    measures = {f"ndcg_cut.{cuts}", f"recall.{cuts}", f"P.{cuts}", f"map_cut.{cuts}", "map"}
    full = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(runs)
    out = {qid: {} for qid in runs}
    for qid, values in full.items():
        for k in KS:
            out[qid][f"ndcg@{k}"] = values[f"ndcg_cut_{k}"]
            out[qid][f"recall@{k}"] = values[f"recall_{k}"]
            out[qid][f"precision@{k}"] = values[f"P_{k}"]
            out[qid][f"map_cut@{k}"] = values[f"map_cut_{k}"]
        out[qid]["map"] = values["map"]
    for k in KS:
        # trec_eval's own order, written out here (score descending, then doc id descending), so the
        # reference does not lean on vecns' trec_order.
        cut = {qid: dict(sorted(run.items(), key=lambda item: (item[1], item[0]), reverse=True)[:k])
               for qid, run in runs.items()}
        for qid, values in pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(cut).items():
            out[qid][f"mrr@{k}"] = values["recip_rank"]
    return out


def test_metrics_agree_with_trec_eval_on_random_runs():
    import pytrec_eval  # the dev extra's trec_eval: missing, the test fails instead of skipping
    rng = random.Random(20240601)
    runs, qrels = {}, {}
    for i in range(300):
        runs[f"q{i}"], qrels[f"q{i}"] = _random_case(rng)
    reference = _reference(pytrec_eval, runs, qrels)
    assert len(reference) == 300
    assert sum(1 for q in qrels.values() if not any(g > 0 for g in q.values())) >= 20
    assert sum(1 for qid in runs if len(runs[qid]) < 10) >= 50  # k larger than the ranking
    assert sum(1 for run in runs.values() if len(set(run.values())) < len(run)) >= 150  # tied scores
    assert sum(1 for q in qrels.values() if len({g for g in q.values() if g > 0}) > 1) >= 100  # graded
    checked = 0
    for qid, run in runs.items():
        ranking = list(run.items())
        rng.shuffle(ranking)  # trec order comes from the scores, not from the order given
        ours = query_metrics(ranking, qrels[qid], KS)
        ours.update({f"map_cut@{k}": average_precision(ranking, qrels[qid], k) for k in KS})
        ours["map"] = average_precision(ranking, qrels[qid])
        for name, expected in reference[qid].items():
            assert ours[name] == pytest.approx(expected, abs=1e-9), (qid, name)
            checked += 1
    assert checked == 300 * (5 * len(KS) + 1)
