"""`bench cache`: what the cache directory holds, per part and in bytes; verify it (artifacts, ONNX exports and calibrations);
clear it, whole or only its exports.

The cache ($BENCH_CACHE_DIR, else ~/.cache/xglm-bench, or a config's cache_dir) holds trained artifacts, ONNX
exports, tokenizers and calibrated peaks; a run directory holds none of them (bench run --keep-exports links its
exports in).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from bench.cli.errors import Guard, console, error

cache_app = typer.Typer(help="The cache ($BENCH_CACHE_DIR): its size per part; verify it, or clear it.",
                        invoke_without_command=True)
_CACHE_DIR = typer.Option(None, "--cache-dir", help="default: $BENCH_CACHE_DIR, else ~/.cache/xglm-bench")


def _root(cache_dir: Optional[Path]) -> Path:
    from bench.variants.artifacts import default_cache_dir

    return default_cache_dir(str(cache_dir) if cache_dir else None)


@cache_app.callback()
def cache_main(ctx: typer.Context) -> None:
    """With no subcommand: the cache's size per part (as `bench cache size`)."""
    if ctx.invoked_subcommand is None:
        cache_size(None)


@cache_app.command("size")
def cache_size(cache_dir: Optional[Path] = _CACHE_DIR) -> None:
    """Entries and disk use of each part of the cache: artifacts, exports, tokenizers, calibration..."""
    with Guard():
        from bench.variants.artifacts import cache_sizes

        root = _root(cache_dir)
        sizes = cache_sizes(root)
        table = Table(title=f"cache {root}", title_justify="left")
        for column in ("part", "entries", "MB"):
            table.add_column(column, justify="left" if column == "part" else "right")
        for part, (entries, size) in sizes.items():
            table.add_row(part, str(entries), f"{size / 1e6:.1f}")
        table.add_row("total", str(sum(e for e, _ in sizes.values())), f"{sum(b for _, b in sizes.values()) / 1e6:.1f}",
                      style="bold")
        console.print(table)


@cache_app.command("verify")
def cache_verify(
    cache_dir: Optional[Path] = _CACHE_DIR,
    remove_damaged: bool = typer.Option(False, "--remove-damaged", help="delete damaged entries (the next run rebuilds "
                                                                        "or re-exports them)"),
) -> None:
    """Check every cached artifact and ONNX export against the sizes and hashes recorded when it was saved, and every
    calibration file is whole; exit 1 if any is damaged."""
    with Guard():
        from bench.backends.onnxruntime.export_cache import verify_exports
        from bench.measure.calibrate import verify_calibrations
        from bench.variants.artifacts import remove, verify_cache

        root = _root(cache_dir)
        artifacts, exports, calibrations = verify_cache(root), verify_exports(root), verify_calibrations(root)
        results = artifacts + exports + calibrations
        damaged = [(path, problem) for path, problem in results if problem and not problem.startswith("unverified")]
        bad_exports = sum(1 for path, _ in damaged if path.parent.name == "exports")
        bad_calibrations = sum(1 for path, _ in damaged if path.parent.name == "calibration")
        for path, problem in results:
            tone = "green" if problem is None else "yellow" if problem.startswith("unverified") else "red"
            console.print(f"[{tone}]{problem or 'ok'}[/]: {path}", highlight=False, soft_wrap=True)
        if remove_damaged:
            for path, _ in damaged:
                remove(path)
        done = "removed" if remove_damaged else "damaged"
        console.print(f"{len(artifacts)} artifacts, {len(exports)} exports and {len(calibrations)} calibrations in "
                      f"{root}; {len(damaged)} {done}", highlight=False)
    if damaged and not remove_damaged:
        error(f"{len(damaged) - bad_exports - bad_calibrations} artifacts, {bad_exports} exports, {bad_calibrations} "
              "calibrations; `bench cache verify --remove-damaged` deletes them and the next run rebuilds them",
              "damaged")
        raise typer.Exit(1)


@cache_app.command("clear")
def cache_clear(
    cache_dir: Optional[Path] = _CACHE_DIR,
    exports: bool = typer.Option(False, "--exports", help="only the ONNX exports (the next run exports again)"),
) -> None:
    """Delete everything bench keeps in the cache (artifacts, exports, trained tokenizers, calibrated peaks), or with
    --exports only the ONNX exports."""
    with Guard():
        from bench.variants.artifacts import CACHE_PARTS, clear_cache

        root = _root(cache_dir)
        count, size = clear_cache(root, ("exports",) if exports else CACHE_PARTS)
        what = "exports" if exports else "everything"
        console.print(f"cleared {what} in {root}: {count} entries, {size / 1e6:.1f} MB", highlight=False)
