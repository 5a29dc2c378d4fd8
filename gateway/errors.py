"""Errors the gateway turns into JSON answers.

RiskstreamError
└── GatewayError          an answer with an HTTP status
    ├── BadRequestError   400: a malformed date, id or parameter
    └── NotFoundError     404: no such date, miner or schema
"""

from __future__ import annotations

from streams.errors import RiskstreamError


class GatewayError(RiskstreamError):
    status = 500


class BadRequestError(GatewayError):
    status = 400


class NotFoundError(GatewayError):
    status = 404
