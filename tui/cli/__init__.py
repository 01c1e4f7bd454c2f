"""The `tunelab` command: one module per group of commands (run, check, results, sql, review,
chat, browse), assembled here in the order `tunelab --help` lists them.

May import engine, store, typer and rich; the training stack only inside the commands that
train, so `tunelab sql` and `tunelab trials` start without torch (tests/test_layers.py)."""

from __future__ import annotations

import sys
from importlib.metadata import version
from typing import Annotated, Any

import typer

from tunelab.store.errors import TunelabError
from tunelab.tui.cli import browse, chat, check, judge, results, run, sql
from tunelab.tui.cli.helptext import HelpGroup
from tunelab.tui.cli.layout import wrap
from tunelab.tui.cli.output import errors, width
from tunelab.tui.cli.review import review_app


class TunelabGroup(HelpGroup):
    """The `tunelab` group. A user's mistake (a TunelabError from any command under it) ends
    here in its title and message, never a traceback, with exit status 2 for the experiment
    file (SpecError) and 1 otherwise: said where every command is invoked, so the group alone
    is the whole command (the console script, and the tests' CliRunner, end the same way)."""

    def invoke(self, ctx: Any) -> Any:  # typer's own click Context (typer._click, private)
        try:
            return super().invoke(ctx)
        except TunelabError as error:
            from tunelab.engine.errors import SpecError

            errors.print(f"[bold red]{error.title}[/]")
            errors.print(wrap(error.message, width(), 2, is_markup=False))
            ctx.exit(2 if isinstance(error, SpecError) else 1)


app = typer.Typer(
    name="tunelab",
    help="Declare, search, compare, judge and ship language-model fine-tunes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=TunelabGroup,
)


def _print_version(asked: bool) -> None:
    if asked:
        print(f"tunelab {version('tunelab')}")
        raise typer.Exit()


@app.callback()
def _options(
    _version: Annotated[bool, typer.Option(
        "--version", help="Print tunelab's version and exit.", callback=_print_version,
        is_eager=True)] = False,
) -> None:
    pass  # the options of `tunelab` itself; each command has its own


for command in (run.run, run.worker, run.enqueue, run.confirm, check.check, check.schema,
                check.data, results.trials, results.export, run.rerun):
    app.command()(command)
app.command(context_settings=sql.SETTINGS)(sql.sql)
app.command("export-store")(results.export_store)
app.command()(results.gc)
app.command()(browse.tui)
judge.register(review_app)  # review judge, review judge-prompt
app.add_typer(review_app, name="review")
app.command("chat")(chat.chat)


def main() -> None:
    from tunelab.engine.run import quiet, threads

    quiet.install()  # the warnings every import of peft printed (engine/run/quiet.py)
    # before any command loads torch: a chat's OpenMP threads, beside a sweep's, spin ~0.1 ms
    # and then sleep, as the trials' do (engine/run/threads.py)
    threads.quiet_openmp()
    if len(sys.argv) == 1 and sys.stdin.isatty() and sys.stdout.isatty():
        sys.argv.append("tui")  # `tunelab` alone in a terminal opens the UI
    app()
