"""The training config schema (TOML or YAML on disk), shared by the CLI, the assistant, jobs and the UI.

Sections and keys follow the contract in ARCHITECTURE.md; every section forbids unknown keys so a
typo is reported instead of silently ignored. Validation *between* fields (rules that cite the docs)
lives in `trainer.planning.rules`; this module only knows types and ranges a value can never leave.
Reading and writing files is `trainer.planning.config_io`'s.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSection(_Section):
    base_model: str = Field(
        "gemma-3-270m",
        description="Base model: the built-in alias `gemma-3-270m`, a local transformers folder, or a hub id (online only).",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights dtype. `auto` picks bfloat16 where the hardware runs it fast, else float32."
    )
    trust_remote_code: bool = Field(
        False, description="Allow code shipped with the model folder to run. Only for models you trust."
    )


class MethodSection(_Section):
    type: Literal["lora", "qlora", "full", "freeze"] = Field(
        "lora", description="Fine-tuning method: LoRA adapters, QLoRA (4-bit base, CUDA only), full, or freeze (train the last layers only)."
    )
    lora_r: int = Field(16, description="LoRA rank: size of the low-rank update matrices.")
    lora_alpha: int = Field(32, description="LoRA alpha: the update is scaled by alpha / r.")
    lora_dropout: float = Field(0.05, description="Dropout applied to the LoRA input, in [0, 1).")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear",
        description="Modules that get adapters: `all-linear` or a list of module names such as q_proj, v_proj.",
    )
    freeze_trainable_layers: int = Field(
        2, description="For `freeze`: how many of the last transformer layers are trained."
    )
    stage: Literal["sft", "dpo", "orpo", "kto"] = Field(
        "sft",
        description="Training objective: supervised fine-tuning, or preference tuning on chosen/rejected pairs "
        "(DPO, ORPO) or on replies labelled good/bad (KTO).",
    )
    pref_loss: Literal["sigmoid", "ipo", "hinge", "simpo"] = Field(
        "sigmoid",
        description="For `dpo`: the pairwise loss. sigmoid is DPO's, ipo and hinge are its regularised variants, "
        "simpo is reference-free (length-normalised, no reference model).",
    )
    beta: float = Field(
        0.1,
        description="For dpo/orpo/kto: how strongly the tuned model is held near the reference (dpo, kto) or the "
        "weight of the odds-ratio term (orpo); larger stays closer.",
    )


class DatasetSection(_Section):
    path: str = Field("", description="Training data: JSON, JSONL, CSV or TXT file. Its kind (chat, tool calling, "
                      "text, preference pairs or KTO) is detected and must suit method.stage; `tunepilot data check` shows it.")
    format: Literal["auto", "chat", "alpaca", "sharegpt", "prompt_completion", "text"] = Field(
        "auto", description="Row format of SFT data; `auto` detects it from the rows (preference and KTO rows are "
                            "always detected)."
    )
    eval_path: str | None = Field(None, description="Optional separate evaluation file.")
    val_split: float = Field(0.0, description="Fraction of training rows held out for evaluation when no eval_path is given.")
    max_seq_length: int = Field(1024, description="Examples are truncated to this many tokens.")
    dataset_dir: str | None = Field(
        None, description="Folder of a LLaMA-Factory dataset_info.json, for when dataset.path names its entries "
                          "(`identity,alpaca_en_demo`, concatenated in order); empty: `data/` beside the config file, "
                          "then in the current folder.")


class OptimizerSection(_Section):
    type: Literal["adamw", "adamw_8bit", "paged_adamw_8bit", "lion", "lion_8bit", "adafactor", "sgd"] = Field(
        "adamw", description="Optimizer. 8-bit and paged variants need CUDA and bitsandbytes."
    )
    learning_rate: float = Field(2e-4, description="Peak learning rate.")
    weight_decay: float = Field(0.0, description="Decoupled weight decay.")
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial"] = Field(
        "cosine", description="Learning-rate schedule after warmup."
    )
    warmup_ratio: float = Field(0.03, description="Fraction of the total steps spent warming the learning rate up from 0.")


class TrainingSection(_Section):
    epochs: float = Field(3, description="Passes over the training data.")
    max_steps: int | None = Field(None, description="Stop after this many optimizer steps (overrides epochs when set).")
    batch_size: int = Field(4, description="Examples per device per forward pass.")
    gradient_accumulation_steps: int = Field(1, description="Forward passes summed before each optimizer step.")
    gradient_checkpointing: bool = Field(False, description="Recompute activations in the backward pass to save memory (about 20-30% slower).")
    packing: bool = Field(False, description="Pack several examples into one sequence (without cross-example attention) to avoid padding.")
    seed: int = Field(42, description="Random seed for data order and initialisation.")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field("auto", description="Where to train; `auto` picks CUDA, then MPS, then CPU.")
    eval_every_n_steps: int | None = Field(
        None, ge=1, description="Measure the validation loss every N steps; empty: at every checkpoint "
                                "(saving.save_every_n_steps) and at the last step. Needs dataset.eval_path or val_split.")
    report_to: Literal["none", "tensorboard", "mlflow", "wandb"] = Field(
        "none", description="Where metrics are also logged: TensorBoard event files or an MLflow file store in the "
                            "output folder (offline, no account), or Weights & Biases (needs `pip install wandb`; "
                            "offline unless you ran `wandb login`).")
    tracking_project: str | None = Field(None, description="W&B project or MLflow experiment name (default: tunepilot).")
    tracking_run_name: str | None = Field(None, description="Run name in the tracker (default: the output folder's name).")
    tracking_entity: str | None = Field(None, description="W&B entity (team or user); empty uses your default.")
    tracking_tags: list[str] = Field(default_factory=list, description="Tags for the tracker's run.")


class HardwareSection(_Section):
    gpu: str | None = Field(None, description='GPU name such as "RTX 4090" or "A100-80G"; used for the memory estimate.')
    device_memory_gb: float | None = Field(None, description="Device memory in GB; overrides the value looked up from `gpu`.")


class SamplingSection(_Section):
    every_n_steps: int = Field(0, description="Generate from `prompts` every N steps (0 turns sampling off).")
    prompts: list[str] = Field(default_factory=list, description="Prompts used for sample generations during training.")


class SavingSection(_Section):
    output_dir: str = Field("", description="Where checkpoints and the adapter go; empty means a folder under $TUNEPILOT_HOME/runs.")
    save_every_n_steps: int = Field(50, description="Write a checkpoint every N optimizer steps.")
    save_total_limit: int = Field(2, description="Keep at most this many checkpoints.")
    suffix: str | None = Field(None, description="Short name that goes into the fine-tuned model id ft:<base>:<suffix>:<job-id>.")
    merge_after_training: bool = Field(False, description="Also write a standalone merged model after training.")


LORA_KEYS = ("lora_r", "lora_alpha", "lora_dropout", "target_modules")
PREFERENCE_KEYS = ("pref_loss", "beta")  # read only when method.stage is a preference stage


class TrainConfig(_Section):
    """A whole training config. Every section has defaults, so `TrainConfig()` is a valid LoRA config."""

    model: ModelSection = Field(default_factory=ModelSection, description="Base model.")
    method: MethodSection = Field(default_factory=MethodSection, description="Fine-tuning method.")
    dataset: DatasetSection = Field(default_factory=DatasetSection, description="Training data.")
    optimizer: OptimizerSection = Field(default_factory=OptimizerSection, description="Optimizer and schedule.")
    training: TrainingSection = Field(default_factory=TrainingSection, description="Loop settings.")
    hardware: HardwareSection = Field(default_factory=HardwareSection, description="Target hardware for the estimate.")
    sampling: SamplingSection = Field(default_factory=SamplingSection, description="Sample generations during training.")
    saving: SavingSection = Field(default_factory=SavingSection, description="Checkpoints and outputs.")

    def to_dict(self) -> dict:
        """Plain data for TOML/YAML/JSON (None values dropped: TOML has no null).

        Keys the chosen method does not read are left out (LoRA keys for full/freeze, the freeze
        layer count for the others), so a written file holds only settings that take effect and a
        user who adds a LoRA key to a full fine-tuning config can be told it is ignored.
        """
        data = self.model_dump(mode="json", exclude_none=True)
        method = data["method"]
        if self.method.type in ("full", "freeze"):
            for key in LORA_KEYS:
                method.pop(key, None)
        if self.method.type != "freeze":
            method.pop("freeze_trainable_layers", None)
        if self.method.stage == "sft":  # preference settings take no effect on SFT
            for key in PREFERENCE_KEYS:
                method.pop(key, None)
        elif self.method.stage != "dpo":
            method.pop("pref_loss", None)
        return data
