"""Chat formatting: render messages with the tokenizer's chat template, and know where a turn ends.

Tokenizers converted from GGUF (the built-in Gemma) carry no chat template, so we install Gemma's
turn format. For other tokenizers without a template, a plain `Role: text` fallback is used and
generation stops at the EOS token; the fallback is documented in the trainer docs.
"""

from __future__ import annotations

# Gemma's turn format: <start_of_turn>user\n...<end_of_turn>\n<start_of_turn>model\n.
# Gemma has no system role; a system message is prepended to the first user turn, as Google's template does.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages and messages[0]['role'] == 'system' %}"
    "{% set system = messages[0]['content'] + '\n\n' %}{% set msgs = messages[1:] %}"
    "{% else %}{% set system = '' %}{% set msgs = messages %}{% endif %}"
    "{% for m in msgs %}"
    "{% set role = 'model' if m['role'] == 'assistant' else m['role'] %}"
    "<start_of_turn>{{ role }}\n"
    "{% if loop.first and role == 'user' %}{{ system }}{% endif %}"
    "{% if role == 'model' %}{% generation %}{{ m['content'] | trim }}<end_of_turn>{% endgeneration %}{{ '\\n' }}"
    "{% else %}{{ m['content'] | trim }}<end_of_turn>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)

END_OF_TURN_TOKENS = ("<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|end|>")


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render_prompt(tokenizer, messages: list[dict], add_generation_prompt: bool = True) -> str:
    """Messages -> the prompt string the model was trained on (or the documented fallback)."""
    if has_chat_template(tokenizer):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    lines = [f"{m['role'].capitalize()}: {m['content'].strip()}" for m in messages]
    if add_generation_prompt:
        lines.append("Assistant:")
    return "\n".join(lines)


def stop_token_ids(tokenizer) -> list[int]:
    """Token ids that end an assistant turn: the template's end-of-turn marker(s) and EOS."""
    ids: list[int] = []
    vocab = tokenizer.get_vocab()
    for tok in END_OF_TURN_TOKENS:
        if tok in vocab:
            ids.append(vocab[tok])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids
