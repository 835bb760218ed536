"""Structured filters compiled to parameterised SQL.

A filter is plain data (the same dict for search and for migration configs)::

    {"collection_ids": ["faq", "docs"],
     "ids": ["doc-1", "doc-2"],
     "date_range": {"after": "2025-01-01", "before": "2025-06-01T12:00:00Z", "field": "created_at"},
     "metadata": {"lang": "en",
                  "year": {"$gte": 2020, "$lt": 2024},
                  "tag": {"$in": ["a", "b"]},
                  "a.b": 1,
                  "$or": [{"lang": "de"}, {"draft": {"$exists": False}}]}}

Top-level keys and the operators of one key combine with AND. No caller string ever becomes SQL text:
values, JSON paths and lists are all bound as parameters, because DuckDB's ``execute`` runs stacked
statements. The SQL refers only to the columns of a namespace's objects table: ``key``, ``id``,
``collection``, ``text``, ``metadata``, ``created_at``, ``updated_at`` and ``seq``.

Metadata semantics: numbers compare numerically, strings as strings, booleans as JSON booleans, and values
of different JSON types never match (``1`` does not equal ``"1"``, ``True`` does not equal ``1``). ``None``
(as ``$eq``) matches a JSON null or a missing key; ``$ne`` and ``$nin`` also match missing keys; ``$exists``
is true for any present key, a JSON null included. A JSON array or object never equals a scalar.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vecns.errors import FilterError

__all__ = ["MAX_DEPTH", "MAX_IN", "MAX_TERMS", "CompiledFilter", "compile_filters", "normalize_filters"]

MAX_IN = 10_000
"""Most values one ``$in``/``$nin``, ``collection_ids`` or ``ids`` list may hold."""

MAX_DEPTH = 32
"""Most ``$or`` levels that may nest inside one another."""

MAX_TERMS = 1_000
"""Most metadata conditions (operators, counted through every ``$or``) one filter may hold."""

_TOP_KEYS = ("collection_ids", "date_range", "ids", "metadata")
_DATE_KEYS = ("after", "before", "field")
_DATE_FIELDS = ("created_at", "updated_at")
_RANGE_OPS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists")
_KEY_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}(\.[A-Za-z0-9_][A-Za-z0-9_-]{0,63})*")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_DATE_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?(Z|z|[+-]\d{2}:?\d{2})?)?",
    re.ASCII,
)
# Numbers are compared as DOUBLE; below 2**53 every integer is exact there, so no comparison can round.
_MAX_EXACT_INT = 2**53 - 1
_NUMBER_TYPES = "('BIGINT', 'UBIGINT', 'DOUBLE')"

_EXAMPLE = '{"metadata": {"lang": "en", "year": {"$gte": 2020}}}'


@dataclass(frozen=True)
class CompiledFilter:
    """A filter as a SQL boolean expression plus the values for its placeholders.

    Attributes:
        where: SQL expression over the objects table's columns with ``?`` placeholders; ``"TRUE"`` when
            the filter is empty. It never contains caller-supplied text.
        params: Values for the placeholders, in order. A list value is bound as a DuckDB list.
    """

    where: str
    params: tuple

    def to_dict(self) -> dict:
        """Return the filter as plain JSON-ready data.

        Returns:
            ``{"where": str, "params": list}``.
        """
        return {"where": self.where, "params": list(self.params)}

    def __repr__(self) -> str:
        where = self.where if len(self.where) <= 80 else self.where[:77] + "..."
        return f"CompiledFilter(where={where!r}, params=<{len(self.params)} values>)"


def normalize_filters(filters: Mapping[str, Any] | None) -> dict | None:
    """Validate a filter and return its canonical form.

    The canonical form has sorted keys, sorted de-duplicated lists, equality shorthand expanded to
    ``{"$eq": value}``, integral floats written as ints, dates as ISO 8601 UTC strings (``...Z``) and the
    date field always named. Two filters that select the same rows by the same rules normalise to the same
    JSON text, so the result can be stored and fingerprinted; compare ``json.dumps(..., sort_keys=True)``
    rather than the dicts, since in Python ``1 == True``. Normalising twice changes nothing.

    Args:
        filters: The filter dict, or None.

    Returns:
        The canonical dict, or None when ``filters`` is None or holds no condition.

    Raises:
        FilterError: On an unknown key or operator, a value of the wrong type, a bad name or date, a list
            longer than ``MAX_IN``, ``$or`` nested deeper than ``MAX_DEPTH``, or more than ``MAX_TERMS``
            metadata conditions.
    """
    if filters is None:
        return None
    if not isinstance(filters, Mapping):
        raise FilterError(f"filters must be a dict; got {type(filters).__name__}. Example: {_EXAMPLE}")
    unknown = sorted(str(key) for key in filters if key not in _TOP_KEYS)
    if unknown:
        hint = " ($or goes inside metadata)" if unknown[0] == "$or" else ""
        raise FilterError(
            f"unknown filter key {unknown[0]!r}{hint}; allowed keys are {', '.join(_TOP_KEYS)}. "
            f"Example: {_EXAMPLE}"
        )
    result: dict[str, Any] = {}
    if "collection_ids" in filters:
        result["collection_ids"] = _normalize_names("collection_ids", filters["collection_ids"], _NAME_RE)
    if "date_range" in filters:
        result["date_range"] = _normalize_date_range(filters["date_range"])
    if "ids" in filters:
        result["ids"] = _normalize_names("ids", filters["ids"], None)
    if "metadata" in filters:
        metadata = _normalize_metadata(filters["metadata"], depth=0)
        terms = _count_terms(metadata)
        if terms > MAX_TERMS:
            raise FilterError(
                f"metadata filter holds {terms} conditions; at most {MAX_TERMS} are allowed. "
                "Split the query, or use one $in list instead of many $eq conditions."
            )
        if metadata:
            result["metadata"] = metadata
    return result or None


def compile_filters(filters: Mapping[str, Any] | None) -> CompiledFilter:
    """Compile a filter into a parameterised SQL boolean expression.

    Args:
        filters: The filter dict (raw or already normalised), or None.

    Returns:
        The compiled filter; ``where`` is ``"TRUE"`` when there is no condition.

    Raises:
        FilterError: When the filter is invalid (see ``normalize_filters``).
    """
    canonical = normalize_filters(filters)
    if canonical is None:
        return CompiledFilter(where="TRUE", params=())
    parts: list[str] = []
    params: list[Any] = []
    if "collection_ids" in canonical:
        _add(parts, params, _list_match("collection", "VARCHAR", canonical["collection_ids"]))
    if "ids" in canonical:
        _add(parts, params, _list_match("id", "VARCHAR", canonical["ids"]))
    if "date_range" in canonical:
        date_range = canonical["date_range"]
        column = date_range["field"]  # one of _DATE_FIELDS: validated, never caller text
        if "after" in date_range:
            _add(parts, params, (f"{column} >= CAST(? AS TIMESTAMPTZ)", [date_range["after"]]))
        if "before" in date_range:
            _add(parts, params, (f"{column} < CAST(? AS TIMESTAMPTZ)", [date_range["before"]]))
    if "metadata" in canonical:
        _add(parts, params, _compile_metadata(canonical["metadata"]))
    return CompiledFilter(where=" AND ".join(parts), params=tuple(params))


# --- validation -------------------------------------------------------------------------------------------


def _normalize_names(field: str, value: Any, pattern: re.Pattern[str] | None) -> list[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise FilterError(
            f"{field} must be a list of strings; got {type(value).__name__} {_show(value)}. "
            f'Example: {{"{field}": ["faq", "docs"]}}'
        )
    if len(value) > MAX_IN:
        raise FilterError(
            f"{field} holds {len(value)} values; at most {MAX_IN} are allowed. Split the query into batches."
        )
    for item in value:
        if not isinstance(item, str):
            raise FilterError(
                f"{field} must hold only strings; got {type(item).__name__} {_show(item)}. "
                f'Example: {{"{field}": ["faq", "docs"]}}'
            )
        _check_text(field, item)
        if pattern is not None and not pattern.fullmatch(item):
            raise FilterError(
                f"{field} value {_show(item)} is not a valid name; names are 1-128 characters of letters, "
                "digits, '_', '.' and '-', starting with a letter or digit. Example: \"faq-2025\""
            )
    return sorted(set(value))


def _normalize_date_range(value: Any) -> dict[str, str]:
    example = 'Example: {"date_range": {"after": "2025-01-01", "before": "2025-06-01T12:00:00Z"}}'
    if not isinstance(value, Mapping):
        raise FilterError(f"date_range must be a dict; got {type(value).__name__} {_show(value)}. {example}")
    unknown = sorted(str(key) for key in value if key not in _DATE_KEYS)
    if unknown:
        raise FilterError(
            f"unknown date_range key {unknown[0]!r}; allowed keys are after, before, field. {example}"
        )
    if "after" not in value and "before" not in value:
        raise FilterError(f"date_range needs 'after', 'before' or both; got neither. {example}")
    field = value.get("field", "created_at")
    if field not in _DATE_FIELDS:
        raise FilterError(
            f"date_range field {_show(field)} is not allowed; use 'created_at' (the default) or "
            f"'updated_at'. {example}"
        )
    result: dict[str, Any] = {"field": field}
    bounds: dict[str, dt.datetime] = {}
    for key in ("after", "before"):
        if key in value:
            bounds[key] = _parse_datetime(key, value[key], example)
            result[key] = _format_datetime(bounds[key])
    if len(bounds) == 2 and bounds["after"] >= bounds["before"]:
        raise FilterError(
            f"date_range after={result['after']} is not earlier than before={result['before']}, so it "
            f"selects nothing; 'after' is inclusive and 'before' exclusive. {example}"
        )
    return {key: result[key] for key in sorted(result)}


def _parse_datetime(key: str, value: Any, example: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, dt.date):
        parsed = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            parsed = _parse_iso(value)
        except ValueError as exc:
            raise FilterError(
                f"date_range {key}={_show(value)} is not an ISO 8601 date or datetime "
                f"(YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS[.ffffff]][Z|+HH:MM]). {example}"
            ) from exc
    else:
        raise FilterError(
            f"date_range {key} must be an ISO 8601 string, a datetime or a date; got "
            f"{type(value).__name__} {_show(value)}. {example}"
        )
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return parsed.replace(tzinfo=dt.timezone.utc)
    try:
        return parsed.astimezone(dt.timezone.utc)
    except OverflowError as exc:
        raise FilterError(
            f"date_range {key}={_show(value)} falls outside years 1-9999 once converted to UTC. {example}"
        ) from exc


def _parse_iso(text: str) -> dt.datetime:
    # Parsed here rather than by fromisoformat, whose accepted forms differ between Python 3.10 and 3.11.
    match = _DATE_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not ISO 8601: {text!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    tzinfo = None
    if zone is not None and zone.upper() == "Z":
        tzinfo = dt.timezone.utc
    elif zone is not None:
        sign = -1 if zone[0] == "-" else 1
        offset = dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[-2:]))
        tzinfo = dt.timezone(sign * offset)
    return dt.datetime(
        int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
        int((fraction or "0").ljust(6, "0")), tzinfo=tzinfo,
    )


def _format_datetime(value: dt.datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _normalize_metadata(value: Any, *, depth: int) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise FilterError(
            f"metadata filter must be a dict; got {type(value).__name__} {_show(value)}. Example: {_EXAMPLE}"
        )
    result: dict[str, Any] = {}
    for key in sorted(value, key=str):
        if key == "$or":
            result["$or"] = _normalize_or(value[key], depth=depth + 1)
            continue
        if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
            hint = " ($or is the only operator allowed here)" if str(key).startswith("$") else ""
            raise FilterError(
                f"metadata key {_show(key)} is not allowed{hint}; keys are dot-separated parts of 1-64 "
                "letters, digits, '_' and '-' (a dot reaches into a nested object). "
                'Example: {"metadata": {"author.name": "Ada"}}'
            )
        result[key] = _normalize_conditions(key, value[key])
    return result


def _normalize_or(value: Any, *, depth: int) -> list[dict[str, Any]]:
    if depth > MAX_DEPTH:
        raise FilterError(
            f"metadata $or is nested more than {MAX_DEPTH} levels deep; flatten the filter "
            '(A or (B or C) is A or B or C). Example: {"$or": [{"lang": "en"}, {"lang": "de"}]}'
        )
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value:
        raise FilterError(
            f"metadata $or must be a non-empty list of metadata filters; got {_show(value)}. "
            'Example: {"$or": [{"lang": "en"}, {"year": {"$gte": 2020}}]}'
        )
    if len(value) > MAX_IN:
        raise FilterError(f"metadata $or holds {len(value)} branches; at most {MAX_IN} are allowed.")
    branches = {_dumps(branch): branch for branch in (_normalize_metadata(b, depth=depth) for b in value)}
    return [branches[text] for text in sorted(branches)]


def _normalize_conditions(key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        if isinstance(value, (list, tuple)):
            raise FilterError(
                f"metadata {key!r}: a list is not a value to compare with; to match any of several "
                f'values use $in. Example: {{"{key}": {{"$in": ["a", "b"]}}}}'
            )
        return {"$eq": _normalize_scalar(key, "$eq", value)}
    if not value:
        raise FilterError(
            f"metadata {key!r}: the operator dict is empty; give at least one of {', '.join(_OPERATORS)}. "
            f'Example: {{"{key}": {{"$gte": 2020}}}}'
        )
    result: dict[str, Any] = {}
    for op in sorted(value, key=str):
        operand = value[op]
        if op not in _OPERATORS:
            nested = "" if str(op).startswith("$") else (
                f" (a dict is not a value; to reach the nested field use the dotted key '{key}.{op}')"
            )
            raise FilterError(
                f"metadata {key!r}: unknown operator {_show(op)}{nested}; allowed operators are "
                f'{", ".join(_OPERATORS)}. Example: {{"{key}": {{"$gte": 2020, "$lt": 2024}}}}'
            )
        if op == "$exists":
            if not isinstance(operand, bool):
                raise FilterError(
                    f"metadata {key!r}: $exists takes true or false; got {_show(operand)}. "
                    f'Example: {{"{key}": {{"$exists": true}}}}'
                )
            result[op] = operand
        elif op in ("$in", "$nin"):
            result[op] = _normalize_list(key, op, operand)
        else:
            scalar = _normalize_scalar(key, op, operand)
            if op in _RANGE_OPS and (scalar is None or isinstance(scalar, bool)):
                raise FilterError(
                    f"metadata {key!r}: {op} compares numbers or strings; got {_show(operand)}. "
                    f'Example: {{"{key}": {{"{op}": 2020}}}}'
                )
            result[op] = scalar
    return result


def _normalize_list(key: str, op: str, value: Any) -> list[Any]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise FilterError(
            f"metadata {key!r}: {op} takes a list of values; got {type(value).__name__} {_show(value)}. "
            f'Example: {{"{key}": {{"{op}": ["a", "b"]}}}}'
        )
    if len(value) > MAX_IN:
        raise FilterError(
            f"metadata {key!r}: {op} holds {len(value)} values; at most {MAX_IN} are allowed. "
            "Split the query into batches."
        )
    unique = {_sort_key(s): s for s in (_normalize_scalar(key, op, item) for item in value)}
    return [unique[k] for k in sorted(unique)]


def _normalize_scalar(key: str, op: str, value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        _check_text(f"metadata {key!r}", value)
        return value
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise FilterError(
                f"metadata {key!r}: {op} got {value!r}; only finite numbers can be compared. "
                f'Example: {{"{key}": {{"{op}": 1.5}}}}'
            )
        if isinstance(value, float):
            return int(value) if value.is_integer() and abs(value) <= _MAX_EXACT_INT else value
        if abs(value) > _MAX_EXACT_INT:
            raise FilterError(
                f"metadata {key!r}: {op} got the integer {value!r}, beyond +/-{_MAX_EXACT_INT} where "
                "numbers stop comparing exactly. Store such values as strings and filter on the string."
            )
        return int(value)
    raise FilterError(
        f"metadata {key!r}: {op} got {type(value).__name__} {_show(value)}; values are strings, numbers, "
        f'booleans or null (and dicts only of operators). Example: {{"{key}": "en"}}'
    )


def _check_text(where: str, value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise FilterError(
            f"{where}: value {_show(value)} is not valid Unicode (it holds a lone surrogate); "
            "pass a properly decoded string."
        ) from exc


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, value)
    if isinstance(value, (int, float)):
        return (2, value)
    return (3, value)


def _count_terms(metadata: Mapping[str, Any]) -> int:
    total = 0
    for key, conditions in metadata.items():
        if key == "$or":
            total += sum(_count_terms(branch) for branch in conditions)
        else:
            total += len(conditions)
    return total


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- SQL --------------------------------------------------------------------------------------------------

_Fragment = tuple[str, list[Any]]


def _add(parts: list[str], params: list[Any], fragment: _Fragment) -> None:
    parts.append(fragment[0])
    params.extend(fragment[1])


def _list_match(column: str, sql_type: str, values: list[Any]) -> _Fragment:
    if not values:
        return ("FALSE", [])
    return (f"COALESCE({column} = ANY(?::{sql_type}[]), FALSE)", [values])


def _json_path(key: str) -> str:
    # The key pattern admits no quote, so every part can be quoted as is; the path is still a parameter.
    return "$." + ".".join(f'"{part}"' for part in key.split("."))


def _compile_metadata(metadata: Mapping[str, Any]) -> _Fragment:
    parts: list[str] = []
    params: list[Any] = []
    for key, conditions in metadata.items():
        if key == "$or":
            branches = [_compile_metadata(branch) for branch in conditions]
            parts.append("(" + " OR ".join(sql for sql, _ in branches) + ")")
            for _, branch_params in branches:
                params.extend(branch_params)
            continue
        path = _json_path(key)
        for op, operand in conditions.items():
            _add(parts, params, _compile_condition(path, op, operand))
    if not parts:
        return ("TRUE", [])
    if len(parts) == 1:
        return parts[0], params
    return "(" + " AND ".join(parts) + ")", params


def _compile_condition(path: str, op: str, operand: Any) -> _Fragment:
    if op == "$eq":
        return _equals(path, operand)
    if op == "$ne":
        sql, params = _equals(path, operand)
        return f"NOT {sql}", params
    if op == "$in":
        return _one_of(path, operand)
    if op == "$nin":
        sql, params = _one_of(path, operand)
        return f"NOT {sql}", params
    if op == "$exists":
        test = "IS NOT NULL" if operand else "IS NULL"
        return f"(json_type(metadata, ?) {test})", [path]
    return _typed_compare(path, _RANGE_OPS[op], operand)


def _equals(path: str, value: Any) -> _Fragment:
    if value is None:
        return "(COALESCE(json_type(metadata, ?), 'NULL') = 'NULL')", [path]
    return _typed_compare(path, "=", value)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, (int, float)) else "str"


# Per kind of value: the json_type test, the SQL reading the stored value, its SQL type, the bound value.
_STORED_TEXT = "json_extract_string(metadata, ?)"
_KINDS: dict[str, tuple[str, str, str, Any]] = {
    "bool": ("= 'BOOLEAN'", _STORED_TEXT, "VARCHAR", lambda v: "true" if v else "false"),
    "number": (f"IN {_NUMBER_TYPES}", f"TRY_CAST({_STORED_TEXT} AS DOUBLE)", "DOUBLE", float),
    "str": ("= 'VARCHAR'", _STORED_TEXT, "VARCHAR", str),
}


def _typed_compare(path: str, sql_op: str, value: Any) -> _Fragment:
    # Every fragment is two-valued (never NULL) so that NOT, used by $ne and $nin, stays a true negation.
    type_test, stored, _, bind = _KINDS[_kind(value)]
    return (
        f"COALESCE(json_type(metadata, ?) {type_test} AND {stored} {sql_op} ?, FALSE)",
        [path, path, bind(value)],
    )


def _one_of(path: str, values: list[Any]) -> _Fragment:
    fragments: list[_Fragment] = []
    if any(value is None for value in values):
        fragments.append(_equals(path, None))
    for kind, (type_test, stored, sql_type, bind) in _KINDS.items():
        group = [bind(v) for v in values if v is not None and _kind(v) == kind]
        if group:
            fragments.append((
                f"COALESCE(json_type(metadata, ?) {type_test} AND {stored} = ANY(?::{sql_type}[]), FALSE)",
                [path, path, group],
            ))
    if not fragments:
        return ("FALSE", [])
    if len(fragments) == 1:
        return fragments[0]
    params = [param for _, fragment_params in fragments for param in fragment_params]
    return "(" + " OR ".join(sql for sql, _ in fragments) + ")", params
