"""Benchmark: how far the default profile's training results move with the seed and with
the instruction set, the measurement behind tests/training_spread.toml.

The default profile's main experiment (phantom, patient folds, true labels, every model)
is trained in a fresh process and run folder once per configuration: seeds 0..N-1 on this
machine's own instruction set, then seed 0 under every lower `ONEDNN_MAX_CPU_ISA` this CPU
runs (a stand-in for another CPU). Printed per model: pooled held-out accuracy and AUC per
configuration, the standard deviation over the seeds, and the largest distance of an
instruction-set configuration from seed 0 on the native one. The ratio line is the largest
instruction-set distance over the seed standard deviation (below 1: a machine moves the
results less than a reseed does).

    python benchmarks/bench_training_spread.py [--seeds 5] [--isas AVX,SSE41] [--out FILE.json]
        [--toml brainlib/data/training_spread.toml]

With --toml it writes the tolerances of tests/test_training_travels.py from this
measurement and the other machines' (`OTHER_MACHINES`), by `RULE`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_determinism import native_isa, run_one  # noqa: E402

from brainlib.data import machine  # noqa: E402

CHILD = r"""
import json, sys
from brainlib import metrics, params, study, machine
overrides = json.loads(sys.argv[1])
P = params.resolve("default", overrides)
predictions = study.run_models(P, models=P.all_model_names, progress=False)
table = metrics.metrics_table(predictions, by=("model",))
print("RESULT " + json.dumps({"machine": machine.in_words(machine.machine_record()),
      "metrics": {r.model: {"accuracy": float(r.accuracy), "auc": float(r.auc)}
                  for r in table.itertuples()}}))
"""


# The default profile's seed-0 results measured by earlier sessions on the other machines this
# project has run on, with the same training arithmetic (FIELD-NOTES.md, 2026-12-01; issue 23).
OTHER_MACHINES = {
    "AMD EPYC with AVX512-BF16 (the previous reference notebooks)": {
        "resnet50": {"accuracy": 0.752, "auc": 0.838}, "vgg16": {"accuracy": 0.704, "auc": 0.822},
        "unet": {"accuracy": 0.910, "auc": 0.889}},
    "Intel Xeon model 207 (AVX512-FP16)": {
        "resnet50": {"accuracy": 0.731, "auc": 0.830}, "vgg16": {"accuracy": 0.704, "auc": 0.822},
        "unet": {"accuracy": 0.924, "auc": 0.892}},
    "Intel Xeon model 207, ONEDNN_MAX_CPU_ISA=AVX2": {
        "resnet50": {"accuracy": 0.734, "auc": 0.825}, "vgg16": {"accuracy": 0.704, "auc": 0.822}},
}
def write_toml(results: list[dict], native: str, path: Path) -> None:
    """The measurement and the tolerances taken from it, as brainlib/data/training_spread.toml."""
    reference = results[0]
    here = reference["machine"]
    seeds = [r for r in results if r["isa"] == native]
    lines = ["# How far the default profile's training results move with the seed and between",
             "# machines, and the tolerances tests/test_training_travels.py allows a machine whose",
             "# arithmetic differs from the recording's. Written by",
             "# benchmarks/bench_training_spread.py --toml (do not edit by hand; re-measure).",
             "", "[measurement]",
             f'what = "seeds 0-{len(seeds) - 1} on the machine measured, seed 0 under '
             + ", ".join(f"ONEDNN_MAX_CPU_ISA={r['isa']}" for r in results if r["isa"] != native)
             + f', and {len(OTHER_MACHINES)} results from other machines"',
             f'recording_machine = "{here}"',
             'machines = "Moves are measured from seed 0 on the machine measured (the '
             'recording\'s machine when it was measured): '
             f'{here}. Other machines: ' + "; ".join(OTHER_MACHINES) + '."',
             f'rule = "{machine.SPREAD_RULE}"', ""]
    tolerances = {}
    for model in sorted(reference["metrics"]):
        for metric in ("accuracy", "auc"):
            then = reference["metrics"][model][metric]
            seed_values = [r["metrics"][model][metric] for r in seeds]
            moved = {f"ONEDNN_MAX_CPU_ISA={r['isa']}": r["metrics"][model][metric]
                     for r in results if r["isa"] != native}
            moved |= {name: m[model][metric] for name, m in OTHER_MACHINES.items() if model in m}
            largest = max(abs(v - then) for v in moved.values())
            sd = float(np.std(seed_values, ddof=1))
            tolerances.setdefault(model, {})[metric] = machine.spread_tolerance(largest, sd)
            lines += [f"[measured.{model}.{metric}]", f"recorded = {then:.6f}",
                      "seeds = [" + ", ".join(f"{v:.6f}" for v in seed_values) + "]",
                      f"seed_sd = {sd:.6f}", f"largest_machine_move = {largest:.6f}",
                      "machines = { " + ", ".join(f'"{k}" = {v:.6f}' for k, v in moved.items())
                      + " }", ""]
    lines += ["[tolerance]"]
    for model, by_metric in tolerances.items():
        lines += [f"{model} = {{ accuracy = {by_metric['accuracy']:.3f}, auc = {by_metric['auc']:.3f} }}"]
    path.write_text("\n".join(lines) + "\n")


def train(seed: int, env: dict) -> dict:
    return run_one({"seed": seed, "leakage_experiment": False, "institution_holdout": False},
                   env, CHILD)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--isas", default="AVX,SSE41",
                        help="lower ONEDNN_MAX_CPU_ISA values to try with seed 0")
    parser.add_argument("--out", default="", help="also write the results as JSON here")
    parser.add_argument("--from-json", default="", help="read the results from a previous --out")
    parser.add_argument("--toml", default="", help="write the tolerances file here")
    args = parser.parse_args(argv)
    native = native_isa()
    configs = [(seed, native) for seed in range(args.seeds)]
    configs += [(0, isa) for isa in args.isas.split(",") if isa and isa != native]
    results = json.loads(Path(args.from_json).read_text()) if args.from_json else []
    for seed, isa in configs if not results else []:
        env = {} if isa == native else {"ONEDNN_MAX_CPU_ISA": isa}
        result = train(seed, env)
        results.append({"seed": seed, "isa": isa, **result})
        print(f"  seed {seed} {isa:17s} " + "; ".join(
            f"{m} accuracy {v['accuracy']:.3f} AUC {v['auc']:.3f}"
            for m, v in sorted(result["metrics"].items())), flush=True)
    print(f"\nmachine: {results[0]['machine']}")
    models = sorted(results[0]["metrics"])
    print("\n| model | metric | seed SD (native, seeds 0.." f"{args.seeds - 1}) | "
          "largest ISA distance from seed 0 | per configuration |")
    print("|---|---|---|---|---|")
    worst_ratio = 0.0
    for model in models:
        for metric in ("accuracy", "auc"):
            seeds = [r["metrics"][model][metric] for r in results if r["isa"] == native]
            reference = seeds[0]
            isa_values = [r["metrics"][model][metric] for r in results if r["isa"] != native]
            distance = max((abs(v - reference) for v in isa_values), default=0.0)
            sd = float(np.std(seeds, ddof=1)) if len(seeds) > 1 else float("nan")
            worst_ratio = max(worst_ratio, distance / sd if sd > 0 else 0.0)
            every = ", ".join(f"s{r['seed']}/{r['isa']} {r['metrics'][model][metric]:.3f}"
                              for r in results)
            print(f"| {model} | {metric} | {sd:.4f} | {distance:.4f} | {every} |")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    if args.toml:
        write_toml(results, native, Path(args.toml))
        print(f"tolerances written: {args.toml}")
    print(f"\nBENCH training_spread: {worst_ratio:.2f}x (largest instruction-set distance over "
          "the seed SD; below 1: a machine moves results less than a reseed)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
