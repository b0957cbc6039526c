"""A run card: what a run is (data, weights, sizes, folds, protocol) and what it can test.

Computed from the run's parameters and manifest before any training, so it says nothing
about results. A chapter shows it with `display(Markdown(bl.chapters.runcard.run_card(params,
manifest).markdown()))`; the introduction takes its one sentence on reproduction from
`intro_claim()`, which says "repeats the paper's setting" only when no setting differs.

`PAPER_SETTING` holds only values that PAPER.md (the study's page of the paper's facts)
states; where each comes from there:
- dataset "REAL", n_patients 110, n_slices 3929: "Data (section 3.A-C)": the Kaggle LGG
  set `kaggle_3m`, "110 TCGA patients", "3929 slices";
- image_size 256: "Data": "resize to 256x256x3"; Table I's input (None, 256, 256, 3);
- weights "ImageNet": "Model (section 3.D)": "ImageNet ResNet50 ..., all base layers frozen";
- models ResNet50 and VGG16: the Claim compares them; "VGG16 gets the same treatment";
- standardize_features off: Table I has no layer between the base and the head but pooling;
- n_folds 8 (every fold trained), epochs 20: "Model": "8 fold and 20 epochs";
- augment on: "Data": "Augmentation with Keras: rotation and scaling".
PAPER.md gives no learning rate (only "Adam optimiser") and no epoch selection or
threshold: `UNSTATED_BY_PAPER` holds the values the `full` profile fills those gaps with,
and the card names them as the profile's, not the paper's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import PurePath

import pandas as pd

from ..config.params import CLASSIFIERS, DISPLAY_NAMES
from ..measures.results import Result

PAPER_SETTING = {                # sources: the module docstring
    "dataset": "REAL",
    "n_patients": 110,
    "n_slices": 3929,
    "weights": "ImageNet",
    "models": ("resnet50", "vgg16"),
    "image_size": 256,
    "standardize_features": False,
    "n_folds": 8,                # and every one of them trained
    "epochs": 20,
    "augment": True,
}
UNSTATED_BY_PAPER = {            # the `full` profile's reading of what the paper leaves open
    "learning_rate": 1e-4,       # Adam's rate
    "protocol": "paper",         # last epoch; threshold 0.5 = argmax of the 2-way softmax
}

PROTOCOL_WORDS = {
    "validated": "validated: inner validation patients pick the epoch and the threshold",
    "paper": "paper: last epoch, threshold 0.5",
}
RANDOM_WEIGHTS = "random (no pretrained weights)"


def weights_in_words(weights: str) -> str:
    """'ImageNet', 'random (no pretrained weights)' or 'file <name>' for a `weights` value."""
    if weights.lower() in ("none", ""):
        return RANDOM_WEIGHTS
    if weights == "imagenet":
        return "ImageNet"
    return f"file {PurePath(weights).name}"


@dataclass(frozen=True)
class RunCard(Result):
    """What a run is and what it can test; every field is read from the parameters or
    counted in the manifest."""

    profile: str
    dataset: str                 # "PHANTOM" or "REAL"
    data_source: str
    n_patients: int
    n_slices: int
    n_tumor_slices: int
    institutions: tuple[str, ...]
    models: tuple[str, ...]
    weights: str                 # in words: see `weights_in_words`
    image_size: int
    standardize_features: bool
    n_folds: int
    folds_run: tuple[int, ...]
    epochs: int
    learning_rate: float
    augment: bool
    protocol: str                # in words: see PROTOCOL_WORDS
    protocol_name: str           # "validated" or "paper"
    compare_protocols: bool
    leakage_experiment: bool
    unet_image_size: int
    unet_widths: tuple[int, ...]
    unet_epochs: int
    seed: int
    repeat_seeds: tuple[int, ...] = ()
    evaluation: str = "cv"             # "cv", "institution" or "holdout"
    test_patients: int = 0             # holdout: patients of the hold-out folder
    test_data_source: str = ""
    patients_per_institution: tuple[tuple[str, int], ...] = ()
    bank_views: int = 0                # augmentation drawn from a bank of this many views
    base_precision: str = "float32"    # the frozen base's arithmetic for features
    unet_precision: str = "float32"    # the U-Net's arithmetic
    unet_tumor_free_ratio: float = 0.0  # tumor-free slices per tumor slice each epoch; 0: all
    unet_slice_visits: int = 0         # the training length the epochs were set from; 0: none
    batch_size: int = 32               # the classifiers' training batch
    unet_batch_size: int = 16          # the U-Net's
    precision_probe: str = ""          # the bfloat16 probe that decided "auto", in words
    institution_holdout: bool = False
    machine: tuple[tuple[str, str], ...] = ()  # (what, value) of the machine running it
    test_institutions: tuple[tuple[str, int], ...] = ()  # holdout: test patients per institution
    training_institutions: tuple[str, ...] = ()          # holdout: the training patients'
    n_test_patients: int = 0           # patients scored as test patients (all of them in a cv)
    looked_at_test_patients: int = 0   # of those, patients in looked_at.toml
    looked_at_by_reason: tuple[tuple[str, int], ...] = ()  # (why looked at, test patients)

    # ---------------------------------------------------------------- computed

    @property
    def is_transfer_learning(self) -> bool:
        """Pretrained bases: ImageNet weights or a weights file."""
        return self.weights == "ImageNet" or self.weights.startswith("file ")

    @property
    def can_test_paper_claim(self) -> bool:
        """Only real LGG slices with frozen ImageNet bases can bear on the paper's claim
        (ImageNet-transferred ResNet50 ahead of VGG16)."""
        return self.dataset != "PHANTOM" and self.weights == "ImageNet"

    def can_test_line(self) -> str:
        """One sentence: what this run's comparison can and cannot test."""
        data = "PHANTOM data" if self.dataset == "PHANTOM" else \
            f"real LGG slices of {self.n_patients} patients"
        weights = {"ImageNet": "frozen ImageNet bases",
                   RANDOM_WEIGHTS: "randomly initialised bases (no ImageNet)"}.get(
            self.weights, f"bases from a {self.weights}")
        evaluation = {"cv": f"{self.n_folds}-fold patient cross-validation",
                      "institution": "one institution per test fold",
                      "holdout": f"one hold-out of {self.test_patients} patients"}[self.evaluation]
        verdict = ("it bears on the paper's transfer-learning claim" if self.can_test_paper_claim
                   else "it cannot test the paper's ImageNet claim; it compares these two "
                        "trained models in this setting")
        return f"What this run can test: {data}, {weights}, {evaluation}; {verdict}."

    @property
    def all_folds_run(self) -> bool:
        return len(self.folds_run) == self.n_folds

    @property
    def reproduces_paper_setting(self) -> bool:
        """True when no setting differs from `PAPER_SETTING` or `UNSTATED_BY_PAPER`."""
        return not self.paper_differences()

    def paper_differences(self) -> list[str]:
        """One short clause per setting that differs from the paper's (or, where the paper
        is silent, from the `full` profile's reading of it); empty when none does."""
        paper, unstated = PAPER_SETTING, UNSTATED_BY_PAPER
        clauses = []
        if self.dataset != paper["dataset"]:
            clauses.append("synthetic PHANTOM data instead of the LGG MRI dataset")
        elif (self.n_patients, self.n_slices) != (paper["n_patients"], paper["n_slices"]):
            clauses.append(f"{self.n_patients} patients and {self.n_slices} slices instead of "
                           f"the dataset's {paper['n_patients']} and {paper['n_slices']}")
        if self.weights == RANDOM_WEIGHTS:
            clauses.append("randomly initialised bases instead of ImageNet weights")
        elif self.weights != paper["weights"]:
            clauses.append(f"base weights from a {self.weights} instead of the ImageNet "
                           "download (the card cannot tell what they were trained on)")
        if set(self.models) != set(paper["models"]):
            clauses.append(f"only {', '.join(DISPLAY_NAMES[m] for m in self.models)} instead of "
                           "both ResNet50 and VGG16")
        if self.image_size != paper["image_size"]:
            clauses.append(f"{self.image_size}x{self.image_size} inputs instead of "
                           f"{paper['image_size']}x{paper['image_size']}")
        if self.standardize_features != paper["standardize_features"]:
            clauses.append("standardised base features, a step not in the paper's head")
        if self.evaluation == "holdout":
            clauses.append(f"one hold-out test set instead of the paper's "
                           f"{paper['n_folds']} test splits")
        elif self.n_folds != paper["n_folds"]:
            clauses.append(f"{self.n_folds} folds instead of {paper['n_folds']}")
        if not self.all_folds_run:
            clauses.append(f"only fold(s) {', '.join(map(str, self.folds_run))} of "
                           f"{self.n_folds} trained")
        if self.epochs != paper["epochs"]:
            clauses.append(f"{self.epochs} epoch{'s' if self.epochs != 1 else ''} instead of "
                           f"{paper['epochs']}")
        if self.augment != paper["augment"]:
            clauses.append("no augmentation (the paper rotates and scales)")
        if not math.isclose(self.learning_rate, unstated["learning_rate"]):
            clauses.append(f"learning rate {self.learning_rate:g} instead of the full "
                           f"profile's {unstated['learning_rate']:g} (the paper gives none)")
        if self.protocol_name != unstated["protocol"]:
            clauses.append("epoch and threshold picked on inner validation patients instead "
                           "of the last epoch at threshold 0.5 (the paper describes no selection)")
        return clauses

    # ---------------------------------------------------------------- sentences

    def evaluation_sentence(self) -> str:
        """How test patients were kept apart, computed from the evaluation and manifest."""
        if self.evaluation == "institution":
            sizes = ", ".join(f"{code} {n}" for code, n in self.patients_per_institution)
            return (f"Each test fold is one institution ({len(self.institutions)}; patients: "
                    f"{sizes}): every model trains on the other institutions and is tested on "
                    "one it never saw, which asks whether it travels between hospitals; an "
                    "institution with few patients gives a wide interval.")
        if self.evaluation == "holdout":
            return (f"Every model trains on all {self.n_patients - self.test_patients} patients "
                    f"of {self.data_source} and is tested once on the {self.test_patients} "
                    f"patients of {self.test_data_source}, none of them seen in training. "
                    + self.test_sites_sentence())
        per_fold = self.n_patients / self.n_folds
        return (f"Test folds are grouped by patient (about {per_fold:.3g} patients per test "
                "fold), unlike the paper's slice split: every test slice comes from a patient "
                "the model did not train on, so its scores are not directly comparable with "
                "the paper's slice-split figures.")

    def test_sites_sentence(self) -> str:
        """A hold-out's test institutions against its training ones: new patients of the
        same sites are not external validation."""
        new_sites = [code for code, _ in self.test_institutions
                     if code not in self.training_institutions]
        if not new_sites:
            return ("Every test institution also appears among the training patients, so "
                    "this tests new patients of the same sites: it is not external validation.")
        return (f"Test institution(s) {', '.join(new_sites)} appear in no training patient: "
                "their patients test the models on a site they never saw.")

    def looked_at_text(self) -> str:
        """How many of the run's test patients had their results looked at while a setting
        of the study was chosen (``looked_at.toml``, the choices page)."""
        if self.dataset == "PHANTOM":
            return "none (PHANTOM patients)"
        if not self.looked_at_test_patients:
            return f"none of {self.n_test_patients}"
        return (f"{self.looked_at_test_patients} of {self.n_test_patients}: "
                f"{looked_at_words(self.looked_at_by_reason)} (Choices made)")

    def can_test(self) -> list[str]:
        """Plain sentences on what this run can and cannot test, from its settings alone."""
        sentences = []
        phantom = self.dataset == "PHANTOM"
        if phantom:
            sentences.append("These are PHANTOM results: they show the machinery works and "
                             "say nothing about real tumors.")
        else:
            sentences.append(f"These are REAL LGG MRI slices: {self.n_patients} patients from "
                             f"{len(self.institutions)} institution(s), {self.n_slices} slices, "
                             f"{self.n_tumor_slices} with tumor.")
        if self.weights == RANDOM_WEIGHTS:
            sentences.append("This run uses randomly initialised bases: it cannot test the "
                             "paper's transfer-learning claim; it tests whether the two "
                             "architectures' frozen random features, with the paper's head, "
                             "separate tumor from no-tumor slices on these patients.")
        elif self.weights == "ImageNet":
            sentences.append("This run uses frozen ImageNet bases, as the paper does: "
                             + ("on PHANTOM data it checks the transfer-learning pipeline, "
                                "not the paper's claim." if phantom else
                                "its ResNet50 vs VGG16 comparison bears on the paper's "
                                "transfer-learning claim, within the differences listed here."))
        else:
            sentences.append(f"This run loads base weights from a {self.weights}: it is "
                             "transfer learning from whatever those weights were trained on, "
                             "and the card cannot check that they are the paper's ImageNet "
                             "weights.")
        if len(self.models) < 2:
            sentences.append(f"Only {DISPLAY_NAMES[self.models[0]]} is trained: this run "
                             "cannot compare the two architectures.")
        sentences.append(self.evaluation_sentence())
        if self.dataset != "PHANTOM" and self.looked_at_test_patients:
            sentences.append(
                f"{self.looked_at_test_patients} of its {self.n_test_patients} test patients "
                "had their results looked at while a setting was chosen "
                f"({looked_at_words(self.looked_at_by_reason)}; Choices made): on them the "
                "numbers those settings touch may be optimistic.")
        elif self.dataset != "PHANTOM":
            sentences.append("None of its test patients is among those whose test results "
                             "were looked at when a setting was chosen (Choices made lists "
                             "them, and the earlier checks whose patients were not recorded).")
        if self.institution_holdout and self.evaluation == "cv":
            sentences.append("Every model is also trained once per institution on the other "
                             "institutions and tested on that one (chapter 5, 'Does it "
                             "travel?').")
        if self.leakage_experiment:
            sentences.append("The leakage experiment also trains on the paper's slice split, "
                             "to measure what that split alone does to the scores on these "
                             "data, and with shuffled labels, a control that must score at "
                             "chance.")
        if self.compare_protocols:
            sentences.append("Both protocols are run side by side (validated selection and "
                             "last epoch at threshold 0.5), so the effect of that selection "
                             "can be seen.")
        if self.reproduces_paper_setting:
            sentences.append(self.intro_claim())
        else:
            sentences.append("It differs from the paper's setting in: "
                             + "; ".join(self.paper_differences()) + ".")
        sentences.append(f"The U-Net ({self.unet_image_size}x{self.unet_image_size}, widths "
                         f"{'-'.join(map(str, self.unet_widths))}, {self.unet_epochs} epochs) "
                         "is this study's own: the paper gives no segmentation setting to "
                         "repeat.")
        if self.repeat_seeds:
            sentences.append(f"Seed {self.seed} fixes the splits; the classifiers' main "
                             f"experiment is trained with seeds {self.seed}, "
                             f"{', '.join(map(str, self.repeat_seeds))} on the same splits and "
                             "the same frozen base, so chapter 6 shows how much a reseed of the "
                             "heads' training moves the results.")
        else:
            sentences.append(f"One seed ({self.seed}) fixes the splits, initial weights and batch "
                             "order; another seed would show how much the results move with it.")
        if self.machine:
            sentences.append("On the same machine and software (the CPU, oneDNN instruction set, "
                             "threads and versions above) the same seed gives the same numbers "
                             "bit for bit; on another CPU, training rounds differently and the "
                             "trained models' numbers move within the spread measured on the "
                             "page This run.")
        return sentences

    def intro_claim(self) -> str:
        """The introduction's one sentence on reproduction."""
        if self.reproduces_paper_setting:
            paper = PAPER_SETTING
            return (f"This run repeats the paper's setting (frozen ImageNet ResNet50 and VGG16, "
                    f"{paper['image_size']}x{paper['image_size']} inputs, augmentation, "
                    f"{paper['n_folds']} folds of {paper['epochs']} epochs, on the "
                    f"{paper['n_patients']} patients of the LGG dataset), evaluated on patient "
                    "folds instead of the paper's slice split.")
        return ("This run does not repeat the paper's setting; it differs in: "
                + "; ".join(self.paper_differences()) + ".")

    # ---------------------------------------------------------------- display

    def title(self) -> str:
        return f"Run card: profile {self.profile}, {self.dataset} data"

    def notes(self) -> list[str]:
        return self.can_test()

    def split_rows(self) -> list[tuple[str, str]]:
        """How the run split its patients: folds for a cross-validation, the two folders'
        patient counts and the test patients' institutions for a hold-out (which has no
        folds)."""
        if self.evaluation == "holdout":
            sites = ", ".join(f"{code} {n}" for code, n in self.test_institutions)
            new_sites = [code for code, _ in self.test_institutions
                         if code not in self.training_institutions]
            return [("training patients", str(self.n_patients - self.test_patients)),
                    ("test patients", str(self.test_patients)),
                    ("test patients' institutions", sites + (
                        f"; not among the training patients: {', '.join(new_sites)}"
                        if new_sites else "; all also among the training patients"))]
        return [("patient folds", str(self.n_folds)),
                ("folds trained", "all" if self.all_folds_run
                 else ", ".join(map(str, self.folds_run)))]

    def to_frame(self) -> pd.DataFrame:
        """Two columns, setting and value, in reading order."""
        def yes(flag: bool) -> str:
            return "yes" if flag else "no"

        share = self.n_tumor_slices / self.n_slices
        rows = [
            ("profile", self.profile),
            ("dataset", self.dataset),
            ("data source", self.data_source),
            ("patients", str(self.n_patients)),
            ("slices", str(self.n_slices)),
            ("tumor slices", f"{self.n_tumor_slices} ({share:.1%})"),
            ("institutions", f"{len(self.institutions)} ({', '.join(self.institutions)})"),
            ("classifiers compared", ", ".join(DISPLAY_NAMES[m] for m in self.models)),
            ("base weights", self.weights),
            ("transfer learning", yes(self.is_transfer_learning)),
            ("input size", f"{self.image_size}x{self.image_size}"),
            ("standardised features", yes(self.standardize_features)),
            ("evaluation", {"cv": "patient cross-validation",
                            "institution": "one fold per institution",
                            "holdout": f"hold-out: {self.test_data_source}"}[self.evaluation]),
            *self.split_rows(),
            ("test patients looked at when choosing settings", self.looked_at_text()),
            ("epochs", str(self.epochs)),
            ("learning rate", f"{self.learning_rate:g}"),
            ("batch size (classifiers)", str(self.batch_size)),
            ("augmentation", (f"yes, from a bank of {self.bank_views} views per image"
                              if self.augment and self.bank_views else yes(self.augment))),
            ("frozen base arithmetic", PRECISION_WORDS.get(self.base_precision,
                                                           self.base_precision)),
            ("protocol", self.protocol),
            ("both protocols run", yes(self.compare_protocols)),
            ("leakage experiment", yes(self.leakage_experiment)),
            ("U-Net input size", f"{self.unet_image_size}x{self.unet_image_size}"),
            ("U-Net widths", "-".join(map(str, self.unet_widths))),
            ("U-Net epochs", str(self.unet_epochs) if not self.unet_slice_visits else
             f"{self.unet_epochs} (the count closest to {self.unet_slice_visits:,} slice visits "
             "per unit on this run's slices)"),
            ("U-Net slices per epoch", "every slice" if not self.unet_tumor_free_ratio else
             f"every tumor slice, {self.unet_tumor_free_ratio:g} tumor-free per tumor slice "
             "(drawn afresh each epoch)"),
            ("U-Net batch size", str(self.unet_batch_size)),
            ("U-Net arithmetic", PRECISION_WORDS.get(self.unet_precision, self.unet_precision)),
            *((("bfloat16 probe (decides 'auto')", self.precision_probe),)
              if self.precision_probe else ()),
            ("seed", str(self.seed)),
            ("repeats the paper's setting", yes(self.reproduces_paper_setting)),
            *self.machine,
        ]
        return pd.DataFrame(rows, columns=["setting", "value"])

    def markdown(self) -> str:
        """A Markdown block for `display(Markdown(...))`: title, table, sentences."""
        def cell(text: str) -> str:
            return str(text).replace("|", "\\|")

        table = ["| setting | value |", "|---|---|"]
        table += [f"| {cell(s)} | {cell(v)} |" for s, v in self.to_frame().itertuples(index=False)]
        bullets = [f"- {sentence}" for sentence in self.can_test()]
        return "\n".join([f"**{self.title()}**", "", *table, "", *bullets])


def machine_rows(record: dict) -> tuple[tuple[str, str], ...]:
    """The run card's rows for a `machine.machine_record()`."""
    cap = record.get("onednn_max_cpu_isa")
    return (
        ("CPU", f"{record['cpu_model']} ({record['cpu_cores']} cores)"),
        ("oneDNN instruction set", record["onednn_isa"] + (f" (capped: ONEDNN_MAX_CPU_ISA={cap})"
                                                           if cap else "")),
        ("threads", str(record["threads"])),
        ("GPU", ", ".join(record["gpus"]) or "none"),
        ("TensorFlow / Keras / NumPy", f"{record['tensorflow']} / {record['keras']} / "
                                       f"{record['numpy']}"),
    )


def run_card(params, manifest: pd.DataFrame, machine: dict | None = None) -> RunCard:
    """The run card of `params` (a resolved `brainlib.config.params.Params`) on `manifest` (one row
    per slice: patient_id, label, institution, dataset), and, given its record
    (`machine.machine_record()`), the machine that runs it."""
    missing = [c for c in ("patient_id", "label", "institution", "dataset")
               if c not in manifest.columns]
    if missing:
        raise ValueError(f"run_card: the manifest lacks column(s) {missing}; expected one row "
                         "per slice with patient_id, label, institution and dataset")
    if manifest.empty:
        raise ValueError("run_card: the manifest has no slices")
    datasets = sorted(manifest["dataset"].astype(str).str.lower().unique())
    if len(datasets) != 1 or datasets[0] not in ("phantom", "real"):
        raise ValueError(f"run_card: expected one dataset, 'phantom' or 'real', in the "
                         f"manifest's dataset column; found {datasets}")
    evaluation = params.get("evaluation", "cv")
    folds = params["folds_to_run"]
    if evaluation == "holdout":
        n_folds, folds_run = 1, (0,)
    else:
        n_folds = (params["n_folds"] if evaluation == "cv"
                   else int(manifest["fold_patient"].nunique()))
        folds_run = (tuple(range(n_folds)) if folds == "all"
                     else tuple(int(f) for f in folds.split(",")))
    return RunCard(
        profile=params.get("profile", "(none)"),
        dataset=datasets[0].upper(),
        data_source=params["data_source"],
        n_patients=int(manifest["patient_id"].nunique()),
        n_slices=len(manifest),
        n_tumor_slices=int((manifest["label"] == 1).sum()),
        institutions=tuple(sorted(manifest["institution"].astype(str).unique())),
        models=tuple(m for m in params["models"].split(",") if m in CLASSIFIERS),
        weights=weights_in_words(params["weights"]),
        image_size=params["image_size"],
        standardize_features=params["standardize_features"],
        n_folds=n_folds,
        folds_run=folds_run,
        epochs=params["epochs"],
        learning_rate=params["learning_rate"],
        augment=params["augment"],
        protocol=PROTOCOL_WORDS[params["protocol"]],
        protocol_name=params["protocol"],
        compare_protocols=params["compare_protocols"],
        leakage_experiment=params.runs_leakage_experiment,
        unet_image_size=params["unet_image_size"],
        unet_widths=tuple(int(w) for w in params["unet_widths"].split(",")),
        unet_epochs=_unet_epochs(params, manifest),
        seed=params["seed"],
        repeat_seeds=tuple(s for s in params.training_seeds if s != params["seed"])
        if hasattr(params, "training_seeds") else (),
        evaluation=evaluation,
        test_patients=int(manifest.loc[manifest.get("source", pd.Series(dtype=str)) == "test",
                                       "patient_id"].nunique()) if "source" in manifest else 0,
        test_data_source=params.get("test_data_source", ""),
        patients_per_institution=tuple(
            (str(k), int(n)) for k, n in manifest.groupby("institution")["patient_id"]
            .nunique().items()),
        institution_holdout=params.runs_institution_holdout,
        bank_views=int(params.get("bank_views", 0)),
        base_precision=str(params.get("base_precision", "float32")),
        unet_precision=str(params.get("unet_precision", "float32")),
        unet_tumor_free_ratio=float(params.get("unet_tumor_free_ratio", 0.0)),
        unet_slice_visits=int(params.get("unet_slice_visits", 0)),
        batch_size=int(params.get("batch_size", 32)),
        unet_batch_size=int(params.get("unet_batch_size", 16)),
        precision_probe=probe_in_words(params.get("run_dir")) if "auto" in (
            params.get("base_precision"), params.get("unet_precision")) else "",
        machine=machine_rows(machine) if machine else (),
        **_test_patients(manifest, evaluation),
    )


def _unet_epochs(params, manifest: pd.DataFrame) -> int:
    """The U-Net's epochs as the run trains it (`experiment.unet_epochs`)."""
    from ..training.experiment import unet_epochs

    return unet_epochs(params, manifest)


PRECISION_WORDS = {
    "auto": "auto: bfloat16 where the hardware has it and the probe finds it faster, "
            "else float32",
    "mixed_bfloat16": "bfloat16 arithmetic, float32 weights"}


def probe_in_words(run_dir) -> str:
    """The run's bfloat16 probe (`precision_probe.json` in the run folder, timed by the
    first chapter: `notebook.open_run`), in one line; empty before it exists. Reads only:
    the card is also drawn where TensorFlow must not load (`check-real`)."""
    import json
    from pathlib import Path

    from ..training.experiment import PRECISION_PROBE_FILE

    path = Path(run_dir) / PRECISION_PROBE_FILE if run_dir else None
    if path is None or not path.exists():
        return ""
    probe = json.loads(path.read_text())
    timing = (f"{probe['shape']} convolution: {probe['float32_ms']:.0f} ms float32, "
              f"{probe['bfloat16_ms']:.0f} ms bfloat16; " if "speedup" in probe else "")
    return f"{timing}{probe['why']}: {probe['chosen']} chosen"


def looked_at_groups() -> dict[str, tuple[str, frozenset]]:
    """``looked_at.toml``: per group of real patients whose results were looked at while a
    setting was chosen, (how and when, in words that follow "looked at", the patients)."""
    import tomllib
    from pathlib import Path

    listed = tomllib.loads((Path(__file__).with_name("looked_at.toml")).read_text())
    return {name: (group["looked_at"], frozenset(group["patients"]))
            for name, group in listed.items()}


def looked_at_patients() -> set[str]:
    """Every patient of ``looked_at_groups``."""
    return {patient for _, patients in looked_at_groups().values() for patient in patients}


def looked_at_counts(test_patients) -> tuple[tuple[str, int], ...]:
    """(why looked at, how many of ``test_patients``) for each group that has any."""
    test_patients = set(map(str, test_patients))
    counted = ((why, len(test_patients & patients))
               for why, patients in looked_at_groups().values())
    return tuple((why, n) for why, n in counted if n)


def looked_at_words(by_reason) -> str:
    """``looked_at_counts`` as words: "8 as ...; 10 as ..."."""
    return "; ".join(f"{n} {why}" for why, n in by_reason)


def _test_patients(manifest: pd.DataFrame, evaluation: str) -> dict:
    """The run card's fields on who was tested: every patient of a cross-validation (each is
    in one test fold), the test folder's patients of a hold-out, with their institutions."""
    if evaluation == "holdout" and "source" in manifest:
        is_test = (manifest["source"] == "test").to_numpy()
        test, training = manifest[is_test], manifest[~is_test]
    else:
        test, training = manifest, manifest.iloc[:0]
    patients = set(test["patient_id"].astype(str))
    return {"n_test_patients": len(patients),
            "looked_at_test_patients": len(patients & looked_at_patients()),
            "looked_at_by_reason": looked_at_counts(patients),
            "test_institutions": tuple((str(k), int(n)) for k, n in test.groupby(
                "institution")["patient_id"].nunique().items()) if evaluation == "holdout"
            else (),
            "training_institutions": tuple(sorted(training["institution"].astype(str).unique()))}
