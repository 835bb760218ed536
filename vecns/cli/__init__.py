"""The ``vecns`` command line: the only package that imports click and rich.

Each command opens the store through ``CliState.store()`` (closed when the command ends) and prints its
result through ``CliState.emit()``: a rich table on a terminal, or JSON on stdout with ``--json``. A
``VecnsError`` becomes one line ``error: <message>`` on stderr and exit code 1; usage errors exit with 2.

This module holds the root group ``cli``, the shared state and the output helpers; the commands live in
submodules by responsibility (``namespaces``: ns, ingest, search, alias, models; ``migrations``: migrate,
cutover; ``evaluation``: eval, compare, bench; ``demo``: demo). A new command group goes in its own
submodule, which registers it on ``cli`` when imported::

    # vecns/cli/things.py
    import click

    from vecns.cli import CliState, cli, fields_table, pass_state

    @cli.group("things")
    def things_group() -> None:
        \"\"\"Manage things.\"\"\"

    @things_group.command("show")
    @click.argument("thing_id")
    @pass_state
    def things_show(state: CliState, thing_id: str) -> None:
        \"\"\"Show THING_ID.\"\"\"
        data = ...(state.store(), thing_id).to_dict()
        state.emit(data, lambda console: console.print(fields_table(data)))

and is imported at the bottom of this file, next to the others, so ``vecns --help`` lists it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from vecns.errors import StoreError, VecnsError
from vecns.store import DB_FILE, Store, connect

__all__ = ["CliError", "CliState", "cli", "emit_error", "fields_table", "main", "pass_state", "progress_bar", "table"]

DEFAULT_STORE = "vecns-store"
DEMO_PATH = "vecns-demo"
STORE_ENV = "VECNS_STORE"
FINGERPRINT_CHARS = 12
# Piped (non-terminal) output gets this width so tables are not cut at rich's default of 80 columns.
PIPE_WIDTH = 160
# The shell's convention for a command stopped by Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130


def one_line(message: str) -> str:
    """Collapse a message onto one line."""
    return re.sub(r"\s*\n\s*", " ", message).strip()


class CliError(click.ClickException):
    """A failure shown as ``error: <message>`` on stderr, exit code 1."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        """Print the one-line message on stderr (or ``file``)."""
        emit_error(self.format_message(), file=file)


def emit_error(message: str, *, file: IO[Any] | None = None) -> None:
    """Print ``error: <message>`` as one line on stderr (or ``file``)."""
    click.echo(f"error: {one_line(message)}", err=file is None, file=file)


class CliState:
    """What every command shares: the store path, the output mode, the open store and the console.

    Args:
        store_path: The store directory (from ``--store`` or ``VECNS_STORE``).
        as_json: Print JSON instead of tables.
    """

    def __init__(self, store_path: Path, *, as_json: bool) -> None:
        self.store_path = store_path
        self.as_json = as_json
        self._store: Store | None = None
        self._console: Console | None = None

    def store(self, *, create: bool = False) -> Store:
        """Open the store once per command; it is closed when the command ends.

        Args:
            create: Create the store when it does not exist yet (commands that write something new).

        Raises:
            StoreError: The store does not exist and ``create`` is false, or it cannot be opened.
        """
        if self._store is None:
            if not create and not (self.store_path / DB_FILE).is_file():
                raise StoreError(
                    f"no vecns store at {str(self.store_path)!r}; create one with 'vecns ns create', or point "
                    f"at an existing store with --store PATH or {STORE_ENV}."
                )
            self._store = connect(self.store_path)
        return self._store

    def close(self) -> None:
        """Close the store if a command opened it (saving its indexes)."""
        store, self._store = self._store, None
        if store is not None:
            store.close()

    @property
    def console(self) -> Console:
        """The rich console on stdout (wider than rich's default when stdout is not a terminal)."""
        if self._console is None:
            self._console = Console(highlight=False)
            if not self._console.is_terminal:
                self._console.width = PIPE_WIDTH
        return self._console

    @property
    def interactive(self) -> bool:
        """Whether progress bars may be drawn: stdout is a terminal and JSON was not asked for."""
        return not self.as_json and self.console.is_terminal

    def emit(self, data: Any, render: Callable[[Console], None] | None = None, *, message: str | None = None) -> None:
        """Print a command's result: ``data`` as JSON with ``--json``, else ``render`` it or print ``message``.

        Args:
            data: JSON-able result (dicts, lists, strings, numbers, None).
            render: Draws the human form on the console (tables).
            message: A plain line for the human form, printed after ``render``'s output.
        """
        if self.as_json:
            click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
            return
        if render is not None:
            render(self.console)
        if message is not None:
            self.console.print(Text(message))


pass_state = click.make_pass_decorator(CliState)


def _cell(value: Any) -> Text:
    if value is None:
        return Text("")
    if isinstance(value, bool):
        return Text("yes" if value else "no")
    if isinstance(value, float):
        return Text(f"{value:.4f}")
    if isinstance(value, (dict, list)):
        return Text(json.dumps(value, ensure_ascii=False, sort_keys=True, default=str))
    return Text(str(value))


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None) -> Table:
    """A rich table; cells are shown as plain text (never read as markup)."""
    out = Table(*columns, title=title, title_justify="left")
    for row in rows:
        out.add_row(*(_cell(value) for value in row))
    return out


def fields_table(fields: Mapping[str, Any], *, title: str | None = None) -> Table:
    """A two-column table of a record's fields."""
    out = Table(show_header=False, title=title, title_justify="left")
    out.add_column(style="bold")
    out.add_column()
    for name, value in fields.items():
        out.add_row(Text(name), _cell(value))
    return out


_JSON_HELP = "Print the result as JSON on stdout, and nothing else there (for scripts)."


def _json_after_command(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    state = ctx.find_object(CliState)
    if value and state is not None:
        state.as_json = True


class _Command(click.Command):
    """A sub-command that also takes ``--json`` after its name (``vecns migrate status ID --json``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(click.Option(["--json"], is_flag=True, expose_value=False, is_eager=True,
                                        callback=_json_after_command, help=_JSON_HELP))


class _Group(click.Group):
    """A command group whose commands (and sub-groups' commands) take ``--json`` after their name too."""

    command_class = _Command
    group_class = type  # sub-groups are _Group as well


class _RootGroup(_Group):
    """The top-level group: closes the store after every command and turns vecns errors into one line."""

    group_class = _Group  # not ``type``: the sub-groups must not close the store or translate errors again

    def invoke(self, ctx: click.Context) -> Any:
        try:
            try:
                return super().invoke(ctx)
            finally:
                if isinstance(ctx.obj, CliState):
                    ctx.obj.close()
        except VecnsError as exc:
            raise CliError(str(exc)) from exc
        except OSError as exc:
            raise CliError(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)) from exc


@click.group(cls=_RootGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--store", "store_path", envvar=STORE_ENV, default=DEFAULT_STORE, show_default=True,
              show_envvar=True, type=click.Path(file_okay=False, path_type=Path),
              help="The store directory (vecns.duckdb plus indexes/).")
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP + " Also accepted after any sub-command.")
@click.version_option(package_name="vecns", prog_name="vecns", message="%(prog)s %(version)s",
                      help="Show the vecns version and exit.")
@click.pass_context
def cli(ctx: click.Context, store_path: Path, as_json: bool) -> None:
    """vecns: a local vector store whose namespaces lock their embedding model."""
    ctx.obj = CliState(store_path, as_json=as_json)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``vecns`` command line (the console script's entry point).

    Args:
        argv: Arguments without the program name; default: ``sys.argv[1:]``.
    """
    cli.main(args=list(argv) if argv is not None else None, prog_name="vecns")


def progress_bar(console: Console) -> Progress:
    """A rich progress bar (description, bar, done/total, elapsed, remaining) on ``console``."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console)


# The submodules register their commands on ``cli`` as they are imported.
from vecns.cli import demo, evaluation, migrations, namespaces  # noqa: E402, F401
