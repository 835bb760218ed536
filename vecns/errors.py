"""The vecns error tree.

Every error vecns raises is a ``VecnsError``. Leaves also subclass the builtin a
caller would reach for first, so ``except ValueError`` keeps working::

    VecnsError
    ├── InvalidNameError            (ValueError)
    ├── ValidationError             (ValueError)
    │   ├── DimensionMismatchError
    │   ├── InvalidVectorError
    │   ├── InvalidObjectError
    │   ├── DuplicateIdError
    │   ├── FilterError
    │   └── ConfigError
    ├── NotFoundError               (KeyError)
    │   ├── NamespaceNotFoundError
    │   ├── AliasNotFoundError
    │   ├── ObjectNotFoundError
    │   ├── ModelNotFoundError
    │   └── MigrationNotFoundError
    ├── AlreadyExistsError          (ValueError)
    │   ├── NamespaceExistsError
    │   ├── ObjectExistsError
    │   └── ModelExistsError
    ├── ModelError                  (RuntimeError)
    │   ├── ModelMismatchError
    │   │   └── ModelFileChangedError   (also a ModelLoadError)
    │   ├── ModelLoadError
    │   └── EmbeddingError
    ├── StoreError                  (RuntimeError)
    │   ├── StoreLockedError
    │   ├── StoreClosedError
    │   ├── StoreCorruptedError
    │   ├── StoreVersionError
    │   ├── ReadOnlyError
    │   └── IndexCorruptedError
    └── MigrationError              (RuntimeError)
        ├── MigrationStateError
        ├── PlanMismatchError
        └── CutoverRefusedError

Messages say what was seen, what was expected and what to do about it.
"""

from __future__ import annotations


class VecnsError(Exception):
    """Root of every error vecns raises."""


class InvalidNameError(VecnsError, ValueError):
    """A namespace, alias, collection, feature or model name is not allowed."""


class ValidationError(VecnsError, ValueError):
    """Input was refused before anything was written."""


class DimensionMismatchError(ValidationError):
    """A vector's dimension differs from the one its feature is locked to."""


class InvalidVectorError(ValidationError):
    """A vector is not finite, not numeric, the wrong shape, or all zero under cosine."""


class InvalidObjectError(ValidationError):
    """An object is missing a field, has a field of the wrong type, or is too large."""


class DuplicateIdError(ValidationError):
    """The same object id appears twice in one batch."""


class FilterError(ValidationError):
    """A filter uses an unknown field or operator, or a value of the wrong type."""


class ConfigError(ValidationError):
    """A user-written configuration (a migration body, a model card) is invalid."""


class NotFoundError(VecnsError, KeyError):
    """Something looked up by name or id does not exist."""

    def __str__(self) -> str:
        # KeyError quotes its argument; a message reads better unquoted.
        return str(self.args[0]) if self.args else ""


class NamespaceNotFoundError(NotFoundError):
    """No namespace (or alias) has this name or id."""


class AliasNotFoundError(NotFoundError):
    """No alias has this name."""


class ObjectNotFoundError(NotFoundError):
    """No object has this id in the namespace."""


class ModelNotFoundError(NotFoundError):
    """The model id is not in the store's registry, or its files are not installed."""


class MigrationNotFoundError(NotFoundError):
    """No migration has this id."""


class AlreadyExistsError(VecnsError, ValueError):
    """Something with this name or id exists already."""


class NamespaceExistsError(AlreadyExistsError):
    """A namespace with this name exists already."""


class ObjectExistsError(AlreadyExistsError):
    """``add`` was given an id that the namespace holds already (use ``upsert``)."""


class ModelExistsError(AlreadyExistsError):
    """A model with this id is registered already."""


class ModelError(VecnsError, RuntimeError):
    """A model could not be used."""


class ModelMismatchError(ModelError):
    """The model at hand is not the one the namespace's feature is locked to."""


class ModelLoadError(ModelError):
    """A model's graph or tokenizer could not be read, or failed its checksum."""


class ModelFileChangedError(ModelMismatchError, ModelLoadError):
    """A model file's sha256 is not the one pinned for it: the files on disk are not the locked model."""


class EmbeddingError(ModelError):
    """Inference failed, or produced output of an unexpected shape."""


class StoreError(VecnsError, RuntimeError):
    """The store on disk cannot be used as asked."""


class StoreLockedError(StoreError):
    """Another process holds the store open for writing."""


class StoreClosedError(StoreError):
    """The store (or a namespace handle from it) was used after ``close()``."""


class StoreCorruptedError(StoreError):
    """The store's database file is damaged or unreadable."""


class StoreVersionError(StoreError):
    """The store was written by a newer vecns, or by an incompatible DuckDB."""


class ReadOnlyError(StoreError):
    """A write was attempted on a store opened read-only, or on a namespace whose writes are held."""


class IndexCorruptedError(StoreError):
    """An index file failed its checksum or does not match its catalog entry."""


class MigrationError(VecnsError, RuntimeError):
    """A migration cannot proceed as asked."""


class MigrationStateError(MigrationError):
    """The migration is in a state that does not allow this operation."""


class PlanMismatchError(MigrationError):
    """A resume was attempted with a plan (models, config) other than the checkpoint's."""


class CutoverRefusedError(MigrationError):
    """The cutover gate found the target worse than the source beyond the allowed margin."""
