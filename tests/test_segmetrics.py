"""Segmentation metrics, eqs. (15)-(17): hand-made masks with known answers, scipy's
directed_hausdorff as the reference, and the empty-mask conventions."""
import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import directed_hausdorff

from brainlib.measures import segmetrics as sm
from brainlib import stats


def square(size=16, top=2, left=2, side=4) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[top:top + side, left:left + side] = True
    return mask


def scipy_hausdorff(a, b) -> float:
    points_a, points_b = np.argwhere(a), np.argwhere(b)
    return max(directed_hausdorff(points_a, points_b)[0], directed_hausdorff(points_b, points_a)[0])


def test_dice_and_iou_of_overlapping_squares():
    a, b = square(top=2, left=2), square(top=2, left=4)  # 16 pixels each, 8 shared
    assert sm.dice_coefficient(a, b) == pytest.approx(2 * 8 / 32)
    assert sm.intersection_over_union(a, b) == pytest.approx(8 / 24)
    assert sm.dice_coefficient(a, a) == 1.0 and sm.intersection_over_union(a, a) == 1.0


def test_empty_mask_conventions():
    empty, a = np.zeros((8, 8), bool), square(size=8, side=2)
    assert sm.dice_coefficient(empty, empty) == 1.0
    assert sm.intersection_over_union(empty, empty) == 1.0
    assert sm.dice_coefficient(a, empty) == 0.0 and sm.dice_coefficient(empty, a) == 0.0
    assert sm.intersection_over_union(empty, a) == 0.0
    for predicted, true in ((empty, empty), (a, empty), (empty, a)):
        assert np.isnan(sm.hausdorff_distance(predicted, true))
        assert np.isnan(sm.hausdorff_95(predicted, true))
    table = sm.slice_table(np.stack([empty, a, empty]), np.stack([empty, empty, a]),
                           pd.DataFrame({"patient_id": ["p"] * 3, "slice_number": [1, 2, 3]}))
    assert table["note"].tolist() == ["both masks empty", "true mask empty", "predicted mask empty"]


def test_hausdorff_of_two_pixels_is_their_distance():
    a, b = np.zeros((10, 10), bool), np.zeros((10, 10), bool)
    a[0, 0], b[3, 4] = True, True
    assert sm.hausdorff_distance(a, b) == pytest.approx(5.0)


@pytest.mark.parametrize("seed", range(5))
def test_hausdorff_matches_scipy_directed_hausdorff(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.random((40, 40)) > 0.97, rng.random((40, 40)) > 0.9
    assert sm.hausdorff_distance(a, b) == pytest.approx(scipy_hausdorff(a, b), abs=1e-12)
    directed = sm.directed_distances(a, b).max()
    assert directed == pytest.approx(directed_hausdorff(np.argwhere(a), np.argwhere(b))[0])


def test_hd95_ignores_a_stray_pixel_that_sets_the_hausdorff_distance():
    true = square(size=64, top=10, left=10, side=20)
    predicted = true.copy()
    predicted[60, 60] = True  # one far-away false positive
    assert sm.hausdorff_distance(predicted, true) == pytest.approx(np.hypot(31, 31))
    assert sm.hausdorff_95(predicted, true) == 0.0
    assert sm.hausdorff_95(predicted, true) <= sm.hausdorff_distance(predicted, true)


def test_largest_connected_component_in_2d_and_3d():
    mask = square(size=16, top=1, left=1, side=4) | square(size=16, top=10, left=10, side=2)
    kept = sm.largest_connected_component(mask)
    assert kept.sum() == 16 and not kept[10, 10]
    volume = np.zeros((3, 8, 8), bool)
    volume[0, 1, 1] = volume[1, 2, 2] = True   # diagonal neighbours across slices: one component
    volume[2, 7, 7] = True
    kept = sm.largest_connected_component(volume)
    assert kept.sum() == 2 and not kept[2, 7, 7]
    assert not sm.largest_connected_component(np.zeros((4, 4), bool)).any()


def two_patients():
    """Patient a: 3 slices, tumor on two, predicted perfectly plus a stray blob on the empty
    slice; patient b: 2 slices, half of its tumor found."""
    true = np.zeros((5, 16, 16), bool)
    predicted = np.zeros_like(true)
    true[1], true[2] = square(), square()
    predicted[1], predicted[2] = square(), square()
    predicted[0, 14, 14] = True
    true[3] = square(side=4)
    predicted[3, 2:6, 2:4] = True
    rows = pd.DataFrame({"patient_id": ["a", "a", "a", "b", "b"],
                         "slice_number": [3, 1, 2, 1, 2], "fold": 0})
    return predicted, true, rows


def test_slice_and_patient_tables():
    predicted, true, rows = two_patients()
    result = sm.evaluate(predicted, true, rows)
    slices, patients = result.slices, result.patients
    assert slices["tumor_slice"].sum() == 3
    assert slices.loc[slices["tumor_slice"], "dice"].tolist() == pytest.approx([1, 1, 2 * 8 / 24])
    a = patients.set_index("patient_id").loc["a"]
    assert a["dice"] == pytest.approx(2 * 32 / 65)  # the stray pixel counts in the volume
    b = patients.set_index("patient_id").loc["b"]
    assert b["dice"] == pytest.approx(2 * 8 / 24) and b["n_slices_with_distance"] == 1
    frame = result.to_frame()
    assert frame.loc["slice (tumor slices only)", "n"] == 3
    assert frame.loc["patient volume", "mean_dice"] == pytest.approx(patients["dice"].mean())
    assert "eq. (15)" in result.summary()


def test_keeping_the_largest_component_removes_the_stray_blob():
    predicted, true, rows = two_patients()
    kept = sm.evaluate(predicted, true, rows, keep_largest_component=True)
    assert kept.patients.set_index("patient_id").loc["a", "dice"] == 1.0
    assert kept.largest_component and "largest 3-D component" in kept.title()


def test_shape_and_value_errors_say_what_was_expected():
    with pytest.raises(ValueError, match="differ in shape"):
        sm.dice_coefficient(np.zeros((4, 4)), np.zeros((8, 8)))
    with pytest.raises(ValueError, match="binary mask"):
        sm.dice_coefficient(np.full((4, 4), 7), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="N = 2 rows"):
        sm.slice_table(np.zeros((3, 4, 4)), np.zeros((3, 4, 4)),
                       pd.DataFrame({"patient_id": ["a", "a"], "slice_number": [1, 2]}))


def test_mean_dice_interval_resamples_patients():
    dice = np.array([0.9, 0.8, 0.85, 0.4, 0.95, 0.7])
    result = stats.mean_dice_interval(dice, n_resamples=2000, seed=1)
    assert result.mean == pytest.approx(dice.mean())
    assert result.ci_low < result.mean < result.ci_high
    assert result.n_patients == 6 and "6 patients" in result.summary()
    with pytest.raises(ValueError, match="at least 2 patients"):
        stats.mean_dice_interval([0.5])
