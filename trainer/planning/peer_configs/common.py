"""What the peer importers share: a builder that records every key it reads, and the value tables
(optimizers, schedulers, dtypes) that LLaMA-Factory and axolotl both take from Hugging Face's Trainer.

`Importer` collects the tunepilot config as nested plain data and one `KeyReport` per source key.
`finish()` then validates the result with the one config reader (`trainer.planning.config_io`): a value
the schema rejects, or a key that takes no effect under the chosen method, is moved to `not_supported`
with the reason, so the report never claims a key was carried when it was not.
"""

from __future__ import annotations

from typing import Any

from trainer.planning.peer_configs.report import MappingReport
from trainer.planning.schema import TrainConfig

# Hugging Face `optim` / axolotl `optimizer` names -> optimizer.type, with why when the name says more than ours.
OPTIMIZERS: dict[str, tuple[str, str]] = {
    "adamw_torch": ("adamw", ""),
    "adamw_torch_fused": ("adamw", "the fused kernel is PyTorch's choice; the update is the same AdamW"),
    "adamw_hf": ("adamw", "Hugging Face's own AdamW is deprecated; PyTorch's AdamW computes the same update"),
    "adamw": ("adamw", ""),
    "adamw_bnb_8bit": ("adamw_8bit", ""),
    "adamw_8bit": ("adamw_8bit", ""),
    "paged_adamw_8bit": ("paged_adamw_8bit", ""),
    "paged_adamw_32bit": ("adamw", "paging (moving optimizer states to CPU memory under pressure) is only offered for 8-bit AdamW"),
    "lion_32bit": ("lion", ""),
    "lion": ("lion", ""),
    "lion_8bit": ("lion_8bit", ""),
    "paged_lion_8bit": ("lion_8bit", "paging is not offered for Lion; plain 8-bit Lion is used"),
    "adafactor": ("adafactor", ""),
    "sgd": ("sgd", ""),
}
# optimizer.type -> the Hugging Face name both peers accept.
OPTIMIZER_NAMES = {"adamw": "adamw_torch", "adamw_8bit": "adamw_bnb_8bit", "paged_adamw_8bit": "paged_adamw_8bit",
                   "lion": "lion_32bit", "lion_8bit": "lion_8bit", "adafactor": "adafactor", "sgd": "sgd"}
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup", "cosine_with_restarts", "polynomial")

RUN_ELSEWHERE = "multi-GPU runs: `accelerate launch -m trainer.run_config CONFIG` (data parallel, accelerate's defaults)"
RESUMES = "tunepilot resumes from the last checkpoint in saving.output_dir by itself"
TEMPLATE = "tunepilot formats chats with the model's own chat template (from its tokenizer)"
LOGGING = "tunepilot logs loss and learning rate at every step (training.report_to sends them to a tracker)"
HUB = "tunepilot does not upload; push the output folder yourself (e.g. `huggingface-cli upload`)"
MEDIA = "tunepilot trains text-only models; unsupported"


def has_field(target: str) -> bool:
    """Whether the schema has the dotted key (fields other helpers add, such as method.stage, are checked, not assumed)."""
    section, _, key = target.partition(".")
    field = TrainConfig.model_fields.get(section)
    return field is not None and key in field.annotation.model_fields  # type: ignore[union-attr]


def allowed_values(target: str) -> tuple | None:
    """The Literal choices of a dotted key, or None."""
    import typing

    section, _, key = target.partition(".")
    annotation = TrainConfig.model_fields[section].annotation.model_fields[key].annotation  # type: ignore[union-attr]
    args = typing.get_args(annotation)
    return args if args and all(isinstance(a, str) for a in args) else None


def is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value == [] or value == {}


def as_float(value: Any) -> Any:
    """YAML 1.1 reads `5e-5` (no dot) as text; a number written that way is still a number."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


class Importer:
    """Builds a tunepilot config from a peer's keys, reporting every key once."""

    def __init__(self, source_format: str, data: dict):
        self.source = data
        self.out: dict[str, dict] = {}
        self.report = MappingReport(source_format, "tunepilot")
        self.seen: set[str] = set()

    # -- recording
    def set(self, target: str, value: Any) -> None:
        section, _, key = target.partition(".")
        self.out.setdefault(section, {})[key] = value

    def get(self, target: str, default: Any = None) -> Any:
        section, _, key = target.partition(".")
        return self.out.get(section, {}).get(key, default)

    def mapped(self, key: str, target: str, value: Any = None, new_value: Any = None, note: str = "") -> None:
        value = self.source.get(key) if value is None else value
        new_value = value if new_value is None else new_value
        self.set(target, new_value)
        self.report.add(key, value, "mapped", target, new_value, note)

    def changed(self, key: str, target: str, new_value: Any, why: str, value: Any = None) -> None:
        value = self.source.get(key) if value is None else value
        self.set(target, new_value)
        self.report.add(key, value, "changed", target, new_value, why)

    def unsupported(self, key: str, nearest: str = "unsupported", value: Any = None) -> None:
        self.report.add(key, self.source.get(key) if value is None else value, "not_supported", why=nearest)

    def empty(self, key: str) -> None:
        self.report.add(key, self.source.get(key), "empty", why="no value given: the peer's default applies")

    def default(self, target: str, value: Any, why: str) -> None:
        """A setting the file leaves out whose peer default differs from tunepilot's: written explicitly."""
        if self.get(target) is None:
            self.set(target, value)
            self.report.add("(not set)", None, "default", target, value, why)

    # -- finishing
    def finish(self) -> tuple[TrainConfig, MappingReport]:
        from trainer.planning.config_io import parse_config_lenient

        config, problems = parse_config_lenient(self.out)
        by_target = {e.target: e for e in self.report.entries if e.target}
        for problem in problems:
            entry = by_target.get(problem["loc"])
            if entry is not None:
                self._reject(entry, f"{problem['loc']}: {problem['message']}")
            else:  # not from a key of ours; still say it
                self.report.notes.append(f"{problem['loc']}: {problem['message']}")
        written = config.to_dict()
        for entry in self.report.entries:
            if entry.target and entry.status in ("mapped", "changed", "default"):
                section, _, key = entry.target.partition(".")
                if key not in written.get(section, {}):
                    self._reject(entry, f"{entry.target} takes no effect with method.type = {config.method.type}"
                                        + (f" and method.stage = {config.method.stage}" if has_field("method.stage") else ""))
        self.report.data = written
        return config, self.report

    def _reject(self, entry, why: str) -> None:
        if entry.status == "default":
            self.report.entries.remove(entry)
            self.report.notes.append(f"the peer default {entry.target} = {entry.new_value!r} was not carried: {why}")
            return
        entry.status, entry.why, entry.target, entry.new_value = "not_supported", why, None, None
