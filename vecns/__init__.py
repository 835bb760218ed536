"""vecns: a local, embedded vector store whose namespaces lock their embedding model.

Open a store with :func:`connect`; everything else is reachable from the returned :class:`Store`.
"""

from vecns import migrate
from vecns.aliases import AliasInfo
from vecns.catalog import Feature
from vecns.errors import (
    AliasNotFoundError,
    AlreadyExistsError,
    ConfigError,
    CutoverRefusedError,
    DimensionMismatchError,
    DuplicateIdError,
    EmbeddingError,
    FilterError,
    IndexCorruptedError,
    InvalidNameError,
    InvalidObjectError,
    InvalidVectorError,
    MigrationError,
    MigrationNotFoundError,
    MigrationStateError,
    ModelError,
    ModelExistsError,
    ModelFileChangedError,
    ModelLoadError,
    ModelMismatchError,
    ModelNotFoundError,
    NamespaceExistsError,
    NamespaceNotFoundError,
    NotFoundError,
    ObjectExistsError,
    ObjectNotFoundError,
    PlanMismatchError,
    ReadOnlyError,
    StoreClosedError,
    StoreCorruptedError,
    StoreError,
    StoreLockedError,
    StoreVersionError,
    ValidationError,
    VecnsError,
)
from vecns.evaluate import Comparison, EvalReport, compare, evaluate
from vecns.migrate.cutover import CutoverResult
from vecns.migrate.manager import Migration, MigrationStatus
from vecns.migrate.plan import ValidationReport
from vecns.namespace import Hit, Namespace, Object
from vecns.registry import ModelInfo
from vecns.store import Store, connect

__version__ = "0.1.0"

__all__ = [
    "AliasInfo",
    "AliasNotFoundError",
    "AlreadyExistsError",
    "Comparison",
    "ConfigError",
    "CutoverRefusedError",
    "CutoverResult",
    "DimensionMismatchError",
    "DuplicateIdError",
    "EmbeddingError",
    "EvalReport",
    "Feature",
    "FilterError",
    "Hit",
    "IndexCorruptedError",
    "InvalidNameError",
    "InvalidObjectError",
    "InvalidVectorError",
    "Migration",
    "MigrationError",
    "MigrationNotFoundError",
    "MigrationStateError",
    "MigrationStatus",
    "ModelError",
    "ModelExistsError",
    "ModelFileChangedError",
    "ModelInfo",
    "ModelLoadError",
    "ModelMismatchError",
    "ModelNotFoundError",
    "Namespace",
    "NamespaceExistsError",
    "NamespaceNotFoundError",
    "NotFoundError",
    "Object",
    "ObjectExistsError",
    "ObjectNotFoundError",
    "PlanMismatchError",
    "ReadOnlyError",
    "Store",
    "StoreClosedError",
    "StoreCorruptedError",
    "StoreError",
    "StoreLockedError",
    "StoreVersionError",
    "ValidationError",
    "ValidationReport",
    "VecnsError",
    "__version__",
    "compare",
    "connect",
    "evaluate",
    "migrate",
]
