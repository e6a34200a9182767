"""asyncio client for the Luigi's Box recommender pin customization API."""

import logging as _logging

from ._version import __version__
from .auth import CONTENT_TYPE, sign
from .batch import BatchReport, BatchRun, BatchUpdater, UpdateResult
from .bulk import BulkCreator, BulkReport, BulkRun, bulk_create
from .client import DEFAULT_BASE_URL, DEFAULT_MAX_CONNECTIONS, DEFAULT_TIMEOUT, LuigisBoxClient
from .convert import converter
from .endpoints import CustomizationFilter
from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConfigurationError,
    ConflictError,
    DecodingError,
    EventLoopError,
    InvalidCustomizationError,
    LuigisBoxError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    RedirectError,
    RequestTimeoutError,
    ServerError,
    TransportError,
    UnexpectedError,
    UnprocessableEntityError,
)
from .events import EventKind, RequestEvent
from .models import (
    CreateRequest,
    Customization,
    CustomizationUpdate,
    DeleteRequest,
    Page,
    PinDefinition,
    PinType,
    StoredCustomization,
    Summary,
    TargetType,
    natural_key,
)
from .reconcile import (
    FieldChange,
    PlannedUpdate,
    SyncApplier,
    SyncPlan,
    SyncReport,
    apply_sync,
    plan_sync,
)
from .retry import RetryBudget, RetryPolicy
from .transport import HTTPRequest, HTTPResponse, MockTransport

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "BatchReport",
    "BatchRun",
    "BatchUpdater",
    "BulkCreator",
    "BulkReport",
    "BulkRun",
    "CONTENT_TYPE",
    "ClientClosedError",
    "ConfigurationError",
    "ConflictError",
    "CreateRequest",
    "Customization",
    "CustomizationFilter",
    "CustomizationUpdate",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_TIMEOUT",
    "DecodingError",
    "DeleteRequest",
    "EventKind",
    "EventLoopError",
    "FieldChange",
    "HTTPRequest",
    "HTTPResponse",
    "InvalidCustomizationError",
    "LuigisBoxClient",
    "LuigisBoxError",
    "MockTransport",
    "NotFoundError",
    "Page",
    "PayloadTooLargeError",
    "PinDefinition",
    "PinType",
    "PlannedUpdate",
    "RateLimitError",
    "RedirectError",
    "RequestEvent",
    "RequestTimeoutError",
    "RetryBudget",
    "RetryPolicy",
    "ServerError",
    "StoredCustomization",
    "Summary",
    "SyncApplier",
    "SyncPlan",
    "SyncReport",
    "TargetType",
    "TransportError",
    "UnexpectedError",
    "UnprocessableEntityError",
    "UpdateResult",
    "__version__",
    "apply_sync",
    "bulk_create",
    "converter",
    "natural_key",
    "plan_sync",
    "sign",
]

# A library never decides where its logs go: without a handler of the application's,
# warnings are dropped instead of reaching stderr through logging.lastResort.
_logging.getLogger("luigis_async").addHandler(_logging.NullHandler())
