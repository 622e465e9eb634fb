"""Google Vertex AI upstream: Gemini models in their own wire format, Claude models through
rawPredict, with OAuth2 tokens from a service account or application default credentials."""

from genroute.providers.vertex.provider import (
    VertexClaudeProvider,
    VertexGeminiProvider,
    vertex_provider,
)

__all__ = ["VertexClaudeProvider", "VertexGeminiProvider", "vertex_provider"]
