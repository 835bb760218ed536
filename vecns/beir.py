"""The BEIR folder format: read it, write it, and ingest its corpus into a namespace.

A BEIR folder holds::

    corpus.jsonl        {"_id": "d1", "title": "...", "text": "..."} per line (other keys ignored)
    queries.jsonl       {"_id": "q1", "text": "..."} per line
    qrels/<split>.tsv   a header line ``query-id<TAB>corpus-id<TAB>score``, then one judgement per line

Grades are ints >= 0 (0 = judged not relevant). As BEIR's own loader does, only the queries judged in the
split's qrels are kept.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vecns.errors import ConfigError, ValidationError
from vecns.ingest import IngestReport
from vecns.namespace import DEFAULT_BATCH_SIZE

if TYPE_CHECKING:
    from vecns.namespace import Namespace

QRELS_HEADER = ("query-id", "corpus-id", "score")
Progress = Callable[[int, "int | None"], "bool | None"]


@dataclass(frozen=True)
class BeirData:
    """A labelled retrieval set: documents, queries, and graded judgements.

    Attributes:
        corpus: ``{doc_id: {"title": str, "text": str}}``.
        queries: ``{query_id: text}``.
        qrels: ``{query_id: {doc_id: grade}}``.
        name: A label for reports and stored evaluations (the folder name when loaded).
    """

    corpus: dict[str, dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    name: str = "beir"

    def __repr__(self) -> str:
        judged = sum(len(q) for q in self.qrels.values())
        return (f"BeirData({self.name!r}, docs={len(self.corpus)}, queries={len(self.queries)}, "
                f"judgements={judged})")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the three parts and the name."""
        return {"name": self.name, "corpus": self.corpus, "queries": self.queries, "qrels": self.qrels}

    def doc_text(self, doc_id: str) -> str:
        """The text vecns embeds for a document: ``title + ". " + text`` when it has a title, else ``text``."""
        doc = self.corpus[doc_id]
        title, text = doc.get("title") or "", doc.get("text") or ""
        return f"{title}. {text}" if title and text else (title or text)

    def head(self, limit: int) -> BeirData:
        """The first ``limit`` documents, with the judgements on them and the queries that still have one.

        Raises:
            ValidationError: ``limit`` is not an int >= 1.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValidationError(f"limit={limit!r} is not allowed; expected an int >= 1.")
        corpus = dict(list(self.corpus.items())[:limit])
        qrels = {qid: kept for qid, judged in self.qrels.items()
                 if (kept := {doc: g for doc, g in judged.items() if doc in corpus})
                 and any(g > 0 for g in kept.values())}
        queries = {qid: text for qid, text in self.queries.items() if qid in qrels}
        return BeirData(corpus, queries, qrels, name=self.name)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    if not path.is_file():
        raise ConfigError(f"{path} is missing; a BEIR folder holds corpus.jsonl, queries.jsonl and "
                          "qrels/<split>.tsv.")
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield number, line.rstrip("\n").rstrip("\r")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                              "save it as UTF-8.") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}.") from exc


def _json_rows(path: Path, fields: tuple[str, ...]) -> Iterator[tuple[int, str, dict[str, str]]]:
    seen: set[str] = set()
    for number, line in _lines(path):
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"{where}: not JSON ({exc.msg} at column {exc.colno}); each line is one "
                                  "JSON object.") from exc
        if not isinstance(row, dict):
            raise ValidationError(f"{where}: a JSON {type(row).__name__}; expected an object with '_id'.")
        row_id = row.get("_id")
        if isinstance(row_id, int) and not isinstance(row_id, bool):
            row_id = str(row_id)
        if not isinstance(row_id, str) or not row_id:
            raise ValidationError(f"{where}: '_id' is {row_id!r}; expected a non-empty string.")
        if row_id in seen:
            raise ValidationError(f"{where}: '_id' {row_id!r} appears a second time; ids are unique.")
        seen.add(row_id)
        values = {}
        for name in fields:
            value = row.get(name, "")
            if value is None:
                value = ""
            if not isinstance(value, str):
                raise ValidationError(f"{where}: {name!r} of {row_id!r} is a {type(value).__name__}; "
                                      "expected a string.")
            values[name] = value
        yield number, row_id, values


def _qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    for number, line in _lines(path):
        parts = line.split("\t")
        if len(parts) != 3:
            parts = line.split()
        if tuple(parts) == QRELS_HEADER and not qrels:
            continue
        where = f"{path}:{number}"
        if len(parts) != 3:
            raise ValidationError(f"{where}: {len(parts)} fields; expected 3 (query-id, corpus-id, score) "
                                  "separated by tabs.")
        qid, doc_id, score = parts
        try:
            grade = int(score)
        except ValueError:
            grade = -1
        if grade < 0:
            raise ValidationError(f"{where}: score {score!r}; expected an int >= 0 (0 = not relevant).")
        judged = qrels.setdefault(qid, {})
        if doc_id in judged:
            raise ValidationError(f"{where}: query {qid!r} judges doc {doc_id!r} a second time; keep one line.")
        judged[doc_id] = grade
    return qrels


def load_beir(folder: str | Path, split: str = "test") -> BeirData:
    """Read a BEIR folder.

    Args:
        folder: The folder holding ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``.
        split: Which qrels file to read.

    Returns:
        The data; queries not judged in the split are left out.

    Raises:
        ConfigError: The folder or one of its files is missing or unreadable.
        ValidationError: A line is malformed (the message names the file and line), an id repeats, or the
            qrels judge a query that queries.jsonl does not hold.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder; give the BEIR folder holding corpus.jsonl, queries.jsonl "
                          "and qrels/.")
    qrels_path = root / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file() and (root / "qrels").is_dir():
        found = sorted(p.stem for p in (root / "qrels").glob("*.tsv")) or ["(none)"]
        raise ConfigError(f"{root} has no qrels for split {split!r}; splits found: {', '.join(found)}.")
    corpus = {doc_id: values for _, doc_id, values in _json_rows(root / "corpus.jsonl", ("title", "text"))}
    queries, lines = {}, {}
    for number, qid, values in _json_rows(root / "queries.jsonl", ("text",)):
        queries[qid], lines[qid] = values["text"], number
    qrels = _qrels(qrels_path)
    missing = sorted(set(qrels) - set(queries))
    if missing:
        raise ValidationError(f"{qrels_path} judges {len(missing)} queries that {root / 'queries.jsonl'} does not "
                              f"hold (first: {missing[0]!r}); add them or drop their lines.")
    for qid in qrels:
        if not queries[qid].strip():
            raise ValidationError(f"{root / 'queries.jsonl'}:{lines[qid]}: query {qid!r} has no text.")
    return BeirData(corpus, {qid: queries[qid] for qid in qrels}, qrels, name=root.name or "beir")


def write_beir(folder: str | Path, data: BeirData, *, split: str = "test") -> Path:
    """Write ``data`` as a BEIR folder (created when missing; the three files are replaced).

    Returns:
        The folder.

    Raises:
        ConfigError: The folder cannot be written.
    """
    root = Path(folder)
    try:
        (root / "qrels").mkdir(parents=True, exist_ok=True)
        with (root / "corpus.jsonl").open("w", encoding="utf-8") as out:
            for doc_id, doc in data.corpus.items():
                row = {"_id": doc_id, "title": doc.get("title") or "", "text": doc.get("text") or ""}
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        with (root / "queries.jsonl").open("w", encoding="utf-8") as out:
            for qid, text in data.queries.items():
                out.write(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n")
        with (root / "qrels" / f"{split}.tsv").open("w", encoding="utf-8") as out:
            out.write("\t".join(QRELS_HEADER) + "\n")
            for qid, judged in data.qrels.items():
                for doc_id, grade in judged.items():
                    out.write(f"{qid}\t{doc_id}\t{grade}\n")
    except OSError as exc:
        raise ConfigError(f"cannot write the BEIR folder {root}: {exc.strerror}.") from exc
    return root


def ingest_beir(namespace: Namespace, data: BeirData, *, batch_size: int = DEFAULT_BATCH_SIZE,
                upsert: bool = False, progress: Progress | None = None,
                clock: Callable[[], float] = time.perf_counter) -> IngestReport:
    """Write a BEIR corpus into a namespace: one object per document, text = ``title. text``.

    Args:
        namespace: A namespace with a text extractor.
        data: The BEIR data (only its corpus is written).
        batch_size: Objects per transaction.
        upsert: Replace objects whose id exists instead of refusing them.
        progress: Called as ``progress(done, total)`` after each batch; returning False stops.
        clock: Seconds counter used to time the ingest.

    Returns:
        What was written and how long it took.

    Raises:
        ValidationError: A document has neither title nor text (nothing is written), or a bad ``batch_size``.
        ObjectExistsError: An id exists already and ``upsert`` is False.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValidationError(f"batch_size={batch_size!r} is not allowed; expected an int >= 1.")
    objects = []
    for doc_id in data.corpus:
        text = data.doc_text(doc_id)
        if not text.strip():
            raise ValidationError(f"document {doc_id!r} of {data.name!r} has neither title nor text; drop it "
                                  "from corpus.jsonl or give it text.")
        objects.append({"id": doc_id, "text": text})
    write: Callable[..., int] = namespace.upsert if upsert else namespace.add
    started, done, cancelled = clock(), 0, False
    for start in range(0, len(objects), batch_size):
        done += write(objects[start:start + batch_size], batch_size=batch_size)
        if progress is not None and progress(done, len(objects)) is False:
            cancelled = done < len(objects)
            break
    return IngestReport(namespace.name, data.name, "beir", done, clock() - started, cancelled)

