"""Lanczos eigensolvers for the spectral topometrics (matrix-free, products by numba kernels).

Why not ARPACK (``scipy.sparse.linalg.eigsh``), measured on the MGEs of the speed issue:

- ARPACK builds its whole ``ncv``-vector factorization before it first tests convergence; the
  solvers here test after every step (a tridiagonal eigenproblem of the step count's size), so
  they stop as soon as the wanted Ritz values meet the same residual test: 30 instead of 42
  products on ResNet-20 @0.98, 46 instead of 73 @0.9.
- ARPACK re-orthogonalizes every new vector against its whole basis, which on a sparse MGE costs
  more memory traffic than the product itself. ``extreme_eigenvalues`` uses Simon's *partial*
  reorthogonalization: it tracks an estimate of the loss of orthogonality by the recurrence
  of Simon (1984) and re-orthogonalizes (two consecutive vectors) only when the estimate
  passes ``sqrt(eps)``, which keeps the basis semi-orthogonal and so the Ritz values as accurate
  as with full reorthogonalization; on the MGEs of the issue it re-orthogonalizes 2-6 times in
  20-50 steps, measured loss of orthogonality below 4e-11.
- ``largest_eigenvalue`` (one extreme eigenvalue, multiplicity irrelevant) needs no basis at
  all: plain three-term Lanczos, whose largest Ritz value increases to the largest eigenvalue
  whatever the loss of orthogonality (copies of converged values do not exceed it).

Both stop on ARPACK's test: residual ``beta_j |y_j| <= tol * max(|theta|, eps^(2/3) ||T||)``.

Multiplicities: a single Krylov sequence holds one copy of each distinct eigenvalue. When it is
exhausted (an invariant subspace: ``beta`` vanishes once fully re-orthogonalized) it is continued
with a fresh random vector orthogonal to it, a new *block*, as ARPACK does; from then on the
solver re-orthogonalizes fully and stops only at a breakdown, when the block just finished holds
no value that ranks above the k-th wanted one (a further block holds only values repeated once
more, a subset of this block's values, so it cannot change the answer). Like ARPACK, copies of
a repeated eigenvalue that the sequence has not reached when the wanted values converge (the
space is not exhausted) are missed: that takes exactly repeated eigenvalues among the top ones,
i.e. identical components, on an operator above ``DENSE_SPECTRUM_MAX`` nodes (smaller ones get
exact dense spectra by default).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator

import numpy as np
from scipy.linalg import eigh_tridiagonal

from ._jit import kernel

EPS = float(np.finfo(np.float64).eps)
SQRT_EPS = math.sqrt(EPS)
EPS23 = EPS ** (2.0 / 3.0)
#: ``beta <= BREAKDOWN * ||T||`` after full reorthogonalization is an invariant subspace
#: (dropping such a coupling moves eigenvalues by at most that much, far inside ``tol``).
BREAKDOWN = 1e-10
#: Below ``NEAR_BREAKDOWN * ||T||`` the residual is re-orthogonalized fully before the test:
#: with semi-orthogonal vectors the residual of an exhausted Krylov space is rounding noise of
#: order ``sqrt(eps)``, not ``eps``.
NEAR_BREAKDOWN = 1e-6
#: Values within this relative distance of the k-th wanted one are ties (multiplicity rule).
TIE = 1e-9


class LanczosNoConvergence(RuntimeError):
    """The Lanczos solver ran out of basis vectors or steps before converging."""


Apply = Callable[[np.ndarray, np.ndarray], None]  # apply(x, out): out = A x
#: A solver as a generator: it yields ``(x, out)`` requests, each to be answered by writing
#: ``A x`` into ``out`` before the next ``send``, and returns its eigenvalue(s). The solver
#: never sees the operator, so a driver can answer the requests of several solvers with one
#: pass over a matrix (``spectral._shared_spectra`` does: the gap and the radius share their
#: products).
Steps = Generator[tuple[np.ndarray, np.ndarray], None, object]


def drive(steps: Steps, apply: Apply):
    """Run a solver generator to its end, answering each request with ``apply``; return its
    result (its exceptions propagate)."""
    try:
        x, out = next(steps)
        while True:
            apply(x, out)
            x, out = steps.send(None)
    except StopIteration as stop:
        return stop.value


def _tridiagonal_eig(alpha: np.ndarray, beta: np.ndarray, m: int):
    """All eigenpairs of the ``m x m`` tridiagonal (``alpha[:m]``, ``beta[:m-1]``)."""
    if m == 1:
        return alpha[:1].copy(), np.ones((1, 1))
    return eigh_tridiagonal(alpha[:m], beta[: m - 1], lapack_driver="stev")


def _priority(theta: np.ndarray, which: str) -> np.ndarray:
    return np.abs(theta) if which == "LM" else theta


def _converged(res: np.ndarray, theta: np.ndarray, tol: float, anorm: float) -> np.ndarray:
    return res <= tol * np.maximum(np.abs(theta), EPS23 * anorm)


def _random_orthogonal(basis: np.ndarray, m: int, rng: np.random.Generator,
                       out: np.ndarray, h: np.ndarray, support: np.ndarray | None) -> bool:
    """A random unit vector on ``support`` orthogonal to ``basis[:m]`` written to ``out``;
    False when the basis already spans the space."""
    for _ in range(3):
        out[:] = rng.uniform(-1.0, 1.0, out.size)
        if support is not None:
            out[~support] = 0.0
        _orthogonalize(basis, m, out, h)
        s = _orthogonalize(basis, m, out, h)
        if s > 1e-20 * out.size:
            _scale_into(out, 1.0 / math.sqrt(s), out)
            return True
    return False


def extreme_eigenvalues(apply: Apply, v0: np.ndarray, k: int, which: str = "LM",
                        tol: float = 1e-6, maxdim: int = 300, seed: int = 0,
                        support: np.ndarray | None = None) -> np.ndarray:
    """The ``k`` eigenvalues of largest magnitude (``which="LM"``) or largest value ("LA") of
    the symmetric operator ``apply``; see :func:`extreme_eigenvalue_steps`."""
    return drive(extreme_eigenvalue_steps(v0, k, which, tol, maxdim, seed, support), apply)


def extreme_eigenvalue_steps(v0: np.ndarray, k: int, which: str = "LM", tol: float = 1e-6,
                             maxdim: int = 300, seed: int = 0,
                             support: np.ndarray | None = None) -> Steps:
    """Generator form (see :func:`drive`) of: the ``k`` eigenvalues of largest magnitude
    (``which="LM"``) or largest value ("LA") of a symmetric operator, in that order, by Lanczos with partial
    reorthogonalization (see the module docstring). ``v0`` is the start vector (the Krylov
    space never leaves its support, so ``apply`` may act on a subspace, e.g. one colour class
    under ``S^2``; ``support``, that subspace's mask, keeps restart vectors in it). Raises :class:`LanczosNoConvergence` after ``maxdim`` steps; with fewer
    than ``k`` eigenvalues in the space (it is exhausted), the missing ones are not returned."""
    n = v0.size
    dim = n if support is None else int(np.count_nonzero(support))
    maxdim = int(min(maxdim, dim))
    basis = np.empty((maxdim + 1, n))  # rows are touched (and cost memory) only when written
    alpha = np.zeros(maxdim)
    beta = np.zeros(maxdim)
    h = np.zeros(maxdim + 1)
    rng = np.random.default_rng(seed + 1)
    _scale_into(v0, 1.0 / float(_norm(v0)), basis[0])
    del v0  # a generator would hold it for the whole solve
    w_old = np.zeros(maxdim + 2)
    w_cur = np.zeros(maxdim + 2)
    w_cur[0] = 1.0
    anorm = 0.0
    force = False  # re-orthogonalize this step too (they come in pairs)
    blocked = False  # an invariant subspace was found: full reorthogonalization from then on
    block_start = 0
    for j in range(maxdim):
        r = basis[j + 1]  # the residual becomes the next basis vector in place: no extra vector
        yield basis[j], r  # the driver writes A basis[j] into r
        b_prev = beta[j - 1] if j else 0.0
        a, s = _three_term(r, basis[j], basis[j - 1] if j else basis[0], b_prev)
        b = math.sqrt(s)
        anorm = max(anorm, abs(a) + b + b_prev)
        w_new = np.zeros(maxdim + 2)
        if not blocked and j > 0 and b > 0.0:
            i = np.arange(j)
            t = beta[i] * w_cur[i + 1] + (alpha[i] - a) * w_cur[i] - b_prev * w_old[i]
            t[1:] += beta[i[1:] - 1] * w_cur[i[1:] - 1]
            t = (t + np.sign(t) * EPS * (beta[i] + b) * 0.3) / b
            w_new[:j] = t
        w_new[j] = EPS * n * 0.6 * anorm / b if b > 0.0 else 1.0
        w_new[j + 1] = 1.0
        near = b <= NEAR_BREAKDOWN * anorm  # maybe exhausted: only full reorthogonalization tells
        if blocked or force or near or np.max(np.abs(w_new[: j + 1])) > SQRT_EPS:
            s0 = s
            s = _orthogonalize(basis, j + 1, r, h)
            a += h[j]
            if s < 0.5 * s0:  # heavy cancellation: once more ("twice is enough")
                s = _orthogonalize(basis, j + 1, r, h)
                a += h[j]
            b = math.sqrt(s)
            w_new[: j + 1] = EPS
            force = not force
        alpha[j] = a
        m = j + 1
        theta, y = _tridiagonal_eig(alpha, beta, m)
        order = np.argsort(-_priority(theta, which), kind="stable")
        wanted = order[:k]
        if b <= BREAKDOWN * anorm or m == dim:  # invariant subspace: every Ritz value is exact
            if m == dim:
                return theta[wanted]
            current = (y[block_start:, :] ** 2).sum(axis=0) > 0.5
            pri = _priority(theta, which)
            kth = pri[wanted[-1]] if len(wanted) == k else -np.inf
            if not np.any(current & (pri > kth + TIE * max(anorm, EPS))):
                return theta[wanted]
            if j + 1 >= maxdim or not _random_orthogonal(basis, m, rng, basis[m], h, support):
                if j + 1 >= maxdim:
                    break
                return theta[wanted]
            beta[j] = 0.0
            blocked, block_start = True, m
            w_old, w_cur = w_cur, np.full(maxdim + 2, EPS)
            continue
        res = b * np.abs(y[m - 1, wanted])
        if not blocked and len(wanted) == k and np.all(_converged(res, theta[wanted], tol,
                                                                   anorm)):
            return theta[wanted]
        if j + 1 >= maxdim:
            break
        beta[j] = b
        _scale_into(r, 1.0 / b, r)  # r is basis[m]
        w_old, w_cur = w_cur, w_new
    raise LanczosNoConvergence(f"Lanczos ({which}, k={k}) did not converge in {maxdim} steps")


def largest_eigenvalue(apply: Apply, v0: np.ndarray, tol: float = 1e-6,
                       maxiter: int = 1000) -> float:
    """The largest eigenvalue of the symmetric operator ``apply``; see
    :func:`largest_eigenvalue_steps`."""
    return drive(largest_eigenvalue_steps(v0, tol, maxiter), apply)


def largest_eigenvalue_steps(v0: np.ndarray, tol: float = 1e-6, maxiter: int = 1000) -> Steps:
    """Generator form (see :func:`drive`) of: the largest eigenvalue of a symmetric operator
    by plain three-term Lanczos (no basis kept: three vectors). Raises
    :class:`LanczosNoConvergence` after ``maxiter`` steps."""
    n = v0.size
    q = v0 / float(_norm(v0))
    del v0
    q_prev = np.zeros(n)
    r = np.empty(n)
    alpha = np.zeros(maxiter)
    beta = np.zeros(maxiter)
    anorm = 0.0
    b_prev = 0.0
    for j in range(min(maxiter, n)):
        yield q, r  # the driver writes A q into r
        a, s = _three_term(r, q, q_prev, b_prev)
        b = math.sqrt(s)
        anorm = max(anorm, abs(a) + b + b_prev)
        alpha[j] = a
        m = j + 1
        if m <= 64:
            theta, y = _tridiagonal_eig(alpha, beta, m)
            top, last = theta[-1], y[m - 1, -1]
        else:  # only the top pair: bisection + inverse iteration, O(m)
            theta, y = eigh_tridiagonal(alpha[:m], beta[: m - 1], select="i",
                                        select_range=(m - 1, m - 1))
            top, last = theta[0], y[m - 1, 0]
        if (b <= BREAKDOWN * anorm or m == n
                or b * abs(last) <= tol * max(abs(top), EPS23 * anorm)):
            return float(top)
        beta[j] = b
        q_prev, q, r = q, r, q_prev
        _scale_into(q, 1.0 / b, q)
        b_prev = b
    raise LanczosNoConvergence(f"Lanczos (largest eigenvalue) did not converge in {maxiter} steps")


def _norm(x: np.ndarray) -> float:
    """Euclidean norm summed in a fixed order (a BLAS sum's order depends on its thread count)."""
    return math.sqrt(float(np.add.reduce(x * x)))


# The vector kernels are plain loops in a fixed order: the same sums whichever thread runs them
# and however many threads BLAS has (numpy's dot products go to BLAS, whose partial sums depend
# on its thread count: 1e-12 apart on a 200k-vector). Four-way unrolled sums and a blocked
# Gram-Schmidt measured no faster on the benchmark networks (BENCHMARKS.md, the speed machinery).


@kernel
def _three_term(r, v, v_prev, beta):
    """One Lanczos step on ``r = A v`` in place: ``r -= beta v_prev``, ``alpha = v.r``,
    ``r -= alpha v``; returns ``(alpha, |r|^2)``."""
    a = 0.0
    for i in range(r.size):
        r[i] -= beta * v_prev[i]
        a += v[i] * r[i]
    s = 0.0
    for i in range(r.size):
        r[i] -= a * v[i]
        s += r[i] * r[i]
    return a, s


@kernel
def _scale_into(r, c, out):
    """``out = c * r``."""
    for i in range(r.size):
        out[i] = c * r[i]


@kernel
def _orthogonalize(basis, m, r, h):
    """One classical Gram-Schmidt pass of ``r`` against rows ``0..m-1`` of ``basis``:
    ``h = basis[:m] r``, then ``r -= basis[:m]^T h``; returns ``|r|^2``."""
    for i in range(m):
        acc = 0.0
        for q in range(r.size):
            acc += basis[i, q] * r[q]
        h[i] = acc
    for i in range(m):
        hi = h[i]
        for q in range(r.size):
            r[q] -= hi * basis[i, q]
    nrm = 0.0
    for q in range(r.size):
        nrm += r[q] * r[q]
    return nrm
