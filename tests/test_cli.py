"""The ``vecns`` command line, driven through click's CliRunner."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click
import duckdb
import pytest
from click.testing import CliRunner, Result

import vecns
from tests.conftest import random_vectors
from vecns.cli import CliState, cli
from vecns.ingest import ingest_file

ROWS = [
    {"doc_id": "a", "body": "the cat sat on the mat", "section": "pets", "lang": "en", "year": 2021},
    {"doc_id": "b", "body": "dogs chase cats in the yard", "section": "pets", "lang": "en", "year": 2023},
    {"doc_id": "c", "body": "der hund schlaeft im garten", "section": "garden", "lang": "de", "year": 2022},
    {"doc_id": "d", "body": "planting tomatoes in spring", "section": "garden", "lang": "en", "year": 2020},
    {"doc_id": "e", "body": "a quiet evening with a book", "section": "misc", "lang": "en", "year": 2024},
]


def run(store: Path, *args: str, input: str | None = None) -> Result:
    """Invoke ``vecns --store STORE ARGS...`` and return the result (stdout and stderr apart)."""
    return CliRunner().invoke(cli, ["--store", str(store), *args], input=input, catch_exceptions=False)


def run_json(store: Path, *args: str) -> object:
    result = run(store, "--json", *args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def convert(jsonl: Path, file_format: str) -> Path:
    """Write ``jsonl``'s rows as CSV or Parquet next to it, with DuckDB's COPY (paths bound as parameters)."""
    if file_format == "jsonl":
        return jsonl
    target = jsonl.with_suffix(f".{file_format}")
    options = "(FORMAT parquet)" if file_format == "parquet" else "(HEADER)"
    con = duckdb.connect()
    rows = con.sql("SELECT * FROM read_json_auto(?)", params=[str(jsonl)])
    rows.to_table("rows")
    con.execute(f"COPY rows TO '{target}' {options}")
    con.close()
    return target


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture(scope="module")
def text_template(tmp_path_factory: pytest.TempPathFactory, tiny_folder: Path) -> Path:
    """A store with the tiny model registered (through the CLI) and a namespace 'docs' locked to it."""
    path = tmp_path_factory.mktemp("text-template") / "store"
    assert run(path, "models", "register", str(tiny_folder), "--model-id", "tiny").exit_code == 0
    assert run(path, "ns", "create", "docs", "--model", "tiny").exit_code == 0
    return path


@pytest.fixture(scope="module")
def vector_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with namespace 'vec' of caller-supplied 4-d vectors v0..v9 (ingested from JSONL), alias 'live'."""
    path = tmp_path_factory.mktemp("vector-template") / "store"
    assert run(path, "ns", "create", "vec", "--dim", "4").exit_code == 0
    vectors = random_vectors(10, 4)
    rows = [{"id": f"v{i}", "vector": vectors[i].tolist(), "collection": "even" if i % 2 == 0 else "odd",
             "rank": i} for i in range(10)]
    result = run(path, "ingest", "vec", str(write_jsonl(path.parent / "vec.jsonl", rows)))
    assert result.exit_code == 0, result.stderr
    assert run(path, "alias", "set", "live", "vec").exit_code == 0
    return path


# Copying a closed store is much cheaper than building it again through the CLI for every test.
@pytest.fixture
def text_ns(store_path: Path, text_template: Path) -> str:
    shutil.copytree(text_template, store_path)
    return "docs"


@pytest.fixture
def vector_ns(store_path: Path, vector_template: Path) -> str:
    shutil.copytree(vector_template, store_path)
    return "vec"


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    found = [(prefix, group)]
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += _commands(command, (*prefix, name))
        else:
            found.append(((*prefix, name), command))
    return found


@pytest.mark.parametrize("path", [path for path, _ in _commands(cli)], ids=lambda path: " ".join(path) or "vecns")
def test_every_command_has_help_for_each_option(tmp_path: Path, path: tuple[str, ...]):
    command = dict(_commands(cli))[path]
    result = CliRunner().invoke(cli, [*path, "--help"], catch_exceptions=False)
    assert result.exit_code == 0
    assert command.help, f"{' '.join(path)} has no help text"
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"option {param.opts} of '{' '.join(path)}' has no help"
            assert param.opts[0] in result.stdout
    assert not (tmp_path / "vecns-store").exists()
    if not isinstance(command, click.Group):  # each command takes --json after its name as well as before
        assert "--json" in [opt for param in command.params for opt in param.opts], path


def test_expected_commands_exist():
    names = {" ".join(path) for path, _ in _commands(cli)}
    assert {"ns create", "ns list", "ns show", "ns drop", "ingest", "search", "alias set", "alias list",
            "alias show", "alias delete", "alias rollback", "models list", "models show", "models register",
            "models set-default"} <= names


def test_ns_create_list_show_drop(store_path: Path):
    created = run_json(store_path, "ns", "create", "vec", "--dim", "3", "--model-label", "my-encoder",
                       "--metric", "l2sq", "--dtype", "f32", "--description", "test vectors")
    assert created["name"] == "vec" and created["id"].startswith("ns_")
    (feature,) = created["features"]
    assert (feature["model_id"], feature["dim"], feature["metric"], feature["dtype"]) == ("my-encoder", 3, "l2sq",
                                                                                           "f32")
    run(store_path, "ns", "create", "other", "--dim", "5")
    assert [d["name"] for d in run_json(store_path, "ns", "list")] == ["other", "vec"]

    shown = run(store_path, "ns", "show", "vec")
    assert shown.exit_code == 0
    for text in (created["id"], "my-encoder", "l2sq", feature["fingerprint"][:12], "test vectors"):
        assert text in shown.stdout
    assert feature["fingerprint"] not in shown.stdout  # only the prefix in the table

    declined = run(store_path, "ns", "drop", "vec", input="n\n")
    assert declined.exit_code == 1
    assert "Drop namespace 'vec'" in declined.stderr
    assert [d["name"] for d in run_json(store_path, "ns", "list")] == ["other", "vec"]
    assert run(store_path, "ns", "drop", "vec", input="y\n").exit_code == 0
    other_id = run_json(store_path, "ns", "show", "other")["id"]
    assert run_json(store_path, "ns", "drop", "other", "--yes") == {"dropped": "other", "id": other_id}
    assert run_json(store_path, "ns", "list") == []


def test_models_list_and_show_work_before_any_store_exists(store_path: Path):
    listed = {m["model_id"]: m for m in run_json(store_path, "models", "list")}
    assert {"all-minilm-l6-v2-int8", "paraphrase-minilm-l3-v2"} <= set(listed)
    assert listed["all-minilm-l6-v2-int8"]["default"] is True
    assert run_json(store_path, "models", "show", "paraphrase-minilm-l3-v2")["dim"] == 384
    assert not store_path.exists()  # nothing was created where the store would be


def test_models_register_list_show_set_default(store_path: Path, tiny_folder: Path):
    registered = run_json(store_path, "models", "register", str(tiny_folder), "--model-id", "tiny")
    assert (registered["model_id"], registered["dim"], registered["installed"]) == ("tiny", 8, True)
    listed = {m["model_id"]: m for m in run_json(store_path, "models", "list")}
    assert listed["tiny"]["dim"] == 8 and listed["tiny"]["default"] is False
    assert run_json(store_path, "models", "set-default", "tiny") == {"default": "tiny"}
    assert run_json(store_path, "models", "show", "tiny")["default"] is True
    table = run(store_path, "models", "list")
    assert "tiny" in table.stdout and "max tokens" in table.stdout
    created = run_json(store_path, "ns", "create", "docs")
    assert created["features"][0]["model_id"] == "tiny"
    assert created["features"][0]["fingerprint"] == run_json(store_path, "models", "show", "tiny")["fingerprint"]


@pytest.mark.parametrize("file_format", ["jsonl", "csv", "parquet"])
def test_ingest_formats_with_field_options(store_path: Path, tmp_path: Path, text_ns: str, file_format: str):
    path = convert(write_jsonl(tmp_path / "rows.jsonl", ROWS), file_format)
    report = run_json(store_path, "ingest", text_ns, str(path), "--id-field", "doc_id", "--text-field", "body",
                      "--collection-field", "section", "--metadata-fields", "lang,year", "--batch-size", "2")
    assert (report["count"], report["file_format"], report["cancelled"]) == (5, file_format, False)
    assert report["docs_per_second"] > 0
    with vecns.connect(store_path) as store:
        ns = store.namespace(text_ns)
        assert ns.count() == 5
        obj = ns.get("c")
        assert (obj.text, obj.collection, obj.metadata) == ("der hund schlaeft im garten", "garden",
                                                            {"lang": "de", "year": 2022})


def test_ingest_defaults_put_other_columns_into_metadata(store_path: Path, tmp_path: Path, text_ns: str):
    rows = [{"id": i, "text": f"text number {i}", "tag": "x" if i else None, "when": "2024-05-01T10:00:00"}
            for i in range(3)]
    result = run(store_path, "ingest", text_ns, str(write_jsonl(tmp_path / "r.jsonl", rows)), "--collection", "faq")
    assert result.exit_code == 0, result.stderr
    assert "ingested 3 objects into 'docs'" in result.stdout and "docs/s" in result.stdout
    with vecns.connect(store_path) as store:
        ns = store.namespace(text_ns)
        assert ns.get("1").metadata == {"tag": "x", "when": "2024-05-01T10:00:00"}
        assert ns.get("0").metadata == {"when": "2024-05-01T10:00:00"}  # nulls are left out
        assert {o.collection for o in ns} == {"faq"}


def test_ingest_add_refuses_existing_ids_and_upsert_replaces(store_path: Path, tmp_path: Path, text_ns: str):
    path = write_jsonl(tmp_path / "r.jsonl", [{"id": "x", "text": "first"}])
    assert run(store_path, "ingest", text_ns, str(path)).exit_code == 0
    again = run(store_path, "ingest", text_ns, str(path))
    assert again.exit_code == 1 and "upsert" in again.stderr
    write_jsonl(path, [{"id": "x", "text": "second"}])
    assert run(store_path, "ingest", text_ns, str(path), "--upsert").exit_code == 0
    with vecns.connect(store_path) as store:
        assert store.namespace(text_ns).get("x").text == "second"


def test_path_with_quotes_and_glob_characters_is_read_as_given(store_path: Path, tmp_path: Path, text_ns: str):
    quoted = write_jsonl(tmp_path / "it's \"quoted\"; DROP TABLE x.jsonl", [{"id": "q", "text": "quoted file"}])
    assert run_json(store_path, "ingest", text_ns, str(quoted))["count"] == 1
    # 'g[1].jsonl' as a glob would match 'g1.jsonl'; the file named exactly must be read.
    write_jsonl(tmp_path / "g1.jsonl", [{"id": "decoy", "text": "wrong file"}])
    exact = write_jsonl(tmp_path / "g[1].jsonl", [{"id": "g", "text": "right file"}])
    assert run_json(store_path, "ingest", text_ns, str(exact))["count"] == 1
    with vecns.connect(store_path) as store:
        assert sorted(o.id for o in store.namespace(text_ns)) == ["g", "q"]


def test_text_search_table_and_json(store_path: Path, tmp_path: Path, text_ns: str):
    run(store_path, "ingest", text_ns, str(write_jsonl(tmp_path / "r.jsonl", ROWS)), "--id-field", "doc_id",
        "--text-field", "body", "--collection-field", "section")
    hits = run_json(store_path, "search", text_ns, "the cat sat on the mat", "-k", "3", "--text")
    assert len(hits) == 3 and hits[0]["id"] == "a" and hits[0]["text"] == ROWS[0]["body"]
    assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]
    filtered = run_json(store_path, "search", text_ns, "cats", "--filter",
                        '{"collection_ids": ["garden"], "metadata": {"year": {"$gte": 2021}}}')
    assert [h["id"] for h in filtered] == ["c"]
    assert "text" not in filtered[0]
    table = run(store_path, "search", text_ns, "cats", "--text")
    assert table.exit_code == 0 and "score" in table.stdout and "dogs chase cats" in table.stdout


def test_vector_ingest_and_search(store_path: Path, vector_ns: str):
    query = json.dumps(random_vectors(10, 4)[3].tolist())
    hits = run_json(store_path, "search", vector_ns, query, "--vector", "-k", "2")
    assert hits[0]["id"] == "v3" and hits[0]["collection"] == "odd" and hits[0]["metadata"] == {"rank": 3}
    odd = run_json(store_path, "search", vector_ns, query, "--vector", "-k", "10", "--filter",
                   '{"collection_ids": ["even"]}')
    assert sorted(h["id"] for h in odd) == [f"v{i}" for i in range(0, 10, 2)]


def test_alias_set_list_show_rollback_delete(store_path: Path):
    run(store_path, "ns", "create", "v1", "--dim", "2")
    run(store_path, "ns", "create", "v2", "--dim", "2")
    assert run_json(store_path, "alias", "set", "prod", "v1")["namespace"] == "v1"
    moved = run_json(store_path, "alias", "set", "prod", "v2")
    assert (moved["namespace"], moved["previous_namespace"]) == ("v2", "v1")
    assert [(a["name"], a["namespace"]) for a in run_json(store_path, "alias", "list")] == [("prod", "v2")]
    assert "prod" in run(store_path, "ns", "show", "v2").stdout
    assert run_json(store_path, "alias", "rollback", "prod")["namespace"] == "v1"
    assert run_json(store_path, "alias", "show", "prod")["previous_namespace"] == "v2"
    assert run_json(store_path, "ns", "show", "prod")["name"] == "v1"  # a namespace may be named by alias
    assert run_json(store_path, "alias", "delete", "prod") == {"deleted": "prod"}
    assert run_json(store_path, "alias", "list") == []


ERROR_CASES = [
    (("ns", "show", "nope"), "no namespace or alias 'nope'"),
    (("search", "nope", "hello"), "no namespace or alias 'nope'"),
    (("search", "vec", "[1, 2]", "--vector", "--filter", "{bad json"), "--filter is not valid JSON"),
    (("search", "vec", "[1, 2]", "--vector", "--filter", "[1]"), "--filter must be a JSON object"),
    (("search", "vec", "[1, 2, 3, 4]", "--vector", "--filter", '{"colour": 1}'), "colour"),
    (("search", "vec", "[1, 2]", "--vector"), "dim"),
    (("search", "vec", "some text"), "search it with a vector"),
    (("search", "vec", "[1, 2, 3, 4]", "--vector", "-k", "0"), "k=0"),
    (("ns", "create", "bad name", "--dim", "3"), "namespace name 'bad name' is not allowed"),
    (("ns", "create", "vec", "--dim", "3"), "exists already"),
    (("alias", "rollback", "nope"), "no alias 'nope'"),
    (("models", "show", "nope"), "no model 'nope'"),
    (("ns", "drop", "vec", "--yes"), "alias"),
]


@pytest.mark.parametrize(("args", "expected", "as_json"),
                         [(*case, i % 2 == 1) for i, case in enumerate(ERROR_CASES)])
def test_errors_are_one_line_and_exit_1(store_path: Path, vector_ns: str, args: tuple[str, ...], expected: str,
                                        as_json: bool):
    result = run(store_path, *(("--json",) if as_json else ()), *args)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_store_is_an_error_and_creates_nothing(tmp_path: Path):
    result = run(tmp_path / "nowhere", "ns", "list")
    assert result.exit_code == 1 and "no vecns store" in result.stderr
    assert not (tmp_path / "nowhere").exists()


def test_missing_column_is_an_error(store_path: Path, tmp_path: Path, text_ns: str):
    path = write_jsonl(tmp_path / "r.jsonl", [{"id": "a", "body": "x"}])
    result = run(store_path, "ingest", text_ns, str(path))
    assert result.exit_code == 1
    assert "no column 'text'" in result.stderr and "id, body" in result.stderr


@pytest.mark.parametrize("args", [
    ("ingest", "docs", "FILE", "--collection", "a", "--collection-field", "b"),
    ("ingest", "docs", "FILE", "--format", "xml"),
    ("ns", "create", "x", "--model-label", "m"),
    ("ingest", "docs", "does-not-exist.jsonl"),
])
def test_usage_errors_exit_2(store_path: Path, tmp_path: Path, args: tuple[str, ...]):
    path = write_jsonl(tmp_path / "r.jsonl", [{"id": "a", "text": "x"}])
    result = run(store_path, *(str(path) if a == "FILE" else a for a in args))
    assert result.exit_code == 2
    assert "Usage:" in result.stderr


def test_env_var_names_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("VECNS_STORE", str(tmp_path / "from-env"))
    result = CliRunner().invoke(cli, ["--json", "ns", "create", "x", "--dim", "2"], catch_exceptions=False)
    assert result.exit_code == 0
    assert (tmp_path / "from-env" / "vecns.duckdb").is_file()


def test_progress_bar_path_runs_when_interactive(store_path: Path, tmp_path: Path, vector_ns: str,
                                                 monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(CliState, "interactive", property(lambda self: True))
    rows = [{"id": f"p{i}", "vector": [1.0, float(i), 0.5, 2.0]} for i in range(7)]
    result = run(store_path, "ingest", vector_ns, str(write_jsonl(tmp_path / "p.jsonl", rows)), "--batch-size", "3")
    assert result.exit_code == 0, result.stderr
    assert "ingested 7 objects" in result.stdout


def test_ingest_file_progress_can_cancel_and_clock_is_injectable(store: vecns.Store, tmp_path: Path):
    ns = store.create_namespace("vec", dim=2)
    path = write_jsonl(tmp_path / "r.jsonl", [{"id": f"r{i}", "vector": [1.0, float(i)]} for i in range(10)])
    seen: list[tuple[int, int | None]] = []
    ticks = iter([10.0, 12.0])

    def progress(done: int, total: int | None) -> bool:
        seen.append((done, total))
        return done < 6

    report = ingest_file(ns, path, batch_size=3, progress=progress, clock=lambda: next(ticks))
    assert seen == [(3, 10), (6, 10)]
    assert (report.count, report.cancelled, report.seconds, report.docs_per_second) == (6, True, 2.0, 3.0)
    assert ns.count() == 6


def test_ingest_error_after_written_batches_says_how_many(store: vecns.Store, tmp_path: Path):
    ns = store.create_namespace("vec", dim=2)
    ns.add([{"id": "r2", "vector": [1.0, 2.0]}])
    path = write_jsonl(tmp_path / "r.jsonl", [{"id": f"r{i}", "vector": [1.0, float(i + 1)]} for i in range(4)])
    with pytest.raises(vecns.ObjectExistsError, match="2 objects from the start of .* were written before"):
        ingest_file(ns, path, batch_size=1)
    assert sorted(o.id for o in ns) == ["r0", "r1", "r2"]


def test_main_runs_the_command_line(capsys: pytest.CaptureFixture[str]):
    from vecns.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"vecns {vecns.__version__}"
