"""The bad-input catalogue: every input a new user gets wrong (config, command line, data, model, report, compare),
run through the real `bench` entry point on random:tiny. Each must exit non-zero with exactly one line on stderr,
no traceback, a message that names what is wrong, and no run directory that looks finished.

Most cases run in-process with typer's CliRunner; SUBPROCESS cases run `python -m bench` for real.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import tomli_w

from helpers import Outcome, assert_user_error, bench_process, invoke
from tinydata import tiny_sweep, write_layouts

RECORDED = Path(__file__).parent / "fixtures" / "recorded"
pytestmark = pytest.mark.usefixtures("bench_env")  # no hub, caches in tmp dirs


@dataclass
class Ctx:
    """What a case builds its input from: a tmp dir, a shared cache, generated data, a tiny config writer."""

    tmp: Path
    cache: Path
    data: Path

    @property
    def out(self) -> Path:
        return self.tmp / "runs"

    def config(self, text: str | None = None, data_dir: Path | None | str = "default", **sections) -> str:
        path = self.tmp / "sweep.toml"
        if text is None:
            data = self.data if data_dir == "default" else data_dir
            text = tomli_w.dumps(tiny_sweep(self.out, self.cache, data, **sections))
        path.write_text(text, encoding="utf-8")
        return str(path)

    def data_copy(self) -> Path:
        return Path(shutil.copytree(self.data, self.tmp / "data"))

    def recorded(self, name: str = "cpu-dense") -> Path:
        return Path(shutil.copytree(RECORDED / name, self.tmp / name))


@dataclass
class Case:
    name: str
    argv: Callable[[Ctx], list[str]]
    needles: tuple[str, ...]
    code: int | None = 2  # the exit status expected, or None for "any non-zero"
    prefix: str = "error: "  # how the line starts
    subprocess: bool = False
    env: dict[str, str] = field(default_factory=dict)


CASES: list[Case] = []


def case(*needles: str, code: int | None = 2, prefix: str = "error: ", subprocess: bool = False,
         env: dict[str, str] | None = None):
    def register(fn: Callable[[Ctx], list[str]]) -> Callable[[Ctx], list[str]]:
        CASES.append(Case(fn.__name__, fn, needles, code, prefix, subprocess, env or {}))
        return fn
    return register


def run_with(ctx: Ctx, **sections) -> list[str]:
    return ["run", ctx.config(**sections)]


# ------------------------------------------------------------------------------------------------- config
@case("measure.scenarios", "empty list measures nothing", subprocess=True)
def empty_scenarios(ctx): return run_with(ctx, measure={"scenarios": []})
@case("method_train.promt", "did you mean 'prompt'")
def method_train_typo(ctx): return ["run", ctx.config(tomli_w.dumps({**tiny_sweep(ctx.out, ctx.cache, ctx.data), "method_train": {"promt": {"lr": 1e-3}}}))]
@case("method_train.prompt.lrr", "did you mean 'lr'")
def method_train_field_typo(ctx): return run_with(ctx, method_train={"prompt": {"lrr": 1e-3}})
@case("variants[2].train.lr", "greater than 0")
def nested_train_value(ctx): return run_with(ctx, variants=[{"name": "a"}, {"name": "b"}, {"name": "c", "train": {"lr": -1.0}}])
@case("variants[0].train.stepz", "did you mean 'steps'")
def nested_train_key(ctx): return run_with(ctx, variants=[{"name": "a", "train": {"stepz": 1}}])
@case("measure.device", "'tpu'")
def bad_device_in_config(ctx): return run_with(ctx, measure={"device": "tpu"})
@case("measure.backends[0]", "'tensorrt'")
def unknown_backend_in_config(ctx): return run_with(ctx, measure={"backends": ["tensorrt"]})
@case("measure.batch_sizes", ">= 1")
def zero_batch_size(ctx): return run_with(ctx, measure={"batch_sizes": [0]})
@case("measure.seq_lens", ">= 1")
def negative_seq_len(ctx): return run_with(ctx, measure={"seq_lens": [-4]})
@case("measure.dtypes[0]", "'fp64'")
def unknown_dtype(ctx): return run_with(ctx, measure={"dtypes": ["fp64"]})
@case("measure.backends", "repeated entries: eager")
def repeated_backend(ctx): return run_with(ctx, measure={"backends": ["eager", "eager"]})
@case("'trian'", "did you mean 'train'")
def unknown_top_level_key(ctx): return ["run", ctx.config(tomli_w.dumps({**tiny_sweep(ctx.out, ctx.cache, ctx.data), "trian": {"steps": 1}}))]
@case("measure.warmup_iterations", "did you mean 'warmup_iters'")
def unknown_measure_key(ctx): return run_with(ctx, measure={"warmup_iterations": 3})
@case("variants", "at least 1")
def no_variants(ctx): return run_with(ctx, variants=[])
@case("unique", "twin")
def duplicate_variant_names(ctx): return run_with(ctx, variants=[{"name": "twin"}, {"name": "twin"}])
@case("variants[0].name", "pattern")
def variant_name_with_a_space(ctx): return run_with(ctx, variants=[{"name": "my variant"}])
@case("variants[0]", "unknown method 'ia3'", "available: dense")
def unknown_method(ctx): return run_with(ctx, variants=[{"name": "x", "method": "ia3"}])
@case("method 'prompt' needs prompt_length")
def prompt_without_length(ctx): return run_with(ctx, variants=[{"name": "pt", "method": "prompt"}])
@case("variant 'q'", "precision fp8 needs a CUDA GPU of compute capability 8.9", "int8 or int8-weight can run here")
def fp8_on_the_cpu(ctx): return run_with(ctx, variants=[{"name": "q", "precisions": ["fp8"]}])
@case("variants[0].precisions[0]", "'int4'")
def unknown_precision(ctx): return run_with(ctx, variants=[{"name": "q", "precisions": ["int4"]}])
@case("variant 'q'", "repeated precisions")
def repeated_precision(ctx): return run_with(ctx, variants=[{"name": "q", "precisions": ["int8", "int8"]}])
@case("variants[0].prompt_length", "greater than or equal to 1")
def prompt_length_zero(ctx): return run_with(ctx, variants=[{"name": "pt", "method": "prompt", "prompt_length": 0}])
@case("variants[0].prompt_length", "less than or equal to 128")
def prompt_length_too_long(ctx): return run_with(ctx, variants=[{"name": "pt", "method": "prompt", "prompt_length": 500}])
@case("sparsity", "not 'dense'")
def sparsity_on_dense(ctx): return run_with(ctx, variants=[{"name": "d", "sparsity": 0.5}])
@case("method 'unstructured' needs sparsity")
def unstructured_without_sparsity(ctx): return run_with(ctx, variants=[{"name": "u", "method": "unstructured"}])
@case("sparsity must be in [0, 1)")
def sparsity_of_one(ctx): return run_with(ctx, variants=[{"name": "u", "method": "unstructured", "sparsity": 1.0}])
@case("semi24", "sparsity is 0.5")
def semi24_at_30(ctx): return run_with(ctx, variants=[{"name": "s", "method": "semi24", "sparsity": 0.3}])
@case("gradual_fraction applies to schedule 'gradual'")
def gradual_fraction_without_gradual(ctx): return run_with(ctx, variants=[{"name": "u", "method": "unstructured", "sparsity": 0.5, "gradual_fraction": 0.5}])
@case("sparsity 0.95 would remove every head")
def structured_removes_every_head(ctx): return run_with(ctx, variants=[{"name": "s", "method": "structured", "sparsity": 0.95}])
@case("repeated seeds")
def repeated_seeds(ctx): return run_with(ctx, variants=[{"name": "d", "seeds": [1, 1]}])
@case("data.tasks[0]", "'mnli'")
def unknown_task(ctx): return run_with(ctx, data={"tasks": ["mnli"]})
@case("data.tasks", "at least 1")
def no_tasks(ctx): return run_with(ctx, data={"tasks": []})
@case("data.eval_split", "'validation'")
def eval_split_validation(ctx): return run_with(ctx, data={"eval_split": "validation"})
@case("data.source", "'s3'")
def unknown_data_source(ctx): return run_with(ctx, data={"source": "s3"})
@case("data.max_train_samples", "greater than or equal to 1")
def zero_train_samples(ctx): return run_with(ctx, data={"max_train_samples": 0})
@case("model.max_length", "greater than or equal to 8")
def max_length_too_short(ctx): return run_with(ctx, model={"max_length": 4})
@case("train.warmup_ratio", "less than 1")
def warmup_ratio_one(ctx): return run_with(ctx, train={"warmup_ratio": 1.0})
@case("train.batch_size", "greater than or equal to 1")
def train_batch_size_zero(ctx): return run_with(ctx, train={"batch_size": 0})
@case("measure.threads", "greater than or equal to 1")
def zero_threads(ctx): return run_with(ctx, measure={"threads": 0})
@case("measure", "max_rounds (4) is below min_rounds (10)")
def rounds_cap_below_minimum(ctx): return run_with(ctx, measure={"min_rounds": 10, "max_rounds": 4})
@case("measure.reference_every", "greater than or equal to 0")
def negative_reference_every(ctx): return run_with(ctx, measure={"reference_every": -1})
@case("measure.isolation", "'thread'")
def unknown_isolation(ctx): return run_with(ctx, measure={"isolation": "thread"})
@case("measure.peaks", "'maybe'")
def unknown_peaks_mode(ctx): return run_with(ctx, measure={"peaks": "maybe"})
@case("backend.onnxruntime.opset", "greater than or equal to 17")
def old_opset(ctx): return run_with(ctx, backend={"onnxruntime": {"opset": 12}})
@case("sequence length 600 exceeds the model's 512 positions")
def seq_len_beyond_positions(ctx): return run_with(ctx, measure={"seq_lens": [600]})
@case("prompt_length 64 + sequence length 500 exceeds the model's 512 positions")
def prefix_plus_sequence_too_long(ctx): return run_with(ctx, variants=[{"name": "pt", "method": "prompt", "prompt_length": 64}], measure={"seq_lens": [500]})
@case("variant 'pt': unknown base variant 'structred'; did you mean 'structured'?")
def base_not_a_variant(ctx): return run_with(ctx, variants=[{"name": "structured", "method": "structured", "sparsity": 0.5}, {"name": "pt", "method": "prompt", "prompt_length": 4, "base": "structred"}])
@case("variant 'a': its bases form a cycle (a -> b -> a)")
def bases_in_a_cycle(ctx): return run_with(ctx, variants=[{"name": "a", "method": "lora", "base": "b"}, {"name": "b", "method": "lora", "base": "a"}])
@case("variant 'l': unknown LoRA target 'query'", "available: q_proj, k_proj, v_proj, out_proj, fc1, fc2")
def lora_target_that_does_not_exist(ctx): return run_with(ctx, variants=[{"name": "l", "method": "lora", "lora_targets": ["query"]}])
@case("variant 'soft': prompt_length 100 + sequence length 450 exceeds the model's 512 positions")
def soft_prompt_beyond_positions(ctx): return run_with(ctx, variants=[{"name": "soft", "method": "soft_prompt", "prompt_length": 100}], measure={"seq_lens": [450]})
@case("not valid TOML")
def invalid_toml(ctx): return ["run", ctx.config("[measure\ndevice = 'cpu'\n")]
@case("not found")
def missing_config(ctx): return ["run", str(ctx.tmp / "nope.toml")]
@case("is a directory")
def config_is_a_directory(ctx): return ["run", str(ctx.tmp)]
@case("not UTF-8")
def config_not_utf8(ctx):
    (ctx.tmp / "latin1.toml").write_bytes("name = 'caf\xe9'\n".encode("latin-1"))
    return ["run", str(ctx.tmp / "latin1.toml")]


# ------------------------------------------------------------------------------------------- command line
@case("measure.backends[1]", "'onnx'")
def unknown_backend_flag(ctx): return ["run", ctx.config(), "--backends", "eager,onnx"]
@case("measure.device", "'tpu'")
def unknown_device_flag(ctx): return ["run", ctx.config(), "--device", "tpu"]
@case("tinyy", "did you mean 'tiny'")
def unknown_preset_flag(ctx): return ["run", ctx.config(), "--model", "random:tinyy"]
@case("no-such-model")
def missing_model_path(ctx): return ["run", ctx.config(), "--model", str(ctx.tmp / "no-such-model")]
@case("No such option: --fast", "--help", subprocess=True)
def unknown_option(ctx): return ["run", ctx.config(), "--fast"]
@case("No such command 'rnu'")
def unknown_command(ctx): return ["rnu"]
@case("--resume takes the run's own config.toml")
def resume_with_a_config(ctx): return ["run", ctx.config(), "--resume", str(ctx.recorded())]
@case("--resume takes the run's own config.toml")
def resume_with_an_override(ctx): return ["run", "--resume", str(ctx.recorded()), "--model", "random:tiny"]
@case("not a run directory")
def resume_a_missing_directory(ctx): return ["run", "--resume", str(ctx.tmp / "gone")]
@case("is a file, not a run directory", "pass the run directory")
def resume_the_results_file(ctx): return ["run", "--resume", str(ctx.recorded() / "results.jsonl")]
@case("--retry-failed", "--resume RUN_DIR")
def retry_failed_without_resume(ctx): return ["run", ctx.config(), "--retry-failed"]
@case("--output-dir")
def output_dir_under_a_file(ctx):
    (ctx.tmp / "a-file").write_text("x")
    return ["run", ctx.config(), "--output-dir", str(ctx.tmp / "a-file" / "runs")]
@case("unknown device 'tpu'")
def calibrate_unknown_device(ctx): return ["calibrate", "--device", "tpu"]
@case("'--fail-on-regression'", "greater than or equal to 0")
def negative_regression_threshold(ctx): return ["compare", str(ctx.recorded()), str(ctx.recorded("cpu-dense-x1.25")), "--fail-on-regression", "-5"]
@case("Missing argument")
def report_without_a_directory(ctx): return ["report"]


# --------------------------------------------------------------------------------------------------- data
@case("does not exist", "BENCH_DATA_DIR")
def local_data_dir_missing(ctx): return run_with(ctx, data={"source": "local", "data_dir": str(ctx.tmp / "nowhere")})
@case("$BENCH_DATA_DIR = '../no-such-data'", "does not exist", "resolved from", env={"BENCH_DATA_DIR": "../no-such-data"})
def environment_data_dir_missing_with_auto(ctx): return ["run", ctx.config(data_dir=None, data={"source": "auto"})]
@case("$BENCH_DATA_DIR", "does not exist", subprocess=True, env={"BENCH_DATA_DIR": "/no/such/data"})
def environment_data_dir_missing_from_the_command_line(ctx): return ["run", ctx.config(data_dir=None, data={"source": "auto"})]
@case("x-final not found", "so it is not skipped")
def auto_with_a_data_dir_that_lacks_the_task(ctx): return run_with(ctx, data={"source": "auto", "tasks": ["pawsx"], "languages": ["en", "de"], "data_dir": str(ctx.tmp)})
@case("xnli.test.tsv, line 26", "5 tab-separated fields", subprocess=True)
def row_with_an_extra_field(ctx):
    data = ctx.data_copy()
    with open(data / "XNLI-1.0" / "xnli.test.tsv", "a", encoding="utf-8") as fh:
        fh.write("en\tneutral\ta\tb\textra\n")
    return run_with(ctx, data={"data_dir": str(data)})
@case("xnli.test.tsv, line 26", "unknown gold_label 'entailed'")
def unknown_xnli_label(ctx):
    data = ctx.data_copy()
    with open(data / "XNLI-1.0" / "xnli.test.tsv", "a", encoding="utf-8") as fh:
        fh.write("en\tentailed\tA premise.\tA hypothesis.\n")
    return run_with(ctx, data={"data_dir": str(data)})
@case("xnli.test.tsv, line 26", "unknown gold_label")
def broken_local_source_under_auto_is_an_error(ctx):
    data = ctx.data_copy()
    with open(data / "XNLI-1.0" / "xnli.test.tsv", "a", encoding="utf-8") as fh:
        fh.write("en\tmaybe\tA premise.\tA hypothesis.\n")
    return run_with(ctx, data={"source": "auto", "data_dir": str(data)})
@case("xnli.test.tsv is empty")
def empty_tsv(ctx):
    data = ctx.data_copy()
    (data / "XNLI-1.0" / "xnli.test.tsv").write_text("")
    return run_with(ctx, data={"data_dir": str(data)})
@case("xnli.test.tsv has a header and no rows")
def header_only_tsv(ctx):
    data = ctx.data_copy()
    (data / "XNLI-1.0" / "xnli.test.tsv").write_text("language\tgold_label\tsentence1\tsentence2\n")
    return run_with(ctx, data={"data_dir": str(data)})
@case("header has no column 'gold_label'")
def header_without_a_column(ctx):
    data = ctx.data_copy()
    path = data / "XNLI-1.0" / "xnli.test.tsv"
    path.write_text(path.read_text().replace("gold_label", "label", 1))
    return run_with(ctx, data={"data_dir": str(data)})
@case("xnli.test.tsv: not UTF-8")
def tsv_not_utf8(ctx):
    data = ctx.data_copy()
    with open(data / "XNLI-1.0" / "xnli.test.tsv", "ab") as fh:
        fh.write("en\tneutral\tcaf\xe9\tx\n".encode("latin-1"))
    return run_with(ctx, data={"data_dir": str(data)})
@case("language 'fr' is not in", "available: en, sw")
def language_not_in_local_files(ctx): return run_with(ctx, data={"languages": ["en", "fr"]})
@case('data.source = "hub"', 'use data.source = "local"', "BENCH_DATA_DIR")
def hub_source_offline(ctx): return run_with(ctx, data={"source": "hub"})
@case("x-final", "not found")
def pawsx_without_its_folder(ctx):
    data = ctx.data_copy()
    shutil.rmtree(data / "x-final")
    return run_with(ctx, data={"tasks": ["pawsx"], "languages": ["en", "de"], "data_dir": str(data)})
@case("test_2k.tsv, line 14", "unknown label '2'")
def pawsx_label_two(ctx):
    data = ctx.data_copy()
    with open(data / "x-final" / "de" / "test_2k.tsv", "a", encoding="utf-8") as fh:
        fh.write("99\tEins.\tZwei.\t2\n")
    return run_with(ctx, data={"tasks": ["pawsx"], "languages": ["en", "de"], "data_dir": str(data)})
@case("no English training data")
def no_english_rows_to_train_on(ctx):
    data = ctx.data_copy()
    for split in ("dev", "test"):
        path = data / "XNLI-1.0" / f"xnli.{split}.tsv"
        path.write_text("\n".join(line for line in path.read_text().splitlines() if not line.startswith("en\t")) + "\n")
    return run_with(ctx, data={"languages": ["sw"], "data_dir": str(data)})
@case("no languages requested")
def no_languages(ctx): return run_with(ctx, data={"languages": []})


# -------------------------------------------------------------------------------------------------- model
@case("config.json", "save_pretrained")
def model_dir_without_config(ctx):
    (ctx.tmp / "model").mkdir()
    return run_with(ctx, model={"source": str(ctx.tmp / "model")})
@case("bert", "not XGLM")
def model_dir_of_another_architecture(ctx):
    (ctx.tmp / "model").mkdir()
    (ctx.tmp / "model" / "config.json").write_text(json.dumps({"model_type": "bert", "vocab_size": 100}))
    return run_with(ctx, model={"source": str(ctx.tmp / "model")})
@case("could not load model directory", "config.json")
def model_dir_with_broken_config(ctx):
    (ctx.tmp / "model").mkdir()
    (ctx.tmp / "model" / "config.json").write_text("{not json")
    return run_with(ctx, model={"source": str(ctx.tmp / "model")})
@case("model.safetensors", "unreadable", "download or save the model again")
def model_dir_with_corrupt_weights(ctx):
    from transformers import XGLMConfig

    from bench.model.source import PRESETS

    XGLMConfig(**PRESETS["tiny"]).save_pretrained(ctx.tmp / "model")
    (ctx.tmp / "model" / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}")
    return run_with(ctx, model={"source": str(ctx.tmp / "model")})
@case("nothing was measured", "4 skipped", "fp16", code=1, prefix="failed: ")
def every_cell_skipped(ctx): return run_with(ctx, measure={"backends": ["onnxruntime"], "dtypes": ["fp16"]})
@case("variant 'pt': prefix_artifact", "not a readable artifact")
def prefix_artifact_missing(ctx): return run_with(ctx, variants=[{"name": "pt", "method": "prompt", "prefix_artifact": str(ctx.tmp / "gone")}])
@case("is not a prompt artifact")
def prefix_artifact_of_a_dense_model(ctx):
    (ctx.tmp / "art").mkdir()
    (ctx.tmp / "art" / "meta.json").write_text(json.dumps({"architecture": {"kind": "dense"}, "key": "x"}))
    (ctx.tmp / "art" / "model.safetensors").write_bytes(b"")
    return run_with(ctx, variants=[{"name": "pt", "method": "prompt", "prefix_artifact": str(ctx.tmp / "art")}])
@case("cache directory", "not writable", "BENCH_CACHE_DIR")
def cache_dir_is_a_file(ctx):
    (ctx.tmp / "cache-file").write_text("x")
    return ["run", ctx.config(tomli_w.dumps({**tiny_sweep(ctx.out, ctx.tmp / "cache-file" / "sub", ctx.data)}))]


# ------------------------------------------------------------------------------------------------- report
@case("is a file, not a run directory", "pass the run directory", subprocess=True)
def report_the_results_file(ctx): return ["report", str(ctx.recorded() / "results.jsonl")]
@case("not a run directory")
def report_a_plain_directory(ctx): return ["report", str(ctx.tmp)]
@case("not a run directory")
def report_a_missing_directory(ctx): return ["report", str(ctx.tmp / "gone")]
@case("results.jsonl:3", "not a JSON record", "damaged line in the middle")
def report_a_damaged_middle_line(ctx):
    run = ctx.recorded()
    lines = (run / "results.jsonl").read_text().splitlines()
    lines[2] = lines[2][: len(lines[2]) // 2]
    (run / "results.jsonl").write_text("\n".join(lines) + "\n")
    return ["report", str(run)]
@case("schema_version 9 is newer")
def report_a_newer_schema(ctx):
    run = ctx.recorded()
    records = [json.loads(line) | {"schema_version": 9} for line in (run / "results.jsonl").read_text().splitlines()]
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return ["report", str(run)]


# ------------------------------------------------------------------------------------------------ compare
@case("compare needs two or more run directories, got 1")
def compare_one_run(ctx): return ["compare", str(ctx.recorded())]
@case("share no measured cell", "nothing was compared")
def compare_runs_that_share_no_cell(ctx): return ["compare", str(ctx.recorded()), str(ctx.recorded("synthetic-study")), "--fail-on-regression", "10"]
@case("not a run directory")
def compare_with_a_plain_directory(ctx): return ["compare", str(ctx.recorded()), str(ctx.tmp)]
@case("schema_version 9 is newer")
def compare_with_a_newer_schema(ctx):
    newer = report_a_newer_schema(ctx)[1]
    return ["compare", str(ctx.recorded("cpu-dense-x1.25")), newer]


# ------------------------------------------------------------------------------ issue 31: reliability, round 2
@case("train.lr", "finite number", "inf")
def infinite_learning_rate(ctx): return ["run", ctx.config(tomli_w.dumps(tiny_sweep(ctx.out, ctx.cache, ctx.data)).replace("[train]\n", "[train]\nlr = inf\n"))]
@case("measure.block_time_s", "finite number")
def nan_block_time(ctx): return ["run", ctx.config(tomli_w.dumps(tiny_sweep(ctx.out, ctx.cache, ctx.data)).replace("[measure]\n", "[measure]\nblock_time_s = nan\n"))]
@case("'/dev/zero' is a device", "regular .toml file", subprocess=True)
def config_is_dev_zero(ctx): return ["run", "/dev/zero"]
@case("is a FIFO", "regular .toml file")
def config_is_a_fifo_with_no_writer(ctx):
    os.mkfifo(ctx.tmp / "fifo.toml")
    return ["run", str(ctx.tmp / "fifo.toml")]
@case("larger than 1 MB")
def config_of_two_megabytes(ctx):
    (ctx.tmp / "big.toml").write_text("# padding\n" * 200_000)
    return ["run", str(ctx.tmp / "big.toml")]
@case("batch 100000000 x 16 needs an estimated", "the largest batch that fits at sequence 16 is", "lower measure.batch_sizes")
def batch_that_cannot_fit_in_memory(ctx): return run_with(ctx, measure={"batch_sizes": [100_000_000]})
@case("batch 1000000000 x 32 needs an estimated", "lower measure.throughput_batch_size")
def evaluation_batch_that_cannot_fit(ctx): return run_with(ctx, measure={"throughput_batch_size": 1_000_000_000})
@case("pytorch_model.bin is a pickle that holds more than tensors", "convert the weights to safetensors")
def model_weights_that_are_a_pickle_with_a_payload(ctx):
    import torch
    from transformers import XGLMConfig

    from bench.model.source import PRESETS

    XGLMConfig(**PRESETS["tiny"]).save_pretrained(ctx.tmp / "model")
    torch.save({"x": _Payload(ctx.tmp / "pwned")}, ctx.tmp / "model" / "pytorch_model.bin")
    return run_with(ctx, model={"source": str(ctx.tmp / "model")})
@case("command-line option --name", "field 'name'", "no '/'")
def run_name_that_climbs_out(ctx): return ["run", ctx.config(), "--name", "../../x"]
@case("results.jsonl' is missing", "left as they were")
def report_without_results(ctx):
    run = ctx.recorded()
    (run / "results.jsonl").unlink()
    return ["report", str(run)]
@case("results.jsonl' is not a file")
def report_whose_results_is_a_directory(ctx):
    run = ctx.recorded()
    (run / "results.jsonl").unlink()
    (run / "results.jsonl").mkdir()
    return ["report", str(run)]
@case("share no measured cell")
def compare_runs_on_one_machine_that_share_no_cell(ctx): return ["compare", str(ctx.recorded()), str(_as_pawsx(ctx))]
@case("not transformers' XGLMConfig", "trust_remote_code = false")
def remote_code_that_is_not_xglm(ctx):
    model = ctx.tmp / "model"
    model.mkdir()
    (model / "configuration_fake.py").write_text(
        "from transformers import PretrainedConfig\n\nclass FakeConfig(PretrainedConfig):\n    model_type = 'xglm'\n")
    (model / "config.json").write_text(json.dumps({"model_type": "xglm", "auto_map": {"AutoConfig": "configuration_fake.FakeConfig"}}))
    return run_with(ctx, model={"source": str(model), "trust_remote_code": True})


class _Payload:
    """A pickle that would write a file if it were ever run."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.write_text, (self.path, "ran"))


def _as_pawsx(ctx) -> Path:
    """The recorded CPU run again, as if it had measured PAWS-X: same machine, no cell in common."""
    run = Path(shutil.copytree(RECORDED / "cpu-dense", ctx.tmp / "cpu-dense-pawsx"))
    records = [json.loads(line) | {"task": "pawsx"} for line in (run / "results.jsonl").read_text().splitlines()]
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run


# ---------------------------------------------------------------------------------------------- the test
@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """Generated data, and one cache for the whole catalogue (the tokenizer trained once)."""
    root = tmp_path_factory.mktemp("bad-inputs")
    return write_layouts(root / "data"), root / "cache"


def test_the_catalogue_is_large_enough():
    assert len(CASES) >= 60 and sum(c.subprocess for c in CASES) >= 3
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("item", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_line_and_leaves_nothing_that_looks_finished(item, shared, tmp_path, monkeypatch):
    data, cache = shared
    ctx = Ctx(tmp_path, cache, data)
    argv = item.argv(ctx)
    for key, value in item.env.items():
        monkeypatch.setenv(key, value)
    outcome = bench_process(*argv) if item.subprocess else Outcome.of(invoke(*argv))
    assert_user_error(outcome, ctx.out, *item.needles, code=item.code, prefix=item.prefix)
    assert not (ctx.tmp / "pwned").exists(), "a pickle's payload ran"
