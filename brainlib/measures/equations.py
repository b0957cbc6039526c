"""The paper's equations as short numpy functions, each checked against TensorFlow/Keras.

Every function implements one numbered equation of the paper (numbering as printed) in
plain numpy, so a reader can see the formula in code. `agreement_with_keras` runs each
one next to the Keras operation a model actually uses (or, where Keras has none, scipy or
a closed form) and reports the largest absolute difference. Three have a checked library
twin that also validates its input and handles empty masks: `confusion_counts`
(`measures.metrics`) and `hausdorff_distance` (`measures.segmetrics`, on masks) agree with
these in `tests/test_equations.py`; the training loop logs eq. (20) with
`inverse_time_decay` from here.
`gradient_norms_plain_vs_residual` shows why residual connections (eqs. 9-10) help a deep
network learn. TensorFlow is imported only inside the functions that need it, so
`import brainlib.measures.equations` stays light.

Conventions: images are channels-last `(batch, height, width, channels)` as in Keras;
a dense layer takes a batch of row vectors, so the paper's `Z = W A + b` reads
`Z = A @ W + b` here. Logarithms are natural.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

KERAS_EPSILON = 1e-7
"""Keras clips probabilities to [eps, 1 - eps] before taking logarithms; we do the same."""


# --------------------------------------------------------------- layers, eqs. (1)-(5)

def continuous_convolution(f: Callable, g: Callable, t, tau) -> np.ndarray:
    """Eq. (1), (f*g)(t) = integral f(tau) g(t - tau) dtau, as a Riemann sum on the
    uniform grid `tau` (wide enough to hold the functions' support)."""
    t, tau = np.atleast_1d(t), np.asarray(tau, dtype=float)
    step = tau[1] - tau[0]
    return (f(tau)[None, :] * g(t[:, None] - tau[None, :])).sum(axis=1) * step


def convolution_layer(inputs, kernel, bias, stride: int = 1) -> np.ndarray:
    """Eq. (2), Z = W * A + b: a 2-D convolution layer with 'valid' padding.

    `inputs` is (batch, height, width, channels_in), `kernel` (kh, kw, channels_in,
    channels_out), `bias` (channels_out,). Like every deep-learning library, the kernel is
    not flipped (cross-correlation); a learned kernel makes the flip immaterial.
    """
    kh, kw = kernel.shape[:2]
    windows = np.lib.stride_tricks.sliding_window_view(inputs, (kh, kw), axis=(1, 2))
    windows = windows[:, ::stride, ::stride]  # (batch, out_h, out_w, c_in, kh, kw)
    return np.einsum("bhwcij,ijco->bhwo", windows, kernel) + bias


def relu(z) -> np.ndarray:
    """Eq. (3), A = max(0, Z), element-wise."""
    return np.maximum(0.0, z)


def max_pooling(inputs, pool_size: int = 2, stride: int | None = None) -> np.ndarray:
    """Eq. (4), A_ij = max over the (m, n) patch: 'valid' max pooling of
    (batch, height, width, channels) maps; the stride defaults to the pool size."""
    stride = stride or pool_size
    windows = np.lib.stride_tricks.sliding_window_view(inputs, (pool_size, pool_size),
                                                       axis=(1, 2))
    return windows[:, ::stride, ::stride].max(axis=(-2, -1))


def dense_layer(inputs, weights, bias) -> np.ndarray:
    """Eq. (5), Z = W A + b, for a batch of row vectors: Z = A @ W + b."""
    return inputs @ weights + bias


# ------------------------------------------------------ training, eqs. (6)-(8), (11)-(12)

def binary_cross_entropy(y_true, p_tumor, epsilon: float = KERAS_EPSILON) -> float:
    """Eq. (6), -1/m sum[y log p + (1 - y) log(1 - p)], with p clipped as Keras does."""
    y, p = np.asarray(y_true, float), np.clip(np.asarray(p_tumor, float), epsilon, 1 - epsilon)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def gradient_descent_step(theta, gradient, learning_rate: float) -> np.ndarray:
    """Eq. (7), theta <- theta - alpha dJ/dtheta."""
    return np.asarray(theta) - learning_rate * np.asarray(gradient)


def batch_normalization(x, gamma=1.0, beta=0.0, epsilon: float = 1e-3) -> np.ndarray:
    """Eq. (8), (x - mu) / sqrt(sigma^2 + eps), per feature over the batch (axis 0), then
    scaled by gamma and shifted by beta as Keras does (its default eps is 1e-3)."""
    x = np.asarray(x, float)
    mean, variance = x.mean(axis=0), x.var(axis=0)  # the biased variance, as in training
    return gamma * (x - mean) / np.sqrt(variance + epsilon) + beta


def sigmoid(z) -> np.ndarray:
    """Eq. (11), 1 / (1 + e^-z), written so that large |z| does not overflow."""
    z = np.asarray(z, float)
    exp_minus_abs = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + exp_minus_abs), exp_minus_abs / (1 + exp_minus_abs))


def l2_penalty(weight_matrices, lam: float, m: int) -> float:
    """Eq. (12), lambda / (2m) ||W||_F^2, summed over the given weight matrices."""
    return float(lam / (2 * m) * sum(np.sum(np.square(w)) for w in weight_matrices))


# ------------------------------------------------------------ residual block, eqs. (9)-(10)

def residual_mapping(x, w1, w2, activation: Callable = relu) -> np.ndarray:
    """Eq. (10), F(x, {W}) = W2 sigma(W1 x), for row vectors: sigma(x @ W1) @ W2.
    sigma is ReLU in ResNet (the paper reuses the letter for the sigmoid of eq. 11)."""
    return activation(x @ w1) @ w2


def residual_block(x, w1, w2, activation: Callable = relu) -> np.ndarray:
    """Eq. (9), output = F(x, {W}) + x: the block learns only the change to its input."""
    return residual_mapping(x, w1, w2, activation) + x


# ------------------------------------------------ Bayes and reconstruction, eqs. (13)-(14)

def posterior_on_grid(prior, likelihood) -> np.ndarray:
    """Eq. (13), p(theta|D) = p(D|theta) p(theta) / p(D), on a grid of theta values;
    p(D) is the sum that makes the posterior add up to one."""
    joint = np.asarray(likelihood, float) * np.asarray(prior, float)
    return joint / joint.sum()


def positive_predictive_value(prevalence: float, sensitivity: float,
                              specificity: float) -> float:
    """Eq. (13) for a test: p(tumor | positive) = sens * prev / p(positive)."""
    p_positive = sensitivity * prevalence + (1 - specificity) * (1 - prevalence)
    return sensitivity * prevalence / p_positive


def reconstruction_error(x, w) -> float:
    """Eq. (14)'s term ||XW - X||_F^2 (zero at W = I; the paper prints "maximize")."""
    return float(np.sum(np.square(np.asarray(x) @ np.asarray(w) - np.asarray(x))))


# -------------------------------------------------------- segmentation, eqs. (15)-(17)

def dice_coefficient(mask_a, mask_b) -> float:
    """Eq. (15), 2|X n Y| / (|X| + |Y|) for binary masks; 1.0 when both are empty."""
    a, b = np.asarray(mask_a, bool), np.asarray(mask_b, bool)
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(a, b).sum() / total)


def intersection_over_union(mask_a, mask_b) -> float:
    """Eq. (16), |X n Y| / |X u Y| for binary masks; 1.0 when both are empty."""
    a, b = np.asarray(mask_a, bool), np.asarray(mask_b, bool)
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def directed_hausdorff_distance(points_a, points_b) -> float:
    """h(X, Y) = max over x of the distance to the nearest y (one direction of eq. 17)."""
    a, b = np.asarray(points_a, float), np.asarray(points_b, float)
    distances = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)
    return float(distances.min(axis=1).max())


def hausdorff_distance(points_a, points_b) -> float:
    """Eq. (17), H(X, Y) = max(h(X, Y), h(Y, X)): the worst boundary miss, in pixels when
    the points are mask coordinates (`np.argwhere(mask)`)."""
    return max(directed_hausdorff_distance(points_a, points_b),
               directed_hausdorff_distance(points_b, points_a))


# ------------------------------------------------------- optimiser, eqs. (18)-(20)

@dataclass(frozen=True)
class AdamTrace:
    """Parameters and Adam moments after each step (row t is after step t + 1)."""

    theta: np.ndarray
    first_moment: np.ndarray
    second_moment: np.ndarray


def adam_moments(m, v, gradient, beta_1: float = 0.9, beta_2: float = 0.999):
    """Eqs. (18)-(19): m <- b1 m + (1 - b1) g and v <- b2 v + (1 - b2) g^2."""
    gradient = np.asarray(gradient, float)
    return beta_1 * m + (1 - beta_1) * gradient, beta_2 * v + (1 - beta_2) * gradient ** 2


def adam_steps(theta, gradients, learning_rate: float = 0.001, beta_1: float = 0.9,
               beta_2: float = 0.999, epsilon: float = 1e-7) -> AdamTrace:
    """Adam over a sequence of gradients: the moments of eqs. (18)-(19), bias-corrected,
    then theta <- theta - lr_t m / (sqrt(v) + eps), in Keras' form of the update."""
    theta = np.asarray(theta, float)
    m = v = np.zeros_like(theta)
    trace = []
    for step, gradient in enumerate(gradients, start=1):
        m, v = adam_moments(m, v, gradient, beta_1, beta_2)
        lr_t = learning_rate * np.sqrt(1 - beta_2 ** step) / (1 - beta_1 ** step)
        theta = theta - lr_t * m / (np.sqrt(v) + epsilon)
        trace.append((theta, m, v))
    if not trace:
        raise ValueError("adam_steps needs at least one gradient, got none")
    thetas, ms, vs = (np.array(column) for column in zip(*trace))
    return AdamTrace(thetas, ms, vs)


def inverse_time_decay(initial_learning_rate: float, decay_rate: float, epoch) -> np.ndarray:
    """Eq. (20), alpha = alpha_0 / (1 + decay_rate * epoch)."""
    return initial_learning_rate / (1 + decay_rate * np.asarray(epoch, float))


# ---------------------------------------------------- metrics and losses, eqs. (29)-(40)

def mean_squared_error(y_true, y_pred) -> float:
    """Eq. (29), 1/N sum (y - y_hat)^2."""
    return float(np.mean(np.square(np.asarray(y_true, float) - np.asarray(y_pred, float))))


def mean_absolute_error(y_true, y_pred) -> float:
    """Eq. (40), 1/N sum |y - y_hat|."""
    return float(np.mean(np.abs(np.asarray(y_true, float) - np.asarray(y_pred, float))))


def confusion_counts(y_true, y_pred) -> dict:
    """TP, FP, FN, TN of 0/1 labels (1 = tumor), the inputs of eqs. (30)-(35)."""
    y, yhat = np.asarray(y_true, bool), np.asarray(y_pred, bool)
    return {"tp": int(np.sum(y & yhat)), "fp": int(np.sum(~y & yhat)),
            "fn": int(np.sum(y & ~yhat)), "tn": int(np.sum(~y & ~yhat))}


def accuracy(y_true, y_pred) -> float:
    """Eq. (30), correctly classified / all."""
    c = confusion_counts(y_true, y_pred)
    return (c["tp"] + c["tn"]) / sum(c.values())


def precision(y_true, y_pred) -> float:
    """Eq. (31), TP / (TP + FP)."""
    c = confusion_counts(y_true, y_pred)
    return c["tp"] / (c["tp"] + c["fp"])


def recall(y_true, y_pred) -> float:
    """Eq. (32), TP / (TP + FN); the same formula as sensitivity, eq. (34)."""
    c = confusion_counts(y_true, y_pred)
    return c["tp"] / (c["tp"] + c["fn"])


def f1_score(y_true, y_pred) -> float:
    """Eq. (33), 2 precision recall / (precision + recall)."""
    p, r = precision(y_true, y_pred), recall(y_true, y_pred)
    return 2 * p * r / (p + r)


def sensitivity(y_true, y_pred) -> float:
    """Eq. (34), TP / (TP + FN): the share of tumor slices found."""
    return recall(y_true, y_pred)


def specificity(y_true, y_pred) -> float:
    """Eq. (35), TN / (TN + FP): the share of tumor-free slices cleared."""
    c = confusion_counts(y_true, y_pred)
    return c["tn"] / (c["tn"] + c["fp"])


def entropy(p) -> float:
    """Eq. (36), -sum p log p (0 log 0 = 0), in nats."""
    p = np.asarray(p, float)
    nonzero = p[p > 0]
    return float(-np.sum(nonzero * np.log(nonzero)))


def cross_entropy(p, q) -> float:
    """Eq. (37), -sum p log q: the cost of coding p with a code built for q."""
    p, q = np.asarray(p, float), np.asarray(q, float)
    return float(-np.sum(p[p > 0] * np.log(q[p > 0])))


def kl_divergence(p, q) -> float:
    """Eq. (38), sum p log(p / q) = cross-entropy (37) - entropy (36)."""
    p, q = np.asarray(p, float), np.asarray(q, float)
    return float(np.sum(p[p > 0] * np.log(p[p > 0] / q[p > 0])))


def hinge_loss(y_true, y_score) -> float:
    """Eq. (39), max(0, 1 - y y_hat) averaged, labels in {-1, +1} (0/1 are mapped)."""
    y = np.asarray(y_true, float)
    y = np.where(y == 0, -1.0, y)
    return float(np.mean(np.maximum(0.0, 1 - y * np.asarray(y_score, float))))


# ------------------------------------------------------- agreement with TensorFlow/Keras

@dataclass(frozen=True)
class Check:
    """One equation checked: our numpy value next to the reference's."""

    equation: str
    name: str
    reference: str
    ours: np.ndarray
    theirs: np.ndarray


def _fixed_inputs(seed: int) -> dict:
    """Small fixed arrays shared by the checks, magnitudes near one (float32 friendly)."""
    rng = np.random.default_rng(seed)
    f32 = np.float32
    y_true = np.array([1, 0, 1, 1, 0, 0, 1, 0, 0, 1, 0, 0])
    return {
        "rng": rng,
        "image": rng.normal(size=(2, 7, 7, 3)).astype(f32),
        "kernel": rng.normal(scale=0.1, size=(3, 3, 3, 4)).astype(f32),
        "bias4": rng.normal(size=4).astype(f32),
        "features": rng.normal(size=(5, 6)).astype(f32),
        "w_dense": rng.normal(scale=0.4, size=(6, 3)).astype(f32),
        "bias3": rng.normal(size=3).astype(f32),
        "w_square_1": rng.normal(scale=0.4, size=(6, 6)).astype(f32),
        "w_square_2": rng.normal(scale=0.4, size=(6, 6)).astype(f32),
        "z": np.linspace(-6, 6, 25, dtype=f32),
        "y_true": y_true,
        "p_tumor": np.clip(0.5 * y_true + rng.uniform(0, 0.5, y_true.size), 0.01, 0.99).astype(f32),
        "y_pred": np.array([1, 0, 0, 1, 1, 0, 1, 0, 1, 1, 0, 0]),
        "mask_a": np.pad(np.ones((5, 6), int), ((2, 9), (3, 7))),
        "mask_b": np.pad(np.ones((6, 4), int), ((4, 6), (4, 8))),
        "p": np.array([0.6, 0.3, 0.1], f32),
        "q": np.array([0.4, 0.4, 0.2], f32),
    }


def _layer_checks(d: dict) -> list[Check]:
    import keras

    conv = keras.layers.Conv2D(4, 3, strides=1, padding="valid")
    conv.build(d["image"].shape)
    conv.set_weights([d["kernel"], d["bias4"]])
    pool = keras.layers.MaxPooling2D(pool_size=2, strides=2, padding="valid")
    dense = keras.layers.Dense(3)
    dense.build(d["features"].shape)
    dense.set_weights([d["w_dense"], d["bias3"]])
    tau = np.linspace(-15, 15, 3001)
    return [
        Check("1", "continuous convolution", "closed form N(0,1) * N(0,4) = N(0,5)",
              continuous_convolution(normal_pdf(1.0), normal_pdf(2.0), tau[::100], tau),
              normal_pdf(np.sqrt(5.0))(tau[::100])),
        Check("2", "convolution layer", "keras.layers.Conv2D",
              convolution_layer(d["image"], d["kernel"], d["bias4"]), conv(d["image"])),
        Check("3", "ReLU", "keras.activations.relu",
              relu(d["z"]), keras.activations.relu(d["z"])),
        Check("4", "max pooling", "keras.layers.MaxPooling2D",
              max_pooling(d["image"], 2), pool(d["image"])),
        Check("5", "dense layer", "keras.layers.Dense",
              dense_layer(d["features"], d["w_dense"], d["bias3"]), dense(d["features"])),
    ]


def _training_checks(d: dict) -> list[Check]:
    import keras

    theta, gradient = d["features"][0].copy(), d["features"][1].copy()
    sgd_variable = keras.Variable(theta)
    keras.optimizers.SGD(learning_rate=0.1).apply_gradients([(gradient, sgd_variable)])
    norm = keras.layers.BatchNormalization()
    x, w1, w2 = d["features"], d["w_square_1"], d["w_square_2"]
    residual_input = keras.Input((6,))
    branch = keras.layers.Dense(6, use_bias=False, activation="relu")
    branch_out = keras.layers.Dense(6, use_bias=False)
    block = keras.Model(residual_input,
                        keras.layers.Add()([branch_out(branch(residual_input)), residual_input]))
    branch.set_weights([w1])
    branch_out.set_weights([w2])
    weights = [d["kernel"], d["w_dense"]]
    lam, m = 0.01, 32
    return [
        Check("6", "binary cross-entropy", "keras.losses.BinaryCrossentropy",
              binary_cross_entropy(d["y_true"], d["p_tumor"]),
              keras.losses.BinaryCrossentropy()(d["y_true"].astype("float32"), d["p_tumor"])),
        Check("7", "gradient descent step", "keras.optimizers.SGD",
              gradient_descent_step(theta, gradient, 0.1), sgd_variable.numpy()),
        Check("8", "batch normalisation", "keras.layers.BatchNormalization (training)",
              batch_normalization(x), norm(x, training=True)),
        Check("9-10", "residual block F(x) + x", "keras Dense -> Dense + Add",
              residual_block(x, w1, w2), block(x)),
        Check("11", "sigmoid", "keras.activations.sigmoid",
              sigmoid(d["z"]), keras.activations.sigmoid(d["z"])),
        Check("12", "L2 penalty", "keras.regularizers.L2(lambda / 2m)",
              l2_penalty(weights, lam, m),
              sum(keras.regularizers.L2(lam / (2 * m))(w) for w in weights)),
    ]


def _bayes_and_reconstruction_checks(d: dict) -> list[Check]:
    import keras
    from scipy import stats

    # Tumor share theta of a patient's slices: uniform prior, 12 tumor slices of 30.
    theta = np.linspace(0, 1, 2001)
    tumor, slices = 12, 30
    posterior = posterior_on_grid(np.ones_like(theta),
                                  theta ** tumor * (1 - theta) ** (slices - tumor))
    density = posterior / (theta[1] - theta[0])
    x = d["features"]
    w = np.eye(6, dtype="float32") + 0.1 * d["w_square_1"]
    mse_sum = keras.losses.MeanSquaredError(reduction="sum")(x, x @ w) * x.shape[1]
    return [
        Check("13", "Bayes' rule (Beta-Binomial)", "scipy.stats.beta(1 + 12, 1 + 18)",
              density, stats.beta(1 + tumor, 1 + slices - tumor).pdf(theta)),
        Check("14", "reconstruction term", "keras.losses.MeanSquaredError x columns",
              reconstruction_error(x, w), mse_sum),
    ]


def _segmentation_checks(d: dict) -> list[Check]:
    import keras
    from scipy.spatial.distance import directed_hausdorff

    a, b = d["mask_a"], d["mask_b"]
    iou = keras.metrics.IoU(num_classes=2, target_class_ids=[1])
    iou.update_state(a.ravel(), b.ravel())
    points_a, points_b = np.argwhere(a), np.argwhere(b)
    scipy_hausdorff = max(directed_hausdorff(points_a, points_b)[0],
                          directed_hausdorff(points_b, points_a)[0])
    return [
        Check("15", "Dice", "1 - keras.losses.Dice",
              dice_coefficient(a, b),
              1 - keras.losses.Dice(reduction=None)(a.astype("float32"), b.astype("float32"))),
        Check("16", "IoU", "keras.metrics.IoU",
              intersection_over_union(a, b), iou.result()),
        Check("17", "Hausdorff distance", "scipy.spatial.distance.directed_hausdorff",
              hausdorff_distance(points_a, points_b), scipy_hausdorff),
    ]


def _optimiser_checks(d: dict) -> list[Check]:
    import keras

    theta0 = 0.25 * d["features"][0]
    gradients = d["rng"].normal(size=(5, theta0.size)).astype("float32")
    variable = keras.Variable(theta0)
    adam = keras.optimizers.Adam(learning_rate=0.01)
    keras_m, keras_v, keras_theta = [], [], []
    for gradient in gradients:
        adam.apply_gradients([(gradient, variable)])
        # Keras keeps the moments as optimizer variables named "..._momentum"/"..._velocity".
        moments = {v.path.rsplit("_", 1)[-1]: v.numpy() for v in adam.variables
                   if v.path.endswith(("_momentum", "_velocity"))}
        keras_m.append(moments["momentum"])
        keras_v.append(moments["velocity"])
        keras_theta.append(variable.numpy())
    ours = adam_steps(theta0, gradients, learning_rate=0.01)
    epochs = np.arange(10)
    schedule = keras.optimizers.schedules.InverseTimeDecay(0.001, decay_steps=1, decay_rate=0.5)
    return [
        Check("18", "Adam first moment m", "keras.optimizers.Adam (5 steps)",
              ours.first_moment, np.array(keras_m)),
        Check("19", "Adam second moment v", "keras.optimizers.Adam (5 steps)",
              ours.second_moment, np.array(keras_v)),
        Check("18-19", "Adam parameters", "keras.optimizers.Adam (5 steps)",
              ours.theta, np.array(keras_theta)),
        Check("20", "inverse-time decay", "keras.optimizers.schedules.InverseTimeDecay",
              inverse_time_decay(0.001, 0.5, epochs), [float(schedule(e)) for e in epochs]),
    ]


def _metric_checks(d: dict) -> list[Check]:
    import keras

    y, yhat, p_tumor = d["y_true"], d["y_pred"], d["p_tumor"]
    yf, yhatf = y.astype("float32"), yhat.astype("float32")
    p, q = d["p"], d["q"]
    counts = {name: _keras_metric(metric, yf, yhatf) for name, metric in
              [("tn", keras.metrics.TrueNegatives()), ("fp", keras.metrics.FalsePositives())]}
    f1 = keras.metrics.F1Score(threshold=0.5)
    f1.update_state(yf[:, None], yhatf[:, None])
    return [
        Check("29", "mean squared error", "keras.losses.MeanSquaredError",
              mean_squared_error(y, p_tumor), keras.losses.MeanSquaredError()(yf, p_tumor)),
        Check("30", "accuracy", "keras.metrics.BinaryAccuracy",
              accuracy(y, yhat), _keras_metric(keras.metrics.BinaryAccuracy(), yf, yhatf)),
        Check("31", "precision", "keras.metrics.Precision",
              precision(y, yhat), _keras_metric(keras.metrics.Precision(), yf, yhatf)),
        Check("32", "recall", "keras.metrics.Recall",
              recall(y, yhat), _keras_metric(keras.metrics.Recall(), yf, yhatf)),
        Check("33", "F1 score", "keras.metrics.F1Score",
              f1_score(y, yhat), f1.result()[0]),
        Check("34", "sensitivity", "keras.metrics.Recall",
              sensitivity(y, yhat), _keras_metric(keras.metrics.Recall(), yf, yhatf)),
        Check("35", "specificity", "keras.metrics TrueNegatives, FalsePositives",
              specificity(y, yhat), counts["tn"] / (counts["tn"] + counts["fp"])),
        Check("36", "entropy", "keras.losses.CategoricalCrossentropy(p, p)",
              entropy(p), keras.losses.CategoricalCrossentropy()(p[None], p[None])),
        Check("37", "cross-entropy", "keras.losses.CategoricalCrossentropy(p, q)",
              cross_entropy(p, q), keras.losses.CategoricalCrossentropy()(p[None], q[None])),
        Check("38", "KL divergence", "keras.losses.KLDivergence",
              kl_divergence(p, q), keras.losses.KLDivergence()(p[None], q[None])),
        Check("39", "hinge loss", "keras.losses.Hinge",
              hinge_loss(y, 2 * p_tumor - 1), keras.losses.Hinge()(yf, 2 * p_tumor - 1)),
        Check("40", "mean absolute error", "keras.losses.MeanAbsoluteError",
              mean_absolute_error(y, p_tumor), keras.losses.MeanAbsoluteError()(yf, p_tumor)),
    ]


def _keras_metric(metric, y_true, y_pred) -> float:
    metric.update_state(y_true, y_pred)
    return float(metric.result())


def normal_pdf(sd: float) -> Callable:
    """The normal density with mean 0 and standard deviation `sd`, as a function."""
    return lambda x: np.exp(-0.5 * (np.asarray(x) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))


def equation_checks(seed: int = 0) -> list[Check]:
    """Every equation's numpy value next to its reference's, on fixed inputs."""
    d = _fixed_inputs(seed)
    return (_layer_checks(d) + _training_checks(d) + _bayes_and_reconstruction_checks(d)
            + _segmentation_checks(d) + _optimiser_checks(d) + _metric_checks(d))


def agreement_with_keras(seed: int = 0, tolerance: float = 1e-5) -> pd.DataFrame:
    """One row per equation: the reference it was checked against, the largest absolute
    difference between our numpy value and the reference, and whether it is within
    `tolerance` (Keras computes in float32, about 7 significant digits)."""
    rows = []
    for check in equation_checks(seed):
        ours, theirs = np.asarray(check.ours, float), np.asarray(check.theirs, float)
        if ours.size != theirs.size:
            raise ValueError(f"eq. ({check.equation}) {check.name}: numpy gives shape "
                             f"{ours.shape}, {check.reference} gives {theirs.shape}")
        difference = float(np.max(np.abs(ours.ravel() - theirs.ravel())))
        rows.append({"equation": check.equation, "name": check.name,
                     "reference": check.reference, "max_abs_difference": difference,
                     "agrees": difference <= tolerance})
    return pd.DataFrame(rows)


def difference_bound(difference: float) -> str:
    """A difference as a stable bound for printing ("< 1e-06"), not float noise."""
    for exponent in range(-12, 1):
        if difference < 10.0 ** exponent:
            return f"< 1e{exponent:+03d}"
    return f"{difference:.3g}"


def agreement_summary(table: pd.DataFrame, threshold: float = 1e-6) -> pd.DataFrame:
    """The agreement table for display: differences below `threshold` print as one bound,
    so the printed table does not change with float32 round-off between machines."""
    shown = table.copy()
    shown["max_abs_difference"] = [f"< {threshold:.0e}" if d < threshold else difference_bound(d)
                                   for d in table["max_abs_difference"]]
    return shown.set_index("equation")


# ----------------------------------------------------- why residual connections help

def gradient_norms_plain_vs_residual(depth: int = 30, width: int = 32, seed: int = 0,
                                     batch_size: int = 64,
                                     activation: str = "sigmoid") -> pd.DataFrame:
    """Gradient norm of each layer's weights in a deep plain stack of dense layers, and in
    the same stack (same weights, same batch) with a skip connection around each layer,
    h <- h + f(h) (eq. 9). One row per layer and network: `layer` (1 = nearest the input),
    `network` ("plain" or "residual"), `gradient_norm`. The default sigmoid (eq. 11, slope
    at most 1/4) shows the vanishing gradient of the plain stack most plainly."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    layers = [keras.layers.Dense(width, activation=activation) for _ in range(depth)]
    head = keras.layers.Dense(1)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch_size, width)).astype("float32")
    y = rng.integers(0, 2, size=(batch_size, 1)).astype("float32")
    loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)
    rows = []
    for network in ("plain", "residual"):
        with tf.GradientTape() as tape:
            h = x
            for layer in layers:
                h = layer(h) + h if network == "residual" else layer(h)
            loss = loss_fn(y, head(h))
        gradients = tape.gradient(loss, [layer.kernel for layer in layers])
        rows += [{"layer": i, "network": network, "gradient_norm": float(tf.norm(g))}
                 for i, g in enumerate(gradients, start=1)]
    return pd.DataFrame(rows)
