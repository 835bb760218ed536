"""``vecns eval``, ``compare`` and ``bench``: measure namespaces and models on labelled queries."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.text import Text

from vecns.beir import BeirData, load_beir
from vecns.cli import CliState, cli, pass_state, progress_bar, table
from vecns.errors import ConfigError
from vecns.evaluate import Comparison, EvalReport, ModelBench, bench_models, compare, evaluate, plot_bench
from vecns.namespace import DEFAULT_BATCH_SIZE
from vecns.store import connect


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
    with _query_bar(state, f"queries on {namespace}") as progress:
        report = evaluate(state.store().namespace(namespace), data.queries, data.qrels, k=ks,
                          dataset=dataset or data.name, store_result=not no_store, progress=progress)
    state.emit(report.to_dict(), _render_eval(report))


@contextlib.contextmanager
def _query_bar(state: CliState, label: str) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar over queries embedded, as a (done, total) callback; None when not on a terminal."""
    if not state.interactive:
        yield None
        return
    with progress_bar(state.console) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


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
    with _query_bar(state, f"queries on {a} and {b}") as progress:
        result = compare(store.namespace(a), store.namespace(b), data.queries,
                         qrels=None if no_labels else data.qrels, k=k, progress=progress)
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
