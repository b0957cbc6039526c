"""Train once, predict anywhere: bundles round-trip, refuse what they cannot trust, and
`predict` checks its input like `scan`."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from brainlib.training import bundle, scores
from brainlib.config import params

TOY = {"epochs": 2, "image_size": 64, "unet_epochs": 1, "unet_widths": "4,8",
       "unet_image_size": 32}


@pytest.fixture(scope="module")
def trained(phantom_kaggle_3m, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundles")
    p = params.resolve("default", {**TOY, "data_source": str(phantom_kaggle_3m)})
    folders = bundle.train_bundles(p, out, progress=False)
    return out, folders


@pytest.mark.slow
def test_every_model_gets_a_bundle_that_reproduces_its_validation_scores(trained,
                                                                         phantom_kaggle_3m,
                                                                         tmp_path):
    out, folders = trained
    assert [f.name for f in folders] == ["resnet50", "vgg16", "unet"]
    table = bundle.predict_folder(out, phantom_kaggle_3m, tmp_path / "pred.csv", progress=False)
    assert (tmp_path / "pred.csv").exists() and (tmp_path / "pred.unet-masks.npz").exists()
    written = pd.read_csv(tmp_path / "pred.csv")
    n_slices = len(bundle.scan_for_prediction(phantom_kaggle_3m))
    assert len(written) == len(table) == 3 * n_slices  # every slice once per model
    assert set(written["model"]) == {"resnet50", "vgg16", "unet"}
    assert (written["y_true"] == written["label"]).all()
    for folder in folders:
        loaded = bundle.load_bundle(folder)
        meta = loaded.meta
        assert meta["training"]["patients"] == 6 and meta["protocol"] == "validated"
        assert not list(folder.glob("*.pkl")) and not list(folder.glob("*.pickle"))
        stored = pd.read_csv(folder / "validation_scores.csv")
        assert 0 < len(stored) < meta["training"]["slices"]
        mine = table[table["model"] == loaded.model].merge(stored,
                                                           on=["patient_id", "slice_number"])
        assert len(mine) == len(stored)
        expected = (stored["score"] if meta["kind"] == "classifier" else
                    scores.p_tumor_from_score(stored["score"].to_numpy(), meta["slice_score"]))
        # same slices, same preprocessing: the reloaded model gives the trained scores
        np.testing.assert_allclose(mine["p_tumor"], np.asarray(expected), atol=1e-5)
        if meta["kind"] == "classifier":  # the score is p_tumor, cut at the bundle's threshold
            assert ((mine["y_pred"] == 1) == (mine["p_tumor"] > meta["threshold"])).all()


def _copy(folder, tmp_path):
    target = tmp_path / folder.name
    shutil.copytree(folder, target)
    return target


@pytest.mark.slow
def test_damaged_or_foreign_bundles_are_refused(trained, tmp_path):
    _, folders = trained
    resnet = folders[0]
    with pytest.raises(bundle.BundleError, match="not a model bundle"):
        bundle.load_bundle(tmp_path)
    missing = _copy(resnet, tmp_path / "missing")
    (missing / "head.weights.h5").unlink()
    with pytest.raises(bundle.BundleError, match="head.weights.h5: missing"):
        bundle.load_bundle(missing)
    changed = _copy(resnet, tmp_path / "changed")
    with open(changed / "base.weights.h5", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(bundle.BundleError, match="changed since the bundle was written"):
        bundle.load_bundle(changed)
    for key, value, message in (("format", 99, "bundle format 99"),
                                ("code", "000000000000", "other training code")):
        foreign = _copy(resnet, tmp_path / key)
        meta = json.loads((foreign / "bundle.json").read_text())
        meta[key] = value
        (foreign / "bundle.json").write_text(json.dumps(meta))
        with pytest.raises(bundle.BundleError, match=message):
            bundle.load_bundle(foreign)
    older = _copy(resnet, tmp_path / "older")
    meta = json.loads((older / "bundle.json").read_text())
    meta["versions"]["brainlib"] = "0.0.1"
    (older / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(bundle.BundleError, match="made by brainlib 0.0.1"):
        bundle.load_bundle(older)


@pytest.mark.slow
def test_predict_on_a_damaged_folder_names_the_file_and_writes_nothing(trained, phantom_copy,
                                                                      tmp_path, capfd):
    out, _ = trained
    image = sorted(phantom_copy.glob("*/*_3.tif"))[0]
    image.write_bytes(image.read_bytes()[:100])
    target = tmp_path / "pred.csv"
    assert bundle.predict_main([str(out), str(phantom_copy), "--out", str(target)]) == 2
    said = capfd.readouterr().err
    assert "error:" in said and image.name in said
    assert not target.exists()


@pytest.mark.slow
def test_predict_without_masks_has_no_truth(trained, phantom_copy, tmp_path):
    out, folders = trained
    for mask in phantom_copy.glob("*/*_mask.tif"):
        mask.unlink()
    table = bundle.predict_folder(folders[1], phantom_copy, tmp_path / "pred.csv",
                                  progress=False)
    assert "y_true" not in table.columns and set(table["label"]) == {-1}
    assert table["p_tumor"].between(0, 1).all() and set(table["model"]) == {"vgg16"}


@pytest.mark.slow
def test_train_takes_any_models_and_predict_scores_with_the_bundles_it_is_given(
        trained, phantom_kaggle_3m, tmp_path, capfd):
    """`train -p models=unet` trains the segmenter alone (the study's chapters, not `train`,
    need two classifiers); `predict` scores with whichever bundles it is given. Its
    console: one line per model started and finished, epochs as lines (not a terminal),
    and none of TensorFlow's start-up notices, which go to the log it names."""
    from brainlib import __main__ as cli

    out = tmp_path / "segmenter"
    args = ["-p", f"data_source={phantom_kaggle_3m}", *[f"-p{k}={v}" for k, v in TOY.items()]]
    assert cli.main(["train", *args, "-p", "models=unet", "--out", str(out)]) == 0
    said = capfd.readouterr()
    assert [p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")] == ["unet"]
    lines = said.out.splitlines() + said.err.splitlines()
    assert any(line.startswith("unet: training on 6 patients") for line in lines)
    assert any(line.startswith("unet: done in ") for line in lines)
    assert any("epoch 1 of 1" in line for line in lines)
    assert f"start-up notices go to {out / 'train.log'}" in said.out
    assert "\r" not in said.out + said.err
    assert not any(word in said.out + said.err for word in ("oneDNN", "absl", "cpu_feature_guard"))
    table = bundle.predict_folder(out / "unet", phantom_kaggle_3m, tmp_path / "p.csv",
                                  progress=False)
    assert set(table["model"]) == {"unet"}
    classifier_only = bundle.predict_folder(trained[0] / "vgg16", phantom_kaggle_3m,
                                            tmp_path / "v.csv", progress=False)
    assert set(classifier_only["model"]) == {"vgg16"}
