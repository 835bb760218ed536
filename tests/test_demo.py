"""``vecns demo`` end to end on a small corpus with the real packaged models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import vecns
from vecns.catalog import migrations as mig_db
from vecns.cli import cli
from vecns.models import builtin_specs

pytestmark = [pytest.mark.models, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _models():
    missing = [m for m, spec in builtin_specs().items() if not spec.is_installed()]
    if missing:
        pytest.skip(f"packaged models {missing} are not installed (pip install -e '.[models]')")


def test_demo_runs_migrates_while_writing_evaluates_and_cuts_over(tmp_path: Path):
    path = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["--json", "demo", "--path", str(path), "--limit", "120"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["migration"]["status"] == "completed" and data["migration"]["processed"] == 120
    assert set(data["metrics"]) == {"stdlib-l3", "stdlib-l6"}
    assert all("ndcg@10" in m for m in data["metrics"].values())
    assert data["live_writes_arrived"] and sum(data["live_writes"].values()) >= 9
    assert data["cutover"].startswith(("prod -> stdlib-l6", "refused"))
    assert data["hits"] and data["validation"]["valid"]
    # What runs stopped by kill -9 leave: a source short of documents with no alias yet (during ingest), a
    # migration recorded as running (during the migration). A re-run adds the missing documents (those and
    # the 3 the live writes deleted) and names the migration with the command that would finish it.
    with vecns.connect(path) as store:
        source = store.namespace("stdlib-l3")
        source.delete(sorted(o.id for o in source if not o.id.startswith("demo-note-"))[:10])
        store.aliases.delete("prod")
        migration_id = data["migration"]["id"]
        with store._catalog.atomic() as tx:
            mig_db.update(tx, migration_id, status="in_progress")
    again = CliRunner().invoke(cli, ["demo", "--path", str(path), "--limit", "120"])
    assert again.exit_code == 0, again.output
    output = " ".join(again.output.split())
    assert "reusing namespace stdlib-l3 (110 objects, adding the 13 docstrings it lacks)" in output
    assert f"left migration {migration_id} interrupted at 120/120 objects" in output
    assert f"'vecns --store {path} migrate resume {migration_id}'" in output
    assert "ndcg@10" in output and "cutover:" in output and "arrived in the target" in output
    assert "better," in output and "top-10 overlap" in output  # the comparison beside the metric table
    assert f"what to try next: vecns --store {path} search prod" in output
    with vecns.connect(path, read_only=True) as store:
        assert [m.id for m in store.migrations.list()] != [migration_id]
        assert store.aliases.get("prod").namespace in ("stdlib-l3", "stdlib-l6")


def test_demo_refuses_to_reset_a_folder_that_is_not_a_store(tmp_path: Path):
    (tmp_path / "precious.txt").write_text("keep me")
    result = CliRunner().invoke(cli, ["demo", "--path", str(tmp_path), "--reset", "--limit", "60"])
    assert result.exit_code == 1 and "refusing to delete" in result.output
    assert (tmp_path / "precious.txt").read_text() == "keep me"
