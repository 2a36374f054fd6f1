"""Memory estimate for a training config, before any compute is spent.

    total = weights + trainable copies + gradients + optimizer states + activations + logits + overhead

- weights: every parameter at the weights dtype; QLoRA stores the decoder's linear layers in NF4
  (4 bits + about 0.127 bits of double-quantized block constants, QLoRA paper section 3) and keeps
  embeddings / lm_head in the compute dtype.
- trainable parameters: LoRA adapters are kept in float32 (peft upcasts adapters of 16-bit models);
  full and freeze fine-tuning keep float32 master weights when the compute dtype is 16-bit (mixed
  precision: an extra 16-bit copy of the weights lives during the forward pass).
- gradients: 4 bytes per trainable parameter; optimizer states per trainable parameter: AdamW 8
  (two float32 moments), 8-bit AdamW 2, Lion 4 (one moment), 8-bit Lion 1, Adafactor ~0 (factored
  second moment: rows + columns), SGD 0. So full fine-tuning with AdamW costs 16 bytes per parameter
  in float32 and 18 with mixed precision, before activations (ZeRO paper, section 3.1).
  Gradients and activations do not peak together (backward frees activations as gradients appear,
  logits are gone before the optimizer step), so the estimate takes the larger of the two phases;
  the `gradients` entry of the breakdown is the gradient memory that adds to that peak.
- activations: what one decoder layer keeps per token for the backward pass (norm inputs/outputs,
  q/k/v, attention output, the gated MLP's three intermediate tensors, LoRA dropout copies), times
  layers and the tokens of the largest micro-batch; with gradient checkpointing only each layer's
  input is kept plus one layer being recomputed. Where attention scores are materialised (CPU),
  rows x heads x width^2 scores are added.
- logits: rows x kept columns x vocab, several copies (16-bit logits, float32 upcast, log-softmax, their
  gradients): with the 256k vocabularies of Gemma this is often the largest activation. The trainer
  (trainer.training.loop) projects only the columns that carry a label in some row of the micro-batch, and
  packing makes one row of just the batch's examples; so when `dataset.path` can be read, the
  micro-batch shape (tokens computed, columns kept) comes from the data (trainer.planning.memory_data), else
  the worst case: every example at max_seq_length and every position labelled. `notes` says which.
- full fine-tuning also holds the output layer's gradient during the backward pass (float32, plus
  its 16-bit form under autocast): with a 256k vocabulary that is most of the model's gradient.
- preference stages (`method.stage` dpo / orpo / kto): DPO and ORPO run chosen and rejected as two rows per
  example (KTO one; its KL rows go through without gradients); DPO and KTO hold a frozen reference copy of the
  weights unless the method is LoRA/QLoRA, where the reference is the base with the adapter disabled; their
  log-probs come from TRL's chunked LM-head kernel (one tile instead of the logits), while ORPO and SimPO
  (no reference) build full logits. Rows are as wide as the file's longest prompt + reply (its tokens with the
  model's tokenizer), else max_seq_length.
- overhead: CUDA context + allocator slack on a GPU; on CPU the Python process with torch and
  transformers loaded.

Device memory comes from `hardware.device_memory_gb`, else `hardware.gpu` via the GPU catalog,
else the machine's GPU, else (CPU training) the machine's RAM. All figures are GiB (2^30 bytes),
which is how GPU memory is sized ("24 GB" RTX 4090 = 24 GiB).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from trainer.models.catalog import ModelDims, lookup
from trainer.models.device import Environment, dtype_name, memory_gb, pick_device
from trainer.planning.hardware import lookup_gpu
from trainer.planning.memory_data import (
    BatchShape,
    DataProfile,
    batch_shape,
    profile_dataset,
    worst_case_shape,
)
from trainer.planning.schema import TrainConfig
from tunepilot.core.errors import UserError

GIB = 1024**3

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
NF4_BYTES = (4 + 0.127) / 8
OPTIMIZER_BYTES = {"adamw": 8.0, "adamw_8bit": 2.0, "paged_adamw_8bit": 2.0, "lion": 4.0, "lion_8bit": 1.0, "sgd": 0.0}
# bitsandbytes' 8-bit optimizers and the bytes their 32-bit form keeps (for overridden embeddings).
EIGHT_BIT_AS_32_BIT = {"adamw_8bit": 8.0, "paged_adamw_8bit": 8.0, "lion_8bit": 4.0}
# Float32 copies of the kept logits alive at the loss's peak: the float32 upcast, the log-softmax saved
# for backward, its gradient (plus the 16-bit logits themselves). CPU (peak RSS of the real trainer,
# bench/memory_estimate.py): 3 copies put its worst-case runs within 11%. CUDA: the real trainer on an
# H100 (bench/cuda_paths.py: Gemma-3-270M shapes, LoRA / QLoRA / full, kept positions from the data,
# torch.cuda.max_memory_allocated) fits 4 copies within 11% for all six runs; the earlier plain-loop
# grid (bench/memory_estimate.py --grid, every position projected) had fitted 3. The extra copy is
# what the trainer path measures; which tensor it is was not pinned down without a GPU at hand.
LOGIT_COPIES = {"cuda": 4}
DEFAULT_LOGIT_COPIES = 3

# Overheads. GPU: CUDA context (~0.5 GiB) plus cuBLAS workspaces; torch.cuda.max_memory_allocated
# does not see them, so bench/memory_estimate.py compares GPU runs without this term.
# CPU: the resident memory of the Python process itself (torch, transformers, peft, datasets and the
# tokenizer loaded). Calibrated on the default model with the real trainer (bench/memory_estimate.py,
# seq 256, LoRA and full at batch 1 and 4; peak RSS 2.57 / 6.17 / 6.46 / 8.35 GiB): 0.9 GiB puts all
# four within 11% (0.8 and 1.0 give worst errors of 12.7% and 11.9%). With the data-aware shape
# (2026-11-28): estimate 2.68 / 6.30 / 5.69 / 9.05 vs measured 2.43 / 5.88 / 6.28 / 8.18 GiB, worst 10.7%.
# TRL's chunked log-prob kernel (trl.kernels.chunked_logprob): tokens per tile and vocabulary columns per tile.
TRL_TOKEN_TILE = 4096
TRL_VOCAB_TILE = 32768
GPU_OVERHEAD_GIB = 0.8
CPU_OVERHEAD_GIB = 0.9
ALLOCATOR_SLACK = 0.05  # caching allocators hold ~5% more than the live tensors


class EstimateError(UserError, ValueError):
    """The model's dimensions are unknown: neither a local config.json nor a known family name."""


@dataclass
class MemoryEstimate:
    total_gb: float
    breakdown: dict[str, float]
    device_memory_gb: float | None
    fits: bool | None
    max_batch_size: int
    device: str
    dtype: str
    model: str
    dims_source: str
    parameters: int
    trainable_parameters: int
    bytes_per_parameter: float = 0.0  # weights + gradients + optimizer states, before activations
    notes: list[str] = field(default_factory=list)
    # On a GPU: the peak of live tensors, what torch.cuda.max_memory_allocated reports (total less the
    # overhead term: CUDA context and cached-but-free blocks); on CPU the same as total_gb.
    allocated_gb: float = 0.0
    shape: dict = field(default_factory=dict)  # the micro-batch the estimate assumes: rows, width, kept, source

    def to_dict(self) -> dict:
        return {
            "total_gb": self.total_gb,
            "allocated_gb": self.allocated_gb,
            "breakdown": self.breakdown,
            "device_memory_gb": self.device_memory_gb,
            "fits": self.fits,
            "max_batch_size": self.max_batch_size,
            "device": self.device,
            "dtype": self.dtype,
            "model": self.model,
            "parameters": self.parameters,
            "trainable_parameters": self.trainable_parameters,
            "bytes_per_parameter": self.bytes_per_parameter,
            "notes": self.notes,
            "batch_shape": self.shape,
        }


# ---------------------------------------------------------------- where the run happens

def target_device(cfg: TrainConfig, env: Environment | None = None) -> str:
    """The configured device; for `auto`, cuda when the config names a GPU or runs QLoRA, else the machine's."""
    if cfg.training.device == "auto" and (cfg.method.type == "qlora" or cfg.hardware.gpu):
        return "cuda"
    return pick_device(cfg.training.device, env)


def _gpu_environment(cfg: TrainConfig, env: Environment | None) -> Environment | None:
    """A GPU named in the config is the machine the run is planned for; otherwise `env` (or this one)."""
    gpu = lookup_gpu(cfg.hardware.gpu)
    return Environment.for_gpu(gpu) if gpu is not None else env


def compute_dtype(cfg: TrainConfig, device: str, env: Environment | None = None) -> str:
    """The dtype `auto` resolves to on `device`: trainer.models.device's policy, for the planned GPU."""
    return dtype_name(device, cfg.model.dtype, _gpu_environment(cfg, env))


def device_memory_gb(cfg: TrainConfig, device: str, env: Environment | None = None) -> float | None:
    """The memory the run must fit in: the configured figure, the named GPU's, or the device's own."""
    if cfg.hardware.device_memory_gb:
        return float(cfg.hardware.device_memory_gb)
    return memory_gb(device, _gpu_environment(cfg, env))


# ---------------------------------------------------------------- the model

def model_dims(cfg: TrainConfig) -> ModelDims:
    dims = lookup(cfg.model.base_model)
    if dims is None:
        from trainer.models.catalog import known_names

        raise EstimateError(
            f"cannot estimate memory for {cfg.model.base_model!r}: no local config.json and not a known family; "
            f"pass a local model folder or one of: {', '.join(known_names())}"
        )
    return dims


def adapted_modules(cfg: TrainConfig, dims: ModelDims) -> dict[str, tuple[int, int]]:
    shapes = dims.linear_shapes()
    targets = cfg.method.target_modules
    if targets == "all-linear":
        return shapes
    # Unknown names (model-specific, e.g. ChatGLM's query_key_value) are sized like an attention projection.
    return {name: shapes.get(name, (dims.hidden_size, dims.hidden_size)) for name in targets}


def trainable_parameters(cfg: TrainConfig, dims: ModelDims) -> int:
    method = cfg.method.type
    if method in ("lora", "qlora"):
        r = max(cfg.method.lora_r, 0)
        return dims.num_layers * sum(r * (a + b) for a, b in adapted_modules(cfg, dims).values())
    if method == "freeze":
        layers = min(max(cfg.method.freeze_trainable_layers, 0), dims.num_layers)
        return layers * dims.layer_params + dims.hidden_size
    return dims.total_params


# ---------------------------------------------------------------- the estimate

def _optimizer_bytes(cfg: TrainConfig, dims: ModelDims) -> float:
    kind = cfg.optimizer.type
    if kind == "adafactor":
        # Factored second moment: one row and one column vector per matrix, about 8/hidden bytes a parameter.
        return 8.0 / dims.hidden_size
    return OPTIMIZER_BYTES[kind]


def _optimizer_state_bytes(cfg: TrainConfig, dims: ModelDims, trainable: int) -> float:
    """Optimizer states of all trainable parameters.

    transformers' Trainer registers every nn.Embedding with bitsandbytes as a 32-bit override when it
    builds an 8-bit optimizer (embeddings are sensitive to 8-bit state quantisation), so when the input
    embedding trains (full fine-tuning) its states cost the 32-bit optimizer's bytes. With tied
    embeddings, as in Gemma, that is also the output layer: most of a small model's parameters.
    """
    per_param = _optimizer_bytes(cfg, dims)
    full_precision = EIGHT_BIT_AS_32_BIT.get(cfg.optimizer.type)
    if full_precision is None or cfg.method.type != "full":
        return trainable * per_param
    embedding = min(dims.embedding_params, trainable)
    return (trainable - embedding) * per_param + embedding * full_precision


def _activation_bytes_per_token_layer(cfg: TrainConfig, dims: ModelDims, act_bytes: int) -> float:
    """Bytes one decoder layer keeps per token for the backward pass (no checkpointing).

    Counted tensors: norm inputs/outputs and residuals, q/k/v before and after rotary embedding,
    attention output, the gated MLP's gate/up/activation/product, and for LoRA with dropout one
    dropped-out copy of each adapted module's input plus its 1-byte mask. The constant terms
    (9h, 3q, 3kv, 4i) were fitted to H100 measurements of Qwen2.5-0.5B, Llama-3.2-1B and
    Gemma-3-270M (bench/memory_estimate.py --grid): within 10% for all three.
    """
    h, i, q, kv = dims.hidden_size, dims.intermediate_size, dims.q_dim, dims.kv_dim
    values = 9 * h + 3 * q + 3 * kv + 4 * i
    if dims.family == "gemma":
        # Gemma adds post-attention / pre- and post-feedforward norms, q/k norms, and a tanh-GELU
        # whose backward keeps its intermediate.
        values += 4 * h + q + kv + i
    total = values * act_bytes
    if cfg.method.type in ("lora", "qlora") and cfg.method.lora_dropout > 0:
        # peft applies dropout to each adapted module's input separately: a copy and a bool mask each.
        inputs = sum(a for a, _ in adapted_modules(cfg, dims).values())
        total += inputs * (act_bytes + 1)
    return total


def _output_layer_trainable(cfg: TrainConfig) -> bool:
    # freeze trains the last decoder layers and the final norm; the output layer stays frozen.
    return cfg.method.type == "full"


def _breakdown(cfg: TrainConfig, dims: ModelDims, shape: BatchShape, device: str, dtype: str) -> dict[str, float]:
    params = dims.total_params
    trainable = trainable_parameters(cfg, dims)
    act_bytes = DTYPE_BYTES[dtype]
    tokens = shape.tokens
    method = cfg.method.type
    half = act_bytes == 2

    parts: dict[str, float] = {}
    if method == "qlora":
        embeddings = dims.embedding_params * (1 if dims.tie_embeddings else 2)
        parts["weights"] = (params - embeddings) * NF4_BYTES + embeddings * act_bytes
    elif method in ("full", "freeze"):
        frozen = params - trainable
        # Trainable weights live in float32 (master copy); under autocast the 16-bit copies of the
        # weights are saved for the backward pass, another 2 bytes per trainable parameter.
        parts["weights"] = frozen * act_bytes + trainable * 4 + (trainable * 2 if half else 0)
    else:
        parts["weights"] = params * act_bytes
    # LoRA adapters are separate float32 tensors next to the frozen base.
    parts["trainable_weights"] = trainable * 4 if method in ("lora", "qlora") else 0.0
    # DPO/KTO score replies under a frozen reference too: with LoRA that is the base with the adapter switched
    # off (no extra weights); without adapters it is a second copy of the model (preference-tuning.md).
    if cfg.method.stage != "sft":
        parts["reference_model"] = params * act_bytes if needs_reference_copy(cfg) else 0.0
    parts["optimizer_states"] = _optimizer_state_bytes(cfg, dims, trainable)

    layers = dims.num_layers
    if method == "freeze":
        layers = min(max(cfg.method.freeze_trainable_layers, 0), dims.num_layers)
    per_layer = _activation_bytes_per_token_layer(cfg, dims, act_bytes) * tokens
    if device != "cuda":
        # Without fused attention kernels the scores and their softmax are materialised (float32),
        # per row: a packed row attends over its whole width (block-diagonal mask).
        per_layer += 2 * shape.rows * dims.num_heads * shape.width * shape.width * 4
    if cfg.training.gradient_checkpointing:
        activations = layers * tokens * dims.hidden_size * act_bytes + per_layer
    else:
        activations = layers * per_layer
    copies = LOGIT_COPIES.get(device, DEFAULT_LOGIT_COPIES)
    logits = shape.projected * dims.vocab_size * (4 * copies + (act_bytes if half else 0))
    if uses_fused_logprobs(cfg):
        # TRL's DPO/KTO trainers never build the logits: a chunked kernel projects tiles of at most
        # TRL_TOKEN_TILE tokens x TRL_VOCAB_TILE vocabulary columns (float32) and keeps per-token log-probs.
        logits = min(shape.projected, TRL_TOKEN_TILE) * min(dims.vocab_size, TRL_VOCAB_TILE) * 4 * 2

    # Gradients (float32) and the optimizer step do not peak together with activations and logits:
    # the backward pass frees activations layer by layer while gradients appear, and the logits are
    # gone before the optimizer step. Peak = the larger of the two phases:
    #   backward: activations + logits + gradients present by then (+ autocast's 16-bit weight copies)
    #   step:     all gradients + the optimizer's temporary buffers (about one gradient's worth)
    gradients = trainable * 4
    if method in ("lora", "qlora"):
        early = gradients  # adapter gradients are tiny: simply counted
    elif _output_layer_trainable(cfg) and device == "cuda":
        # The output layer's backward runs first: its float32 gradient (and, under autocast, the
        # 16-bit gradient it is cast from) exist while the decoder's activations are still held.
        # Measured with the H100 runs; the CPU runs' peak RSS (full, batch 1 and 4) does not show it.
        early = dims.embedding_params * (4 + (2 if half else 0))
    else:
        early = 0
    # torch's AdamW on CUDA runs "foreach" over all tensors at once and holds one full-size temporary;
    # bitsandbytes kernels, Adafactor and SGD update tensor by tensor, as does AdamW on CPU.
    step_temp = gradients if (cfg.optimizer.type == "adamw" and device == "cuda") else 0
    # The 16-bit working copies of autocast are saved for backward and freed before the step.
    autocast_copies = trainable * 2 if (method in ("full", "freeze") and half) else 0
    backward, step = activations + logits + early + autocast_copies, gradients + step_temp
    parts["gradients"] = early + max(0.0, step - backward)
    parts["activations"] = activations
    parts["logits"] = logits
    live = sum(parts.values())
    base = GPU_OVERHEAD_GIB if device == "cuda" else CPU_OVERHEAD_GIB
    parts["overhead"] = base * GIB + ALLOCATOR_SLACK * live
    return parts


def _total(parts: dict[str, float]) -> float:
    return sum(parts.values()) / GIB


def _state_bytes(parts: dict[str, float], cfg: TrainConfig, dims: ModelDims) -> float:
    """Weights, adapter weights, all gradients and optimizer states: the per-parameter cost before activations."""
    return parts["weights"] + parts["trainable_weights"] + parts["optimizer_states"] + 4 * trainable_parameters(cfg, dims)


def _largest_batch(fits, limit: int = 4096) -> int:
    """The largest batch size in [0, limit] for which `fits(batch)` holds (memory grows with batch)."""
    if not fits(1):
        return 0
    low, high = 1, 2
    while high <= limit and fits(high):
        low, high = high, high * 2
    high = min(high, limit + 1)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low


def _micro_batches(cfg: TrainConfig, batch: int, n_examples: int) -> int:
    """Micro-batches the run computes (the simulation looks for the largest among them)."""
    import math

    t = cfg.training
    if t.max_steps:
        return t.max_steps * max(t.gradient_accumulation_steps, 1)
    n_train = n_examples
    if not cfg.dataset.eval_path and cfg.dataset.val_split > 0 and n_examples > 1:
        n_train -= max(1, int(n_examples * cfg.dataset.val_split))
    return max(1, math.ceil(max(t.epochs, 0) * math.ceil(max(n_train, 1) / batch)))


def preference_rows_per_example(cfg: TrainConfig) -> int:
    """Sequences with gradients per example: chosen + rejected for DPO/ORPO, one for KTO and SFT."""
    return 2 if cfg.method.stage in ("dpo", "orpo") else 1


def scores_against_reference(cfg: TrainConfig) -> bool:
    """DPO (except SimPO) and KTO compare the policy with a frozen reference; ORPO and SimPO have none.

    The one statement of it: the trainer (trainer.training.preference) builds the reference from it too.
    """
    m = cfg.method
    return m.stage == "kto" or (m.stage == "dpo" and m.pref_loss != "simpo")


def needs_reference_copy(cfg: TrainConfig) -> bool:
    """A second copy of the weights: a reference without adapters to disable (full or freeze tuning)."""
    return scores_against_reference(cfg) and cfg.method.type not in ("lora", "qlora")


def uses_fused_logprobs(cfg: TrainConfig) -> bool:
    """TRL's DPOTrainer/KTOTrainer compute log-probs with a chunked LM-head kernel; ORPO and SimPO (CPO) do not.

    In TRL 1.16 exactly the trainers that score against a reference use the kernel.
    """
    return scores_against_reference(cfg)


def _longest_preference_sequence(cfg: TrainConfig) -> int | None:
    """The longest prompt + reply of the preference file in tokens (the batch pads to it), or None if unknown."""
    path = cfg.dataset.path
    if not path or not Path(path).expanduser().is_file():
        return None
    stat = Path(path).expanduser().stat()
    return _longest_in_file(str(Path(path).expanduser()), (stat.st_size, stat.st_mtime_ns), cfg.model.base_model,
                            max(cfg.dataset.max_seq_length, 1))


@lru_cache(maxsize=16)
def _longest_in_file(path: str, stamp: tuple, base_model: str, max_len: int) -> int | None:
    from trainer.data.formats import DataError
    from trainer.data.preference import encode_reply, read_preference
    from trainer.planning.memory_data import (
        SAMPLE_EXAMPLES,
        _tokenizer,
        _tokenizer_folder,
    )

    folder = _tokenizer_folder(base_model)  # the same tokenizer lookup as the SFT data profile
    if folder is None:
        return None
    try:
        rows = read_preference(path).rows
        tokenizer = _tokenizer(str(folder))
        step = max(1, len(rows) // SAMPLE_EXAMPLES)
        longest = 0
        for row in rows[::step]:
            for reply in ([row["chosen"], row["rejected"]] if "chosen" in row else [row["completion"]]):
                prompt_ids, reply_ids = encode_reply(tokenizer, row["prompt"], reply)
                longest = max(longest, len(prompt_ids) + len(reply_ids))
    except (DataError, OSError, ValueError):
        return None
    return min(longest, max_len) if longest else None


def _shape_source(cfg: TrainConfig, profile: DataProfile | None) -> str:
    if cfg.method.stage != "sft":
        return "preference-data" if _longest_preference_sequence(cfg) else "worst-case"
    return "worst-case" if profile is None else profile.method


def _preference_note(cfg: TrainConfig, shape: BatchShape) -> str:
    m = cfg.method
    rows = "chosen + rejected rows" if preference_rows_per_example(cfg) == 2 else "one row (plus no-grad KL rows)"
    if needs_reference_copy(cfg):
        ref = "a frozen reference copy of the weights is counted"
    elif scores_against_reference(cfg):
        ref = "the reference is the base with the adapter disabled (no extra weights)"
    else:
        ref = "no reference model"
    source = "the longest pair in the data" if _longest_preference_sequence(cfg) else "worst case, max_seq_length"
    return f"{m.stage} preference batches ({source}): {rows} per example, {shape.rows} x {shape.width} tokens; {ref}"


def _shape_for(cfg: TrainConfig, batch: int, profile: DataProfile | None) -> BatchShape:
    if cfg.method.stage != "sft":
        # Preference batches are never packed: DPO/ORPO run chosen and rejected as two padded rows per example;
        # KTO runs one row with gradients (its KL rows go through under no_grad and are freed before).
        rows = batch * preference_rows_per_example(cfg)
        width = _longest_preference_sequence(cfg) or max(cfg.dataset.max_seq_length, 1)
        return BatchShape(rows=rows, width=width, kept=width)
    if profile is None:
        return worst_case_shape(batch, max(cfg.dataset.max_seq_length, 1), cfg.training.packing)
    return batch_shape(profile, batch, cfg.training.packing, _micro_batches(cfg, batch, profile.total_examples))


def _data_note(cfg: TrainConfig, profile: DataProfile | None, shape: BatchShape) -> str:
    layout = "one packed row" if cfg.training.packing else f"{shape.rows} row(s)"
    if profile is None:
        why = "no readable dataset.path" if not cfg.dataset.path else f"dataset {cfg.dataset.path} could not be read"
        return (f"worst case ({why}): every example at max_seq_length {cfg.dataset.max_seq_length}, every position "
                f"projected to the vocabulary ({shape.rows} x {shape.width} tokens)")
    how = "the model's tokenizer" if profile.method == "tokenizer" else "a characters-per-token rule (tokenizer not local)"
    sampled = f"{len(profile.examples)} of {profile.total_examples} examples" if len(profile.examples) < profile.total_examples \
        else f"all {profile.total_examples} examples"
    return (f"from the data ({sampled}, tokenized with {how}): largest micro-batch {layout} of {shape.width} tokens, "
            f"{shape.kept} labelled column(s) projected to the vocabulary")


def estimate(cfg: TrainConfig, env: Environment | None = None) -> MemoryEstimate:
    """Peak training memory for `cfg` on its target device, with the largest batch size that fits."""
    dims = model_dims(cfg)
    device = target_device(cfg, env)
    dtype = compute_dtype(cfg, device, env)
    batch = max(cfg.training.batch_size, 1)
    profile = profile_dataset(cfg.dataset.path, cfg.dataset.format, cfg.model.base_model, max(cfg.dataset.max_seq_length, 1)) \
        if cfg.dataset.path and cfg.method.stage == "sft" else None
    shape = _shape_for(cfg, batch, profile)
    parts = _breakdown(cfg, dims, shape, device, dtype)
    total = _total(parts)
    memory = device_memory_gb(cfg, device, env)

    max_batch = 0
    if memory is not None:
        max_batch = _largest_batch(lambda b: _total(_breakdown(cfg, dims, _shape_for(cfg, b, profile), device, dtype)) <= memory)

    notes = []
    if dims.source == "built-in table":
        notes.append(f"dimensions of {dims.name} from the built-in table")
    notes.append(f"{device}, {dtype}, sequence length {cfg.dataset.max_seq_length}")
    if cfg.method.stage != "sft":
        notes.append(_preference_note(cfg, shape))
    else:
        notes.append(_data_note(cfg, profile, shape))
    if profile is not None:
        notes.extend(profile.notes)
    # The overhead term (CUDA context, cached-but-free blocks) is outside the allocator's statistic.
    allocated = total - parts["overhead"] / GIB if device == "cuda" else total
    return MemoryEstimate(
        total_gb=round(total, 2),
        breakdown={name: round(value / GIB, 3) for name, value in parts.items()},
        device_memory_gb=memory,
        fits=None if memory is None else total <= memory,
        max_batch_size=max_batch,
        device=device,
        dtype=dtype,
        model=dims.name,
        dims_source=dims.source,
        parameters=dims.total_params,
        trainable_parameters=trainable_parameters(cfg, dims),
        bytes_per_parameter=round(_state_bytes(parts, cfg, dims) / dims.total_params, 2),
        notes=notes,
        allocated_gb=round(allocated, 2),
        shape={"rows": shape.rows, "width": shape.width, "kept": shape.kept,
               "source": _shape_source(cfg, profile)},
    )
