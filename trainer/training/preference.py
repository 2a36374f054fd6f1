"""Preference tuning (method.stage = dpo / orpo / kto) inside the one recipe.

The recipe (`trainer.training.recipe`) asks this module for two things when the stage is not SFT: the data
(`build_preference_data`: pairs or labelled replies read by `trainer.data.preference`, split, counted) and the
trainer (`build_preference_trainer`: TRL's DPOTrainer / KTOTrainer / ORPOTrainer, or CPOTrainer for SimPO).
Everything else (loading, LoRA, callbacks, checkpoints, resume, saving, job card, merge) is the recipe's, so a
preference run is a job like any other.

Which TRL trainer and loss each setting uses:

| stage | pref_loss | TRL trainer | loss_type | reference model |
|---|---|---|---|---|
| dpo | sigmoid / ipo / hinge | DPOTrainer | the same name | LoRA: the base with the adapter disabled; else a frozen copy |
| dpo | simpo | experimental CPOTrainer | simpo (cpo_alpha 0) | none |
| orpo | - | experimental ORPOTrainer | odds ratio + NLL | none |
| kto | - | KTOTrainer | kto | as for dpo |
"""

from __future__ import annotations

import random
from pathlib import Path

from trainer.planning.memory import scores_against_reference as needs_reference_model
from trainer.planning.schema import TrainConfig
from tunepilot.core.errors import UserError

# Which kind of file each stage trains on (trainer.data.preference.kind_of_row).
STAGE_KIND = {"dpo": "preference", "orpo": "preference", "kto": "kto"}


class PreferenceError(UserError, ValueError):
    """A preference run that cannot start because of its data or settings; the message says the fix."""


# ---------------------------------------------------------------- data

def build_preference_data(cfg: TrainConfig, tokenizer, skip_bad_rows: bool = False) -> dict:
    """Train/eval rows in TRL's conversational shapes, plus the statistics the recipe reports.

    Returns the fields of the recipe's DataSplits (train, eval, stats, skipped_rows). Rows the trainer would drop
    (a prompt that alone fills max_seq_length leaves no reply token) are dropped here and counted, so the count
    the user sees is the count that trains.
    """
    from trainer.data.dataset_info import looks_like_names, read_named_preference
    from trainer.data.formats import DataError, format_problems
    from trainer.data.preference import load_preference

    stage = cfg.method.stage
    if not cfg.dataset.path:
        raise PreferenceError("dataset.path is empty; set it to a JSON, JSONL or CSV file of preference pairs.")
    if not getattr(tokenizer, "chat_template", None):
        raise PreferenceError("Preference training renders prompts and replies with the tokenizer's chat template, "
                              "and this model's tokenizer has none; use a chat model (e.g. gemma-3-270m).")
    try:
        if looks_like_names(cfg.dataset.path):  # entries of a LLaMA-Factory dataset_info.json
            loaded = read_named_preference(cfg.dataset.path, dataset_dir=cfg.dataset.dataset_dir)
            if loaded.errors and not skip_bad_rows:
                raise DataError(format_problems(loaded.path, loaded.errors) + "; fix them or pass --skip-bad-rows.",
                                loaded.errors)
        else:
            loaded = load_preference(cfg.dataset.path, skip_bad_rows=skip_bad_rows)
    except DataError as exc:
        raise PreferenceError(str(exc)) from None
    check_kind(stage, loaded.kind, cfg.dataset.path)
    rows = loaded.rows
    eval_rows: list[dict] = []
    if cfg.dataset.eval_path:
        try:
            eval_loaded = load_preference(cfg.dataset.eval_path, skip_bad_rows=skip_bad_rows)
        except DataError as exc:
            raise PreferenceError(f"dataset.eval_path: {exc}") from None
        check_kind(stage, eval_loaded.kind, cfg.dataset.eval_path)
        eval_rows = eval_loaded.rows
    elif cfg.dataset.val_split > 0 and len(rows) > 1:
        shuffled = rows[:]
        random.Random(cfg.training.seed).shuffle(shuffled)
        n_eval = max(1, int(len(shuffled) * cfg.dataset.val_split))
        eval_rows, rows = shuffled[:n_eval], shuffled[n_eval:]

    max_len = cfg.dataset.max_seq_length
    train, counts = _keep_trainable(tokenizer, rows, max_len)
    if not train:
        raise PreferenceError(f"No {loaded.kind} row has a reply token within max_seq_length={max_len}; "
                              "raise dataset.max_seq_length or shorten the prompts.")
    evaluated, _ = _keep_trainable(tokenizer, eval_rows, max_len)
    stats = {
        "format": f"{loaded.kind} ({loaded.layout})", "encoding": loaded.encoding, "rows": loaded.total_rows,
        "stage": stage, "kind": loaded.kind, "layout": loaded.layout,
        "train_examples": len(train), "eval_examples": len(evaluated), "skipped_rows": len(loaded.errors),
        "max_seq_length": max_len, **counts,
        "warnings": [w["message"] if w["line"] is None else f"line {w['line']}: {w['message']}" for w in loaded.warnings],
    }
    if loaded.kind == "kto":
        stats["desirable"] = sum(1 for r in train if r["label"])
        stats["undesirable"] = len(train) - stats["desirable"]
    return {"train": train, "eval": evaluated, "stats": stats, "skipped_rows": loaded.errors}


def check_kind(stage: str, kind: str, path: str) -> None:
    """A file of the wrong kind for the stage is refused with the stage that can use it."""
    if STAGE_KIND[stage] == kind:
        return
    name = Path(path).name
    if kind == "kto":
        raise PreferenceError(f"{name} is a KTO set (replies labelled true/false), which method.stage = \"{stage}\" "
                              "cannot use: set method.stage = \"kto\".")
    raise PreferenceError(f"{name} is a preference set (chosen/rejected pairs), which method.stage = \"kto\" "
                          "cannot use: set method.stage = \"dpo\" (or \"orpo\").")


def _keep_trainable(tokenizer, rows: list[dict], max_len: int) -> tuple[list[dict], dict]:
    """Rows with at least one reply token inside max_len, and token counts (what TRL will score)."""
    from trainer.data.preference import encode_reply

    kept, counts = [], {"truncated": 0, "dropped_no_target": 0, "total_tokens": 0, "target_tokens": 0}
    for row in rows:
        replies = [row["chosen"], row["rejected"]] if "chosen" in row else [row["completion"]]
        lengths = [encode_reply(tokenizer, row["prompt"], reply) for reply in replies]
        prompt_len = len(lengths[0][0])
        if prompt_len >= max_len:
            counts["dropped_no_target"] += 1
            continue
        if any(prompt_len + len(reply_ids) > max_len for _, reply_ids in lengths):
            counts["truncated"] += 1
        for _, reply_ids in lengths:
            counts["total_tokens"] += min(prompt_len + len(reply_ids), max_len)
            counts["target_tokens"] += min(len(reply_ids), max_len - prompt_len)
        kept.append(row)
    return kept, counts


# ---------------------------------------------------------------- the trainer

def align_backbone_prefix(model) -> None:
    """Point `base_model_prefix` at the attribute that really holds the decoder stack.

    TRL's DPO/KTO trainers replace the LM head with a chunked log-prob kernel that runs `model.base_model` (found
    through `base_model_prefix`) and projects its `last_hidden_state` itself. transformers 4.57 declares
    Gemma3ForCausalLM's prefix as "language_model" while the decoder lives in `.model`, so `base_model` falls back
    to the whole causal LM, which returns logits, and the kernel fails with "no attribute last_hidden_state".
    TRL has no switch to turn the kernel off, and the kernel is what keeps Gemma's 262k-row output layer from
    materialising full logits, so the fix is to correct the prefix on this instance (loading is already done,
    where the class prefix matters for checkpoint key names; saving does not read it).
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    prefix = getattr(base, "base_model_prefix", "")
    inner = getattr(base, "model", None)
    if prefix and not hasattr(base, prefix) and inner is not None and hasattr(inner, "layers"):
        base.base_model_prefix = "model"


def trainer_class(cfg: TrainConfig):
    """The TRL trainer and config classes for the stage, with tunepilot's checkpointing and token counting."""
    stage, loss = cfg.method.stage, cfg.method.pref_loss
    if stage == "kto":
        from trl import KTOConfig as Config
        from trl import KTOTrainer as Base
    elif stage == "orpo":
        from trl.experimental.orpo import ORPOConfig as Config
        from trl.experimental.orpo import ORPOTrainer as Base
    elif loss == "simpo":
        from trl.experimental.cpo import CPOConfig as Config
        from trl.experimental.cpo import CPOTrainer as Base
    else:
        from trl import DPOConfig as Config
        from trl import DPOTrainer as Base
    from trainer.training.loop import AtomicCheckpoints

    class PreferenceTrainer(_Counting, AtomicCheckpoints, Base):
        pass

    PreferenceTrainer.__name__ = PreferenceTrainer.__qualname__ = f"Tunepilot{Base.__name__}"
    return PreferenceTrainer, Config


class _Counting:
    """Real (non-padding) tokens trained on, for tokens/s and `trained_tokens`, as the SFT trainer counts them."""

    tokens_seen = 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training:
            counted = _trained_tokens(inputs)
            self.tokens_seen += counted
            self.state.num_input_tokens_seen += counted
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)

    def create_model_card(self, *args, **kwargs):
        return None  # TRL would write README.md into each checkpoint; the recipe writes the job card instead


def _trained_tokens(inputs) -> int:
    # DPO/KTO collators give one attention_mask (chosen and rejected rows stacked; KTO's KL rows apart);
    # ORPO/CPO give chosen_/rejected_attention_mask. Each covers prompt + reply.
    keys = ("attention_mask",) if "attention_mask" in inputs else ("chosen_attention_mask", "rejected_attention_mask")
    return sum(int(inputs[k].sum()) for k in keys if k in inputs)


def stage_settings(cfg: TrainConfig) -> dict:
    """The TRL config fields that carry the stage's own settings."""
    m = cfg.method
    common = {"beta": m.beta, "max_length": cfg.dataset.max_seq_length}
    if m.stage == "kto":
        # KTO's KL estimate pairs each reply with its neighbour's prompt in a fixed-order batch.
        return {**common, "loss_type": "kto", "train_sampling_strategy": "sequential"}
    if m.stage == "orpo":
        return common
    if m.pref_loss == "simpo":
        return {**common, "loss_type": "simpo", "cpo_alpha": 0.0}
    return {**common, "loss_type": [m.pref_loss]}


def preference_arguments(cfg: TrainConfig) -> tuple[type, dict]:
    """TRL's config class for the stage and the fields to set on it beyond the recipe's TrainingArguments."""
    _, config_class = trainer_class(cfg)
    # Preference rows have no `length` column to group by; TRL pads each batch itself.
    return config_class, {"group_by_length": False, **stage_settings(cfg)}


def build_preference_trainer(cfg: TrainConfig, model, tokenizer, data, args, device: str, precision, callbacks: list):
    """TRL's trainer for the stage on the recipe's model, data, arguments (`preference_arguments`) and callbacks."""
    import datasets
    from datasets import Dataset

    from trainer.training.methods import load_model

    if cfg.method.stage == "kto" and cfg.training.batch_size < 2:
        raise PreferenceError("KTO estimates its KL term from the other replies of the same micro-batch, so it needs "
                              "training.batch_size of at least 2; set training.batch_size = 2 or more.")
    # TRL tokenises with datasets.map, whose progress bars would interleave with the run's own events.
    datasets.disable_progress_bars()
    cls, _ = trainer_class(cfg)
    ref_model = None
    if needs_reference_model(cfg) and cfg.method.type not in ("lora", "qlora"):
        # Without adapters there is nothing to disable, so the reference is a second, frozen copy of the base
        # (the memory estimate counts it). Loaded here, not by TRL, so it gets the same dtype and prefix fix.
        ref_model = load_model(cfg, model.config._name_or_path, device, precision)
        ref_model.requires_grad_(False)
        ref_model.eval()
        align_backbone_prefix(ref_model)
    align_backbone_prefix(model)
    kwargs = {"ref_model": ref_model} if needs_reference_model(cfg) else {}  # ORPO/SimPO take no reference
    return cls(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(data.train),
        eval_dataset=Dataset.from_list(data.eval) if data.eval else None,
        processing_class=tokenizer,
        callbacks=callbacks,
        **kwargs,
    )
