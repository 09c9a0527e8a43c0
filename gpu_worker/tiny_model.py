"""A small random-weight model of a real architecture, with a tokenizer trained on the fly.

For CPU demos, tests and benchmarks: a Llama-architecture causal LM (so transformers, peft and
vLLM all load it like any real model) with Qwen-style FIM and chat special tokens.
"""

from __future__ import annotations

import glob
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from hosting.catalogue import QWEN_FIM

CHAT_START = "<|im_start|>"
CHAT_END = "<|im_end|>"
SPECIAL_TOKENS = [
    QWEN_FIM.eot_token,
    QWEN_FIM.prefix_token,
    QWEN_FIM.suffix_token,
    QWEN_FIM.middle_token,
    CHAT_START,
    CHAT_END,
]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass(frozen=True)
class TinyModelConfig:
    vocab_size: int = 2048
    hidden_size: int = 64
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    intermediate_size: int = 172
    max_positions: int = 2048
    seed: int = 1234
    corpus_files: int = 200


def default_corpus(limit: int) -> list[str]:
    """Real code to train the tokenizer on: the Python standard library of this interpreter."""
    files = sorted(glob.glob(os.path.join(sys.base_prefix, "lib", "python3*", "*.py")))
    return files[:limit]


def build_tiny_model(target: Path, config: TinyModelConfig | None = None) -> dict[str, object]:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    config = config or TinyModelConfig()
    target.mkdir(parents=True, exist_ok=True)

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=config.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train(default_corpus(config.corpus_files), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=QWEN_FIM.eot_token,
        pad_token=QWEN_FIM.eot_token,
        additional_special_tokens=SPECIAL_TOKENS[1:],
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = config.max_positions
    fast.save_pretrained(target)

    torch.manual_seed(config.seed)
    model_config = LlamaConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        num_key_value_heads=config.kv_heads,
        max_position_embeddings=config.max_positions,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=fast.convert_tokens_to_ids(QWEN_FIM.eot_token),
        pad_token_id=fast.convert_tokens_to_ids(QWEN_FIM.eot_token),
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(model_config)
    model.generation_config.eos_token_id = [model_config.eos_token_id, fast.convert_tokens_to_ids(CHAT_END)]
    model.save_pretrained(target, safe_serialization=True)
    return {"parameters": sum(p.numel() for p in model.parameters()), "vocab_size": tokenizer.get_vocab_size()}
