"""Ranking metrics in plain Python, following trec_eval's definitions (checked against it in the tests).

A *ranking* is what a search returned for one query: a sequence of ``(doc_id, score)`` pairs, or a
sequence of doc ids already in rank order. A *qrel* maps doc ids to graded judgements, ints >= 0, where 0
means judged not relevant and a doc absent from it is not relevant either.

As trec_eval does, a ranking given with scores is first put in trec order: score descending, ties broken by
doc id descending (the order of the ids' code points, which is ``strcmp`` order on their UTF-8 bytes); the
order the pairs were given in does not matter. A doc is relevant when its grade is >= 1 (trec_eval's
default ``relevance_level``). With ``K`` the cutoff and ``R`` the number of relevant docs in the qrel:

- ``ndcg@K`` (trec_eval ``ndcg_cut_K``): DCG of the top K with linear gain ``grade / log2(rank + 1)``,
  divided by the DCG of the ideal ranking (all judged grades, highest first, cut at K); 0 when ``R`` is 0.
- ``recall@K`` (``recall_K``): relevant docs in the top K / ``R``; 0 when ``R`` is 0.
- ``precision@K`` (``P_K``): relevant docs in the top K / K, also when fewer than K docs were returned.
- ``mrr@K`` (``recip_rank`` of the ranking cut at K): 1 / rank of the first relevant doc in the top K, else 0.
- ``map@K`` (``map_cut_K``): the sum, over the relevant docs in the top K, of the precision at their rank,
  divided by ``R`` (not by ``min(R, K)``); 0 when ``R`` is 0.

A query whose qrel holds no relevant doc scores 0 on every metric, as in trec_eval.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from vecns.errors import ValidationError

Ranking = Sequence[tuple[str, float]] | Sequence[str]
Qrel = Mapping[str, int]

METRICS = ("ndcg", "recall", "precision", "mrr")


def check_ks(k: int | Iterable[int]) -> tuple[int, ...]:
    """Return cutoffs as a sorted tuple of distinct ints >= 1.

    Raises:
        ValidationError: A cutoff is not an int >= 1, or none is given.
    """
    values = [k] if isinstance(k, int) else list(k)
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValidationError(f"cutoff k={value!r} is not allowed; expected ints >= 1, e.g. k=(1, 5, 10, 100).")
    if not values:
        raise ValidationError("no cutoff given; pass k as an int >= 1 or a list of them, e.g. k=(1, 5, 10, 100).")
    return tuple(sorted(set(values)))


def check_qrel(qrel: Any, *, what: str = "qrel") -> dict[str, int]:
    """Return a qrel as a plain dict after checking its doc ids and grades.

    Raises:
        ValidationError: It is not a mapping of str doc ids to ints >= 0.
    """
    if not isinstance(qrel, Mapping):
        raise ValidationError(f"{what} must be a dict {{doc_id: grade}}; got {type(qrel).__name__}.")
    out = {}
    for doc_id, grade in qrel.items():
        if not isinstance(doc_id, str):
            raise ValidationError(f"{what} has doc id {doc_id!r} of type {type(doc_id).__name__}; ids are strings.")
        if isinstance(grade, bool) or not isinstance(grade, int) or grade < 0:
            raise ValidationError(f"{what} grades doc {doc_id!r} with {grade!r}; grades are ints >= 0 "
                                  "(0 = not relevant).")
        out[doc_id] = grade
    return out


def trec_order(ranking: Ranking) -> list[str]:
    """Return the doc ids of a ranking in trec_eval's order (score descending, then doc id descending).

    Args:
        ranking: ``(doc_id, score)`` pairs, or doc ids already in rank order (kept as given).

    Returns:
        Doc ids, best first.

    Raises:
        ValidationError: A doc id is not a string, appears twice, or a score is not a finite number.
    """
    items = list(ranking)
    if items and isinstance(items[0], str):
        ids = items
        for doc_id in ids:
            if not isinstance(doc_id, str):
                raise ValidationError(f"a ranking mixes doc ids and (doc_id, score) pairs: {doc_id!r}; use one form.")
    else:
        pairs = []
        for item in items:
            if not (isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 2
                    and isinstance(item[0], str)):
                raise ValidationError(f"a ranking entry is {item!r}; expected a (doc_id, score) pair or a doc id.")
            score = item[1]
            if isinstance(score, bool) or not isinstance(score, numbers.Real) or not math.isfinite(score):
                raise ValidationError(f"doc {item[0]!r} has score {score!r}; scores are finite numbers.")
            pairs.append((item[0], float(score)))
        pairs.sort(key=lambda p: p[0], reverse=True)
        pairs.sort(key=lambda p: p[1], reverse=True)  # stable: equal scores keep doc id descending
        ids = [doc_id for doc_id, _ in pairs]
    seen: set[str] = set()
    for doc_id in ids:
        if doc_id in seen:
            raise ValidationError(f"doc {doc_id!r} appears twice in one ranking; each doc may be ranked once.")
        seen.add(doc_id)
    return ids


def _cutoff(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValidationError(f"cutoff k={k!r} is not allowed; expected an int >= 1.")
    return k


def _dcg(grades: Iterable[int]) -> float:
    return sum(grade / math.log2(rank + 1) for rank, grade in enumerate(grades, start=1) if grade > 0)


def _ndcg(ids: list[str], qrel: Mapping[str, int], k: int) -> float:
    ideal = _dcg(sorted((g for g in qrel.values() if g > 0), reverse=True)[:k])
    return _dcg(qrel.get(doc_id, 0) for doc_id in ids[:k]) / ideal if ideal > 0 else 0.0


def _hits(ids: list[str], qrel: Mapping[str, int], k: int) -> int:
    return sum(1 for doc_id in ids[:k] if qrel.get(doc_id, 0) >= 1)


def _n_relevant(qrel: Mapping[str, int]) -> int:
    return sum(1 for grade in qrel.values() if grade >= 1)


def _recall(ids: list[str], qrel: Mapping[str, int], k: int) -> float:
    total = _n_relevant(qrel)
    return _hits(ids, qrel, k) / total if total else 0.0


def _mrr(ids: list[str], qrel: Mapping[str, int], k: int) -> float:
    for rank, doc_id in enumerate(ids[:k], start=1):
        if qrel.get(doc_id, 0) >= 1:
            return 1.0 / rank
    return 0.0


def _average_precision(ids: list[str], qrel: Mapping[str, int], k: int | None) -> float:
    total = _n_relevant(qrel)
    if not total:
        return 0.0
    found, summed = 0, 0.0
    for rank, doc_id in enumerate(ids if k is None else ids[:k], start=1):
        if qrel.get(doc_id, 0) >= 1:
            found += 1
            summed += found / rank
    return summed / total


def ndcg_at_k(ranking: Ranking, qrel: Qrel, k: int) -> float:
    """nDCG of the top ``k`` with linear gain, as trec_eval's ``ndcg_cut_k`` (see the module docstring).

    Raises:
        ValidationError: Malformed ranking, qrel or ``k``.
    """
    return _ndcg(trec_order(ranking), check_qrel(qrel), _cutoff(k))


def recall_at_k(ranking: Ranking, qrel: Qrel, k: int) -> float:
    """Share of the relevant docs found in the top ``k``, as trec_eval's ``recall_k``.

    Raises:
        ValidationError: Malformed ranking, qrel or ``k``.
    """
    return _recall(trec_order(ranking), check_qrel(qrel), _cutoff(k))


def precision_at_k(ranking: Ranking, qrel: Qrel, k: int) -> float:
    """Relevant docs in the top ``k`` divided by ``k``, as trec_eval's ``P_k``.

    Raises:
        ValidationError: Malformed ranking, qrel or ``k``.
    """
    k = _cutoff(k)
    return _hits(trec_order(ranking), check_qrel(qrel), k) / k


def mrr_at_k(ranking: Ranking, qrel: Qrel, k: int) -> float:
    """Reciprocal rank of the first relevant doc in the top ``k`` (0 when none), trec_eval's ``recip_rank`` cut at k.

    Raises:
        ValidationError: Malformed ranking, qrel or ``k``.
    """
    return _mrr(trec_order(ranking), check_qrel(qrel), _cutoff(k))


def average_precision(ranking: Ranking, qrel: Qrel, k: int | None = None) -> float:
    """Average precision of the top ``k`` (all of the ranking when None): trec_eval's ``map_cut_k`` (or ``map``).

    Raises:
        ValidationError: Malformed ranking, qrel or ``k``.
    """
    cutoff = None if k is None else _cutoff(k)
    return _average_precision(trec_order(ranking), check_qrel(qrel), cutoff)


def metric_names(ks: Iterable[int]) -> list[str]:
    """The metric names ``query_metrics`` returns for these cutoffs, in table order.

    ``map`` is reported once, at the largest cutoff.
    """
    ks = check_ks(ks)
    return [f"{metric}@{k}" for metric in METRICS for k in ks] + [f"map@{ks[-1]}"]


def query_metrics(ranking: Ranking, qrel: Qrel, ks: Iterable[int]) -> dict[str, float]:
    """Every metric of one query at every cutoff: ``ndcg@k``, ``recall@k``, ``precision@k``, ``mrr@k``, ``map@K``.

    Args:
        ranking: ``(doc_id, score)`` pairs or doc ids in rank order.
        qrel: ``{doc_id: grade}``.
        ks: Cutoffs; ``map`` is cut at the largest.

    Returns:
        ``{name: value}`` in the order of ``metric_names(ks)``.

    Raises:
        ValidationError: Malformed ranking, qrel or cutoffs.
    """
    ks = check_ks(ks)
    ids, qrel = trec_order(ranking), check_qrel(qrel)
    out: dict[str, float] = {}
    for k in ks:
        out[f"ndcg@{k}"] = _ndcg(ids, qrel, k)
    for k in ks:
        out[f"recall@{k}"] = _recall(ids, qrel, k)
    for k in ks:
        out[f"precision@{k}"] = _hits(ids, qrel, k) / k
    for k in ks:
        out[f"mrr@{k}"] = _mrr(ids, qrel, k)
    out[f"map@{ks[-1]}"] = _average_precision(ids, qrel, ks[-1])
    return out


def mean_metrics(per_query: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """The mean of each metric over queries (an empty dict when there are none).

    Raises:
        ValidationError: The queries do not all have the same metrics.
    """
    if not per_query:
        return {}
    names = list(next(iter(per_query.values())))
    for qid, values in per_query.items():
        if list(values) != names:
            raise ValidationError(f"query {qid!r} has metrics {sorted(values)}; expected {sorted(names)}.")
    return {name: math.fsum(values[name] for values in per_query.values()) / len(per_query) for name in names}
