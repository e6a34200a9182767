"""A local stand-in for the Luigi's Box pin customization API, like moto for boto.

Start one in a test, point a client at it, assert on its state and request log, and make
it misbehave on purpose::

    async with Sandbox(faults=Faults(rate_503=0.1, seed=7)) as sb, sb.client() as client:
        created = await client.create_customization(...)
        assert expected == sb.stored_body(created.id)

``python -m luigis_async.sandbox --port 8080`` runs one standalone (``cli.run``).
"""

from luigis_async.sandbox.bulk import BulkRules
from luigis_async.sandbox.faults import Faults
from luigis_async.sandbox.pipeline import RequestRecord
from luigis_async.sandbox.server import Sandbox

__all__ = ["BulkRules", "Faults", "RequestRecord", "Sandbox"]
