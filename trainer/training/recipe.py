"""The training recipe: one config in, one fine-tuned adapter (or model) out.

`train` reads top to bottom as the steps it takes (after torchtune's single-device recipes):
prepare the output folder -> load tokenizer -> load model -> apply method -> build data -> train
-> save -> write the job card. Each step is a small function below; the only branch on the method
is inside `trainer.training.methods.apply_method`. The loop is transformers' Trainer (see `trainer.training.loop`),
so the same code runs in one process or under `accelerate launch` on several devices.
"""

from __future__ import annotations

import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from trainer.models.device import Precision, pick_device
from trainer.models.generation import load_tokenizer
from trainer.planning.output_dir import STAGING_DIRNAME, WORKER_LOG, inspect
from trainer.planning.schema import TrainConfig
from trainer.training.callbacks import (
    CheckpointCallback,
    MetricsCallback,
    SampleCallback,
    StopCallback,
    event,
)
from trainer.training.methods import (
    OPTIMIZER_NAMES,
    apply_method,
    check_method,
    load_model,
    precision_for,
    trainable_summary,
)
from tunepilot.core import atomic
from tunepilot.core.errors import UserError

FINAL_ADAPTER_DIR = "adapter"
FINAL_MODEL_DIR = "model"


class TrainError(UserError, ValueError):
    """A training run that cannot start or finish because of its input; the message says the fix."""


@dataclass
class DataSplits:
    train: list[dict]
    eval: list[dict]
    stats: dict = field(default_factory=dict)
    skipped_rows: list[dict] = field(default_factory=list)


@dataclass
class TrainResult:
    status: str  # succeeded | cancelled
    output_dir: str
    final_path: str | None  # the adapter folder (lora/qlora) or model folder (full/freeze)
    is_adapter: bool
    global_step: int
    total_steps: int
    trained_tokens: int
    train_loss: float | None
    losses: list[dict]
    eval_losses: list[dict]
    samples: list[dict]
    duration_s: float
    peak_memory_mb: float
    data_stats: dict
    skipped_rows: list[dict]
    resumed_from: str | None
    world_size: int = 1  # processes that trained together (accelerate launch)
    job_card_path: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def train(cfg: TrainConfig, output_dir: str | Path, on_event: Callable[[dict], None] | None = None,
          resume: bool = True, overwrite: bool = False, skip_bad_rows: bool = False,
          should_stop: Callable[[], bool] | None = None) -> TrainResult:
    """Run one training config in this process; returns when finished or stopped (`should_stop`)."""
    from trainer.training.loop import peak_memory_mb

    sink = on_event or (lambda _e: None)
    started = time.time()
    out, resume_from = prepare_output_dir(Path(output_dir), resume=resume, overwrite=overwrite)
    device = pick_device(cfg.training.device)
    check_method(cfg, device)
    base_path = resolve_base_model(cfg)

    sink(event(f"Loading tokenizer and model from {base_path}"))
    tokenizer = load_tokenizer(base_path, trust_remote_code=cfg.model.trust_remote_code)
    precision = precision_for(cfg, device)
    # training.seed covers initialisation too: the LoRA matrices are drawn here, before the Trainer seeds,
    # so without this a second run in the same process starts from other adapter weights.
    from transformers import set_seed

    set_seed(cfg.training.seed)
    model = load_model(cfg, base_path, device, precision)
    model = apply_method(model, cfg)
    params = trainable_summary(model)
    sink(event(f"Method {cfg.method.type}: {params['trainable_params']:,} of {params['total_params']:,} parameters train "
               f"(weights {str(precision.load_dtype).replace('torch.', '')}, autocast {precision.autocast or 'off'})",
               data=params))

    data = build_data(cfg, tokenizer, skip_bad_rows=skip_bad_rows)
    sink(event(describe_data(data), data=data.stats))
    for warning in data.stats.get("warnings", []):  # e.g. a preference pair whose chosen and rejected are identical
        sink(event(f"Data: {warning}", level="warning"))
    if data.skipped_rows:
        sink(event(f"Skipped {len(data.skipped_rows)} bad row(s) (--skip-bad-rows)", level="warning",
                   data={"skipped_rows": data.skipped_rows}))

    trainer, metrics, sampler, stopper = build_trainer(cfg, model, tokenizer, data, out, device, precision, sink, should_stop)
    if resume_from:
        sink(event(f"Resuming from {Path(resume_from).name}", data={"checkpoint": resume_from}))
    run_training(trainer, resume_from)

    if stopper.stopped:
        sink(event(f"Stopped at step {trainer.state.global_step}; checkpoint saved for resume", level="warning"))
        return make_result("cancelled", cfg, trainer, metrics, sampler, data, out, None, started, resume_from, peak_memory_mb())

    final_path = save_outputs(trainer, tokenizer, cfg, out, base_path)
    if trainer.is_world_process_zero() and not sampler.samples and sampler.prompts:
        sampler.sample(trainer.model, trainer.state.global_step)  # the job card shows what the result says
    result = make_result("succeeded", cfg, trainer, metrics, sampler, data, out, final_path, started, resume_from, peak_memory_mb())
    if trainer.is_world_process_zero():
        from trainer.training.job_card import write_job_card

        result.job_card_path = str(write_job_card(cfg, result, params, precision, device))
        sink(event(f"Saved {'adapter' if result.is_adapter else 'model'} to {final_path}", data={"path": final_path}))
    return result


# ---------------------------------------------------------------- steps

def prepare_output_dir(out: Path, resume: bool, overwrite: bool) -> tuple[Path, str | None]:
    """Create the folder; refuse one in use unless overwriting; find the checkpoint to resume from.

    "In use" follows `trainer.planning.output_dir`, the rules the launch check and the job queue apply too.
    """
    state = inspect(out)
    out = state.path
    if state.used and overwrite:
        for p in out.iterdir():
            if p.name != WORKER_LOG:  # the running job's own log
                shutil.rmtree(p) if p.is_dir() else p.unlink()
    elif state.resumable and resume:
        return out, state.checkpoint
    elif state.used:
        raise TrainError(state.in_use_message())
    out.mkdir(parents=True, exist_ok=True)
    return out, None


def resolve_base_model(cfg: TrainConfig) -> Path:
    from trainer.models import registry as models

    name = cfg.model.base_model
    if name.startswith((".", "/", "~")) and not Path(name).expanduser().exists():
        raise TrainError(f"model.base_model {name!r} does not exist; point it at a transformers model folder "
                         f"or use {models.DEFAULT_MODEL!r}.")
    resolved = models.resolve(name)
    if resolved.adapter_path is not None:
        raise TrainError(f"model.base_model {name!r} is an adapter; train on its base model "
                         f"({resolved.base_path}) or merge it first with `tunepilot merge`.")
    if not (resolved.base_path / "config.json").exists():
        raise TrainError(f"{resolved.base_path} has no config.json; model.base_model must be a transformers model folder.")
    return resolved.base_path


def base_model_reference(cfg: TrainConfig, base_path: Path) -> str:
    """How the saved adapter names its base: the user's alias if it is one, else the absolute folder."""
    name = cfg.model.base_model
    return str(base_path) if Path(name).expanduser().exists() else name


def build_data(cfg: TrainConfig, tokenizer, skip_bad_rows: bool = False) -> DataSplits:
    """Read, check, tokenise and split the data (eval from eval_path, else a val_split hold-out)."""
    from trainer.data.formats import DataError, format_problems, read_dataset
    from trainer.data.sft import encode_dataset

    if cfg.method.stage != "sft":  # pairs / labelled replies (trainer.training.preference)
        from trainer.training.preference import build_preference_data

        return DataSplits(**build_preference_data(cfg, tokenizer, skip_bad_rows=skip_bad_rows))
    if not cfg.dataset.path:
        raise TrainError("dataset.path is empty; set it to a JSON, JSONL or CSV file of training examples.")
    try:
        loaded = read_dataset(cfg.dataset.path, cfg.dataset.format, dataset_dir=cfg.dataset.dataset_dir)
    except DataError as exc:
        raise TrainError(str(exc)) from None
    if loaded.errors and not skip_bad_rows:
        raise TrainError(format_problems(loaded.path, loaded.errors) + "; fix them or pass --skip-bad-rows.")
    examples = loaded.examples
    eval_examples: list[dict] = []
    if cfg.dataset.eval_path:
        try:
            eval_loaded = read_dataset(cfg.dataset.eval_path, cfg.dataset.format, dataset_dir=cfg.dataset.dataset_dir)
        except DataError as exc:
            raise TrainError(f"dataset.eval_path: {exc}") from None
        eval_examples = eval_loaded.examples
    elif cfg.dataset.val_split > 0 and len(examples) > 1:
        shuffled = examples[:]
        random.Random(cfg.training.seed).shuffle(shuffled)
        n_eval = max(1, int(len(shuffled) * cfg.dataset.val_split))
        eval_examples, examples = shuffled[:n_eval], shuffled[n_eval:]

    max_len = cfg.dataset.max_seq_length
    encoded = encode_dataset(tokenizer, examples, max_len)
    if not encoded.examples:
        raise TrainError(f"No example has an assistant/completion token within max_seq_length={max_len}; "
                         "raise dataset.max_seq_length or shorten the prompts.")
    encoded_eval = encode_dataset(tokenizer, eval_examples, max_len) if eval_examples else None
    stats = {
        "format": loaded.row_format, "encoding": loaded.encoding, "rows": loaded.total_rows,
        "train_examples": len(encoded.examples), "eval_examples": len(encoded_eval.examples) if encoded_eval else 0,
        "skipped_rows": len(loaded.errors), "truncated": encoded.truncated, "dropped_no_target": encoded.dropped_no_target,
        "total_tokens": encoded.total_tokens, "target_tokens": encoded.target_tokens, "max_seq_length": max_len,
        "kind": loaded.kind, "warnings": list(loaded.warnings),  # e.g. unreplaced {{name}} placeholders
    }
    return DataSplits(train=encoded.examples, eval=encoded_eval.examples if encoded_eval else [], stats=stats,
                      skipped_rows=loaded.errors)


def describe_data(data: DataSplits) -> str:
    s = data.stats
    text = (f"Data: {s['train_examples']} training examples ({s['format']}, {s['encoding']}), "
            f"{s['total_tokens']:,} tokens of which {s['target_tokens']:,} are trained on")
    if s["eval_examples"]:
        text += f"; {s['eval_examples']} eval examples"
    if s["truncated"]:
        text += f"; {s['truncated']} truncated to {s['max_seq_length']} tokens"
    if s["dropped_no_target"]:
        text += f"; {s['dropped_no_target']} dropped (no assistant token within the limit)"
    return text


def training_arguments(cfg: TrainConfig, out: Path, device: str, precision: Precision, has_eval: bool,
                       args_class=None, **overrides):
    """The Trainer's arguments; `args_class` (a TrainingArguments subclass such as TRL's DPOConfig) and
    `overrides` let the preference stages (trainer.training.preference) add their own fields."""
    from transformers import TrainingArguments

    t, o = cfg.training, cfg.optimizer
    fields = dict(
        output_dir=str(out),
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps if t.max_steps else -1,
        learning_rate=o.learning_rate,
        weight_decay=o.weight_decay,
        lr_scheduler_type=o.lr_scheduler,
        warmup_ratio=o.warmup_ratio,
        optim=OPTIMIZER_NAMES[o.type],
        bf16=precision.autocast == "bf16",
        fp16=precision.autocast == "fp16",
        use_cpu=device == "cpu",
        gradient_checkpointing=t.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if t.gradient_checkpointing else None,
        # Length-grouped batches keep dynamic padding small when examples are not packed.
        group_by_length=not t.packing,
        length_column_name="length",
        logging_steps=1,
        save_strategy="steps",
        save_steps=max(1, cfg.saving.save_every_n_steps),
        save_total_limit=max(1, cfg.saving.save_total_limit),
        # Validation loss at every checkpoint unless training.eval_every_n_steps says otherwise
        # (CheckpointCallback adds the last step), so each checkpoint reports one.
        eval_strategy="steps" if has_eval else "no",
        eval_steps=t.eval_every_n_steps or max(1, cfg.saving.save_every_n_steps),
        prediction_loss_only=True,
        seed=t.seed,
        data_seed=t.seed,
        remove_unused_columns=False,
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,
        log_level="warning",
    )
    fields.update(overrides)
    return (args_class or TrainingArguments)(**fields)


def build_trainer(cfg, model, tokenizer, data: DataSplits, out: Path, device: str, precision: Precision,
                  sink, should_stop):
    from datasets import Dataset

    from trainer.data.sft import SFTCollator
    from trainer.training.loop import SFTTrainer
    from trainer.training.tracking import tracking_callbacks

    def as_dataset(rows):
        return Dataset.from_list([{**r, "length": len(r["input_ids"])} for r in rows])

    holder: dict = {}
    metrics = MetricsCallback(lambda: holder["trainer"], sink)
    sampler = SampleCallback(tokenizer, list(cfg.sampling.prompts), cfg.sampling.every_n_steps, sink)
    stopper = StopCallback(should_stop or (lambda: False))
    callbacks = [metrics, sampler, stopper,
                 CheckpointCallback(tokenizer, sink, save_tokenizer=cfg.method.type not in ("lora", "qlora"),
                                    has_eval=bool(data.eval)),
                 *tracking_callbacks(cfg, out)]
    if cfg.method.stage != "sft":
        # DPO / ORPO / KTO: TRL's trainer on the same model and callbacks (checkpoints, events, resume unchanged).
        from trainer.training.preference import (
            build_preference_trainer,
            preference_arguments,
        )

        config_class, fields = preference_arguments(cfg)
        args = training_arguments(cfg, out, device, precision, bool(data.eval), args_class=config_class, **fields)
        trainer = build_preference_trainer(cfg, model, tokenizer, data, args, device, precision, callbacks)
    else:
        trainer = SFTTrainer(
            model=model,
            args=training_arguments(cfg, out, device, precision, bool(data.eval)),
            train_dataset=as_dataset(data.train),
            eval_dataset=as_dataset(data.eval) if data.eval else None,
            data_collator=SFTCollator(tokenizer.pad_token_id, packing=cfg.training.packing),
            callbacks=callbacks,
        )
    # The default printer writes raw log dicts to stdout, which would corrupt `--json` output.
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    holder["trainer"] = trainer
    return trainer, metrics, sampler, stopper


def run_training(trainer, resume_from: str | None) -> None:
    trainer.train(resume_from_checkpoint=resume_from)


def save_outputs(trainer, tokenizer, cfg: TrainConfig, out: Path, base_path: Path) -> str:
    """Final adapter (or model) + tokenizer + resolved config, written to a staging folder then renamed."""
    from trainer.planning.config_io import dump_config

    is_adapter = cfg.method.type in ("lora", "qlora")
    final = out / (FINAL_ADAPTER_DIR if is_adapter else FINAL_MODEL_DIR)
    staging = out / STAGING_DIRNAME / final.name
    if trainer.is_world_process_zero() and staging.exists():
        shutil.rmtree(staging)
    trainer.save_model(str(staging))
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(staging))
        if is_adapter:
            name_base_model(staging / "adapter_config.json", base_model_reference(cfg, base_path))
        atomic.replace_dir(staging, final)
        dump_config(cfg, out / "config.yaml")
    trainer.accelerator.wait_for_everyone()
    return str(final)


def name_base_model(adapter_config: Path, reference: str) -> None:
    """The final adapter names its base the way the user did, so an alias survives moving $TUNEPILOT_HOME."""
    import json

    data = json.loads(adapter_config.read_text(encoding="utf-8"))
    data["base_model_name_or_path"] = reference
    adapter_config.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")


def make_result(status, cfg, trainer, metrics, sampler, data, out, final_path, started, resume_from, peak_mb) -> TrainResult:
    losses = metrics.losses
    return TrainResult(
        status=status, output_dir=str(out), final_path=final_path,
        is_adapter=cfg.method.type in ("lora", "qlora"),
        global_step=trainer.state.global_step, total_steps=trainer.state.max_steps,
        trained_tokens=int(trainer.state.num_input_tokens_seen), train_loss=losses[-1]["loss"] if losses else None,
        losses=losses, eval_losses=metrics.eval_losses, samples=sampler.samples,
        duration_s=round(time.time() - started, 2), peak_memory_mb=round(peak_mb, 1),
        data_stats=data.stats, skipped_rows=data.skipped_rows, resumed_from=resume_from,
        world_size=trainer.args.world_size,
    )
