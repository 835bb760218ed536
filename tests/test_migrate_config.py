"""The migration config: the hosted API's body parses, and every bad body is refused with its field named."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pydantic
import pytest

from vecns.errors import ConfigError, ValidationError
from vecns.migrate.config import MigrationConfig, config_errors, parse_config

HOSTED_BODY: dict[str, Any] = {
    "migration_type": "re_extract",
    "source_namespace_id": "ns_1a2b3c",
    "target_namespace_name": "prod-v2",
    "feature_extractors": [
        {
            "feature_extractor_name": "text_extractor",
            "version": "v1",
            "params": {"embedding_model": "all-minilm-l6-v2-int8"},
        }
    ],
    "filters": {"collection_ids": ["faq"], "date_range": {"after": "2025-01-01"}},
    "batch_options": {"batch_size": 256, "max_workers": 2, "retry_failed": False},
    "dry_run": False,
    "webhook_url": "http://127.0.0.1:8765/hook",
    "webhook_secret": "s3cret",
    "on_error": "skip",
    "allow_private_webhooks": False,
}


def body(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(HOSTED_BODY)
    for key, value in changes.items():
        if value is _DROP:
            data.pop(key, None)
        else:
            data[key] = value
    return data


_DROP = object()


def extractor(**changes: Any) -> dict[str, Any]:
    item = copy.deepcopy(HOSTED_BODY["feature_extractors"][0])
    item.update(changes)
    return item


def test_hosted_body_parses() -> None:
    config = parse_config(HOSTED_BODY)

    assert config.migration_type == "re_extract"
    assert config.source == "ns_1a2b3c"
    assert config.target == "prod-v2"
    assert config.feature_extractors[0].embedding_model == "all-minilm-l6-v2-int8"
    assert config.models == {"text_extractor_v1_embedding": "all-minilm-l6-v2-int8"}
    assert config.filters == {
        "collection_ids": ["faq"],
        "date_range": {"after": "2025-01-01T00:00:00Z", "field": "created_at"},
    }
    assert (config.batch_options.batch_size, config.batch_options.max_workers) == (256, 2)
    assert config.on_error == "skip" and config.dry_run is False
    assert config_errors(HOSTED_BODY) == []


@pytest.mark.parametrize("form", ["dict", "str", "bytes", "path"])
def test_every_input_form_gives_the_same_config(form: str, tmp_path: Path) -> None:
    text = json.dumps(HOSTED_BODY)
    path = tmp_path / "migration.json"
    path.write_text(text)
    data: Any = {"dict": HOSTED_BODY, "str": text, "bytes": text.encode(), "path": path}[form]

    assert parse_config(data) == parse_config(HOSTED_BODY)


def test_defaults_for_a_minimal_copy() -> None:
    config = parse_config({"migration_type": "copy", "source_namespace_name": "docs", "target_namespace_id": "t1"})

    assert config.feature_extractors == ()
    assert config.filters is None
    assert config.batch_options.batch_size == 256
    assert config.batch_options.max_workers == 2
    assert config.batch_options.retry_failed is False
    assert config.on_error == "skip"
    assert config.webhook_url is None and config.allow_private_webhooks is False


def test_parameters_is_a_synonym_of_params() -> None:
    fx = extractor()
    fx["parameters"] = fx.pop("params")

    config = parse_config(body(feature_extractors=[fx]))

    assert config == parse_config(HOSTED_BODY)
    assert config.feature_extractors[0].params is not None
    assert config.feature_extractors[0].params.embedding_model == "all-minilm-l6-v2-int8"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (body(surprise=1), "surprise: got an unknown field; expected one of migration_type"),
        (body(batch_options={"batch_size": 8, "turbo": True}), "batch_options.turbo: got an unknown field"),
        (body(feature_extractors=[extractor(colour="red")]), "feature_extractors[0].colour: got an unknown"),
        (
            body(feature_extractors=[extractor(params={"embedding_model": "m", "dim": 3})]),
            "feature_extractors[0].params.dim: got an unknown field; expected one of embedding_model",
        ),
        (body(batch_options={"batch_size": 0}), "batch_options.batch_size: got 0; expected an integer from 1"),
        (body(batch_options={"batch_size": 8193}), "batch_options.batch_size: got 8193"),
        (body(batch_options={"max_workers": 33}), "batch_options.max_workers: got 33"),
        (body(batch_options={"batch_size": "256"}), 'batch_options.batch_size: got "256"'),
        (body(batch_options={"batch_size": True}), "batch_options.batch_size: got true"),
        (body(dry_run="yes"), 'dry_run: got "yes"; expected true or false'),
        (body(migration_type="move"), 'migration_type: got "move"; expected one of re_extract, copy, extend'),
        (body(on_error="ignore"), 'on_error: got "ignore"; expected skip or fail'),
        (body(batch_options=[1]), "batch_options: got [1]; expected a JSON object with fields batch_size"),
        (body(target_namespace_name="prod v2"), 'target_namespace_name: got "prod v2"; expected a name'),
        (body(target_namespace_name="-prod"), "target_namespace_name: got"),
        (body(target_namespace_name="a" * 129), "target_namespace_name: got"),
        (body(target_namespace_name="prod\n"), "target_namespace_name: got"),
        (body(source_namespace_id="../etc"), "source_namespace_id: got"),
        (body(feature_extractors=[extractor(feature_extractor_name="text extractor")]),
         "feature_extractors[0].feature_extractor_name: got"),
        (body(feature_extractors=[extractor(version="v 1")]), "feature_extractors[0].version: got"),
        (body(feature_extractors=[extractor(params={"embedding_model": ""})]),
         "feature_extractors[0].params.embedding_model: got"),
        (body(feature_extractors=[extractor(parameters={"embedding_model": "m"})]),
         "feature_extractors[0]: got both 'params' and 'parameters'"),
        (body(source_namespace_id=_DROP), "source_namespace_id: missing; expected exactly one of"),
        (body(source_namespace_name="docs"), "source_namespace_name: got both source_namespace_id and"),
        (body(target_namespace_name=_DROP), "target_namespace_name: missing; expected exactly one of"),
        (body(target_namespace_id="ns_9"), "target_namespace_id: got both"),
        (body(migration_type=_DROP), "migration_type: missing"),
        (body(feature_extractors=[]), "feature_extractors: got none; expected at least one extractor"),
        (body(migration_type="extend", feature_extractors=_DROP), "feature_extractors: got none"),
        (body(feature_extractors=[{"feature_extractor_name": "text_extractor"}]),
         "feature_extractors[0].params: missing; expected params.embedding_model"),
        (body(feature_extractors=[extractor(), extractor()]),
         "feature_extractors[1]: got extractor 'text_extractor' version 'v1' again"),
        (body(feature_extractors=["text_extractor"]), "feature_extractors[0]: got \"text_extractor\""),
        (body(filters={"collection": ["faq"]}), "filters: unknown filter key 'collection'"),
        (body(filters={"collection_ids": "faq"}), "filters:"),
        (body(filters=["faq"]), "filters: got"),
        (body(webhook_url="file:///etc/passwd"), "webhook_url: webhook URL 'file:///etc/passwd' uses scheme"),
        (body(webhook_url="http:///hook"), "webhook_url: webhook URL 'http:///hook' has no host"),
        (body(webhook_secret=""), "webhook_secret: got '***'; expected a non-empty string"),
        (body(allow_private_webhooks="true"), "allow_private_webhooks: got"),
    ],
)
def test_bad_config_names_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)

    message = str(caught.value)
    assert field in message
    assert isinstance(caught.value, ValidationError) and isinstance(caught.value, ValueError)
    assert not isinstance(caught.value, pydantic.ValidationError)
    lines = message.splitlines()[1:]
    assert lines and all(": " in line and "expected" in line or "filter" in line for line in lines)
    assert config_errors(data) == lines


def test_copy_needs_no_extractors_but_checks_those_given() -> None:
    config = parse_config(body(migration_type="copy", feature_extractors=[{"feature_extractor_name": "text"}]))

    assert config.feature_extractors[0].params is None
    assert config.models == {}
    assert parse_config(body(migration_type="copy", feature_extractors=None)).feature_extractors == ()


def test_config_errors_lists_every_problem_at_once() -> None:
    data = body(
        source_namespace_id=_DROP,
        target_namespace_name="bad name",
        zzz=1,
        batch_options={"batch_size": 0, "max_workers": 99, "nope": 1},
        feature_extractors=[extractor(parameters={"embedding_model": "m"}, colour="red")],
        on_error="explode",
    )

    problems = config_errors(data)

    starts = [line.split(":", 1)[0] for line in problems]
    assert sorted(starts) == sorted(
        [
            "target_namespace_name",
            "feature_extractors[0]",
            "feature_extractors[0].colour",
            "batch_options.batch_size",
            "batch_options.max_workers",
            "batch_options.nope",
            "on_error",
            "zzz",
            "source_namespace_id",
        ]
    )
    assert len(set(problems)) == len(problems)


def test_cross_field_problem_is_reported_once() -> None:
    problems = config_errors(body(source_namespace_id=_DROP))

    assert problems == [
        "source_namespace_id: missing; expected exactly one of source_namespace_id or source_namespace_name "
        "naming the source namespace's id, name or alias"
    ]


@pytest.mark.parametrize(
    ("data", "start"),
    [
        ("{not json", "config: invalid JSON"),
        ("migration.json", "config: invalid JSON"),
        (b"\xff\xfe{", "config: invalid JSON"),
        ("[1, 2]", "config: got a JSON list; expected a JSON object"),
        ('{"dry_run": true, "dry_run": false}', "config: got key 'dry_run' twice"),
        (42, "config: got int; expected a dict"),
        ({1: "copy"}, "config: got key 1 (int); expected field names as strings"),
    ],
)
def test_unreadable_input_is_a_config_error(data: Any, start: str) -> None:
    with pytest.raises(ConfigError, match="problem") as caught:
        parse_config(data)

    assert caught.value.args[0].splitlines()[1].startswith(start)
    assert config_errors(data)[0].startswith(start)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"

    with pytest.raises(ConfigError, match="cannot read") as caught:
        parse_config(path)

    assert isinstance(caught.value.__cause__, OSError)


def test_plan_dict_is_stable_across_key_and_extractor_order() -> None:
    second = {"feature_extractor_name": "image_extractor", "params": {"embedding_model": "clip-b32"}}
    one = body(feature_extractors=[extractor(), second])
    reordered = {key: one[key] for key in reversed(list(one))}
    reordered["feature_extractors"] = [
        {key: item[key] for key in reversed(list(item))} for item in reversed(one["feature_extractors"])
    ]
    reordered["filters"] = {"date_range": {"after": "2025-01-01T00:00:00+00:00"}, "collection_ids": ["faq"]}

    first, again = parse_config(one).plan_dict(), parse_config(reordered).plan_dict()

    assert first == again
    assert json.dumps(first) == json.dumps(again)
    assert set(first) == {"feature_extractors", "filters", "migration_type", "on_error", "source", "target"}


@pytest.mark.parametrize(
    ("changes", "same"),
    [
        ({"batch_options": {"batch_size": 8, "max_workers": 1}}, True),
        ({"dry_run": True, "webhook_url": None, "webhook_secret": None}, True),
        ({"on_error": "fail"}, False),
        ({"filters": None}, False),
        ({"feature_extractors": [extractor(params={"embedding_model": "other-model"})]}, False),
        ({"target_namespace_name": "prod-v3"}, False),
        ({"source_namespace_id": _DROP, "source_namespace_name": "ns_1a2b3c"}, False),
    ],
)
def test_plan_dict_changes_only_with_the_result(changes: dict[str, Any], same: bool) -> None:
    base = parse_config(HOSTED_BODY).plan_dict()

    changed = parse_config(body(**changes)).plan_dict()

    assert (changed == base) is same


def test_to_dict_redacts_the_secret_and_is_json() -> None:
    config = parse_config(body(webhook_url="https://hooks.example.com/h?token=abc123&x=1"))

    data = config.to_dict()

    text = json.dumps(data)
    assert data["webhook_secret"] == "***"
    assert "s3cret" not in text and "abc123" not in text
    assert "s3cret" not in repr(config) and "s3cret" not in str(config)
    assert data["webhook_url"] == "https://hooks.example.com/h?token=***&x=***"
    assert data["feature_extractors"][0]["params"] == {"embedding_model": "all-minilm-l6-v2-int8"}
    assert config.webhook_secret == "s3cret"


def test_secret_never_appears_in_errors() -> None:
    message = "\n".join(config_errors(body(webhook_secret="hunter2", batch_options={"batch_size": -1})))

    assert "batch_options.batch_size" in message
    assert "hunter2" not in message


def test_config_is_immutable() -> None:
    config = parse_config(HOSTED_BODY)

    with pytest.raises(AttributeError, match="immutable"):
        config.dry_run = True  # type: ignore[misc]
    with pytest.raises(AttributeError, match="immutable"):
        config.batch_options.batch_size = 1  # type: ignore[misc]
    assert config.dry_run is False


def test_direct_construction_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="target_namespace_name: missing") as caught:
        MigrationConfig(migration_type="copy", source_namespace_id="docs")

    assert isinstance(caught.value.__cause__, pydantic.ValidationError)
    assert MigrationConfig(migration_type="copy", source_namespace_id="docs", target_namespace_id="t").target == "t"
