"""``vecns demo`` end to end on a small corpus with the real packaged models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

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
    # A second run reuses the ingested namespace and runs the migration again; --reset starts over.
    again = CliRunner().invoke(cli, ["demo", "--path", str(path), "--limit", "120"])
    assert again.exit_code == 0, again.output
    assert "reusing namespace stdlib-l3" in again.output
    assert "ndcg@10" in again.output and "cutover:" in again.output


def test_demo_refuses_to_reset_a_folder_that_is_not_a_store(tmp_path: Path):
    (tmp_path / "precious.txt").write_text("keep me")
    result = CliRunner().invoke(cli, ["demo", "--path", str(tmp_path), "--reset", "--limit", "60"])
    assert result.exit_code == 1 and "refusing to delete" in result.output
    assert (tmp_path / "precious.txt").read_text() == "keep me"
