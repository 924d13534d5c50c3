"""The moment-matching quadratic program of Sketchy Moment Matching, solved to a certificate.

SkMM (Dong et al. 2024) relaxes the choice of n rows to shares s on the capped
simplex (``0 <= s_i <= 1/n``, ``sum(s) = 1``) and minimises

    F(s, gamma) = sum_j (sum_i s_i A_ij - gamma_j lambda_j)^2,   gamma_j >= 1/c,

with ``A_ij = (g_i . v_j)^2`` for the eigenpairs ``(lambda_j, v_j)`` of the
sketched gradients' second moment. For a fixed s the best gamma is
``max(1/c, (A^T s)_j / lambda_j)``, which leaves the convex, smooth problem

    f(s) = || max(0, lambda / c - A^T s) ||^2   over the capped simplex,

solved here by FISTA (Beck & Teboulle 2009) with function-value restarts
(O'Donoghue & Candes 2015), which keep the objective monotone, and an exact projection. One iteration costs two
products with A, O(N m); the Frank-Wolfe duality gap, an upper bound on
``f(s) - min f``, is the stopping criterion, checked every ten iterations.
"""

import math
from dataclasses import dataclass

import numpy as np

from .._array_api import to_numpy
from ..linalg._simplex import _capped_simplex_projection, capped_simplex_minimum

# The gap costs a product with A, a third of an iteration: it is checked this often.
_GAP_EVERY = 10


@dataclass
class MomentMatchingSolution:
    """What the solver returns: the shares and the record of the run."""

    shares: object  # s, in the namespace of A
    moments: object  # A^T s
    objective: float
    objective_history: np.ndarray
    duality_gap: float
    n_iter: int
    converged: bool


def moment_terms(xp, G):
    """Eigenvalues of ``G^T G / N`` (descending) and ``A = (G V)^2``, in float64.

    Parameters
    ----------
    G : array of shape (N, m)
        Sketched gradients.

    Returns
    -------
    eigenvalues : array of shape (m,)
        Clipped at zero (round-off can make the smallest slightly negative).
    A : array of shape (N, m)
        Squared coordinates of each row in the eigenbasis.
    """
    G = xp.astype(G, xp.float64)
    eigenvalues, vectors = xp.linalg.eigh(G.T @ G)
    eigenvalues = xp.flip(xp.clip(eigenvalues, 0.0, None)) / G.shape[0]
    H = G @ xp.flip(vectors, axis=1)
    return eigenvalues, H * H


def solve_moment_matching(xp, A, target, n_select, start, *, tol, max_iter):
    """Minimise ``||max(0, target - A^T s)||^2`` over the capped simplex with cap 1/n_select.

    Parameters
    ----------
    A : array of shape (N, m), float64
    target : array of shape (m,), float64
        ``lambda / c``.
    n_select : int
        The cap is ``1 / n_select``.
    start : array of shape (N,)
        A feasible starting point.
    tol : float
        Stop once the duality gap is at most ``tol * ||target||^2`` (the
        objective at s = 0, the problem's natural scale).
    max_iter : int
        Most iterations.

    Returns
    -------
    MomentMatchingSolution
        The objective history is that of the monotone iterate, so it never
        increases.
    """
    cap = 1.0 / n_select
    scale = float(xp.sum(target * target))

    def residual(moments):
        return xp.clip(target - moments, 0.0, None)

    def gap_at(s, r):
        # f is convex: f(s) - f* <= <grad, s> - min over the set of <grad, t>.
        gradient = -2.0 * (A @ r)
        return float(xp.sum(gradient * s)) - capped_simplex_minimum(xp, gradient, n_select)

    x, ax = start, A.T @ start
    rx = residual(ax)
    fx = float(xp.sum(rx * rx))
    gap = gap_at(x, rx)
    history = [fx]
    # Lipschitz constant of the gradient: 2 ||A||_2^2, from the m x m Gram matrix.
    lipschitz = 2.0 * float(xp.linalg.eigvalsh(A.T @ A)[-1])
    converged = gap <= tol * scale or lipschitz == 0.0
    y, ay, t, n_iter = x, ax, 1.0, 0
    while not converged and n_iter < max_iter:
        n_iter += 1
        z = _capped_simplex_projection(xp, y + (2.0 / lipschitz) * (A @ residual(ay)), cap)
        az = A.T @ z
        rz = residual(az)
        fz = float(xp.sum(rz * rz))
        t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
        if fz <= fx:
            # FISTA's extrapolation; ay follows by linearity, at no O(N m) cost.
            momentum = (t - 1.0) / t_next
            y = z + momentum * (z - x)
            ay = az + momentum * (az - ax)
            x, ax, rx, fx, t = z, az, rz, fz, t_next
        else:
            # The step did not descend: keep the best point and restart the
            # momentum from it, which makes the iterates monotone.
            y, ay, t = x, ax, 1.0
        history.append(fx)
        if n_iter % _GAP_EVERY == 0 or n_iter == max_iter:
            gap = gap_at(x, rx)
            converged = gap <= tol * scale
    return MomentMatchingSolution(
        shares=x,
        moments=ax,
        objective=fx,
        objective_history=np.asarray(history),
        duality_gap=max(gap, 0.0),
        n_iter=n_iter,
        converged=converged,
    )


def best_gamma(xp, moments, units, floor):
    """The gamma minimising the objective for shares with ``moments = A^T s``.

    With ``units`` the moment a unit of gamma stands for in each direction
    (``lambda_j``, or 1 on whitened coordinates), it is
    ``max(floor, moments_j / units_j)``, and ``floor`` where a unit is zero.
    """
    positive = units > 0
    ratio = moments / xp.where(positive, units, 1.0)
    return np.asarray(to_numpy(xp.where(positive, xp.clip(ratio, floor, None), floor)))
