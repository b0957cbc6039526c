"""Benchmark: do deterministic kernels make training bit-identical across instruction sets
and thread counts, and what do they cost?

Each configuration trains the same small study (phantom, the default profile's models:
the frozen-base classifiers' features and heads, and the U-Net, one fold) in a fresh
process and run folder, then hashes every unit's test probabilities. Configurations:
oneDNN's instruction-set cap (`ONEDNN_MAX_CPU_ISA`: the machine's own, then every lower
one this CPU runs), oneDNN on or off (`TF_ENABLE_ONEDNN_OPTS=0`, with
`tf.config.experimental.enable_op_determinism()`), and 2 or 1 threads. Configurations
whose hashes agree share a letter in the "result" column; the ratio is the deterministic
setting's time over the default's on the same threads and instruction sets (goal:
identical results across instruction sets; the time ratio is reported, the lower the
better).

    python benchmarks/bench_determinism.py [--isas AVX2,AVX,SSE41] [--epochs 3]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import hashlib, json, os, sys, time
import tensorflow as tf
if os.environ.get("BENCH_DETERMINISTIC") == "1":
    tf.config.experimental.enable_op_determinism()
threads = int(os.environ.get("BENCH_THREADS", "0"))
if threads:
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
from brainlib import params, study
overrides = json.loads(sys.argv[1])
P = params.resolve("default", overrides)
started = time.perf_counter()
predictions = study.run_models(P, models=P.all_model_names, progress=False)
seconds = time.perf_counter() - started
hashes = {model: hashlib.sha1(rows["p_tumor"].to_numpy().tobytes()).hexdigest()[:10]
          for model, rows in predictions.groupby("model")}
accuracy = {model: float((rows["y_true"] == rows["y_pred"]).mean())
            for model, rows in predictions.groupby("model")}
print("RESULT " + json.dumps({"seconds": seconds, "hashes": hashes, "accuracy": accuracy}))
"""


def native_isa() -> str:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if " avx512_fp16" in flags:
        return "AVX512_CORE_FP16"
    if " avx512_bf16" in flags:
        return "AVX512_CORE_BF16"
    if " avx512f" in flags:
        return "AVX512_CORE"
    return "AVX2"


def run_one(overrides: dict, env: dict, child: str = CHILD) -> dict:
    """Run `child` (a study script printing one RESULT json line) in a fresh process and
    run folder with `env` added; its result."""
    with tempfile.TemporaryDirectory(prefix="bench-run-") as folder:
        overrides = {**overrides, "run_dir": folder}
        child_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env}
        done = subprocess.run([sys.executable, "-c", child, json.dumps(overrides)], env=child_env,
                              capture_output=True, text=True, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(f"configuration {overrides} {env} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--isas", default="",
                        help="comma-separated ONEDNN_MAX_CPU_ISA values (default: native,AVX,SSE41)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--patients", type=int, default=8)
    parser.add_argument("--threads", default="2,1")
    parser.add_argument("--all-thread-counts", action="store_true",
                        help="every thread count under every ISA (default: the first thread "
                             "count under every ISA, the others under the native one)")
    args = parser.parse_args(argv)
    isas = [i for i in args.isas.split(",") if i] or [native_isa(), "AVX", "SSE41"]
    overrides = {"phantom_patients": args.patients, "n_folds": 2, "folds_to_run": "0",
                 "epochs": args.epochs, "unet_epochs": args.epochs, "leakage_experiment": False,
                 "institution_holdout": False, "mc_passes": 2}
    rows, letters = [], {}
    thread_counts = [int(t) for t in args.threads.split(",")]
    configs = [(False, thread_counts[0], isa) for isa in isas]
    configs += [(True, threads, isa) for threads in thread_counts for isa in isas]
    if not args.all_thread_counts:  # the other thread counts with the machine's own ISA only
        configs = [c for c in configs if c[1] == thread_counts[0] or c[2] == isas[0]]
    for deterministic, threads, isa in configs:
        env = {"ONEDNN_MAX_CPU_ISA": isa, "BENCH_THREADS": str(threads)}
        if deterministic:
            env |= {"TF_ENABLE_ONEDNN_OPTS": "0", "BENCH_DETERMINISTIC": "1"}
        result = run_one(overrides, env)
        key = json.dumps(result["hashes"], sort_keys=True)
        letters.setdefault(key, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[len(letters) % 26])
        rows.append((deterministic, threads, isa, result, letters[key]))
        print(f"  {'deterministic' if deterministic else 'default':13s} threads={threads} "
              f"{isa:17s} {result['seconds']:6.1f} s  result {letters[key]}  "
              f"{result['hashes']}  accuracy {result['accuracy']}", flush=True)
    print("\n| kernels | threads | ONEDNN_MAX_CPU_ISA | s | result |")
    print("|---|---|---|---|---|")
    for deterministic, threads, isa, result, letter in rows:
        print(f"| {'oneDNN off + op determinism' if deterministic else 'default (oneDNN)'} | "
              f"{threads} | {isa} | {result['seconds']:.1f} | {letter} |")
    default_letters = {letter for d, _, _, _, letter in rows if not d}
    strict_letters = {letter for d, _, _, _, letter in rows if d}
    seconds = {(d, t, i): r["seconds"] for d, t, i, r, _ in rows}
    matched = [(t, i) for d, t, i, _, _ in rows if not d and (True, t, i) in seconds]
    ratio = sum(seconds[(True, t, i)] for t, i in matched) / sum(seconds[(False, t, i)]
                                                               for t, i in matched)
    print(f"\ndistinct results: default kernels {len(default_letters)} of "
          f"{sum(1 for r in rows if not r[0])} configurations; deterministic kernels "
          f"{len(strict_letters)} of {sum(1 for r in rows if r[0])}")
    print(f"BENCH determinism: {ratio:.2f}x time (deterministic over default; "
          f"identical across instruction sets and threads: {'yes' if len(strict_letters) == 1 else 'no'})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
