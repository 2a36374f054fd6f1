"""Training data: reading every supported format into messages (`formats`), tokenising with
assistant-only loss masks (`sft`), and the per-line dataset check (`check`)."""

# Registers the LLaMA-Factory dataset_info.json reader with `formats.read_dataset` (dataset.path = entry names).
from trainer.data import dataset_info as _dataset_info  # noqa: F401
from trainer.data import formats as _formats
from trainer.data import preference as _preference

# `formats` tells preference/KTO rows apart and hands them to `preference`, which reads their turns with
# `formats`' chat readers; wired here so neither sibling imports the other in both directions.
_formats.install_preference_reader(_preference)
