"""Turning a migration config into a plan, and validating it (dry run) without writing anything."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vecns.catalog import Feature, NamespaceRecord, records
from vecns.catalog import objects as rows_db
from vecns.errors import ConfigError, NamespaceExistsError, VecnsError
from vecns.filters import CompiledFilter, compile_filters
from vecns.migrate.config import MigrationConfig, config_errors, parse_config
from vecns.migrate.events import validate_webhook_url

if TYPE_CHECKING:
    from vecns.store import Store

SAMPLE_SIZE = 32
_INDEX_BYTES = {"f32": 4, "f16": 2, "i8": 1}
_GRAPH_BYTES_PER_VECTOR = 16 * 2 * 8  # connectivity 16, two levels on average, 8-byte slots


@dataclass(frozen=True)
class Plan:
    """What a migration will do: from which source, into which target features, and with which filter."""

    config: MigrationConfig
    source: NamespaceRecord
    target_name: str
    features: tuple[Feature, ...]
    extracted: tuple[str, ...]
    filters: CompiledFilter
    fingerprint: str

    def features_for(self, target_id: str) -> tuple[Feature, ...]:
        """The target features with table names derived from the target namespace's id."""
        return tuple(dataclasses.replace(f, table_name=f"v_{target_id}_{f.position}") for f in self.features)


def build_plan(store: Store, config: MigrationConfig, *, own_target_id: str | None = None) -> Plan:
    """Resolve a parsed config against the store.

    Args:
        store: The open store.
        config: A parsed config.
        own_target_id: The target this migration created already (when resuming), so it is not "taken".

    Raises:
        NamespaceNotFoundError: The source does not exist.
        NamespaceExistsError, ConfigError: The target exists, equals the source, or the types/models clash.
        ModelNotFoundError: A model is unknown or not installed.
    """
    source = store._record(config.source)
    target_name = config.target
    taken = records.find_namespace(store._catalog, name=target_name) or records.find_namespace(
        store._catalog, ns_id=target_name)
    if target_name in (source.name, source.id):
        raise ConfigError(f"the target {target_name!r} is the source itself; name a new target namespace.")
    if taken is not None and taken.id != own_target_id:
        raise NamespaceExistsError(
            f"target namespace {target_name!r} exists already; a migration fills a new namespace. Pick another "
            "target_namespace_name, or drop the existing one first."
        )
    if records.get_alias(store._catalog, target_name) is not None:
        raise NamespaceExistsError(f"target name {target_name!r} is an alias; pick another target_namespace_name.")
    metric, dtype = source.features[0].metric, source.features[0].dtype
    kind = config.migration_type
    if kind == "copy":
        for fx in config.feature_extractors:
            have = {f.model_id for f in source.features}
            if fx.embedding_model is not None and fx.embedding_model not in have:
                raise ConfigError(
                    f"a copy migration keeps the source's vectors, which were made by {sorted(have)}; it cannot "
                    f"change the model to {fx.embedding_model!r}. Use migration_type 're_extract' for a new model."
                )
        features = tuple(source.features)
        extracted: tuple[str, ...] = ()
    else:
        new = [store.plan_feature("ns_plan", i, {"feature_extractor_name": fx.feature_extractor_name,
                                                 "version": fx.version,
                                                 "params": {"embedding_model": fx.embedding_model}},
                                  metric=metric, dtype=dtype)
               for i, fx in enumerate(config.feature_extractors)]
        if kind == "extend":
            clash = {f.name for f in new} & {f.name for f in source.features}
            if clash:
                raise ConfigError(
                    f"an extend migration adds features; the source has {sorted(clash)} already. Use another "
                    "extractor version (e.g. v2) for the added feature."
                )
            kept = [dataclasses.replace(f) for f in source.features]
            new = [dataclasses.replace(f, position=len(kept) + i) for i, f in enumerate(new)]
            features = tuple(kept + new)
        else:
            features = tuple(new)
        extracted = tuple(f.name for f in new)
    if any(f.extractor is None for f in features if f.name in extracted):
        raise ConfigError("only text extractors can extract features.")
    if kind != "copy" and any(f.extractor is None for f in source.features) and not _has_text(store, source):
        raise ConfigError(f"source namespace {source.name!r} holds caller-supplied vectors without text; there "
                          "is no text to re-extract from. Use a copy migration.")
    fingerprint = hashlib.sha256(json.dumps({
        "plan": config.plan_dict(), "source_id": source.id,
        "features": [(f.name, f.model_id, f.fingerprint, f.dim, f.metric, f.dtype) for f in features],
    }, sort_keys=True).encode()).hexdigest()
    return Plan(config, source, target_name, features, extracted, compile_filters(config.filters), fingerprint)


def _has_text(store: Store, source: NamespaceRecord) -> bool:
    return rows_db.count(store._catalog, source, "text IS NOT NULL") > 0 or rows_db.count(store._catalog, source) == 0


@dataclass(frozen=True)
class ValidationReport:
    """The result of ``validate()``: whether the migration can run, and what it would cost."""

    valid: bool
    errors: tuple[str, ...]
    warnings: tuple[str, ...]
    migration_type: str | None = None
    source: str | None = None
    target: str | None = None
    source_count: int = 0
    total: int = 0
    target_dim: int | None = None
    models: dict[str, str] = dataclasses.field(default_factory=dict)
    provider: str | None = None
    estimate: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __repr__(self) -> str:
        state = "valid" if self.valid else f"invalid ({len(self.errors)} errors)"
        return f"ValidationReport({state}, total={self.total}, target={self.target!r})"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        data = dataclasses.asdict(self)
        data["errors"], data["warnings"] = list(self.errors), list(self.warnings)
        return data


def validate(store: Store, config: Any, *, estimate: bool = True) -> ValidationReport:
    """Check a migration config against the store and estimate its cost; writes nothing.

    Args:
        store: The open store.
        config: The hosted API's JSON body (dict, JSON text or path) or a parsed ``MigrationConfig``.
        estimate: Embed a small sample to estimate tokens, seconds and disk (skipped by ``create()``, which
            only needs the checks: the sample would cost ~18% of a short migration's time).

    Returns:
        The report; ``valid`` is false when ``errors`` is not empty.
    """
    problems = [] if isinstance(config, MigrationConfig) else config_errors(config)
    if problems:
        return ValidationReport(False, tuple(problems), ())
    parsed = config if isinstance(config, MigrationConfig) else parse_config(config)
    errors: list[str] = []
    if parsed.webhook_url:
        try:
            validate_webhook_url(parsed.webhook_url, allow_private=parsed.allow_private_webhooks,
                                 allow_loopback=store.loopback_webhooks)
        except VecnsError as exc:
            errors.append(f"webhook_url: {exc}")
    try:
        plan = build_plan(store, parsed)
    except VecnsError as exc:
        return ValidationReport(False, tuple([*errors, f"{type(exc).__name__}: {exc}"]), (),
                                parsed.migration_type, parsed.source, parsed.target)
    source_count = rows_db.count(store._catalog, plan.source)
    total = rows_db.count(store._catalog, plan.source, plan.filters.where, plan.filters.params)
    warnings: list[str] = []
    provider, cost = None, {}
    if estimate:
        try:
            warnings, provider, cost = _estimate(store, plan, total)
        except VecnsError as exc:
            errors.append(f"estimating on a sample failed: {type(exc).__name__}: {exc}")
    if total == 0:
        warnings.append("no source object matches the filters; the target would be empty.")
    models = {f.name: f.model_id for f in plan.features}
    return ValidationReport(not errors, tuple(errors), tuple(warnings), parsed.migration_type, plan.source.name,
                            plan.target_name, source_count, total, plan.features[0].dim, models, provider, cost)


def _estimate(store: Store, plan: Plan, total: int) -> tuple[list[str], str | None, dict[str, Any]]:
    sample = next(rows_db.iterate(store._catalog, plan.source, batch_size=SAMPLE_SIZE, where=plan.filters.where,
                                  params=plan.filters.params), [])
    texts = [o.text for o in sample if o.text and o.text.strip()]
    warnings: list[str] = []
    if sample and len(texts) < len(sample) and plan.extracted:
        warnings.append(f"{len(sample) - len(texts)} of {len(sample)} sampled objects have no text; they will be "
                        f"recorded as failures (on_error={plan.config.on_error}).")
    seconds = 0.0
    tokens = 0
    provider = None
    for feature in plan.features:
        if feature.name not in plan.extracted or not texts:
            continue
        embedder = store.embedder(feature.model_id)
        provider = embedder.provider
        embedder.embed(texts[:2])  # warm-up: the first run pays for graph initialisation
        start = time.perf_counter()
        embedder.embed(texts)
        elapsed = max(time.perf_counter() - start, 1e-9)
        seconds += elapsed / len(texts) * total
        tokens += round(embedder.count_tokens(texts) / len(texts) * total)
    if plan.extracted:
        warnings.append(f"re-extraction re-pays the extraction cost for every object: {total} objects, about "
                        f"{tokens} tokens and {seconds:.0f} s on {provider or 'this machine'}.")
    payload = sum(len(o.text or "") + len(o.metadata or "") + len(o.id) for o in sample) / max(1, len(sample))
    per_object = payload + sum(f.dim * 4 + f.dim * _INDEX_BYTES[f.dtype] + _GRAPH_BYTES_PER_VECTOR
                               for f in plan.features)
    return warnings, provider, {"objects": total, "tokens": tokens, "seconds": round(seconds, 1),
                                "disk_bytes": int(per_object * total), "sample_size": len(sample)}
