"""Anthropic upstream: Claude models over the Messages API, behind generateContent."""

from genroute.providers.anthropic.transport import AnthropicProvider

__all__ = ["AnthropicProvider"]
