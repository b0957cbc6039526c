"""Chapter 8's analyses: calibration before and after temperature scaling, the referral
curve, uncertainty as an error flag, and Grad-CAM scored against the masks; every interval
resamples whole patients (`stats.patient_bootstrap`), every model on the same slices.

Read from the predictions table with the uncertainty columns (`study.run_trust_analyses`)
and the classifiers' Grad-CAM scores.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..trust import calibration
from .. import stats
from ..measures.metrics import roc_auc
from ..config.params import SEGMENTER
from .report import interval_text, main_predictions

N_BINS = 10
RESAMPLES = 1000
REFERRED = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
# Uncertainty measures (larger = less sure): MC dropout (classifiers) or test-time
# augmentation (U-Net) predictive entropy and mutual information, and the margin to the
# unit's own threshold (deterministic, the same for every model).
MEASURES = ("entropy", "mutual_information", "margin")
PROBABILITIES = {"as trained": "p_tumor", "temperature-scaled": "p_calibrated"}
RIM = "maxima on the head's rim"


def trust_predictions(predictions: pd.DataFrame, models) -> pd.DataFrame:
    """The main experiment's rows of `models`, with the uncertainty columns checked."""
    rows = main_predictions(predictions)
    rows = rows[rows["model"].isin(list(models))]
    missing = [c for c in (*MEASURES, "p_calibrated", "temperature") if c not in rows.columns]
    if missing or rows[list(MEASURES)].isna().any().any():
        raise ValueError(f"the predictions lack uncertainty columns {missing or list(MEASURES)}: "
                         "run study.run_trust_analyses first")
    return rows


def has_temperature(rows: pd.DataFrame) -> bool:
    """Whether temperatures were fitted (not under the paper's protocol: no inner validation)."""
    return bool(rows["p_calibrated"].notna().all())


# ----------------------------------------------------------------------------- calibration

def calibration_table(rows: pd.DataFrame, models, seed: int = 0) -> pd.DataFrame:
    """Per model and probability (as trained, temperature-scaled): ECE with its patient
    interval, Brier score and Murphy's decomposition, and the folds' temperatures."""
    records = []
    for model in models:
        own = rows[rows["model"] == model]
        for label, column in PROBABILITIES.items():
            if own[column].isna().any():
                continue
            ece, low, high = calibration.ece_interval(own.assign(p_tumor=own[column]), N_BINS,
                                                      RESAMPLES, seed=seed)
            parts = calibration.brier_decomposition(own["y_true"], own[column], N_BINS)
            temperatures = own.groupby("fold")["temperature"].first()
            at_bound = int(sum(np.isclose(t, calibration.TEMPERATURE_BOUNDS, rtol=1e-3).any()
                               for t in temperatures))
            records.append({"model": model, "probability": label, "ECE": ece,
                            "ECE low": low, "ECE high": high, **parts,
                            "temperature": "" if column == "p_tumor" else
                            temperature_range(temperatures),
                            "fits at a bound": 0 if column == "p_tumor" else at_bound})
    return pd.DataFrame(records)


def temperature_range(temperatures) -> str:
    """The fitted temperatures as "low-high" across folds, or one value for one fit."""
    low, high = float(np.min(temperatures)), float(np.max(temperatures))
    return f"{low:.2f}" if len(temperatures) == 1 else f"{low:.2f}-{high:.2f}"


def reliability_bands(rows: pd.DataFrame, models, seed: int = 0) -> pd.DataFrame:
    """Per model, probability and bin: mean probability, observed tumor rate and its 95%
    patient-bootstrap band (percentile; a bin empty in a resample is left out of it)."""
    records = []
    for model in models:
        own = rows[rows["model"] == model].reset_index(drop=True)
        draws = stats.patient_resamples(own, RESAMPLES, seed)
        for label, column in PROBABILITIES.items():
            if own[column].isna().any():
                continue
            p, y = own[column].to_numpy(), own["y_true"].to_numpy()
            bins = calibration.bin_index(p, N_BINS)
            sums = np.array([np.bincount(bins[d], weights=y[d], minlength=N_BINS) for d in draws])
            counts = np.array([np.bincount(bins[d], minlength=N_BINS) for d in draws])
            with np.errstate(invalid="ignore", divide="ignore"):
                rates = np.where(counts > 0, sums / counts, np.nan)
            table = calibration.reliability_table(y, p, N_BINS)
            for _, row in table.iterrows():
                band = rates[:, int(row["bin"])]
                band = band[~np.isnan(band)]
                records.append({"model": model, "probability": label, "bin": int(row["bin"]),
                                "slices": int(row["slices"]),
                                "mean_probability": row["mean_probability"],
                                "observed_rate": row["observed_rate"],
                                "band_low": np.percentile(band, 2.5),
                                "band_high": np.percentile(band, 97.5)})
    return pd.DataFrame(records)


def reliability_figure(bands: pd.DataFrame, title: str):
    """One panel per model: observed tumor rate against mean probability per bin, with
    its patient band, as trained and temperature-scaled; the diagonal is perfect."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    models = list(dict.fromkeys(bands["model"]))
    fig = make_subplots(rows=1, cols=len(models), subplot_titles=models, shared_yaxes=True)
    colours = {"as trained": "rgb(31,119,180)", "temperature-scaled": "rgb(214,39,40)"}
    for column, model in enumerate(models, start=1):
        fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", showlegend=False,
                                 line=dict(color="grey", dash="dot")), row=1, col=column)
        for label, colour in colours.items():
            part = bands[(bands["model"] == model) & (bands["probability"] == label)]
            if part.empty:
                continue
            fig.add_trace(go.Scatter(
                x=part["mean_probability"], y=part["observed_rate"], mode="lines+markers",
                name=label, legendgroup=label, showlegend=column == 1, line=dict(color=colour),
                error_y=dict(type="data", symmetric=False,
                             array=part["band_high"] - part["observed_rate"],
                             arrayminus=part["observed_rate"] - part["band_low"]),
                customdata=part[["slices"]], hovertemplate="%{customdata[0]} slices"),
                row=1, col=column)
        fig.update_xaxes(title_text="mean p_tumor in the bin", range=[0, 1], row=1, col=column)
    fig.update_yaxes(title_text="observed tumor rate", range=[-0.02, 1.02], row=1, col=1)
    fig.update_layout(title=title, height=420, margin=dict(t=90))
    return fig


# ----------------------------------------------------------------------------- referral



def referral_table(rows: pd.DataFrame, models, fractions=REFERRED, seed: int = 0) -> pd.DataFrame:
    """Per model, measure and share referred: accuracy and AUC on the slices kept, with
    95% patient-bootstrap percentile intervals (the referral redone in every resample)."""
    records = []
    for model in models:
        own = rows[rows["model"] == model].reset_index(drop=True)
        draws = stats.patient_resamples(own, RESAMPLES, seed)
        y, p = calibration._checked(own["y_true"], own["p_tumor"])
        calls = own["y_pred"].to_numpy().astype(bool)  # each unit's own threshold
        for measure in MEASURES:
            flags = own[measure].to_numpy(dtype=np.float64)
            estimate = calibration.referral_points(y, p, calls, flags, fractions)
            resampled = np.array([calibration.referral_points(y[d], p[d], calls[d], flags[d],
                                                              fractions) for d in draws])
            low = np.nanpercentile(resampled, 2.5, axis=0)
            high = np.nanpercentile(resampled, 97.5, axis=0)
            for index, fraction in enumerate(fractions):
                records.append({"model": model, "measure": measure, "referred": fraction,
                                "accuracy": estimate[index, 0], "accuracy low": low[index, 0],
                                "accuracy high": high[index, 0], "AUC": estimate[index, 1],
                                "AUC low": low[index, 1], "AUC high": high[index, 1]})
    return pd.DataFrame(records)


def referral_figure(table: pd.DataFrame, title: str, metric: str = "accuracy"):
    """`metric` ("accuracy" or "AUC") on the kept slices against the share referred, per
    model and measure, with the patient intervals."""
    import plotly.express as px

    fig = px.line(table, x="referred", y=metric, color="model", facet_col="measure",
                  markers=True, error_y=table[f"{metric} high"] - table[metric],
                  error_y_minus=table[metric] - table[f"{metric} low"], title=title)
    fig.update_xaxes(tickformat=".0%", title_text="share referred")
    fig.update_layout(margin=dict(t=90))
    return fig


def referral_summary(table: pd.DataFrame, fractions=(0.1, 0.2)) -> pd.DataFrame:
    """The referral table at a few shares, one text cell per model and measure."""
    part = table[table["referred"].round(6).isin([round(f, 6) for f in (0.0, *fractions)])]
    out = part.assign(cell=[interval_text(r["accuracy"], r["accuracy low"], r["accuracy high"])
                            for _, r in part.iterrows()])
    return out.pivot_table(index=["model", "measure"], columns="referred", values="cell",
                           aggfunc="first").rename(columns=lambda f: f"accuracy, {f:.0%} referred")


def error_detection_table(rows: pd.DataFrame, models, seed: int = 0) -> pd.DataFrame:
    """Per model and measure: AUROC of the measure as a flag of the model's own errors
    (each unit's threshold), with a patient-bootstrap interval; 0.5 is chance."""
    records = []
    for model in models:
        own = rows[rows["model"] == model].reset_index(drop=True)
        for measure in MEASURES:
            def flag_auc(part):
                wrong = (part["y_pred"] != part["y_true"]).to_numpy().astype(int)
                if wrong.min() == wrong.max():
                    return np.nan
                return roc_auc(wrong, part[measure].to_numpy())
            estimate, low, high = stats.patient_bootstrap(own, flag_auc, RESAMPLES, seed=seed)
            records.append({"model": model, "measure": measure,
                            "errors": int((own["y_pred"] != own["y_true"]).sum()),
                            "slices": len(own), "AUROC": estimate, "low": low, "high": high})
    return pd.DataFrame(records)


# ----------------------------------------------------------------------------- Grad-CAM

def gradcam_table(scores: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Per model: the pointing-game rate and the energy inside the tumor over the test
    folds' tumor slices, each with a patient interval, beside what a heatmap that knows
    nothing would score (the tumor's share of the brain)."""
    records = []
    for model, own in scores.groupby("model", sort=False):
        own = own.reset_index(drop=True)
        row = {"model": model, "tumor slices": len(own), "patients": own["patient_id"].nunique(),
               "empty heatmaps": int(own["empty_map"].sum()),
               RIM: f"{own['peak_on_rim'].mean():.1%}"}
        for column, label in (("pointing", "pointing game"), ("energy_inside", "energy inside"),
                              ("baseline", "random-heatmap baseline")):
            estimate, low, high = stats.patient_bootstrap(
                own, lambda part, c=column: float(part[c].mean()), RESAMPLES, seed=seed)
            row[label] = interval_text(estimate, low, high)
            row[f"{label} value"] = estimate
        # paired, slice by slice and resampled by patient: is the heatmap better than none?
        estimate, low, high = stats.patient_bootstrap(
            own, lambda part: float((part["pointing"] - part["baseline"]).mean()),
            RESAMPLES, seed=seed)
        row.update({"pointing - baseline value": estimate, "pointing - baseline low": low,
                    "pointing - baseline high": high})
        records.append(row)
    return pd.DataFrame(records)


def beyond_baseline(row) -> str:
    """Where the paired interval of pointing minus baseline lies: "above", "below", or
    "cannot be told from" (it holds 0)."""
    low, high = row["pointing - baseline low"], row["pointing - baseline high"]
    return "above" if low > 0 else "below" if high < 0 else "cannot be told from"


def gradcam_patients(scores: pd.DataFrame) -> pd.DataFrame:
    """Per model and patient: tumor slices, pointing rate, energy inside, baseline."""
    return (scores.groupby(["model", "patient_id"])
            .agg(tumor_slices=("pointing", "size"), pointing=("pointing", "mean"),
                 energy_inside=("energy_inside", "mean"), baseline=("baseline", "mean"))
            .reset_index())


def gradcam_sentences(table: pd.DataFrame, heatmap_cells: dict[str, int]) -> list[str]:
    """What the Grad-CAM table says, model by model, against the random baseline."""
    out = []
    for _, row in table.iterrows():
        pointing, baseline = row["pointing game value"], row["random-heatmap baseline value"]
        side = beyond_baseline(row)
        cells = heatmap_cells.get(row["model"])
        out.append(f"{row['model']}: its heatmap's maximum falls inside the tumor on "
                   f"{pointing:.1%} of {row['tumor slices']} tumor slices, which "
                   f"{'is ' if side != 'cannot be told from' else ''}{side} the "
                   f"{baseline:.1%} a heatmap that knows nothing would score (difference "
                   f"{row['pointing - baseline value']:+.1%}, 95% interval "
                   f"{row['pointing - baseline low']:+.1%} to "
                   f"{row['pointing - baseline high']:+.1%}, patients resampled); "
                   f"{row['energy inside value']:.1%} of its heatmap's mass lies inside the tumor"
                   + (f" (heatmaps of {cells}x{cells} cells, resized to the image)"
                      if cells else "") + f"; {row[RIM]} of its maxima lie on "
                   "the head's outer rim.")
    return out


# ----------------------------------------------------------------------------- sentences

def recap_values(calibration: pd.DataFrame, errors: pd.DataFrame,
                 gradcam: pd.DataFrame) -> dict:
    """The counts chapter 08's recap quotes: of the models with a fitted temperature, how
    many it brought a lower ECE; how many models have a measure whose error-detection AUROC
    interval lies above chance; how many classifiers' heatmaps point into the tumor more
    often than a heatmap that knows nothing (the paired interval above 0)."""
    scaled = calibration[calibration["probability"] == "temperature-scaled"]
    trained = calibration[calibration["probability"] == "as trained"].set_index("model")["ECE"]
    lowered = int((scaled.set_index("model")["ECE"] < trained.reindex(scaled["model"])).sum())
    flagging = errors.groupby("model")["low"].max().gt(0.5)
    pointing = gradcam["pointing - baseline low"] > 0  # the paired interval above 0
    return {"n_scaled": len(scaled), "scaling_lowered": lowered,
            "n_flagged_models": len(flagging), "flagging_models": int(flagging.sum()),
            "n_heatmap_models": len(gradcam), "pointing_models": int(pointing.sum())}


def at_interval_edge(estimate: float, low: float, high: float, share: float = 0.05) -> bool:
    """Whether an estimate lies outside its interval or within ``share`` of its width from
    an end: the mark of a biased statistic's percentile interval (ECE is never negative and
    a resample's noise adds to it, so resampled ECEs sit above the estimate)."""
    if not (np.isfinite(estimate) and np.isfinite(low) and np.isfinite(high)):
        return False
    margin = share * (high - low)
    return bool(estimate <= low + margin or estimate >= high - margin)


EDGE_NOTE = ("the estimate sits at the edge of its interval: ECE is biased upward, because "
             "a resample's noise only adds to the bins' gaps, so its percentile interval "
             "lies lopsided above it; read the interval as a rough range, not a centred one")


def calibration_sentences(table: pd.DataFrame) -> list[str]:
    """Per model: ECE as trained and temperature-scaled, and whether scaling helped; an
    estimate at its interval's edge is said to be (``at_interval_edge``)."""
    out = []
    for model, own in table.groupby("model", sort=False):
        trained = own[own["probability"] == "as trained"].iloc[0]
        text = (f"{model}: ECE {interval_text(trained['ECE'], trained['ECE low'], trained['ECE high'])}"
                f" as trained")
        edges = [label for label, row in own.set_index("probability").iterrows()
                 if at_interval_edge(row["ECE"], row["ECE low"], row["ECE high"])]
        scaled = own[own["probability"] == "temperature-scaled"]
        if len(scaled):
            scaled = scaled.iloc[0]
            change = "lowered" if scaled["ECE"] < trained["ECE"] else "raised"
            fitted = scaled["temperature"]
            one_fit = "-" not in fitted
            where = f"T = {fitted}" if one_fit else f"T {fitted} across folds"
            within = scaled["ECE low"] <= trained["ECE"] <= scaled["ECE high"]
            brier = (f"left the Brier score at {trained['brier']:.3f}"
                     if f"{trained['brier']:.3f}" == f"{scaled['brier']:.3f}" else
                     f"took the Brier score from {trained['brier']:.3f} to "
                     f"{scaled['brier']:.3f}")
            text += (f"; temperature scaling ({where}) "
                     f"{change} it to {interval_text(scaled['ECE'], scaled['ECE low'], scaled['ECE high'])}"
                     + (" (a change inside that interval, so within resampling noise)"
                        if within else "") + f" and {brier}")
            if scaled["fits at a bound"]:
                low, high = calibration.TEMPERATURE_BOUNDS
                which = ("The fitted T" if one_fit else
                         f"In {scaled['fits at a bound']} fold(s) the fitted T")
                text += (f". {which} reached the end "
                         f"of its search range ({low:g} to {high:g}): those inner-validation "
                         "patients gave the fit no usable signal")
        if edges:
            text += f". For the ECE {' and '.join(edges)}, {EDGE_NOTE}"
        out.append(text + ".")
    return out


def referral_sentences(referral: pd.DataFrame, errors: pd.DataFrame) -> list[str]:
    """Per model: the measure with the highest error-detection AUROC and what referring by
    it does, each measure's verdict read from its interval against chance (0.5): above
    chance, below it (its least sure slices are more often right than its sure ones), or
    not told from it. A measure is called the one that "flags errors best" only when its
    interval lies above chance."""
    out = []
    for model, own in errors.groupby("model", sort=False):
        best = own.sort_values("AUROC", ascending=False).iloc[0]
        curve = referral[(referral["model"] == model) & (referral["measure"] == best["measure"])]
        at = {round(r["referred"], 6): r for _, r in curve.iterrows()}
        auroc = interval_text(best["AUROC"], best["low"], best["high"])
        if best["low"] > 0.5:
            head = f"{model}: {best['measure']} flags its errors best (AUROC {auroc})"
        else:
            head = (f"{model}: no measure flags its errors better than chance; the highest "
                    f"AUROC is {best['measure']}'s ({auroc})")
        text = (f"{head}; referring the 10% and 20% least sure slices by it moves accuracy "
                f"from {at[0.0]['accuracy']:.3f} to {at[0.1]['accuracy']:.3f} and "
                f"{at[0.2]['accuracy']:.3f}")
        others = own[own["measure"] != best["measure"]]
        below = others[others["high"] < 0.5]["measure"].tolist()
        chance = others[(others["low"] <= 0.5) & (others["high"] >= 0.5)]["measure"].tolist()
        if below:
            text += (f"; {' and '.join(below)} {'is' if len(below) == 1 else 'are'} below "
                     "chance at flagging errors (AUROC interval under 0.5: its least sure "
                     "slices are more often right than its surest)")
        if chance:
            text += f"; {' and '.join(chance)} cannot be told from chance at flagging errors"
        out.append(text + ".")
    return out


# ----------------------------------------------------------------------------- figures

def heatmap_cells(params, models) -> dict[str, int]:
    """Per classifier: the side of its Grad-CAM map in cells (the base's output grid)."""
    from .. import models as architectures

    return {name: int(architectures.build_base(name, params.image_size, None).output.shape[1])
            for name in models}


def _heat(values) -> np.ndarray:
    """0-1 values -> RGB uint8 (black, red, yellow)."""
    v = np.clip(np.asarray(values, dtype=np.float32), 0, 1)
    return (np.stack([np.minimum(1, 2 * v), np.clip(2 * v - 1, 0, 1), np.zeros_like(v)], -1)
            * 255).astype(np.uint8)


def _outline(mask) -> np.ndarray:
    from scipy import ndimage

    mask = np.asarray(mask, dtype=bool)
    return mask & ~ndimage.binary_erosion(mask)


TITLE_LINE_CHARACTERS = 64
"""The longest figure-title line that fits the book's figure width (about 640 px)."""


def _tiles_figure(tiles, names, title: str):
    """Image tiles side by side, each named in the title: two names a line, or one where
    two would not fit the figure's width (real patient IDs are 21 characters)."""
    import plotly.express as px

    lines = [" | ".join(names[start:start + 2]) for start in range(0, len(names), 2)]
    if max(map(len, lines), default=0) > TITLE_LINE_CHARACTERS:
        lines = list(names)
    fig = px.imshow(np.concatenate(tiles, axis=1), title="<br>".join([title, *lines]))
    fig.update_xaxes(showticklabels=False).update_yaxes(showticklabels=False)
    fig.update_layout(margin=dict(t=60 + 22 * len(lines), b=10),
                      height=140 + 22 * len(lines) + int(640 / len(tiles)))
    return fig


def _largest_tumor_row(manifest: pd.DataFrame, saved_rows, patient: str) -> int:
    rows = manifest.loc[np.asarray(saved_rows)]
    own = rows[rows["patient_id"] == patient]
    return int(own["tumor_pixels"].idxmax()) if len(own) else -1


def uncertainty_overlay_figure(params, manifest: pd.DataFrame, patients, title: str):
    """Per patient, at its slice with the largest tumor: the slice with the true (red) and
    predicted (blue) masks, and the U-Net's pixel entropy over its views (black 0, yellow ln 2)."""
    from ..data import eda, pipeline
    from ..training import masks, unit_models
    from ..trust import uncertainty

    manifest = manifest.reset_index(drop=True)
    units = unit_models.main_units(params, SEGMENTER, manifest)
    tiles, names = [], []
    for patient in patients:
        for unit in units:
            maps = uncertainty.read_unit_maps(unit.folder)
            position = _largest_tumor_row(manifest, maps["row"], patient)
            if position < 0:
                continue
            index = int(np.flatnonzero(maps["row"] == position)[0])
            saved = masks.read_unit_masks(unit.folder / "masks.npz")
            predicted = saved["logits"][int(np.flatnonzero(saved["row"] == position)[0])] > 0
            row = manifest.loc[[position]]
            image = pipeline.load_images(row, params.unet_image_size)[0]
            true = pipeline.load_masks(row, params.unet_image_size)[0] > 0
            tile = eda.overlay(eda.overlay(image, true, color=(255, 40, 40)), predicted,
                               color=(40, 90, 255))
            entropy = maps["entropy"][index].astype(np.float32) / np.log(2)
            tiles.append(np.concatenate([tile, _heat(entropy)], axis=1))
            names.append(f"{patient}, slice {row['slice_number'].iloc[0]}")
            break
    return _tiles_figure(tiles, names, title)


def heatmap_overlay_figure(params, manifest: pd.DataFrame, per_patient: pd.DataFrame, title: str):
    """Per classifier, its best and worst patient by energy inside the tumor: the slice with
    the largest tumor, the heatmap blended on it and the true mask's outline in red."""
    from ..trust import gradcam
    from ..data import pipeline
    from ..training import unit_models

    manifest = manifest.reset_index(drop=True)
    tiles, names = [], []
    for model, own in per_patient.groupby("model", sort=False):
        ranked = own.sort_values("energy_inside")
        units = unit_models.main_units(params, model, manifest)
        for label, patient in (("best", ranked["patient_id"].iloc[-1]),
                               ("worst", ranked["patient_id"].iloc[0])):
            for unit in units:
                saved = gradcam.read_heatmaps(unit.folder)
                position = _largest_tumor_row(manifest, saved["row"], patient)
                if position < 0:
                    continue
                heatmap = saved["heatmaps"][int(np.flatnonzero(saved["row"] == position)[0])]
                row = manifest.loc[[position]]
                image = pipeline.load_images(row, params.image_size)[0].astype(np.float32)
                blended = (0.55 * image + 0.45 * _heat(heatmap.astype(np.float32))).astype(np.uint8)
                blended[_outline(pipeline.load_masks(row, params.image_size)[0] > 0)] = (255, 40, 40)
                tiles.append(blended)
                names.append(f"{model} {label}: {patient}")
                break
    return _tiles_figure(tiles, names, title)
