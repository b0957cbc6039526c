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
# # Models: the paper's Table I, rebuilt
#
# <a href="https://colab.research.google.com/github/brainlib-study/resnet-lgg-book/blob/main/notebooks/03_models.ipynb" target="_blank"><img src="https://colab.research.google.com/assets/colab-badge.svg" alt="Open In Colab"/></a>
#
# The paper takes ResNet50 {cite}`he2016` and VGG16 {cite}`simonyan2015`, pretrained on
# ImageNet, removes their classification tops, freezes every base layer, and trains a new
# head (its Table I): a 2x2 grid of pooled features, flattened, then dense layers of 256,
# 256 and 128 units with dropout 0.3, and a two-way softmax. This chapter builds both
# classifiers with `brainlib.models` and checks the table's parameter counts against the
# built model, layer by layer.

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
import pandas as pd
import plotly.express as px

import brainlib as bl
from brainlib.study import notebook

P = notebook.start(globals())
# the paper's input; the run trains at P.image_size (last section)
input_size = 256

# %% [markdown]
# ## ResNet50 with the paper's head
#
# The table below is read from the built Keras model (weights are not needed to count
# parameters, so nothing is downloaded). The base's output at 256x256 is an 8x8x2048 map;
# the paper's table lists (2, 2, 2048) for it, which implies an average pooling of 4x4
# before Flatten that the table does not show. With that layer every count matches.

# %% tags=["nbval-check-output"]
resnet = bl.models.summarize_model("resnet50", input_size)
resnet.layers

# %% tags=["nbval-check-output"]
paper_table_i = {"total": 25_784_066, "trainable": 2_196_354,
                 "non_trainable": 23_587_712}
counts = pd.DataFrame({
    "paper (Table I)": paper_table_i,
    "built model": {"total": resnet.counts.total,
                    "trainable": resnet.counts.trainable,
                    "non_trainable": resnet.counts.non_trainable},
})
counts["equal"] = counts["paper (Table I)"] == counts["built model"]
notebook.glue_value("table_i_equal", int(counts["equal"].sum()))
counts

# %% [markdown]
# ## VGG16 with the same head
#
# The paper gives VGG16 "the same treatment" but no table. Built the same way, its base
# ends in an 8x8x512 map at 256x256, so the head's first dense layer sees a quarter of
# ResNet50's features and has a quarter of its weights.

# %% tags=["nbval-check-output"]
vgg = bl.models.summarize_model("vgg16", input_size)
for prefix, summary in (("resnet", resnet), ("vgg", vgg)):
    notebook.glue_value(f"{prefix}_trainable",
                           summary.counts.trainable / 1e6)
    notebook.glue_value(f"{prefix}_frozen",
                           summary.counts.non_trainable / 1e6)
vgg.layers

# %% [markdown]
# ## Trainable and frozen parameters (the paper's Figs. 9-10)
#
# With the base frozen, only the head learns: {glue:text}`resnet_trainable:.2f` million
# parameters for ResNet50 against {glue:text}`resnet_frozen:.2f` million fixed ones
# ({glue:text}`vgg_trainable:.2f` and {glue:text}`vgg_frozen:.2f` million for VGG16).

# %% tags=["nbval-check-output"]
parameters = pd.DataFrame([
    {"model": name, "kind": kind,
     "parameters": getattr(summary.counts, kind)}
    for name, summary in (("ResNet50", resnet), ("VGG16", vgg))
    for kind in ("trainable", "non_trainable")
])
parameters.pivot(index="model", columns="kind", values="parameters")

# %%
fig = px.bar(parameters, x="model", y="parameters", color="kind",
             barmode="group", log_y=True,
             title="Trainable vs frozen parameters at "
                   f"{input_size}x{input_size}")
fig.show()

# %% [markdown]
# ## Other input sizes
#
# Training at 256x256 on a CPU is slow (the frozen ResNet50 base alone runs about 30
# images per second on two cores), so the book's quick profiles use smaller inputs. The
# head keeps the paper's 2x2 grid at any size the base supports, by deriving the pooling
# size from the base's feature map, so its parameter counts stay those of Table I.

# %% tags=["nbval-check-output"]
sizes = sorted({64, 128, 256, P.image_size})
by_size = pd.DataFrame([
    {"input": f"{size}x{size}", "model": name,
     "head_trainable": (bl.models.summarize_model(name, size)
                        .counts.trainable)}
    for name in ("resnet50", "vgg16") for size in sizes
])
one_count = by_size.groupby("model")["head_trainable"].nunique().eq(1)
notebook.glue_value("sizes_line", "keep one trainable count per network"
                    if one_count.all() else "change their trainable counts")
by_size

# %% [markdown]
# ## Recap
#
# - Built in Keras with the paper's head, ResNet50 matches {glue:text}`table_i_equal` of
#   the 3 parameter counts of Table I once the 4x4 average pooling the table implies is
#   added: {glue:text}`resnet_trainable:.2f` million trainable parameters on a frozen base of
#   {glue:text}`resnet_frozen:.2f` million.
# - VGG16 with the same head trains {glue:text}`vgg_trainable:.2f` million parameters on a
#   frozen base of {glue:text}`vgg_frozen:.2f` million: the two networks differ in their
#   bases, not in what is trained.
# - Across the input sizes of the last table the heads {glue:text}`sizes_line`: where the
#   count stays, a smaller input changes the cost of a run, not the head being trained.
