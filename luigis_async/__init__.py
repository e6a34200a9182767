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
    InvalidCustomizationError,
    LuigisBoxError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TransportError,
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

__version__ = "0.1.0"

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "BatchReport",
    "BatchUpdater",
    "CONTENT_TYPE",
    "ClientClosedError",
    "CreateRequest",
    "Customization",
    "CustomizationUpdate",
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_TIMEOUT",
    "DeleteRequest",
    "EventKind",
    "FieldChange",
    "InvalidCustomizationError",
    "LuigisBoxClient",
    "LuigisBoxError",
    "NotFoundError",
    "Page",
    "PinDefinition",
    "PinType",
    "PlannedUpdate",
    "RateLimitError",
    "RequestEvent",
    "RetryBudget",
    "RetryPolicy",
    "ServerError",
    "StoredCustomization",
    "SyncApplier",
    "SyncPlan",
    "SyncReport",
    "TargetType",
    "TransportError",
    "UnprocessableEntityError",
    "UpdateResult",
    "__version__",
    "converter",
    "sign",
]
