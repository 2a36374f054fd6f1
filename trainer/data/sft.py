"""Turn normalised examples into token ids with a loss mask, and batch them without padding waste.

Loss is computed on assistant (completion) tokens only, tool calls included; never on system, user
or tool-result turns, nor on assistant turns marked `"weight": 0` (context only, as in OpenAI's
format). Where the chat template marks assistant text with `{% generation %}` (ours for Gemma does),
the tokenizer returns that mask directly (`return_assistant_tokens_mask`) and each run of masked tokens
is matched to its assistant turn; otherwise each assistant turn's span is found by rendering the
conversation prefix by prefix. Tools and tool turns are rendered by `trainer.models.chat_format`
(the template's own tool support, else its documented fallback), the same rendering generation uses.
A tokenizer without any chat template uses the documented plain `Role: text` fallback of
`trainer.models.chat_format` and ends each example with EOS so the model learns to stop.

Labels are stored *already shifted* (label[t] is the token that position t must predict), per
example, so a packed row never asks a token to predict the first token of the next example.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trainer.models.chat_format import (
    has_chat_template,
    prepare_messages,
    render_prepared,
)

IGNORE = -100


@dataclass
class EncodedData:
    examples: list[dict] = field(default_factory=list)  # {"input_ids": [...], "labels": [...]} (labels shifted)
    truncated: int = 0  # examples longer than max_seq_length (cut from the end)
    dropped_no_target: int = 0  # examples with no assistant token left after truncation
    total_tokens: int = 0
    target_tokens: int = 0


def _has_generation_markers(tokenizer) -> bool:
    template = getattr(tokenizer, "chat_template", None) or ""
    return isinstance(template, str) and "{% generation %}" in template.replace("{%- generation", "{% generation")


def _ids(tokenizer, text: str) -> list[int]:
    # Rendered chat text already carries BOS from the template; a plain tokenizer gets its specials.
    return tokenizer(text, add_special_tokens=not has_chat_template(tokenizer))["input_ids"]


def _runs(mask: list[int]) -> list[tuple[int, int]]:
    """[start, end) of each run of 1s."""
    runs, start = [], None
    for t, m in enumerate(mask + [0]):
        if m and start is None:
            start = t
        elif not m and start is not None:
            runs.append((start, t))
            start = None
    return runs


def encode_messages(tokenizer, messages: list[dict], tools: list[dict] | None = None) -> tuple[list[int], list[int]]:
    """(input_ids, mask) where mask is 1 on the tokens of trained assistant turns (weight 1, tool calls included)."""
    msgs, native_tools = prepare_messages(tokenizer, messages, tools)
    assistant = [i for i, m in enumerate(msgs) if m["role"] == "assistant"]
    trained = [msgs[i].get("weight", 1) != 0 for i in assistant]
    if has_chat_template(tokenizer) and _has_generation_markers(tokenizer) and getattr(tokenizer, "is_fast", False):
        kwargs = {"tools": native_tools} if native_tools else {}
        out = tokenizer.apply_chat_template(msgs, tokenize=True, return_dict=True, return_assistant_tokens_mask=True, **kwargs)
        ids, mask = list(out["input_ids"]), list(out["assistant_masks"])
        runs = _runs(mask)
        if any(mask) and len(runs) == len(assistant):  # one run per assistant turn: weight-0 runs are unmasked
            for (start, end), keep in zip(runs, trained):
                if not keep:
                    mask[start:end] = [0] * (end - start)
            return ids, mask
    # Fallback: assistant turn i spans from the end of the rendered prefix (with the generation
    # prompt) to the end of the prefix that includes the turn.
    full = render_prepared(tokenizer, msgs, add_generation_prompt=False, tools=native_tools)
    ids = _ids(tokenizer, full)
    mask = [0] * len(ids)
    for i, keep in zip(assistant, trained):
        if not keep:
            continue
        start = len(_ids(tokenizer, render_prepared(tokenizer, msgs[:i], add_generation_prompt=True, tools=native_tools)))
        # Whitespace the template puts after the end-of-turn marker is not part of the reply.
        end = len(_ids(tokenizer, render_prepared(tokenizer, msgs[: i + 1], add_generation_prompt=False,
                                                  tools=native_tools).rstrip()))
        for t in range(min(start, len(ids)), min(end, len(ids))):
            mask[t] = 1
    if not has_chat_template(tokenizer) and tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
        mask.append(1 if trained and trained[-1] else 0)
    return ids, mask


def encode_example(tokenizer, example: dict) -> tuple[list[int], list[int]]:
    if "text" in example:
        ids = tokenizer(example["text"])["input_ids"]
        if tokenizer.eos_token_id is not None and (not ids or ids[-1] != tokenizer.eos_token_id):
            ids = ids + [tokenizer.eos_token_id]
        return ids, [1] * len(ids)
    return encode_messages(tokenizer, example["messages"], tools=example.get("tools"))


def shifted_labels(ids: list[int], mask: list[int]) -> list[int]:
    """label[t] = ids[t+1] if token t+1 is trained on, else IGNORE; the last position predicts nothing."""
    return [ids[t + 1] if mask[t + 1] else IGNORE for t in range(len(ids) - 1)] + [IGNORE]


def encode_dataset(tokenizer, examples: list[dict], max_seq_length: int) -> EncodedData:
    """Tokenise, mask, truncate from the end, and drop examples that would teach nothing."""
    data = EncodedData()
    for example in examples:
        ids, mask = encode_example(tokenizer, example)
        if len(ids) > max_seq_length:
            data.truncated += 1
            ids, mask = ids[:max_seq_length], mask[:max_seq_length]
        labels = shifted_labels(ids, mask)
        n_target = sum(1 for x in labels if x != IGNORE)
        if n_target == 0:
            data.dropped_no_target += 1
            continue
        data.examples.append({"input_ids": ids, "labels": labels})
        data.total_tokens += len(ids)
        data.target_tokens += n_target
    return data


class SFTCollator:
    """Batch encoded examples without padding waste.

    - packing: the batch's examples are concatenated into ONE row with position ids restarting at 0
      for each example and no attention mask; transformers (>= 4.56) turns restarting position ids
      into a block-diagonal causal mask, so no token attends across examples (a test checks this).
    - otherwise: right padding to the longest example of the batch (the trainer groups examples of
      similar length). The attention mask is all ones on purpose: with causal attention, right
      padding cannot influence real tokens, and an all-ones mask lets SDPA use its fast causal
      kernel instead of materialising a mask; padded positions carry no labels.
    """

    def __init__(self, pad_token_id: int, packing: bool):
        self.pad_token_id = pad_token_id
        self.packing = packing

    def __call__(self, features: list[dict]) -> dict:
        import torch

        if self.packing:
            ids, labels, positions = [], [], []
            for f in features:
                ids += f["input_ids"]
                labels += f["labels"]
                positions += list(range(len(f["input_ids"])))
            return {
                "input_ids": torch.tensor([ids]),
                "labels": torch.tensor([labels]),
                "position_ids": torch.tensor([positions]),
                "n_tokens": torch.tensor(len(ids)),
            }
        width = max(len(f["input_ids"]) for f in features)
        ids = [f["input_ids"] + [self.pad_token_id] * (width - len(f["input_ids"])) for f in features]
        labels = [f["labels"] + [IGNORE] * (width - len(f["labels"])) for f in features]
        return {
            "input_ids": torch.tensor(ids),
            "labels": torch.tensor(labels),
            "attention_mask": torch.ones(len(ids), width, dtype=torch.long),
            "n_tokens": torch.tensor(sum(len(f["input_ids"]) for f in features)),
        }
