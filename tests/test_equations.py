"""The numpy equations of `brainlib.measures.equations` against independent references: small
cases worked by hand, closed forms, numpy/scipy, and the Keras operations the models use."""
import numpy as np
import pytest
from scipy import signal, special, stats
from scipy.spatial.distance import directed_hausdorff

from brainlib.measures import equations as eq


@pytest.fixture(scope="module")
def agreement():
    return eq.agreement_with_keras(seed=0)


# ------------------------------------------------------------------ layers, eqs. (1)-(5)

def test_continuous_convolution_matches_closed_form_and_np_convolve():
    tau = np.linspace(-12, 12, 2401)
    f, g = eq.normal_pdf(1.0), eq.normal_pdf(2.0)
    t = np.array([-2.0, 0.0, 1.5])
    assert np.allclose(eq.continuous_convolution(f, g, t, tau), eq.normal_pdf(np.sqrt(5))(t),
                       atol=1e-10)
    # np.convolve of the samples (times the step) is the same Riemann sum on the grid
    # t_k = 2 tau_0 + k step; the middle of the 'full' output is t = 0.
    step = tau[1] - tau[0]
    full = np.convolve(f(tau), g(tau)) * step
    assert full[tau.size - 1] == pytest.approx(eq.continuous_convolution(f, g, 0.0, tau)[0])


def test_continuous_convolution_of_two_boxes_is_a_triangle():
    box = lambda x: ((x >= 0) & (x < 1)).astype(float)  # noqa: E731
    tau = np.linspace(-1, 3, 40001)
    t = np.array([0.5, 1.0, 1.5, 2.5])
    assert np.allclose(eq.continuous_convolution(box, box, t, tau), [0.5, 1.0, 0.5, 0.0],
                       atol=1e-3)


def test_convolution_layer_hand_case_and_scipy():
    image = np.arange(16.0).reshape(1, 4, 4, 1)
    kernel = np.zeros((2, 2, 1, 1))
    kernel[0, 0, 0, 0], kernel[1, 1, 0, 0] = 1.0, -1.0  # top-left minus bottom-right
    z = eq.convolution_layer(image, kernel, bias=np.array([0.5]))
    assert z.shape == (1, 3, 3, 1)
    assert np.all(z == -5 + 0.5)  # each pixel minus the one a row and a column on: -5
    rng = np.random.default_rng(1)
    image, kernel = rng.normal(size=(2, 6, 5, 3)), rng.normal(size=(3, 2, 3, 4))
    z = eq.convolution_layer(image, kernel, bias=np.zeros(4), stride=1)
    expected = sum(signal.correlate2d(image[1, :, :, c], kernel[:, :, c, 2], mode="valid")
                   for c in range(3))
    assert np.allclose(z[1, :, :, 2], expected)
    assert eq.convolution_layer(image, kernel, np.zeros(4), stride=2).shape == (2, 2, 2, 4)


def test_relu_and_max_pooling_hand_cases():
    assert np.array_equal(eq.relu(np.array([-2.0, 0.0, 3.0])), [0.0, 0.0, 3.0])
    feature_map = np.array([[1, 5, 2, 0], [3, 4, 8, 1], [0, 0, 1, 1], [9, 2, 1, 7]], float)
    pooled = eq.max_pooling(feature_map[None, :, :, None], pool_size=2)[0, :, :, 0]
    assert np.array_equal(pooled, [[5, 8], [9, 7]])


def test_dense_layer_hand_case():
    inputs, weights = np.array([[1.0, 2.0]]), np.array([[1.0, 0.0, -1.0], [0.5, 2.0, 1.0]])
    assert np.allclose(eq.dense_layer(inputs, weights, np.array([0.0, 1.0, 0.0])),
                       [[2.0, 5.0, 1.0]])


# ---------------------------------------------------- training, eqs. (6)-(12)

def test_binary_cross_entropy_hand_case_and_clipping():
    assert eq.binary_cross_entropy([1, 0], [0.9, 0.2]) == pytest.approx(
        -(np.log(0.9) + np.log(0.8)) / 2)
    assert np.isfinite(eq.binary_cross_entropy([1], [0.0]))  # clipped, as in Keras
    assert eq.binary_cross_entropy([1], [0.0]) == pytest.approx(-np.log(1e-7))


def test_gradient_descent_converges_on_a_quadratic():
    theta = np.array([4.0, -2.0])
    for _ in range(200):
        theta = eq.gradient_descent_step(theta, 2 * (theta - [1.0, 3.0]), 0.1)  # J = |theta - c|^2
    assert np.allclose(theta, [1.0, 3.0])
    assert eq.gradient_descent_step(1.0, 2.0, 0.25) == 0.5


def test_batch_normalization_standardises_each_feature():
    x = np.random.default_rng(2).normal([3.0, -1.0], [2.0, 0.5], size=(500, 2))
    z = eq.batch_normalization(x, epsilon=0.0)
    assert np.allclose(z.mean(axis=0), 0) and np.allclose(z.std(axis=0), 1)
    assert np.allclose(eq.batch_normalization(x, gamma=2.0, beta=1.0, epsilon=0.0),
                       2 * stats.zscore(x, axis=0) + 1)


def test_residual_block_is_identity_plus_mapping():
    rng = np.random.default_rng(3)
    x, w1, w2 = rng.normal(size=(4, 5)), rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    assert np.allclose(eq.residual_block(x, np.zeros((5, 5)), w2), x)  # F = 0
    hand = np.maximum(0, x @ w1) @ w2 + x
    assert np.allclose(eq.residual_block(x, w1, w2), hand)
    assert np.allclose(eq.residual_block(x, w1, w2) - x, eq.residual_mapping(x, w1, w2))


def test_sigmoid_matches_scipy_expit_without_overflow():
    z = np.array([-800.0, -5.0, 0.0, 2.0, 800.0])
    with np.errstate(over="raise"):
        assert np.allclose(eq.sigmoid(z), special.expit(z))


def test_l2_penalty_hand_case():
    weights = [np.array([[1.0, 2.0]]), np.array([3.0])]
    assert eq.l2_penalty(weights, lam=0.5, m=2) == pytest.approx(0.5 / 4 * 14)


# ------------------------------------------------------ Bayes, reconstruction, (13)-(14)

def test_positive_predictive_value_hand_case():
    # 1000 people, 10 ill: 9 test positive; of 990 healthy, 99 test positive.
    assert eq.positive_predictive_value(0.01, 0.9, 0.9) == pytest.approx(9 / (9 + 99))


def test_grid_posterior_is_the_beta_posterior():
    theta = np.linspace(0.0005, 0.9995, 1000)
    prior = stats.beta(2, 3).pdf(theta)
    posterior = eq.posterior_on_grid(prior, stats.binom(10, theta).pmf(7))
    assert posterior.sum() == pytest.approx(1.0)
    assert np.sum(theta * posterior) == pytest.approx(stats.beta(2 + 7, 3 + 3).mean(), abs=1e-6)


def test_reconstruction_error_is_zero_at_identity_and_grows_with_scale():
    x = np.random.default_rng(4).normal(size=(6, 3))
    assert eq.reconstruction_error(x, np.eye(3)) == pytest.approx(0.0)
    assert eq.reconstruction_error(x, 3 * np.eye(3)) == pytest.approx(4 * np.sum(x ** 2))


# ------------------------------------------------------ segmentation, eqs. (15)-(17)

def test_dice_and_iou_hand_case_and_relation():
    a = np.array([[1, 1, 0], [1, 1, 0]])
    b = np.array([[0, 1, 1], [0, 1, 1]])
    assert eq.dice_coefficient(a, b) == pytest.approx(2 * 2 / 8)
    assert eq.intersection_over_union(a, b) == pytest.approx(2 / 6)
    iou = eq.intersection_over_union(a, b)
    assert eq.dice_coefficient(a, b) == pytest.approx(2 * iou / (1 + iou))
    empty = np.zeros((2, 3))
    assert eq.dice_coefficient(empty, empty) == 1.0 and eq.dice_coefficient(a, empty) == 0.0


def test_hausdorff_matches_scipy_and_hand_case():
    assert eq.hausdorff_distance([[0, 0], [0, 1]], [[0, 0], [0, 4]]) == pytest.approx(3.0)
    assert eq.directed_hausdorff_distance([[0, 0]], [[0, 0], [0, 4]]) == 0.0
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(30, 2)), rng.normal(1.0, 1.0, size=(20, 2))
    expected = max(directed_hausdorff(a, b)[0], directed_hausdorff(b, a)[0])
    assert eq.hausdorff_distance(a, b) == pytest.approx(expected)


# ------------------------------------------------------ optimiser, eqs. (18)-(20)

def test_adam_moments_hand_case_and_scale_invariant_first_step():
    m, v = eq.adam_moments(0.0, 0.0, 2.0, beta_1=0.9, beta_2=0.999)
    assert (m, v) == (pytest.approx(0.2), pytest.approx(0.004))
    trace = eq.adam_steps([0.0, 0.0], [[1.0, 1000.0]], learning_rate=0.01)
    assert np.allclose(trace.theta[0], [-0.01, -0.01], atol=1e-6)  # |step| = lr, any scale


def test_inverse_time_decay_hand_case():
    assert np.allclose(eq.inverse_time_decay(0.1, 1.0, [0, 1, 3]), [0.1, 0.05, 0.025])


# ------------------------------------------------- metrics and information, (29)-(40)

def test_classification_metrics_hand_case():
    y_true = [1, 1, 1, 0, 0, 0, 0, 1]
    y_pred = [1, 1, 0, 0, 1, 0, 0, 1]  # TP 3, FN 1, FP 1, TN 3
    assert eq.confusion_counts(y_true, y_pred) == {"tp": 3, "fp": 1, "fn": 1, "tn": 3}
    assert eq.accuracy(y_true, y_pred) == 6 / 8
    assert eq.precision(y_true, y_pred) == 3 / 4
    assert eq.recall(y_true, y_pred) == eq.sensitivity(y_true, y_pred) == 3 / 4
    assert eq.specificity(y_true, y_pred) == 3 / 4
    assert eq.f1_score(y_true, y_pred) == pytest.approx(3 / 4)


def test_regression_losses_hand_case():
    assert eq.mean_squared_error([1, 0], [0.5, 0.5]) == pytest.approx(0.25)
    assert eq.mean_absolute_error([1, 0, 2], [0, 0, 0]) == pytest.approx(1.0)
    assert eq.hinge_loss([1, 0], [0.5, 0.5]) == pytest.approx((0.5 + 1.5) / 2)


def test_information_measures_match_scipy():
    p, q = np.array([0.5, 0.25, 0.25, 0.0]), np.array([0.25, 0.25, 0.25, 0.25])
    assert eq.entropy(p) == pytest.approx(stats.entropy(p)) == pytest.approx(1.5 * np.log(2))
    assert eq.kl_divergence(p, q) == pytest.approx(stats.entropy(p, q))
    assert eq.cross_entropy(p, q) == pytest.approx(eq.entropy(p) + eq.kl_divergence(p, q))


# ------------------------------------------------------------- against Keras, all rows

def test_every_equation_of_the_paper_is_checked(agreement):
    numbers = set()
    for label in agreement["equation"]:
        first, _, last = label.partition("-")
        numbers |= set(range(int(first), int(last or first) + 1))
    assert numbers == set(range(1, 21)) | set(range(29, 41))
    assert len(agreement) == 32  # the parametrized test below checks each row


@pytest.mark.parametrize("row", range(32))
def test_numpy_agrees_with_keras(agreement, row):
    check = agreement.iloc[row]
    assert check["agrees"], (f"eq. ({check['equation']}) {check['name']}: differs from "
                             f"{check['reference']} by {check['max_abs_difference']:.2e}")


def test_agreement_table_flags_a_wrong_formula(monkeypatch):
    """The comparison can fail: a sigmoid off by a little is caught."""
    monkeypatch.setattr(eq, "sigmoid", lambda z: 1 / (1 + np.exp(-np.asarray(z) * 1.01)))
    table = eq.agreement_with_keras(seed=0).set_index("equation")
    assert not table.loc["11", "agrees"]
    assert table.drop(index="11")["agrees"].all()


def test_agreement_summary_prints_bounds_not_noise(agreement):
    shown = eq.agreement_summary(agreement)
    assert set(shown["max_abs_difference"]) == {"< 1e-06"}
    assert eq.difference_bound(3e-4) == "< 1e-03"


def test_residual_connections_keep_first_layer_gradients():
    norms = eq.gradient_norms_plain_vs_residual(depth=12, width=16, seed=0)
    assert len(norms) == 24 and set(norms["network"]) == {"plain", "residual"}
    by_network = norms.pivot(index="layer", columns="network", values="gradient_norm")
    plain, residual = by_network["plain"], by_network["residual"]
    assert plain[12] / plain[1] > 1e4  # the plain stack's gradient vanishes towards the input
    assert residual.max() / residual.min() < 100
    assert residual[1] > 1e3 * plain[1]


def test_the_teaching_versions_agree_with_the_library_twins():
    """confusion_counts and hausdorff_distance exist twice: as the paper's formula here and
    as the library's validated version; they must give the same numbers."""
    from brainlib.measures import metrics, segmetrics

    rng = np.random.default_rng(3)
    for _ in range(20):
        y_true, y_pred = rng.integers(0, 2, 50), rng.integers(0, 2, 50)
        library = metrics.confusion_counts(y_true, y_pred)
        assert eq.confusion_counts(y_true, y_pred) == {
            "tp": library.tp, "fp": library.fp, "fn": library.fn, "tn": library.tn}
        a, b = rng.random((24, 24)) > 0.9, rng.random((24, 24)) > 0.85
        assert eq.hausdorff_distance(np.argwhere(a), np.argwhere(b)) == pytest.approx(
            segmetrics.hausdorff_distance(a, b), abs=1e-12)
