"""The `tunepilot` command: a thin typer front over the library.

Each command group lives in its own module of `tunepilot.cli` with a `register(app)` function, so the parts of
the product (models, config, knowledge, jobs, evals, server, UI) stay apart.
"""

from __future__ import annotations

from tunepilot.cli import assistant as cli_assistant
from tunepilot.cli import config as cli_config
from tunepilot.cli import eval as cli_eval
from tunepilot.cli import export as cli_export
from tunepilot.cli import feedback as cli_feedback
from tunepilot.cli import knowledge as cli_knowledge
from tunepilot.cli import models as cli_models
from tunepilot.cli import serve as cli_serve
from tunepilot.cli import train as cli_train
from tunepilot.cli import ui as cli_ui
from tunepilot.cli.common import Typer

app = Typer(  # keeps `--json` stdout clean of native libraries' output (tunepilot.cli.common)
    name="tunepilot",
    help="Fine-tuning copilot: ask, configure, train, evaluate and compare.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (cli_assistant, cli_config, cli_knowledge, cli_train, cli_eval, cli_export, cli_feedback, cli_models, cli_serve, cli_ui):
    module.register(app)


if __name__ == "__main__":  # pragma: no cover
    app()
