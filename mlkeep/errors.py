"""Every error mlkeep raises on purpose.

The hierarchy::

    MlkeepError                    anything mlkeep raises deliberately
    ├── StoreNotFoundError         no store at the URI, in MLKEEP_URI or above the cwd
    ├── StoreExistsError           `init` where a store already is
    ├── StoreClosedError           using an in-memory store after `close()`
    ├── DatabaseUnavailableError   the metadata database stayed busy or unreachable past the patience
    ├── MissingDependencyError     a stored model needs a Python package this environment lacks
    ├── NotFoundError              an id or name that names nothing
    │   ├── LayerNotFoundError     a layer name the model does not have (`available` lists them)
    │   ├── WeightsPrunedError     a version whose weights the retention policy dropped
    │   └── NoDataError            a monitoring window in which nothing was logged
    ├── InvalidInputError          a value mlkeep cannot accept
    │   ├── InvalidMetricError     a metric value that is not a finite-or-nan number
    │   ├── ParamConflictError     a param re-logged with another value
    │   ├── DatasetError           data that cannot be fingerprinted or described
    │   ├── UnsafePathError        a path that would leave the store or artifact root
    │   ├── FilterSyntaxError      a malformed search filter (has `position`)
    │   ├── CodecMismatchError     a codec that does not fit an intermediate (pooling a flat layer)
    │   └── RowsOutOfRangeError    row ids or columns outside an intermediate
    ├── RunStateError              an operation the run's status forbids
    ├── UnsupportedError           a call of another tool's API (MLflow's) that mlkeep does not offer
    ├── ConflictError              a concurrent writer won a compare-and-swap
    │   └── MergeConflictError     both sides of a merge changed the same tensors
    ├── AuthenticationError        a server request without a valid token (401)
    ├── PermissionDeniedError      a token whose role or scope forbids the request (403)
    ├── CorruptObjectError         a stored blob does not match its hash
    │   └── RecoveryError          re-running a commit's provenance did not recreate its weights
    ├── RecomputeError             an intermediate cannot be recomputed (model or architecture missing)
    │   └── DatasetUnavailableError    its input dataset is no longer in the store
    └── SchemaValidationError      an exported/imported document breaks the schema

Each class carries a stable `code` (used by the CLI and, later, mapped to an
HTTP status by the server) so a remote client can raise the same class.
"""

from __future__ import annotations

from collections.abc import Sequence


class MlkeepError(Exception):
    """Base of every error mlkeep raises on purpose."""

    code = "MLKEEP_ERROR"
    http_status = 500


class StoreNotFoundError(MlkeepError):
    """Raised by `mlkeep.open` when no store can be found."""

    code = "STORE_NOT_FOUND"
    http_status = 404


class StoreExistsError(MlkeepError):
    """Raised by `mlkeep.init` when the target already holds a store."""

    code = "STORE_EXISTS"
    http_status = 409


class StoreClosedError(MlkeepError):
    """Raised when an in-memory store is used after `close()` (its data went with it)."""

    code = "STORE_CLOSED"
    http_status = 410


class DatabaseUnavailableError(MlkeepError):
    """Raised when the metadata database stays busy (locked) or unreachable for longer than the
    patience (`MLKEEP_DB_PATIENCE` seconds, default 600), or drops the connection in the middle of a
    transaction. Nothing of the failed transaction was written; try again once the database is back."""

    code = "DATABASE_UNAVAILABLE"
    http_status = 503


class MissingDependencyError(MlkeepError):
    """Raised when loading a model needs a package that is not installed here (`package` names it).

    A serving process hitting it on an alias move keeps serving the version it has.
    """

    code = "MISSING_DEPENDENCY"
    http_status = 503

    def __init__(self, message: str, package: str | None = None) -> None:
        super().__init__(message)
        self.package = package


class NotFoundError(MlkeepError):
    """Raised when an id or a name refers to nothing in the store."""

    code = "NOT_FOUND"
    http_status = 404


class InvalidInputError(MlkeepError):
    """Raised when an argument cannot be accepted; nothing was written."""

    code = "INVALID_INPUT"
    http_status = 400


class InvalidMetricError(InvalidInputError):
    """Raised when a metric value is not a real number."""

    code = "INVALID_METRIC"


class ParamConflictError(InvalidInputError):
    """Raised when a param is logged again with a different value."""

    code = "PARAM_CONFLICT"
    http_status = 409


class DatasetError(InvalidInputError):
    """Raised when data cannot be fingerprinted or described as a Dataset."""

    code = "INVALID_DATASET"


class UnsafePathError(InvalidInputError):
    """Raised when a user-given path would escape the store or artifact root."""

    code = "UNSAFE_PATH"


class FilterSyntaxError(InvalidInputError):
    """Raised when a search filter cannot be parsed; `position` is 0-based."""

    code = "FILTER_SYNTAX"

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


class CodecMismatchError(InvalidInputError):
    """Raised when a codec cannot encode an intermediate (e.g. pooling a layer without spatial maps)."""

    code = "CODEC_MISMATCH"


class RowsOutOfRangeError(InvalidInputError):
    """Raised when a query names row ids or columns an intermediate does not have."""

    code = "ROWS_OUT_OF_RANGE"


class NoDataError(NotFoundError):
    """Raised when drift or live accuracy is asked for a window in which no prediction was logged."""

    code = "NO_DATA"


class LayerNotFoundError(NotFoundError):
    """Raised when a layer or pipeline stage name is not in the model; `available` lists the names."""

    code = "LAYER_NOT_FOUND"

    def __init__(self, message: str, available: list[str] | None = None) -> None:
        super().__init__(message)
        self.available = available or []


class WeightsPrunedError(NotFoundError):
    """Raised when checking out (or diffing, merging) a commit whose weights `gc` dropped under the
    store's retention policy (`mlkeep.retention`): the commit stays in history, its tensors are gone."""

    code = "WEIGHTS_PRUNED"
    http_status = 410


class UnsupportedError(MlkeepError):
    """Raised when a client of another tool's API (the MLflow REST API) asks for something mlkeep lacks."""

    code = "NOT_IMPLEMENTED"
    http_status = 501


class RunStateError(MlkeepError):
    """Raised when a run's status forbids the operation (e.g. logging to a finished run)."""

    code = "RUN_STATE"
    http_status = 409


class ConflictError(MlkeepError):
    """Raised when another writer changed the same thing first (compare-and-swap lost)."""

    code = "CONFLICT"
    http_status = 409


class MergeConflictError(ConflictError):
    """Raised by `merge(strategy="fail")` when both sides changed a tensor; `tensors` names them."""

    code = "MERGE_CONFLICT"

    def __init__(self, message: str, tensors: list[str] | None = None) -> None:
        super().__init__(message)
        self.tensors = tensors or []


class AuthenticationError(MlkeepError):
    """Raised when a request carries no token, or one that is unknown or revoked (HTTP 401)."""

    code = "UNAUTHENTICATED"
    http_status = 401


class PermissionDeniedError(MlkeepError):
    """Raised when a valid token's role or scope does not allow the request (HTTP 403)."""

    code = "PERMISSION_DENIED"
    http_status = 403


class CorruptObjectError(MlkeepError):
    """Raised when a blob read from the object store does not match its hash."""

    code = "CORRUPT_OBJECT"
    http_status = 500


class RecomputeError(MlkeepError):
    """Raised when an intermediate that is not stored cannot be recomputed from its model version."""

    code = "RECOMPUTE_FAILED"
    http_status = 409


class DatasetUnavailableError(RecomputeError):
    """Raised when recomputing needs an input dataset whose content is no longer in the store."""

    code = "DATASET_UNAVAILABLE"
    http_status = 410


class RecoveryError(CorruptObjectError):
    """Raised when re-running a commit's training provenance does not recreate its weights bit for bit
    (or cannot run at all); the weights are not returned. `mismatched` names the differing tensors."""

    code = "RECOVERY_FAILED"

    def __init__(self, message: str, mismatched: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.mismatched = list(mismatched)


class SchemaValidationError(MlkeepError):
    """Raised when a document does not validate against the ml-experiments-schema."""

    code = "SCHEMA_INVALID"
    http_status = 400


ALL_ERRORS: tuple[type[MlkeepError], ...] = (
    MlkeepError,
    StoreNotFoundError,
    StoreExistsError,
    StoreClosedError,
    DatabaseUnavailableError,
    MissingDependencyError,
    NotFoundError,
    InvalidInputError,
    InvalidMetricError,
    ParamConflictError,
    DatasetError,
    UnsafePathError,
    FilterSyntaxError,
    CodecMismatchError,
    RowsOutOfRangeError,
    LayerNotFoundError,
    WeightsPrunedError,
    NoDataError,
    UnsupportedError,
    RunStateError,
    ConflictError,
    MergeConflictError,
    AuthenticationError,
    PermissionDeniedError,
    CorruptObjectError,
    RecomputeError,
    DatasetUnavailableError,
    SchemaValidationError,
)


def error_for_code(code: str) -> type[MlkeepError]:
    """The error class whose `code` is `code` (a remote client re-raises it)."""
    for cls in ALL_ERRORS:
        if cls.code == code:
            return cls
    return MlkeepError
