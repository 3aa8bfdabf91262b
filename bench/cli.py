"""The `bench` command line: run a sweep, render a run again, show the environment."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from bench.errors import BenchError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Inference-efficiency benchmarks of XGLM variants on eager PyTorch, torch.compile and ONNX Runtime.")
# Piped or captured output (CI logs, files) would default to 80 columns and squeeze the tables.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


@contextmanager
def _user_errors() -> Iterator[None]:
    """BenchError -> one red line on stderr and exit 2; nothing half-written is left to look finished."""
    try:
        yield
    except BenchError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


@app.command()
def run(
    config: Optional[Path] = typer.Argument(None, help="sweep TOML; default: the packaged default config"),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o", help="where run directories go"),
    model: Optional[str] = typer.Option(None, help="hub id, local directory, or random:<tiny|small|564M>"),
    device: Optional[str] = typer.Option(None, help="cpu or cuda"),
    backends: Optional[str] = typer.Option(None, help="comma-separated: eager,compile,onnxruntime"),
    name: Optional[str] = typer.Option(None, help="run name (the directory suffix)"),
) -> None:
    """Run a sweep and print its summary."""
    from bench.config import load_config, packaged_config

    with _user_errors():
        overrides: dict[str, Any] = {}
        for key, value in (("output_dir", output_dir and str(output_dir)), ("model.source", model),
                           ("measure.device", device), ("name", name)):
            if value is not None:
                overrides[key] = value
        if backends is not None:
            overrides["measure.backends"] = [b.strip() for b in backends.split(",") if b.strip()]
        cfg = load_config(config or packaged_config("default"), overrides)
        from bench.sweep import Interrupted, run_sweep

        try:
            store = run_sweep(cfg, console)
        except Interrupted as exc:
            err_console.print(f"[yellow]interrupted[/]: {exc.run_dir} is marked incomplete; its finished records are kept")
            raise typer.Exit(130) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/] before the run started; nothing was written")
            raise typer.Exit(130) from None
        _render(store.path)
        console.print(f"results: {store.path / 'results.jsonl'}")


@app.command()
def report(run_dir: Path = typer.Argument(..., help="a run directory written by `bench run`")) -> None:
    """Render a run's summary again from its files."""
    with _user_errors():
        _render(run_dir)


@app.command()
def env() -> None:
    """Print the environment fingerprint that every run records."""
    from bench.env import fingerprint

    console.print_json(json.dumps(fingerprint(), default=str))


def _render(run_dir: Path) -> None:
    from bench.store import RunStore
    from reports.summary import render_run

    store = RunStore.open(run_dir)
    render_run(store.records(), store.read_json("env.json"), store.manifest(), console)


def main() -> None:
    app()
