"""Filters: compiled SQL run in DuckDB against a pure-Python reference, injection, refusals."""

from __future__ import annotations

import datetime as dt
import json
import math
import operator
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vecns.errors import FilterError, ValidationError
from vecns.filters import (
    MAX_DEPTH,
    MAX_IN,
    MAX_TERMS,
    CompiledFilter,
    compile_filters,
    normalize_filters,
)

UTC = dt.timezone.utc
BASE = dt.datetime(2024, 11, 1, 6, 30, tzinfo=UTC)
INJECTIONS = ["O'Brien", "x'; DROP TABLE objects; --", "/* */", "$.a') OR 1=1 --", 'say "hi"', "\\'; --"]
LANGS = ["en", "de", "fr", "1", *INJECTIONS]
COLLECTIONS = ["faq", "docs", "a.b-c", None]


def _metadata(i: int) -> dict[str, Any] | None:
    if i % 17 == 0:
        return None
    if i % 13 == 0:
        return {}
    meta: dict[str, Any] = {"lang": LANGS[i % len(LANGS)], "year": 2018 + i % 8, "flag": i % 3 == 0}
    meta["score"] = [0.5, 1.0, 2.5, -1.5, 3][i % 5]
    if i % 4 == 0:
        meta["tag"] = ["a", "b"][i % 2]
    elif i % 4 == 1:
        meta["tag"] = ["a", "b", 1]
    elif i % 4 == 2:
        meta["tag"] = i % 5
    if i % 6 == 0:
        meta["n"] = None
    elif i % 6 == 1:
        meta["n"] = True
    meta["a"] = [{"b": i % 3}, {"b": str(i % 3)}, {"c": 1}, 7][i % 4]
    meta["x-y"] = [1, "1", 1.0, False, None][i % 5]
    meta["s1"] = "1" if i % 2 else 1
    return meta


ROWS = [
    {
        "key": i,
        "id": f"doc-{i}" if i % 9 else f"O'Brien-{i}",
        "collection": COLLECTIONS[i % len(COLLECTIONS)],
        "text": f"text {i}",
        "metadata": _metadata(i),
        "created_at": BASE + dt.timedelta(days=9 * i, hours=i),
        "updated_at": BASE + dt.timedelta(days=9 * i + i % 5, minutes=i),
        "seq": i,
    }
    for i in range(52)
]
DATES = [BASE + dt.timedelta(days=d) for d in (-5, 0, 30, 101, 200, 250.5, 333, 400, 470, 600)]
KEYS = ["lang", "year", "score", "flag", "tag", "n", "a", "a.b", "a.c", "x-y", "s1", "missing", "lang.x"]
SCALARS = [None, True, False, 0, 1, 2, 5, 7, 2019, 2020, 2022, 2024, 0.5, 1.0, 2.5, -1.5, "a", "b", *LANGS]


@pytest.fixture(scope="module")
def con():
    connection = duckdb.connect()
    # A non-UTC session zone proves that date bounds do not depend on it.
    connection.execute("SET TimeZone = 'America/New_York'")
    connection.execute(
        "CREATE TABLE objects (key BIGINT, id VARCHAR, collection VARCHAR, text VARCHAR, metadata JSON, "
        "created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ, seq BIGINT)"
    )
    connection.executemany(
        "INSERT INTO objects VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            [r["key"], r["id"], r["collection"], r["text"],
             None if r["metadata"] is None else json.dumps(r["metadata"]),
             r["created_at"], r["updated_at"], r["seq"]]
            for r in ROWS
        ],
    )
    yield connection
    connection.close()


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _run(con, filters) -> list[int]:
    compiled = compile_filters(filters)
    return [row[0] for row in con.execute(f"SELECT key FROM objects WHERE {compiled.where} ORDER BY key",
                                          list(compiled.params)).fetchall()]


# --- the reference evaluator: plain Python over the raw filter ----------------------------------------------

MISSING = object()
RANGE = {"$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def _lookup(meta: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(meta, dict) or part not in meta:
            return MISSING
        meta = meta[part]
    return meta


def _equal(stored: Any, value: Any) -> bool:
    if value is None:
        return stored is MISSING or stored is None
    return stored is not MISSING and _kind(stored) == _kind(value) and stored == value


def _condition(stored: Any, op: str, value: Any) -> bool:
    if op == "$eq":
        return _equal(stored, value)
    if op == "$ne":
        return not _equal(stored, value)
    if op == "$in":
        return any(_equal(stored, v) for v in value)
    if op == "$nin":
        return not any(_equal(stored, v) for v in value)
    if op == "$exists":
        return (stored is not MISSING) == value
    return stored is not MISSING and _kind(stored) == _kind(value) and RANGE[op](stored, value)


def _metadata_matches(meta: Any, spec: dict[str, Any]) -> bool:
    for key, cond in spec.items():
        if key == "$or":
            if not any(_metadata_matches(meta, branch) for branch in cond):
                return False
            continue
        stored = _lookup(meta, key)
        conditions = cond if isinstance(cond, dict) else {"$eq": cond}
        if not all(_condition(stored, op, value) for op, value in conditions.items()):
            return False
    return True


def _utc(value: Any) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    elif not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _reference(filters: dict[str, Any] | None) -> list[int]:
    filters = filters or {}
    selected = []
    for row in ROWS:
        if "collection_ids" in filters and row["collection"] not in filters["collection_ids"]:
            continue
        if "ids" in filters and row["id"] not in filters["ids"]:
            continue
        if "date_range" in filters:
            date_range = filters["date_range"]
            at = row[date_range.get("field", "created_at")]
            if "after" in date_range and at < _utc(date_range["after"]):
                continue
            if "before" in date_range and at >= _utc(date_range["before"]):
                continue
        if "metadata" in filters and not _metadata_matches(row["metadata"], filters["metadata"]):
            continue
        selected.append(row["key"])
    return selected


# --- semantics ----------------------------------------------------------------------------------------------

CASES = [
    None,
    {},
    {"metadata": {}},
    {"collection_ids": ["faq", "docs"]},
    {"collection_ids": []},
    {"collection_ids": ["a.b-c", "nope"]},
    {"ids": ["doc-1", "doc-2", "O'Brien-9", "absent"]},
    {"ids": []},
    {"date_range": {"after": "2025-01-01"}},
    {"date_range": {"before": "2025-06-01T12:00:00Z"}},
    {"date_range": {"after": "2025-01-01", "before": "2025-06-01T12:00:00Z", "field": "created_at"}},
    {"date_range": {"after": dt.date(2025, 2, 1), "field": "updated_at"}},
    {"date_range": {"after": dt.datetime(2025, 2, 1, 5), "before": dt.datetime(2025, 9, 1, tzinfo=UTC)}},
    {"date_range": {"after": "2025-02-01T01:00:00+05:30", "before": "2025-03-01T00:00:00-08:00"}},
    {"metadata": {"lang": "en"}},
    {"metadata": {"lang": {"$ne": "en"}}},
    {"metadata": {"year": {"$gte": 2020, "$lt": 2024}}},
    {"metadata": {"score": {"$gt": 0.5}}},
    {"metadata": {"score": 1}},
    {"metadata": {"score": 1.0}},
    {"metadata": {"flag": True}},
    {"metadata": {"flag": False}},
    {"metadata": {"x-y": 1}},
    {"metadata": {"x-y": "1"}},
    {"metadata": {"x-y": True}},
    {"metadata": {"x-y": False}},
    {"metadata": {"x-y": 0}},
    {"metadata": {"x-y": None}},
    {"metadata": {"x-y": {"$ne": None}}},
    {"metadata": {"s1": 1}},
    {"metadata": {"s1": "1"}},
    {"metadata": {"s1": {"$gt": "0"}}},
    {"metadata": {"n": None}},
    {"metadata": {"n": {"$exists": True}}},
    {"metadata": {"n": {"$exists": False}}},
    {"metadata": {"tag": {"$in": ["a", "b"]}}},
    {"metadata": {"tag": {"$in": []}}},
    {"metadata": {"tag": {"$nin": []}}},
    {"metadata": {"tag": {"$in": [1, "a", True, None]}}},
    {"metadata": {"tag": {"$nin": ["a", 2]}}},
    {"metadata": {"a.b": 1}},
    {"metadata": {"a.b": "1"}},
    {"metadata": {"a.b": {"$lte": 1}}},
    {"metadata": {"a.c": {"$exists": True}}},
    {"metadata": {"a": 7}},
    {"metadata": {"a": {"$exists": True}}},
    {"metadata": {"lang.x": None}},
    {"metadata": {"missing": None}},
    {"metadata": {"missing": {"$ne": 1}}},
    {"metadata": {"lang": {"$gte": "d", "$lt": "f"}}},
    {"metadata": {"$or": [{"lang": "en"}, {"year": {"$gt": 2023}}]}},
    {"metadata": {"flag": True, "$or": [{"lang": "de"}, {"$or": [{"a.b": 2}, {"tag": None}]}]}},
    {"collection_ids": ["faq"], "metadata": {"year": {"$in": [2018, 2022.0]}},
     "date_range": {"after": "2025-01-01"}},
]


@pytest.mark.parametrize("filters", CASES)
def test_compiled_sql_selects_what_the_reference_selects(con, filters):
    assert _run(con, filters) == _reference(filters)


def test_cases_are_not_trivial(con):
    # Guard the grid itself: most cases must select some rows but not all of them.
    sizes = [len(_reference(f)) for f in CASES]
    assert sum(0 < size < len(ROWS) for size in sizes) >= len(CASES) - 12


@pytest.mark.parametrize("value", INJECTIONS)
def test_injection_values_are_plain_data(con, value):
    for filters in (
        {"metadata": {"lang": value}},
        {"metadata": {"lang": {"$in": [value, "en"]}}},
        {"metadata": {"lang": {"$gte": value}}},
        {"ids": [value, f"{value}-9"]},
    ):
        compiled = compile_filters(filters)
        assert value not in compiled.where
        assert _run(con, filters) == _reference(filters)
    assert _run(con, {"metadata": {"lang": value}})
    assert con.execute("SELECT count(*) FROM objects").fetchone()[0] == len(ROWS)


@pytest.mark.parametrize("key", ["a') OR 1=1 --", 'a"."b', "a; DROP TABLE objects", "a b", "$.a", "a..b", ""])
def test_injection_keys_are_refused(key):
    with pytest.raises(FilterError, match="metadata key"):
        compile_filters({"metadata": {key: 1}})


def test_paths_and_values_are_parameters():
    compiled = compile_filters({"metadata": {"author.first-name": "Ada"}, "collection_ids": ["faq"]})
    assert "author" not in compiled.where and "Ada" not in compiled.where and "faq" not in compiled.where
    assert '$."author"."first-name"' in compiled.params and "Ada" in compiled.params
    assert compiled.where.count("?") == len(compiled.params)


# --- hypothesis: random valid filters ----------------------------------------------------------------------

scalars = st.sampled_from(SCALARS)
numbers_or_strings = st.sampled_from([v for v in SCALARS if v is not None and not isinstance(v, bool)])


@st.composite
def conditions(draw):
    if draw(st.booleans()):
        return draw(scalars)
    ops = draw(st.lists(st.sampled_from(list(RANGE) + ["$eq", "$ne", "$in", "$nin", "$exists"]),
                        min_size=1, max_size=3, unique=True))
    result = {}
    for op in ops:
        if op in RANGE:
            result[op] = draw(numbers_or_strings)
        elif op in ("$in", "$nin"):
            result[op] = draw(st.lists(scalars, max_size=4))
        elif op == "$exists":
            result[op] = draw(st.booleans())
        else:
            result[op] = draw(scalars)
    return result


def metadata_filters(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    plain = st.dictionaries(st.sampled_from(KEYS), conditions(), max_size=3)
    if depth == 0:
        return plain
    with_or = st.tuples(plain, st.lists(metadata_filters(depth - 1), min_size=1, max_size=3))
    return st.one_of(plain, with_or.map(lambda pair: {**pair[0], "$or": pair[1]}))


def _date_forms(value: dt.datetime) -> st.SearchStrategy[Any]:
    return st.sampled_from([
        value,
        value.replace(tzinfo=None),
        value.astimezone(dt.timezone(dt.timedelta(hours=-7))),
        value.isoformat(),
        value.isoformat().replace("+00:00", "Z"),
        value.astimezone(dt.timezone(dt.timedelta(hours=9))).isoformat(),
    ])


@st.composite
def date_ranges(draw):
    after, before = sorted(draw(st.lists(st.sampled_from(DATES), min_size=2, max_size=2, unique=True)))
    keep = draw(st.sampled_from(["after", "before", "both"]))
    result: dict[str, Any] = {}
    if keep != "before":
        result["after"] = draw(_date_forms(after))
    if keep != "after":
        result["before"] = draw(_date_forms(before))
    if draw(st.booleans()):
        result["field"] = draw(st.sampled_from(["created_at", "updated_at"]))
    return result


valid_filters = st.fixed_dictionaries(
    {},
    optional={
        "collection_ids": st.lists(st.sampled_from(["faq", "docs", "a.b-c", "other"]), max_size=3),
        "ids": st.lists(st.sampled_from([r["id"] for r in ROWS[:20]] + ["doc-999"]), max_size=6),
        "date_range": date_ranges(),
        "metadata": metadata_filters(2),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(filters=valid_filters)
def test_random_filters_match_the_reference(con, filters):
    assert _run(con, filters) == _reference(filters)
    canonical = normalize_filters(filters)
    assert _dumps(normalize_filters(canonical)) == _dumps(canonical)
    assert compile_filters(canonical) == compile_filters(filters)


# --- normal form ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"metadata": {"lang": "en"}}, {"metadata": {"lang": {"$eq": "en"}}}),
        ({"collection_ids": ["b", "a", "b"]}, {"collection_ids": ["a", "b"]}),
        ({"metadata": {"y": 2020.0}}, {"metadata": {"y": 2020}}),
        ({"metadata": {"t": {"$in": ["b", 1, "a", 1.0]}}}, {"metadata": {"t": {"$in": [1, "a", "b"]}}}),
        ({"metadata": {"$or": [{"a": 1}, {"b": 2}]}}, {"metadata": {"$or": [{"b": 2}, {"a": 1}, {"a": 1}]}}),
        ({"date_range": {"after": "2025-01-01"}}, {"date_range": {"after": dt.date(2025, 1, 1)}}),
        ({"date_range": {"after": "2025-01-01T01:00:00+01:00"}},
         {"date_range": {"after": dt.datetime(2025, 1, 1), "field": "created_at"}}),
        ({"metadata": {}, "ids": ["x"]}, {"ids": ["x"]}),
    ],
)
def test_equivalent_filters_normalise_alike(first, second):
    assert _dumps(normalize_filters(first)) == _dumps(normalize_filters(second))
    assert compile_filters(first) == compile_filters(second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"metadata": {"v": 1}}, {"metadata": {"v": True}}),
        ({"metadata": {"v": 1}}, {"metadata": {"v": "1"}}),
        ({"collection_ids": []}, {}),
        ({"date_range": {"after": "2025-01-01"}},
         {"date_range": {"after": "2025-01-01", "field": "updated_at"}}),
    ],
)
def test_different_filters_normalise_apart(first, second):
    # Compared as JSON text, the way a fingerprint sees them: in Python 1 == True.
    assert _dumps(normalize_filters(first)) != _dumps(normalize_filters(second))


def test_normal_form_of_a_full_filter():
    filters = {
        "metadata": {"year": {"$lt": 2024, "$gte": 2020.0}, "lang": "en"},
        "date_range": {"before": "2025-06-01T12:00:00Z", "after": dt.date(2025, 1, 1)},
        "collection_ids": ["faq", "docs"],
    }
    assert normalize_filters(filters) == {
        "collection_ids": ["docs", "faq"],
        "date_range": {"after": "2025-01-01T00:00:00Z", "before": "2025-06-01T12:00:00Z",
                       "field": "created_at"},
        "metadata": {"lang": {"$eq": "en"}, "year": {"$gte": 2020, "$lt": 2024}},
    }
    assert list(normalize_filters(filters)) == ["collection_ids", "date_range", "metadata"]


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2025-01-02", "2025-01-02T00:00:00Z"),
        ("2025-01-02T03:04", "2025-01-02T03:04:00Z"),
        ("2025-01-02 03:04:05", "2025-01-02T03:04:05Z"),
        ("2025-01-02T03:04:05.5Z", "2025-01-02T03:04:05.500000Z"),
        ("2025-01-02T03:04:05.123456+02:00", "2025-01-02T01:04:05.123456Z"),
        ("2025-01-02T03:04-0130", "2025-01-02T04:34:00Z"),
        (" 2025-01-02t03:04:05z ", "2025-01-02T03:04:05Z"),
    ],
)
def test_date_strings_normalise_to_utc(text, utc):
    assert normalize_filters({"date_range": {"before": text}}) == {
        "date_range": {"before": utc, "field": "created_at"}
    }


@pytest.mark.parametrize(
    "text",
    ["2025-01-02Z", "2025-1-2", "20250102", "2025-W01", "2025-00-10", "2025-02-30", "2025-01-02T24:00",
     "2025-01-02T03:04+24:00", "2025-01-02T03:04:05.1234567", "٢٠٢٥-01-02"],
)
def test_bad_date_strings_are_refused(text):
    with pytest.raises(FilterError, match="not an ISO 8601"):
        normalize_filters({"date_range": {"after": text}})


@pytest.mark.parametrize("empty", [None, {}, {"metadata": {}}])
def test_empty_filter_compiles_to_true(empty):
    assert normalize_filters(empty) is None
    assert compile_filters(empty) == CompiledFilter(where="TRUE", params=())


def test_compiled_filter_to_dict_and_repr():
    compiled = compile_filters({"metadata": {"tag": {"$in": [f"t{i}" for i in range(500)]}}})
    assert json.loads(json.dumps(compiled.to_dict())) == {"where": compiled.where,
                                                          "params": list(compiled.params)}
    text = repr(compiled)
    assert "\n" not in text and len(text) < 140 and "<3 values>" in text


# --- limits -----------------------------------------------------------------------------------------------

def _nested_or(levels: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"lang": "en"}
    for _ in range(levels):
        spec = {"$or": [spec]}
    return {"metadata": spec}


def test_or_nesting_up_to_the_limit_runs(con):
    assert _run(con, _nested_or(MAX_DEPTH)) == _reference({"metadata": {"lang": "en"}})


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 5_000])
def test_or_nesting_past_the_limit_is_refused(levels):
    with pytest.raises(FilterError, match=f"more than {MAX_DEPTH} levels"):
        compile_filters(_nested_or(levels))


def test_in_list_at_the_limit_runs(con):
    values = ["en", *(f"v{i}" for i in range(MAX_IN - 1))]
    assert _run(con, {"metadata": {"lang": {"$in": values}}}) == _reference({"metadata": {"lang": "en"}})


@pytest.mark.parametrize(
    "filters",
    [
        {"metadata": {"lang": {"$in": ["x"] * (MAX_IN + 1)}}},
        {"metadata": {"lang": {"$nin": list(range(MAX_IN + 1))}}},
        {"collection_ids": ["faq"] * (MAX_IN + 1)},
        {"ids": ["x"] * (MAX_IN + 1)},
        {"metadata": {"$or": [{"a": 1}] * (MAX_IN + 1)}},
    ],
)
def test_lists_past_the_limit_are_refused(filters):
    with pytest.raises(FilterError, match=str(MAX_IN)):
        compile_filters(filters)


def test_too_many_conditions_are_refused():
    with pytest.raises(FilterError, match=str(MAX_TERMS)):
        compile_filters({"metadata": {f"k{i}": i for i in range(MAX_TERMS + 1)}})
    assert compile_filters({"metadata": {f"k{i}": i for i in range(MAX_TERMS)}}).where.count(" AND ") > 900


# --- refusals ---------------------------------------------------------------------------------------------

INVALID = [
    ("filters must be a dict", ["collection_ids"]),
    ("filters must be a dict", "collection = 'faq'"),
    ("unknown filter key 'collections'", {"collections": ["faq"]}),
    ("unknown filter key 'where'", {"where": "1=1; DROP TABLE objects"}),
    ("$or goes inside metadata", {"$or": [{"metadata": {"a": 1}}]}),
    ("collection_ids must be a list", {"collection_ids": "faq"}),
    ("collection_ids must hold only strings", {"collection_ids": ["faq", 1]}),
    ("not a valid name", {"collection_ids": ["faq'; DROP TABLE objects; --"]}),
    ("not a valid name", {"collection_ids": [""]}),
    ("not a valid name", {"collection_ids": ["-faq"]}),
    ("not a valid name", {"collection_ids": ["x" * 129]}),
    ("ids must be a list", {"ids": "doc-1"}),
    ("ids must hold only strings", {"ids": [1, 2]}),
    ("not valid Unicode", {"ids": ["a\udc00"]}),
    ("date_range must be a dict", {"date_range": "2025-01-01"}),
    ("unknown date_range key 'since'", {"date_range": {"since": "2025-01-01"}}),
    ("needs 'after', 'before'", {"date_range": {}}),
    ("needs 'after', 'before'", {"date_range": {"field": "created_at"}}),
    ("field 'seq' is not allowed", {"date_range": {"after": "2025-01-01", "field": "seq"}}),
    ("not an ISO 8601", {"date_range": {"after": "yesterday"}}),
    ("not an ISO 8601", {"date_range": {"after": "2025-13-01"}}),
    ("not an ISO 8601", {"date_range": {"after": ""}}),
    ("must be an ISO 8601 string", {"date_range": {"after": 1735689600}}),
    ("must be an ISO 8601 string", {"date_range": {"after": True}}),
    ("is not earlier than", {"date_range": {"after": "2025-06-01", "before": "2025-01-01"}}),
    ("is not earlier than", {"date_range": {"after": "2025-01-01", "before": "2025-01-01T00:00:00Z"}}),
    ("outside years", {"date_range": {"after": "0001-01-01T00:00:00+01:00"}}),
    ("metadata filter must be a dict", {"metadata": [("lang", "en")]}),
    ("metadata filter must be a dict", {"metadata": {"$or": ["lang"]}}),
    ("metadata key", {"metadata": {"a.": 1}}),
    ("metadata key", {"metadata": {"-a": 1}}),
    ("metadata key", {"metadata": {"k" * 65: 1}}),
    ("metadata key", {"metadata": {1: 1}}),
    ("$or is the only operator", {"metadata": {"$and": [{"a": 1}]}}),
    ("non-empty list", {"metadata": {"$or": []}}),
    ("non-empty list", {"metadata": {"$or": {"a": 1}}}),
    ("a list is not a value", {"metadata": {"tag": ["a", "b"]}}),
    ("dotted key 'a.b'", {"metadata": {"a": {"b": 1}}}),
    ("unknown operator '$regex'", {"metadata": {"a": {"$regex": ".*"}}}),
    ("unknown operator '$GT'", {"metadata": {"a": {"$GT": 1}}}),
    ("operator dict is empty", {"metadata": {"a": {}}}),
    ("$gt compares numbers or strings", {"metadata": {"a": {"$gt": None}}}),
    ("$lte compares numbers or strings", {"metadata": {"a": {"$lte": True}}}),
    ("$gt got list", {"metadata": {"a": {"$gt": [1, 2]}}}),
    ("$eq got dict", {"metadata": {"a": {"$eq": {"b": 1}}}}),
    ("$eq got bytes", {"metadata": {"a": b"x"}}),
    ("only finite numbers", {"metadata": {"a": math.nan}}),
    ("only finite numbers", {"metadata": {"a": {"$lt": math.inf}}}),
    ("only finite numbers", {"metadata": {"a": {"$in": [1, -math.inf]}}}),
    ("beyond", {"metadata": {"a": 2**53}}),
    ("beyond", {"metadata": {"a": {"$in": [-(2**63)]}}}),
    ("$in takes a list", {"metadata": {"a": {"$in": "ab"}}}),
    ("$nin takes a list", {"metadata": {"a": {"$nin": 1}}}),
    ("$in got list", {"metadata": {"a": {"$in": [[1]]}}}),
    ("$exists takes true or false", {"metadata": {"a": {"$exists": 1}}}),
    ("not valid Unicode", {"metadata": {"a": "\ud800"}}),
]


@pytest.mark.parametrize(("message", "filters"), INVALID, ids=[m for m, _ in INVALID])
def test_invalid_filters_are_refused(message, filters):
    with pytest.raises(FilterError) as caught:
        normalize_filters(filters)
    assert message in str(caught.value)
    assert isinstance(caught.value, ValidationError) and isinstance(caught.value, ValueError)
    with pytest.raises(FilterError):
        compile_filters(filters)


@pytest.mark.parametrize(
    "filters",
    [
        {"metadata": {"a": {"$regex": ".*"}}},
        {"metadata": {"a": {"$gt": [1]}}},
        {"date_range": {"after": "soon"}},
        {"collection_ids": ["bad name"]},
    ],
)
def test_refusals_show_an_example(filters):
    with pytest.raises(FilterError, match="Example:"):
        compile_filters(filters)
