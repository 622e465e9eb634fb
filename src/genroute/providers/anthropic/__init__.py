"""Anthropic upstream: Claude models over the Messages API, behind generateContent."""

from genroute.providers.anthropic.provider import AnthropicProvider

__all__ = ["AnthropicProvider"]
