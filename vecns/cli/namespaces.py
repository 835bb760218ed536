"""``vecns ns``, ``ingest``, ``search``, ``alias`` and ``models``: namespaces, their data and their names."""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.text import Text

from vecns.beir import BeirData, ingest_beir, load_beir
from vecns.cli import FINGERPRINT_CHARS, CliState, cli, fields_table, pass_state, progress_bar, table
from vecns.errors import FilterError, ValidationError, VecnsError
from vecns.index import DTYPES, METRICS
from vecns.ingest import FILE_FORMATS, ingest_file
from vecns.namespace import DEFAULT_BATCH_SIZE, Namespace
from vecns.store import DB_FILE, Store, connect

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


@contextlib.contextmanager
def _models_of(state: CliState) -> Iterator[Store]:
    """The store whose registry to read; with no store yet, a temporary one (the builtin models only)."""
    if (state.store_path / DB_FILE).is_file():
        yield state.store()
        return
    with tempfile.TemporaryDirectory(prefix="vecns-models-") as folder, connect(Path(folder) / "store") as store:
        yield store


@models_group.command("list")
@pass_state
def models_list(state: CliState) -> None:
    """List known models: builtin cards and registered folders (builtins only where no store exists yet)."""
    with _models_of(state) as store:
        data = [info.to_dict() for info in store.models.list()]
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
    with _models_of(state) as store:
        data = _model_dict(store, model_id)
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
