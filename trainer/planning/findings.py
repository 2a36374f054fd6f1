"""One `check_config()`: a training config's schema problems and rule findings, in one report.

Used by `tunepilot config validate`, `tunepilot config --from-text` (through
`assistant.config_from_text`) and the UI's config card, so all three say the same thing about the
same config. A file or data is parsed leniently (`trainer.planning.config_io`): every schema
problem becomes an error finding, and the rules (`trainer.planning.rules`) still run on the config
built from the valid parts, so one pass shows everything there is to fix. A file that cannot be
parsed at all (a syntax error) gives `config=None` and only that problem.

`Checked.to_dict()` is the `{"errors": [...], "warnings": [...]}` shape the CLI prints; every
finding has rule_id, severity, field, message, source and heading.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainer.models.device import Environment
from trainer.planning.config_io import parse_config_lenient
from trainer.planning.rules import Finding, ValidationReport, validate
from trainer.planning.schema import TrainConfig

# rule_id of a schema problem: in a file that parsed, in one that did not, and in a config the
# assistant built from a request (where the rejected value came from the request, not a file).
SCHEMA_RULE = "schema"
SYNTAX_RULE = "syntax"
REQUEST_SCHEMA_RULE = "config.schema"


@dataclass
class Checked:
    """The config built from the valid parts (None: the file could not be parsed) and every finding."""

    config: TrainConfig | None
    report: ValidationReport
    problems: list[dict] = field(default_factory=list)  # the schema problems as {"loc", "message"}

    @property
    def ok(self) -> bool:
        return not self.report.errors

    def to_dict(self) -> dict:
        return self.report.to_dict()


def schema_finding(problem: dict, rule_id: str = SCHEMA_RULE, source: str | None = None,
                   heading: str | None = None) -> Finding:
    """A config_io problem ({"loc", "message"}) as an error finding about its field."""
    return Finding(rule_id, "error", problem.get("loc", ""), problem["message"], source, heading)  # type: ignore[arg-type]


def _load_file(path: Path) -> tuple[TrainConfig | None, list[dict]]:
    """`load_config_lenient`, except that another tool's config (LLaMA-Factory, axolotl) is one problem naming
    the tool and `tunepilot config import`, instead of one unknown-key error per key."""
    from trainer.planning.config_io import ConfigError, read_config_data
    from trainer.planning.peer_configs import peer_format_problem

    try:
        data = read_config_data(path)
    except ConfigError as exc:
        return None, exc.problems
    peer = peer_format_problem(data, str(path))
    return (None, [peer]) if peer is not None else parse_config_lenient(data)


def check_config(data_or_path: Any, for_launch: bool = False, *, origin: str | None = None,
                 env: Environment | None = None, overwrite: bool = False, lang: str = "en") -> Checked:
    """Schema problems, then rule findings, of a config file (str / Path), plain data, or a TrainConfig.

    `origin` names where plain data came from when it is not a file (the assistant passes
    "request"): its schema problems are then `config.schema` findings with that source, which the
    UI keeps showing after the person edits the config. `for_launch`, `env`, `overwrite` and `lang`
    are passed to `rules.validate`.
    """
    if isinstance(data_or_path, TrainConfig):
        config, problems = data_or_path, []
    elif isinstance(data_or_path, (str, os.PathLike)):
        config, problems = _load_file(Path(data_or_path))
    else:
        config, problems = parse_config_lenient(data_or_path)
    if origin is not None:
        schema = [schema_finding(p, REQUEST_SCHEMA_RULE, origin, "") for p in problems]
    else:
        rule_id = SYNTAX_RULE if config is None else SCHEMA_RULE
        schema = [schema_finding(p, p.get("rule", rule_id)) for p in problems]  # "peer-format": another tool's file
    report = ValidationReport(errors=schema)
    if config is not None:
        found = validate(config, for_launch=for_launch, env=env, overwrite=overwrite, lang=lang)
        report.errors += found.errors
        report.warnings += found.warnings
    return Checked(config, report, problems)
