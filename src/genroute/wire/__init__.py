"""The canonical wire model: Gemini generateContent requests, responses and stream chunks.

Every model accepts lowerCamel and snake_case keys, accepts floats with no fraction where
an integer is expected, and keeps unknown fields so they can be forwarded unchanged.
"""

from genroute.wire.base import WireModel, dump_json, format_validation_error
from genroute.wire.content import (
    Blob,
    CodeExecutionResult,
    Content,
    ExecutableCode,
    FileData,
    FunctionCall,
    FunctionResponse,
    Part,
)
from genroute.wire.embed import (
    BatchEmbedContentsRequest,
    BatchEmbedContentsResponse,
    ContentEmbedding,
    EmbedContentRequest,
    EmbedContentResponse,
)
from genroute.wire.models import ListModelsResponse, Model
from genroute.wire.request import (
    CountTokensRequest,
    CountTokensResponse,
    FunctionCallingConfig,
    FunctionDeclaration,
    GenerateContentRequest,
    GenerationConfig,
    SafetySetting,
    ThinkingConfig,
    Tool,
    ToolConfig,
)
from genroute.wire.response import (
    Candidate,
    CitationMetadata,
    CitationSource,
    GenerateContentResponse,
    ModalityTokenCount,
    PromptFeedback,
    ResponseFacts,
    SafetyRating,
    UsageMetadata,
    text_answer,
    text_chunk,
    wire_bytes,
)

__all__ = [
    "BatchEmbedContentsRequest",
    "BatchEmbedContentsResponse",
    "Blob",
    "Candidate",
    "CitationMetadata",
    "CitationSource",
    "CodeExecutionResult",
    "Content",
    "ContentEmbedding",
    "CountTokensRequest",
    "CountTokensResponse",
    "EmbedContentRequest",
    "EmbedContentResponse",
    "ExecutableCode",
    "FileData",
    "FunctionCall",
    "FunctionCallingConfig",
    "FunctionDeclaration",
    "FunctionResponse",
    "GenerateContentRequest",
    "GenerateContentResponse",
    "GenerationConfig",
    "ListModelsResponse",
    "ModalityTokenCount",
    "Model",
    "Part",
    "PromptFeedback",
    "ResponseFacts",
    "SafetyRating",
    "SafetySetting",
    "ThinkingConfig",
    "Tool",
    "ToolConfig",
    "UsageMetadata",
    "WireModel",
    "dump_json",
    "format_validation_error",
    "text_answer",
    "text_chunk",
    "wire_bytes",
]
