"""`crm-automation topics` commands."""

import typer

app = typer.Typer(no_args_is_help=True, help="topics commands")
