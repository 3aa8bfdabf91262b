"""A sweep file as the user wrote it: TOML read with one-line errors, dotted command-line overrides, and a
pydantic validation error as the one line a user reads: the full path of the field as the TOML spells it
(`variants[2].train.lr`, `method_train.prompt.lrr`), what is wrong, what was given, and for an unknown key the
closest known one."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from bench.errors import BenchError, did_you_mean


# A sweep file is a few kB; anything past this is not one (and /dev/zero would otherwise be read until memory ends).
MAX_CONFIG_BYTES = 1 << 20


def read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(_config_text(path))
    except FileNotFoundError:
        raise BenchError(f"config file '{path}' not found") from None
    except IsADirectoryError:
        raise BenchError(f"config file '{path}' is a directory; give a .toml file") from None
    except UnicodeDecodeError:
        raise BenchError(f"config file '{path}' is not UTF-8 text") from None
    except OSError as exc:
        raise BenchError(f"cannot read config file '{path}': {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"config file '{path}' is not valid TOML: {exc}") from None


def _config_text(path: Path) -> str:
    """The file's text, refused before it is opened unless it is a regular file (a FIFO with no writer would block
    in open(), a device would never end) and refused past MAX_CONFIG_BYTES however it grows while read."""
    mode = path.stat().st_mode  # follows symlinks: a link to a regular file is fine
    if stat.S_ISDIR(mode):
        raise IsADirectoryError
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else \
            "a socket" if stat.S_ISSOCK(mode) else "not a regular file"
        raise BenchError(f"config file '{path}' is {kind}; give a regular .toml file")
    with open(path, "rb") as fh:
        raw = fh.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise BenchError(f"config file '{path}' is larger than {MAX_CONFIG_BYTES // (1 << 20)} MB; a sweep file is a "
                         "few kB of TOML: give the right file")
    return raw.decode("utf-8")


def with_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys ({"measure.device": "cuda"}) set into the nested tables, creating those that are missing."""
    for dotted, value in overrides.items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return data


def first_error(exc: ValidationError, root: type[BaseModel]) -> str:
    err = exc.errors()[0]
    loc = _without_tags(tuple(part for part in err["loc"] if part != "[key]"))  # a dict key's own error names the key
    field = toml_path(loc) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ")
    given = err.get("input")
    shown = "" if isinstance(given, dict) or err["type"] in ("missing", "extra_forbidden") else f" (got {given!r})"
    if err["type"] == "extra_forbidden":
        known = fields_at(root, loc[:-1])
        msg = "not permitted, " + (did_you_mean(str(loc[-1]), known, "key") if known else f"unknown key '{loc[-1]}'")
    more = f" [and {len(exc.errors()) - 1} more]" if len(exc.errors()) > 1 else ""
    return f"field '{field}': {msg}{shown}{more}"


def _without_tags(loc: tuple) -> tuple:
    """Drop the union tag pydantic puts after a variant's index: ('variants', 0, 'lora', 'lora_rank') names the
    field the TOML spells variants[0].lora_rank."""
    from bench import plugins

    tags = set(plugins.methods())
    return tuple(part for i, part in enumerate(loc) if not (i and isinstance(loc[i - 1], int) and part in tags))


def toml_path(loc: tuple) -> str:
    """('variants', 2, 'train', 'lr') -> 'variants[2].train.lr'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def fields_at(root: type[BaseModel], loc: tuple) -> list[str]:
    """The keys the model at `loc` (a path into `root`) accepts. Indices of lists and keys of dicts (a method's
    name in method_train) lead to the model of their values."""
    model: Any = root
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) and model is not None else None
        if field is None:
            continue
        annotation = field.annotation
        inner = [a for a in _leaves(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
        model = inner[-1] if inner else None
    return list(model.model_fields) if model is not None else []


def _leaves(annotation: Any) -> list[Any]:
    """A type and every type inside it: list[X] -> [list[X], X]; dict[K, V] -> [..., K, V]; A | None -> [A, None]."""
    out = [annotation]
    for arg in getattr(annotation, "__args__", ()) or ():
        out += _leaves(arg)
    return out
