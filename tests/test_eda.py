"""Exploratory statements computed from the data, never asserted."""
import numpy as np

from brainlib.data import eda


def test_intensity_sentence_follows_the_numbers():
    images = np.zeros((4, 2, 2, 3), np.uint8)
    labels = np.array([1, 1, 0, 0])
    images[labels == 1, ..., 0] = 30  # tumor slices brighter in pre-contrast only
    images[..., 1] = 20
    images[labels == 0, ..., 2] = 40  # and darker in post-contrast
    sentence = eda.intensity_sentence(eda.channel_statistics(images, labels))
    assert "brightest in pre-contrast (mean 30.0)" in sentence
    assert "brighter than the tumor-free class in 1 of 3 sequences (pre-contrast)" in sentence
    assert "largest difference between the classes is in post-contrast (-40.0)" in sentence
    images[labels == 1, ..., 1] = 90  # now FLAIR
    assert "brightest in FLAIR" in eda.intensity_sentence(eda.channel_statistics(images, labels))


def test_dataset_facts_count_a_hand_built_manifest():
    import pandas as pd

    manifest = pd.DataFrame({
        "patient_id": ["p1", "p1", "p1", "p2", "p2"], "institution": ["CS", "CS", "CS", "DU", "DU"],
        "label": [1, 1, 0, 1, 0], "tumor_pixels": [50, 300, 0, 120, 0]})
    facts = eda.dataset_facts(manifest)
    assert facts == {"n_patients": 2, "n_institutions": 2, "n_slices": 5, "tumor_share": 0.6,
                     "median_tumor_pixels": 120.0, "small_tumor_share": 1 / 3}
