"""The scikit-learn estimators the metric definitions prescribe, fit as the reference does.

The definitions fix the estimators and their settings (e.g. ``LogisticRegression()`` with its
default 100 iterations for explicitness and the BetaVAE score), so a fit that stops before
convergence is part of the reference score, not something to fix by rescaling or more
iterations. scikit-learn warns once per fit with advice that does not apply here; this turns
those warnings into one that says what happened and why the score still follows its definition.
"""

from __future__ import annotations

import contextlib
import threading
import warnings

from .. import _checks


@contextlib.contextmanager
def reference_fits(fn: str, estimator: str):
    """Collects scikit-learn's ConvergenceWarnings of the fits inside, then warns once."""
    from sklearn.exceptions import ConvergenceWarning

    # catch_warnings swaps process-wide state: a warning another Python thread raised meanwhile
    # (its own sklearn fit's ConvergenceWarning, say) was taken for one of these fits and
    # swallowed. Only this thread's are collected; the others go to the handler in place before.
    caught: list[warnings.WarningMessage] = []
    here = threading.get_ident()
    with warnings.catch_warnings():
        warnings.simplefilter("always", ConvergenceWarning)
        passed_on = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if threading.get_ident() == here:
                caught.append(warnings.WarningMessage(message, category, filename, lineno, file, line))
            else:
                passed_on(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        try:
            yield
        finally:
            if warnings.showwarning is show:  # (catch_warnings restores it too; where it does not, here)
                warnings.showwarning = passed_on
    unconverged = 0
    for warning in caught:
        if issubclass(warning.category, ConvergenceWarning):
            unconverged += 1
        else:  # anything else is re-issued as it was
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    if unconverged:
        _checks.warn(
            f"{fn}: {unconverged} {estimator} fit(s) stopped at the iteration limit the metric's "
            "reference definition sets; the score is computed as defined (disentanglement_lib), "
            "not with a converged fit",
            RuntimeWarning,
        )
