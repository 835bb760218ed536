"""The store: one directory holding ``vecns.duckdb`` and ``indexes/``; namespaces, aliases and models."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vecns.aliases import Aliases
from vecns.catalog import Catalog, Feature, NamespaceRecord, records
from vecns.catalog import migrations as mig_db
from vecns.catalog import objects as rows_db
from vecns.errors import (
    ConfigError,
    NamespaceExistsError,
    NamespaceNotFoundError,
    StoreCorruptedError,
    StoreError,
    ValidationError,
)
from vecns.graphs import PRECISIONS
from vecns.index import DTYPES, METRICS
from vecns.indexing import IndexManager
from vecns.namespace import Namespace, mismatch
from vecns.registry import TEXT_EXTRACTOR, ModelRegistry
from vecns.validation import check_name

log = logging.getLogger("vecns")

DB_FILE = "vecns.duckdb"
INDEX_DIR = "indexes"
EXTRACTORS = (TEXT_EXTRACTOR,)


def connect(path: str | Path = "vecns-store", *, read_only: bool = False, providers: str = "auto",
            threads: int | None = None, precision: str = "fp32", loopback_webhooks: bool = True) -> Store:
    """Open (or create) the store in directory ``path``.

    Args:
        path: The store directory; created when missing (unless ``read_only``).
        read_only: Open without writing; several processes may do so while none writes.
        providers: ONNX Runtime providers for embedding: ``auto`` (CUDA when it really runs, else CPU),
            ``cpu`` or ``cuda``.
        threads: Threads for inference and index builds (default: all cores).
        precision: ``fp32``, or ``fp16`` to run models in half precision (for GPUs; each model is checked
            against fp32 when loaded, and refused below a cosine of 0.999). A namespace's model is the same
            model either way; vectors differ by that much at most.
        loopback_webhooks: Let migration webhooks reach a receiver on this machine (the default). Code that
            runs migration configs written by other parties (a server) passes False, so they cannot make
            this process POST to its local services; receivers on private networks always need the
            config's ``allow_private_webhooks``.

    Returns:
        The open store; use it as a context manager or call ``close()``.

    Raises:
        StoreLockedError: Another process has the store open for writing.
        StoreError: ``path`` is not a directory, or a read-only open found no store.
    """
    return Store(path, read_only=read_only, providers=providers, threads=threads, precision=precision,
                 loopback_webhooks=loopback_webhooks)


class Store:
    """An open store. Create it with ``vecns.connect(path)``."""

    def __init__(self, path: str | Path, *, read_only: bool = False, providers: str = "auto",
                 threads: int | None = None, precision: str = "fp32", loopback_webhooks: bool = True) -> None:
        if precision not in PRECISIONS:
            raise ValidationError(f"precision={precision!r} is not supported; expected one of {PRECISIONS}.")
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(f"store path {self.path} is a file; vecns stores are directories. Pick another path.")
        if read_only and not (self.path / DB_FILE).is_file():
            raise StoreError(f"no store at {self.path} to open read-only; create it first with vecns.connect(path).")
        if not read_only:
            (self.path / INDEX_DIR).mkdir(parents=True, exist_ok=True)
        self.read_only = read_only
        self.loopback_webhooks = bool(loopback_webhooks)
        self._providers = providers
        self._threads = threads
        self._precision = precision
        self._catalog = Catalog(self.path / DB_FILE, read_only=read_only)
        try:
            self._start()
        except StoreCorruptedError as exc:
            self._catalog.close()
            raise StoreCorruptedError(f"store database {self.path / DB_FILE}: {exc}") from exc
        except BaseException:
            self._catalog.close()
            raise

    def _start(self) -> None:
        read_only, threads = self.read_only, self._threads
        self._indexes = IndexManager(self._catalog, self.path / INDEX_DIR, threads=threads or 0)
        self._embedders: dict[str, Any] = {}
        self._embed_lock = threading.Lock()
        self.models = ModelRegistry(self._catalog)
        self.aliases = Aliases(self)
        self._migrations: Any = None
        if not read_only:
            with self._catalog.atomic() as tx:
                stale = mig_db.mark_interrupted(tx)
            for migration_id in stale:
                log.warning("migration %s was running in a process that is gone; it is now 'interrupted' and can "
                            "be resumed", migration_id)

    def __repr__(self) -> str:
        state = "closed" if self._catalog.closed else ("read-only" if self.read_only else "open")
        return f"Store({str(self.path)!r}, {state})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- namespaces ------------------------------------------------------------------------------

    def create_namespace(self, name: str, model: str | None = None, *,
                         feature_extractors: Sequence[Mapping[str, Any]] | None = None,
                         dim: int | None = None, model_label: str | None = None, metric: str = "cos",
                         dtype: str = "f16", description: str | None = None) -> Namespace:
        """Create a namespace whose features are locked to their model and dim from now on.

        Give ``model`` (a model id; default: the registry's default for ``text_extractor``), or
        ``feature_extractors`` in the hosted API's shape, or ``dim`` (and a ``model_label``) for a namespace
        whose vectors the caller brings.

        Args:
            name: Unique name (letters, digits, ``_.-``).
            model: Model id for the text extractor.
            feature_extractors: ``[{"feature_extractor_name": "text_extractor", "version": "v1",
                "params": {"embedding_model": ID}}]``.
            dim: Vector dimension of caller-supplied vectors (no extractor).
            model_label: What produced the caller's vectors; recorded, and part of the lock.
            metric: ``cos``, ``ip`` or ``l2sq``.
            dtype: Index scalar type: ``f16`` (default; half the memory, same recall), ``f32`` or ``i8``.
            description: Free text.

        Returns:
            The new namespace.

        Raises:
            InvalidNameError: The name is not allowed.
            NamespaceExistsError: The name is taken (by a namespace or an alias).
            ModelNotFoundError: The model is unknown or not installed.
            ConfigError: ``feature_extractors`` is malformed, or the arguments contradict each other.
        """
        check_name("namespace", name)
        if metric not in METRICS:
            raise ValidationError(f"metric {metric!r} is not supported; expected one of {METRICS}.")
        if dtype not in DTYPES:
            raise ValidationError(f"dtype {dtype!r} is not supported; expected one of {DTYPES}.")
        ns_id = "ns_" + secrets.token_hex(8)
        features = self._plan_features(ns_id, model, feature_extractors, dim, model_label, metric, dtype)
        record = NamespaceRecord(ns_id, name, dt.datetime.now(dt.timezone.utc), description, tuple(features))
        with self._catalog.atomic() as tx:
            if records.find_namespace(self._catalog, name=name) or records.get_alias(self._catalog, name):
                raise NamespaceExistsError(
                    f"a namespace or alias named {name!r} exists already; pick another name or drop it first."
                )
            records.insert_namespace(tx, record)
            rows_db.create_tables(tx, record)
        log.info("created namespace %r (%s) locked to %s", name, ns_id,
                 ", ".join(f"{f.model_id} dim={f.dim}" for f in features))
        return Namespace(self, record)

    def _plan_features(self, ns_id: str, model: str | None, extractors: Sequence[Mapping[str, Any]] | None,
                       dim: int | None, label: str | None, metric: str, dtype: str) -> list[Feature]:
        if dim is not None:
            if model is not None or extractors:
                raise ConfigError("give either dim (caller-supplied vectors) or model / feature_extractors, not both.")
            if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= 65536:
                raise ValidationError(f"dim={dim!r} is not allowed; expected an int from 1 to 65536.")
            label = check_name("model label", label or "external")
            fingerprint = hashlib.sha256(f"external:{label}:{dim}".encode()).hexdigest()
            return [Feature("vector", None, None, label, fingerprint, dim, metric, dtype, f"v_{ns_id}_0", 0)]
        if extractors is None:
            extractors = [{"feature_extractor_name": TEXT_EXTRACTOR, "version": "v1",
                           "params": {"embedding_model": model or self.models.default()}}]
        elif model is not None:
            raise ConfigError("give either model or feature_extractors, not both.")
        return [self.plan_feature(ns_id, i, spec, metric=metric, dtype=dtype) for i, spec in enumerate(extractors)]

    def plan_feature(self, ns_id: str, position: int, extractor: Mapping[str, Any], *, metric: str = "cos",
                     dtype: str = "f16") -> Feature:
        """Turn one hosted-API feature extractor entry into a locked ``Feature`` (model files are read)."""
        if not isinstance(extractor, Mapping):
            raise ConfigError(f"a feature extractor must be a dict; got {type(extractor).__name__}.")
        unknown = set(extractor) - {"feature_extractor_name", "version", "params", "parameters"}
        if unknown:
            raise ConfigError(f"feature extractor has unknown fields {sorted(unknown)}; allowed: "
                              "feature_extractor_name, version, params (or parameters).")
        name = extractor.get("feature_extractor_name")
        if name not in EXTRACTORS:
            raise ConfigError(f"feature extractor {name!r} is not known; known extractors: {', '.join(EXTRACTORS)}.")
        version = check_name("extractor version", extractor.get("version", "v1"))
        params = extractor.get("params", extractor.get("parameters")) or {}
        model_id = params.get("embedding_model") if isinstance(params, Mapping) else None
        if model_id is None:
            model_id = self.models.default(name)
        spec = self.models.get(model_id)
        fingerprint = spec.fingerprint()
        return Feature(f"{name}_{version}_embedding", name, version, spec.model_id, fingerprint, spec.dim,
                       metric, dtype, f"v_{ns_id}_{position}", position)

    def _record(self, ref: str | Namespace) -> NamespaceRecord:
        if isinstance(ref, Namespace):
            ref = ref.id
        if not isinstance(ref, str):
            raise NamespaceNotFoundError(f"a namespace is named by a string; got {type(ref).__name__}.")
        found = records.find_namespace(self._catalog, ns_id=ref) if ref.startswith("ns_") else None
        found = found or records.find_namespace(self._catalog, name=ref)
        if found is None:
            alias = records.get_alias(self._catalog, ref)
            if alias is not None:
                found = records.find_namespace(self._catalog, ns_id=alias[0])
        if found is None:
            known = ", ".join(r.name for r in records.list_namespaces(self._catalog)) or "(none)"
            raise NamespaceNotFoundError(
                f"no namespace or alias {ref!r}; namespaces: {known}. Create it with store.create_namespace()."
            )
        return found

    def namespace(self, ref: str) -> Namespace:
        """Return a namespace by name, id (``ns_…``) or alias.

        Raises:
            NamespaceNotFoundError: Nothing has that name, id or alias.
        """
        return Namespace(self, self._record(ref))

    def namespaces(self) -> list[Namespace]:
        """Every namespace, sorted by name."""
        return [Namespace(self, r) for r in records.list_namespaces(self._catalog)]

    def drop_namespace(self, ref: str) -> None:
        """Drop a namespace, its objects, vectors and index files. Aliases must not point at it.

        Raises:
            NamespaceNotFoundError: No such namespace.
            ValidationError: An alias points at it (move or delete the alias first).
        """
        record = self._record(ref)
        with self._catalog.write_lock:
            pointing = records.aliases_of(self._catalog, record.id)
            if pointing:
                raise ValidationError(
                    f"namespace {record.name!r} is named by alias(es) {', '.join(pointing)}; move them with "
                    "aliases.set() or delete them before dropping it."
                )
            with self._catalog.atomic() as tx:
                records.delete_namespace(tx, record)
            self._indexes.forget(record)
        log.info("dropped namespace %r (%s)", record.name, record.id)

    # -- models ----------------------------------------------------------------------------------

    def embedder(self, model_id: str) -> Any:
        """Return the loaded embedder of a model, reloading it when its files changed on disk."""
        with self._embed_lock:
            current = self._embedders.get(model_id)
            if current is None or current.is_stale():
                from vecns.embed import load_embedder

                current = load_embedder(self.models.get(model_id), providers=self._providers,
                                        threads=self._threads, precision=self._precision)
                self._embedders[model_id] = current
            return current

    def _embedder_for(self, namespace: Namespace, feature: Feature) -> Any:
        embedder = self.embedder(feature.model_id)
        if embedder.fingerprint != feature.fingerprint:
            raise mismatch(namespace, feature, embedder.fingerprint)
        return embedder

    # -- migrations ------------------------------------------------------------------------------

    @property
    def migrations(self) -> Any:
        """The store's migrations (``vecns.migrate.manager.Migrations``): validate, create, get, list, delete."""
        if self._migrations is None:
            from vecns.migrate.manager import Migrations  # the migrate layer sits above the store

            self._migrations = Migrations(self)
        return self._migrations

    def cutover(self, migration: Any, *, alias: str, gate: Any = None) -> Any:
        """Move ``alias`` from a completed migration's source to its target in one transaction.

        Args:
            migration: The migration, its id, or its target namespace's name.
            alias: The alias applications read through.
            gate: Optional relevance gate, e.g. ``{"metric": "ndcg@10", "max_drop": 0.0}``.

        Returns:
            A ``CutoverResult``. ``store.aliases.rollback(alias)`` moves the alias back.

        Raises:
            MigrationStateError: The migration is not completed.
            CutoverRefusedError: The gate found the target worse than allowed.
        """
        from vecns.migrate.cutover import cutover

        return cutover(self, migration, alias=alias, gate=gate)

    # -- lifecycle -------------------------------------------------------------------------------

    def flush(self) -> int:
        """Save every index with unsaved changes (atomically). Returns how many were saved."""
        return self._indexes.save()

    def close(self) -> None:
        """Save unsaved indexes and close the database. Safe to call twice."""
        if self._catalog.closed:
            return
        if self._catalog.forked:
            # A forked child owns none of this: saving indexes here would write the parent's files.
            self._catalog.close()
            return
        try:
            self._indexes.close()
        finally:
            self._catalog.close()
