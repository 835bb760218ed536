"""The child of the migration crash test: migrate a store's ``docs`` into ``docs-b`` and cut ``prod`` over.

One run opens the store and, depending on what it finds:

* no migration: create one from the config, run it, cut over;
* a draft: run it; interrupted, cancelled or failed: resume it (on this thread), then cut over;
* completed: cut over unless ``prod`` names the target already.

``VECNS_CRASH`` makes the run SIGKILL itself at a labelled point (``vecns._crash``). Exit status 0 means
``prod`` names the completed target; 3 means the migration ended otherwise (e.g. cancelled on request).

Importing vecns costs more than a whole resume, so the test starts this script once with ``--serve`` and
it forks one child per run: each line on stdin is a JSON request ``{"store", "config", "log", "crash",
"cancel_after", "report_hits"}``; for each, it answers ``{"pid": ...}`` when the child starts and
``{"pid": ..., "rc": ...}`` when it ends (``rc`` is ``-signal`` for a killed child, as in ``subprocess``).
Nothing has opened a store, started an inference session or hit a crash point before the fork.
``serve`` takes the flow to run, so other crash tests' children (``tests/add_child.py``) reuse it, and
``Forker`` is the test's side of this protocol.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy.ma  # noqa: F401 - imported lazily by a dependency otherwise; paid once here, not per child

import vecns
import vecns.embed  # noqa: F401 - onnxruntime and tokenizers, imported before the fork
import vecns.migrate.cutover  # noqa: F401
from vecns import _crash
from vecns.migrate.manager import RESUMABLE

ALIAS = "prod"
REPO_ROOT = Path(__file__).resolve().parents[1]
CHILD_TIMEOUT = 120.0


def run_once(path: str, config: dict[str, Any], *, cancel_after: int | None = None,
             report_hits: bool = False) -> int:
    """Run the flow once on the store at ``path``; returns the exit status.

    Args:
        path: The store directory.
        config: The migration config used when no migration exists yet.
        cancel_after: Cancel (through the progress callback) once this many objects are processed.
        report_hits: Print ``HITS {label: count}`` for the labels listed in ``VECNS_CRASH``.

    Returns:
        0 when ``prod`` names the completed target, 3 when the migration ended in another state.
    """

    def progress(status: Any) -> bool:
        return cancel_after is None or status.status != "in_progress" or status.processed < cancel_after

    store = vecns.connect(path)
    try:
        found = store.migrations.list()
        migration = found[0] if found else store.migrations.create(config)
        state = migration.status().status
        if state == "draft":
            migration.run(progress=progress)
        elif state in RESUMABLE:
            migration.resume(progress=progress, background=False)
        status = migration.status()
        if status.status != "completed":
            print(f"migration ended {status.status}: {status.error}", flush=True)
            return 3
        if store.aliases.get(ALIAS).namespace_id != store.namespace(status.target).id:
            store.cutover(migration, alias=ALIAS)
    finally:
        store.close()
    if report_hits:
        print("HITS " + json.dumps(dict(_crash._hits), sort_keys=True), flush=True)
    print("DONE", flush=True)
    return 0


def migrate_flow(request: dict[str, Any]) -> int:
    """The migration flow of one request (see the module docstring); returns the exit status."""
    return run_once(request["store"], request["config"], cancel_after=request.get("cancel_after"),
                    report_hits=bool(request.get("report_hits")))


def _child(request: dict[str, Any], flow: Callable[[dict[str, Any]], int]) -> int:
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    if request.get("crash"):
        os.environ[_crash.ENV_VAR] = request["crash"]
    else:
        os.environ.pop(_crash.ENV_VAR, None)
    _crash._reset_for_tests()
    try:
        return flow(request)
    except BaseException:  # noqa: BLE001 - the test reads the traceback from the log
        traceback.print_exc()
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def serve(flow: Callable[[dict[str, Any]], int] = migrate_flow) -> None:
    """Fork one child per request line on stdin, run ``flow`` in it, report its pid and exit status on stdout.

    Args:
        flow: Runs one request in the child (its ``log`` file takes stdout and stderr) and returns the exit
            status.
    """
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            os._exit(_child(request, flow))
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(json.dumps({"pid": pid, "rc": rc}), flush=True)


class Forker:
    """The test's side of ``serve``: starts ``script --serve`` once, runs one forked child per request.

    Args:
        script: A script whose ``--serve`` calls ``serve`` with its flow.
    """

    def __init__(self, script: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k != _crash.ENV_VAR}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        self._proc = subprocess.Popen([sys.executable, str(script), "--serve"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, env=env, cwd=REPO_ROOT, bufsize=0)
        self._buffer = b""

    def close(self) -> None:
        """Stop the server (it exits when its stdin closes)."""
        self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc.stdout.close()

    def _read(self, timeout: float) -> dict[str, Any] | None:
        # Our own buffer, so that select() never waits on a line already read from the pipe.
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            ready, _, _ = select.select([self._proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                return None
            chunk = os.read(self._proc.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"the crash child server exited (rc {self._proc.poll()})")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def run(self, request: dict[str, Any], *, kill_after: float | None = None) -> tuple[int, float]:
        """Run one child on ``request`` (with a ``log`` path); returns (exit status, seconds).

        Args:
            request: The flow's request; ``crash`` sets ``VECNS_CRASH`` in the child.
            kill_after: SIGKILL the child after this many seconds unless it ended before.

        Returns:
            The exit status (``-9`` for a killed child) and the child's wall time.
        """
        start = time.perf_counter()
        self._proc.stdin.write(json.dumps(request).encode() + b"\n")
        pid = self._read(CHILD_TIMEOUT)["pid"]
        if kill_after is not None:
            done = self._read(kill_after)
            if done is not None:
                return done["rc"], time.perf_counter() - start
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        done = self._read(CHILD_TIMEOUT)
        if done is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._read(CHILD_TIMEOUT)
            log = Path(request["log"])
            raise AssertionError(f"the child ran past {CHILD_TIMEOUT:.0f} s:\n{log.read_text()[-3000:]}")
        return done["rc"], time.perf_counter() - start


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        sys.exit(run_once(sys.argv[1], json.loads(sys.argv[2])))
