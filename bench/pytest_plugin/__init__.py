"""pytest plugin (entry point pytest11): benchmark an XGLM variant on a backend with pytest-benchmark in a few lines.

    def test_dense_eager(xglm_bench, benchmark):
        runner, batch = xglm_bench.runner("random:tiny", "eager", batch_size=8, seq_len=64)
        xglm_bench.run(benchmark, runner, batch)

`runner` builds or loads the model, realises its method for the target as a sweep's cell does, prepares the backend
once per session (runners are shared by every test that asks for the same model, backend and target) and makes a
right-padded batch of random token ids with its eager fp32 logits. `run` times the runner with `benchmark.pedantic`,
synchronising the device inside every round, then puts throughput, shape, memory, parity and build times into
`benchmark.extra_info`. What this machine cannot serve is skipped with the reason, never passed. Imported by every
pytest run where the package is installed, so torch and the harness are imported only when a fixture is used.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.pytest_plugin.session import BenchBatch, XglmBench
from bench.pytest_plugin.settings import OPTIONS, Settings, regression_line
from bench.variants.model_spec import ModelSpec

__all__ = ["MACHINE_KEYS", "BenchBatch", "ModelSpec", "Settings", "XglmBench", "regression_line"]

# Hardware and software stack only: pytest-benchmark warns on every compare whose machine_info differs, so no
# timestamps or commits here (it records commit_info itself).
MACHINE_KEYS = (
    "cpu_model", "cpu_cores_physical", "gpus", "nvidia_driver_version", "torch_cuda_version", "cudnn_version",
    "cusparselt_version", "torch_version", "transformers_version", "onnxruntime_version", "onnxruntime_providers",
)

SETTINGS = pytest.StashKey[Settings]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("xglm-bench", "XGLM benchmark fixtures (bench.pytest_plugin)")
    for name, (env, default, text) in OPTIONS.items():
        group.addoption(f"--xglm-bench-{name}", default=None, help=f"{text} (env {env}; default {default})")


def pytest_configure(config: pytest.Config) -> None:
    # Validated at start-up, so a bad option stops the run with a usage error instead of erroring every test.
    config.stash[SETTINGS] = Settings.from_config(config)


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-benchmark: optional, so pytest without it still starts
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    from bench.run.env import fingerprint

    env = fingerprint()
    machine_info["xglm_bench"] = {key: env.get(key) for key in MACHINE_KEYS}


@pytest.fixture(scope="session")
def xglm_bench(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> XglmBench:
    """Builds models and runners once per session; `runner(...)` then `run(benchmark, runner, batch)`."""
    return XglmBench(pytestconfig.stash[SETTINGS], tmp_path_factory.mktemp("xglm-bench"))
