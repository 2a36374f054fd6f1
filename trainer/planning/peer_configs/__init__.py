"""Configs of other fine-tuning tools (LLaMA-Factory, axolotl): recognise, import, export.

- `detect(data)` names the tool a parsed YAML/JSON mapping was written for (None: not a known one);
- `import_file(path, source="auto")` / `import_data(data, source)` map every key to tunepilot's
  schema and return `(TrainConfig, MappingReport)`: each key of the file is `mapped`, `changed` (with
  why), `not_supported` (with the nearest feature) or `empty`, never dropped without a word;
- `export_config(cfg, to)` writes the reverse, with a report of what does not carry over;
- `peer_format_problem(data)` is the one-line config problem `config validate` shows for such a file.

One module per tool (`llamafactory`, `axolotl`), each with NAME, TITLE, `detect_score(data)`,
`import_config(data)` and `export_config(cfg)`; `FORMATS` lists them, so another tool is one module
and one line here.
"""

from __future__ import annotations

from pathlib import Path

from trainer.planning.peer_configs import axolotl, llamafactory
from trainer.planning.peer_configs.report import KeyReport, MappingReport
from trainer.planning.schema import TrainConfig
from tunepilot.core.errors import UserError

FORMATS = {llamafactory.NAME: llamafactory, axolotl.NAME: axolotl}
_MIN_SCORE = 3  # signature keys needed before a file is called a peer's (a typo'd tunepilot file has none)

__all__ = ["FORMATS", "KeyReport", "MappingReport", "PeerFormatError", "detect", "export_config", "import_data",
           "import_file", "peer_format_problem"]


class PeerFormatError(UserError, ValueError):
    """A file that is not in the format asked for, or in no known format."""


def known_formats() -> str:
    # kohya files are diffusion configs (trainer.planning.diffusion_import); `config import` routes them there.
    return ", ".join(f"{m.TITLE} ({name})" for name, m in FORMATS.items()) + ", kohya sd-scripts / kohya_ss (kohya)"


def _is_tunepilot(data: dict) -> bool:
    sections = set(TrainConfig.model_fields)
    return any(k in sections and isinstance(v, dict) for k, v in data.items())


def detect(data) -> str | None:
    """The peer format of a parsed config mapping, or None (tunepilot's own, or nothing known)."""
    if not isinstance(data, dict) or _is_tunepilot(data):
        return None
    scores = {name: module.detect_score(data) for name, module in FORMATS.items()}
    best = max(scores, key=scores.get)
    ranked = sorted(scores.values(), reverse=True)
    if scores[best] < _MIN_SCORE or (len(ranked) > 1 and ranked[0] == ranked[1]):
        return None
    return best


def _read(path: str | Path) -> dict:
    from trainer.planning.config_io import read_config_data

    return read_config_data(path)


def import_data(data: dict, source: str = "auto", origin: str = "the file") -> tuple[TrainConfig, MappingReport]:
    """Map a peer config (plain data) to a TrainConfig; PeerFormatError when the format is unknown or not `source`."""
    if not isinstance(data, dict):
        raise PeerFormatError(f"{origin} is not a mapping of keys; known formats: {known_formats()}")
    found = detect(data)
    if source == "auto":
        if found is None:
            if _is_tunepilot(data):
                raise PeerFormatError(f"{origin} is already a tunepilot config; check it with `tunepilot config validate`.")
            raise PeerFormatError(f"{origin} is in no known config format; known formats: {known_formats()} "
                                  f"(or pass --from to say which).")
        source = found
    if source not in FORMATS:
        raise PeerFormatError(f"unknown source format {source!r}; known formats: {known_formats()}")
    if found is not None and found != source:
        raise PeerFormatError(f"{origin} looks like {FORMATS[found].TITLE}'s config format, not {FORMATS[source].TITLE}'s; "
                              f"pass --from {found} (or --from auto).")
    return FORMATS[source].import_config(data)


def import_file(path: str | Path, source: str = "auto") -> tuple[TrainConfig, MappingReport]:
    """Read a peer's YAML/JSON config file and map it (see `import_data`)."""
    config, report = import_data(_read(path), source, origin=str(path))
    report.notes.insert(0, f"read {path}")
    return config, report


def export_config(cfg: TrainConfig, to: str, base: str | Path | None = None) -> MappingReport:
    """A peer's config for `cfg` (in `.data`) and what did and did not carry over; `base` is the config
    file's folder (relative registry folders are resolved against it)."""
    if to not in FORMATS:
        raise PeerFormatError(f"unknown target format {to!r}; known formats: {known_formats()}")
    return FORMATS[to].export_config(cfg, base=base)


def peer_format_problem(data, name: str = "this file") -> dict | None:
    """One config problem for a peer's file (instead of one unknown-key error per key), or None."""
    from trainer.planning.diffusion_import import kohya_format_problem

    kohya = kohya_format_problem(data, name) if isinstance(data, dict) else None
    if kohya is not None:
        return kohya
    found = detect(data)
    if found is None:
        return None
    title = FORMATS[found].TITLE
    article = "an" if title[0].lower() in "aeiou" else "a"
    return {"loc": "", "rule": "peer-format",
            "message": f"{name} is {article} {title} config, not a tunepilot one; convert it with "
                       f"`tunepilot config import {name} --out config.toml` (every key is mapped or named)"}
