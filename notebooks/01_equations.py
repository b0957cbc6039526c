# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The paper's equations in code
#
# <a href="https://colab.research.google.com/github/brainlib-study/resnet-lgg-book/blob/main/notebooks/01_equations.ipynb" target="_blank"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
#
# The paper states its method as forty numbered equations: the layers of a convolutional
# network, the loss and the optimiser that train it, the residual block that defines
# ResNet, the overlap measures of segmentation, and the metrics of its results tables.
# This chapter writes each one as a few lines of numpy (in `brainlib.measures.equations`, numbered
# as in the paper) and runs it next to the TensorFlow/Keras operation that the models of
# the later chapters actually use. When the two agree to float32 precision, we know both
# what the formula means and that the library computes that formula.
#
# The chapter ends with the one equation that gives ResNet its name, eq. (9), and a small
# experiment showing why it lets a deep network learn.

# %% tags=["remove-cell"]
# Set-up on Colab only: install brainlib from the repository (Colab keeps its TensorFlow).
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/brainlib-study/resnet-lgg-book@main"], check=True)

# %% tags=["parameters", "remove-cell"]
# Parameters (papermill). profile "auto": the paper's `full` profile on Colab with a GPU,
# the real-data settings when $BRAINLIB_DATA names a kaggle_3m folder, else the phantom
# `default`. overrides: any study parameter (`python -m brainlib params` lists them).
profile = "auto"
overrides = {}

# %% tags=["remove-cell", "nbval-ignore-output"]
# Imported first and hidden from the book: its start-up notices vary from run to run.
import tensorflow as tf  # noqa: F401

# %% tags=["hide-input"]
from pathlib import Path

import numpy as np
import plotly.express as px

from brainlib.measures import equations
from brainlib.study import notebook

P = notebook.start(globals())
eq = equations

# %% [markdown]
# ## Every equation against its reference
#
# `agreement_with_keras` evaluates every equation on small fixed inputs, once with our
# numpy function and once with the reference: a Keras layer, loss, metric or optimiser
# where one exists, otherwise scipy or a closed form. Keras computes in float32 (about
# seven significant digits), so "agrees" means a largest absolute difference below
# $10^{-5}$; differences below $10^{-6}$ print as one bound, so the table reads the same
# on any machine. The sections below show each equation with its rows of this table.

# %% tags=["nbval-check-output"]
agreement = eq.agreement_with_keras(seed=P.seed)
Path(P.run_dir).mkdir(parents=True, exist_ok=True)
agreement.to_csv(Path(P.run_dir) / "equations_agreement.csv", index=False)
shown = eq.agreement_summary(agreement)
print(f"{agreement['agrees'].sum()} of {len(agreement)} checks agree")
notebook.glue_values({"checks": len(agreement),
                      "checks_agree": int(agreement["agrees"].sum())})

# %% [markdown]
# ## Convolution, eqs. (1)-(2)
#
# $$(f * g)(t) = \int_{-\infty}^{\infty} f(\tau)\, g(t - \tau)\, d\tau \tag{1}$$
#
# On a grid of step $\Delta\tau$ the integral becomes a sum,
# $\sum_k f(\tau_k)\, g(t - \tau_k)\, \Delta\tau$. A case with a known answer: the
# convolution of two normal densities with standard deviations 1 and 2 is the normal
# density with variance $1 + 4 = 5$.

# %% tags=["nbval-check-output"]
tau = np.linspace(-15, 15, 3001)
t = np.array([0.0, 1.0, 3.0])
numeric = eq.continuous_convolution(eq.normal_pdf(1.0), eq.normal_pdf(2.0),
                                    t, tau)
exact = eq.normal_pdf(np.sqrt(5.0))(t)
print("Riemann sum :", np.round(numeric, 6))
print("closed form :", np.round(exact, 6))
shown.loc[["1"]]

# %% [markdown]
# A convolution layer slides a small kernel $W^{[l]}$ over the previous layer's feature
# maps $A^{[l-1]}$ and adds a bias:
#
# $$Z^{[l]} = W^{[l]} * A^{[l-1]} + b^{[l]} \tag{2}$$
#
# Deep-learning libraries compute this without flipping the kernel (a cross-correlation,
# not eq. (1) strictly); since the kernel is learned, the flip makes no difference. On
# a 7x7 three-channel image (the three MRI sequences), four 3x3 kernels give four 5x5 maps:

# %% tags=["nbval-check-output"]
rng = np.random.default_rng(P.seed)
image = rng.normal(size=(1, 7, 7, 3))
kernel = rng.normal(scale=0.1, size=(3, 3, 3, 4))
print("feature maps:",
      eq.convolution_layer(image, kernel, bias=np.zeros(4)).shape)
shown.loc[["2"]]

# %% [markdown]
# ## ReLU, max pooling and the dense layer, eqs. (3)-(5)
#
# $$A = \max(0, Z) \tag{3}$$
#
# $$A_{i,j} = \max_{m,n} A_{(m,n)} \tag{4}$$
#
# $$Z = W A + b \tag{5}$$
#
# ReLU keeps positive responses and zeroes the rest; max pooling keeps the strongest
# response in each patch (here 2x2), halving the map's height and width; the dense layer
# of the classification head mixes all features with a weight matrix (for a batch of row
# vectors, `A @ W + b`).

# %% tags=["nbval-check-output"]
print("ReLU of [-2, -0.5, 0, 1.5, 3]:",
      eq.relu(np.array([-2, -0.5, 0, 1.5, 3])))
feature_map = np.arange(16.0).reshape(1, 4, 4, 1)
print("a 4x4 map:\n", feature_map[0, :, :, 0])
print("max pooled 2x2:\n",
      eq.max_pooling(feature_map, pool_size=2)[0, :, :, 0])
shown.loc[["3", "4", "5"]]

# %% [markdown]
# ## Training: loss, gradient descent, batch normalisation, eqs. (6)-(8)
#
# $$L(y, \hat y) = -\frac{1}{m} \sum_{i=1}^{m} \left[y_i \log \hat y_i + (1 - y_i) \log(1 - \hat y_i)\right] \tag{6}$$
#
# $$\theta \leftarrow \theta - \alpha \frac{\partial J}{\partial \theta} \tag{7}$$
#
# $$\hat x = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} \tag{8}$$
#
# The binary cross-entropy punishes a confident wrong answer far more than a hesitant
# one: a tumor slice scored 0.1 costs $-\log 0.1 \approx 2.3$, one scored 0.9 costs
# 0.105. Batch normalisation standardises each feature over the mini-batch ($\mu$,
# $\sigma^2$ of the batch; Keras then rescales by learned $\gamma$, $\beta$).

# %% tags=["nbval-check-output"]
print("BCE, tumor slices scored 0.1 and 0.9:",
      round(eq.binary_cross_entropy([1], [0.1]), 4),
      round(eq.binary_cross_entropy([1], [0.9]), 4))
print("one gradient step from theta = 1, gradient 2, alpha = 0.1:",
      eq.gradient_descent_step(1.0, 2.0, 0.1))
normalised = eq.batch_normalization(rng.normal(5.0, 3.0, size=(64, 2)))
print("after batch norm: means", np.round(normalised.mean(axis=0), 6) + 0,
      "standard deviations", np.round(normalised.std(axis=0), 3))
shown.loc[["6", "7", "8"]]

# %% [markdown]
# ## The residual block, eqs. (9)-(10), and the sigmoid, eq. (11)
#
# $$\text{output} = F(x, \{W_i\}) + x \tag{9}$$
#
# $$F(x, \{W_i\}) = W_2\, \sigma(W_1 x) \tag{10}$$
#
# $$\sigma(z) = \frac{1}{1 + e^{-z}} \tag{11}$$
#
# The block's layers learn only the change $F$ to their input; the input itself passes
# through unchanged. In ResNet the $\sigma$ of eq. (10) is ReLU; the paper reuses the
# letter for the sigmoid of eq. (11), which turns a score into a probability. With zero
# weights the block is exactly the identity, so adding blocks cannot make a network worse
# at the start of training.

# %% tags=["nbval-check-output"]
x = np.array([[1.0, -2.0, 3.0]])
zero = np.zeros((3, 3))
print("residual block with zero weights returns its input:",
      eq.residual_block(x, zero, zero))
print("sigmoid(-4, 0, 4):", np.round(eq.sigmoid([-4.0, 0.0, 4.0]), 4))
shown.loc[["9-10", "11"]]

# %% [markdown]
# ## Regularisation, Bayes' rule and the reconstruction term, eqs. (12)-(14)
#
# $$\frac{\lambda}{2m} \lVert W \rVert_F^2 \tag{12}$$
#
# $$p(\theta \mid D) = \frac{p(D \mid \theta)\, p(\theta)}{p(D)} \tag{13}$$
#
# $$\text{maximize } \lVert XW - X \rVert_F^2 \tag{14}$$
#
# The L2 penalty (Keras: `regularizers.L2` with factor $\lambda / 2m$) pulls weights
# towards zero. Bayes' rule turns a prior and a likelihood into a posterior. Two uses a
# clinician will recognise: (i) a patient's tumor share $\theta$ of slices, with a flat
# prior and 12 tumor slices out of 30, has the posterior Beta(13, 19), which the grid
# version reproduces (table, row 13); (ii) the chance that a slice flagged "tumor" really
# is one depends on how common tumors are, even for a test with 90% sensitivity and 90%
# specificity:

# %% tags=["nbval-check-output"]
for prevalence in (0.35, 0.05):
    ppv = eq.positive_predictive_value(prevalence, sensitivity=0.9,
                                       specificity=0.9)
    print(f"prevalence {prevalence:.0%}: p(tumor | flagged) = {ppv:.3f}")
X = rng.normal(size=(8, 3))
print("||XW - X||^2 for W = I, 2I, 10I:",
      [round(eq.reconstruction_error(X, s * np.eye(3)), 2)
       for s in (1, 2, 10)])
shown.loc[["12", "13", "14"]]

# %% [markdown]
# At the dataset's share of tumor slices most flagged slices are tumors; at 5% prevalence
# most are not, with the same test. As for eq. (14): as
# printed it has no maximum (scaling $W$ makes it grow without bound, as above); the
# reconstruction term is zero at $W = I$ and is the kind of term one *minimises*. The
# paper does not use it in its experiments.
#
# ## Segmentation overlap, eqs. (15)-(17)
#
# $$\text{DSC} = \frac{2 |X \cap Y|}{|X| + |Y|} \tag{15}$$
#
# $$\text{IoU} = \frac{|X \cap Y|}{|X \cup Y|} \tag{16}$$
#
# $$H(X, Y) = \max\big(h(X, Y),\ h(Y, X)\big), \quad h(X, Y) = \max_{x \in X} \min_{y \in Y} \lVert x - y \rVert \tag{17}$$
#
# Dice and IoU measure how much a predicted tumor mask overlaps the radiologist's; they
# always order results the same way (Dice = 2 IoU / (1 + IoU)). The Hausdorff distance is
# the worst boundary miss, in pixels. Two rectangular masks on a 16x16 slice:

# %% tags=["nbval-check-output"]
mask_a = np.pad(np.ones((5, 6), int), ((2, 9), (3, 7)))
mask_b = np.pad(np.ones((6, 4), int), ((4, 6), (4, 8)))
dice, iou = (eq.dice_coefficient(mask_a, mask_b),
             eq.intersection_over_union(mask_a, mask_b))
print(f"Dice {dice:.4f}, IoU {iou:.4f}, "
      f"2 IoU / (1 + IoU) = {2 * iou / (1 + iou):.4f}")
hausdorff = eq.hausdorff_distance(np.argwhere(mask_a), np.argwhere(mask_b))
print(f"Hausdorff distance: {hausdorff:.4f} pixels")
shown.loc[["15", "16", "17"]]

# %% [markdown]
# ## Adam and the learning-rate schedule, eqs. (18)-(20)
#
# $$m \leftarrow \beta_1 m + (1 - \beta_1) \nabla J \tag{18}$$
#
# $$v \leftarrow \beta_2 v + (1 - \beta_2) (\nabla J)^2 \tag{19}$$
#
# $$\alpha = \frac{\alpha_0}{1 + \text{decay rate} \times \text{epoch}} \tag{20}$$
#
# Adam keeps running averages of the gradient ($m$) and of its square ($v$) and steps by
# $m / \sqrt{v}$ (after correcting both for starting at zero), so every weight moves by
# about the learning rate whatever the scale of its gradient. Keras' Adam is checked
# over five steps: the moments and the parameters. Eq. (20) is Keras'
# `InverseTimeDecay` with one decay step per epoch.

# %% tags=["nbval-check-output"]
trace = eq.adam_steps(theta=[0.0, 0.0], gradients=[[1.0, 100.0]] * 3,
                      learning_rate=0.01)
print("Adam parameters after 3 steps, gradients 1 and 100:",
      np.round(trace.theta[-1], 4))
print("learning rate by epoch (alpha0 = 1e-3, decay 0.5):",
      eq.inverse_time_decay(1e-3, 0.5, np.arange(5)).round(6))
shown.loc[["18", "19", "18-19", "20"]]

# %% [markdown]
# ## Metrics and information theory, eqs. (29)-(40)
#
# $$\text{MSE} = \frac{1}{N} \sum_{i=1}^{N} (y_i - \hat y_i)^2 \tag{29}$$
#
# $$\text{Accuracy} = \frac{\text{correctly classified}}{\text{all samples}} \tag{30}$$
#
# $$\text{Precision} = \frac{TP}{TP + FP} \tag{31}$$
#
# $$\text{Recall} = \frac{TP}{TP + FN} \tag{32}$$
#
# $$F_1 = 2 \times \frac{\text{Precision} \times \text{Recall}}{\text{Precision} + \text{Recall}} \tag{33}$$
#
# $$\text{Sensitivity} = \frac{TP}{TP + FN} \tag{34}$$
#
# $$\text{Specificity} = \frac{TN}{TN + FP} \tag{35}$$
#
# Recall (32) and sensitivity (34) are the same formula under two names. Twelve slices
# (1 = tumor), the truth and a classifier's calls:

# %% tags=["nbval-check-output"]
y_true = [1, 0, 1, 1, 0, 0, 1, 0, 0, 1, 0, 0]
y_pred = [1, 0, 0, 1, 1, 0, 1, 0, 1, 1, 0, 0]
print(eq.confusion_counts(y_true, y_pred))
for metric in (eq.accuracy, eq.precision, eq.recall, eq.f1_score,
               eq.sensitivity, eq.specificity):
    print(f"{metric.__name__:12s} {metric(y_true, y_pred):.4f}")
shown.loc[["29", "30", "31", "32", "33", "34", "35"]]

# %% [markdown]
# $$\text{Entropy} = -\sum_{i=1}^{n} p_i \log p_i \tag{36}$$
#
# $$\text{Cross-entropy} = -\sum_{i=1}^{n} p_i \log q_i \tag{37}$$
#
# $$D_{KL}(p \,\|\, q) = \sum_{i=1}^{n} p_i \log \frac{p_i}{q_i} \tag{38}$$
#
# $$\text{Hinge loss} = \max(0,\ 1 - y_i \cdot \hat y_i) \tag{39}$$
#
# $$\text{MAE} = \frac{1}{N} \sum_{i=1}^{N} |y_i - \hat y_i| \tag{40}$$
#
# Cross-entropy is entropy plus the KL divergence: the extra cost of predicting $q$ when
# the truth is $p$. Binary cross-entropy, eq. (6), is eq. (37) with two classes. The hinge
# loss takes labels $\pm 1$ and a score, and is zero once a slice is on the right side
# with a margin of one.

# %% tags=["nbval-check-output"]
p, q = [0.6, 0.3, 0.1], [0.4, 0.4, 0.2]
print(f"entropy {eq.entropy(p):.4f} + KL {eq.kl_divergence(p, q):.4f} "
      f"= cross-entropy {eq.cross_entropy(p, q):.4f}")
print("hinge loss for scores 2, 0.5, -1 of tumor slices:",
      [eq.hinge_loss([1], [score]) for score in (2.0, 0.5, -1.0)])
shown.loc[["36", "37", "38", "39", "40"]]

# %% [markdown]
# ## Why residual connections help
#
# Training moves each weight by the gradient of the loss (eq. 7). In a plain stack of
# layers that gradient reaches the first layers only by passing back through every layer
# above, and each pass multiplies it by the layer's derivative. With the sigmoid of
# eq. (11), whose slope is at most 1/4, the product shrinks geometrically: the first
# layers barely learn (the *vanishing gradient*). A residual block's output is
# $F(x) + x$, so its derivative is $\partial F / \partial x + I$; the identity term gives
# the gradient a direct path back to the first layers.
#
# The experiment: a stack of `depth` dense layers, then the *same* layers (same weights,
# same batch of inputs and labels) with a skip connection around each, $h \leftarrow h +
# f(h)$. We compute the cross-entropy gradient once (no training) and plot the norm of
# each layer's weight gradient.

# %%
depth, width, activation = 20, 32, "sigmoid"
norms = eq.gradient_norms_plain_vs_residual(
    depth=depth, width=width, seed=P.seed, activation=activation)
fig = px.line(norms, x="layer", y="gradient_norm", color="network",
              log_y=True, markers=True,
              title=f"Gradient norm per layer, {depth} {activation} layers: "
                    "plain vs residual",
              labels={"layer": "layer (1 = nearest the input)",
                      "gradient_norm": "weight gradient norm (log scale)"})
fig.show()

# %%
by_network = norms.pivot(index="layer", columns="network",
                         values="gradient_norm")
spans = by_network.max() / by_network.min()  # widest gap between layers
notebook.glue_values({"depth": depth, "activation": activation,
                      "plain_span": spans["plain"],
                      "residual_span": spans["residual"]})
by_network.loc[[1, 2, depth // 2, depth - 1, depth]].map(
    lambda norm: f"{norm:.1e}")

# %% tags=["nbval-check-output"]
last_over_first = by_network.loc[depth] / by_network.loc[1]
print("plain stack: first layer's gradient under a millionth of "
      "the last layer's:",
      bool(last_over_first["plain"] > 1e6))
print("residual stack: every layer's gradient within a factor 100 of "
      "every other's:",
      bool(spans["residual"] < 100))

# %% [markdown]
# In the plain stack the first layer's gradient is many orders of magnitude smaller than
# the last layer's, so with one learning rate the first layers stay where they started.
# With skip connections the gradients of all layers stay within about an order of
# magnitude of each other. With ReLU instead of the sigmoid (`activation = "relu"`) the
# plain stack's signal dies in both directions, and the unnormalised residual sum grows
# with depth instead; real ResNets put batch normalisation (eq. 8) inside each block to
# keep it in range. This identity path is what let He et al. train networks of 50 layers
# and more, such as the paper's ResNet50, where plain networks like VGG16 stop at 16-19.

# %% [markdown]
# ## Recap
#
# - {glue:text}`checks_agree` of {glue:text}`checks` checks agree: each equation, written as
#   a short numpy function, gives its Keras, scipy or closed-form reference's numbers to
#   within $10^{-5}$. Where the later chapters use a second, library version of a formula
#   (the confusion counts, the Hausdorff distance), a test holds it to these numbers.
# - In a plain stack of {glue:text}`depth` {glue:text}`activation` layers the layers'
#   gradient norms span a factor of {glue:text}`plain_span:.1e`; with a skip connection
#   around each layer, a factor of {glue:text}`residual_span:.1f`. That identity path is
#   what ResNet50's residual blocks add to a plain stack such as VGG16.
