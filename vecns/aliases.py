"""Aliases: names that point at a namespace. Applications read through one; cutover moves it atomically."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vecns.catalog import records
from vecns.errors import AliasNotFoundError, InvalidNameError, ValidationError
from vecns.validation import check_name

if TYPE_CHECKING:
    from vecns.namespace import Namespace
    from vecns.store import Store


@dataclass(frozen=True)
class AliasInfo:
    """An alias, the namespace it names, and the one it named before (for rollback)."""

    name: str
    namespace: str
    namespace_id: str
    previous_namespace_id: str | None
    updated_at: dt.datetime

    def __repr__(self) -> str:
        return f"AliasInfo({self.name!r} -> {self.namespace!r})"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return {"name": self.name, "namespace": self.namespace, "namespace_id": self.namespace_id,
                "previous_namespace_id": self.previous_namespace_id, "updated_at": self.updated_at.isoformat()}


class Aliases:
    """The aliases of one store: ``store.aliases``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def set(self, alias: str, namespace: str | Namespace) -> AliasInfo:
        """Point ``alias`` at a namespace (by name, id, handle or another alias), in one transaction.

        The namespace it named before is remembered, so ``rollback`` can move it back.

        Raises:
            InvalidNameError: The alias name is not allowed, or a namespace has that name.
            NamespaceNotFoundError: The target does not exist.
        """
        check_name("alias", alias)
        catalog = self._store._catalog
        with catalog.atomic() as tx:
            if records.find_namespace(catalog, name=alias) is not None:
                raise InvalidNameError(
                    f"alias {alias!r} would hide the namespace of the same name; pick another alias name."
                )
            target = self._store._record(namespace)
            current = records.get_alias(catalog, alias)
            previous = current[0] if current and current[0] != target.id else (current[1] if current else None)
            records.put_alias(tx, alias, target.id, previous)
        return self.get(alias)

    def get(self, alias: str) -> AliasInfo:
        """Describe an alias.

        Raises:
            AliasNotFoundError: No alias has this name.
        """
        for info in self.list():
            if info.name == alias:
                return info
        known = ", ".join(a.name for a in self.list()) or "(none)"
        raise AliasNotFoundError(f"no alias {alias!r}; known aliases: {known}.")

    def list(self) -> list[AliasInfo]:
        """Every alias, sorted by name."""
        names = {r.id: r.name for r in records.list_namespaces(self._store._catalog)}
        return [AliasInfo(name, names.get(ns_id, "?"), ns_id, prev, at)
                for name, ns_id, prev, at in records.list_aliases(self._store._catalog)]

    def delete(self, alias: str) -> None:
        """Remove an alias (the namespace stays)."""
        self.get(alias)
        with self._store._catalog.atomic() as tx:
            records.delete_alias(tx, alias)

    def rollback(self, alias: str) -> AliasInfo:
        """Move an alias back to the namespace it named before its last move, in one transaction.

        Raises:
            AliasNotFoundError: No alias has this name.
            ValidationError: The alias has no earlier namespace, or that namespace was dropped.
        """
        catalog = self._store._catalog
        with catalog.atomic() as tx:
            current = records.get_alias(catalog, alias)
            if current is None:
                raise AliasNotFoundError(f"no alias {alias!r} to roll back.")
            now_id, previous = current
            if previous is None or records.find_namespace(catalog, ns_id=previous) is None:
                raise ValidationError(
                    f"alias {alias!r} has no earlier namespace to roll back to (it was never moved, or the "
                    "earlier namespace was dropped). Use aliases.set() to point it somewhere."
                )
            records.put_alias(tx, alias, previous, now_id)
        return self.get(alias)
