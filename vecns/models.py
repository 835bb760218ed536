"""Model specs, model cards and fingerprints.

A model is an ONNX graph, a tokenizer and the settings that turn the graph's output into vectors
(pooling, normalisation, ``max_tokens``, prefixes). :class:`ModelSpec` holds all of it; its
:meth:`~ModelSpec.fingerprint` is a sha256 over the graph bytes, the tokenizer bytes and those settings,
so two specs that would produce different vectors never share a fingerprint.

Specs come from the cards shipped in ``models/<model_id>/card.json`` (:func:`builtin_specs`) or from a
user's folder in the layout sentence-embedding ONNX exports use (:func:`spec_from_folder`). Nothing here
runs a model; :mod:`vecns.embed` does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import importlib.resources
import json
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vecns.errors import (
    ConfigError,
    InvalidNameError,
    ModelFileChangedError,
    ModelLoadError,
    ModelNotFoundError,
)

__all__ = [
    "DEFAULT_MODEL_ID",
    "MODEL_ID_PATTERN",
    "POOLING_MODES",
    "ModelSpec",
    "builtin_specs",
    "cards_folder",
    "check_sha256",
    "file_sha256",
    "file_version",
    "fingerprint_of",
    "resolve",
    "spec_from_folder",
    "validate_model_id",
]

DEFAULT_MODEL_ID = "all-minilm-l6-v2-int8"
MODEL_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
POOLING_MODES = ("mean", "cls", "none")
_SHA256 = re.compile(r"[0-9a-f]{64}")
SOURCES = ("builtin", "folder")
INSTALL_HINT = 'pip install "vecns[models]"'
# Bump when the meaning of a setting changes, so old fingerprints stop matching.
FINGERPRINT_VERSION = 1
DEFAULT_FOLDER_MAX_TOKENS = 512


def validate_model_id(model_id: object) -> str:
    """Check a model id against ``MODEL_ID_PATTERN``.

    Args:
        model_id: The candidate id.

    Returns:
        The id, unchanged.

    Raises:
        InvalidNameError: The id is not a string of 1-128 letters, digits, ``_``, ``.`` or ``-`` starting
            with a letter or digit.
    """
    if not isinstance(model_id, str) or not MODEL_ID_PATTERN.fullmatch(model_id):
        raise InvalidNameError(
            f"model id {model_id!r} is not allowed; expected 1-128 characters of letters, digits, '_', '.' "
            "or '-', starting with a letter or digit (e.g. 'all-minilm-l6-v2-int8')."
        )
    return model_id


_hash_lock = threading.Lock()
_hash_cache: dict[tuple[str, int, int, int, int], str] = {}


def file_version(path: Path) -> tuple[int, int, int, int]:
    """The (size, mtime_ns, inode, device) of a file: a new tuple means new bytes may be there.

    Raises:
        OSError: The file cannot be stat'ed.
    """
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)


def file_sha256(path: Path) -> str:
    """The sha256 (hex) of a file, computed once per file version (size, mtime, inode).

    Args:
        path: The file.

    Returns:
        64 lowercase hex digits.

    Raises:
        ModelLoadError: The file is missing or unreadable.
    """
    path = Path(path)
    try:
        version = file_version(path)
        key = (str(path.resolve()), *version)
        with _hash_lock:
            cached = _hash_cache.get(key)
        if cached is not None:
            return cached
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        unchanged = file_version(path) == version
    except OSError as exc:
        raise ModelLoadError(f"cannot read model file {str(path)!r}: {exc.strerror or exc}.") from exc
    value = digest.hexdigest()
    if unchanged:
        with _hash_lock:
            _hash_cache[key] = value
    return value


def fingerprint_of(graph_sha256: str, tokenizer_sha256: str, settings: Mapping[str, Any]) -> str:
    """Combine file hashes and vector-changing settings into a model fingerprint.

    Args:
        graph_sha256: sha256 (hex) of the ONNX graph bytes.
        tokenizer_sha256: sha256 (hex) of the tokenizer file bytes.
        settings: ``ModelSpec.settings()``.

    Returns:
        64 lowercase hex digits.
    """
    payload = json.dumps(
        {
            "version": FINGERPRINT_VERSION,
            "graph_sha256": graph_sha256,
            "tokenizer_sha256": tokenizer_sha256,
            "settings": dict(settings),
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to turn text into vectors with one model.

    Attributes:
        model_id: Registry name, e.g. ``all-minilm-l6-v2-int8``.
        dim: Vector dimension.
        pooling: ``mean`` (masked mean of token states), ``cls`` (first token) or ``none`` (the graph
            output is already one vector per text).
        normalize: Whether vectors are L2-normalised.
        max_tokens: Texts are truncated to this many tokens (special tokens included).
        graph_path: The ONNX file.
        tokenizer_path: The ``tokenizer.json`` file.
        output: Name of the graph output to use; ``None`` means the first.
        query_prefix: Prepended to texts embedded as queries.
        document_prefix: Prepended to texts embedded as documents.
        graph_sha256: Pinned sha256 of the graph file, or ``None``.
        tokenizer_sha256: Pinned sha256 of the tokenizer file, or ``None``.
        source: ``builtin`` (a card shipped with vecns) or ``folder`` (a user's folder).
        description: One line for listings.
        package: For builtins whose graph comes from an installed distribution, its name.
    """

    model_id: str
    dim: int
    pooling: str
    normalize: bool
    max_tokens: int
    graph_path: Path
    tokenizer_path: Path
    output: str | None = None
    query_prefix: str = ""
    document_prefix: str = ""
    graph_sha256: str | None = None
    tokenizer_sha256: str | None = None
    source: str = "folder"
    description: str = ""
    package: str | None = None

    def __post_init__(self) -> None:
        validate_model_id(self.model_id)
        checks = [
            ("dim", _is_int(self.dim, 1), "a positive integer"),
            ("pooling", self.pooling in POOLING_MODES, f"one of {POOLING_MODES}"),
            ("normalize", isinstance(self.normalize, bool), "true or false"),
            ("max_tokens", _is_int(self.max_tokens, 2), "an integer >= 2"),
            (
                "output",
                self.output is None or (isinstance(self.output, str) and self.output != ""),
                "a graph output name or null",
            ),
            ("source", self.source in SOURCES, f"one of {SOURCES}"),
            ("package", self.package is None or isinstance(self.package, str), "a distribution name or null"),
        ]
        checks += [
            (name, isinstance(getattr(self, name), str), "a string")
            for name in ("query_prefix", "document_prefix", "description")
        ]
        checks += [
            (
                name,
                getattr(self, name) is None or _SHA256.fullmatch(str(getattr(self, name))) is not None,
                "64 lowercase hex digits or null",
            )
            for name in ("graph_sha256", "tokenizer_sha256")
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(
                    f"model {self.model_id!r}: {name}={getattr(self, name)!r} is invalid; expected {expected}."
                )
        object.__setattr__(self, "graph_path", Path(self.graph_path))
        object.__setattr__(self, "tokenizer_path", Path(self.tokenizer_path))

    def __repr__(self) -> str:
        return (
            f"ModelSpec(model_id={self.model_id!r}, dim={self.dim}, pooling={self.pooling!r}, "
            f"normalize={self.normalize}, max_tokens={self.max_tokens}, source={self.source!r})"
        )

    def settings(self) -> dict[str, Any]:
        """The settings that change the vectors (they enter the fingerprint along with the file bytes).

        Returns:
            A JSON-able dict: dim, pooling, normalize, max_tokens, output and both prefixes.
        """
        return {
            "dim": self.dim,
            "pooling": self.pooling,
            "normalize": self.normalize,
            "max_tokens": self.max_tokens,
            "output": self.output,
            "query_prefix": self.query_prefix,
            "document_prefix": self.document_prefix,
        }

    def is_installed(self) -> bool:
        """Whether the graph and tokenizer files are present."""
        return self.graph_path.is_file() and self.tokenizer_path.is_file()

    def check_files(self) -> None:
        """Check that both files exist and match their pinned sha256.

        Raises:
            ModelNotFoundError: A file is missing (for a builtin, its package is not installed).
            ModelLoadError: A file is unreadable or its sha256 differs from the pinned one.
        """
        _require_installed(self)
        for path, pinned in (
            (self.graph_path, self.graph_sha256),
            (self.tokenizer_path, self.tokenizer_sha256),
        ):
            if pinned is not None:
                check_sha256(self, path, file_sha256(path), pinned)

    def fingerprint(self) -> str:
        """sha256 over the graph bytes, the tokenizer bytes and :meth:`settings`.

        File hashes are cached per file version (size, mtime, inode), so this reads each file once.

        Returns:
            64 lowercase hex digits.

        Raises:
            ModelNotFoundError: A file is missing.
            ModelLoadError: A file is unreadable or differs from its pinned sha256.
        """
        _require_installed(self)
        graph = file_sha256(self.graph_path)
        tokenizer = file_sha256(self.tokenizer_path)
        check_sha256(self, self.graph_path, graph, self.graph_sha256)
        check_sha256(self, self.tokenizer_path, tokenizer, self.tokenizer_sha256)
        return fingerprint_of(graph, tokenizer, self.settings())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; :meth:`from_dict` reads it back."""
        data = dataclasses.asdict(self)
        data["graph_path"] = str(self.graph_path)
        data["tokenizer_path"] = str(self.tokenizer_path)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        """Build a spec from :meth:`to_dict` output.

        Args:
            data: The dict.

        Returns:
            The spec.

        Raises:
            ConfigError: A required key is missing, a key is unknown, or a value is invalid.
            InvalidNameError: The model id is not allowed.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"a model spec must be a JSON object; got {type(data).__name__}.")
        fields = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING}
        unknown = sorted(set(data) - fields)
        missing = sorted(required - set(data))
        if unknown or missing:
            raise ConfigError(
                f"model spec {data.get('model_id')!r}: unknown keys {unknown}, missing keys {missing}; "
                f"expected keys among {sorted(fields)}."
            )
        return cls(**dict(data))


def _is_int(value: object, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _require_installed(spec: ModelSpec) -> None:
    if spec.graph_path.is_file() and spec.tokenizer_path.is_file():
        return
    if spec.package is not None and not _package_installed(spec.package):
        raise ModelNotFoundError(
            f"model {spec.model_id!r} needs the package {spec.package!r}, which is not installed; "
            f"install it with: {INSTALL_HINT}"
        )
    missing = spec.graph_path if not spec.graph_path.is_file() else spec.tokenizer_path
    raise ModelNotFoundError(
        f"model {spec.model_id!r}: file {str(missing)!r} does not exist; "
        "restore it, or register the model again from a folder that has it."
    )


def check_sha256(spec: ModelSpec, path: Path, seen: str, pinned: str | None) -> None:
    """Raise ModelFileChangedError when a file's sha256 differs from its pin (no pin: nothing to check).

    Raises:
        ModelFileChangedError: The hashes differ (a ModelMismatchError and a ModelLoadError).
    """
    if pinned is not None and seen != pinned:
        raise ModelFileChangedError(
            f"model {spec.model_id!r}: file {str(path)!r} has sha256 {seen}, expected {pinned}; "
            "the file was changed or replaced. Reinstall it (builtins: "
            f"{INSTALL_HINT} --force-reinstall) or update the card's pinned sha256."
        )


def _package_installed(dist_name: str) -> bool:
    try:
        importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _package_file(dist_name: str, path_suffix: str) -> Path | None:
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in dist.files or ():
        if str(entry).replace("\\", "/").endswith(path_suffix):
            return Path(str(dist.locate_file(entry)))
    return None


def cards_folder() -> Path:
    """The folder holding the builtin model cards (``models/`` in a checkout)."""
    try:
        return Path(str(importlib.resources.files("vecns._cards")))
    except (ImportError, TypeError):
        import vecns

        return Path(vecns.__file__).resolve().parents[1] / "models"


def _card_spec(card_path: Path, root: Path) -> ModelSpec:
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"model card {str(card_path)!r} cannot be read as JSON: {exc}.") from exc
    if not isinstance(card, dict):
        raise ConfigError(f"model card {str(card_path)!r} must hold a JSON object.")
    card = dict(card)
    graph = card.pop("graph", None)
    tokenizer = card.pop("tokenizer", None)
    for key in ("license", "upstream", "notes"):
        card.pop(key, None)
    package = None
    if isinstance(graph, dict) and "package" in graph:
        package = graph["package"]
        located = _package_file(package, graph["path_suffix"])
        graph_path = located if located is not None else Path(graph["path_suffix"])
    elif isinstance(graph, dict) and "path" in graph:
        graph_path = card_path.parent / graph["path"]
    else:
        raise ConfigError(
            f"model card {str(card_path)!r}: 'graph' must be {{'package', 'path_suffix', 'sha256'}} "
            f"or {{'path', 'sha256'}}; got {graph!r}."
        )
    if not isinstance(tokenizer, dict) or "path" not in tokenizer:
        raise ConfigError(f"model card {str(card_path)!r}: 'tokenizer' must be {{'path', 'sha256'}}.")
    try:
        return ModelSpec(
            graph_path=graph_path,
            tokenizer_path=root / tokenizer["path"],
            graph_sha256=graph.get("sha256"),
            tokenizer_sha256=tokenizer.get("sha256"),
            source="builtin",
            package=package,
            **card,
        )
    except TypeError as exc:
        raise ConfigError(f"model card {str(card_path)!r} has unknown or missing keys: {exc}.") from exc


def builtin_specs() -> dict[str, ModelSpec]:
    """Read every ``models/<model_id>/card.json`` shipped with vecns.

    A builtin whose package is not installed is still listed (``is_installed()`` is false); using it
    raises ``ModelNotFoundError`` naming the install command.

    Returns:
        Specs by model id, sorted by id.

    Raises:
        ConfigError: A shipped card is malformed.
    """
    root = cards_folder()
    specs = {}
    for card_path in sorted(root.glob("*/card.json")):
        spec = _card_spec(card_path, root)
        specs[spec.model_id] = spec
    return specs


def resolve(model_id: str, *, specs: Mapping[str, ModelSpec] | None = None) -> ModelSpec:
    """Look a model up by id and check that its files are there.

    Args:
        model_id: The id.
        specs: Where to look; defaults to :func:`builtin_specs`.

    Returns:
        The spec, its files present.

    Raises:
        InvalidNameError: The id is not allowed.
        ModelNotFoundError: No such model (the message lists the known ids), or its package or files are
            not installed.
    """
    validate_model_id(model_id)
    known = builtin_specs() if specs is None else specs
    spec = known.get(model_id)
    if spec is None:
        raise ModelNotFoundError(
            f"no model {model_id!r}; known models: {', '.join(sorted(known)) or '(none)'}. "
            "Register a folder with spec_from_folder(...) to add one."
        )
    _require_installed(spec)
    return spec


_FOLDER_CARD_KEYS = {
    "model_id",
    "dim",
    "pooling",
    "normalize",
    "max_tokens",
    "output",
    "query_prefix",
    "document_prefix",
    "graph_sha256",
    "tokenizer_sha256",
    "description",
    "graph",
    "tokenizer",
}
_ST_POOLING = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{str(path)!r} cannot be read as JSON: {exc}.") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{str(path)!r} must hold a JSON object; got {type(data).__name__}.")
    return data


def _folder_pooling(folder: Path) -> str:
    config = _read_json(folder / "1_Pooling" / "config.json")
    if config is None:
        return "mean"
    chosen = [mode for key, mode in _ST_POOLING.items() if config.get(key)]
    others = sorted(k for k, v in config.items() if k.startswith("pooling_mode_") and v and k not in _ST_POOLING)
    if others or len(chosen) != 1:
        raise ConfigError(
            f"{str(folder / '1_Pooling' / 'config.json')!r} asks for pooling {others or chosen or 'none'}; "
            "vecns supports exactly one of mean tokens or cls token. Set 'pooling' in vecns.json to override."
        )
    return chosen[0]


def _folder_max_tokens(folder: Path, tokenizer_path: Path) -> int:
    st_config = _read_json(folder / "sentence_bert_config.json") or {}
    if isinstance(st_config.get("max_seq_length"), int):
        return st_config["max_seq_length"]
    tokenizer = _read_json(tokenizer_path) or {}
    truncation = tokenizer.get("truncation") or {}
    if isinstance(truncation, dict) and isinstance(truncation.get("max_length"), int):
        return truncation["max_length"]
    return DEFAULT_FOLDER_MAX_TOKENS


def _folder_prefixes(folder: Path) -> dict[str, str]:
    prompts = (_read_json(folder / "config_sentence_transformers.json") or {}).get("prompts") or {}
    found = {}
    if isinstance(prompts.get("query"), str):
        found["query_prefix"] = prompts["query"]
    for key in ("document", "passage"):
        if isinstance(prompts.get(key), str):
            found["document_prefix"] = prompts[key]
            break
    return found


def spec_from_folder(
    path: Path | str,
    *,
    model_id: str | None = None,
    max_tokens: int | None = None,
    pooling: str | None = None,
    normalize: bool | None = None,
    output: str | None = None,
    query_prefix: str | None = None,
    document_prefix: str | None = None,
    dim: int | None = None,
    probe: Callable[[ModelSpec], int] | None = None,
) -> ModelSpec:
    """Describe a model folder in the layout sentence-embedding ONNX exports use.

    The folder holds ``model.onnx`` (or ``onnx/model.onnx``) and ``tokenizer.json``, optionally
    ``1_Pooling/config.json`` (pooling mode; default mean), ``sentence_bert_config.json``
    (``max_seq_length``), ``config_sentence_transformers.json`` (query/document prompts) and a
    ``vecns.json`` card whose keys override what the folder implies. Keyword arguments override both.
    Vectors are L2-normalised unless told otherwise. ``dim`` is read by running the graph once.

    Args:
        path: The folder.
        model_id: Registry name; default: the card's, else the folder's name.
        max_tokens: Truncation length; default: the card's, else ``max_seq_length``, else the tokenizer's.
        pooling: ``mean``, ``cls`` or ``none``.
        normalize: Whether to L2-normalise.
        output: Graph output name (default: the first).
        query_prefix: Prepended to queries.
        document_prefix: Prepended to documents.
        dim: Skip the probe and trust this dimension.
        probe: Function that runs the graph and returns its dimension; default ``vecns.embed.probe_dim``.

    Returns:
        A spec with ``source="folder"``.

    Raises:
        ModelNotFoundError: The folder, graph or tokenizer is missing.
        ConfigError: A config file is malformed or asks for something unsupported.
        InvalidNameError: The model id is not allowed.
        ModelLoadError: The graph or tokenizer cannot be loaded to read its dimension.
    """
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise ModelNotFoundError(f"model folder {str(folder)!r} does not exist or is not a folder.")
    card = _read_json(folder / "vecns.json") or {}
    unknown = sorted(set(card) - _FOLDER_CARD_KEYS)
    if unknown:
        raise ConfigError(
            f"{str(folder / 'vecns.json')!r} has unknown keys {unknown}; allowed: {sorted(_FOLDER_CARD_KEYS)}."
        )
    if "graph" in card:
        graph_path = folder / card.pop("graph")
    else:
        graph_path = next(
            (p for p in (folder / "model.onnx", folder / "onnx" / "model.onnx") if p.is_file()),
            folder / "model.onnx",
        )
    tokenizer_path = folder / card.pop("tokenizer", "tokenizer.json")
    for file in (graph_path, tokenizer_path):
        if not file.is_file():
            raise ModelNotFoundError(
                f"model folder {str(folder)!r} has no {file.relative_to(folder).as_posix()!r}; expected "
                "model.onnx (or onnx/model.onnx) and tokenizer.json."
            )
    settings: dict[str, Any] = {
        "model_id": folder.name,
        "pooling": _folder_pooling(folder),
        "normalize": True,
        "max_tokens": _folder_max_tokens(folder, tokenizer_path),
        **_folder_prefixes(folder),
        **card,
    }
    overrides = {
        "model_id": model_id,
        "max_tokens": max_tokens,
        "pooling": pooling,
        "normalize": normalize,
        "output": output,
        "query_prefix": query_prefix,
        "document_prefix": document_prefix,
        "dim": dim,
    }
    settings.update({k: v for k, v in overrides.items() if v is not None})
    known_dim = settings.pop("dim", None)
    try:
        draft = ModelSpec(
            dim=known_dim if known_dim is not None else 1,
            graph_path=graph_path,
            tokenizer_path=tokenizer_path,
            source="folder",
            **settings,
        )
    except TypeError as exc:
        raise ConfigError(f"model folder {str(folder)!r}: {exc}.") from exc
    draft.check_files()
    if known_dim is not None:
        return draft
    if probe is None:
        # Imported here: embed depends on models, and only this convenience path needs a running graph.
        from vecns.embed import probe_dim as probe
    return dataclasses.replace(draft, dim=probe(draft))
