"""The REST gateway: ensemble scores, submissions, validation and miner performance from ClickHouse.

Read first: ``app.py`` (wiring, sink task), ``routes.py`` (endpoints), ``queries.py`` (SQL).
"""

from gateway.app import create_app
from gateway.settings import GatewaySettings

__all__ = ["GatewaySettings", "create_app"]
