"""AWS Bedrock upstream: the Converse API (Claude and other models), signed with SigV4,
behind generateContent."""

from genroute.providers.bedrock.provider import BedrockProvider

__all__ = ["BedrockProvider"]
