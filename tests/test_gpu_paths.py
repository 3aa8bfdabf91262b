"""GPU paths proven on the CPU wherever the logic allows (fake NVML, fake counters, fake ORT sessions, dynamo's own
counters with its eager backend), and on a GPU by the `gpu`-marked tests, skipped by capability check."""

from __future__ import annotations

import json
import os
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from bench.backends import SkipCell, Target
from bench.backends.onnxruntime import session as ort_session
from bench.measure import device as device_probe
from bench.measure import energy, memory
from bench.model import dtypes

CUDA = torch.cuda.is_available()


# ------------------------------------------------------------------------------------------------ TF32 policy


@pytest.fixture
def restore_tf32():
    yield
    dtypes.apply_tf32_policy("fp32", force=True)


def test_tf32_policy_is_off_for_fp32_and_half_on_only_for_tf32(restore_tf32):
    for dtype, on in (("fp32", False), ("fp16", False), ("bf16", False), ("tf32", True), ("fp32", False)):
        fields = dtypes.apply_tf32_policy(dtype)
        state = dtypes.torch_tf32_state()
        assert fields["tf32"] is on and state["cuda_matmul_allow_tf32"] is on and state["cudnn_allow_tf32"] is on
        assert state["float32_matmul_precision"] == ("high" if on else "highest")
    assert dtypes.TORCH_DTYPES["tf32"] is torch.float32


def test_a_runner_restores_its_own_policy_after_another_cell_changed_it(restore_tf32):
    from bench.backends.base import TorchRunner

    class First(torch.nn.Module):
        def forward(self, ids, mask):
            return ids

    runner = TorchRunner("eager", First(), Target("cpu", "fp32", 1))
    assert runner.info["tf32"] is False
    dtypes.apply_tf32_policy("tf32")  # another cell of this process
    runner(runner.inputs(torch.ones(1, 4), torch.ones(1, 4)))
    assert dtypes.torch_tf32_state()["float32_matmul_precision"] == "highest"


def test_tf32_is_refused_on_the_cpu_with_the_reason():
    assert "CUDA tensor-core mode" in dtypes.tf32_unsupported("tf32", "cpu")
    assert dtypes.tf32_unsupported("fp32", "cpu") is None
    from bench.backends.base import placed_copy

    with pytest.raises(SkipCell, match="TF32"):
        placed_copy(torch.nn.Linear(4, 2), Target("cpu", "tf32", 1))


def test_ort_cuda_gets_the_same_tf32_policy():
    assert ort_session.provider_options(Target("cuda:1", "fp32", 1)) == {"device_id": "1", "use_tf32": "0"}
    assert ort_session.provider_options(Target("cuda:1", "tf32", 1))["use_tf32"] == "1"
    assert ort_session.provider_options(Target("cpu", "fp32", 1)) == {}


def test_calibration_measures_fp32_without_tf32_and_no_tf32_peak_on_cpu(monkeypatch, restore_tf32):
    from bench.measure import calibrate

    seen = {}
    monkeypatch.setattr(calibrate, "_gemm_tflops", lambda device, dtype: seen.setdefault(
        str(dtype), dtypes.torch_tf32_state()["float32_matmul_precision"]) and ({"mkl": 1.0}, {}))
    monkeypatch.setattr(calibrate, "_copy_gbps", lambda device: 10.0)
    dtypes.apply_tf32_policy("tf32")  # a stale setting must not leak into the fp32 peak
    peaks = calibrate.measure("cpu", 1)
    assert seen["torch.float32"] == "highest" and peaks["peak_tflops_tf32"] is None
    assert peaks["peak_tflops_fp32"] == 1.0 and "TF32 off" in peaks["tf32_policy"]


# ------------------------------------------------------------------------------------------------ ONNX Runtime


def test_half_precision_exports_end_in_a_float32_cast():
    from bench.backends.onnxruntime.runner import Float32Logits, exportable

    model = torch.nn.Sequential(torch.nn.Linear(4, 3)).to(torch.bfloat16)

    class Pair(torch.nn.Module):
        def forward(self, ids, mask):
            return model(ids.to(torch.bfloat16))

    wrapped = exportable(Pair(), Target("cuda", "bf16", 1))
    assert isinstance(wrapped, Float32Logits) and wrapped(torch.ones(2, 4), None).dtype == torch.float32
    assert not isinstance(exportable(Pair(), Target("cuda", "fp32", 1)), Float32Logits)


class _FakeSession:
    def __init__(self, providers):
        self._providers = providers

    def get_providers(self):
        return self._providers


class _FakeOrt:
    __version__ = "9.9"

    def __init__(self, got=None, error=None):
        self.got, self.error, self.calls = got, error, []

    def InferenceSession(self, path, **kwargs):  # noqa: N802 (onnxruntime's name)
        self.calls.append(kwargs)
        if self.error:
            raise self.error
        return _FakeSession(self.got)


def test_session_without_the_requested_provider_is_skipped_with_the_reason(tmp_path):
    ort = _FakeOrt(got=["CPUExecutionProvider"])  # what a CUDA/cuDNN mismatch leaves
    with pytest.raises(SkipCell, match="did not get CUDAExecutionProvider .*got CPUExecutionProvider"):
        ort_session.create_session(ort, tmp_path / "m.onnx", Target("cuda:0", "fp16", 1), so=None)
    call = ort.calls[0]
    assert call["enable_fallback"] == 0  # the Python API's silent retry on the CPU is off
    assert call["providers"] == [("CUDAExecutionProvider", {"device_id": "0", "use_tf32": "0"})]
    ort_session.check_providers(["CUDAExecutionProvider", "CPUExecutionProvider"], "CUDAExecutionProvider")


def test_missing_kernels_for_a_dtype_skip_the_cell():
    error = RuntimeError("[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation for "
                         "LayerNormalization(17) node with name 'node_layer_norm'")
    with pytest.raises(SkipCell, match="no CUDAExecutionProvider kernels for this graph in bf16"):
        ort_session.create_session(_FakeOrt(error=error), "m.onnx", Target("cuda:0", "bf16", 1), so=None)


def test_node_placement_refuses_float_compute_on_the_cpu_but_not_shape_arithmetic(tmp_path):
    def node(name, op, provider, out):
        return {"cat": "Node", "name": name, "args": {"op_name": op, "provider": provider,
                                                      "input_type_shape": [{"float": [2, 8]}], "output_type_shape": [out]}}

    events = [node("a", "Shape", "CPUExecutionProvider", {"int64": [2]}),
              node("b", "MatMul", "CUDAExecutionProvider", {"float": [2, 8]}),
              node("c", "Add", "CPUExecutionProvider", {"bfloat16": [2, 8]}),
              {"cat": "Session", "name": "model_run", "args": {}}]
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(events))
    placement = ort_session.node_placement(path)
    assert placement == {"nodes_by_provider": {"CPUExecutionProvider": 2, "CUDAExecutionProvider": 1},
                         "cpu_float_ops": {"Add": 1}}
    ort_session.check_placement(placement, Target("cuda", "bf16", 1))  # an elementwise op is recorded, not refused
    events.append(node("d", "MatMul", "CPUExecutionProvider", {"bfloat16": [2, 8]}))
    path.write_text(json.dumps(events))
    with pytest.raises(SkipCell, match="no bf16 kernels .*MatMul x1"):
        ort_session.check_placement(ort_session.node_placement(path), Target("cuda", "bf16", 1))
    ort_session.check_placement(ort_session.node_placement(path), Target("cpu", "fp32", 1))  # the CPU's own nodes


def test_preload_dlls_is_called_where_it_exists_and_its_chatter_kept():
    assert ort_session.preload_cuda_libraries(SimpleNamespace(__version__="1.20")) == "not available in onnxruntime 1.20"
    assert ort_session.preload_cuda_libraries(SimpleNamespace(__version__="1.31", preload_dlls=lambda: print("loaded"))) \
        == "called (loaded)"


# ------------------------------------------------------------------------------------------------ NVML and memory


class FakeNvml:
    """pynvml as far as the harness uses it: two GPUs, looked up by UUID; NVML's order is not torch's."""

    class NVMLError(Exception):
        pass

    def __init__(self, pids=(), used_by_pid=None):
        self.gpus = {b"GPU-bbbb": "nvml0", b"GPU-aaaa": "nvml1"}
        self.pids, self.used_by_pid, self.energy = list(pids), used_by_pid or {}, {"nvml0": 5_000, "nvml1": 9_000}

    def nvmlInit(self):  # noqa: N802
        pass

    def nvmlDeviceGetHandleByIndex(self, index):  # noqa: N802
        raise AssertionError("looked up by NVML index: the wrong GPU under CUDA_VISIBLE_DEVICES")

    def nvmlDeviceGetHandleByUUID(self, uuid):  # noqa: N802
        return self.gpus[uuid]

    def nvmlDeviceGetMemoryInfo(self, handle):  # noqa: N802
        return SimpleNamespace(used={"nvml0": 100, "nvml1": 700} [handle] * memory.MB)

    def nvmlDeviceGetComputeRunningProcesses(self, handle):  # noqa: N802
        return [SimpleNamespace(pid=pid, usedGpuMemory=self.used_by_pid.get(pid)) for pid in self.pids]

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):  # noqa: N802
        return self.energy[handle]


@pytest.fixture
def two_gpus(monkeypatch):
    """torch sees cuda:0 = GPU-aaaa (NVML's index 1) and cuda:1 = GPU-bbbb, as with CUDA_VISIBLE_DEVICES=1,0."""
    monkeypatch.setattr(device_probe, "cuda_uuid", lambda index: ["GPU-aaaa", "GPU-bbbb"][index])
    monkeypatch.setattr(device_probe, "cuda_index", lambda device: int(device.partition(":")[2] or 0))

    def install(nvml):
        monkeypatch.setitem(sys.modules, "pynvml", nvml)
        return nvml

    return install


def test_nvml_is_asked_for_the_gpu_in_use_by_uuid(two_gpus):
    nvml = two_gpus(FakeNvml())
    assert device_probe.nvml_handle(nvml, "cuda") == "nvml1" and device_probe.nvml_handle(nvml, "cuda:1") == "nvml0"
    assert energy.EnergyCounter.open("cuda:0").read_mj() == 9_000 and energy.EnergyCounter.open("cuda:1").read_mj() == 5_000


def test_per_process_memory_when_nvml_lists_this_pid(two_gpus):
    two_gpus(FakeNvml(pids=[1, os.getpid()], used_by_pid={os.getpid(): 300 * memory.MB}))
    found = memory.nvml_memory("cuda:0")
    assert found["process_mb"] == 300 and found["device_used_mb"] == 700


def test_in_a_pid_namespace_the_device_used_memory_stands_in_with_a_note(two_gpus):
    two_gpus(FakeNvml(pids=[4242]))  # the host's PID of this very process, in a container
    found = memory.nvml_memory("cuda:0")
    assert found["process_mb"] is None and found["device_used_mb"] == 700 and "PID namespace" in found["note"]
    headline, source = memory.cuda_headline("onnxruntime", 0.5, found)
    assert headline == 700 and "whole GPU" in source
    assert memory.cuda_headline("torch", 80.0, found)[0] == 80.0  # torch's own figure is exact for torch runners


def test_onnxruntime_memory_is_never_torchs_near_zero_figure():
    nothing = {"process_mb": None, "device_used_mb": None, "note": "NVML unavailable: nvidia-ml-py not installed"}
    headline, source = memory.cuda_headline("onnxruntime", 0.02, nothing)
    assert headline is None and "nvidia-ml-py" in source


class _Recorder:
    """A runner that records what the memory pass asks of it, in order."""

    allocator, warmup_per_shape = "onnxruntime", 3
    target = Target("cpu", "fp32", 1)

    def __init__(self):
        self.calls = []

    def inputs(self, ids, mask):
        return ids

    def __call__(self, x):
        self.calls.append("run")

    def release_memory(self):
        self.calls.append("release")

    def synchronize(self):
        pass


def test_memory_pass_releases_caches_then_warms_up_before_measuring_each_shape():
    from bench.measure.passes import memory as memory_pass

    runner = _Recorder()
    batch = SimpleNamespace(input_ids=torch.ones(2, 4), attention_mask=torch.ones(2, 4))
    fields = memory_pass(runner, batch)
    assert runner.calls[:4] == ["release", "run", "run", "run"] and len(runner.calls) == 4 + 3
    assert fields["peak_memory_mb"] > 0


# ------------------------------------------------------------------------------------------------ energy


class FakeGpu:
    """An asynchronous queue in front of an energy counter: queued work reaches the counter only when it runs,
    which synchronize() forces; the counter moves in steps of `step_mj`."""

    def __init__(self, step_mj=0):
        self.queue, self.joules_mj, self.step_mj = [], 0, step_mj

    def launch(self, mj):
        self.queue.append(mj)

    def synchronize(self):
        self.joules_mj += sum(self.queue)
        self.queue.clear()

    def read_mj(self):
        return self.joules_mj - (self.joules_mj % self.step_mj if self.step_mj else 0)


def _meter(gpu):
    return energy.EnergyMeter(energy.EnergyCounter(handle="fake", reason=None, nvml=SimpleNamespace(
        nvmlDeviceGetTotalEnergyConsumption=lambda handle: gpu.read_mj())))


def test_energy_window_excludes_queued_warm_up_and_includes_its_own_queue():
    gpu = FakeGpu()
    meter = _meter(gpu)
    for _ in range(5):
        gpu.launch(1_000)  # warm-up, still queued
    meter.start(gpu.synchronize)
    for _ in range(10):
        gpu.launch(200)  # the timed window; the last launches are still queued when timing ends
    meter.stop(gpu.synchronize, samples=40, seconds=2.0)
    fields = energy.energy_fields_from(meter.joules, meter.seconds, meter.samples, meter.windows, meter.counter,
                                       period_s=0.01)
    assert fields["energy_j"] == pytest.approx(2.0) and fields["energy_j_per_sample"] == pytest.approx(0.05)
    assert fields["energy_uncertainty_rel"] == pytest.approx(0.01)
    # Read before synchronising (the defect): the warm-up's 5 J would have landed in the window.
    late = FakeGpu()
    for _ in range(5):
        late.launch(1_000)
    start = late.read_mj()
    late.synchronize()
    assert late.read_mj() - start == 5_000


def test_windows_accumulate_and_short_ones_carry_their_uncertainty():
    counter = energy.EnergyCounter(handle="fake", reason=None)
    meter = energy.EnergyMeter(counter)
    for _ in range(4):
        meter.add_window(500, samples=8, seconds=0.05)
    fields = energy.energy_fields_from(meter.joules, meter.seconds, meter.samples, meter.windows, counter, period_s=0.02)
    assert fields["energy_windows"] == 4 and fields["energy_j_per_sample"] == pytest.approx(2.0 / 32)
    assert fields["energy_uncertainty_rel"] == pytest.approx(0.2) and "short for the counter" in fields["energy_note"]
    too_short = energy.energy_fields_from(0.5, 0.03, 8, 1, counter, period_s=0.02)
    assert too_short["energy_j_per_sample"] is None and "shorter than two counter steps" in too_short["energy_note"]


def test_the_counter_period_probe_sees_a_stepping_counter():
    start = time.perf_counter()
    period = energy.probe_period(lambda: int((time.perf_counter() - start) / 0.02), timeout_s=1.0)
    assert period is not None and 0.015 < period < 0.06
    assert energy.probe_period(lambda: 7, timeout_s=0.05) is None


# ------------------------------------------------------------------------------------------------ compile


@pytest.fixture
def dynamo():
    import torch._dynamo

    torch._dynamo.reset()
    yield torch._dynamo
    torch._dynamo.reset()


def test_recompiles_are_counted_and_the_limit_fails_instead_of_running_eager(dynamo, monkeypatch):
    from bench.backends.compile import runner as compile_backend

    monkeypatch.setattr(compile_backend, "RECOMPILE_LIMIT", 3)
    compiled, note = compile_backend.compile_module(torch.nn.Linear(8, 4), dynamic=False, backend="eager")
    assert "raised from dynamo's" in note
    runner = compile_backend.CompiledRunner(compiled, Target("cpu", "fp32", 1))
    for rows in (1, 2, 3):
        runner.logits(runner((torch.randn(rows, 8),)))
    assert runner.runtime_info() == {"compile_graphs": 3, "compile_recompiles": 2, "compile_graph_breaks": 0,
                                     "compile_eager_frames": 0}
    with pytest.raises(Exception, match="fail_on_recompile_limit_hit"):
        runner((torch.randn(4, 8),))


def test_a_frame_that_fell_back_to_eager_fails_the_pass(dynamo):
    from bench.backends.compile.runner import CompiledRunner

    with dynamo.config.patch(fail_on_recompile_limit_hit=False):
        compiled = torch.compile(torch.nn.Linear(8, 4), backend="eager", dynamic=False, recompile_limit=1)
        runner = CompiledRunner(compiled, Target("cpu", "fp32", 1))
        runner((torch.randn(1, 8),))
        out = runner((torch.randn(2, 8),))  # over the limit: dynamo silently runs it eagerly
    assert runner.runtime_info()["compile_eager_frames"] == 1
    with pytest.raises(RuntimeError, match="fell back to eager"):
        runner.logits(out)


def test_cuda_graph_modes_warm_every_shape_three_times_before_timing():
    from bench.backends.compile.runner import CUDAGRAPH_WARMUP, CompiledRunner
    from bench.measure.passes import eval_pass

    assert CompiledRunner(torch.nn.Identity(), Target("cpu", "fp32", 1)).warmup_per_shape == 1
    assert CUDAGRAPH_WARMUP == 3  # cudagraph trees: warm up, record, replay
    runner = _Recorder()  # warmup_per_shape 3, as a CUDA-graph runner
    runner.logits = lambda out: np.zeros((2, 3), dtype=np.float32)

    class Rows:
        def __len__(self):
            return 6

    batches = [SimpleNamespace(input_ids=torch.ones(2, n), attention_mask=torch.ones(2, n), index=np.array([2 * i, 2 * i + 1]),
                               real_tokens=2 * n, padded_tokens=2 * n) for i, n in enumerate((4, 4, 8))]
    eval_pass(runner, Rows(), batches)
    assert len(runner.calls) == 2 * 3 + 3  # two shapes warmed three times each, then three timed calls


# ------------------------------------------------------------------------------------------------ devices, 2:4


def test_cuda_n_is_a_device_name_and_checked_before_the_run():
    from bench.config import MeasureConfig
    from bench.errors import BenchError
    from bench.run.plan import check_device

    assert MeasureConfig(device="cuda:1").device == "cuda:1" and Target("cuda:1", "fp32", 1).is_cuda
    assert Target("cuda:3", "fp32", 1).cuda_index == 3
    with pytest.raises(BenchError, match="unknown device 'gpu0'"):
        check_device("gpu0")
    check_device("cpu")
    if not CUDA:
        with pytest.raises(BenchError, match="'cuda:1' requested but CUDA is not available"):
            check_device("cuda:1")
    else:
        with pytest.raises(BenchError, match="torch sees"):
            check_device(f"cuda:{torch.cuda.device_count()}")


def test_semi24_model_spec_goes_through_the_sweeps_realisation(xglm_bench):
    from bench.variants.model_spec import ModelSpec

    runner, _ = xglm_bench.runner(ModelSpec(method="semi24"), "eager", batch_size=2, seq_len=16, device="cpu")
    assert runner.info["speedup_mechanism"] == "none" and "CUDA-only" in runner.info["speedup_mechanism_reason"]


@pytest.mark.slow
def test_a_bf16_export_hands_out_float32_logits(tmp_path):
    import onnx

    from bench.backends.onnxruntime.runner import exportable
    from bench.backends.onnxruntime.export import export_onnx
    from bench.model.classifier import XGLMClassifier
    from bench.model.source import ModelSource, load_backbone

    model = XGLMClassifier(load_backbone(ModelSource.parse("random:tiny"), seed=0), 3).eval().to(torch.bfloat16)
    example = (torch.randint(4, 1000, (2, 16)), torch.ones(2, 16, dtype=torch.long))
    export_onnx(exportable(model, Target("cuda", "bf16", 1)), example, tmp_path / "m.onnx", opset=18, device=torch.device("cpu"))
    graph = onnx.load(str(tmp_path / "m.onnx"), load_external_data=False).graph
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(init.data_type == onnx.TensorProto.BFLOAT16 for init in graph.initializer)  # the weights stay bf16


# ------------------------------------------------------------------------------------------------ on a GPU


def _ort_cuda() -> str | None:
    if not CUDA:
        return "needs a CUDA device"
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime is not installed"
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (needs onnxruntime-gpu)"
    return None


def _tiny():
    from bench.model.classifier import XGLMClassifier
    from bench.model.source import ModelSource, load_backbone

    torch.manual_seed(0)
    return XGLMClassifier(load_backbone(ModelSource.parse("random:tiny"), seed=0), 3).eval()


def _example(bsz=4, seq=24, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(4, 1000, (bsz, seq), generator=g), torch.ones(bsz, seq, dtype=torch.long)


@pytest.mark.gpu
@pytest.mark.skipif(_ort_cuda() is not None, reason=str(_ort_cuda()))
@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16"])
def test_onnxruntime_cuda_half_precision_is_real(tmp_path, dtype):
    from bench.backends import prepare
    from bench.config import BackendOptions

    model = _tiny()
    try:
        runner = prepare("onnxruntime", model, Target("cuda", dtype, 1), _example(2, 16, 0), BackendOptions(), tmp_path)
    except SkipCell as exc:
        assert dtype == "bf16", f"{dtype} must run on ORT CUDA: {exc}"
        pytest.skip(f"bf16 on this ORT: {exc}")
    assert runner.info["ort_providers"][0] == "CUDAExecutionProvider" and runner.info["ort_provider_options"]["use_tf32"] == "0"
    assert not {op for op in runner.info["ort_cpu_float_ops"] if op in ort_session.COMPUTE_OPS}
    ids, mask = _example()
    got = runner.logits(runner(runner.inputs(ids, mask)))
    with torch.no_grad():
        want = model(ids, mask).numpy()
    assert got.dtype == np.float32 and np.abs(got - want).max() < (1e-4 if dtype == "fp32" else 5e-2)


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_nvml_finds_the_gpu_torch_uses_and_its_memory():
    pynvml = pytest.importorskip("pynvml")
    pynvml.nvmlInit()
    handle = device_probe.nvml_handle(pynvml, "cuda")
    uuid = pynvml.nvmlDeviceGetUUID(handle)
    assert (uuid.decode() if isinstance(uuid, bytes) else uuid) == device_probe.cuda_uuid(torch.cuda.current_device())
    block = torch.empty(256 * 2**20, dtype=torch.uint8, device="cuda")
    found = memory.nvml_memory("cuda")
    assert found["device_used_mb"] >= 256 and (found["process_mb"] is None or found["process_mb"] >= 256), found
    del block


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_energy_meter_on_the_gpu_gives_a_plausible_power():
    meter = energy.EnergyMeter.open("cuda")
    if meter.counter.handle is None:
        pytest.skip(meter.counter.reason)
    a = torch.randn(4096, 4096, device="cuda")
    meter.start(torch.cuda.synchronize)
    begin = time.perf_counter()
    iters = 0
    while time.perf_counter() - begin < 1.0:
        a = a @ a / 64
        iters += 1
        torch.cuda.synchronize()
    seconds = time.perf_counter() - begin
    meter.stop(torch.cuda.synchronize, samples=iters, seconds=seconds)
    fields = meter.fields()
    watts = fields["energy_j"] / seconds
    assert 10 < watts < 2000 and fields["energy_uncertainty_rel"] is not None, fields


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA or torch.cuda.get_device_capability() < (8, 0) if CUDA else True,
                    reason="needs a CUDA device with sparse tensor cores (compute capability >= 8.0)")
@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_semi24_preflight_proves_the_2to4_kernel(dtype):
    from bench.run.plan import semi24_kernel_problem

    assert semi24_kernel_problem("cuda", dtype) is None


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_tf32_dtype_switches_torch_and_fp32_does_not(tmp_path, restore_tf32):
    from bench.backends import prepare
    from bench.config import BackendOptions

    if torch.cuda.get_device_capability() < (8, 0):
        with pytest.raises(SkipCell, match="TF32"):
            prepare("eager", _tiny(), Target("cuda", "tf32", 1), None, BackendOptions(), tmp_path)
        return
    runner = prepare("eager", _tiny(), Target("cuda", "tf32", 1), None, BackendOptions(), tmp_path)
    runner(runner.inputs(*_example()))
    assert torch.backends.cuda.matmul.allow_tf32 and runner.info["tf32"] is True
    fp32 = prepare("eager", _tiny(), Target("cuda", "fp32", 1), None, BackendOptions(), tmp_path)
    fp32(fp32.inputs(*_example()))
    assert not torch.backends.cuda.matmul.allow_tf32


def test_ort_outputs_reach_the_host_as_float32_whatever_holds_them():
    from bench.backends.onnxruntime.runner import OrtRunner

    class Session:
        def __init__(self, labels):
            self.labels = labels

        def get_outputs(self):
            return [SimpleNamespace(shape=["batch", self.labels])]

    runner = OrtRunner(Session(3), Target("cpu", "fp32", 1))
    assert runner.num_labels == 3 and OrtRunner(Session("unk__1"), Target("cpu", "fp32", 1)).num_labels is None
    assert runner.allocator == "onnxruntime" and runner.info["tf32"] is False
    bound = runner.logits(torch.ones(2, 3))  # the float32 torch buffer bound as the CUDA output
    allocated = runner.logits(SimpleNamespace(copy_outputs_to_cpu=lambda: [np.ones((2, 3), dtype=np.float32)]))
    host = runner.logits([[1.0, 2.0, 3.0]])
    assert bound.dtype == allocated.dtype == host.dtype == np.float32


def test_a_provider_that_fails_to_load_skips_but_a_broken_graph_fails():
    load = RuntimeError("Failed to load library libonnxruntime_providers_cuda.so with error: libcudnn.so.9: cannot open")
    with pytest.raises(SkipCell, match="could not create a session on CUDAExecutionProvider"):
        ort_session.create_session(_FakeOrt(error=load), "m.onnx", Target("cuda:0", "fp16", 1), so=None)
    with pytest.raises(RuntimeError, match="INVALID_GRAPH"):
        ort_session.create_session(_FakeOrt(error=RuntimeError("[ONNXRuntimeError] : 10 : INVALID_GRAPH : bad")),
                                   "m.onnx", Target("cpu", "fp32", 1), so=None)


def test_round_blocks_add_up_to_one_energy_figure_with_its_uncertainty():
    from bench.measure.rounds import Block
    from bench.run.records import energy_fields

    blocks = [Block(np.full(10, 5_000_000), energy_mj=400.0) for _ in range(4)]  # 4 blocks of 10 x 5 ms, 0.4 J each
    fields = energy_fields(blocks, 8, {"energy_counter_period_ms": 20.0})
    assert fields["energy_j"] == pytest.approx(1.6) and fields["energy_j_per_sample"] == pytest.approx(1.6 / 320)
    assert fields["energy_window_s"] == pytest.approx(0.2) and fields["energy_uncertainty_rel"] == pytest.approx(0.2)
    missing = energy_fields([Block(np.full(3, 1))], 8, {"energy_note": "no energy counter for the CPU here"})
    assert missing["energy_j_per_sample"] is None and "CPU" in missing["energy_note"]
