"""REST transport: the Open Inference Protocol v2 over HTTP, and ``/predict``."""

from modelpilot.server.rest.app import create_app

__all__ = ["create_app"]
