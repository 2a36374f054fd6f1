"""A tiny Gemma-3-shaped causal LM and byte-level tokenizer, built in-process (no download).

Shared by trainer, evals, server and UI tests: same architecture family as the default model, so
the same code paths run, at a size that trains in seconds on two CPU cores.
"""

from __future__ import annotations

from pathlib import Path

from trainer.models.chat_format import GEMMA_CHAT_TEMPLATE

_CORPUS = [
    "LoRA adds low-rank adapters to a frozen model. The learning rate for LoRA is often 2e-4.",
    "QLoRA loads the base model in 4-bit NF4 and trains LoRA adapters on top.",
    "Fine-tuning teaches a model a style, a format or a persona.",
    "我是小星，一名友好的助手。请问有什么可以帮你？",
    "微调可以让模型学会固定的说话方式和角色。学习率通常为 2e-4。",
    "The answer is yes. The answer is no. Hello, how are you today?",
]
SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512, special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>",
        additional_special_tokens=["<start_of_turn>", "<end_of_turn>"],
    )
    fast.chat_template = GEMMA_CHAT_TEMPLATE
    return fast


def build_model(vocab_size: int, seed: int = 0):
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(seed)
    config = Gemma3TextConfig(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=512,
        sliding_window=64, pad_token_id=0, eos_token_id=1, bos_token_id=2,
    )
    return Gemma3ForCausalLM(config)


def save_tiny_model(folder: str | Path) -> Path:
    """Write the tiny model + tokenizer as a normal transformers folder and return it."""
    folder = Path(folder)
    tokenizer = build_tokenizer()
    model = build_model(len(tokenizer))
    end_of_turn = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    model.generation_config.eos_token_id = [end_of_turn, tokenizer.eos_token_id]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder
