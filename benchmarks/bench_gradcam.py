"""Benchmark: Grad-CAM in one graph, and from the maps kept with the features, against the
eager loop.

Chapter 8 computes a Grad-CAM heatmap for every tumor slice of every test fold, for both
bases. The eager loop (kept here as the baseline) ran the base forward under a gradient
tape op by op; `grad_cam` traces the forward pass and the gradient once into a graph. Both
run on the same frozen base (random weights, the `lgg` image size), the same head and the
same images, interleaved round by round; the maps must agree (largest difference printed)
and so must the pointing-game peak of each map. Since 2026-12-07 the study keeps the
base's unpooled outputs of the tumor slices when it computes their features
(`classifier.extract_features(..., keep_maps=...)`), and Grad-CAM reads them
(`gradcam.grad_cam_from_maps`): only the head runs. That is timed too, against the graph,
with what keeping the maps adds to the feature extraction. Prints, per model:

    BENCH gradcam <model> <size>: graph <t>x the eager loop's time (median of rounds)
    BENCH gradcam <model> <size>: from kept maps <t>x the graph's time; keeping the maps
        <k>x the features' extraction time   (one line)

Run: `python benchmarks/bench_gradcam.py [--models resnet50,vgg16] [--images 64]`.
"""
import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def eager_grad_cam(base, head, images, batch_size: int = 32) -> np.ndarray:
    """The loop `gradcam.grad_cam` ran before 2026-12-07: eager, one tape per batch."""
    import keras
    import tensorflow as tf

    from brainlib import models
    from brainlib.data import pipeline
    from brainlib.trust import gradcam

    layer = gradcam.LAYERS[base.name]
    reference = gradcam.feature_reference(head)
    size = int(base.input.shape[1])
    both = keras.Model(base.inputs, [base.get_layer(layer).output, base.output])
    pooling = models.head_pooling_layer(base)
    images = np.asarray(images, dtype=np.float32)
    maps = np.zeros((len(images), size, size), np.float32)
    for start in range(0, len(images), batch_size):
        batch = pipeline.preprocess_input(base.name, tf.constant(images[start:start + batch_size]))
        with tf.GradientTape() as tape:
            activations, output = both(batch, training=False)
            tape.watch(activations)
            p = head(pooling(output), training=False)
            log_odds = (tf.math.log(p[:, 1] + gradcam.EPS)
                        - tf.math.log(p[:, 0] + gradcam.EPS))
        gradients = tape.gradient(log_odds, activations)
        weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(weights * (activations - reference), axis=-1))[..., None]
        cam = tf.image.resize(cam, (size, size), method="bilinear")[..., 0].numpy()
        peak = cam.reshape(len(cam), -1).max(axis=1)
        maps[start:start + len(cam)] = np.where(
            peak[:, None, None] > 0, cam / np.maximum(peak, gradcam.EPS)[:, None, None], 0)
    return maps


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,vgg16")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    from brainlib import models
    from brainlib.training import classifier
    from brainlib.trust import gradcam

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (args.images, args.image_size, args.image_size, 3)
                          ).astype(np.float32)
    brain = gradcam.brain_masks(images)
    for model in args.models.split(","):
        config = classifier.TrainConfig(image_size=args.image_size, seed=0)
        base = classifier.build_frozen_base(model, config)
        head = models.build_head(models.pooled_feature_shape(base), seed=0,
                                 standardize_features=False)
        gradcam.grad_cam(base, head, images[:2])  # trace the graph outside the timing
        eager_grad_cam(base, head, images[:2])
        times = {"eager": [], "graph": []}
        for _ in range(args.rounds):
            started = time.perf_counter()
            eager = eager_grad_cam(base, head, images)
            times["eager"].append(time.perf_counter() - started)
            started = time.perf_counter()
            graph = gradcam.grad_cam(base, head, images)
            times["graph"].append(time.perf_counter() - started)
        extraction = {"features": [], "features and maps": []}
        for _ in range(args.rounds):
            started = time.perf_counter()
            classifier.extract_features(base, images, progress=False)
            extraction["features"].append(time.perf_counter() - started)
            started = time.perf_counter()
            _, maps = classifier.extract_features(base, images, progress=False,
                                                  keep_maps=np.arange(len(images)))
            extraction["features and maps"].append(time.perf_counter() - started)
        gradcam.grad_cam_from_maps(base, head, maps[:2])
        times["from maps"] = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            from_maps = gradcam.grad_cam_from_maps(base, head, maps)
            times["from maps"].append(time.perf_counter() - started)
        eager_s, graph_s = (statistics.median(times[k]) for k in ("eager", "graph"))
        same_peaks = (gradcam.peak_positions(eager, brain)
                      == gradcam.peak_positions(graph, brain)).mean()
        print(f"{model} {args.image_size}x{args.image_size}, {args.images} images, "
              f"{args.rounds} rounds: eager {eager_s:.1f} s ({1000 * eager_s / args.images:.0f} "
              f"ms/image), graph {graph_s:.1f} s; largest map difference "
              f"{np.abs(eager - graph).max():.2e}, same peak on {same_peaks:.0%} of maps")
        print(f"BENCH gradcam {model} {args.image_size}: graph {graph_s / eager_s:.2f}x the "
              "eager loop's time (median of rounds)")
        maps_s = statistics.median(times["from maps"])
        plain_s, keeping_s = (statistics.median(extraction[k]) for k in extraction)
        same = (gradcam.peak_positions(from_maps, brain)
                == gradcam.peak_positions(graph, brain)).mean()
        print(f"{model}: from kept maps {maps_s:.2f} s, largest difference from the graph's "
              f"maps {np.abs(from_maps - graph).max():.2e}, same peak on {same:.0%} of maps; "
              f"extraction {plain_s:.1f} s, keeping every image's maps {keeping_s:.1f} s")
        print(f"BENCH gradcam {model} {args.image_size}: from kept maps {maps_s / graph_s:.3f}x "
              f"the graph's time; keeping the maps {keeping_s / plain_s:.2f}x the features' "
              "extraction time")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
