"""The `bench` command line: run a sweep, render a run again, compare runs, manage the cache, show the environment.

Exit status: 0 complete, 3 complete_with_failures, 1 failed (nothing measured, an environment fault or an
unexpected error), 2 bad input, 130 interrupted (Ctrl-C, SIGTERM). Whatever goes wrong is one line on stderr; an
unexpected error also leaves its traceback in a log file whose path that line gives.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any, Optional

import typer

from bench.cli.cache import cache_app
from bench.cli.errors import Guard, OneLineErrors, console, err_console, error
from bench.cli.overrides import overrides_from_options
from bench.errors import BenchError


app = typer.Typer(cls=OneLineErrors, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(cache_app, name="cache")


def _print_version(asked: bool) -> None:
    """`bench --version`: the distribution's version and, from a checkout, the commit a run would record."""
    if not asked:
        return
    from importlib.metadata import version

    import bench
    from bench.run.env import git_state

    state = git_state(Path(bench.__file__).parent)
    commit = state["git_commit"]
    where = "not a git checkout" if commit is None else f"git {commit[:12]}{' (dirty)' if state['git_dirty'] else ''}"
    console.print(f"xglm-bench {version('xglm-bench')}, {where}", highlight=False)
    raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                          help="print the version and commit, then exit")) -> None:
    """Inference-efficiency benchmarks of XGLM variants on eager PyTorch, torch.compile and ONNX Runtime."""


@app.command()
def run(
    config: Optional[Path] = typer.Argument(None, help="sweep TOML; default: the packaged default config"),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o", help="where run directories go"),
    model: Optional[str] = typer.Option(None, help="hub id, local directory, or random:<tiny|small|564M>"),
    device: Optional[str] = typer.Option(None, help="cpu, cuda or cuda:N"),
    backends: Optional[str] = typer.Option(None, help="comma-separated: eager,compile,onnxruntime"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="XNLI/PAWS-X files in their official layouts "
                                                                    "(data.data_dir; else env BENCH_DATA_DIR)"),
    languages: Optional[str] = typer.Option(None, help="comma-separated language codes, or all (data.languages)"),
    batch_sizes: Optional[str] = typer.Option(None, "--batch-sizes", help="comma-separated (measure.batch_sizes)"),
    seq_lens: Optional[str] = typer.Option(None, "--seq-lens", help="comma-separated (measure.seq_lens)"),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="any config key, repeatable: KEY=VALUE with a TOML "
                                                                 "value, e.g. --set train.steps=8 --set "
                                                                 "'measure.dtypes=[\"fp32\"]'"),
    name: Optional[str] = typer.Option(None, help="run name (the directory suffix)"),
    isolation: Optional[str] = typer.Option(None, help="process (default: each cell in its own process) or none"),
    resume: Optional[Path] = typer.Option(None, help="a run directory to finish: skips its finished cells and retries "
                                                     "cells whose process died or timed out"),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="with --resume: also measure every failed cell again"),
    executor: Optional[str] = typer.Option(None, help="local (default: this machine) or ray (the groups as Ray tasks "
                                                      "on a cluster, one per device)"),
    ray_address: Optional[str] = typer.Option(None, help="the Ray cluster to join: auto, ray://HOST:10001 or HOST:PORT "
                                                         "(implies --executor ray; default $RAY_ADDRESS, else a local Ray)"),
    keep_exports: bool = typer.Option(False, "--keep-exports", help="also put the ONNX exports the run used into its "
                                                                    "exports/ (hard links where possible); else they "
                                                                    "stay in the cache only"),
) -> None:
    """Run a sweep and print its summary; the last line says the run's state."""
    from bench.config import load_config, packaged_config

    with Guard() as guard:
        overrides: dict[str, Any] = {}
        flags = {"output_dir": "--output-dir", "model.source": "--model", "measure.device": "--device", "name": "--name",
                 "measure.isolation": "--isolation", "executor.kind": "--executor", "executor.address": "--ray-address",
                 "measure.backends": "--backends", "keep_exports": "--keep-exports"}
        for key, value in (("output_dir", output_dir and str(output_dir)), ("model.source", model),
                           ("measure.device", device), ("name", name), ("measure.isolation", isolation),
                           ("executor.kind", executor or (ray_address and "ray")), ("executor.address", ray_address)):
            if value is not None:
                overrides[key] = value
        if keep_exports:
            overrides["keep_exports"] = True
        if backends is not None:
            overrides["measure.backends"] = [b.strip() for b in backends.split(",") if b.strip()]
        for key, (value, flag) in overrides_from_options(data_dir, languages, batch_sizes, seq_lens, set_).items():
            overrides[key], flags[key] = value, flag
        if retry_failed and resume is None:
            raise BenchError("--retry-failed measures the failed cells of an existing run again: give the run with "
                             "--resume RUN_DIR")
        from bench.run.store import RunStore

        if resume is not None:
            if config is not None or set(overrides) - {"measure.isolation", "executor.kind", "executor.address",
                                                       "keep_exports"}:
                raise BenchError("--resume takes the run's own config.toml; give no CONFIG and no overrides but "
                                 "--isolation, --executor, --ray-address and --keep-exports")
            config = RunStore.open(resume).path / "config.toml"
            if not config.is_file():
                raise BenchError(f"'{resume}' is not a run directory (no config.toml)")
        cfg = load_config(config or packaged_config("default"), overrides, flags={k: flags[k] for k in overrides})
        if cfg.executor.kind == "ray":  # before the run directory exists
            from bench.run.executors.ray import check_config

            check_config(cfg)
        from bench.run.outcome import EXIT_CODES, RunFailed, interrupt_reason
        from bench.run.sweep import Interrupted, run_sweep

        # SIGTERM (a job scheduler, `kill`) ends the run as Ctrl-C does: marked incomplete, the reason saying SIGTERM,
        # and the cell's own process killed with it instead of being left behind.
        previous = signal.signal(signal.SIGTERM, _terminate)
        try:
            store = run_sweep(cfg, console, resume=resume, retry_failed=retry_failed)
        except Interrupted as exc:
            how = str(RunStore(exc.run_dir).manifest().get("reason") or "interrupted").split(";")[0]
            error(f"{exc.run_dir} is marked incomplete; its finished records are kept; "
                   f"`bench run --resume {exc.run_dir}` finishes it", how, "yellow")
            raise typer.Exit(130) from None
        except KeyboardInterrupt as exc:
            error("before the run started; nothing was written", interrupt_reason(exc).split(";")[0], "yellow")
            raise typer.Exit(130) from None
        except RunFailed as exc:
            error(exc.message)
            raise typer.Exit(2 if exc.bad_input else 1) from None
        finally:
            signal.signal(signal.SIGTERM, previous)
        guard.run_dir = store.path
        _render(store.path)
        manifest = store.manifest()
        state = manifest["status"]
        console.print(f"results: {store.path / 'results.jsonl'}")
        console.print(f"state: {state} ({manifest.get('records_ok', 0)} ok, {manifest.get('records_failed', 0)} failed, "
                      f"{manifest.get('records_skipped', 0)} skipped records); exit {EXIT_CODES[state]}", highlight=False)
        if state != "complete":
            error(f"{manifest.get('reason')} ({store.path})", state)
        raise typer.Exit(EXIT_CODES[state])


@app.command()
def report(run_dir: Path = typer.Argument(..., help="a run directory written by `bench run`")) -> None:
    """Render a run again from its records: terminal views, RUN_DIR/report.md, report.html and plots/."""
    with Guard(run_dir if run_dir.is_dir() else None):
        from bench.run.store import RESULTS, RunStore

        results = RunStore.open(run_dir).path / RESULTS
        if not results.exists():  # a directory in its place is refused where the records are read
            raise BenchError(f"'{results}' is missing: there are no records to render; the report files in "
                             f"'{run_dir}' are left as they were")
        _render(run_dir)


@app.command()
def compare(
    run_dirs: list[Path] = typer.Argument(..., help="two or more run directories; the first is the baseline"),
    fail_on_regression: Optional[float] = typer.Option(
        None, "--fail-on-regression", metavar="PCT", min=0,
        help="exit 1 when a later run's p50 is slower than the baseline's by more than PCT percent with the whole "
             "95% interval of the ratio above that (a statistically clear regression)"),
    price: Optional[list[str]] = typer.Option(
        None, "--price", metavar="RUN=USD_PER_HOUR",
        help="what one group of a run occupies costs per hour (a GPU, or the CPU cores of measure.threads); once per "
             "run, RUN being a compared run directory (its path or its name); default: the run's [cost] usd_per_hour"),
    plots: Optional[Path] = typer.Option(None, "--plots", metavar="DIR",
                                         help="draw latency against cost per target into DIR (PNG and SVG)"),
) -> None:
    """Compare runs cell by cell, across machines: values side by side, ratios to the first run, 95% intervals."""
    with Guard():
        from reports.compare import compare_runs, compared_line, gate_verdict, no_shared_cell, regressions
        from reports.compare_view import render_comparison
        from reports.cost import run_prices
        from reports.cost_view import compares_targets, render_targets
        from reports.load import load_run

        if len(run_dirs) < 2:
            raise BenchError(f"compare needs two or more run directories, got {len(run_dirs)}")
        runs = [load_run(path) for path in run_dirs]
        prices = run_prices(runs, price or [])
        comparison = compare_runs(runs)
        render_comparison(comparison, console, fail_on_regression)
        render_targets(runs, prices, console, plots)
        console.print(compared_line(comparison), highlight=False)
        # A gate that compared nothing must not pass; without one, runs on different hardware may share no cell and
        # still be compared as targets (--price).
        if not comparison.rows and (fail_on_regression is not None or not compares_targets(runs, prices, plots)):
            raise BenchError(no_shared_cell(comparison))
        if fail_on_regression is None:
            return
        found = regressions(comparison, fail_on_regression)
        for regression in found:
            err_console.print(regression.line(comparison.runs), soft_wrap=True, highlight=False, markup=False)
        console.print(gate_verdict(comparison, fail_on_regression), highlight=False)
    if found:
        raise typer.Exit(1)


@app.command()
def calibrate(
    device: str = typer.Option("cpu", help="cpu, cuda or cuda:N"),
    threads: Optional[int] = typer.Option(None, help="intra-op threads; default: physical cores, as `bench run`"),
    refresh: bool = typer.Option(False, help="measure again even if this environment is cached"),
) -> None:
    """Measure this machine's peaks (GEMM per dtype, copy bandwidth), the denominators of % of peak."""
    with Guard():
        import psutil

        from bench.variants.artifacts import default_cache_dir
        from bench.measure.calibrate import load_or_measure
        from bench.run.plan import check_device

        check_device(device)
        result = load_or_measure(default_cache_dir(), device, threads or psutil.cpu_count(logical=False) or 1,
                                 refresh=refresh)
        console.print_json(json.dumps(result))


@app.command()
def doctor(
    device: Optional[str] = typer.Option(None, help="cpu, cuda or cuda:N; default: cpu and cuda (its rows skipped without one)"),
    backends: str = typer.Option("eager,compile,onnxruntime", help="comma-separated backends to prove"),
    dtypes: Optional[str] = typer.Option(None, help="comma-separated; default: fp32 on cpu, fp32,tf32,fp16,bf16 on cuda"),
    models: Optional[str] = typer.Option(None, help="default: random:tiny, plus random:564M where a GPU is present"),
    peaks: str = typer.Option("auto", help="% of peak denominators: auto (calibrate once), cached, or off"),
    threads: Optional[int] = typer.Option(None, help="intra-op threads; default: physical cores"),
    output: Path = typer.Option(Path("runs/doctor.json"), "--output", "-o", help="the JSON file of every check"),
) -> None:
    """Check this machine's stack and prove every measurement path here: a pass/fail/skip table and a JSON file."""
    import tempfile

    from bench.doctor.report import render, run_doctor, settings_for, write_json

    with Guard(), tempfile.TemporaryDirectory(prefix="bench-doctor-") as workdir:
        settings = settings_for(device=device, backends=backends, dtypes=dtypes, models=models, peaks=peaks,
                                threads=threads, workdir=Path(workdir), console=console)
        checks, seconds = run_doctor(settings, console)
        render(checks, seconds, console)
        write_json(checks, seconds, settings, output)
        console.print(f"doctor: {output}")
    if any(check.status == "fail" for check in checks):
        raise typer.Exit(1)


@app.command()
def env() -> None:
    """Print the environment fingerprint that every run records."""
    with Guard():
        from bench.run.env import fingerprint

        console.print_json(json.dumps(fingerprint(), default=str))


def _terminate(signum: int, frame: object) -> None:
    from bench.run.outcome import Terminated

    raise Terminated


def _render(run_dir: Path) -> None:
    """Terminal views, then the report files and plots in the run directory, all from its records."""
    from reports.findings import as_rich, findings
    from reports.load import load_run
    from reports.report import write_report
    from reports.summary import render_run

    run = load_run(run_dir)
    render_run(run.records, run.env, run.manifest, console)
    files = write_report(run)
    skipped = [f"{plot.name}: {plot.skipped}" for plot in files.plots if plot.skipped]
    plots = f"{files.drawn} plot{'' if files.drawn == 1 else 's'}"
    console.print(f"report: {files.markdown}, {files.html}; {plots} in {run_dir / 'plots'}", highlight=False)
    if skipped:
        console.print("not drawn: " + "; ".join(skipped), style="dim", highlight=False)
    lines = findings(run.records)  # last: what the run found, in sentences with their CIs
    if lines:
        console.print(as_rich(lines))


def main() -> None:
    app()
