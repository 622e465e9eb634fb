"""The HTTP edge: a small ASGI application serving the Gemini API over the Router."""

from genroute.server.app import GatewayApp, create_app

__all__ = ["GatewayApp", "create_app"]
