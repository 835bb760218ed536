"""``vecns demo``: the whole mission on real text, in its own store."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import Progress, TaskID
from rich.text import Text

from vecns.cli import DEMO_PATH, CliState, cli, pass_state, progress_bar, table


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
    searches through 'prod'. Re-running reuses the ingested namespace (adding the docstrings it lacks, as
    after a stopped run) and starts a fresh migration; --reset starts over.
    """
    from vecns.demo import run_demo

    console = state.console
    say = (lambda text: None) if state.as_json else (lambda text: console.print(Text(f"• {text}")))
    with contextlib.ExitStack() as stack:
        progress: Callable[[str, int, int], None]
        if state.interactive:
            progress = _progress_bars(stack.enter_context(progress_bar(console)))
        elif state.as_json:
            progress = lambda stage, done, total: None  # noqa: E731
        else:
            progress = _progress_lines(console)
        result = run_demo(demo_path, limit=limit, reset=reset, step=say, progress=progress)
    state.emit(result.to_dict(), _render_demo(result))


def _progress_bars(bar: Progress) -> Callable[[str, int, int], None]:
    """Progress as one bar per stage, on a terminal."""
    tasks: dict[str, TaskID] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)
    return progress


def _progress_lines(console: Console) -> Callable[[str, int, int], None]:
    """Progress as plain lines (``  migrate 32/120``) for piped output, one per count that changed."""
    shown: dict[str, int] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if shown.get(stage) != done:
            shown[stage] = done
            console.print(Text(f"  {stage} {done}/{total}"))
    return progress


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
        compared = result.comparison
        if compared:
            spearman = compared.get("spearman")
            console.print(Text(
                f"per query, ndcg@{compared['k']} of {names[1]} against {names[0]}: {compared['wins']} better, "
                f"{compared['losses']} worse, {compared['ties']} equal; top-{compared['k']} overlap "
                f"{compared['overlap']:.2f}" + (f", rank correlation {spearman:.2f}" if spearman is not None else "")))
        console.print(Text(f"cutover: {result.cutover}"))
        console.print(table(("id", "score", "text"), [(h["id"], f"{h['score']:.3f}", (h["text"] or "")[:90])
                                                     for h in result.hits], title="search through prod"))
        console.print(Text("what to try next:"))
        for command in ('search prod "your question"', "alias rollback prod", "migrate list",
                        "ns show stdlib-l6", "eval --help"):
            console.print(Text(f"  vecns --store {result.path} {command}"))
    return render
