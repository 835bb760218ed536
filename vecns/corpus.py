"""A real English corpus every machine has without downloads: the installed standard library's docstrings.

Used by ``vecns demo``, the benchmarks and the recall tests. The walk is deterministic for a given Python
version: modules in sorted order, members in definition order.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

# Modules never imported: they open windows or browsers, print on import, or are test suites.
_SKIP = frozenset({
    "antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "__main__", "pydoc_data", "lib2to3",
    "ensurepip", "venv", "test", "tests", "xxsubtype", "msilib", "winreg", "winsound", "nt", "msvcrt",
})
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z(])")
UNITS = ("doc", "paragraph", "sentence", "chunk")


def stdlib_modules() -> list[str]:
    """Names of the importable standard-library modules and their direct submodules, sorted."""
    found = []
    names = sorted(n for n in getattr(sys, "stdlib_module_names", ()) if not n.startswith("_") and n not in _SKIP)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in names:
            try:
                module = importlib.import_module(name)
            except Exception:  # noqa: BLE001 - a platform may lack a module; the corpus skips it
                continue
            found.append(name)
            for sub in pkgutil.iter_modules(getattr(module, "__path__", None) or []):
                if sub.name.startswith("_") or sub.name in _SKIP:
                    continue
                try:
                    importlib.import_module(f"{name}.{sub.name}")
                except Exception:  # noqa: BLE001
                    continue
                found.append(f"{name}.{sub.name}")
    return sorted(found)


@dataclass(frozen=True)
class Doc:
    """One docstring: ``id`` is its qualified name (plus a paragraph number when split)."""

    id: str
    module: str
    text: str


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", inspect.cleandoc(text)).strip()


def _members(module: object) -> Iterator[tuple[str, object]]:
    yield "", module
    for name, value in list(vars(module).items()):
        if name.startswith("_") or getattr(value, "__module__", None) != getattr(module, "__name__", None):
            continue
        if inspect.isclass(value) or inspect.isfunction(value):
            yield name, value
            if inspect.isclass(value):
                for attr, member in list(vars(value).items()):
                    if not attr.startswith("_") and inspect.isfunction(member):
                        yield f"{name}.{attr}", member


def stdlib_docs(*, limit: int | None = None, min_chars: int = 40, unit: str = "doc") -> list[Doc]:
    """Collect docstrings of the standard library, deterministically.

    Args:
        limit: Stop after this many documents.
        min_chars: Skip texts shorter than this.
        unit: ``doc`` (one document per docstring), ``paragraph``, ``sentence``, or ``chunk`` (every docstring,
            paragraph, sentence and pair of neighbouring sentences, as retrieval apps chunk text).

    Returns:
        Documents with unique ids and unique texts, in a stable order.
    """
    if unit not in UNITS:
        raise ValueError(f"unit {unit!r} is not one of {UNITS}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # reading deprecated modules' attributes warns; the corpus only reads
        return _walk(limit, min_chars, unit)


def _walk(limit: int | None, min_chars: int, unit: str) -> list[Doc]:
    docs: list[Doc] = []
    seen: set[str] = set()
    for module_name in stdlib_modules():
        module = sys.modules[module_name]
        for name, value in _members(module):
            raw = inspect.getdoc(value) if name else getattr(value, "__doc__", None)
            if not isinstance(raw, str) or not raw.strip():
                continue
            parts = [raw] if unit == "doc" else raw.split("\n\n")
            if unit in ("sentence", "chunk"):
                sentences = [s for part in parts for s in _SENTENCE.split(_clean(part))]
                pairs = [" ".join(sentences[i:i + 2]) for i in range(len(sentences) - 1)]
                parts = sentences if unit == "sentence" else [raw, *parts, *sentences, *pairs]
            for i, part in enumerate(parts):
                text = _clean(part)
                if len(text) < min_chars or text in seen:
                    continue
                seen.add(text)
                doc_id = f"{module_name}.{name}" if name else module_name
                docs.append(Doc(doc_id if unit == "doc" else f"{doc_id}#{i}", module_name, text))
                if limit is not None and len(docs) >= limit:
                    return docs
    return docs


def python_version_tag() -> str:
    """The Python version the corpus was drawn from (it changes with the standard library)."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"
