"""The catalog: every DuckDB table vecns keeps (the source of truth), and the only DuckDB code."""

from vecns.catalog.connection import SCHEMA_VERSION, Catalog, duckdb_version
from vecns.catalog.records import Feature, IndexFileRecord, NamespaceRecord

__all__ = ["SCHEMA_VERSION", "Catalog", "Feature", "IndexFileRecord", "NamespaceRecord", "duckdb_version"]
