"""The typed client of the service (SDK): ``MarClient`` (sync) and ``AsyncMarClient`` (asyncio),
whose methods take and return the API's own pydantic schemas (``api.schemas``). Torch-free, and
checked with ``mypy --strict`` (tests/api/test_sdk_types.py).

Written on the schemas rather than generated from the OpenAPI document: the schemas are the
source the document is generated from, so a generated client would copy them (a second
definition of every model) and lose the hand-made parts, which are most of a client's worth
here: sha256-first uploads, verified downloads, the event stream that resumes with
``Last-Event-ID``, retries. Both clients build their requests from ``api.sdk.calls``.
"""

from api.sdk.async_client import AsyncMarClient
from api.sdk.errors import ApiClientError
from api.sdk.retry import RetryPolicy
from api.sdk.sync_client import MarClient

__all__ = ["ApiClientError", "AsyncMarClient", "MarClient", "RetryPolicy"]
