"""The live dashboard: a static page that draws what ``/api/dashboard`` returns."""

from modelpilot.dashboard.routes import router

__all__ = ["router"]
