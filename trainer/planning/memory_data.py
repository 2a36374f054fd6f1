"""What the training data makes the trainer compute per micro-batch, for the memory estimate.

The trainer (`trainer.data.sft`, `trainer.training.loop`) does not work on `batch x max_seq_length` tokens:
- packing concatenates the micro-batch's examples into ONE row as long as those examples together;
  without packing, rows are right-padded to the longest example of the batch (length-grouped);
- only columns that carry a label in at least one row are projected through the output layer
  (`logits_to_keep` = union over rows of the labelled columns), and labels sit on assistant tokens.

So the tensors that dominate memory (activations: tokens; logits: kept columns x vocabulary) depend
on the data. `profile_dataset` reads the dataset once (cached by file size and mtime), encodes a
bounded, evenly spaced sample the way the trainer does (the model's own tokenizer when the model is
a local folder, else a characters-per-token rule), and `batch_shape` simulates the run's shuffled
micro-batches to find the largest one, which is where the peak happens.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

SAMPLE_EXAMPLES = 500  # examples encoded at most (evenly spaced over the file)
SIMULATED_BATCHES = 400  # micro-batches simulated at most per shuffle
SHUFFLES = 3  # seeds averaged: the peak is the mean of the largest batch over a few shuffles

# The rule when the tokenizer is not on this machine: BPE vocabularies of current models give about
# 4 characters of English per token and somewhat over one CJK character per token; each chat turn adds
# its template markers (Gemma: <start_of_turn>role\n ... <end_of_turn>\n).
CHARS_PER_TOKEN_ASCII = 4.0
TOKENS_PER_OTHER_CHAR = 0.75
TOKENS_PER_TURN = 5


@dataclass
class Example:
    length: int  # tokens after truncation to max_seq_length
    spans: tuple[tuple[int, int], ...]  # labelled column ranges [start, end)

    @property
    def labelled(self) -> int:
        return sum(end - start for start, end in self.spans)


@dataclass
class DataProfile:
    examples: list[Example]
    total_examples: int  # examples in the file (the sample stands in for all of them)
    method: str  # "tokenizer" | "chars-per-token"
    notes: list[str] = field(default_factory=list)


@dataclass
class BatchShape:
    """The largest micro-batch: `rows` x `width` tokens computed; `kept` columns (labelled in some row)
    projected to the vocabulary in every row, so the logits hold `rows x kept` positions."""

    rows: int
    width: int
    kept: int

    @property
    def tokens(self) -> int:
        return self.rows * self.width

    @property
    def projected(self) -> int:
        return self.rows * self.kept


def worst_case_shape(batch: int, max_seq_length: int, packing: bool) -> BatchShape:
    """Every example at the maximum length and every position labelled (no data to say otherwise)."""
    if packing:
        return BatchShape(rows=1, width=batch * max_seq_length, kept=batch * max_seq_length)
    return BatchShape(rows=batch, width=max_seq_length, kept=max_seq_length)


# ---------------------------------------------------------------- reading the data

def _spans_from_labels(labels: list[int], ignore: int) -> tuple[tuple[int, int], ...]:
    spans, start = [], None
    for t, label in enumerate(labels):
        if label != ignore and start is None:
            start = t
        elif label == ignore and start is not None:
            spans.append((start, t))
            start = None
    if start is not None:
        spans.append((start, len(labels)))
    return tuple(spans)


@lru_cache(maxsize=4)
def _tokenizer(folder: str):
    from trainer.models.generation import load_tokenizer

    return load_tokenizer(folder)


def _tokenizer_folder(base_model: str) -> Path | None:
    from trainer.models.catalog import local_folder_for

    folder = local_folder_for(base_model)
    if folder is None:
        return None
    if any((folder / name).is_file() for name in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")):
        return folder
    return None


def _encode_with_tokenizer(tokenizer, examples: list[dict], max_seq_length: int) -> list[Example]:
    from trainer.data.sft import IGNORE, encode_dataset

    encoded = encode_dataset(tokenizer, examples, max_seq_length)
    return [Example(len(e["input_ids"]), _spans_from_labels(e["labels"], IGNORE)) for e in encoded.examples]


def _rule_tokens(text: str) -> int:
    ascii_chars = sum(1 for ch in text if ord(ch) < 128)
    return round(ascii_chars / CHARS_PER_TOKEN_ASCII + (len(text) - ascii_chars) * TOKENS_PER_OTHER_CHAR)


def _encode_with_rule(examples: list[dict], max_seq_length: int) -> list[Example]:
    """Token counts from characters; labelled spans are the assistant turns (as the trainer masks them)."""
    out = []
    for example in examples:
        if "text" in example:
            n = min(_rule_tokens(example["text"]) + 2, max_seq_length)
            if n > 1:
                out.append(Example(n, ((0, n - 1),)))
            continue
        position, spans = 1, []  # BOS
        messages = example.get("messages", [])
        if example.get("tools") or any(m.get("tool_calls") or m.get("role") == "tool" for m in messages):
            from trainer.models.chat_format import plain_tool_messages

            messages = plain_tool_messages(messages, example.get("tools"))  # tools as the fallback renders them
        for message in messages:
            n = _rule_tokens(str(message.get("content", ""))) + TOKENS_PER_TURN
            if message.get("role") == "assistant" and message.get("weight", 1) != 0:  # weight 0: no labels
                # Labels are shifted by one: the column before each reply token predicts it.
                spans.append((position + TOKENS_PER_TURN - 3, position + n - 1))
            position += n
        length = min(position, max_seq_length)
        clipped = tuple((s, min(e, length - 1)) for s, e in spans if s < length - 1)
        if clipped:
            out.append(Example(length, clipped))
    return out


_PROFILES: dict[tuple, DataProfile] = {}


def profile_dataset(path: str, fmt: str, base_model: str, max_seq_length: int) -> DataProfile | None:
    """The encoded sample of `path`, or None when the file cannot be read (the estimate then assumes the worst)."""
    from trainer.data.formats import DataError, read_dataset

    p = Path(path).expanduser()
    if not path or not p.is_file():
        return None
    folder = _tokenizer_folder(base_model)
    stat = p.stat()
    key = (str(p.resolve()), stat.st_size, stat.st_mtime_ns, fmt, str(folder), max_seq_length)
    if key in _PROFILES:
        return _PROFILES[key]
    try:
        loaded = read_dataset(p, fmt)
    except (DataError, OSError, UnicodeError):
        return None
    examples = loaded.examples
    if not examples:
        return None
    step = max(1, len(examples) // SAMPLE_EXAMPLES)
    sample = examples[::step][:SAMPLE_EXAMPLES]
    notes = []
    encoded = None
    if folder is not None:
        try:
            encoded = _encode_with_tokenizer(_tokenizer(str(folder)), sample, max_seq_length)
            method = "tokenizer"
        except Exception as exc:  # a broken tokenizer folder must not break the estimate: use the rule
            notes.append(f"tokenizer in {folder} could not be loaded ({type(exc).__name__}); token counts from characters")
            encoded = None
    if encoded is None:
        encoded = _encode_with_rule(sample, max_seq_length)
        method = "chars-per-token"
    if not encoded:
        return None
    profile = DataProfile(examples=encoded, total_examples=len(examples), method=method, notes=notes)
    if len(_PROFILES) > 16:
        _PROFILES.clear()
    _PROFILES[key] = profile
    return profile


# ---------------------------------------------------------------- simulating the micro-batches

def _union_size(spans_per_row: list[tuple[tuple[int, int], ...]]) -> int:
    merged = sorted(s for spans in spans_per_row for s in spans)
    total, current_start, current_end = 0, None, None
    for start, end in merged:
        if current_end is None or start > current_end:
            if current_end is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None:
        total += current_end - current_start
    return total


def _shape_of(batch: list[Example], packing: bool) -> BatchShape:
    if packing:
        # One row: the examples end to end; every labelled position of every example is kept.
        return BatchShape(rows=1, width=sum(e.length for e in batch), kept=sum(e.labelled for e in batch))
    return BatchShape(rows=len(batch), width=max(e.length for e in batch), kept=_union_size([e.spans for e in batch]))


def _batches(examples: list[Example], batch: int, packing: bool, n_batches: int, rng: random.Random):
    """Micro-batches in the trainer's order: shuffled; without packing, length-grouped like transformers'
    LengthGroupedSampler (mega-batches of 50 batches, each sorted longest first)."""
    produced = 0
    while produced < n_batches:
        order = examples[:]
        rng.shuffle(order)
        if not packing:
            mega = 50 * batch
            order = [e for i in range(0, len(order), mega) for e in sorted(order[i:i + mega], key=lambda x: -x.length)]
        for i in range(0, len(order), batch):
            yield order[i:i + batch]
            produced += 1
            if produced >= n_batches:
                return


def batch_shape(profile: DataProfile, batch: int, packing: bool, steps: int) -> BatchShape:
    """The largest micro-batch over `steps` micro-batches of the run, averaged over a few shuffles.

    Largest width and largest kept count are taken separately (they usually come from the same batch),
    which keeps the estimate on the safe side.
    """
    batch = max(1, min(batch, len(profile.examples)))
    if batch == len(profile.examples):  # every micro-batch holds the whole sample: one shape
        return _shape_of(profile.examples, packing)
    n_batches = max(1, min(steps, SIMULATED_BATCHES))
    widths, kepts, rows = [], [], 1
    for seed in range(SHUFFLES):
        shapes = [_shape_of(b, packing) for b in _batches(profile.examples, batch, packing, n_batches, random.Random(seed))]
        widest = max(shapes, key=lambda s: s.tokens)
        widths.append(widest.width)
        rows = max(rows, widest.rows)
        kepts.append(max(s.kept for s in shapes))  # rows are the batch size (or fewer) in every shape
    return BatchShape(rows=rows, width=round(sum(widths) / len(widths)), kept=round(sum(kepts) / len(kepts)))
