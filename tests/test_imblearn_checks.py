"""imbalanced-learn's sampler checks, for the selectors."""

from imblearn.utils.estimator_checks import parametrize_with_checks

from sketchsel import AgreementSelector, FastMaxVol, MomentMatchingSelector

_NO_CLASSES_NEEDED = (
    "without class balancing a selector does not use classes, so it accepts continuous "
    "targets (regression) instead of refusing them"
)
_AUTO_TARGETS = (
    "class_balance='auto' balances by class only when y holds class labels; continuous "
    "targets are selected from without classes instead of being refused"
)
_ONE_CLASS = (
    "a selector chooses rows among the samples of one class as among many; a single class "
    "is a valid input, not an error"
)


def expected_failures(selector):
    failures = {"check_samplers_one_label": _ONE_CLASS}
    if selector.class_balance is None:
        failures["check_target_type"] = _NO_CLASSES_NEEDED
    elif selector.class_balance == "auto":
        failures["check_target_type"] = _AUTO_TARGETS
    return failures


@parametrize_with_checks(
    [
        # The defaults (thinning, seeded: the checks refit and compare) and the published rules.
        FastMaxVol(n_select=0.5, random_state=0),
        FastMaxVol(n_select=0.5, class_balance="equal", random_state=0),
        FastMaxVol(n_select=0.5, strategy="maxvol"),
        FastMaxVol(n_select=0.5, strategy="maxvol", class_balance="equal"),
        AgreementSelector(n_select=0.5, random_state=0),
        AgreementSelector(n_select=0.5, class_balance="proportional", random_state=0),
        AgreementSelector(n_select=0.5, strategy="diverse"),
        AgreementSelector(n_select=0.5, strategy="diverse", class_balance="proportional"),
        MomentMatchingSelector(n_select=0.5, random_state=0),
        MomentMatchingSelector(n_select=0.5, class_balance="equal", random_state=0),
        MomentMatchingSelector(n_select=0.5, strategy="moments", random_state=0),
        MomentMatchingSelector(n_select=0.5, strategy="moments", class_balance="equal",
                               random_state=0),
    ],
    expected_failed_checks=expected_failures,
)
def test_imblearn_compatible(estimator, check):
    check(estimator)
