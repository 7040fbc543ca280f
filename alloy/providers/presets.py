"""The provider catalogue, as data: every kind Alloy knows, its default base URL, the environment
variable that enables it with no configuration, and the model families routed to it by default.

Adding an OpenAI-compatible provider is adding a row here; nothing else changes.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    kind: str  # the adapter that speaks its API: "openai", "azure", "anthropic" or "gemini"
    base_url: str
    key_env: str | None  # zero-config: the provider is enabled when this variable is set
    families: tuple[str, ...] = ()  # wildcard patterns routed here unless the config says otherwise


PRESETS = {
    "openai": Preset("openai", "https://api.openai.com/v1", "OPENAI_API_KEY"),
    "anthropic": Preset("anthropic", "https://api.anthropic.com", "ANTHROPIC_API_KEY", ("claude-*",)),
    "gemini": Preset("gemini", "https://generativelanguage.googleapis.com", "GEMINI_API_KEY", ("gemini-*",)),
    "azure": Preset("azure", "", None),
    "groq": Preset("openai", "https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    "mistral": Preset("openai", "https://api.mistral.ai/v1", "MISTRAL_API_KEY", ("mistral-*", "codestral-*")),
    "deepseek": Preset("openai", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY", ("deepseek-*",)),
    "openrouter": Preset("openai", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    "together": Preset("openai", "https://api.together.xyz/v1", "TOGETHER_API_KEY"),
    "fireworks": Preset("openai", "https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY"),
    "ollama": Preset("openai", "http://127.0.0.1:11434/v1", None),
    "vllm": Preset("openai", "http://127.0.0.1:8000/v1", None),
    "lmstudio": Preset("openai", "http://127.0.0.1:1234/v1", None),
}

# Zero-config order: the first enabled provider is the default one.
ZERO_CONFIG_ORDER = ("openai", "anthropic", "gemini", "groq", "mistral", "deepseek", "openrouter", "together", "fireworks")
