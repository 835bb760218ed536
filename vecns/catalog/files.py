"""Reading user files (JSONL, Parquet, CSV) with DuckDB, in batches, for ``vecns ingest``.

Each reader uses a private in-memory DuckDB connection, never the store's database. The path reaches DuckDB
as a query parameter, never as SQL text; glob characters in it are escaped so that exactly the named file is
read.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb

from vecns.errors import ValidationError

FILE_FORMATS = ("jsonl", "parquet", "csv")

_READERS = {
    "jsonl": "read_json_auto",
    "parquet": "read_parquet",
    "csv": "read_csv_auto",
}
_EXTENSIONS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
}
_COMPRESSION = (".gz", ".zst")
_GLOB_CHARS = re.compile(r"([\[*?])")


def format_of(path: str | Path) -> str:
    """Guess a file's format from its extension (``.gz`` / ``.zst`` are looked through).

    Args:
        path: The file.

    Returns:
        One of ``FILE_FORMATS``.

    Raises:
        ValidationError: The extension is not one vecns knows.
    """
    suffixes = [s.lower() for s in Path(path).suffixes]
    while suffixes and suffixes[-1] in _COMPRESSION:
        suffixes.pop()
    found = _EXTENSIONS.get(suffixes[-1]) if suffixes else None
    if found is None:
        raise ValidationError(
            f"cannot tell the format of {str(path)!r} from its extension; expected one of "
            f"{', '.join(sorted(_EXTENSIONS))} (optionally .gz or .zst). Name the format explicitly "
            f"({', '.join(FILE_FORMATS)})."
        )
    return found


def _escape_glob(path: str) -> str:
    # DuckDB expands globs in file arguments; a bracketed character matches only itself.
    return _GLOB_CHARS.sub(r"[\1]", path)


class FileRows:
    """The rows of one JSONL, Parquet or CSV file, read by DuckDB. Use as a context manager.

    Args:
        path: The file.
        file_format: ``jsonl``, ``parquet`` or ``csv``.

    Raises:
        ValidationError: The format is unknown, the file is missing, or DuckDB cannot read it.
    """

    def __init__(self, path: str | Path, *, file_format: str) -> None:
        if file_format not in _READERS:
            raise ValidationError(f"file format {file_format!r} is not supported; expected one of {FILE_FORMATS}.")
        self.path = Path(path)
        self.file_format = file_format
        if not self.path.is_file():
            raise ValidationError(f"no file at {str(self.path)!r}; give the path of a {file_format} file.")
        self._sql = f"SELECT * FROM {_READERS[file_format]}(?)"
        self._params = [_escape_glob(str(self.path))]
        self._con = duckdb.connect(":memory:")
        try:
            with self._reading():
                self.columns: list[str] = list(self._con.sql(self._sql, params=self._params).columns)
        except BaseException:
            self._con.close()
            raise

    def __enter__(self) -> FileRows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FileRows({str(self.path)!r}, file_format={self.file_format!r})"

    def _reading(self) -> contextlib.AbstractContextManager[None]:
        return _translated(self.path, self.file_format)

    def count(self) -> int:
        """Number of rows in the file (a full pass for JSONL and CSV; Parquet reads its footer)."""
        with self._reading():
            row = self._con.execute(f"SELECT count(*) FROM {_READERS[self.file_format]}(?)", self._params).fetchall()
        return int(row[0][0]) if row else 0

    def batches(self, batch_size: int) -> Iterator[list[dict[str, Any]]]:
        """Yield the rows in file order, ``batch_size`` at a time, as dicts of plain Python values.

        Memory stays bounded by the batch size: DuckDB streams the result.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValidationError(f"batch_size={batch_size!r} is not allowed; expected an int >= 1.")
        with self._reading():
            reader = self._con.sql(self._sql, params=self._params).to_arrow_reader(batch_size)
        pending: list[dict[str, Any]] = []
        while True:
            with self._reading():
                try:
                    chunk = reader.read_next_batch()
                except StopIteration:
                    break
            pending.extend(chunk.to_pylist())
            # DuckDB may hand back smaller chunks than asked for; regroup them to exactly batch_size.
            while len(pending) >= batch_size:
                yield pending[:batch_size]
                pending = pending[batch_size:]
        if pending:
            yield pending

    def close(self) -> None:
        """Close the private DuckDB connection. Safe to call twice."""
        with contextlib.suppress(duckdb.Error):
            self._con.close()


@contextlib.contextmanager
def _translated(path: Path, file_format: str) -> Iterator[None]:
    """Turn a DuckDB error raised inside the block into a ``ValidationError`` naming the file."""
    try:
        yield
    except duckdb.Error as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValidationError(
            f"cannot read {str(path)!r} as {file_format}: {text}. Check that the file is valid {file_format}, "
            "or name its real format explicitly."
        ) from exc
