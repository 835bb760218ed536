"""Labelled crash points for the kill -9 test suite.

``VECNS_CRASH="label:n"`` (or a comma list such as ``"index_tmp_written:1,after_commit:3"``) makes the
process SIGKILL itself the n-th time ``crashpoint(label)`` runs. Without the variable every call is a
dictionary lookup and nothing else.
"""

from __future__ import annotations

import os
import signal
import threading

from vecns.errors import ConfigError

ENV_VAR = "VECNS_CRASH"

_lock = threading.Lock()
_targets: dict[str, int] | None = None
_hits: dict[str, int] = {}


def _parse(spec: str) -> dict[str, int]:
    targets: dict[str, int] = {}
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        label, sep, count = item.rpartition(":")
        if not sep or not label or not count.isdigit() or int(count) < 1:
            # A typo here would let a crash test pass without ever crashing, so refuse it loudly.
            raise ConfigError(
                f"{ENV_VAR} entry {item!r} is not of the form 'label:n' with n >= 1; "
                f"fix or unset {ENV_VAR} (whole value: {spec!r})"
            )
        targets[label] = int(count)
    return targets


def crashpoint(label: str) -> None:
    """SIGKILL the current process if ``VECNS_CRASH`` asks for it at this hit of ``label``.

    The environment variable is read once, on the first call in the process.

    Args:
        label: Name of the point in the code, e.g. ``"index_tmp_written"``.

    Raises:
        ConfigError: ``VECNS_CRASH`` is set but malformed.
    """
    global _targets
    targets = _targets
    if targets is None:
        with _lock:
            if _targets is None:
                _targets = _parse(os.environ.get(ENV_VAR, ""))
            targets = _targets
    if label not in targets:
        return
    with _lock:
        _hits[label] = _hits.get(label, 0) + 1
        hit = _hits[label]
    if hit == targets[label]:
        os.kill(os.getpid(), signal.SIGKILL)


def _reset_for_tests() -> None:
    """Forget the parsed environment and hit counts, so a test can set ``VECNS_CRASH`` anew."""
    global _targets
    with _lock:
        _targets = None
        _hits.clear()
