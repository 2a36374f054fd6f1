"""The fine-tuning engine, in layers (each sub-package imports only those listed before it):

- `models`: the model registry and GGUF provisioning, device/dtype policy, generation, chat format, catalogue;
- `data`: training-data formats, tokenisation with loss masks, the dataset check;
- `planning`: the config schema and its I/O, presets, validation rules, memory estimate, output folders, kohya;
- `training`: the recipe and what runs around it (methods, callbacks, merge, job card, finish_run);
- `jobs` and `run_config`: background jobs, and the `accelerate launch -m trainer.run_config` entry point;
- `server`: the OpenAI-compatible API over all of the above.

See INTERFACES.md for the whole layer map and `.importlinter` for the contracts CI checks.
"""
