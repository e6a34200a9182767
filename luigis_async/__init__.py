"""asyncio client for the Luigi's Box recommender pin customization API."""

from .auth import CONTENT_TYPE, sign
from .batch import BatchReport, BatchUpdater, UpdateResult
from .client import DEFAULT_BASE_URL, DEFAULT_MAX_CONNECTIONS, DEFAULT_TIMEOUT, LuigisBoxClient
from .convert import converter
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
    TargetType,
)
from .retry import RetryBudget, RetryPolicy
from .sync import FieldChange, PlannedUpdate, SyncApplier, SyncPlan, SyncReport
from .transport import HTTPRequest, HTTPResponse, MockTransport

__version__ = "0.1.0"

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "BatchReport",
    "BatchUpdater",
    "CONTENT_TYPE",
    "ClientClosedError",
    "ConfigurationError",
    "ConflictError",
    "CreateRequest",
    "Customization",
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
    "SyncApplier",
    "SyncPlan",
    "SyncReport",
    "TargetType",
    "TransportError",
    "UnexpectedError",
    "UnprocessableEntityError",
    "UpdateResult",
    "__version__",
    "converter",
    "sign",
]
