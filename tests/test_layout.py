"""The house: every package's import graph is acyclic, stages say what they are for, modules stay readable, and
start-up stays light."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bench", "prompts", "sparsify", "reports")
STAGES = ("model", "data", "variants", "backends", "measure", "run")
MAX_LINES = 600  # one sitting; files are split where their jobs part, not at a line count


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the project's packages."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _type_checking_only(tree: ast.Module) -> set[int]:
    """ids of import nodes under `if TYPE_CHECKING:`: never executed, so never part of a cycle."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            skipped |= {id(child) for child in ast.walk(node)}
    return skipped


def _imported(node: ast.AST, modules: dict[str, Path]) -> list[str]:
    """Project modules an import statement executes: the named module, or `from pkg import submodule`."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    else:
        return []
    return [name for name in names if name in modules]


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports anywhere in its body (function-level imports included), plus the
    packages Python initialises on the way, except the importer's own ancestors (already initialising)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = _type_checking_only(tree)
        own_ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            for target in _imported(node, modules):
                parts = target.split(".")
                chain = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
                graph[name] |= {m for m in chain if m in modules and m not in own_ancestors and m != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_no_import_cycle_anywhere():
    graph = import_graph()
    assert len(graph) > 50 and graph["bench.run.sweep"], "the walk found the project's modules and their imports"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = import_graph()
    graph["bench.config"] = graph["bench.config"] | {"bench.variants.train"}  # config -> train -> config
    cycle = find_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1] and "bench.config" in cycle


def test_function_level_imports_count():
    """The cycle that started this test ran through an import inside a validator."""
    assert "bench.variants.registry" in import_graph()["bench.config"]


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_is_a_package_that_says_its_job(stage):
    init = ROOT / "bench" / stage / "__init__.py"
    doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
    assert doc and len(doc.splitlines()[0]) > 20, f"bench/{stage}/__init__.py needs a first line saying its job"


def test_every_source_module_starts_with_its_purpose_and_fits_one_sitting():
    too_long, undocumented = [], []
    for name, path in _modules().items():
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_LINES:
            too_long.append(f"{name} ({len(text.splitlines())} lines)")
        if not path.name == "__main__.py" and not ast.get_docstring(ast.parse(text)):
            undocumented.append(name)
    assert not too_long, f"modules over {MAX_LINES} lines: {', '.join(too_long)}"
    assert not undocumented, f"modules without a docstring: {', '.join(undocumented)}"


def test_start_up_and_config_validation_stay_light():
    """`bench` (the CLI's module) and validating a config with every method never import the heavy optional
    libraries; they load when a cell, a structured variant or a plot needs them."""
    code = ("import sys, bench, bench.cli; from bench.config import parse_config; "
            "parse_config({'variants': [{'name': m, 'method': m, **({'sparsity': 0.5} if m in ('unstructured', "
            "'structured') else {'prompt_length': 4} if m in ('prompt', 'soft_prompt') else {})} for m in "
            "('dense', 'prompt', 'unstructured', 'semi24', 'structured', 'soft_prompt', 'lora')] "
            "+ [{'name': 'on-base', 'method': 'lora', 'base': 'structured'}]}); "
            "heavy = [m for m in ('onnxruntime', 'torch_pruning', 'matplotlib', 'torch') if m in sys.modules]; "
            "assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
