"""The ``vecns`` command line: the only module that imports click and rich.

Each command opens the store through ``CliState.store()`` (closed when the command ends) and prints its
result through ``CliState.emit()``: a rich table on a terminal, or JSON on stdout with ``--json``. A
``VecnsError`` becomes one line ``error: <message>`` on stderr and exit code 1; usage errors exit with 2.
New command groups follow the same pattern::

    @cli.group("migrate")
    def migrate_group() -> None:
        \"\"\"Move a namespace to a new embedding model.\"\"\"

    @migrate_group.command("status")
    @click.argument("migration_id")
    @pass_state
    def migrate_status(state: CliState, migration_id: str) -> None:
        \"\"\"Show a migration's progress.\"\"\"
        status = ...(state.store(), migration_id)
        state.emit(status.to_dict(), lambda console: console.print(fields_table(status.to_dict())))
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from vecns.beir import BeirData, ingest_beir, load_beir
from vecns.errors import ConfigError, FilterError, StoreError, ValidationError, VecnsError
from vecns.evaluate import Comparison, EvalReport, ModelBench, bench_models, compare, evaluate, plot_bench
from vecns.index import DTYPES, METRICS
from vecns.ingest import FILE_FORMATS, ingest_file
from vecns.migrate.config import MIGRATION_TYPES
from vecns.migrate.manager import STATUSES, Migration, MigrationStatus
from vecns.migrate.plan import ValidationReport
from vecns.namespace import DEFAULT_BATCH_SIZE, Namespace
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


class _RootGroup(click.Group):
    """The top-level group: closes the store after every command and turns vecns errors into one line."""

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
@click.option("--json", "as_json", is_flag=True,
              help="Print the result as JSON on stdout, and nothing else there (for scripts).")
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


# -- namespaces ----------------------------------------------------------------------------------


def _namespace_dict(store: Store, ns: Namespace, *, aliases: Sequence[Any] | None = None) -> dict[str, Any]:
    aliases = [a.name for a in (store.aliases.list() if aliases is None else aliases) if a.namespace_id == ns.id]
    return {
        "name": ns.name, "id": ns.id, "created_at": ns.created_at.isoformat(),
        "description": ns.record.description, "count": ns.count(), "aliases": aliases,
        "features": [
            {"name": f.name, "extractor": f.extractor, "version": f.version, "model_id": f.model_id, "dim": f.dim,
             "metric": f.metric, "dtype": f.dtype, "fingerprint": f.fingerprint}
            for f in ns.features
        ],
    }


def _render_namespace(data: Mapping[str, Any]) -> Callable[[Console], None]:
    def render(console: Console) -> None:
        head = {k: data[k] for k in ("name", "id", "created_at", "description", "count")}
        head["aliases"] = ", ".join(data["aliases"]) or None
        console.print(fields_table(head))
        console.print(table(
            ("feature", "model", "dim", "metric", "dtype", "fingerprint"),
            ((f["name"], f["model_id"], f["dim"], f["metric"], f["dtype"], f["fingerprint"][:FINGERPRINT_CHARS])
             for f in data["features"]),
        ))
    return render


@cli.group("ns")
def ns_group() -> None:
    """Create, list, show and drop namespaces."""


@ns_group.command("create")
@click.argument("name")
@click.option("--model", "model_id", default=None,
              help="Model id whose vectors the namespace locks to [default: the store's default model].")
@click.option("--dim", type=int, default=None,
              help="Vector dimension for a namespace whose vectors you bring (no model runs).")
@click.option("--model-label", default=None,
              help="With --dim: what produced your vectors (recorded and part of the lock) [default: external].")
@click.option("--metric", type=click.Choice(METRICS), default="cos", show_default=True,
              help="Distance metric of the index.")
@click.option("--dtype", type=click.Choice(DTYPES), default="f16", show_default=True,
              help="Scalar type of the index (f16 halves memory at the same recall).")
@click.option("--description", default=None, help="Free text kept with the namespace.")
@pass_state
def ns_create(state: CliState, name: str, model_id: str | None, dim: int | None, model_label: str | None,
              metric: str, dtype: str, description: str | None) -> None:
    """Create namespace NAME, locked to one model (or to --dim for your own vectors)."""
    if model_label is not None and dim is None:
        raise click.UsageError("--model-label only applies together with --dim.")
    store = state.store(create=True)
    ns = store.create_namespace(name, model_id, dim=dim, model_label=model_label, metric=metric, dtype=dtype,
                                description=description)
    data = _namespace_dict(store, ns)
    state.emit(data, _render_namespace(data),
               message=f"created namespace {ns.name!r} ({ns.id}), locked to {ns.model_id} dim={ns.dim}")


@ns_group.command("list")
@pass_state
def ns_list(state: CliState) -> None:
    """List every namespace with its model, dim, count and aliases."""
    store = state.store()
    aliases = store.aliases.list()
    data = [_namespace_dict(store, ns, aliases=aliases) for ns in store.namespaces()]
    state.emit(data, lambda console: console.print(table(
        ("name", "id", "model", "dim", "metric", "count", "aliases", "created"),
        ((d["name"], d["id"], d["features"][0]["model_id"], d["features"][0]["dim"], d["features"][0]["metric"],
          d["count"], ", ".join(d["aliases"]), d["created_at"][:19]) for d in data),
    )) if data else console.print(Text("no namespaces yet; create one with 'vecns ns create NAME'.")))


@ns_group.command("show")
@click.argument("name")
@pass_state
def ns_show(state: CliState, name: str) -> None:
    """Show namespace NAME (a name, an id or an alias): features, locks, count and aliases."""
    store = state.store()
    data = _namespace_dict(store, store.namespace(name))
    state.emit(data, _render_namespace(data))


@ns_group.command("drop")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Drop without asking for confirmation.")
@pass_state
def ns_drop(state: CliState, name: str, yes: bool) -> None:
    """Drop namespace NAME with its objects, vectors and indexes (cannot be undone)."""
    store = state.store()
    ns = store.namespace(name)
    if not yes:
        click.confirm(f"Drop namespace {ns.name!r} ({ns.id}) and its {ns.count()} objects? This cannot be undone.",
                      abort=True, err=True)
    store.drop_namespace(ns.id)
    state.emit({"dropped": ns.name, "id": ns.id}, message=f"dropped namespace {ns.name!r} ({ns.id})")


# -- ingest and search ---------------------------------------------------------------------------


@cli.command("ingest")
@click.argument("namespace")
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--beir", "beir_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Ingest the corpus of this BEIR folder instead of FILE (text = 'title. text').")
@click.option("--split", default="test", show_default=True, help="With --beir: the qrels split the folder holds.")
@click.option("--format", "file_format", type=click.Choice(FILE_FORMATS), default=None,
              help="File format [default: from the extension: .jsonl/.ndjson/.json, .parquet, .csv/.tsv].")
@click.option("--id-field", default="id", show_default=True, help="Column holding each object's id.")
@click.option("--text-field", default="text", show_default=True,
              help="Column holding the text to embed (required for namespaces with a model).")
@click.option("--collection-field", default=None,
              help="Column holding each object's collection [default: 'collection' when the file has it].")
@click.option("--collection", default=None, help="Put every object into this collection (instead of a column).")
@click.option("--metadata-fields", default=None,
              help="Comma-separated columns kept as metadata [default: every column not used otherwise].")
@click.option("--vector-field", default="vector", show_default=True,
              help="Column holding each vector, for namespaces created with --dim.")
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULT_BATCH_SIZE, show_default=True,
              help="Rows read, embedded and committed per transaction.")
@click.option("--upsert", is_flag=True, help="Replace objects whose id exists (default: refuse them).")
@pass_state
def ingest(state: CliState, namespace: str, file: Path | None, beir_dir: Path | None, split: str,
           file_format: str | None, id_field: str, text_field: str, collection_field: str | None,
           collection: str | None, metadata_fields: str | None, vector_field: str, batch_size: int,
           upsert: bool) -> None:
    """Load objects from FILE (JSONL, Parquet or CSV), or a BEIR folder's corpus, into NAMESPACE, batch by batch."""
    if (file is None) == (beir_dir is None):
        raise click.UsageError("give either FILE or --beir DIR (one of them).")
    if beir_dir is not None:
        _ingest_beir(state, namespace, load_beir(beir_dir, split), batch_size=batch_size, upsert=upsert)
        return
    if collection is not None and collection_field is not None:
        raise click.UsageError("give either --collection or --collection-field, not both.")
    fields = None
    if metadata_fields is not None:
        fields = [part.strip() for part in metadata_fields.split(",") if part.strip()]
    ns = state.store().namespace(namespace)
    options: dict[str, Any] = dict(
        file_format=file_format, id_field=id_field, text_field=text_field, collection_field=collection_field,
        collection=collection, metadata_fields=fields, vector_field=vector_field, batch_size=batch_size,
        upsert=upsert,
    )
    if state.interactive:
        with progress_bar(state.console) as bar:
            task = bar.add_task(f"ingest {file.name} -> {ns.name}", total=None)

            def progress(done: int, total: int | None) -> None:
                bar.update(task, completed=done, total=total)

            report = ingest_file(ns, file, progress=progress, **options)
    else:
        report = ingest_file(ns, file, **options)
    state.emit(report.to_dict(), message=(
        f"ingested {report.count} objects into {ns.name!r} from {file.name} in {report.seconds:.2f} s "
        f"({report.docs_per_second:,.0f} docs/s)"
    ))


def _ingest_beir(state: CliState, namespace: str, data: BeirData, *, batch_size: int, upsert: bool) -> None:
    ns = state.store().namespace(namespace)
    if state.interactive:
        with progress_bar(state.console) as bar:
            task = bar.add_task(f"ingest {data.name} -> {ns.name}", total=len(data.corpus))
            report = ingest_beir(ns, data, batch_size=batch_size, upsert=upsert,
                                 progress=lambda done, total: bar.update(task, completed=done, total=total))
    else:
        report = ingest_beir(ns, data, batch_size=batch_size, upsert=upsert)
    state.emit(report.to_dict(), message=(
        f"ingested {report.count} documents of {data.name!r} into {ns.name!r} in {report.seconds:.2f} s "
        f"({report.docs_per_second:,.0f} docs/s)"
    ))


def progress_bar(console: Console) -> Progress:
    """A rich progress bar (description, bar, done/total, elapsed, remaining) on ``console``."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console)


def _parse_json(value: str, *, what: str, error: type[VecnsError]) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise error(f"{what} is not valid JSON ({exc}); got {value!r}.") from exc


@cli.command("search")
@click.argument("namespace")
@click.argument("query")
@click.option("-k", "k", type=int, default=10, show_default=True, help="How many hits to return.")
@click.option("--filter", "filter_json", default=None,
              help='Filter as JSON, e.g. \'{"collection_ids": ["faq"], "metadata": {"year": {"$gte": 2020}}}\'.')
@click.option("--text", "include_text", is_flag=True, help="Also show each hit's text.")
@click.option("--vector", "as_vector", is_flag=True,
              help="QUERY is a JSON array of numbers (for namespaces whose vectors you bring).")
@click.option("--feature", default=None, help="Feature to search [default: the namespace's first].")
@pass_state
def search(state: CliState, namespace: str, query: str, k: int, filter_json: str | None, include_text: bool,
           as_vector: bool, feature: str | None) -> None:
    """Find the objects of NAMESPACE (a name or an alias) closest to QUERY."""
    filters = None
    if filter_json is not None:
        filters = _parse_json(filter_json, what="--filter", error=FilterError)
        if not isinstance(filters, dict):
            raise FilterError(f"--filter must be a JSON object; got {type(filters).__name__} {filter_json!r}.")
    target: Any = query
    if as_vector:
        target = _parse_json(query, what="the vector QUERY", error=ValidationError)
        if not isinstance(target, list):
            raise ValidationError(f"with --vector, QUERY must be a JSON array of numbers; got {query!r}.")
    ns = state.store().namespace(namespace)
    hits = ns.search(target, k=k, filters=filters, include_text=include_text, feature=feature)
    data = [{key: value for key, value in hit.to_dict().items() if include_text or key != "text"} for hit in hits]
    columns = ("id", "score", "collection", "metadata") + (("text",) if include_text else ())
    state.emit(data, lambda console: console.print(
        table(columns, ([row[c] for c in columns] for row in data)) if data else Text("no hits")
    ))


# -- aliases -------------------------------------------------------------------------------------


def _alias_dict(store: Store, info: Any) -> dict[str, Any]:
    names = {ns.id: ns.name for ns in store.namespaces()}
    data = info.to_dict()
    data["previous_namespace"] = names.get(info.previous_namespace_id) if info.previous_namespace_id else None
    return data


@cli.group("alias")
def alias_group() -> None:
    """Names that point at a namespace; applications read through them."""


@alias_group.command("set")
@click.argument("alias")
@click.argument("namespace")
@pass_state
def alias_set(state: CliState, alias: str, namespace: str) -> None:
    """Point ALIAS at NAMESPACE (the one it named before is kept for rollback)."""
    store = state.store()
    data = _alias_dict(store, store.aliases.set(alias, namespace))
    state.emit(data, message=f"alias {alias!r} -> {data['namespace']!r}")


@alias_group.command("list")
@pass_state
def alias_list(state: CliState) -> None:
    """List every alias and the namespace it names."""
    store = state.store()
    data = [_alias_dict(store, info) for info in store.aliases.list()]
    state.emit(data, lambda console: console.print(table(
        ("alias", "namespace", "namespace id", "previous", "updated"),
        ((d["name"], d["namespace"], d["namespace_id"], d["previous_namespace"], d["updated_at"][:19])
         for d in data),
    )) if data else console.print(Text("no aliases yet; create one with 'vecns alias set ALIAS NAMESPACE'.")))


@alias_group.command("show")
@click.argument("alias")
@pass_state
def alias_show(state: CliState, alias: str) -> None:
    """Show which namespace ALIAS names, and which it named before."""
    store = state.store()
    data = _alias_dict(store, store.aliases.get(alias))
    state.emit(data, lambda console: console.print(fields_table(data)))


@alias_group.command("delete")
@click.argument("alias")
@pass_state
def alias_delete(state: CliState, alias: str) -> None:
    """Remove ALIAS (its namespace stays)."""
    state.store().aliases.delete(alias)
    state.emit({"deleted": alias}, message=f"deleted alias {alias!r}")


@alias_group.command("rollback")
@click.argument("alias")
@pass_state
def alias_rollback(state: CliState, alias: str) -> None:
    """Move ALIAS back to the namespace it named before its last move."""
    store = state.store()
    data = _alias_dict(store, store.aliases.rollback(alias))
    state.emit(data, message=f"alias {alias!r} -> {data['namespace']!r} (was {data['previous_namespace']!r})")


# -- models --------------------------------------------------------------------------------------


@cli.group("models")
def models_group() -> None:
    """Embedding models known to the store, and the default for new namespaces."""


@models_group.command("list")
@pass_state
def models_list(state: CliState) -> None:
    """List known models: builtin cards and registered folders."""
    data = [info.to_dict() for info in state.store().models.list()]
    state.emit(data, lambda console: console.print(table(
        ("model", "dim", "max tokens", "installed", "default", "source", "description"),
        ((d["model_id"], d["dim"], d["max_tokens"], d["installed"], d["default"], d["source"], d["description"])
         for d in data),
    )))


def _model_dict(store: Store, model_id: str) -> dict[str, Any]:
    spec = store.models.get(model_id)
    data = spec.to_dict()
    data["installed"] = spec.is_installed()
    data["default"] = store.models.default() == spec.model_id
    data["fingerprint"] = spec.fingerprint() if data["installed"] else None
    return data


@models_group.command("show")
@click.argument("model_id")
@pass_state
def models_show(state: CliState, model_id: str) -> None:
    """Show MODEL_ID's settings, files and fingerprint."""
    data = _model_dict(state.store(), model_id)
    state.emit(data, lambda console: console.print(fields_table(data)))


@models_group.command("register")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--model-id", default=None,
              help="Id to register the model under [default: its card's, else the folder name].")
@pass_state
def models_register(state: CliState, path: Path, model_id: str | None) -> None:
    """Register the model folder PATH (model.onnx + tokenizer.json [+ 1_Pooling/config.json])."""
    store = state.store(create=True)
    spec = store.models.register(path, model_id=model_id)
    data = _model_dict(store, spec.model_id)
    state.emit(data, message=f"registered model {spec.model_id!r} (dim={spec.dim}) from {path}")


@models_group.command("set-default")
@click.argument("model_id")
@pass_state
def models_set_default(state: CliState, model_id: str) -> None:
    """Make MODEL_ID the default for new namespaces (existing ones keep their model)."""
    store = state.store(create=True)
    store.models.set_default(model_id)
    state.emit({"default": model_id}, message=f"new namespaces now default to {model_id!r}")


# -- migrations ----------------------------------------------------------------------------------

_CONFIG_OPTION = click.option(
    "--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The migration config: a JSON file with the hosted API's body (migration_type, source, target, ...).")


def _render_report(report: ValidationReport) -> Callable[[Console], None]:
    def render(console: Console) -> None:
        estimate = report.estimate
        fields = {
            "valid": report.valid, "type": report.migration_type, "source": report.source, "target": report.target,
            "models": ", ".join(f"{k}={v}" for k, v in report.models.items()) or None,
            "target dim": report.target_dim, "provider": report.provider,
        }
        if report.valid:
            fields.update({"source objects": report.source_count, "objects to migrate": report.total,
                           "estimated tokens": estimate.get("tokens"),
                           "estimated time": f"{estimate.get('seconds', 0.0):.1f} s",
                           "estimated disk": f"{estimate.get('disk_bytes', 0) / 2**20:.1f} MiB"})
        console.print(fields_table({k: v for k, v in fields.items() if v is not None}))
        for kind, lines in (("error", report.errors), ("warning", report.warnings)):
            if lines:
                console.print(table((kind,), ((line,) for line in lines)))
    return render


def _show_report(state: CliState, report: ValidationReport) -> None:
    """Print a validation report; an invalid one ends the command with exit code 1."""
    state.emit(report.to_dict(), _render_report(report))
    if not report.valid:
        count = len(report.errors)
        raise CliError(f"the migration config has {count} error{'s' if count != 1 else ''} (listed in the report); "
                       "fix the config and run 'vecns migrate validate' again.")


def _status_dict(migration: Migration, status: MigrationStatus | None = None) -> dict[str, Any]:
    status = migration.status() if status is None else status
    # migration_failures holds one row per object, so the length of the full list is the exact count.
    return {**status.to_dict(), "failures": len(migration.failures(limit=2**62))}


@contextlib.contextmanager
def _ctrl_c_cancels() -> Iterator[threading.Event]:
    """Turn the first Ctrl-C into a flag (the run cancels at its next batch boundary); a second one stops at once."""
    pressed = threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        if pressed.is_set():
            raise KeyboardInterrupt
        pressed.set()

    try:
        previous = signal.signal(signal.SIGINT, on_sigint)
        installed = True
    except ValueError:  # handlers can only be set on the main thread, and only it receives Ctrl-C
        installed = False
    try:
        yield pressed
    finally:
        if installed:
            signal.signal(signal.SIGINT, previous)


def _run_foreground(state: CliState, migration: Migration, runner: Callable[[Any], Any]) -> None:
    """Run a migration on this process until it ends, drawing progress; print its final status.

    Args:
        state: The command's state.
        migration: The migration to run.
        runner: Runs it on the calling thread, given the progress callback (``Migration.run`` or a resume).

    Raises:
        CliError: It failed (exit code 1).
        click.exceptions.Exit: It was cancelled by Ctrl-C (exit code 130).
    """
    with contextlib.ExitStack() as stack:
        pressed = stack.enter_context(_ctrl_c_cancels())
        bar = stack.enter_context(progress_bar(state.console)) if state.interactive else None
        task = bar.add_task(f"migrate {migration.id}", total=None) if bar is not None else None

        def progress(status: MigrationStatus) -> bool:
            if bar is not None:
                bar.update(task, completed=status.processed, total=status.total or None,
                           description=f"{status.source} -> {status.target} ({status.stage})")
            return not pressed.is_set()

        try:
            runner(progress)
        except KeyboardInterrupt:
            emit_error(f"stopped at once by a second Ctrl-C; migration {migration.id} will show as 'interrupted' "
                       f"when the store next opens; continue it with 'vecns migrate resume {migration.id}'.")
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
    status = migration.status()
    seconds = (status.finished_at - status.started_at).total_seconds() if status.finished_at and status.started_at \
        else 0.0
    state.emit(_status_dict(migration, status), message=(
        f"migration {status.id} {status.status}: {status.processed}/{status.total} objects from {status.source!r} "
        f"into {status.target!r} in {seconds:.1f} s, {status.failed} failed"
    ))
    if status.status == "cancelled":
        emit_error(f"cancelled migration {status.id} at a batch boundary; continue it with "
                   f"'vecns migrate resume {status.id}'.")
        raise click.exceptions.Exit(EXIT_INTERRUPTED)
    if status.status == "failed":
        raise CliError(f"migration {status.id} failed: {status.error} Fix the cause, then "
                       f"'vecns migrate resume {status.id}'.")


@cli.group("migrate")
def migrate_group() -> None:
    """Move a namespace to a new embedding model (re_extract), copy it, or extend it with features."""


@migrate_group.command("validate")
@_CONFIG_OPTION
@pass_state
def migrate_validate(state: CliState, config_path: Path) -> None:
    """Check a migration config against the store and estimate its cost; writes nothing."""
    _show_report(state, state.store().migrations.validate(config_path))


def _create(state: CliState, config_path: Path, *, start: bool) -> None:
    store = state.store()
    report = store.migrations.validate(config_path)
    if not report.valid:
        _show_report(state, report)
    created = store.migrations.create(config_path)
    if isinstance(created, ValidationReport):
        _show_report(state, created)
    elif start:
        _run_foreground(state, created, lambda progress: created.run(progress=progress))
    else:
        state.emit(_status_dict(created), message=created.id)


@migrate_group.command("create")
@_CONFIG_OPTION
@click.option("--start", is_flag=True, help="Run it here right away, until it ends (as 'vecns migrate start').")
@pass_state
def migrate_create(state: CliState, config_path: Path, start: bool) -> None:
    """Create a migration (status draft) and print its id; a config with dry_run only prints the report."""
    _create(state, config_path, start=start)


@migrate_group.command("run")
@_CONFIG_OPTION
@pass_state
def migrate_run(state: CliState, config_path: Path) -> None:
    """Validate, create and run a migration here until it ends (Ctrl-C cancels at the next batch)."""
    _create(state, config_path, start=True)


@migrate_group.command("start")
@click.argument("migration_id")
@pass_state
def migrate_start(state: CliState, migration_id: str) -> None:
    """Run draft MIGRATION_ID here until it ends; Ctrl-C cancels it at the next batch boundary (exit 130)."""
    migration = state.store().migrations.get(migration_id)
    _run_foreground(state, migration, lambda progress: migration.run(progress=progress))


@migrate_group.command("resume")
@click.argument("migration_id")
@pass_state
def migrate_resume(state: CliState, migration_id: str) -> None:
    """Continue an interrupted, cancelled or failed MIGRATION_ID from its checkpoint, here until it ends."""
    migration = state.store().migrations.get(migration_id)
    _run_foreground(state, migration, lambda progress: migration.resume(progress=progress, background=False))


@migrate_group.command("status")
@click.argument("migration_id")
@pass_state
def migrate_status(state: CliState, migration_id: str) -> None:
    """Show MIGRATION_ID's status, stage, counts, rate and ETA."""
    data = _status_dict(state.store().migrations.get(migration_id))
    state.emit(data, lambda console: console.print(fields_table(data)))


@migrate_group.command("cancel")
@click.argument("migration_id")
@click.option("--reason", default=None, help="Why, kept with the migration [default: cancelled by the caller].")
@pass_state
def migrate_cancel(state: CliState, migration_id: str, reason: str | None) -> None:
    """Cancel MIGRATION_ID; the target keeps what was written, and 'vecns migrate resume' continues it."""
    migration = state.store().migrations.get(migration_id)
    status = migration.cancel(reason)
    state.emit(_status_dict(migration, status), message=f"migration {status.id} is {status.status}")


@migrate_group.command("list")
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only migrations with this status.")
@click.option("--type", "migration_type", type=click.Choice(MIGRATION_TYPES), default=None,
              help="Only migrations of this type.")
@pass_state
def migrate_list(state: CliState, status: str | None, migration_type: str | None) -> None:
    """List migrations, newest first."""
    found = state.store().migrations.list(status=status, migration_type=migration_type)
    data = [m.status().to_dict() for m in found]
    state.emit(data, lambda console: console.print(table(
        ("id", "type", "status", "stage", "source", "target", "processed", "failed", "created"),
        ((d["id"], d["migration_type"], d["status"], d["stage"], d["source"], d["target"],
          f"{d['processed']}/{d['total']}", d["failed"], d["created_at"][:19]) for d in data),
    )) if data else console.print(Text("no migrations; create one with 'vecns migrate create --config FILE'.")))


@migrate_group.command("delete")
@click.argument("migration_id")
@pass_state
def migrate_delete(state: CliState, migration_id: str) -> None:
    """Forget MIGRATION_ID and its failure records (its target namespace stays; drop it with 'vecns ns drop')."""
    state.store().migrations.delete(migration_id)
    state.emit({"deleted": migration_id}, message=f"deleted migration {migration_id}")


@migrate_group.command("failures")
@click.argument("migration_id")
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Show at most this many failures (by object id).")
@pass_state
def migrate_failures(state: CliState, migration_id: str, limit: int) -> None:
    """List the objects MIGRATION_ID could not migrate, with each one's error."""
    found = state.store().migrations.get(migration_id).failures(limit=limit)
    data = [{"id": object_id, "error": error} for object_id, error in found]
    state.emit(data, lambda console: console.print(
        table(("object id", "error"), found) if found else Text(f"migration {migration_id} has no failures")))


@cli.command("cutover")
@click.argument("migration")
@click.option("--alias", required=True, help="The alias applications read through; it moves to the target.")
@click.option("--gate-metric", default=None,
              help="Refuse unless the target's stored evaluation on this metric (e.g. ndcg@10) is good enough.")
@click.option("--max-drop", type=float, default=None,
              help="With --gate-metric: how far below the source the target may score [default: 0.0].")
@click.option("--gate-dataset", default=None,
              help="With --gate-metric: compare evaluations on this dataset [default: the newest of each].")
@pass_state
def cutover_command(state: CliState, migration: str, alias: str, gate_metric: str | None, max_drop: float | None,
                    gate_dataset: str | None) -> None:
    """Move ALIAS to the target of MIGRATION (a completed migration's id, or its target namespace)."""
    gate: dict[str, Any] | None = None
    if gate_metric is None:
        if max_drop is not None or gate_dataset is not None:
            raise click.UsageError("--max-drop and --gate-dataset only apply together with --gate-metric.")
    else:
        gate = {"metric": gate_metric, "max_drop": 0.0 if max_drop is None else max_drop}
        if gate_dataset is not None:
            gate["dataset"] = gate_dataset
    result = state.store().cutover(migration, alias=alias, gate=gate)
    verdict = f"; gate: {result.gate}" if result.gate else ""
    state.emit(result.to_dict(), message=(
        f"alias {result.alias!r} -> {result.target!r} (was {result.source!r}); {result.applied_changes} late "
        f"changes applied{verdict}. Undo with 'vecns alias rollback {result.alias}'."
    ))


@cli.command("demo")
@click.option("--path", "demo_path", type=click.Path(file_okay=False, path_type=Path), default=Path(DEMO_PATH),
              show_default=True, help="The demo's own store directory (the global --store is not used).")
@click.option("--limit", type=click.IntRange(min=50), default=None,
              help="Use at most this many documents [default: the whole standard-library docstring corpus].")
@click.option("--reset", is_flag=True, help="Delete the demo store first and start from scratch.")
@pass_state
def demo_command(state: CliState, demo_path: Path, limit: int | None, reset: bool) -> None:
    """Run the whole mission on real text: ingest, migrate to a new model while writing, evaluate, cut over.

    Builds a namespace of the standard library's docstrings with paraphrase-minilm-l3-v2, points alias
    'prod' at it, validates and runs a re_extract migration to all-minilm-l6-v2-int8 while writes keep
    arriving, evaluates both models on a labelled query set, cuts 'prod' over if nDCG@10 does not drop, and
    searches through 'prod'. Re-running reuses the ingested namespace; --reset starts over.
    """
    from vecns.demo import run_demo

    console = state.console
    say = (lambda text: None) if state.as_json else (lambda text: console.print(Text(f"• {text}")))
    with contextlib.ExitStack() as stack:
        progress = lambda stage, done, total: None  # noqa: E731
        if state.interactive:
            bar = stack.enter_context(progress_bar(console))
            tasks: dict[str, Any] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done, total=total)

        result = run_demo(demo_path, limit=limit, reset=reset, step=say, progress=progress)
    state.emit(result.to_dict(), _render_demo(result))


def _render_demo(result: Any) -> Callable[[Console], None]:
    def render(console: Console) -> None:
        names = list(result.metrics)
        order = ("ndcg", "recall", "mrr", "map", "precision")
        metrics = sorted({m for values in result.metrics.values() for m in values},
                         key=lambda m: (order.index(m.split("@")[0]) if m.split("@")[0] in order else len(order), m))
        rows = [(m, *(f"{result.metrics[n][m]:.4f}" for n in names),
                 f"{result.metrics[names[1]][m] - result.metrics[names[0]][m]:+.4f}") for m in metrics]
        console.print(table(("metric", *names, "delta"), rows,
                            title=f"{result.queries} labelled queries over {result.objects} docstrings"))
        migration = result.migration
        console.print(Text(f"migration {migration['id']}: {migration['status']}, {migration['processed']} objects "
                           f"in {result.seconds.get('migrate', 0):.1f} s on {migration['provider']}; "
                           f"live writes {result.live_writes} "
                           f"{'arrived in the target' if result.live_writes_arrived else 'did NOT all arrive'}"))
        console.print(Text(f"cutover: {result.cutover}"))
        console.print(table(("id", "score", "text"), [(h["id"], f"{h['score']:.3f}", (h["text"] or "")[:90])
                                                     for h in result.hits], title="search through prod"))
        console.print(Text(
            f"next: vecns --store {result.path} search prod \"your question\" | "
            f"vecns --store {result.path} alias rollback prod | vecns --store {result.path} migrate list | "
            f"vecns --store {result.path} ns show stdlib-l6"))
    return render


# -- evaluation ----------------------------------------------------------------------------------


def _cutoffs(value: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        ks = ()
    if not ks or min(ks) < 1:
        raise click.BadParameter(f"{value!r}; expected comma-separated ints >= 1, e.g. 1,5,10,100.")
    return ks


def _beir_options(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option("--split", default="test", show_default=True, help="Which qrels/<split>.tsv to use.")(
        command)
    return click.option("--beir", "beir_dir", required=True, help="The BEIR folder: corpus.jsonl, queries.jsonl, "
                        "qrels/<split>.tsv.", type=click.Path(exists=True, file_okay=False, path_type=Path))(command)


def _render_eval(report: EvalReport) -> Callable[[Console], None]:
    def render(console: Console) -> None:
        rows = [(name, *(report.metrics.get(f"{name}@{k}") for k in report.k))
                for name in ("ndcg", "recall", "precision", "mrr")]
        rows.append((f"map@{report.k[-1]}", *([None] * (len(report.k) - 1)), report.metrics[f"map@{report.k[-1]}"]))
        console.print(table(("metric", *(f"@{k}" for k in report.k)), rows, title=(
            f"{report.namespace} ({report.model_id}) on {report.dataset}: {report.n_queries} queries, "
            f"{report.seconds:.2f} s")))
        if report.evaluation_id:
            console.print(Text(f"stored as {report.evaluation_id} (dataset {report.dataset!r}) for the cutover gate"))
    return render


@cli.command("eval")
@click.argument("namespace")
@_beir_options
@click.option("-k", "cutoffs", default="1,5,10,100", show_default=True, help="Comma-separated cutoffs.")
@click.option("--dataset", default=None, help="Label the stored result carries [default: the folder's name].")
@click.option("--no-store", is_flag=True, help="Do not store the result (the cutover gate reads stored results).")
@pass_state
def eval_command(state: CliState, namespace: str, beir_dir: Path, split: str, cutoffs: str, dataset: str | None,
                 no_store: bool) -> None:
    """Measure NAMESPACE on a BEIR folder's queries: nDCG, recall, precision, MRR at each cutoff, and MAP."""
    ks = _cutoffs(cutoffs)
    data = load_beir(beir_dir, split)
    report = evaluate(state.store().namespace(namespace), data.queries, data.qrels, k=ks,
                      dataset=dataset or data.name, store_result=not no_store)
    state.emit(report.to_dict(), _render_eval(report))


def _render_comparison(result: Comparison) -> Callable[[Console], None]:
    def render(console: Console) -> None:
        title = (f"{result.a} ({result.model_a}) vs {result.b} ({result.model_b}): {result.n_queries} queries, "
                 f"{result.seconds:.2f} s")
        if result.metrics_a:
            rows = [(name, result.metrics_a[name], result.metrics_b[name], f"{result.delta[name]:+.4f}")
                    for name in result.metrics_a]
            console.print(table(("metric", result.a, result.b, "delta (b-a)"), rows, title=title))
            console.print(Text(f"per query ndcg@{result.k}, {result.b} vs {result.a}: {result.wins} wins, "
                               f"{result.losses} losses, {result.ties} ties"))
        else:
            console.print(Text(title))
        spearman = "-" if result.spearman is None else f"{result.spearman:.4f}"
        kendall = "-" if result.kendall is None else f"{result.kendall:.4f}"
        console.print(Text(f"overlap@{result.k} (|A∩B|/k): {result.overlap:.4f}; rank correlation over shared ids "
                           f"({result.n_correlated} queries): spearman {spearman}, kendall {kendall}"))
    return render


@cli.command("compare")
@click.argument("a")
@click.argument("b")
@_beir_options
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True, help="The cutoff.")
@click.option("--no-labels", is_flag=True, help="Ignore the qrels: only the label-free overlap and correlation.")
@pass_state
def compare_command(state: CliState, a: str, b: str, beir_dir: Path, split: str, k: int, no_labels: bool) -> None:
    """Compare namespaces A and B on a BEIR folder's queries (each embeds them with its own model)."""
    data = load_beir(beir_dir, split)
    store = state.store()
    result = compare(store.namespace(a), store.namespace(b), data.queries, qrels=None if no_labels else data.qrels,
                     k=k)
    state.emit(result.to_dict(), _render_comparison(result))


@cli.group("bench")
def bench_group() -> None:
    """Benchmark embedding models: speed and relevance side by side."""


def _render_bench(rows: Sequence[ModelBench], data: BeirData, png: Path | None) -> Callable[[Console], None]:
    def render(console: Console) -> None:
        names = [n for n in ("ndcg@10", "recall@10", "mrr@10", "recall@100") if n in rows[0].metrics]
        console.print(table(
            ("model", "provider", "docs", "docs/s", "tokens/s", *names),
            [(r.model_id, r.provider.removesuffix("ExecutionProvider"), r.docs, f"{r.docs_per_second:,.1f}",
              f"{r.tokens_per_second:,.0f}", *(r.metrics[n] for n in names)) for r in rows],
            title=f"{data.name}: {len(data.corpus)} documents, {len(data.queries)} queries"))
        if png is not None:
            console.print(Text(f"chart: {png}"))
    return render


@bench_group.command("models")
@click.argument("models", nargs=-1, required=True)
@click.option("--beir", "beir_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="A BEIR folder [default: the built-in stdlib_qa set of standard-library docstrings].")
@click.option("--split", default="test", show_default=True, help="With --beir: which qrels/<split>.tsv to use.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Use this many documents (BEIR: the first N and their judged queries; stdlib_qa: a spread sample).")
@click.option("--out", "png", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a PNG chart of docs/s against nDCG@10 (needs the 'plot' extra: matplotlib).")
@click.option("--in-store", is_flag=True,
              help="Create the bench-<model> namespaces in --store and keep them [default: a temporary store].")
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULT_BATCH_SIZE, show_default=True,
              help="Documents embedded and committed per transaction.")
@pass_state
def bench_models_command(state: CliState, models: tuple[str, ...], beir_dir: Path | None, split: str,
                         limit: int | None, png: Path | None, in_store: bool, batch_size: int) -> None:
    """Ingest one corpus with each of MODELS (timed: docs/s, tokens/s), evaluate each, and chart them."""
    if png is not None:
        try:
            import matplotlib  # noqa: F401 - only checked here, before the long run; plot_bench draws
        except ImportError as exc:
            raise ConfigError("--out needs matplotlib: pip install 'vecns[plot]'.") from exc
    if beir_dir is None:
        from vecns.datasets import stdlib_qa

        data = stdlib_qa(limit=limit)
    else:
        data = load_beir(beir_dir, split)
        data = data.head(limit) if limit is not None else data
    with contextlib.ExitStack() as stack:
        if in_store:
            store = state.store(create=True)
        else:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="vecns-bench-"))
            store = stack.enter_context(connect(Path(folder) / "store"))
        progress = None
        if state.interactive:
            bar = stack.enter_context(progress_bar(state.console))
            tasks: dict[str, Any] = {}

            def progress(model_id: str, done: int, total: int | None) -> None:
                if model_id not in tasks:
                    tasks[model_id] = bar.add_task(f"ingest with {model_id}", total=total)
                bar.update(tasks[model_id], completed=done, total=total)

        rows = bench_models(store, list(models), data, batch_size=batch_size, progress=progress)
    if png is not None:
        plot_bench(rows, png, title=f"{data.name}: {len(data.corpus)} docs, {len(data.queries)} queries")
    state.emit({"dataset": data.name, "docs": len(data.corpus), "queries": len(data.queries),
                "models": [r.to_dict() for r in rows], "chart": str(png) if png else None},
               _render_bench(rows, data, png))
