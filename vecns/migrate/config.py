"""The migration config: the hosted API's JSON body, validated at the boundary.

This is the only module in vecns that imports pydantic. Callers use ``parse_config`` (raises
``ConfigError`` listing every problem) or ``config_errors`` (returns the problems), never pydantic's own
errors. An example body::

    {"migration_type": "re_extract", "source_namespace_id": "ns_1a2b", "target_namespace_name": "prod-v2",
     "feature_extractors": [{"feature_extractor_name": "text_extractor", "version": "v1",
                             "params": {"embedding_model": "all-minilm-l6-v2-int8"}}],
     "filters": {"collection_ids": ["faq"], "date_range": {"after": "2025-01-01"}},
     "batch_options": {"batch_size": 256, "max_workers": 2, "retry_failed": false},
     "dry_run": false, "webhook_url": "https://example.com/hook", "webhook_secret": "s3cret",
     "on_error": "skip", "allow_private_webhooks": false}

The webhook URL's form is checked here; whether its host may be private is checked when the webhook
sender is made (``vecns.migrate.events.validate_webhook_url``), because that needs DNS.
"""

from __future__ import annotations

import contextvars
import json
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StringConstraints

from vecns.errors import ConfigError
from vecns.migrate.events import redact_url, validate_webhook_url
from vecns.models import MODEL_ID_PATTERN

__all__ = [
    "BatchOptions",
    "ExtractorParams",
    "FeatureExtractorConfig",
    "MigrationConfig",
    "config_errors",
    "parse_config",
]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
MIGRATION_TYPES = ("re_extract", "copy", "extend")
_NEEDS_MODELS = ("re_extract", "extend")
_SOURCE_KEYS = ("source_namespace_id", "source_namespace_name")
_TARGET_KEYS = ("target_namespace_name", "target_namespace_id")

_IN_VALIDATE: contextvars.ContextVar[bool] = contextvars.ContextVar("vecns_config_validate", default=False)

Name = Annotated[str, StringConstraints(strict=True, pattern=NAME_PATTERN)]
ModelId = Annotated[str, StringConstraints(strict=True, pattern=MODEL_ID_PATTERN.pattern)]

_NAME_RULE = (
    "a name of 1-128 letters, digits, '_', '.' or '-' starting with a letter or digit "
    f"(pattern {NAME_PATTERN})"
)
_EXPECTED = {
    "migration_type": "one of " + ", ".join(MIGRATION_TYPES),
    "source_namespace_id": _NAME_RULE + " giving the source namespace's id, name or alias",
    "source_namespace_name": _NAME_RULE,
    "target_namespace_name": _NAME_RULE,
    "target_namespace_id": _NAME_RULE,
    "feature_extractor_name": _NAME_RULE,
    "version": _NAME_RULE + ", such as v1",
    "embedding_model": f"a model id (pattern {MODEL_ID_PATTERN.pattern}), such as all-minilm-l6-v2-int8",
    "batch_size": "an integer from 1 to 8192",
    "max_workers": "an integer from 1 to 32",
    "retry_failed": "true or false",
    "dry_run": "true or false",
    "allow_private_webhooks": "true or false",
    "on_error": "skip or fail",
    "webhook_url": "an http:// or https:// URL",
    "webhook_secret": "a non-empty string",
    "filters": "a filter object such as {\"collection_ids\": [\"faq\"]}",
    "feature_extractors": "a list of feature extractor objects",
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"{type(self).__name__} is immutable; cannot set {name!r}. Build a new config with parse_config."
        )

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; cannot delete {name!r}.")


class ExtractorParams(_Frozen):
    """Parameters of one feature extractor.

    Attributes:
        embedding_model: The model id the extractor embeds with (a key of the store's model registry).
    """

    embedding_model: ModelId


class FeatureExtractorConfig(_Frozen):
    """One feature extractor of the target namespace.

    ``parameters`` is accepted as a synonym of ``params``; giving both is an error.

    Attributes:
        feature_extractor_name: The extractor's name, e.g. ``text_extractor``.
        version: The extractor's version, e.g. ``v1``.
        params: The extractor's parameters; required for ``re_extract`` and ``extend``.
    """

    feature_extractor_name: Name
    version: Name = "v1"
    params: ExtractorParams | None = None

    @pydantic.model_validator(mode="before")
    @classmethod
    def _accept_parameters(cls, data: Any) -> Any:
        # With both spellings present, "parameters" is left in place and fails as an unknown field, so
        # the extractor's other fields are still checked in the same pass.
        if isinstance(data, Mapping) and "parameters" in data and "params" not in data:
            data = {("params" if key == "parameters" else key): value for key, value in data.items()}
        return data

    @property
    def embedding_model(self) -> str | None:
        """The model id from ``params``, or None when no params were given."""
        return self.params.embedding_model if self.params else None


class BatchOptions(_Frozen):
    """How a migration batches its work.

    Attributes:
        batch_size: Objects per batch (and per checkpoint), 1-8192.
        max_workers: Extraction workers, 1-32.
        retry_failed: Retry objects that failed in an earlier run of the migration.
    """

    batch_size: Annotated[StrictInt, Field(ge=1, le=8192)] = 256
    max_workers: Annotated[StrictInt, Field(ge=1, le=32)] = 2
    retry_failed: StrictBool = False


class MigrationConfig(_Frozen):
    """A validated, immutable migration config (the hosted API's JSON body).

    Build one with ``parse_config``. Exactly one of ``source_namespace_id`` / ``source_namespace_name``
    and exactly one of ``target_namespace_name`` / ``target_namespace_id`` is set.

    Attributes:
        migration_type: ``re_extract`` (embed again with new models), ``copy`` (vectors as they are) or
            ``extend`` (copy existing features and extract the listed ones).
        source_namespace_id: The source namespace's id, name or alias.
        source_namespace_name: The source namespace's name or alias.
        target_namespace_name: The name of the target namespace.
        target_namespace_id: The id of the target namespace.
        feature_extractors: The extractors to run (at least one for ``re_extract`` and ``extend``).
        filters: The canonical form of the filter selecting source objects (``normalize_filters``), or None.
        batch_options: Batching settings.
        dry_run: Validate and estimate only; write nothing.
        on_error: Per-object failures: ``skip`` (record and go on) or ``fail`` (stop the migration).
        webhook_url: Where to POST migration events, or None.
        webhook_secret: Secret for the events' HMAC signature, or None.
        allow_private_webhooks: Allow a webhook receiver on a private network (one on this machine needs no opt-in).
    """

    migration_type: Literal["re_extract", "copy", "extend"]
    source_namespace_id: Name | None = None
    source_namespace_name: Name | None = None
    target_namespace_name: Name | None = None
    target_namespace_id: Name | None = None
    feature_extractors: tuple[FeatureExtractorConfig, ...] = ()
    filters: dict[str, Any] | None = None
    batch_options: BatchOptions = BatchOptions()
    dry_run: StrictBool = False
    on_error: Literal["skip", "fail"] = "skip"
    webhook_url: Annotated[str, StringConstraints(strict=True)] | None = None
    webhook_secret: Annotated[str, StringConstraints(strict=True, min_length=1)] | None = Field(
        default=None, repr=False
    )
    allow_private_webhooks: StrictBool = False

    def __init__(self, **data: Any) -> None:
        """Validate keyword fields; prefer ``parse_config``, which also reads JSON and files.

        Raises:
            ConfigError: Listing every problem, as ``parse_config`` does.
        """
        if _IN_VALIDATE.get():
            super().__init__(**data)
            return
        try:
            super().__init__(**data)
        except pydantic.ValidationError as exc:
            problems = _validate(data)[1]
            raise ConfigError("migration config is invalid:\n" + "\n".join(problems)) from exc

    @pydantic.field_validator("feature_extractors", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return () if value is None else value

    @pydantic.field_validator("filters")
    @classmethod
    def _normalize_filters(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        # Imported here: vecns.filters sits below vecns.migrate, and config must stay cheap to import.
        from vecns.errors import FilterError
        from vecns.filters import normalize_filters

        try:
            return normalize_filters(value)
        except FilterError as exc:
            raise ValueError(str(exc)) from exc

    @pydantic.field_validator("webhook_url")
    @classmethod
    def _check_webhook_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return validate_webhook_url(value, allow_private=True)
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc

    @pydantic.model_validator(mode="after")
    def _check_combinations(self) -> MigrationConfig:
        problems = _combination_problems(self.model_dump())
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def __repr__(self) -> str:
        return f"MigrationConfig({self.migration_type} {self.source!r} -> {self.target!r})"

    __str__ = __repr__

    @property
    def source(self) -> str:
        """The source namespace as given (an id, a name or an alias)."""
        return self.source_namespace_id or self.source_namespace_name or ""

    @property
    def target(self) -> str:
        """The target namespace as given (a name or an id)."""
        return self.target_namespace_name or self.target_namespace_id or ""

    @property
    def models(self) -> dict[str, str]:
        """Model id per feature (``<extractor>_<version>_embedding``), for extractors that name one."""
        return {
            f"{fx.feature_extractor_name}_{fx.version}_embedding": fx.embedding_model
            for fx in self.feature_extractors
            if fx.embedding_model is not None
        }

    def plan_dict(self) -> dict[str, Any]:
        """Return the settings that change a migration's result, in a canonical form.

        Key order, extractor order, the ``params``/``parameters`` spelling, batching, dry run and webhook
        settings do not change it, so equal plans give equal dicts (and equal JSON with sorted keys).

        Returns:
            A dict with ``migration_type``, ``source``, ``target``, ``feature_extractors``, ``filters`` and
            ``on_error``.
        """
        source_key = next(key for key in _SOURCE_KEYS if getattr(self, key) is not None)
        target_key = next(key for key in _TARGET_KEYS if getattr(self, key) is not None)
        extractors = sorted(
            (
                {
                    "embedding_model": fx.embedding_model,
                    "feature_extractor_name": fx.feature_extractor_name,
                    "version": fx.version,
                }
                for fx in self.feature_extractors
            ),
            key=lambda item: (item["feature_extractor_name"], item["version"]),
        )
        return {
            "feature_extractors": extractors,
            "filters": json.loads(json.dumps(self.filters, sort_keys=True)),
            "migration_type": self.migration_type,
            "on_error": self.on_error,
            "source": {source_key: getattr(self, source_key)},
            "target": {target_key: getattr(self, target_key)},
        }

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a JSON-able dict, safe to print or log.

        The webhook secret shows as ``"***"`` and the webhook URL's query values are redacted, so the
        result is for display; keep the original body to run the migration again.

        Returns:
            The config with unset optional fields left out.
        """
        data = self.model_dump(mode="json", exclude_none=True)
        if self.webhook_secret is not None:
            data["webhook_secret"] = "***"
        if self.webhook_url is not None:
            data["webhook_url"] = redact_url(self.webhook_url)
        return data


def parse_config(data: Mapping[str, Any] | str | bytes | Path) -> MigrationConfig:
    """Validate a migration config.

    Args:
        data: The config as a dict, as JSON text (``str`` or ``bytes``), or as a ``Path`` to a JSON file.

    Returns:
        The validated config.

    Raises:
        ConfigError: Listing every problem found, one per line, each as
            ``field.path: what was seen; expected ...``.
    """
    config, problems, cause = _validate(data)
    if config is None:
        count = len(problems)
        raise ConfigError(
            f"migration config has {count} problem{'s' if count != 1 else ''}:\n" + "\n".join(problems)
        ) from cause
    return config


def config_errors(data: Mapping[str, Any] | str | bytes | Path) -> list[str]:
    """Return the problems ``parse_config`` would report, without raising.

    Args:
        data: The config, in any form ``parse_config`` takes.

    Returns:
        One ``field.path: what was seen; expected ...`` line per problem; empty when the config is valid.
    """
    return _validate(data)[1]


def _validate(data: Any) -> tuple[MigrationConfig | None, list[str], BaseException | None]:
    try:
        raw = _load(data)
    except _LoadError as exc:
        return None, [str(exc)], exc.__cause__ or exc
    # pydantic runs MigrationConfig.__init__ inside model_validate; the flag tells it to let pydantic's
    # own error through, since this function is the one that converts it.
    token = _IN_VALIDATE.set(True)
    try:
        return MigrationConfig.model_validate(raw), [], None
    except pydantic.ValidationError as exc:
        cause = exc
        lines = [line for error in exc.errors() for line in _format_error(error)]
    finally:
        _IN_VALIDATE.reset(token)
    # Cross-field checks run in the model only when every field is valid; run them here too, so one
    # pass reports everything (the dict de-duplicates lines the model reported itself).
    lines += _combination_problems(raw)
    return None, list(dict.fromkeys(lines)), cause


class _LoadError(Exception):
    pass


def _load(data: Any) -> Mapping[str, Any]:
    if isinstance(data, Path):
        try:
            text: str | bytes = data.read_bytes()
        except OSError as exc:
            raise _LoadError(
                f"config: cannot read {str(data)!r} ({exc.strerror or exc}); expected a readable JSON file"
            ) from exc
    elif isinstance(data, (str, bytes, bytearray)):
        text = bytes(data) if isinstance(data, bytearray) else data
    elif isinstance(data, Mapping):
        for key in data:
            if not isinstance(key, str):
                raise _LoadError(f"config: got key {key!r} ({type(key).__name__}); expected field names as strings")
        return dict(data)
    else:
        raise _LoadError(
            f"config: got {type(data).__name__}; expected a dict, JSON text (str or bytes) or a Path"
        )
    try:
        loaded = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except _LoadError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        looks_like_path = isinstance(data, str) and data.lstrip()[:1] != "{"
        hint = " (to read a file, pass a Path)" if looks_like_path else ""
        raise _LoadError(f"config: invalid JSON ({exc}); expected a JSON object{hint}") from exc
    if not isinstance(loaded, dict):
        raise _LoadError(f"config: got a JSON {type(loaded).__name__}; expected a JSON object")
    return loaded


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _LoadError(f"config: got key {key!r} twice in one JSON object; expected each key once")
        result[key] = value
    return result


def _combination_problems(values: Mapping[str, Any]) -> list[str]:
    problems = []
    for keys, role, what in (
        (_SOURCE_KEYS, "source", "the source namespace's id, name or alias"),
        (_TARGET_KEYS, "target", "the target namespace"),
    ):
        given = [key for key in keys if values.get(key) is not None]
        if not given:
            problems.append(
                f"{keys[0]}: missing; expected exactly one of {keys[0]} or {keys[1]} naming {what}"
            )
        elif len(given) > 1:
            problems.append(
                f"{keys[1]}: got both {keys[0]} and {keys[1]}; expected exactly one {role} namespace field"
            )
    migration_type = values.get("migration_type")
    extractors = values.get("feature_extractors")
    if extractors is None:
        extractors = []
    if not isinstance(extractors, (list, tuple)):
        return problems
    if migration_type in _NEEDS_MODELS and not extractors:
        problems.append(
            f"feature_extractors: got none; expected at least one extractor with params.embedding_model "
            f"for migration_type {migration_type!r}"
        )
    seen: dict[tuple[Any, Any], int] = {}
    for index, item in enumerate(extractors):
        if not isinstance(item, Mapping):
            continue
        if migration_type in _NEEDS_MODELS and item.get("params") is None and item.get("parameters") is None:
            problems.append(
                f"feature_extractors[{index}].params: missing; expected params.embedding_model (the model to "
                f"extract with) for migration_type {migration_type!r}"
            )
        name = item.get("feature_extractor_name")
        if isinstance(name, str):
            key = (name, item.get("version", "v1"))
            if key in seen:
                problems.append(
                    f"feature_extractors[{index}]: got extractor {name!r} version {key[1]!r} again "
                    f"(also at [{seen[key]}]); expected each extractor once"
                )
            else:
                seen[key] = index
    return problems


def _format_error(error: Mapping[str, Any]) -> list[str]:
    loc = tuple(error.get("loc", ()))
    path = _path(loc)
    kind = error.get("type", "")
    if kind == "value_error":
        cause = error.get("ctx", {}).get("error")
        message = str(cause) if cause is not None else str(error.get("msg", ""))
        if not loc:
            return message.splitlines()
        return [f"{path}: {message}"]
    if kind == "extra_forbidden":
        if loc[-1] == "parameters" and _model_at(loc[:-1]) is FeatureExtractorConfig:
            return [f"{_path(loc[:-1])}: got both 'params' and 'parameters'; expected only one (synonyms)"]
        return [f"{path}: got an unknown field; expected one of {', '.join(_allowed_fields(loc[:-1]))}"]
    expected = _expected(loc, error)
    if kind == "missing":
        return [f"{path or 'config'}: missing; expected {expected}"]
    return [f"{path or 'config'}: got {_show(loc, error.get('input'))}; expected {expected}"]


def _path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _expected(loc: tuple[Any, ...], error: Mapping[str, Any]) -> str:
    kind = error.get("type", "")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"a JSON object with fields {', '.join(_allowed_fields(loc))}"
    if loc and loc[-1] in _EXPECTED:
        return _EXPECTED[loc[-1]]
    message = str(error.get("msg", "a valid value"))
    if kind == "invalid_key":
        return "field names as strings"
    for prefix in ("Input should be ", "Value should be "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message[:1].lower() + message[1:]


def _show(loc: tuple[Any, ...], value: Any) -> str:
    if loc and loc[-1] == "webhook_secret":
        return "a secret of the wrong type" if not isinstance(value, str) else "'***'"
    if loc and loc[-1] == "webhook_url" and isinstance(value, str):
        return json.dumps(redact_url(value))
    try:
        shown = json.dumps(value, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = MigrationConfig
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        info = model.model_fields.get(part)
        model = _inner_model(info.annotation) if info is not None else None
    return model


def _allowed_fields(loc: tuple[Any, ...]) -> list[str]:
    model = _model_at(loc)
    if model is None:
        return []
    fields = list(model.model_fields)
    if model is FeatureExtractorConfig:
        fields.append("parameters (synonym of params)")
    return fields


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None
