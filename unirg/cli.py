"""The ``unirg`` command: the distribution's top layer, composing the commands of its parts.

The service's commands and groups (``serve``, ``score``, ``settings``, ``profiles``, ``models``,
``rules``, ``keys``: ``reward_service/cli.py``), ``train`` (``trainer/cli.py``) and ``eval``
(``unirg/evaluation/cli.py``). Each part imports heavy libraries only when its command runs.
"""

from __future__ import annotations

import typer

from reward_service.cli import service_app
from trainer.cli import train as train_command
from unirg.evaluation.cli import EPILOG as EVAL_EPILOG
from unirg.evaluation.cli import eval_command

app = typer.Typer(
    help="UniRG: clinically grounded rewards for radiology report generation.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.command("train")(train_command)
app.command("eval", epilog=EVAL_EPILOG)(eval_command)
app.add_typer(service_app)  # no name: serve, score, ... become commands of `unirg` itself
