"""scikit-learn's estimator conformance checks."""

from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from sketchsel import AgreementSelector, FastMaxVol, FrequentDirections, MomentMatchingSelector


@parametrize_with_checks(
    [
        FrequentDirections(sketch_size=4),
        FrequentDirections(block_size=3),
        FastMaxVol(n_select=0.5),
        FastMaxVol(n_select=0.5, strategy="maxvol"),
        FastMaxVol(n_select=0.5, rank=1, class_balance="proportional"),
        FastMaxVol(n_select=0.5, strategy="maxvol", rank=1, class_balance="proportional"),
        AgreementSelector(n_select=0.5),
        AgreementSelector(n_select=0.5, strategy="diverse"),
        AgreementSelector(n_select=0.5, projection="gaussian", strategy="diverse", diversity=0.3,
                          class_balance="equal", random_state=0),
        MomentMatchingSelector(n_select=0.5, random_state=0),
        MomentMatchingSelector(n_select=0.5, strategy="moments", random_state=0),
        MomentMatchingSelector(n_select=0.5, sketch_size=2, projection="countsketch",
                               strategy="moments", rounding="top", class_balance="proportional",
                               random_state=0),
    ]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_clone_and_params_round_trip():
    fd = FrequentDirections(7, n_components=3, block_size=5, backend="numpy")
    params = fd.get_params()
    assert params == {"sketch_size": 7, "n_components": 3, "block_size": 5, "backend": "numpy"}
    twin = clone(fd).set_params(sketch_size=9)
    assert twin.sketch_size == 9 and fd.sketch_size == 7
