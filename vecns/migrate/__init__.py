"""Migrations: move a namespace to a new embedding model (re_extract), copy it, or extend it.

``vecns.migrate(store, config)`` validates, creates and runs a migration to its end; ``store.migrations``
gives the finer steps (validate, create, start, status, cancel, resume, list, delete) and
``store.cutover(...)`` moves an alias to the target.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallableModule(types.ModuleType):
    """Lets ``vecns.migrate(store, config)`` run a migration while ``vecns.migrate.config`` stays a module."""

    def __call__(self, store: Any, config: Any, *, progress: Any = None) -> Any:
        from vecns.migrate.manager import migrate

        return migrate(store, config, progress=progress)


sys.modules[__name__].__class__ = _CallableModule
