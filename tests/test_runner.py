"""The unit runner: one predictions table, one protocol for every model, controls, resume,
cache keys and forced retraining. Synthetic 64x64 images, weights=None, a few epochs:
mechanics, never accuracy."""
import numpy as np
import pandas as pd
import pytest

from brainlib.training import classifier, runner
from brainlib.data import splits

SIZE = 64
CONFIG = classifier.TrainConfig(image_size=SIZE, epochs=2, batch_size=8, seed=1)
RUN = dict(schemes=("patient", "slice"), controls=("none", "shuffled_labels"), seed=1,
           validation_fraction=0.25, progress=False)


def synthetic_manifest(n_patients: int = 8, slices_per_patient: int = 4, seed: int = 0):
    """A manifest with split columns and its uint8 images; tumor slices carry a bright square."""
    rng = np.random.default_rng(seed)
    n_images = n_patients * slices_per_patient
    labels = np.arange(n_images) % 2
    rng.shuffle(labels)
    images = rng.integers(0, 120, (n_images, SIZE, SIZE, 3)).astype(np.uint8)
    images[labels == 1, 16:32, 16:32] += 120
    rows = [{"patient_id": f"TCGA_XX_{1000 + index // slices_per_patient}_20000101",
             "institution": "XX", "slice_number": index % slices_per_patient + 1,
             "image_path": f"/nonexistent/{index}.tif", "mask_path": f"/nonexistent/{index}_mask.tif",
             "label": int(label), "tumor_pixels": int(label) * 256}
            for index, label in enumerate(labels)]
    return splits.add_splits(pd.DataFrame(rows), n_folds=2, seed=seed), images


def families(images, config=CONFIG):
    return [classifier.ClassifierFamily("vgg16", config, images=images)]


class Spy:
    """Wraps a family's `fit` and records the units it trained."""

    def __init__(self, family):
        self.family, self.units = family, []
        self.name, self.default_threshold = family.name, family.default_threshold
        self.settings, self.prepare = family.settings, family.prepare
        self.release = family.release

    def fit(self, unit, keep_best, progress):
        self.units.append(unit)
        return self.family.fit(unit, keep_best, progress)


def test_both_families_implement_the_protocol_the_runner_relies_on():
    from brainlib.training import segmenter

    members = [n for n in vars(runner.ModelFamily) if not n.startswith("_")]
    members += list(runner.ModelFamily.__annotations__)
    assert {"name", "default_threshold", "settings", "prepare", "release", "fit"} <= set(members)
    for family in (classifier.ClassifierFamily("vgg16", CONFIG),
                   segmenter.SegmenterFamily(segmenter.SegmentationConfig())):
        missing = [n for n in members if not hasattr(family, n)]
        assert not missing, f"{type(family).__name__} lacks {missing}"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    manifest, images = synthetic_manifest()
    run_dir = tmp_path_factory.mktemp("run")
    table = runner.run_units(manifest, run_dir, families(images), **RUN)
    return manifest, images, run_dir, table


def model_folder(run_dir, manifest, protocol="validated", config=CONFIG):
    return runner.model_dir(run_dir, families(None, config)[0], protocol, manifest, seed=1,
                            validation_fraction=0.25)


def test_run_writes_one_predictions_table(finished_run):
    manifest, _, run_dir, table = finished_run
    added = ["model", "protocol", "scheme", "control", "fold", "y_true", "p_tumor", "threshold", "y_pred"]
    assert list(table.columns) == list(manifest.columns) + added
    for (scheme, control), part in table.groupby(["scheme", "control"]):
        assert len(part) == len(manifest)  # every slice once, by the fold that held it out
        merged = part.merge(manifest, on=["patient_id", "slice_number"], suffixes=("", "_m"))
        assert (merged["fold"] == merged[f"fold_{scheme}_m"]).all()
        assert (merged["y_true"] == merged["label_m"]).all()  # true labels, even in the control
    assert table["p_tumor"].between(0, 1).all()
    assert (table["y_pred"] == (table["p_tumor"] > table["threshold"])).all()
    unit = model_folder(run_dir, manifest) / "patient-none-fold0"
    history = pd.read_csv(unit / "history.csv")
    assert list(history["epoch"]) == [1, 2] and history["best"].sum() == 1
    assert set(history["validation_set"]) == {"inner_validation"}
    assert (model_folder(run_dir, manifest) / "slice-shuffled_labels-fold1" / "head.weights.h5").exists()
    assert not list(run_dir.rglob(".tmp*")) and not list(run_dir.rglob("*.tmp"))


def test_inner_validation_patients_come_from_the_training_side_and_are_shared(finished_run):
    manifest, *_ = finished_run
    drawn = []
    for control in runner.CONTROLS:
        rows = runner.unit_rows(manifest, "patient", control, 0, "validated", 1, 0.25, "u")
        validation = set(manifest.loc[rows.validation, "patient_id"])
        assert validation.isdisjoint(manifest.loc[rows.fit, "patient_id"])
        assert validation.isdisjoint(manifest.loc[rows.test, "patient_id"])
        drawn.append(validation)
    assert drawn[0] == drawn[1] and drawn[0]  # the same patients under both controls
    paper = runner.unit_rows(manifest, "patient", "none", 0, "paper", 1, 0.25, "u")
    assert len(paper.validation) == 0 and len(paper.fit) + len(paper.test) == len(manifest)


def test_threshold_is_chosen_on_validation_rows_only(finished_run):
    manifest, images, run_dir, table = finished_run
    chosen = runner.read_thresholds([model_folder(run_dir, manifest)])
    assert set(chosen["rule"]) <= {"max validation accuracy", "default (validation lacks a class)"}
    assert (chosen["n_validation"] > 0).all() and chosen["best_epoch"].between(1, 2).all()
    main = table[(table["scheme"] == "patient") & (table["control"] == "none")]
    merged = main.merge(chosen, on=["scheme", "control", "fold"], suffixes=("", "_chosen"))
    assert np.allclose(merged["threshold"], merged["threshold_chosen"])


def test_paper_protocol_keeps_the_last_epoch_and_threshold_half(tmp_path):
    manifest, images = synthetic_manifest()
    table = runner.run_units(manifest, tmp_path, families(images), **{**RUN, "schemes": ("patient",),
                                                                      "controls": ("none",)},
                             protocol="paper")
    assert (table["threshold"] == 0.5).all() and set(table["protocol"]) == {"paper"}
    history = runner.read_histories([model_folder(tmp_path, manifest, "paper")])
    assert "val_loss" not in history.columns and set(history["validation_set"]) == {"none"}
    assert history.groupby("fold")["best"].apply(lambda best: best.iloc[-1]).all()


def test_shuffled_label_control_permutes_training_labels_only(finished_run, tmp_path):
    manifest, images, _, _ = finished_run
    spy = Spy(families(images, CONFIG.replace(epochs=1))[0])
    runner.run_units(manifest, tmp_path, [spy], **{**RUN, "schemes": ("patient",)}, folds=[0])
    true_units = [u for u in spy.units if "-none-" in u.name]
    shuffled_units = [u for u in spy.units if "shuffled" in u.name]
    true_labels, shuffled = (np.r_[u.fit_labels, u.validation_labels]
                             for u in (true_units[0], shuffled_units[0]))
    assert sorted(true_labels) == sorted(shuffled) and not np.array_equal(true_labels, shuffled)
    assert np.array_equal(true_units[0].test, shuffled_units[0].test)


def test_stopped_run_resumes_and_matches_an_uninterrupted_run(finished_run, tmp_path, monkeypatch):
    manifest, images, _, uninterrupted = finished_run
    original, calls = runner.train_unit, []

    def stops_at_third_unit(*args, **kwargs):
        calls.append(args[2].name)
        if len(calls) == 3:
            raise KeyboardInterrupt("stopped by the test")
        return original(*args, **kwargs)

    monkeypatch.setattr(runner, "train_unit", stops_at_third_unit)
    with pytest.raises(KeyboardInterrupt):
        runner.run_units(manifest, tmp_path, families(images), **RUN)
    calls.clear()
    monkeypatch.setattr(runner, "train_unit", lambda *a, **k: calls.append(a[2].name) or original(*a, **k))
    resumed = runner.run_units(manifest, tmp_path, families(images), **RUN)
    assert len(calls) == 6  # 8 units, 2 finished before the stop
    key = list(runner.UNIT_COLUMNS) + ["patient_id", "slice_number"]
    pd.testing.assert_frame_equal(resumed.sort_values(key).reset_index(drop=True),
                                  uninterrupted.sort_values(key).reset_index(drop=True))


def test_force_retrains_and_settings_or_code_change_the_cache_key(finished_run, tmp_path, monkeypatch):
    manifest, images, _, _ = finished_run
    run = {**RUN, "schemes": ("patient",), "controls": ("none",)}
    spy = Spy(families(images, CONFIG.replace(epochs=1))[0])
    first = runner.run_units(manifest, tmp_path, [spy], **run)
    assert len(spy.units) == 2
    runner.run_units(manifest, tmp_path, [spy], **run)
    assert len(spy.units) == 2  # read back, not retrained
    again = runner.run_units(manifest, tmp_path, [spy], **run, force=True)
    assert len(spy.units) == 4  # force: both units trained again
    pd.testing.assert_frame_equal(first, again)  # same seeds, same result
    before = model_folder(tmp_path, manifest, config=CONFIG.replace(epochs=1))
    assert before != model_folder(tmp_path, manifest, config=CONFIG.replace(epochs=2))
    monkeypatch.setattr(runner, "code_fingerprint", lambda: "changed-code")
    assert before != model_folder(tmp_path, manifest, config=CONFIG.replace(epochs=1))
    runner.run_units(manifest, tmp_path, [spy], **run)
    assert len(spy.units) == 6  # changed training code: trained anew


def test_end_to_end_unit_in_a_run(tmp_path):
    manifest, images = synthetic_manifest()
    config = CONFIG.replace(epochs=1, augment=True, bank_views=0)  # the lineage's path
    table = runner.run_units(manifest, tmp_path, families(images, config), folds=[1],
                             **{**RUN, "schemes": ("patient",), "controls": ("none",)})
    assert len(table) == (manifest["fold_patient"] == 1).sum()
    history = runner.read_histories([model_folder(tmp_path, manifest, config=config)])
    assert set(history["path"]) == {"end_to_end"}


def test_manifest_without_split_columns_is_refused(tmp_path):
    manifest, images = synthetic_manifest()
    with pytest.raises(ValueError, match="fold_patient"):
        runner.run_units(manifest.drop(columns="fold_patient"), tmp_path, families(images),
                         progress=False)


def test_augmented_units_share_one_feature_bank(tmp_path):
    """With augmentation and a frozen base every unit trains on one bank of K views per
    image, computed once into the run folder's features/, read back by the next run."""
    manifest, images = synthetic_manifest()
    config = CONFIG.replace(augment=True, bank_views=2, epochs=1)
    table = runner.run_units(manifest, tmp_path, families(images, config), schemes=("patient",),
                             seed=1, validation_fraction=0.25, progress=False)
    banks = list((tmp_path / "features").glob("*-bank2.npy"))
    assert len(banks) == 1 and np.load(banks[0]).shape[:2] == (len(manifest), 2)
    assert len(table) == len(manifest) and table["p_tumor"].between(0, 1).all()
    history = pd.read_csv(next(tmp_path.rglob("patient-none-fold0/history.csv")))
    assert set(history["path"]) == {"feature_bank"}
    family = families(None, config)[0]
    family.images = images
    family.prepare(manifest, tmp_path, False)  # read back: same bank
    np.testing.assert_array_equal(family.bank, np.load(banks[0]))


def test_experiments_on_the_same_images_share_one_feature_file(tmp_path, monkeypatch):
    """Frozen-base features depend on the images, not on folds or labels: an experiment
    that only re-folds the patients (the institution hold-out, the paper's protocol) reads
    the file the cross-validation wrote instead of running the base again; other images
    get their own file."""
    manifest, images = synthetic_manifest()
    first = families(images)[0]
    first.prepare(manifest, tmp_path, False)
    refolded = manifest.assign(fold_patient=(manifest["fold_patient"] + 1) % 2,
                               label=1 - manifest["label"])
    assert runner.manifest_fingerprint(refolded) != runner.manifest_fingerprint(manifest)

    def no_base_run(*args, **kwargs):
        raise AssertionError("the base ran again on images it had already seen")

    monkeypatch.setattr(classifier, "extract_features", no_base_run)
    second = families(images)[0]
    second.prepare(refolded, tmp_path, False)
    np.testing.assert_array_equal(second.features, first.features)
    feature_files = [p for p in (tmp_path / "features").glob("*.npy") if "-tumor-maps" not in p.name]
    assert len(feature_files) == 1
    assert second.tumor_maps is None  # other labels, other tumor rows: no maps of theirs kept

    fewer = manifest.iloc[:-4].reset_index(drop=True)
    assert runner.images_fingerprint(fewer) != runner.images_fingerprint(manifest)
    with pytest.raises(AssertionError, match="ran again"):
        families(images[:-4])[0].prepare(fewer, tmp_path, False)


def test_seed_repeats_reseed_the_heads_on_the_run_seeds_base(monkeypatch):
    """Each extra training seed trains the heads anew (the units' seed) on the run seed's
    frozen base (the family's config), so a random-weight run reads one feature file for
    every seed, as an ImageNet run does."""
    from brainlib.config import params as schema
    from brainlib.training import experiment

    params = schema.resolve("lgg", {"run_dir": "/tmp/seed-repeats-test", "seed": 3,
                                    "repeat_seeds": "1,2", "weights": "none"})
    calls = []

    def record(manifest, run_dir, families, *, seed, **kwargs):
        calls.append((families[0].name, families[0].config.seed, seed))
        return pd.DataFrame({"fold": [0]})

    monkeypatch.setattr(experiment, "prepare_manifest", lambda params: pd.DataFrame())
    monkeypatch.setattr(runner, "run_units", record)
    table = experiment.run_seed_repeats(params, progress=False)
    assert sorted(calls) == sorted((model, 3, seed) for seed in (3, 1, 2)
                                   for model in ("resnet50", "vgg16"))
    assert sorted(table["training_seed"].unique()) == [1, 2, 3]


def test_the_feature_cache_keeps_the_tumor_slices_maps_for_grad_cam(finished_run):
    """Preparing a frozen-base family writes the base's unpooled outputs of the tumor slices
    beside the features; a later study reads both back; a run folder from before the maps
    were kept still reads its features (and Grad-CAM passes through the base)."""
    manifest, images, run_dir, _ = finished_run
    family = families(images)[0]
    family.prepare(manifest, run_dir, progress=False)
    tumor_rows = np.flatnonzero(manifest["label"].to_numpy() == 1)
    np.testing.assert_array_equal(family.tumor_maps.rows, tumor_rows)
    assert family.tumor_maps.maps.shape == (len(tumor_rows), 2, 2, 512)  # VGG16 at 64x64
    [maps_file] = (run_dir / "features").glob("*-tumor-maps-*.npy")
    again = families(images)[0]
    again.prepare(manifest, run_dir, progress=False)
    np.testing.assert_array_equal(again.tumor_maps.maps, family.tumor_maps.maps)
    maps_file.unlink()
    older = families(images)[0]
    older.prepare(manifest, run_dir, progress=False)
    assert older.tumor_maps is None
    np.testing.assert_array_equal(older.features, family.features)
