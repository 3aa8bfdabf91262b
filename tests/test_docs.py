"""The docs a newcomer reads: README.md and docs/. The generated config reference is current, every relative link and
#anchor resolves (GitHub's heading slugs), every `bench` command shown in a ```bash block names a real subcommand
and real options of the CLI, every `python` script or module shown exists, and the pages stay short."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer.main

from bench.cli import app
from bench.config import reference

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted(DOCS.glob("*.md"))]
GENERATED = {DOCS / "config.md", DOCS / "records.md"}
FENCE = re.compile(r"^(`{3,}|~{3,})(.*)$")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _split(text: str) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The lines outside fenced code blocks, and each fenced block as (info string, lines)."""
    prose, blocks, fence, info, body = [], [], None, "", []
    for line in text.splitlines():
        match = FENCE.match(line.strip())
        if fence is None and match:
            fence, info, body = match.group(1), match.group(2).strip(), []
        elif fence is not None and line.strip().startswith(fence[0] * len(fence)) and not line.strip().strip(fence[0]):
            blocks.append((info, body))
            fence = None
        elif fence is not None:
            body.append(line)
        else:
            prose.append(line)
    return prose, blocks


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation removed, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    text = text.strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    prose, _ = _split(path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    found = set()
    for line in prose:
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def link_problems(path: Path, root: Path = ROOT) -> list[str]:
    """Every relative link of a page that names no file, or an #anchor that its target page does not have."""
    prose, _ = _split(path.read_text(encoding="utf-8"))
    text = re.sub(r"``[^`]*``|`[^`]*`", "", "\n".join(prose))  # code spans are not links
    problems = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(root)}: link ({target})"
        if not dest.is_relative_to(root):
            problems.append(f"{where}: outside the repository")
        elif not dest.exists():
            problems.append(f"{where}: no file {file_part}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{where}: {dest.name} has no heading #{anchor}")
    return problems


def shell_commands(text: str) -> list[list[str]]:
    """Each simple command (split at &&, ||, ;, |) of every line of the page's ```bash blocks, as its words."""
    _, blocks = _split(text)
    commands = []
    for info, body in blocks:
        if info.split()[:1] != ["bash"]:
            continue
        for line in "\n".join(body).replace("\\\n", " ").splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
            lexer.whitespace_split = True
            current: list[str] = []
            for token in lexer:
                if token in (";", "&&", "||", "|", "&"):
                    commands.append(current)
                    current = []
                else:
                    current.append(token)
            commands.append(current)
    return [c for c in commands if c]


def _group():
    return typer.main.get_command(app)


def bench_problem(args: list[str]) -> str | None:
    """Why `bench ARGS` names a subcommand or an option the CLI does not have, or None."""
    command, path, asked = _group(), ["bench"], False
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("-") and arg != "-":
            name = arg.split("=", 1)[0]
            asked = True
            if name == "--help":
                return None
            param = next((p for p in command.params if name in (*p.opts, *getattr(p, "secondary_opts", ()))
                          and p.param_type_name == "option"), None)
            if param is None:
                return f"`{' '.join(path)}` has no option {name}"
            if not getattr(param, "is_flag", False) and not getattr(param, "count", False) and "=" not in arg:
                i += 1  # its value
        elif hasattr(command, "commands"):
            if arg not in command.commands:
                return f"`{' '.join(path)}` has no subcommand '{arg}' (it has {', '.join(command.commands)})"
            command = command.commands[arg]
            path.append(arg)
        i += 1
    if hasattr(command, "commands") and not asked and not getattr(command, "invoke_without_command", False):
        return f"`{' '.join(path)}` needs a subcommand ({', '.join(command.commands)})"
    return None


def python_problem(args: list[str]) -> str | None:
    """`python -m MODULE` or `python SCRIPT.py`: why the module or script is not in the repository, or None."""
    if len(args) >= 3 and args[1] == "-m":
        module = ROOT.joinpath(*args[2].split("."))
        if module.with_suffix(".py").is_file() or (module / "__main__.py").is_file():
            return None
        return f"python -m {args[2]}: no such module here"
    if len(args) >= 2 and args[1].endswith(".py") and not (ROOT / args[1]).is_file():
        return f"python {args[1]}: no such script here"
    return None


def _commands() -> list[tuple[Path, list[str]]]:
    return [(page, words) for page in PAGES for words in shell_commands(page.read_text(encoding="utf-8"))]


# --- the generated reference --------------------------------------------------------------------------------------

def test_docs_config_md_is_generated_from_the_config_models():
    """docs/config.md is `python -m bench.config.reference > docs/config.md`; regenerate it after changing a config."""
    written = (DOCS / "config.md").read_text(encoding="utf-8")
    assert written == reference.markdown(), \
        "docs/config.md is stale: run `python -m bench.config.reference > docs/config.md`"


def _config_models():
    from bench import config as cfg
    from bench.plugins.variant import TrainConfig, VariantBase

    models = [cfg.SweepConfig, cfg.ModelConfig, cfg.DataConfig, TrainConfig, VariantBase, cfg.MeasureConfig,
              cfg.BackendOptions, cfg.ExecutorConfig, cfg.CostConfig]
    models += [spec.variant for spec in reference.builtin_methods().values()]
    models += [spec.options for spec in reference.builtin_backends().values() if spec.options is not None]
    return models


@pytest.mark.parametrize("model", _config_models(), ids=lambda m: m.__name__)
def test_every_config_field_has_a_description_and_a_row(model):
    written = (DOCS / "config.md").read_text(encoding="utf-8")
    for name in model.model_fields:
        assert reference.description(model, name).strip(), f"{model.__name__}.{name} has no Field(description=...)"
        if name not in ("model", "data", "train", "measure", "backend", "executor", "cost", "method_train",
                        "variants", *reference.builtin_backends()):  # sections of their own
            assert f"| `{name}` |" in written, f"{model.__name__}.{name} is missing from docs/config.md"


def test_the_reference_spells_types_defaults_and_bounds():
    page = reference.markdown()
    assert "| `min_rounds` | integer | `10` | >= 2 |" in page
    assert "| `device` | string | `\"cpu\"` | matches `^(cpu\\|cuda\\|cuda:\\d+)$` |" in page
    assert "| `language_groups` | table of list of string | {high = ..., medium = ..., low = ...} |" in page
    assert "`compile:reduce-overhead`" in page and "`eager:onednn`" in page  # backends as measure.backends takes them
    # language_groups is a [data] key (the hand-written table once put it under [train])
    data = page.split("## [data]")[1].split("\n## ")[0]
    assert "`language_groups`" in data and "`language_groups`" not in page.split("## [train]")[1].split("\n## ")[0]


# --- links and anchors --------------------------------------------------------------------------------------------

def test_slugs_follow_github():
    assert slug("Fast paths: each backend at its best") == "fast-paths-each-backend-at-its-best"
    assert slug("`bench doctor`") == "bench-doctor"
    assert slug("The A/A twin and claims") == "the-aa-twin-and-claims"
    assert slug('[[variants]] method = "prompt"') == "variants-method--prompt"
    assert slug("[method_train]") == "method_train"


def test_the_link_checker_finds_broken_links(tmp_path):
    (tmp_path / "b.md").write_text("# Real heading\n\n```bash\n# Not a heading\n```\n", encoding="utf-8")
    page = tmp_path / "a.md"
    page.write_text("[ok](b.md#real-heading) [gone](c.md) [bad](b.md#not-a-heading) [self](#top) [up](../x.md)\n"
                    "`[code](nowhere.md)` [web](https://example.org/x#y)\n\n# Top\n", encoding="utf-8")
    problems = link_problems(page, root=tmp_path)
    assert len(problems) == 3, problems
    assert "no file c.md" in problems[0] and "no heading #not-a-heading" in problems[1]
    assert "outside the repository" in problems[2]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page):
    assert link_problems(page) == []


# --- commands -----------------------------------------------------------------------------------------------------

def test_the_command_checker_walks_the_cli():
    assert bench_problem(["run", "configs/default.toml", "--model", "random:tiny", "--set", "train.steps=0"]) is None
    assert bench_problem(["cache", "clear", "--exports"]) is None
    assert bench_problem(["cache"]) is None  # runs `cache size`
    assert bench_problem(["--version"]) is None
    assert "no subcommand 'rnu'" in bench_problem(["rnu"])
    assert "no option --modle" in bench_problem(["run", "--modle", "random:tiny"])
    assert "no option --exports" in bench_problem(["cache", "verify", "--exports"])
    assert "no subcommand 'purge'" in bench_problem(["cache", "purge"])
    assert python_problem(["python", "-m", "bench.config.reference"]) is None
    assert python_problem(["python", "-m", "bench.nothing"]) is not None


def test_commands_are_split_like_a_shell():
    text = "```bash\nexport A=1 && bench run --name x # a comment\nbench compare a b \\\n    --price a=1 | tee f\n```\n"
    assert shell_commands(text) == [["export", "A=1"], ["bench", "run", "--name", "x"],
                                    ["bench", "compare", "a", "b", "--price", "a=1"], ["tee", "f"]]


def test_every_bench_command_in_the_docs_is_real():
    commands = [(page, words) for page, words in _commands() if words[0] == "bench"]
    assert len(commands) >= 20  # the pages show this many: the checker is reading them
    problems = [f"{page.relative_to(ROOT)}: {' '.join(words)}: {bench_problem(words[1:])}"
                for page, words in commands if bench_problem(words[1:])]
    assert problems == []


def test_every_python_module_or_script_in_the_docs_exists():
    commands = [(page, words) for page, words in _commands() if words[0] == "python"]
    assert commands
    problems = [f"{page.relative_to(ROOT)}: {python_problem(words)}"
                for page, words in commands if python_problem(words)]
    assert problems == []


def test_the_readme_test_command_is_the_one_ci_runs():
    """.ci/run runs the README's test command (quietly); the two must not drift apart."""
    ci = next(line for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
              if line.startswith("pip install") and "pytest tests" in line)
    assert ci.replace(" -q", "") in (ROOT / "README.md").read_text(encoding="utf-8")


# --- size ---------------------------------------------------------------------------------------------------------

def test_the_readme_is_one_screenful_and_a_half():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 150


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_every_docs_page_reads_in_one_sitting(page):
    assert len(page.read_text(encoding="utf-8").splitlines()) <= 400
