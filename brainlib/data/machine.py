"""The machine a result was computed on: CPU, the instruction set oneDNN used, threads,
library versions and GPUs.

TensorFlow's oneDNN and Eigen kernels pick code paths by instruction set and cache size,
so the same seed trains slightly different models on different CPUs (and under another
`ONEDNN_MAX_CPU_ISA`). A result is reproducible bit for bit only on a machine with the
same record (`same_arithmetic`); elsewhere it is reproducible within the measured spread
(`training_spread.toml`). Every trained unit keeps the record of the machine that
trained it (`machine.json`), and the run card shows the machine that ran the chapters.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

# The part of a record that decides the arithmetic (what must match for bit-identical
# training); the rest (GPU names aside) describes the machine.
ARITHMETIC_FIELDS = ("cpu_model", "onednn_isa", "onednn_enabled", "threads", "tensorflow",
                     "keras", "numpy", "gpus")
ISA_ENV_VAR = "ONEDNN_MAX_CPU_ISA"
SPREAD_FILE = Path(__file__).with_name("training_spread.toml")
"""How far the default profile's training results moved across seeds, instruction sets and
machines (measured by benchmarks/bench_training_spread.py), and the tolerances taken from it."""

_PROBE = (
    "import tensorflow as tf\n"
    "x = tf.ones([1, 8, 8, 4]); k = tf.ones([3, 3, 4, 4])\n"
    "tf.nn.conv2d(x, k, 1, 'SAME'); tf.matmul(tf.ones([32, 32]), tf.ones([32, 32]))\n"
)


def cpu_model() -> str:
    """The CPU's model name with its family and model numbers (/proc/cpuinfo on Linux;
    virtual machines often show only 'AMD EPYC', which spans several generations), else
    the platform's word for it."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        text = cpuinfo.read_text()
        name = _cpuinfo_field(text, "model name")
        if name:
            return (f"{name} (family {_cpuinfo_field(text, 'cpu family')}, "
                    f"model {_cpuinfo_field(text, 'model')})")
    return platform.processor() or platform.machine() or "unknown"


def _cpuinfo_field(text: str, name: str) -> str:
    found = re.search(rf"^{name}\s*:\s*(.+)$", text, re.MULTILINE)
    return found.group(1).strip() if found else ""


def onednn_enabled() -> bool:
    """oneDNN kernels are on unless TF_ENABLE_ONEDNN_OPTS=0 (TensorFlow's own switch)."""
    return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").strip() not in ("0", "false", "False")


@functools.cache
def onednn_isa() -> str:
    """The instruction set oneDNN dispatches to here, as its verbose mode names it (e.g.
    'Intel AVX2', 'Intel AVX-512 with AVX512BW, AVX512VL, and AVX512DQ extensions'), read
    from a short probe process (oneDNN reports it only in verbose mode, at its first
    kernel); 'oneDNN off' when TF_ENABLE_ONEDNN_OPTS=0, 'unknown' when the probe fails."""
    if not onednn_enabled():
        return "oneDNN off"
    from . import cache_dir, write_text_atomic

    import tensorflow as tf

    key = hashlib.sha1(json.dumps([cpu_model(), os.environ.get(ISA_ENV_VAR, ""), tf.__version__,
                                   sys.executable]).encode()).hexdigest()[:12]
    cached = cache_dir() / "machine" / f"onednn-isa-{key}.txt"
    if cached.exists():
        return cached.read_text().strip()
    env = {**os.environ, "ONEDNN_VERBOSE": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
           "CUDA_VISIBLE_DEVICES": "-1"}
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                              text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    found = re.search(r"onednn_verbose,(?:v\d+,)?info,cpu,isa:(.+)", done.stdout + done.stderr)
    if not found:
        return "unknown"
    cached.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(cached, found.group(1).strip())
    return found.group(1).strip()


def threads() -> int:
    """The threads TensorFlow's kernels use (its intra-op setting, or every core when 0)."""
    import tensorflow as tf

    return tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count() or 1


def gpus() -> list[str]:
    """The GPUs TensorFlow sees, by name (empty on a CPU-only machine)."""
    import tensorflow as tf

    found = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device) or {}
        found.append(details.get("device_name", device.name))
    return found


def machine_record() -> dict:
    """What this machine is, for a run card or a unit's `machine.json`."""
    import keras
    import numpy
    import tensorflow as tf

    return {
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "onednn_isa": onednn_isa(),
        "onednn_max_cpu_isa": os.environ.get(ISA_ENV_VAR, ""),
        "onednn_enabled": onednn_enabled(),
        "threads": threads(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "gpus": gpus(),
        "platform": f"{platform.system()} {platform.machine()}",
    }


def arithmetic(record: dict) -> dict:
    """The fields of a record that must agree for bit-identical results."""
    return {name: record.get(name) for name in ARITHMETIC_FIELDS}


def same_arithmetic(first: dict, second: dict) -> bool:
    """True when two records agree on everything that decides the arithmetic."""
    return arithmetic(first) == arithmetic(second)


def arithmetic_differences(recorded: dict, here: dict) -> list[str]:
    """'field: recorded -> here' for every arithmetic field that differs."""
    return [f"{name}: {recorded.get(name)!r} -> {here.get(name)!r}"
            for name in ARITHMETIC_FIELDS if recorded.get(name) != here.get(name)]


def fingerprint(record: dict) -> str:
    """A short hash of the arithmetic fields: one value per kind of machine."""
    text = json.dumps(arithmetic(record), sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def in_words(record: dict) -> str:
    """One line: CPU, instruction set, threads, GPUs, versions."""
    cap = f" (capped by {ISA_ENV_VAR}={record['onednn_max_cpu_isa']})" \
        if record.get("onednn_max_cpu_isa") else ""
    gpu = ", GPU " + ", ".join(record["gpus"]) if record.get("gpus") else ", no GPU"
    return (f"{record['cpu_model']}, oneDNN {record['onednn_isa']}{cap}, "
            f"{record['threads']} threads{gpu}; TensorFlow {record['tensorflow']}, "
            f"Keras {record['keras']}, NumPy {record['numpy']}")


SPREAD_RULE = ("tolerance = the larger of twice the largest move seen across instruction sets "
               "and machines and one SD over seeds, rounded up to 0.005")


def spread_tolerance(largest_move: float, seed_sd: float) -> float:
    """`SPREAD_RULE`: room for machines not yet seen, never tighter than a reseed's spread."""
    import math

    return math.ceil(max(2 * largest_move, seed_sd) / 0.005 - 1e-9) * 0.005


def measured_spread() -> dict:
    """`training_spread.toml`: per model and metric, the seed SD, the largest move across
    instruction sets and machines, and the tolerance of the cross-machine check."""
    import tomllib

    return tomllib.loads(SPREAD_FILE.read_text())


@functools.lru_cache(maxsize=None)
def bfloat16_convolution_works() -> bool:
    """Whether a bfloat16 2-D convolution runs on this machine, tried once on an 8x8 image.

    CPU flags do not tell: with oneDNN capped below bfloat16 (`ONEDNN_MAX_CPU_ISA=AVX2` on
    an AVX512-BF16 or AMX CPU) TensorFlow still routes bfloat16 convolutions to oneDNN,
    which refuses them ("could not create a primitive descriptor"; seen on an Intel Xeon).
    """
    import tensorflow as tf

    try:
        image = tf.ones((1, 8, 8, 3), tf.bfloat16)
        kernel = tf.ones((3, 3, 3, 4), tf.bfloat16)
        tf.nn.conv2d(image, kernel, 1, "SAME").numpy()
    except tf.errors.OpError:
        return False
    return True


def has_bfloat16() -> bool:
    """A GPU with bfloat16 arithmetic (compute capability 8.0 or newer), or a CPU with
    AVX512-BF16 or AMX (read from /proc/cpuinfo; other systems: no)."""
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        major = tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0))[0]
        if major >= 8:
            return True
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


BFLOAT16_PROBE_SHAPE = (16, 128, 128, 32, 64)
"""The probe's convolution: a batch of 16 128x128 maps, 32 channels in, 64 out, 3x3: the
size of the U-Net's and the bases' middle layers in the CPU profiles."""
BFLOAT16_MIN_SPEEDUP = 1.1
"""`auto` precision picks bfloat16 only where the probe runs at least this much faster than
float32: a smaller gain is within the probe's noise and not worth bfloat16's rounding."""


@functools.lru_cache(maxsize=None)
def bfloat16_probe(rounds: int = 5) -> dict:
    """Time one 3x3 convolution (`BFLOAT16_PROBE_SHAPE`) in float32 and in bfloat16 on this
    machine, interleaved, and say which `auto` precision picks.

    CPU flags do not tell which is faster: on an Intel Xeon with AMX a bfloat16 convolution
    of this size ran 1.5x slower than float32, on an AMD machine with AVX512-BF16 it ran
    faster. Returns the medians in ms, the speed-up (float32 time / bfloat16 time) and the
    choice; bfloat16 that cannot run here is "float32" with the reason.
    """
    import time

    import tensorflow as tf

    batch, size, channels, out = BFLOAT16_PROBE_SHAPE[0], *BFLOAT16_PROBE_SHAPE[2:]
    record = {"shape": "x".join(map(str, BFLOAT16_PROBE_SHAPE[:4])) + f"->{out}",
              "rounds": rounds, "min_speedup": BFLOAT16_MIN_SPEEDUP}
    if not bfloat16_convolution_works():
        return {**record, "chosen": "float32", "why": "a bfloat16 convolution fails here"}
    image = tf.random.stateless_normal((batch, size, size, channels), (1, 2))
    kernel = tf.random.stateless_normal((3, 3, channels, out), (3, 4))
    inputs = {"float32": (image, kernel),
              "bfloat16": (tf.cast(image, tf.bfloat16), tf.cast(kernel, tf.bfloat16))}
    times = {name: [] for name in inputs}
    for name, (x, k) in inputs.items():  # warm-up: kernels chosen, memory allocated
        tf.nn.conv2d(x, k, 1, "SAME").numpy()
    for _ in range(rounds):
        for name, (x, k) in inputs.items():
            started = time.perf_counter()
            tf.nn.conv2d(x, k, 1, "SAME").numpy()
            times[name].append(time.perf_counter() - started)
    float32_ms, bfloat16_ms = (1000 * sorted(t)[len(t) // 2] for t in times.values())
    speedup = float32_ms / bfloat16_ms
    faster = speedup >= BFLOAT16_MIN_SPEEDUP
    why = (f"bfloat16 ran {speedup:.2f}x as fast as float32 here "
           f"({'at least' if faster else 'below'} {BFLOAT16_MIN_SPEEDUP}x)")
    if faster and not has_bfloat16():
        faster, why = False, why + ", but this CPU or GPU has no bfloat16 arithmetic"
    return {**record, "float32_ms": round(float32_ms, 2), "bfloat16_ms": round(bfloat16_ms, 2),
            "speedup": round(speedup, 3), "chosen": "bfloat16" if faster else "float32",
            "why": why}


def bfloat16_refused(setting: str) -> str:
    """The error for a setting that asks for bfloat16 where it cannot run."""
    cap = os.environ.get(ISA_ENV_VAR)
    why = (f" ({ISA_ENV_VAR}={cap} caps oneDNN below bfloat16)" if cap else "")
    return (f"{setting} asks for bfloat16, but a bfloat16 convolution fails on this "
            f"machine{why}; run with -p {setting.split('=')[0]}=float32, or without the cap")
