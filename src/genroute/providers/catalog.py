"""Facts about every provider prefix genroute knows, in one table.

One `ProviderFacts` row per model prefix (`gemini/`, `openai/`, `vertex_ai/`...): where the
key and base URL come from, the default base URL, the `genai-prices` provider id that
prices it, the OpenTelemetry `gen_ai.provider.name`, whether this version serves it, and a
label for people. Cost, tracing, the embedded default config and the CLI banner read this
table through the helpers below; the wire quirks of OpenAI-compatible servers stay in
`providers/openai/prefixes.py`.

Environment variables are read with `first_env`: a value is stripped of surrounding
whitespace, and a blank one counts as unset.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

__all__ = [
    "CATALOG",
    "ProviderFacts",
    "facts_for",
    "first_env",
    "key_env_present",
    "not_served",
    "otel_name",
    "price_provider_id",
    "served",
]


@dataclass(frozen=True, slots=True)
class ProviderFacts:
    """What genroute knows about one model prefix."""

    name: str  # the model prefix, as in `name/model`
    label: str  # for people: "OpenAI", "Azure OpenAI"...
    # The `gen_ai.provider.name` of OpenTelemetry's GenAI conventions ("": the prefix itself).
    otel_name: str = ""
    key_env: tuple[str, ...] = ()  # environment variables holding the key, first wins
    base_env: tuple[str, ...] = ()  # environment variables holding the base URL, first wins
    default_base: str | None = None  # None: the base URL must be configured
    price_id: str | None = None  # the `genai-prices` provider id; None: not priced there
    served: bool = True  # False: recognised, but not served by this version
    key_required: bool = True  # False: a key is optional (local servers)

    def __post_init__(self) -> None:
        if not self.otel_name:
            object.__setattr__(self, "otel_name", self.name)


def _unserved(name: str, label: str, otel: str = "", price: str | None = None) -> ProviderFacts:
    return ProviderFacts(name, label, otel, price_id=price, served=False, key_required=False)


_GEMINI = ProviderFacts(
    "gemini",
    "Google Gemini API",
    "gcp.gemini",
    key_env=("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    base_env=("GEMINI_API_BASE", "GOOGLE_GEMINI_BASE_URL"),
    default_base="https://generativelanguage.googleapis.com",
    price_id="google",
)
_VLLM = ProviderFacts(
    "hosted_vllm",
    "vLLM",
    key_env=("HOSTED_VLLM_API_KEY",),
    base_env=("HOSTED_VLLM_API_BASE",),
    key_required=False,
)
_OLLAMA = ProviderFacts(
    "ollama",
    "Ollama",
    key_env=("OLLAMA_API_KEY",),
    base_env=("OLLAMA_API_BASE",),
    default_base="http://localhost:11434",
    key_required=False,
)
_ROWS = (
    _GEMINI,
    replace(_GEMINI, name="google_ai_studio", label="Google AI Studio (Gemini API)"),
    ProviderFacts(
        "anthropic",
        "Anthropic",
        key_env=("ANTHROPIC_API_KEY",),
        base_env=("ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL"),
        default_base="https://api.anthropic.com",
        price_id="anthropic",
    ),
    ProviderFacts(
        "openai",
        "OpenAI",
        key_env=("OPENAI_API_KEY",),
        base_env=("OPENAI_API_BASE", "OPENAI_BASE_URL"),
        default_base="https://api.openai.com/v1",
        price_id="openai",
    ),
    ProviderFacts(
        "azure",
        "Azure OpenAI",
        "azure.ai.openai",
        key_env=("AZURE_API_KEY", "AZURE_OPENAI_API_KEY"),
        base_env=("AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT"),
        price_id="azure",
    ),
    _VLLM,
    replace(_VLLM, name="vllm", otel_name="vllm"),
    _OLLAMA,
    replace(_OLLAMA, name="ollama_chat", otel_name="ollama_chat"),
    ProviderFacts(
        "groq",
        "Groq",
        key_env=("GROQ_API_KEY",),
        base_env=("GROQ_API_BASE",),
        default_base="https://api.groq.com/openai/v1",
        price_id="groq",
    ),
    ProviderFacts(
        "deepseek",
        "DeepSeek",
        key_env=("DEEPSEEK_API_KEY",),
        base_env=("DEEPSEEK_API_BASE",),
        default_base="https://api.deepseek.com/v1",
        price_id="deepseek",
    ),
    ProviderFacts(
        "openrouter",
        "OpenRouter",
        key_env=("OPENROUTER_API_KEY",),
        base_env=("OPENROUTER_API_BASE",),
        default_base="https://openrouter.ai/api/v1",
        price_id="openrouter",
    ),
    ProviderFacts(
        "mistral",
        "Mistral AI",
        "mistral_ai",
        key_env=("MISTRAL_API_KEY",),
        base_env=("MISTRAL_API_BASE",),
        default_base="https://api.mistral.ai/v1",
        price_id="mistral",
    ),
    ProviderFacts(
        "together_ai",
        "Together AI",
        key_env=("TOGETHERAI_API_KEY", "TOGETHER_API_KEY", "TOGETHER_AI_API_KEY"),
        base_env=("TOGETHER_AI_API_BASE", "TOGETHERAI_API_BASE"),
        default_base="https://api.together.xyz/v1",
        price_id="together",
    ),
    ProviderFacts(
        "xai",
        "xAI",
        "x_ai",
        key_env=("XAI_API_KEY",),
        base_env=("XAI_API_BASE",),
        default_base="https://api.x.ai/v1",
        price_id="x-ai",
    ),
    # Vertex AI: OAuth2 from a service account or application default credentials, not
    # a key; genai-prices' `google` rows are Vertex's prices, Claude on Vertex included.
    ProviderFacts(
        "vertex_ai",
        "Google Vertex AI",
        "gcp.vertex_ai",
        key_env=("GOOGLE_APPLICATION_CREDENTIALS",),
        price_id="google",
        key_required=False,
    ),
    ProviderFacts(
        "bedrock",
        "AWS Bedrock",
        "aws.bedrock",
        # The access key id; the secret, token, region and profile: providers/bedrock/auth.py.
        key_env=("AWS_ACCESS_KEY_ID",),
        base_env=("AWS_BEDROCK_RUNTIME_ENDPOINT", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME"),
        default_base="https://bedrock-runtime.{region}.amazonaws.com",  # {region}: filled in
        price_id="aws",
    ),
    ProviderFacts("demo", "genroute demo model (local)", key_required=False),
    # Prefixes LiteLLM knows that genroute recognises but does not serve in this version.
    _unserved("azure_ai", "Azure AI Foundry", "azure.ai.inference"),
    _unserved("vertex_ai_beta", "Google Vertex AI (beta)", "gcp.vertex_ai", price="google"),
    _unserved("cohere", "Cohere", price="cohere"),
    _unserved("huggingface", "Hugging Face"),
    _unserved("fireworks_ai", "Fireworks AI", price="fireworks"),
    _unserved("perplexity", "Perplexity", price="perplexity"),
    _unserved("text-completion-openai", "OpenAI (text completions)", "openai", price="openai"),
    _unserved("databricks", "Databricks", price="databricks"),
    _unserved("watsonx", "IBM watsonx.ai", "ibm.watsonx.ai"),
    _unserved("sagemaker", "AWS SageMaker"),
    _unserved("cerebras", "Cerebras", price="cerebras"),
    _unserved("nvidia_nim", "NVIDIA NIM"),
)

#: Every known prefix → its facts.
CATALOG: Mapping[str, ProviderFacts] = MappingProxyType({row.name: row for row in _ROWS})


def first_env(names: Iterable[str], environ: Mapping[str, str] | None = None) -> str | None:
    """The value of the first of `names` that is set, stripped; blank values count as unset."""
    env = os.environ if environ is None else environ
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def facts_for(prefix: str | None) -> ProviderFacts | None:
    """The facts of a model prefix (`openai`, `vertex_ai`...), None for an unknown one."""
    return CATALOG.get(prefix) if prefix else None


def price_provider_id(prefix: str | None) -> str | None:
    """The `genai-prices` provider id for a prefix; None when genai-prices has none."""
    facts = facts_for(prefix)
    return facts.price_id if facts else None


def otel_name(prefix: str | None) -> str:
    """The `gen_ai.provider.name` for a prefix: the well-known value, else the prefix itself."""
    if not prefix:
        return "unknown"
    facts = facts_for(prefix)
    return facts.otel_name if facts else prefix


def key_env_present(prefix: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The name of the first key variable of `prefix` that is set (not blank), else None."""
    facts = facts_for(prefix)
    if facts is None:
        return None
    env = os.environ if environ is None else environ
    return next((name for name in facts.key_env if env.get(name, "").strip()), None)


def served() -> frozenset[str]:
    """The prefixes this version serves."""
    return frozenset(name for name, facts in CATALOG.items() if facts.served)


def not_served() -> frozenset[str]:
    """The prefixes recognised (LiteLLM's) but not served by this version."""
    return frozenset(name for name, facts in CATALOG.items() if not facts.served)
