"""``vecns migrate ...`` and ``vecns cutover``, driven through click's CliRunner on tiny models."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import vecns
from tests.tiny_model import build_tiny_model
from vecns.catalog import migrations as mig_db
from vecns.cli import CliState, cli
from vecns.embed import Embedder
from vecns.errors import EmbeddingError
from vecns.migrate.manager import Migrations

SOURCE_COUNT = 20
BATCH_SIZE = 10
NEW_COMMANDS = [("migrate",), ("migrate", "validate"), ("migrate", "create"), ("migrate", "run"),
                ("migrate", "start"), ("migrate", "resume"), ("migrate", "status"), ("migrate", "cancel"),
                ("migrate", "list"), ("migrate", "delete"), ("migrate", "failures"), ("cutover",)]


def run(store: Path, *args: str) -> Result:
    """Invoke ``vecns --store STORE ARGS...`` (stdout and stderr apart)."""
    return CliRunner().invoke(cli, ["--store", str(store), *args], catch_exceptions=False)


def run_json(store: Path, *args: str, exit_code: int = 0) -> object:
    result = run(store, "--json", *args)
    assert result.exit_code == exit_code, result.stderr
    return json.loads(result.stdout)


def body(**changes: object) -> dict:
    """A re_extract config from 'docs' (tiny, dim 8) into 'docs-v2' (tiny2, dim 16)."""
    data = {"migration_type": "re_extract", "source_namespace_name": "docs", "target_namespace_name": "docs-v2",
            "feature_extractors": [{"feature_extractor_name": "text_extractor", "version": "v1",
                                    "params": {"embedding_model": "tiny2"}}],
            "batch_options": {"batch_size": BATCH_SIZE}}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def write_config(path: Path, data: dict) -> str:
    path.write_text(json.dumps(data))
    return str(path)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, tiny_folder: Path) -> Path:
    """A store with models 'tiny' and 'tiny2' (registered through the CLI) and namespace 'docs' on 'tiny'."""
    root = tmp_path_factory.mktemp("migrate-template")
    path = root / "store"
    second = build_tiny_model(root / "tiny2", dim=16, seed=1)
    for folder, model_id in ((tiny_folder, "tiny"), (second, "tiny2")):
        assert run(path, "models", "register", str(folder), "--model-id", model_id).exit_code == 0
    with vecns.connect(path) as store:
        ns = store.create_namespace("docs", "tiny")
        ns.add([{"id": f"d{i:02d}", "text": f"note {i} about cats and gardens", "collection": "even" if i % 2 == 0
                 else "odd"} for i in range(SOURCE_COUNT - 1)])
        ns.add([{"id": "poison", "text": "poison"}])
        store.aliases.set("live", "docs")
    return path


@pytest.fixture
def store_path(tmp_path: Path, template: Path) -> Path:
    path = tmp_path / "store"
    shutil.copytree(template, path)
    return path


@pytest.fixture
def config(tmp_path: Path) -> str:
    return write_config(tmp_path / "migration.json", body())


@pytest.fixture(scope="module")
def migrated_template(tmp_path_factory: pytest.TempPathFactory, template: Path) -> tuple[Path, str]:
    """The template after a completed migration 'docs' -> 'docs-v2' (run through the CLI), and its id."""
    root = tmp_path_factory.mktemp("migrated-template")
    path = root / "store"
    shutil.copytree(template, path)
    status = run_json(path, "migrate", "run", "--config", write_config(root / "migration.json", body()))
    assert status["status"] == "completed"
    return path, status["id"]


@pytest.fixture
def migrated(tmp_path: Path, migrated_template: tuple[Path, str]) -> tuple[Path, str]:
    path = tmp_path / "migrated"
    shutil.copytree(migrated_template[0], path)
    return path, migrated_template[1]


@pytest.mark.parametrize("path", NEW_COMMANDS, ids=" ".join)
def test_every_new_command_has_help(tmp_path: Path, path: tuple[str, ...]):
    result = CliRunner().invoke(cli, [*path, "--help"], catch_exceptions=False)
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: ") and path[-1] in result.stdout.splitlines()[0]
    assert "--help" in result.stdout
    assert not (tmp_path / "vecns-store").exists()


def test_validate_valid_config_reports_counts_dim_and_estimate(store_path: Path, config: str):
    report = run_json(store_path, "migrate", "validate", "--config", config)
    assert report["valid"] is True and report["errors"] == []
    assert (report["source"], report["target"], report["target_dim"]) == ("docs", "docs-v2", 16)
    assert report["source_count"] == report["total"] == SOURCE_COUNT
    assert report["provider"] == "CPUExecutionProvider"
    assert report["estimate"]["tokens"] > 0 and report["estimate"]["objects"] == SOURCE_COUNT
    human = run(store_path, "migrate", "validate", "--config", config)
    assert human.exit_code == 0
    assert "objects to migrate" in human.stdout and "CPUExecutionProvider" in human.stdout
    assert run_json(store_path, "migrate", "list") == []


@pytest.mark.parametrize(("changes", "expected"), [
    ({"surprise": 1}, "surprise: got an unknown field"),
    ({"source_namespace_name": None}, "source_namespace_id"),
    ({"source_namespace_name": "nowhere"}, "nowhere"),
    ({"target_namespace_name": "docs"}, "is the source itself"),
])
def test_validate_invalid_config_lists_errors_and_exits_1(store_path: Path, tmp_path: Path, changes: dict,
                                                          expected: str):
    config = write_config(tmp_path / "bad.json", body(**changes))
    result = run(store_path, "--json", "migrate", "validate", "--config", config)
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["valid"] is False
    assert any(expected in error for error in report["errors"]), report["errors"]
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: ")
    human = run(store_path, "migrate", "validate", "--config", config)
    assert human.exit_code == 1 and expected in " ".join(human.stdout.split())
    created = run(store_path, "migrate", "create", "--config", config)
    assert created.exit_code == 1
    assert run_json(store_path, "migrate", "list") == []


def test_create_start_status_list_failures_delete(store_path: Path, config: str,
                                                  monkeypatch: pytest.MonkeyPatch):
    created = run(store_path, "migrate", "create", "--config", config)
    assert created.exit_code == 0, created.stderr
    migration_id = created.stdout.strip()
    assert migration_id.startswith("mig_")
    status = run_json(store_path, "migrate", "status", migration_id)
    assert (status["status"], status["processed"], status["failures"]) == ("draft", 0, 0)
    after = run(store_path, "migrate", "status", migration_id, "--json")  # --json after the command, too
    assert after.exit_code == 0, after.stderr
    assert json.loads(after.stdout) == status
    assert [m["id"] for m in run_json(store_path, "migrate", "list", "--status", "draft")] == [migration_id]

    # The engine embeds on worker threads; make the model refuse one text so that object alone fails.
    with vecns.connect(store_path) as store:
        poison = store.embedder("tiny2").tokenize(["poison"])[0].input_ids[0, 1]
    infer = Embedder.infer

    def refusing(self: Embedder, batch, **options):
        if self.dim == 16 and (batch.input_ids == poison).any():
            raise EmbeddingError("refused a poisoned text")
        return infer(self, batch, **options)

    monkeypatch.setattr(Embedder, "infer", refusing)
    final = run_json(store_path, "migrate", "start", migration_id)
    assert (final["status"], final["stage"], final["percent"]) == ("completed", "done", 100.0)
    assert final["processed"] == SOURCE_COUNT and final["failed"] == final["failures"] == 1

    status = run_json(store_path, "migrate", "status", migration_id)
    assert status["status"] == "completed" and status["failures"] == 1
    assert status.keys() == final.keys()
    assert run_json(store_path, "migrate", "failures", migration_id) == [
        {"id": "poison", "error": "model tiny2: refused a poisoned text"}]
    table = run(store_path, "migrate", "failures", migration_id)
    assert "poison" in table.stdout and "object id" in table.stdout
    assert [m["id"] for m in run_json(store_path, "migrate", "list", "--status", "completed",
                                      "--type", "re_extract")] == [migration_id]
    assert run_json(store_path, "migrate", "list", "--type", "copy") == []
    assert run_json(store_path, "ns", "show", "docs-v2")["count"] == SOURCE_COUNT - 1
    again = run(store_path, "migrate", "start", migration_id)
    assert again.exit_code == 1 and "completed" in again.stderr and len(again.stderr.splitlines()) == 1

    assert run_json(store_path, "migrate", "delete", migration_id) == {"deleted": migration_id}
    gone = run(store_path, "migrate", "status", migration_id)
    assert gone.exit_code == 1 and migration_id in gone.stderr
    assert run_json(store_path, "ns", "show", "docs-v2")["count"] == SOURCE_COUNT - 1


@pytest.mark.parametrize("interactive", [False, True], ids=["piped", "terminal"])
def test_run_is_the_one_shot(store_path: Path, config: str, interactive: bool, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(CliState, "interactive", property(lambda self: interactive))
    result = run(store_path, "migrate", "run", "--config", config)
    assert result.exit_code == 0, result.stderr
    assert "completed" in result.stdout and f"{SOURCE_COUNT}/{SOURCE_COUNT}" in result.stdout
    [migration] = run_json(store_path, "migrate", "list")
    assert migration["status"] == "completed" and migration["target"] == "docs-v2"
    target = run_json(store_path, "ns", "show", "docs-v2")
    assert target["count"] == SOURCE_COUNT and target["features"][0]["dim"] == 16
    hits = run_json(store_path, "search", "docs-v2", "cats", "-k", "3")
    assert len(hits) == 3


def test_dry_run_prints_the_report_and_creates_nothing(store_path: Path, tmp_path: Path):
    config = write_config(tmp_path / "dry.json", body(dry_run=True))
    report = run_json(store_path, "migrate", "create", "--config", config)
    assert report["valid"] is True and report["total"] == SOURCE_COUNT
    assert run_json(store_path, "migrate", "list") == []
    assert [ns["name"] for ns in run_json(store_path, "ns", "list")] == ["docs"]


def test_cancel_a_draft_then_resume_it(store_path: Path, config: str):
    migration_id = run_json(store_path, "migrate", "create", "--config", config)["id"]
    cancelled = run_json(store_path, "migrate", "cancel", migration_id, "--reason", "not today")
    assert cancelled["status"] == "cancelled" and cancelled["processed"] == 0
    assert [m["id"] for m in run_json(store_path, "migrate", "list", "--status", "cancelled")] == [migration_id]
    refused = run(store_path, "migrate", "start", migration_id)
    assert refused.exit_code == 1 and "resume" in refused.stderr
    resumed = run_json(store_path, "migrate", "resume", migration_id)
    assert resumed["status"] == "completed" and resumed["processed"] == SOURCE_COUNT


def test_ctrl_c_cancels_at_a_batch_boundary_and_exits_130(store_path: Path, config: str,
                                                         monkeypatch: pytest.MonkeyPatch):
    migration_id = run_json(store_path, "migrate", "create", "--config", config)["id"]
    status = Migrations._status
    sent = []

    def press_ctrl_c_after_first_batch(self: Migrations, row):
        current = status(self, row)
        if current.status == "in_progress" and current.processed > 0 and not sent:
            sent.append(current.processed)
            os.kill(os.getpid(), signal.SIGINT)
        return current

    monkeypatch.setattr(Migrations, "_status", press_ctrl_c_after_first_batch)
    previous = signal.getsignal(signal.SIGINT)
    result = run(store_path, "--json", "migrate", "start", migration_id)
    assert signal.getsignal(signal.SIGINT) is previous
    assert result.exit_code == 130, result.stderr
    data = json.loads(result.stdout)
    assert data["status"] == "cancelled" and data["processed"] == sent[0] == BATCH_SIZE
    assert f"vecns migrate resume {migration_id}" in result.stderr
    monkeypatch.undo()
    resumed = run_json(store_path, "migrate", "resume", migration_id)
    assert resumed["status"] == "completed" and resumed["processed"] == SOURCE_COUNT


def _store_evaluation(store_path: Path, namespace: str, ndcg: float) -> None:
    with vecns.connect(store_path) as store, store._catalog.atomic() as tx:
        ns_id = store.namespace(namespace).id
        mig_db.put_evaluation(tx, f"ev_{namespace}", ns_id, "golden", {"ndcg@10": ndcg})


def test_cutover_moves_the_alias_and_rollback_moves_it_back(migrated: tuple[Path, str]):
    store_path, migration_id = migrated
    moved = run_json(store_path, "cutover", migration_id, "--alias", "live")
    assert (moved["alias"], moved["source"], moved["target"], moved["gate"]) == ("live", "docs", "docs-v2", None)
    assert run_json(store_path, "alias", "show", "live")["namespace"] == "docs-v2"
    assert run_json(store_path, "ns", "show", "live")["features"][0]["dim"] == 16
    back = run_json(store_path, "alias", "rollback", "live")
    assert back["namespace"] == "docs"
    assert run_json(store_path, "ns", "show", "live")["features"][0]["dim"] == 8


def test_cutover_gate_refuses_then_passes(migrated: tuple[Path, str]):
    store_path = migrated[0]
    refused = run(store_path, "cutover", "docs-v2", "--alias", "live", "--gate-metric", "ndcg@10")
    assert refused.exit_code == 1 and "ndcg@10" in refused.stderr and len(refused.stderr.splitlines()) == 1
    _store_evaluation(store_path, "docs", 0.80)
    _store_evaluation(store_path, "docs-v2", 0.75)
    worse = run(store_path, "cutover", "docs-v2", "--alias", "live", "--gate-metric", "ndcg@10")
    assert worse.exit_code == 1 and "worse than allowed" in worse.stderr
    assert run_json(store_path, "alias", "show", "live")["namespace"] == "docs"
    passed = run_json(store_path, "cutover", "docs-v2", "--alias", "live", "--gate-metric", "ndcg@10",
                      "--max-drop", "0.1", "--gate-dataset", "golden")
    assert "ndcg@10" in passed["gate"] and passed["target"] == "docs-v2"
    assert run_json(store_path, "alias", "show", "live")["namespace"] == "docs-v2"


@pytest.mark.parametrize(("args", "code", "expected"), [
    (("cutover", "docs-v2", "--alias", "live", "--max-drop", "0.1"), 2, "--gate-metric"),
    (("cutover", "nothing", "--alias", "live"), 1, "nothing"),
    (("migrate", "list", "--status", "sleeping"), 2, "sleeping"),
    (("migrate", "resume", "mig_0000"), 1, "mig_0000"),
    (("migrate", "validate", "--config", "missing.json"), 2, "missing.json"),
])
def test_bad_arguments_exit_with_one_line(store_path: Path, args: tuple[str, ...], code: int, expected: str):
    result = run(store_path, *args)
    assert result.exit_code == code
    assert expected in result.stderr
    if code == 1:
        assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: ")


def test_cutover_of_an_unfinished_migration_is_refused(store_path: Path, config: str):
    migration_id = run_json(store_path, "migrate", "create", "--config", config)["id"]
    result = run(store_path, "cutover", migration_id, "--alias", "live")
    assert result.exit_code == 1 and "draft" in result.stderr
    assert run_json(store_path, "alias", "show", "live")["namespace"] == "docs"


def _leave_running(store_path: Path, migration_id: str) -> None:
    """Record the migration as running, as a process killed during it leaves it."""
    with vecns.connect(store_path) as store, store._catalog.atomic() as tx:
        mig_db.update(tx, migration_id, status="in_progress")


def test_resume_without_an_id_finishes_the_one_a_killed_process_left(store_path: Path, config: str):
    migration_id = run_json(store_path, "migrate", "create", "--config", config)["id"]
    _leave_running(store_path, migration_id)
    listed = run(store_path, "migrate", "list")
    assert listed.exit_code == 0 and "interrupted" in listed.stdout
    assert f"finish it with 'vecns migrate resume {migration_id}'" in listed.stdout
    resumed = run_json(store_path, "migrate", "resume")
    assert (resumed["id"], resumed["status"], resumed["processed"]) == (migration_id, "completed", SOURCE_COUNT)
    assert "finish it with" not in run(store_path, "migrate", "list").stdout


@pytest.mark.parametrize(("setup", "expected"), [
    ((), "no interrupted, cancelled or failed migration to resume"),
    (("draft",), "draft migrations start with 'vecns migrate start ID'"),
    (("interrupted", "cancelled"), "2 migrations can be resumed"),
], ids=["none", "only-a-draft", "several"])
def test_resume_without_an_id_says_which_exist_when_not_exactly_one(store_path: Path, tmp_path: Path,
                                                                   setup: tuple[str, ...], expected: str):
    created = []
    for number, kind in enumerate(setup):
        path = write_config(tmp_path / f"m{number}.json", body(target_namespace_name=f"docs-v{number + 2}"))
        created.append(run_json(store_path, "migrate", "create", "--config", path)["id"])
        if kind == "interrupted":
            _leave_running(store_path, created[-1])
        elif kind == "cancelled":
            run_json(store_path, "migrate", "cancel", created[-1])
    result = run(store_path, "migrate", "resume")
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: ")
    assert expected in result.stderr and all(m in result.stderr for m in created)
    # Nothing was resumed or changed: the list (newest first) shows the migrations as they were.
    assert [m["status"] for m in run_json(store_path, "migrate", "list")] == list(reversed(setup))
