"""Migrations: move a namespace's objects into a new namespace, with new models or as they are."""
