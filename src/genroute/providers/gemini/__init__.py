"""Gemini (Google AI Studio) upstream: a lossless passthrough of the generateContent API."""

from genroute.providers.gemini.provider import GeminiProvider

__all__ = ["GeminiProvider"]
