"""Gemini (Google AI Studio) upstream: a lossless passthrough of the generateContent API."""

from genroute.providers.gemini.transport import GeminiProvider

__all__ = ["GeminiProvider"]
