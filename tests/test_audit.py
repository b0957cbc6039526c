"""Tests of brainlib.chapters.audit: every check recomputed from the printed tables, nothing typed in."""

import numpy as np
import pytest
import scipy.stats as sps
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.proportion import proportion_confint

from brainlib.chapters import audit as au
from brainlib.measures import metrics as me


@pytest.fixture(scope="module")
def paper():
    return au.audit_paper()


def test_the_two_readings_swap_false_positives_and_false_negatives():
    cells = ((10, 2), (3, 20))
    rows = au.read_table(cells, "rows are true class")
    columns = au.read_table(cells, "columns are true class")
    assert (rows.tp, rows.tn) == (columns.tp, columns.tn) == (10, 20)
    assert (rows.fp, rows.fn) == (columns.fn, columns.fp) == (3, 2)
    with pytest.raises(ValueError, match="orientation"):
        au.read_table(cells, "diagonal")


def test_exactly_one_reading_matches_the_dataset_and_both_tables_agree_under_it(paper):
    dataset = (au.DATASET_TUMOR, au.DATASET_NO_TUMOR)
    for cells in au.PRINTED_TABLES.values():
        assert np.sum(cells) == sum(dataset)
    matching = au.matching_orientations()
    assert len(matching) == 1 and paper.matching_orientation == matching[0]
    under = paper.totals[paper.totals["orientation"] == matching[0]]
    assert under["matches_dataset"].all()
    assert under[["true_tumor", "true_no_tumor"]].drop_duplicates().shape[0] == 1
    other = paper.totals[paper.totals["orientation"] != matching[0]]
    assert not other["matches_dataset"].any()


def test_matching_reading_follows_the_data_not_the_code():
    # transpose every table: the other reading must now be the one that matches
    transposed = {m: tuple(zip(*cells)) for m, cells in au.PRINTED_TABLES.items()}
    assert au.matching_orientations(transposed) != au.matching_orientations()
    assert len(au.matching_orientations(transposed)) == 1


def test_recomputed_table_iv_is_the_metrics_of_the_counts(paper):
    for row in paper.table_iv[paper.table_iv["source"] == "counts"].itertuples():
        counts = au.read_table(au.PRINTED_TABLES[row.model], row.orientation)
        expected = float(me.metrics_from_counts(counts.tp, counts.fp, counts.fn, counts.tn)[row.metric])
        assert row.recomputed == pytest.approx(100 * expected)
        assert row.printed == au.PRINTED_TABLE_IV[row.model][row.metric]
        assert row.matches_truncated == np.isclose(np.floor(row.recomputed * 10 + 1e-9) / 10, row.printed)
        assert row.matches_rounded == np.isclose(np.floor(row.recomputed * 10 + 0.5 + 1e-9) / 10, row.printed)


def test_rounding_helpers():
    assert au._truncate(99.87) == 99.8 and au._half_up(99.87) == 99.9
    assert au._truncate(98.1) == 98.1 and au._half_up(98.15) == 98.2
    assert au._truncate(99.74997) == 99.7 and au._half_up(99.74997) == 99.7


def test_rounding_scores_count_the_flags(paper):
    scores = paper.rounding.set_index("orientation")
    from_counts = paper.table_iv[paper.table_iv["source"] == "counts"]
    for orientation, rows in from_counts.groupby("orientation"):
        assert scores.loc[orientation, "matches_truncated"] == rows["matches_truncated"].sum()
        assert scores.loc[orientation, "entries"] == len(rows) == 8


def test_scoring_coverage_compares_with_a_validation_split(paper):
    coverage = paper.coverage.set_index("model")
    for model, cells in au.PRINTED_TABLES.items():
        assert coverage.loc[model, "slices_in_table"] == np.sum(cells)
        assert coverage.loc[model, "validation_slices_at_split"] == pytest.approx(
            au.VALIDATION_FRACTION * (au.DATASET_TUMOR + au.DATASET_NO_TUMOR))


def test_mcnemar_range_on_a_hand_example():
    a = me.ConfusionCounts(tp=8, fp=1, fn=2, tn=9)
    b = me.ConfusionCounts(tp=7, fp=3, fn=3, tn=7)
    result = au.mcnemar_range(a, b, "a", "b")
    # both-wrong slices: 0-2 missed tumors in common, 0-1 false alarms in common
    assert result.stratified_by_class
    assert list(result.frame["both_wrong"]) == [0, 1, 2, 3]
    assert list(result.frame["b"]) == [6, 5, 4, 3] and list(result.frame["c"]) == [3, 2, 1, 0]


def test_every_allowed_paired_table_reproduces_both_published_tables(paper):
    orientation = paper.matching_orientation
    counts = {m: au.read_table(c, orientation) for m, c in au.PRINTED_TABLES.items()}
    result = paper.mcnemar[orientation]
    n = counts["resnet50"].n
    wrong = {m: c.fp + c.fn for m, c in counts.items()}
    for row in result.frame.itertuples():
        assert row.both_wrong + row.c == wrong["resnet50"]  # resnet wrong = both + only resnet
        assert row.both_wrong + row.b == wrong["vgg16"]
        assert row.difference == pytest.approx((wrong["vgg16"] - wrong["resnet50"]) / n)
        table = np.array([[n - wrong["resnet50"] - wrong["vgg16"] + row.both_wrong, row.b],
                          [row.c, row.both_wrong]])
        assert row.exact == pytest.approx(sm_mcnemar(table, exact=True).pvalue, rel=1e-9)
    # with b - c fixed, more shared errors means fewer discordant pairs and a smaller p
    assert np.all(np.diff(result.frame["exact"]) < 0)
    span = result.pvalue_range()
    assert span.loc["exact", "min"] == result.frame["exact"].min()


def test_unpairable_reading_is_flagged(paper):
    other = [o for o in au.ORIENTATIONS if o != paper.matching_orientation][0]
    assert not paper.mcnemar[other].stratified_by_class
    assert "cannot describe the same" in paper.mcnemar[other].note
    with pytest.raises(ValueError, match="same slices"):
        au.mcnemar_range(me.ConfusionCounts(1, 1, 1, 1), me.ConfusionCounts(1, 1, 1, 2))


def test_intervals_on_the_paper_counts(paper):
    for row in paper.intervals.itertuples():
        assert row.wilson_low <= row.estimate <= row.wilson_high
        assert row.exact_low <= row.estimate <= row.exact_high
        # the library's one default prior, uniform Beta(1, 1): equal-tailed Beta quantiles
        posterior = sps.beta(1 + row.successes, 1 + row.trials - row.successes)
        assert (row.credible_low, row.credible_high) == pytest.approx(
            (posterior.ppf(0.025), posterior.ppf(0.975)))
    # Jeffreys' prior on request, checked against statsmodels
    counts = {m: au.read_table(cells, paper.matching_orientation)
              for m, cells in au.PRINTED_TABLES.items()}
    for row in au.paper_intervals(counts, prior=(0.5, 0.5)).itertuples():
        jeffreys = proportion_confint(row.successes, row.trials, alpha=0.05, method="jeffreys")
        assert (row.credible_low, row.credible_high) == pytest.approx(jeffreys)


def test_findings_and_frames_are_readable(paper):
    text = paper.summary()
    assert paper.matching_orientation in text and "McNemar" in text
    assert len(paper.findings) >= 6
    assert {"printed", "recomputed", "truncated"} <= set(paper.to_frame().columns)
