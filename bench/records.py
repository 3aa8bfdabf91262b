"""The result record's schema: every key a record of results.jsonl can carry, its type, its unit and what it means,
declared once. The writer (bench.run.store) validates each record against it, the fixtures and docs/records.md
derive from it, and reports read it without importing the harness (no torch, no numpy here).

A record is one flat JSON object; units stay in key names. Every key may be null ("does not apply here", or a
stand-in record's gap); `required` keys are in every record, null or not: they are promised to other tools
(DESIGN.md, "Result records"). A new field is one `Key(...)` line below plus its producer.
Regenerate the docs with `python -m bench.records > docs/records.md`.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from pydantic import ConfigDict, ValidationError, create_model

# Bump only when a key's meaning changes (reports refuse versions they do not know); adding a key does not.
SCHEMA_VERSION = 1

SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean"}


@dataclass(frozen=True)
class Key:
    name: str
    type: Any  # a Python type as pydantic reads it: float, int, str, bool, list[int], dict[str, float], Literal[...]
    unit: str  # "" when the value has none (a name, a count of things, a flag)
    doc: str
    required: bool = False
    section: str = ""


def _section(title: str, *keys: Key) -> list[Key]:
    return [Key(k.name, k.type, k.unit, k.doc, k.required, title) for k in keys]


def _paired(name: str, doc: str, required: bool = False) -> list[Key]:
    """A ratio paired round by round and the keys every such ratio carries (bench.run.records.paired_fields)."""
    return [
        Key(name, float, "ratio", doc, required),
        Key(f"{name}_ci95_low", float, "ratio", f"lower bound of {name}'s interval (at least 95 %)"),
        Key(f"{name}_ci95_high", float, "ratio", f"upper bound of {name}'s interval (at least 95 %)"),
        Key(f"{name}_ci_level", float, "probability", f"exact coverage of {name}'s interval (marginal: this ratio alone)"),
        Key(f"{name}_p_value", float, "probability", f"two-sided exact sign test of {name} == 1.0 over rounds (Holm in the Findings)"),
        Key(f"{name}_mde_pct", float, "%", f"smallest effect {name} could have shown at its round count (null below 6 rounds)"),
        Key(f"{name}_note", str, "", f"why {name} is null (its reference was not paired)"),
    ]


STATUS = Literal["ok", "failed", "skipped"]
SCENARIO = Literal["latency", "throughput", "memory", "accuracy"]

KEYS: list[Key] = [
    *_section(
        "Identity: which run, cell and variant",
        Key("schema_version", int, "", "version of this schema the record follows; reports refuse newer ones", True),
        Key("run_id", str, "", "the run directory's name: UTC start time and the config's name", True),
        Key("status", STATUS, "", "ok; failed (error says why); skipped (the cell cannot run here; error says why)", True),
        Key("error", str, "", "why the record is failed or skipped; null when ok", True),
        Key("failure_retryable", bool, "", "the failure was a crash or time-out of the cell's process: `--resume` measures it again"),
        Key("scenario", SCENARIO, "", "what the record measures: latency, throughput, memory or accuracy", True),
        Key("cell_id", str, "", "variant/task/seed/backend/dtype/device: the unit `--resume` keeps or redoes"),
        Key("variant", str, "", "the variant's name from the config", True),
        Key("task", str, "", "xnli or pawsx", True),
        Key("method", str, "", "the variant's method (dense, prompt, soft_prompt, lora, unstructured, semi24, structured, ...)", True),
        Key("seed", int, "", "training seed of the artifact measured; null on a mean-over-seeds record"),
        Key("seeds", list[int], "", "the seeds a mean-over-seeds accuracy record aggregates"),
        Key("seed_replicate", bool, "", "an accuracy record of one more seed of a variant, written beside the first seed's"),
        Key("aggregate", str, "", "how an aggregate record was formed (mean_over_seeds)"),
    ),
    *_section(
        "Where it ran",
        Key("backend", str, "", "eager, compile[:mode] or onnxruntime", True),
        Key("device", str, "", "cpu, cuda or cuda:N", True),
        Key("device_name", str, "", "the device's model name (CPU model or GPU name)"),
        Key("dtype", str, "", "fp32, tf32, fp16 or bf16", True),
        Key("tf32", bool, "", "TF32 matmuls were on (only for dtype tf32)"),
        Key("tf32_policy", str, "", "the TF32 policy every backend follows, in words"),
        Key("threads", int, "", "intra-op threads of torch and ONNX Runtime"),
        Key("isolation", str, "", "how cells ran: process (a worker per cell) or none (in the driver)"),
        Key("executor", str, "", "ray when the cell ran on a Ray cluster; absent for the local executor"),
        Key("ray_attempt", int, "", "which attempt of the Ray task wrote the record (1 = first)"),
        Key("node_id", str, "", "Ray node id of the machine that ran the cell"),
        Key("node_ip", str, "", "IP address of the Ray node that ran the cell"),
        Key("node_hostname", str, "", "host name of the Ray node that ran the cell"),
        Key("device_uuid", str, "", "UUID of the GPU a Ray task ran on"),
    ),
    *_section(
        "Model, data and artifact",
        Key("model", str, "", "the model source: a hub id, a local path or random:<preset>"),
        Key("random_weights", bool, "", "the backbone has random weights (accuracies are meaningless)"),
        Key("tokenizer", str, "", "which tokenizer encoded the rows, in words"),
        Key("max_length", int, "tokens", "longest tokenised pair kept"),
        Key("data_source", str, "", "where the rows came from: hub, local or synthetic"),
        Key("train_split", str, "", "the split the variant was trained on"),
        Key("eval_split", str, "", "the split accuracy is measured on"),
        Key("params_total", int, "parameters", "parameters of the model as measured (after pruning, adapters merged)", True),
        Key("params_trainable", int, "parameters", "parameters that were trained", True),
        Key("trainable_share", float, "fraction", "params_trainable over the parameters of the model as trained"),
        Key("params_prefix", int, "parameters", "prefix keys and values inference holds (prompt; soft_prompt in kv mode)"),
        Key("params_prompt", int, "parameters", "soft prompt embeddings (P x d_model)"),
        Key("params_adapter", int, "parameters", "LoRA A and B matrices"),
        Key("artifact_key", str, "", "content key of the trained artifact in the cache"),
        Key("artifact_bytes", int, "bytes", "the artifact's size on disk"),
        Key("artifact_built_this_run", bool, "", "the artifact was trained by this run (false: taken from the cache)"),
        Key("train_s", float, "s", "training time of the artifact"),
        Key("train_steps", int, "steps", "optimiser steps of the training"),
        Key("trained", bool, "", "the variant was trained (false: train.steps = 0, a speed-only untrained variant)"),
        Key("train_final_loss", float, "nats", "mean cross-entropy of the last training steps"),
        Key("base_variant", str, "", "the variant this one was trained on, frozen (prompt, soft_prompt, lora on a base)"),
        Key("base_method", str, "", "the method of base_variant"),
        Key("base_artifact_key", str, "", "artifact_key of base_variant's artifact"),
    ),
    *_section(
        "Method options",
        Key("sparsity", float, "fraction", "fraction removed: weights (unstructured, semi24) or heads and FFN channels (structured); a base's for PEFT on it", True),
        Key("sparsity_pattern", str, "", "unstructured, block RxC or 2:4"),
        Key("sparsity_scope", str, "", "weights ranked within each layer or across all (layer, global)"),
        Key("sparsity_include", list[str], "", "what was pruned besides the decoder linears (embedding, head)"),
        Key("importance", str, "", "pruning score: magnitude (|w|) or taylor (|w x grad|)"),
        Key("schedule", str, "", "unstructured: oneshot or gradual (cubic ramp)"),
        Key("gradual_fraction", float, "fraction", "share of the training steps the gradual ramp covers"),
        Key("structured_iterative_steps", int, "rounds", "structured: prune-then-fine-tune rounds"),
        Key("block_shape", list[int], "", "block: [rows, columns] of a pruned block"),
        Key("prompt_length", int, "tokens", "prefix or soft-prompt length P; 0 for other methods", True),
        Key("prompt_mlp", bool, "", "the prefix was trained through an MLP (folded away for inference)"),
        Key("soft_prompt_inference", str, "", "soft prompt at inference: input (through every layer) or kv (folded into keys and values)"),
        Key("soft_prompt_init", str, "", "soft prompt initialisation: vocab (sampled token embeddings) or random"),
        Key("lora_rank", int, "", "LoRA rank r"),
        Key("lora_alpha", float, "", "LoRA scale numerator: the update is scaled by alpha / r"),
        Key("lora_dropout", float, "probability", "dropout on the adapters' input during training"),
        Key("lora_targets", list[str], "", "the linears that carry adapters (q_proj, v_proj, ...)"),
        Key("lora_merged", bool, "", "the adapters were merged into the weights for inference"),
    ),
    *_section(
        "Sparsity accounting (sparsify.accounting) of exactly what is measured",
        Key("density_linear", float, "fraction", "nonzero share of the decoder linears' weights"),
        Key("density_all", float, "fraction", "nonzero share of all parameters"),
        Key("macs_per_token", float, "MACs", "multiply-accumulates per token at macs_seq_len, zeros included"),
        Key("macs_per_token_nonzero", float, "MACs", "multiply-accumulates per token at macs_seq_len, zeros skipped"),
        Key("macs_seq_len", int, "tokens", "the sequence length the MAC counts are taken at"),
        Key("linear_mac_share", float, "fraction", "share of the MACs in the linears (the part sparsity can speed up)"),
        Key("adapter_macs_per_token", float, "MACs", "MACs per token of unmerged LoRA adapters"),
        Key("heads_per_layer", list[int], "heads", "attention heads kept in each layer"),
        Key("ffn_channels_per_layer", list[int], "channels", "FFN channels kept in each layer"),
        Key("speedup_ideal", float, "ratio", "the speedup the mechanism allows at macs_seq_len (Amdahl over the linears)"),
        Key("speedup_mechanism", str, "", "how the weights run here: none (dense zeros), smaller_gemm, sparse kernels ..."),
        Key("speedup_mechanism_reason", str, "", "why that mechanism, in words (e.g. no 2:4 kernel on this device)"),
    ),
    *_section(
        "Sparse kernels (sparsify.realize_kernels): how a masked variant's linears ran in this cell",
        Key("sparse_kernel", str, "", "the cell's kernel: dense (the masked-dense control), csr, bsr, 2:4 or auto"),
        Key("kernel_control", str, "", "a kernel cell's masked-dense control: the variant it was realised from"),
        Key("sparse_kernel_linears", dict[str, int], "linears", "how many decoder linears each kernel served"),
        Key("sparse_kernel_by_linear", dict[str, str], "", "which kernel served each decoder linear (layers.<i>.<linear>)"),
        Key("sparse_kernel_breakeven_density", dict[str, float], "fraction", "auto: the measured break-even density per kernel and weight shape"),
        Key("sparse_kernel_calibration", str, "", "auto: the calibration file the break-even densities come from"),
        Key("sparse_kernel_calibration_measured", list[str], "", "auto: the calibration entries this cell measured (the rest were cached)"),
        Key("weight_bytes", int, "bytes", "bytes of the weights as the realised model holds them (sparse: values plus int32 indices)"),
        *_paired("speedup_vs_control", "the masked-dense control's latency over this kernel cell's: the kernel's own gain"),
    ),
    *_section(
        "Backend build and settings",
        Key("attention_path", str, "", "the attention the runner runs: causal or masked"),
        Key("attention_mask_form", str, "", "what SDPA gets for a mask (is_causal, causal_lower_right, a bool tensor's shape)"),
        Key("compile_mode", str, "", "torch.compile mode"),
        Key("compile_dynamic", bool, "", "torch.compile dynamic= (null: torch's default)"),
        Key("compile_fullgraph", bool, "", "torch.compile fullgraph="),
        Key("compile_cudagraphs", bool, "", "the compile mode uses CUDA graphs"),
        Key("compile_freezing", bool, "", "inductor's freezing was on (weights prepacked; compile:freezing)"),
        Key("eager_linears", str, "", "the library eager's linears were asked to run on: default or onednn"),
        Key("eager_linears_replaced", int, "", "nn.Linear modules run on oneDNN with prepacked weights (eager:onednn)"),
        Key("linear_library", str, "", "the GEMM library that ran the cell's linears (mkl, openblas, onednn, mlas, cublas)"),
        Key("measure_threads", int, "", "the intra-op threads the cell was given (measure.threads)"),
        Key("torch_intra_op_threads", int, "", "torch's intra-op threads in the cell's process"),
        Key("torch_interop_threads", int, "", "torch's inter-op threads in the cell's process"),
        Key("cpu_affinity_pinned", bool, "", "the worker was pinned to measure.cpu_affinity"),
        Key("cpu_affinity", list[int], "", "the CPU ids the cell's process could run on"),
        Key("compile_recompile_limit", int, "", "dynamo's recompile limit set for the cell"),
        Key("compile_recompile_limit_note", str, "", "why the recompile limit has that value"),
        Key("compile_s", float, "s", "first call of the compiled model (tracing and code generation)"),
        Key("compile_graphs", int, "graphs", "graphs dynamo compiled for the cell"),
        Key("compile_recompiles", int, "", "recompilations (graphs beyond the first)"),
        Key("compile_graph_breaks", int, "", "graph breaks dynamo reported"),
        Key("compile_eager_frames", int, "frames", "frames dynamo gave up on and ran eagerly (a cell with any fails)"),
        Key("compile_cache", str, "", "how torch.compile's caches were treated (fresh per cell)"),
        Key("compile_cache_hits", int, "", "compile cache hits during the cell"),
        Key("export_s", float, "s", "ONNX export"),
        Key("fuse_s", float, "s", "ONNX graph fusion (ORT transformers optimiser)"),
        Key("optimize_s", float, "s", "ONNX graph optimisation at export"),
        Key("session_s", float, "s", "ONNX Runtime session creation"),
        Key("export_cache_key", str, "", "key of the cached ONNX export"),
        Key("export_dir", str, "", "the cached export's directory"),
        Key("export_cache_hit", bool, "", "the export was found in the cache"),
        Key("export_cache_s", float, "s", "finding and checking (hit) or storing (miss) the cached export"),
        Key("export_cache_note", str, "", "a damaged entry exported again, or a concurrent writer's export reused"),
        Key("export_kept", str, "", "with keep_exports: the export's copy in the run directory (relative path)"),
        Key("onnx_bytes", int, "bytes", "size of the ONNX model"),
        Key("onnx_opset", int, "", "ONNX opset of the export"),
        Key("ort_version", str, "", "ONNX Runtime version"),
        Key("ort_providers", list[str], "", "the session's execution providers, in priority order"),
        Key("ort_provider_options", dict[str, str], "", "options given to the CUDA execution provider (none on the CPU)"),
        Key("ort_intra_op_threads", int, "", "ONNX Runtime intra-op threads"),
        Key("ort_intra_op_spinning", bool, "", "ONNX Runtime intra-op threads spin between runs"),
        Key("ort_graph_optimization", str, "", "ONNX Runtime graph optimisation level"),
        Key("ort_skip_layer_norm", bool, "", "SkipLayerNormalization fusion was applied"),
        Key("ort_fused_ops", dict[str, int], "ops", "fused operators in the graph, by type"),
        Key("ort_output_dtype", str, "", "dtype of the session's logits"),
        Key("ort_preload_dlls", str, "", "which CUDA and cuDNN libraries were preloaded for ONNX Runtime, in words"),
        Key("ort_nodes_by_provider", dict[str, int], "nodes", "graph nodes each provider ran in the profiled first run"),
        Key("ort_cpu_float_ops", dict[str, int], "nodes", "floating-point nodes on the CPU provider of a GPU session, by type"),
    ),
    *_section(
        "Shape and tokens",
        Key("batch_size", int, "samples", "samples per forward", True),
        Key("seq_len", int, "tokens", "padded sequence length of the fixed batch", True),
        Key("real_tokens", int, "tokens", "tokens of the batch that are not padding"),
        Key("padded_tokens", int, "tokens", "tokens of the batch including padding"),
    ),
    *_section(
        "Latency (bench.measure.stats over every timed iteration of the cell at one shape)",
        Key("latency_ms_p50", float, "ms", "median latency of one forward", True),
        Key("latency_ms_p90", float, "ms", "90th percentile latency; null below 64 samples", True),
        Key("latency_ms_p90_ci95_low", float, "ms", "lower bound of p90's order-statistic 95% CI"),
        Key("latency_ms_p90_ci95_high", float, "ms", "upper bound of p90's order-statistic 95% CI"),
        Key("latency_ms_p90_note", str, "", "why p90 is null (too few samples)"),
        Key("latency_ms_p95", float, "ms", "95th percentile latency; null below 130 samples"),
        Key("latency_ms_p95_ci95_low", float, "ms", "lower bound of p95's order-statistic 95% CI"),
        Key("latency_ms_p95_ci95_high", float, "ms", "upper bound of p95's order-statistic 95% CI"),
        Key("latency_ms_p95_note", str, "", "why p95 is null (too few samples)"),
        Key("latency_ms_p99", float, "ms", "99th percentile latency; null below 662 samples", True),
        Key("latency_ms_p99_ci95_low", float, "ms", "lower bound of p99's order-statistic 95% CI"),
        Key("latency_ms_p99_ci95_high", float, "ms", "upper bound of p99's order-statistic 95% CI"),
        Key("latency_ms_p99_note", str, "", "why p99 is null (too few samples)"),
        Key("latency_ms_mean", float, "ms", "mean latency"),
        Key("latency_ms_std", float, "ms", "standard deviation of the latency"),
        Key("latency_ms_min", float, "ms", "fastest iteration"),
        Key("latency_ms_max", float, "ms", "slowest iteration"),
        Key("latency_ms_ci95_low", float, "ms", "lower bound of the median's bootstrap 95% CI"),
        Key("latency_ms_ci95_high", float, "ms", "upper bound of the median's order-statistic interval (>= 95 %)"),
        Key("latency_ms_ci_level", float, "probability", "exact coverage of [latency_ms_ci95_low, latency_ms_ci95_high]"),
        Key("latency_cv", float, "ratio", "coefficient of variation (std / mean)"),
        Key("latency_outliers", int, "samples", "samples outside the Tukey fences (1.5 IQR beyond the quartiles)"),
        Key("latency_count", int, "samples", "timed iterations the statistics are over"),
        Key("latency_samples_ms", list[float], "ms", "the raw latencies, evenly thinned to at most 1000, for bootstrap ratios"),
        Key("measured_s", float, "s", "time spent in the timed iterations (latency) or the eval pass (throughput)"),
        Key("measure_scheme", str, "", "how the cells were timed (interleaved rounds)"),
        Key("rounds", int, "rounds", "interleaved rounds the cell was measured in"),
        Key("blocks", int, "blocks", "timed blocks of the cell at this shape"),
        Key("rounds_stopped_by", str, "", "why the rounds stopped (minimums, precision, time budget)"),
        Key("block_iters_median", float, "iterations", "median timed iterations per block"),
        Key("latency_drift", float, "ratio", "median of the cell's last quarter of blocks over its first (1.10 = 10% slower at the end)"),
        Key("reference_drift", float, "ratio", "the same drift for the cell's dense reference"),
        Key("group_batch", int, "", "which batch of its measurement group the cell ran in (1-based)"),
        Key("group_batches", int, "", "batches its measurement group was split into"),
        Key("max_live_workers", int, "processes", "most cell processes alive at once in the batch"),
        Key("reference_every", int, "cells", "a reference cell was placed beside every N cells of the round"),
    ),
    *_section(
        "Ratios paired round by round (median over rounds, order-statistic interval over rounds, >= 95 %, marginal)",
        *_paired("speedup_vs_dense", "dense on the same backend's latency over this cell's (>1: faster); 1.0 for dense itself",
                 required=True),
        *_paired("speedup_vs_eager", "the same variant on eager's latency over this cell's (>1: faster)"),
        *_paired("prefix_overhead_vs_dense", "a prompt variant's latency over dense's (1 / speedup_vs_dense)"),
        Key("ratio_ci_method", str, "", "how the paired ratios' intervals are built, and that they are marginal"),
        Key("aa_backend", str, "", "the backend of the A/A twin whose floor this record carries"),
        Key("aa_ratio", float, "ratio", "the A/A twin's paired ratio vs the dense reference (should contain 1.0)"),
        Key("aa_ratio_ci95_low", float, "ratio", "lower bound of aa_ratio's interval"),
        Key("aa_ratio_ci95_high", float, "ratio", "upper bound of aa_ratio's interval"),
        Key("aa_ratio_ci_level", float, "probability", "exact coverage of aa_ratio's interval"),
        Key("aa_ratio_p_value", float, "probability", "sign test of aa_ratio == 1.0"),
        Key("aa_significant", bool, "", "the twin's interval excludes 1.0: the run is flagged"),
        Key("resolution_pct", float, "%", "the run's resolution floor: the A/A twin's interval half-width"),
        Key("resolution_note", str, "", "why resolution_pct is null (the twin was lost)"),
    ),
    *_section(
        "Roofline (bench.measure.roofline, against peaks measured by `bench calibrate`)",
        Key("flops_per_forward", float, "FLOPs", "floating-point operations of one forward at this shape, zeros included"),
        Key("flops_nonzero_per_forward", float, "FLOPs", "the same, multiplications by zero weights left out"),
        Key("linear_flop_share", float, "fraction", "share of the FLOPs in the linears"),
        Key("min_bytes_per_forward", float, "bytes", "least memory traffic of one forward (weights and activations once)"),
        Key("arithmetic_intensity", float, "FLOPs/byte", "flops_per_forward / min_bytes_per_forward"),
        Key("achieved_tflops", float, "TFLOP/s", "flops_per_forward at the median latency"),
        Key("achieved_gbps", float, "GB/s", "min_bytes_per_forward at the median latency"),
        Key("peak_tflops", float, "TFLOP/s", "the calibrated GEMM peak of this device and dtype: the best library's"),
        Key("peak_library", str, "", "the GEMM library that set peak_tflops (bench calibrate times every one)"),
        Key("library_peak_tflops", float, "TFLOP/s", "the calibrated GEMM peak of linear_library at this dtype"),
        Key("percent_of_library_peak", float, "percent", "achieved_tflops over linear_library's own roof"),
        Key("peak_gbps", float, "GB/s", "the calibrated copy bandwidth of this device"),
        Key("ridge_flops_per_byte", float, "FLOPs/byte", "intensity where the compute and memory roofs meet"),
        Key("percent_of_peak", float, "percent", "achieved_tflops over the roof that bounds the cell"),
        Key("bound", str, "", "which roof bounds the cell: compute or memory"),
        Key("peak_note", str, "", "why percent_of_peak is suspect (above the calibrated peak)"),
        Key("weight_bytes_in_memory", int, "bytes", "bytes of the weights as held on the device for this cell"),
    ),
    *_section(
        "Energy (NVML's total energy counter, over the timed blocks)",
        Key("energy_j", float, "J", "energy over the timed windows"),
        Key("energy_j_per_sample", float, "J/sample", "energy per sample"),
        Key("samples_per_j", float, "samples/J", "samples per joule"),
        Key("energy_window_s", float, "s", "total length of the timed windows"),
        Key("energy_windows", int, "windows", "timed windows the energy is summed over"),
        Key("energy_counter_period_ms", float, "ms", "the counter's step period, as probed"),
        Key("energy_uncertainty_rel", float, "fraction", "relative uncertainty from the counter's steps (2 x period / window)"),
        Key("energy_note", str, "", "how energy was read, or why there is none"),
    ),
    *_section(
        "Throughput (one pass over the eval set)",
        Key("throughput_samples_per_s", float, "samples/s", "samples per second (latency: batch_size at the median)", True),
        Key("throughput_tokens_per_s", float, "tokens/s", "real (not padding) tokens per second"),
        Key("throughput_padded_tokens_per_s", float, "tokens/s", "tokens per second, padding included"),
        Key("throughput_padding_share", float, "fraction", "share of the processed tokens that were padding"),
        Key("throughput_samples", int, "samples", "samples of the pass"),
    ),
    *_section(
        "Memory",
        Key("peak_memory_mb", float, "MiB", "the headline peak memory (memory_source says which measure)", True),
        Key("memory_source", str, "", "which measure peak_memory_mb is"),
        Key("peak_rss_mb", float, "MiB", "peak resident set size of the process"),
        Key("rss_before_mb", float, "MiB", "resident set size before the measured forwards"),
        Key("rss_increase_mb", float, "MiB", "peak_rss_mb - rss_before_mb"),
        Key("torch_peak_allocated_mb", float, "MiB", "torch's CUDA allocator: peak allocated"),
        Key("torch_peak_reserved_mb", float, "MiB", "torch's CUDA allocator: peak reserved"),
        Key("nvml_process_memory_mb", float, "MiB", "GPU memory NVML reports for this process"),
        Key("nvml_device_used_mb", float, "MiB", "GPU memory in use on the device, by NVML"),
        Key("memory_notes", str, "", "what the memory figures include or miss"),
        Key("estimated_peak_memory_mb", float, "MiB", "the preflight estimate of this peak (bench.run.memory_estimate)"),
        Key("memory_free_at_start_mb", float, "MiB", "available RAM (CPU) or free GPU memory when the cell started"),
        Key("memory_estimate_parts", str, "", "the estimate by part: runtime, weights, activations"),
    ),
    *_section(
        "Accuracy",
        Key("accuracy", float, "fraction", "mean of accuracy_by_language", True),
        Key("accuracy_by_language", dict[str, float], "fraction", "accuracy per language code", True),
        Key("accuracy_by_language_std", dict[str, float], "fraction", "std (ddof=1) over seeds per language"),
        Key("accuracy_std", float, "fraction", "std (ddof=1) over seeds of the mean accuracy"),
        Key("language_groups", dict[str, list[str]], "", "the config's language groups, restricted to the languages measured"),
        Key("eval_samples", int, "samples", "evaluated pairs, all languages"),
        Key("max_abs_logit_diff", float, "logits", "largest |logit - eager fp32 logit| on the same rows"),
        Key("agreement_vs_eager_fp32", float, "fraction", "share of rows whose argmax agrees with eager fp32"),
    ),
    *_section(
        "Written by the store",
        Key("non_finite_note", str, "", "fields that held NaN or infinity, written as null"),
    ),
]

FIELDS: dict[str, Key] = {k.name: k for k in KEYS}
REQUIRED_KEYS: tuple[str, ...] = tuple(k.name for k in KEYS if k.required)
if len(FIELDS) != len(KEYS):  # a key declared twice would silently take the second declaration
    raise RuntimeError(f"bench/records.py declares a key twice: {sorted({k.name for k in KEYS if [j.name for j in KEYS].count(k.name) > 1})}")



@cache
def schema() -> tuple[dict[str, Key], Any]:
    """Every key a record may carry, the built-in ones and those each plug-in declares (MethodSpec.record_keys,
    BackendSpec.record_keys), with the pydantic model that checks their types."""
    from bench import plugins

    fields = dict(FIELDS)
    for spec in [*plugins.methods().values(), *plugins.backends().values()]:
        for key in spec.record_keys:
            if key.name in fields and fields[key.name] != key:
                raise RuntimeError(f"plug-in {spec.name} declares record key '{key.name}', which is already declared")
            fields[key.name] = Key(key.name, key.type, key.unit, key.doc, False, key.section or f"Plug-in {spec.name}")
    model = create_model(
        "Record", __config__=ConfigDict(strict=True, extra="forbid"),
        **{k.name: (k.type | None, None) for k in fields.values()},  # type: ignore[call-overload]
    )
    return fields, model


class RecordError(ValueError):
    """A record that does not fit the schema: a bug in the producer of the key it names, not bad input."""


def validate(record: dict[str, Any]) -> None:
    """Raise RecordError naming the first unknown key, missing required key or value of the wrong type."""
    where = _where(record)
    fields, model = schema()
    unknown = [k for k in record if k not in fields]
    if unknown:
        key = unknown[0]
        near = difflib.get_close_matches(key, fields, n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        raise RecordError(f"record {where}: key '{key}' is not in the record schema{hint}; "
                          "add it to bench/records.py (one Key line: type, unit, description) beside its producer, "
                          "or to its plug-in's record_keys")
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise RecordError(f"record {where}: required key(s) {', '.join(missing)} missing; build records with "
                          "bench.run.records.make_record")
    try:
        model.model_validate(record)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = str(error["loc"][0])
        value = json.dumps(record.get(key), default=str)
        value = value if len(value) <= 60 else value[:57] + "..."
        raise RecordError(f"record {where}: key '{key}' must be {type_name(fields[key].type)} or null, got {value} "
                          f"({error['msg']}); fix its producer, or its type in bench/records.py") from None


def _where(record: dict[str, Any]) -> str:
    parts = [str(record[k]) for k in ("cell_id", "scenario") if record.get(k)]
    return " ".join(parts) or "(no cell_id)"


def type_name(tp: Any) -> str:
    """A type as docs/records.md writes it: number, integer, string, boolean, list[...], object[...], one of ..."""
    if tp in SCALARS:
        return SCALARS[tp]
    if tp is Any:
        return "any"
    origin, args = getattr(tp, "__origin__", None), getattr(tp, "__args__", ())
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin is list:
        return f"list[{type_name(args[0])}]"
    if origin is dict:
        return f"object[{type_name(args[1])}]"
    raise TypeError(f"bench/records.py: no docs name for type {tp!r}")


def markdown() -> str:
    """docs/records.md: every key by section, with its type, unit, whether it is required and what it means."""
    out = ["<!-- Generated by `python -m bench.records > docs/records.md` from bench/records.py; do not edit. -->",
           "", "# Result records", "",
           f"Each line of a run's `results.jsonl` is one flat JSON object (schema_version {SCHEMA_VERSION}), "
           "validated against bench/records.py before it is written. Units are in the key names; every key may be "
           "null where it does not apply, and the keys marked required are in every record. "
           f"{len(KEYS)} keys, {len(REQUIRED_KEYS)} required.", ""]
    section = None
    for key in KEYS:
        if key.section != section:
            section = key.section
            out += ["", f"## {section}", "", "| key | type | unit | required | description |",
                    "|---|---|---|---|---|"]
        out.append(f"| `{key.name}` | {type_name(key.type)} | {key.unit} | {'yes' if key.required else ''} | "
                   f"{key.doc.replace('|', '/')} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
