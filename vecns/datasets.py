"""A small labelled retrieval set made from real text: standard-library docstrings.

``stdlib_qa`` turns the docstring corpus of ``vecns.corpus`` into queries and judged documents without any
download, so relevance can be measured on every machine.

How it is built (deterministic for a given Python version):

- With a ``limit``, the documents are an evenly spaced sample of the whole corpus (every n-th docstring),
  so a small set still spans many modules.
- Each docstring of two or more sentences is split after its first sentence, the summary line. The
  document keeps only the rest (the body); a docstring of one sentence, or whose body would be shorter
  than 40 characters or equal to another document, stays whole and gets no query.
- Each function, class or method whose summary has at least four words, and a summary no other object
  shares, gets that summary as its query. So a query is a one-line description of what an object does,
  and its answer is the description's elaboration: the same object described in other words, never a text
  that contains the query. Matching them takes more than shared words, so a stronger model ranks better.
- Judgements: the object's own document is grade 2; its parent (the class of a method, else the module of
  a function or class), when the corpus holds it, is grade 1.
"""

from __future__ import annotations

import functools
import re
from collections import Counter

from vecns.beir import BeirData
from vecns.corpus import Doc, python_version_tag, stdlib_docs
from vecns.errors import ValidationError

MIN_BODY_CHARS = 40
MIN_QUERY_WORDS = 4
_SUMMARY = re.compile(r"(?<=[.!?])\s+(?=[A-Z(`'\"])")


def _split(doc: Doc) -> tuple[str | None, str]:
    parts = _SUMMARY.split(doc.text, maxsplit=1)
    if len(parts) == 2 and len(parts[1]) >= MIN_BODY_CHARS:
        return parts[0], parts[1]
    return None, doc.text


def _parent(doc: Doc) -> str:
    member = doc.id[len(doc.module) + 1:]
    return f"{doc.module}.{member.rsplit('.', 1)[0]}" if "." in member else doc.module


@functools.lru_cache(maxsize=1)
def _all_docs() -> tuple[Doc, ...]:
    return tuple(stdlib_docs(unit="doc"))


def _sample(limit: int | None) -> list[Doc]:
    docs = _all_docs()
    if limit is None or limit >= len(docs):
        return list(docs)
    step = len(docs) / limit
    return [docs[int(i * step)] for i in range(limit)]


def stdlib_qa(limit: int | None = None) -> BeirData:
    """Queries, documents and graded judgements from the standard library's docstrings.

    See the module docstring for how queries and judgements are made.

    Args:
        limit: How many docstrings of ``vecns.corpus.stdlib_docs`` to use, evenly spaced over all of them
            (all when None).

    Returns:
        The set, named ``stdlib-qa-py<major>.<minor>``; document and query ids are the objects' qualified
        names (``json.dumps``).
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValidationError(f"limit={limit!r} is not allowed; expected an int >= 1 or None.")
    docs = _sample(limit)
    by_id = {doc.id: doc for doc in docs}
    corpus: dict[str, dict[str, str]] = {}
    summaries: dict[str, str] = {}
    bodies: set[str] = set()
    for doc in docs:
        summary, body = _split(doc)
        if summary is None or body in bodies:
            summary, body = None, doc.text
        bodies.add(body)
        corpus[doc.id] = {"title": "", "text": body}
        if summary is not None and doc.id != doc.module and len(summary.split()) >= MIN_QUERY_WORDS:
            summaries[doc.id] = summary
    shared = Counter(summaries.values())
    queries, qrels = {}, {}
    for doc_id, summary in summaries.items():
        if shared[summary] > 1:
            continue
        queries[doc_id] = summary
        qrels[doc_id] = {doc_id: 2}
        parent = _parent(by_id[doc_id])
        if parent in corpus:
            qrels[doc_id][parent] = 1
    return BeirData(corpus, queries, qrels, name=f"stdlib-qa-py{python_version_tag()}")
