"""Plug-ins from another package: a distribution in a temporary directory declares a backend and a method through
the entry points xglm_bench.backends and xglm_bench.methods, and a real `bench run` measures them and reports them,
with no edit to this repository."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tomli_w

from bench import plugins

PLUGIN = '''
"""A toy plug-in: a backend that runs eager PyTorch under its own name, and a method that zeroes a random share of
every decoder linear's weights after dense fine-tuning (a random-mask control)."""

from typing import Literal

from pydantic import Field

from bench.plugins.spec import BackendSpec, MethodSpec, Strict, Style
from bench.plugins.variant import VariantBase
from bench.records import Key


class ToyOptions(Strict):
    note: str = Field("toy", description="recorded in every record of the backend")


def prepare(model, target, example, options, workdir, **_):
    from bench.backends.eager.runner import prepare as eager

    runner = eager(model, target, example, options, workdir)
    runner.info["toy_note"] = options.toy.note
    return runner


BACKEND = BackendSpec(name="toy", prepare="toyplug:prepare", options=ToyOptions, devices=("cpu",),
                      description="eager PyTorch under another name", style=Style("toy", marker="X", line=":"),
                      record_keys=(Key("toy_note", str, "", "the toy backend's note"),))


class RandomMaskVariant(VariantBase):
    method: Literal["random_mask"] = "random_mask"
    drop: float = Field(0.5, ge=0, lt=1, description="share of each decoder linear's weights set to zero at random")


def build(ctx):
    import torch

    from bench.variants.dense import build as dense_build
    from sparsify.targets import decoder_linears

    built = dense_build(ctx)
    g = torch.Generator().manual_seed(ctx.seed)
    with torch.no_grad():
        for linear in decoder_linears(built.model).values():
            keep = torch.rand(linear.weight.shape, generator=g) >= ctx.variant.drop
            linear.weight.mul_(keep)
    built.extra["random_mask_drop"] = ctx.variant.drop
    return built


METHOD = MethodSpec(name="random_mask", variant=RandomMaskVariant, build="toyplug:build",
                    description="random mask after dense fine-tuning", sparse=True, masked=True,
                    style=Style("random mask", "#F0E442"),
                    record_keys=(Key("random_mask_drop", float, "fraction", "share of weights zeroed at random"),))
'''


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    """A distribution `toyplug` on a path of its own: the module and its dist-info with entry points."""
    root = tmp_path_factory.mktemp("plugin")
    (root / "toyplug.py").write_text(PLUGIN, encoding="utf-8")
    info = root / "toyplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toyplug\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(textwrap.dedent("""\
        [xglm_bench.backends]
        toy = toyplug:BACKEND

        [xglm_bench.methods]
        random_mask = toyplug:METHOD
        """), encoding="utf-8")
    return root


def _bench(args: list[str], plugin_path: Path, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    import os

    environ = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_path), os.environ.get("PYTHONPATH", "")]),
               "HF_HUB_OFFLINE": "1", "COLUMNS": "200", **env}
    environ.pop("BENCH_DATA_DIR", None)
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, timeout=600,
                          cwd=cwd, env=environ)


@pytest.mark.slow
def test_a_plugin_package_adds_a_backend_and_a_method_to_a_real_sweep(plugin_path, tiny_config, tmp_path):
    config = tiny_config(tmp_path / "runs", tmp_path / "cache",
                         variants=[{"name": "dense-ft", "method": "dense"},
                                   {"name": "random-30", "method": "random_mask", "drop": 0.3}],
                         measure={"backends": ["eager", "toy"], "scenarios": ["latency", "accuracy"]},
                         backend={"toy": {"note": "from the plug-in"}})
    path = tmp_path / "sweep.toml"
    path.write_text(tomli_w.dumps(config), encoding="utf-8")
    done = _bench(["run", str(path)], plugin_path, tmp_path, BENCH_CACHE_DIR=str(tmp_path / "env-cache"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run_dir = next((tmp_path / "runs").iterdir())
    records = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    cells = {(r["variant"], r["backend"], r["scenario"]): r for r in records}
    toy = cells[("random-30", "toy", "latency")]
    assert toy["status"] == "ok" and toy["method"] == "random_mask" and toy["toy_note"] == "from the plug-in"
    assert toy["random_mask_drop"] == 0.3 and 0.65 < toy["density_linear"] < 0.75  # the mask really is there
    assert toy["speedup_vs_dense"] is not None  # paired with dense on the plug-in backend, in the same rounds
    env = json.loads((run_dir / "env.json").read_text())
    assert env["plugins"]["backends"]["toy"] == "toyplug" and env["plugins"]["methods"]["random_mask"] == "toyplug"
    report = (run_dir / "report.md").read_text()
    assert "random-30" in report and "toy" in report
    assert "random-30" in done.stdout and "toy" in done.stdout


def test_a_plugins_options_and_names_are_validated_like_the_builtins(plugin_path, tmp_path):
    """A typo in the plug-in's backend name or its method's option, or a device its declaration does not list, gets
    the same one line as a built-in's."""
    code = textwrap.dedent("""\
        from bench.config import parse_config
        from bench.errors import BenchError
        for bad in ({"measure": {"backends": ["toi"]}},
                    {"variants": [{"name": "r", "method": "random_mask", "dorp": 0.3}]},
                    {"variants": [{"name": "r", "method": "dense", "drop": 0.3}]},
                    {"measure": {"device": "cuda", "backends": ["eager", "toy"]}}):
            try:
                parse_config(bad)
            except BenchError as exc:
                print(exc)
        """)
    import os

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(plugin_path)})
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and len(lines) == 4, done.stdout + done.stderr
    assert "unknown backend 'toi'; did you mean 'toy'?" in lines[0]
    assert "unknown option 'dorp'; did you mean 'drop'?" in lines[1]
    assert "drop applies to method random_mask, not 'dense'" in lines[2]
    assert "backend 'toy' runs on cpu, not cuda" in lines[3]  # what its declaration says it can run


def test_builtins_are_declared_once_and_every_list_derives_from_the_traits():
    methods, backends = plugins.methods(), plugins.backends()
    assert list(methods) == ["dense", "prompt", "soft_prompt", "lora", "unstructured", "semi24", "structured"]
    assert plugins.methods_where("sparse") == ("unstructured", "semi24", "structured")
    assert plugins.methods_where("parameter_efficient") == ("prompt", "soft_prompt", "lora")
    assert plugins.methods_where("full_model") == ("dense", "unstructured", "semi24", "structured")
    assert "compile:max-autotune" in plugins.backend_names() and list(backends) == ["eager", "compile", "onnxruntime"]
    from reports.method_style import METHOD_STYLES

    assert set(METHOD_STYLES) == set(methods)


def test_a_broken_plugin_is_one_line_naming_it(tmp_path):
    info = tmp_path / "brokenplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenplug\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[xglm_bench.methods]\nnope = brokenplug_missing:METHOD\n", encoding="utf-8")
    import os

    code = "from bench import plugins; plugins.methods()"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert loaded.returncode != 0 and "plug-in 'brokenplug_missing:METHOD' (from brokenplug" in loaded.stderr
