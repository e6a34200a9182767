"""A local stand-in for the Luigi's Box pin customization API, like moto for boto.

Start one in a test, point a client at it, assert on its state and request log, and make
it misbehave on purpose::

    async with Sandbox(faults=Faults(rate_503=0.1, seed=7)) as sb:
        ...  # a client with base URL sb.url, sb.tracker_id and sb.private_key
        assert list(sb.store) == [...]

``python -m luigis_async.sandbox --port 8080`` runs one standalone.
"""

from luigis_async.sandbox.faults import Faults
from luigis_async.sandbox.server import RequestRecord, Sandbox

__all__ = ["Faults", "RequestRecord", "Sandbox"]
