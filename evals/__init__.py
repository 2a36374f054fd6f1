"""Evals: score base and fine-tuned models side by side on JSON/JSONL/CSV test sets.

Modules, each with one concern:
- `datasets`: load rows from JSON/JSONL/CSV/TSV in any common encoding; PromptLayer CSV import/export.
- `spec`: the eval config (YAML file or CLI flags) as an `EvalSpec`; prompt templates.
- `providers`: local models (base, `ft:` adapters, folders) and `openai:<model>` endpoints.
- `scorers`: the scoring functions, by name (`SCORERS`).
- `runner`: `run_eval(spec)` — batched generation, scoring, resumable results.
- `report`: results.jsonl / summary.json / results.csv / report.html in the run folder.
- `compare`: per-row wins/losses/ties and paired bootstrap intervals between two runs or models.
- `promptlayer_log`: optional logging of generations and scores to PromptLayer.
"""
