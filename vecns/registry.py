"""The store's model registry: the builtin model cards plus the folders a user registered.

The registry belongs to one store (nothing global). Changing a default affects only namespaces created
afterwards; existing namespaces stay locked to their model's fingerprint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vecns.catalog import Catalog, records
from vecns.errors import ModelExistsError, ModelNotFoundError, ValidationError
from vecns.models import DEFAULT_MODEL_ID, ModelSpec, builtin_specs, spec_from_folder, validate_model_id

TEXT_EXTRACTOR = "text_extractor"


@dataclass(frozen=True)
class ModelInfo:
    """One row of ``store.models.list()``."""

    model_id: str
    dim: int
    max_tokens: int
    source: str
    installed: bool
    default: bool
    description: str

    def __repr__(self) -> str:
        return f"ModelInfo({self.model_id!r}, dim={self.dim}, installed={self.installed})"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return dict(self.__dict__)


class ModelRegistry:
    """Known models of one store: ``store.models``.

    Args:
        catalog: The store's catalog, where registered folders and defaults are kept.
    """

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._builtins = builtin_specs()

    def _all(self) -> dict[str, ModelSpec]:
        specs = dict(self._builtins)
        for model_id, data in records.get_models(self._catalog).items():
            specs[model_id] = ModelSpec.from_dict(data)
        return specs

    def get(self, model_id: str) -> ModelSpec:
        """Return a model's spec (its files may still be missing; see ``ModelSpec.is_installed``).

        Raises:
            ModelNotFoundError: No model has this id; the message lists the known ones.
        """
        validate_model_id(model_id)
        specs = self._all()
        if model_id not in specs:
            raise ModelNotFoundError(
                f"no model {model_id!r} in this store's registry; known models: {', '.join(sorted(specs))}. "
                "Register your own folder with store.models.register(path, model_id=...)."
            )
        return specs[model_id]

    def list(self) -> list[ModelInfo]:
        """Every known model, builtin and registered, sorted by id."""
        default = self.default()
        return [ModelInfo(s.model_id, s.dim, s.max_tokens, s.source, s.is_installed(), s.model_id == default,
                          s.description) for s in sorted(self._all().values(), key=lambda s: s.model_id)]

    def register(self, path: str | Path, *, model_id: str | None = None, **overrides: Any) -> ModelSpec:
        """Register a local model folder (``model.onnx`` + ``tokenizer.json`` [+ ``1_Pooling/config.json``]).

        Args:
            path: The folder.
            model_id: The id to register it under (default: the folder's name).
            **overrides: Card settings to override (``max_tokens``, ``pooling``, ``normalize``, prefixes...).

        Returns:
            The registered spec.

        Raises:
            ModelExistsError: The id is taken.
            ModelLoadError, ConfigError: The folder is not a usable model.
        """
        from vecns.embed import probe_dim

        spec = spec_from_folder(Path(path).resolve(), model_id=model_id, probe=probe_dim, **overrides)
        with self._catalog.atomic() as tx:
            if spec.model_id in self._all():
                raise ModelExistsError(
                    f"a model {spec.model_id!r} is registered already; pick another model_id, or unregister it first."
                )
            spec.fingerprint()
            records.put_model(tx, spec.model_id, spec.to_dict())
        return spec

    def unregister(self, model_id: str) -> None:
        """Forget a registered folder (builtins cannot be removed; namespaces using it keep their lock)."""
        spec = self.get(model_id)
        if spec.source == "builtin":
            raise ValidationError(f"model {model_id!r} is builtin and cannot be unregistered.")
        with self._catalog.atomic() as tx:
            records.delete_model(tx, model_id)

    def default(self, extractor: str = TEXT_EXTRACTOR) -> str:
        """The model id new namespaces of ``extractor`` get when none is named."""
        return records.get_default_model(self._catalog, extractor) or DEFAULT_MODEL_ID

    def set_default(self, model_id: str, *, extractor: str = TEXT_EXTRACTOR) -> None:
        """Make ``model_id`` the default for new namespaces; existing namespaces are not touched."""
        self.get(model_id)
        with self._catalog.atomic() as tx:
            records.put_default_model(tx, extractor, model_id)

