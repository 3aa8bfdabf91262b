"""How the `bench` command line fails: always one line on stderr and an exit status that says what kind of
failure it was. Bad input (bench.errors.BenchError, a usage error) exits 2; an environment fault (disk full,
read-only) names the path and the cause and exits 1; anything unexpected exits 1 with the path of a log file that
holds its traceback (in the run directory when there is one). A run's own states have their codes in
bench.run.outcome.EXIT_CODES."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup
from typer.exceptions import TyperException

from bench.errors import BenchError, one_line

# Piped or captured output (CI logs, files) would default to 80 columns: 160 there, unless COLUMNS says otherwise
# (Rich reads it), so `COLUMNS=80 bench run | less` renders for the terminal that shows it.
def _width(stream) -> int | None:
    return None if stream.isatty() or os.environ.get("COLUMNS", "").strip().isdigit() else 160


class PipeSafeConsole(Console):
    """A console whose reader went away (`bench run | head -1`) goes quiet instead of ending the process: Rich's
    default raises SystemExit(1) from whatever print hit the broken pipe, which failed a run that was measuring
    well. The run goes on, writes its records and files, and its exit status still says how it ended."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        stream = sys.stderr if self.stderr else sys.stdout
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())  # later writes, and the flush at exit, go nowhere instead of failing
        os.close(devnull)


console = PipeSafeConsole(width=_width(sys.stdout))
err_console = PipeSafeConsole(stderr=True, width=_width(sys.stderr))


def error(message: str, label: str = "error", style: str = "bold red") -> None:
    """One line on stderr; the message is plain text (a '[method_train.x]' in it is not Rich markup)."""
    err_console.print(Text.assemble((f"{label}:", style), " ", message.replace("\n", " ")), highlight=False,
                      soft_wrap=True)


class OneLineErrors(TyperGroup):
    """Usage errors (an unknown option, a missing argument) as one line too, not a framed panel."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except TyperException as exc:  # click's usage errors, as typer vendors them
            if type(exc).__name__ != "NoArgsIsHelpError":  # that one has printed the help already
                context = getattr(exc, "ctx", None)
                error(f"{exc.format_message()} (see `{context.command_path if context else 'bench'} --help`)")
            sys.exit(getattr(exc, "exit_code", 2))
        except typer.Abort:
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)


class Guard:
    """Around a command's body: every exception but an exit becomes one line and its exit status."""

    def __init__(self, run_dir: Path | None = None) -> None:
        self.run_dir = run_dir  # where an unexpected error's log goes; set once a run directory exists

    def __enter__(self) -> "Guard":
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        if exc is None or isinstance(exc, (typer.Exit, typer.Abort, TyperException, KeyboardInterrupt, SystemExit)):
            return False
        from bench.run.outcome import os_error_line, write_error_log

        if isinstance(exc, BenchError):
            error(str(exc))
            raise typer.Exit(2) from None
        if isinstance(exc, OSError) and exc.filename:
            error(os_error_line(exc))
            raise typer.Exit(1) from None
        if isinstance(exc, Exception):
            log = write_error_log(exc, self.run_dir)
            error(f"unexpected {one_line(exc)}; the traceback is in {log}")
            raise typer.Exit(1) from None
        return False
