"""The real-data check the selector benchmarks share: digits and exact last-layer gradients."""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split


def last_layer_gradients(model, X, y):
    """Exact per-example cross-entropy gradients for the weights and bias of a softmax layer."""
    residual = model.predict_proba(X)
    residual[np.arange(len(y)), np.searchsorted(model.classes_, y)] -= 1.0
    inputs = np.hstack([X, np.ones((len(X), 1))])
    return (residual[:, :, None] * inputs[:, None, :]).reshape(len(X), -1)


def accuracy(X, y, X_test, y_test):
    return LogisticRegression(max_iter=2_000).fit(X, y).score(X_test, y_test)


def digits_gradients():
    """Digits split 75/25, and the gradients of a logistic regression trained on the 75%.

    Returns the split, the per-example last-layer gradients of the training images and the
    test accuracy of a logistic regression trained on the whole training set.
    """
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    warm = LogisticRegression(max_iter=2_000).fit(X_train, y_train)
    G = last_layer_gradients(warm, X_train, y_train)
    return X_train, X_test, y_train, y_test, G, accuracy(X_train, y_train, X_test, y_test)
