"""The one exception type users see: a message that says what is wrong and how to fix it."""


class BenchError(Exception):
    """A user-facing error. The CLI prints its message as one line and exits non-zero."""


class SourceUnavailable(BenchError):
    """A data source that is not there (no directory, no files, no network): `auto` goes on to the next source.
    A source that is there but broken (a file that fails to parse) is a plain BenchError, never skipped."""


def did_you_mean(value: str, allowed: list[str] | tuple[str, ...], what: str) -> str:
    """'unknown preset 'tinyy'; did you mean 'tiny'? available: tiny, small, 564M'."""
    import difflib

    close = difflib.get_close_matches(value, list(allowed), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ";"
    return f"unknown {what} '{value}'{hint} available: {', '.join(allowed)}"


def one_line(exc: BaseException) -> str:
    """An exception as one short line: its type and the first line of its message, at most 200 characters."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
