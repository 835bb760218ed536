"""A namespace: objects with one locked vector per feature; add, upsert, delete, get, search, count."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from vecns._crash import crashpoint
from vecns.catalog import Feature, NamespaceRecord
from vecns.catalog import objects as rows_db
from vecns.errors import (
    DuplicateIdError,
    InvalidObjectError,
    ModelMismatchError,
    ObjectExistsError,
    ObjectNotFoundError,
    ValidationError,
)
from vecns.filters import compile_filters
from vecns.index import exact_search
from vecns.validation import (
    MAX_K,
    OBJECT_FIELDS,
    as_vectors,
    check_id,
    check_k,
    check_metadata,
    check_name,
    check_text,
    check_timestamp,
)

if TYPE_CHECKING:
    from vecns.store import Store

# Filters matching at most this many objects, or this share of them, are searched exactly; so is a whole
# namespace of at most this many.
EXACT_MAX_MATCHES = 1024
EXACT_MAX_SHARE = 0.02
DEFAULT_BATCH_SIZE = 256
EMBED_WINDOW = 4096


@dataclass(frozen=True)
class Hit:
    """One search result; ``score`` is higher for closer matches (cosine similarity under ``cos``)."""

    id: str
    score: float
    collection: str | None
    metadata: dict[str, Any] | None
    text: str | None = None

    def __repr__(self) -> str:
        return f"Hit(id={self.id!r}, score={self.score:.4f}, collection={self.collection!r})"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the hit."""
        return {"id": self.id, "score": self.score, "collection": self.collection, "metadata": self.metadata,
                "text": self.text}


@dataclass(frozen=True)
class Object:
    """A stored object; ``vector`` is filled only when asked for."""

    id: str
    text: str | None
    collection: str | None
    metadata: dict[str, Any] | None
    created_at: dt.datetime
    updated_at: dt.datetime
    vector: np.ndarray | None = field(default=None, compare=False)

    def __repr__(self) -> str:
        return f"Object(id={self.id!r}, collection={self.collection!r})"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the object (the vector as a list when present)."""
        return {"id": self.id, "text": self.text, "collection": self.collection, "metadata": self.metadata,
                "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
                **({"vector": self.vector.tolist()} if self.vector is not None else {})}


def _object(stored: rows_db.StoredObject, vector: np.ndarray | None = None) -> Object:
    metadata = json.loads(stored.metadata) if stored.metadata is not None else None
    return Object(stored.id, stored.text, stored.collection, metadata, stored.created_at, stored.updated_at, vector)


def search_unfiltered(index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest keys of every object for one query or a batch, as ``VectorIndex.search`` returns them.

    As for selective filters, an index of at most ``EXACT_MAX_MATCHES`` vectors is searched exactly: the
    graph's recall is not complete, and after updates and deletes (usearch keeps removed nodes as
    tombstones) a vector was seen to miss its own search in an index of 139.
    """
    if len(index) <= EXACT_MAX_MATCHES:
        return index.search_exact(queries, k)
    return index.search(queries, k)


class Namespace:
    """A handle on one namespace of a store. Get one from ``Store.namespace()`` or ``create_namespace()``."""

    def __init__(self, store: Store, record: NamespaceRecord) -> None:
        self._store = store
        self._record = record

    # -- identity --------------------------------------------------------------------------------

    @property
    def id(self) -> str:
        """The namespace's id (``ns_…``), used in file and table names."""
        return self._record.id

    @property
    def name(self) -> str:
        """The namespace's unique name."""
        return self._record.name

    @property
    def features(self) -> tuple[Feature, ...]:
        """The namespace's features, locked at creation; the first is the default for search."""
        return self._record.features

    @property
    def dim(self) -> int:
        """The default feature's vector dimension."""
        return self._record.features[0].dim

    @property
    def model_id(self) -> str:
        """The model the default feature is locked to."""
        return self._record.features[0].model_id

    @property
    def created_at(self) -> dt.datetime:
        """When the namespace was created."""
        return self._record.created_at

    @property
    def record(self) -> NamespaceRecord:
        """The catalog row behind this handle."""
        return self._record

    def __repr__(self) -> str:
        return f"Namespace({self.name!r}, id={self.id!r}, model_id={self.model_id!r}, dim={self.dim})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Namespace) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def feature(self, name: str | None = None) -> Feature:
        """Return a feature by name (the default feature when ``name`` is None).

        Raises:
            ValidationError: No feature has that name.
        """
        if name is None:
            return self._record.features[0]
        for feature in self._record.features:
            if feature.name == name:
                return feature
        known = ", ".join(f.name for f in self._record.features)
        raise ValidationError(f"namespace {self.name!r} has no feature {name!r}; its features are: {known}.")

    # -- writes ----------------------------------------------------------------------------------

    def add(self, objects: Iterable[Mapping[str, Any]], *, batch_size: int = DEFAULT_BATCH_SIZE) -> int:
        """Add new objects; an id the namespace holds already is refused (use ``upsert``).

        Every object is validated before the first write. Each batch of ``batch_size`` objects is embedded
        and committed as one transaction, together with its change-log rows.

        Args:
            objects: Dicts with ``id`` and ``text`` (for extracted features) and optional ``collection``,
                ``metadata``, ``created_at``; ``vector`` (or ``vectors`` by feature name) for features
                without an extractor.
            batch_size: Objects per transaction.

        Returns:
            The number of objects written.

        Raises:
            ObjectExistsError: An id exists already (nothing is written).
            DuplicateIdError, InvalidObjectError, DimensionMismatchError, InvalidVectorError: Bad input.
            ModelMismatchError: The model files on disk are not those the namespace is locked to.
        """
        return self._write(objects, replace=False, batch_size=batch_size)

    def upsert(self, objects: Iterable[Mapping[str, Any]], *, batch_size: int = DEFAULT_BATCH_SIZE) -> int:
        """Add objects, replacing those whose id exists (``created_at`` is kept). See ``add``."""
        return self._write(objects, replace=True, batch_size=batch_size)

    def delete(self, ids: str | Iterable[str]) -> int:
        """Delete objects by id; ids that are absent are ignored. Returns how many were deleted."""
        wanted = [ids] if isinstance(ids, str) else list(ids)
        for value in wanted:
            check_id(value)
        catalog = self._store._catalog
        with catalog.write_lock:
            with catalog.atomic() as tx:
                found = {i: key for i, (key, _) in rows_db.existing(tx, self._record, wanted).items()}
                seq = rows_db.delete(tx, catalog, self._record, found)
                crashpoint("write_before_commit")
            crashpoint("write_after_commit")
            self._store._indexes.apply(self._record, {}, removed=list(found.values()), seq=seq)
            crashpoint("write_after_index_apply")
        return len(found)

    def _write(self, objects: Iterable[Mapping[str, Any]], *, replace: bool, batch_size: int) -> int:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValidationError(f"batch_size={batch_size!r} is not allowed; expected an int >= 1.")
        if isinstance(objects, Mapping):
            raise InvalidObjectError("add() takes a list of objects; got a single dict. Wrap it in a list.")
        prepared = [self._prepare(obj) for obj in objects]
        seen: set[str] = set()
        for item in prepared:
            if item["id"] in seen:
                raise DuplicateIdError(
                    f"object id {item['id']!r} appears twice in one call; each id may appear once. "
                    "Remove the duplicate (the last one would win in upsert)."
                )
            seen.add(item["id"])
        if not replace:
            taken = rows_db.existing(self._store._catalog.cursor(), self._record, list(seen))
            if taken:
                sample = ", ".join(repr(i) for i in sorted(taken)[:5])
                raise ObjectExistsError(
                    f"namespace {self.name!r} holds {len(taken)} of these ids already ({sample}); add() only "
                    "takes new ids. Use upsert() to replace them."
                )
        embedders = self._embedders()
        # Embed a large window at once (sorted by length across all of it, so batches pad little), then
        # commit it in transactions of batch_size.
        for window_start in range(0, len(prepared), EMBED_WINDOW):
            window = prepared[window_start:window_start + EMBED_WINDOW]
            vectors = self._vectors(window, embedders)
            for start in range(0, len(window), batch_size):
                part = {name: v[start:start + batch_size] for name, v in vectors.items()}
                self._commit_batch(window[start:start + batch_size], part, replace=replace)
        return len(prepared)

    def _prepare(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(obj, Mapping):
            raise InvalidObjectError(f"an object must be a dict; got {type(obj).__name__}.")
        unknown = set(obj) - OBJECT_FIELDS
        object_id = check_id(obj.get("id"))
        if unknown:
            raise InvalidObjectError(
                f"object {object_id!r} has unknown fields {sorted(unknown)}; allowed: {sorted(OBJECT_FIELDS)}."
            )
        needs_text = any(f.extractor for f in self.features)
        collection = obj.get("collection")
        if collection is not None:
            check_name("collection", collection)
        vectors = self._given_vectors(object_id, obj)
        return {
            "id": object_id,
            "text": check_text(object_id, obj.get("text"), required=needs_text),
            "collection": collection,
            "metadata": check_metadata(object_id, obj.get("metadata")),
            "created_at": check_timestamp(object_id, obj.get("created_at")),
            "vectors": vectors,
        }

    def _given_vectors(self, object_id: str, obj: Mapping[str, Any]) -> dict[str, np.ndarray]:
        given = dict(obj.get("vectors") or {})
        if obj.get("vector") is not None:
            given[self.features[0].name] = obj["vector"]
        out = {}
        for feature in self.features:
            value = given.pop(feature.name, None)
            if feature.extractor is not None:
                if value is not None:
                    raise InvalidObjectError(
                        f"object {object_id!r} brings a vector for feature {feature.name!r}, which is extracted "
                        f"from text by model {feature.model_id!r}; pass text only."
                    )
                continue
            if value is None:
                raise InvalidObjectError(
                    f"object {object_id!r} has no vector for feature {feature.name!r} (dim={feature.dim}); "
                    "give it 'vector' (or 'vectors': {name: vector})."
                )
            out[feature.name] = as_vectors(
                value, dim=feature.dim, metric=feature.metric,
                what=f"object {object_id!r}, feature {feature.name!r} of namespace {self.name!r}",
                fix=_dim_fix(feature), single=True, dtype=feature.dtype,
            )[0]
        if given:
            raise InvalidObjectError(
                f"object {object_id!r} names unknown features {sorted(given)}; namespace {self.name!r} has "
                f"{[f.name for f in self.features]}. Give vectors only for those (or 'vector' for the first)."
            )
        return out

    def _embedders(self) -> dict[str, Any]:
        return {f.name: self._store._embedder_for(self, f) for f in self.features if f.extractor}

    def _vectors(self, items: list[dict[str, Any]], embedders: dict[str, Any]) -> dict[str, np.ndarray]:
        texts = [item["text"] for item in items]
        vectors: dict[str, np.ndarray] = {}
        for feature in self.features:
            if feature.extractor:
                vectors[feature.name] = embedders[feature.name].embed(texts, kind="document")
            elif items:
                vectors[feature.name] = np.stack([item["vectors"][feature.name] for item in items])
        return vectors

    def _commit_batch(self, batch: list[dict[str, Any]], vectors: dict[str, np.ndarray], *, replace: bool) -> None:
        texts = [item["text"] for item in batch]
        catalog = self._store._catalog
        now = dt.datetime.now(dt.timezone.utc)
        with catalog.write_lock:
            seq, keys_array = self._commit_rows(batch, texts, vectors, replace=replace, now=now)
            crashpoint("write_after_commit")
            self._store._indexes.apply(
                self._record, {name: (keys_array, vec) for name, vec in vectors.items()}, removed=[], seq=seq
            )
            crashpoint("write_after_index_apply")

    def _commit_rows(self, batch: list[dict[str, Any]], texts: list[str | None], vectors: dict[str, np.ndarray],
                     *, replace: bool, now: dt.datetime) -> tuple[int, np.ndarray]:
        catalog = self._store._catalog
        with catalog.atomic() as tx:
            found = rows_db.existing(tx, self._record, [item["id"] for item in batch])
            if found and not replace:
                raise ObjectExistsError(
                    f"namespace {self.name!r} gained ids {sorted(found)[:5]} while this add() ran; use upsert()."
                )
            fresh = len(batch) - len(found)
            first_key = catalog.next_values(tx, "key", fresh) if fresh else 0
            keys, created = [], []
            for item in batch:
                if item["id"] in found:
                    key, created_at = found[item["id"]]
                else:
                    key, created_at = first_key, None
                    first_key += 1
                keys.append(key)
                created.append(item["created_at"] or created_at or now)
            rows = rows_db.ObjectRows(
                keys=np.asarray(keys, dtype=np.int64), ids=[item["id"] for item in batch],
                collections=[item["collection"] for item in batch], texts=texts,
                metadata=[item["metadata"] for item in batch], created_at=created, updated_at=[now] * len(batch),
            )
            replaced = [key for key, _ in found.values()]
            seq = rows_db.write(tx, catalog, self._record, rows, vectors, replace_keys=replaced)
            crashpoint("write_before_commit")
        return seq, rows.keys

    # -- reads -----------------------------------------------------------------------------------

    def get(self, id: str, *, include_vector: bool = False) -> Object:
        """Return the object with this id.

        Raises:
            ObjectNotFoundError: The namespace holds no such id.
        """
        check_id(id)
        found = rows_db.get(self._store._catalog, self._record, ids=[id])
        if not found:
            raise ObjectNotFoundError(f"namespace {self.name!r} has no object with id {id!r}.")
        vector = None
        if include_vector:
            vector = next(rows_db.vectors(self._store._catalog, self.features[0], [found[0].key]))[1][0]
        return _object(found[0], vector)

    def count(self, *, filters: Mapping[str, Any] | None = None) -> int:
        """Number of objects, optionally only those matching ``filters``."""
        compiled = compile_filters(filters)
        return rows_db.count(self._store._catalog, self._record, compiled.where, compiled.params)

    def __len__(self) -> int:
        return self.count()

    def __iter__(self) -> Iterator[Object]:
        """Iterate over all objects in key (insertion) order, reading in batches."""
        for batch in rows_db.iterate(self._store._catalog, self._record):
            yield from (_object(stored) for stored in batch)

    def search(self, query: str | Sequence[float] | np.ndarray, *, k: int = 10,
               filters: Mapping[str, Any] | None = None, include_text: bool = False,
               feature: str | None = None) -> list[Hit]:
        """Find the ``k`` objects closest to a text or a vector.

        Args:
            query: A text (embedded with the feature's locked model) or a vector of the feature's dim.
            k: How many hits, 1 to ``MAX_K``; fewer come back when fewer objects match.
            filters: ``{"collection_ids": [...], "date_range": {...}, "metadata": {...}}``.
            include_text: Also return each hit's text.
            feature: Which feature to search (default: the first).

        Returns:
            Hits, best first.

        Raises:
            DimensionMismatchError: A vector query of another dim.
            ModelMismatchError: The model files changed since the namespace was created.
            FilterError: A malformed filter.
        """
        self._store._catalog.check_usable()
        k = check_k(k)
        feat = self.feature(feature)
        vector = self._query_vector(query, feat)
        compiled = compile_filters(filters)
        index = self._store._indexes.get(self._record, feat)
        if compiled.where == "TRUE":
            keys, scores = search_unfiltered(index, vector, k)
        else:
            keys, scores = self._filtered(index, feat, vector, k, compiled)
        return self._hits(keys, scores, include_text=include_text)

    def _query_vector(self, query: Any, feature: Feature) -> np.ndarray:
        if isinstance(query, str):
            if feature.extractor is None:
                raise ValidationError(
                    f"namespace {self.name!r} feature {feature.name!r} stores caller-supplied vectors "
                    f"(model label {feature.model_id!r}); search it with a vector of dim={feature.dim}, not text."
                )
            if not query.strip():
                raise ValidationError("the query text is empty; give a non-empty text or a vector.")
            return self._store._embedder_for(self, feature).embed([query], kind="query")[0]
        return as_vectors(query, dim=feature.dim, metric=feature.metric,
                          what=f"query vector for namespace {self.name!r} feature {feature.name!r}",
                          fix=_dim_fix(feature), single=True)[0]

    def _filtered(self, index: Any, feature: Feature, vector: np.ndarray, k: int,
                  compiled: Any) -> tuple[np.ndarray, np.ndarray]:
        allowed = rows_db.matching_keys(self._store._catalog, self._record, compiled.where, compiled.params)
        total = len(index)
        if len(allowed) == 0 or total == 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        share = len(allowed) / total
        if len(allowed) > EXACT_MAX_MATCHES and share > EXACT_MAX_SHARE:
            # Oversample the graph and post-filter, widening until k hits survive or it is cheaper to
            # search the matching keys exactly.
            want = min(total, max(2 * k, math.ceil(2 * k / share)))
            while want <= MAX_K:
                keys, scores = index.search(vector, want)
                keep = np.isin(keys, allowed, assume_unique=False)
                if keep.sum() >= k or want >= total:
                    return keys[keep][:k], scores[keep][:k]
                want *= 4
        present, vectors = index.get_present(allowed)
        return exact_search(vector, vectors, present, k, metric=feature.metric)

    def _stored(self, keys: list[int], *, include_text: bool) -> dict[int, rows_db.StoredObject]:
        """The objects behind search hits; without text, hot hits come from the store's hit cache."""
        catalog = self._store._catalog
        if include_text:
            return {s.key: s for s in rows_db.get(catalog, self._record, keys=keys)}
        cache = self._store._indexes.hits
        found, missing = cache.lookup(self.id, keys)
        if missing:
            generation = cache.generation(self.id)
            read = {s.key: _no_text(s) for s in rows_db.get(catalog, self._record, keys=missing, with_text=False)}
            cache.fill(self.id, read, generation)
            found.update(read)
        return found

    def _hits(self, keys: np.ndarray, scores: np.ndarray, *, include_text: bool) -> list[Hit]:
        if len(keys) == 0:
            return []
        by_key = self._stored(keys.tolist(), include_text=include_text)
        hits = []
        for key, score in zip(keys.tolist(), scores.tolist(), strict=True):
            stored = by_key.get(key)
            if stored is None:  # deleted between the index search and this read
                continue
            metadata = json.loads(stored.metadata) if stored.metadata is not None else None
            hits.append(Hit(stored.id, float(score), stored.collection, metadata,
                            stored.text if include_text else None))
        return hits


def _dim_fix(feature: Feature) -> str:
    return (f"Feature {feature.name!r} is locked to dim={feature.dim} (model {feature.model_id}). "
            "To change models, create a re_extract migration into a new namespace.")


def _no_text(stored: rows_db.StoredObject) -> rows_db.StoredObject:
    return stored if stored.text is None else dataclasses.replace(stored, text=None)


def mismatch(namespace: Namespace, feature: Feature, model_fingerprint: str) -> ModelMismatchError:
    """The error for a model whose files no longer match the namespace's lock."""
    return ModelMismatchError(
        f"namespace {namespace.name!r} feature {feature.name!r} is locked to model {feature.model_id!r} with "
        f"fingerprint {feature.fingerprint[:12]}, but the model files on disk now have fingerprint "
        f"{model_fingerprint[:12]}. Restore the original files, or create a re_extract migration into a new "
        "namespace with the changed model registered under its own id."
    )
