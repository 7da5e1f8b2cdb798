"""Where the test suite finds real Redis and PostgreSQL, and what it does when one is absent."""

from __future__ import annotations

import os

import pytest

POSTGRES_URL = os.environ.get(
    "MODELPILOT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("MODELPILOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def services_required() -> bool:
    """CI sets MODELPILOT_REQUIRE_SERVICES=1: a missing service is then a failure, not a skip."""
    return os.environ.get("MODELPILOT_REQUIRE_SERVICES") == "1"


def unavailable(what: str, reason: object) -> None:
    message = f"{what} is not reachable ({reason})"
    if services_required():
        pytest.fail(message + " and MODELPILOT_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message)


def require_postgres() -> str:
    """The PostgreSQL URL, after checking that it answers."""
    try:
        import psycopg
    except ImportError as exc:
        unavailable("PostgreSQL (psycopg not installed)", exc)
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        unavailable(f"PostgreSQL at {POSTGRES_URL}", exc)
    return POSTGRES_URL


def require_redis() -> str:
    """The Redis URL, after checking that it answers."""
    try:
        import redis
    except ImportError as exc:
        unavailable("Redis (redis-py not installed)", exc)
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
        client.ping()
        client.close()
    except Exception as exc:
        unavailable(f"Redis at {REDIS_URL}", exc)
    return REDIS_URL
