"""The built-in demo model: deterministic, local, no key needed. Not a real LLM."""

from genroute.providers.demo.provider import DemoProvider

__all__ = ["DemoProvider"]
