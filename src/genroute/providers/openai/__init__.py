"""OpenAI Chat Completions upstreams: OpenAI, Azure OpenAI and OpenAI-compatible servers
(vLLM, Ollama, Groq, DeepSeek, OpenRouter, Mistral, Together AI, xAI) behind generateContent."""

from genroute.providers.openai.prefixes import SERVERS
from genroute.providers.openai.provider import OpenAIProvider

__all__ = ["SERVERS", "OpenAIProvider"]
