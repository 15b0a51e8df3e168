"""Spectral topometrics: the spectral gap of ``S = |A| + |A|^T`` and the spectral radius of its
Laplacian ``diag(S 1) - S``.

Small operators get exact dense spectra (``numpy.linalg.eigvalsh``). Larger ones are solved
matrix-free: every product ``S x`` is one pass over the graph's directed CSR arrays (a compiled
kernel: ``S`` itself is never built, which would double the graph's memory), and the solver is
the Lanczos method of ``_lanczos`` (ARPACK, ``scipy.sparse.linalg.eigsh``, when an operator is
too large for its basis or it does not converge). ``topometrics`` wants both values: their two
Lanczos solvers then run in lockstep, each pass over the edges answering one product of each.

Isolated nodes only add zero eigenvalues to ``S`` and to the Laplacian: the dense spectra leave
them out; the matrix-free operators keep them (vectors indexed by node), which changes no
wanted eigenvalue and saves a copy of the graph.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

from sparsetopo.encoding.graph import LayeredGraph

from ._blas import one_blas_thread
from ._jit import kernel
from ._lanczos import (
    LanczosNoConvergence,
    drive,
    extreme_eigenvalue_steps,
    largest_eigenvalue_steps,
)
from ._view import GraphView, as_view

__all__ = ["dense_spectra", "operator_spectra", "spectral_gap", "spectral_radius"]

#: Operators with at most this many nodes with an edge get exact dense spectra.
DENSE_SPECTRUM_MAX = 1500
#: Iterative solvers only run on operators larger than this, whatever ``dense_max`` says: ARPACK
#: needs ``k < N`` and is no faster than a dense solve on a few dozen rows.
ARPACK_MIN_SIZE = 32
#: Relative residual tolerance of the iterative solvers (ARPACK's test): it bounds the relative
#: error of each eigenvalue by 1e-6. Looser lets ARPACK settle on the wrong member of a
#: near-degenerate pair (seen on a 66-node graph: 2e-3 error in the gap).
ARPACK_TOL = 1e-6
#: Memory the Lanczos basis of the gap may use (one vector per step: 20-50 steps on the
#: benchmark networks). An operator too large for ``LANCZOS_MIN_BASIS`` vectors goes to ARPACK.
LANCZOS_BASIS_BYTES = 256 << 20
LANCZOS_MIN_BASIS = 40


def spectral_gap(
    g: LayeredGraph | GraphView, dense_max: int = DENSE_SPECTRUM_MAX, seed: int = 0
) -> float:
    """Spectral gap of the weighted undirected graph: on ``S = |A| + |A|^T``, the largest
    eigenvalue magnitude minus the third largest (magnitudes sorted in decreasing order, with
    repetitions; with fewer than three eigenvalues the missing ones count as 0).

    Parameters
    ----------
    g : LayeredGraph or GraphView
    dense_max : int, default DENSE_SPECTRUM_MAX
        Exact dense eigenvalues when the operator (the nodes with an edge) has at most
        ``max(dense_max, ARPACK_MIN_SIZE)`` rows; Lanczos [2]_ above, to relative accuracy
        ``ARPACK_TOL``.
    seed : int, default 0
        Seeds the start vector of the iterative solver.

    Returns
    -------
    float
        0 for a graph without edges or whose weights are all 0.

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    .. [2] C. Lanczos, "An Iteration Method for the Solution of the Eigenvalue Problem of Linear
       Differential and Integral Operators", Journal of Research of the National Bureau of
       Standards 45(4), 1950; H. D. Simon, "The Lanczos Algorithm with Partial
       Reorthogonalization", Mathematics of Computation 42(165), 1984.
    """
    v = as_view(g)
    if _no_spectrum(v):
        return 0.0
    if _dense(v, dense_max):
        with one_blas_thread():
            return _gap(np.linalg.eigvalsh(_abs_sym_dense(v)))
    ops = _operators(v)
    return _gap(_eigsh(ops.adjacency(), 3, "LM", seed, ncv=16, maxdim=ops.lanczos_maxdim()))


def spectral_radius(
    g: LayeredGraph | GraphView, dense_max: int = DENSE_SPECTRUM_MAX, seed: int = 0
) -> float:
    """Spectral radius of the Laplacian: the largest eigenvalue of ``diag(S 1) - S``, with
    ``S = |A| + |A|^T``.

    Parameters
    ----------
    g : LayeredGraph or GraphView
    dense_max : int, default DENSE_SPECTRUM_MAX
        Exact dense eigenvalues up to ``max(dense_max, ARPACK_MIN_SIZE)`` nodes with an edge;
        above, plain Lanczos [2]_ (no basis kept: one extreme eigenvalue), to relative accuracy
        ``ARPACK_TOL``.
    seed : int, default 0
        Seeds the start vector of the iterative solver.

    Returns
    -------
    float
        0 for a graph without edges or whose weights are all 0.

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    .. [2] C. Lanczos, "An Iteration Method for the Solution of the Eigenvalue Problem of Linear
       Differential and Integral Operators", Journal of Research of the National Bureau of
       Standards 45(4), 1950; H. D. Simon, "The Lanczos Algorithm with Partial
       Reorthogonalization", Mathematics of Computation 42(165), 1984.
    """
    v = as_view(g)
    if _no_spectrum(v):
        return 0.0
    if _dense(v, dense_max):
        s = _abs_sym_dense(v)
        with one_blas_thread():
            return float(np.linalg.eigvalsh(np.diag(s.sum(axis=1)) - s)[-1])
    return float(_eigsh(_operators(v).laplacian(), 1, "LA", seed, ncv=12)[0])


def spectra(g: LayeredGraph | GraphView, seed: int = 0) -> tuple[float, float]:
    """Both spectral topometrics: ``(spectral_gap(g, seed=seed), spectral_radius(g,
    seed=seed))``, the same values, with the two Lanczos solvers in lockstep (each pass over
    the edges answering one product of each) when both are iterative.

    Parameters
    ----------
    g : LayeredGraph or GraphView
    seed : int, default 0
        Seeds the start vectors of the iterative solvers.

    Returns
    -------
    tuple[float, float]
        ``(spectral_gap, spectral_radius)``.

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    """
    v = as_view(g)
    if _no_spectrum(v) or _dense(v, DENSE_SPECTRUM_MAX) or _operators(v).lanczos_maxdim() == 0:
        return spectral_gap(v, seed=seed), spectral_radius(v, seed=seed)
    return _shared_spectra(v, seed)


def _gap(eigenvalues: np.ndarray) -> float:
    mags = np.sort(np.concatenate([np.abs(eigenvalues), np.zeros(3)]))[::-1]
    return float(mags[0] - mags[2])


def _no_spectrum(v: GraphView) -> bool:
    """``S = 0`` (no edge, or only edges of weight 0): every eigenvalue is 0 (and ARPACK cannot
    start: "starting vector is zero")."""
    return v.m == 0 or not np.any(v.adjacency.data)


def _dense(v: GraphView, dense_max: int) -> bool:
    """Whether the spectra of ``v`` are dense: decided on the size of the operator that would be
    solved (the nodes with an edge), never on the graph's node count."""
    return v.n_active <= max(dense_max, ARPACK_MIN_SIZE)


def _abs_sym_dense(v: GraphView) -> np.ndarray:
    """Dense float64 ``S`` restricted to the nodes with an edge (in node order)."""
    a = v.adjacency
    new_id = np.cumsum(v.active) - 1  # node -> row of the kept nodes (valid where active)
    rows = np.repeat(new_id, np.diff(a.indptr))
    d = np.zeros((v.n_active, v.n_active))
    d[rows, new_id[a.indices]] = np.abs(a.data.astype(np.float64))  # no duplicate pairs
    return d + d.T


class _MatrixFree(LinearOperator):
    """A symmetric operator given by ``apply_into(x, out)`` (``out = A x``)."""

    def __init__(self, dim: int, apply_into):
        super().__init__(dtype=np.float64, shape=(dim, dim))
        self.apply_into = apply_into

    def _matvec(self, x):
        out = np.empty(self.shape[0])
        self.apply_into(np.ascontiguousarray(x, dtype=np.float64).ravel(), out)
        return out


class _Operators:
    """Matrix-free float64 operators on ``S = |A| + |A|^T`` of a view (float32 weights times
    float64 vectors, one pass over the directed CSR per product): ``S``, its Laplacian and the
    products of both spectra's solvers at once. Vectors are indexed by node, isolated nodes
    included; ``size`` is the number of nodes with an edge."""

    def __init__(self, v: GraphView):
        a = v.adjacency
        self.indptr, self.indices, self.data = a.indptr, a.indices, a.data
        self.dim = v.n
        self.size = v.n_active

    def product(self, x: np.ndarray, out: np.ndarray, laplacian: bool = False) -> None:
        """``out = S x``, or ``diag(S 1) x - S x`` when ``laplacian``."""
        _sym_abs_matvec(self.indptr, self.indices, self.data, x, out)
        if laplacian:
            np.subtract(self.diag * x, out, out=out)

    @cached_property
    def diag(self) -> np.ndarray:
        """``S 1``: the strength of every node."""
        out = np.empty(self.dim)
        self.product(np.ones(self.dim), out)
        return out

    def adjacency(self) -> _MatrixFree:
        return _MatrixFree(self.dim, self.product)

    def laplacian(self) -> _MatrixFree:
        self.diag  # noqa: B018 (computed once, before any solver step)
        return _MatrixFree(self.dim, lambda x, out: self.product(x, out, laplacian=True))

    def lanczos_maxdim(self) -> int:
        """How many basis vectors the gap's Lanczos may keep (0: ARPACK instead)."""
        return _lanczos_maxdim(self.dim)


def _lanczos_maxdim(dim: int) -> int:
    """Basis vectors of ``dim`` entries that fit in ``LANCZOS_BASIS_BYTES`` (0: fewer than
    ``LANCZOS_MIN_BASIS``, the operator is too large: ARPACK instead)."""
    fit = LANCZOS_BASIS_BYTES // (8 * max(dim, 1))
    return 0 if fit < LANCZOS_MIN_BASIS else int(min(fit, 400))


def dense_spectra(s: np.ndarray) -> tuple[float, float]:
    """``(spectral_gap, spectral_radius)`` of a dense symmetric ``S`` (its rows the nodes with
    an edge): exact eigenvalues (``numpy.linalg.eigvalsh``), as :func:`spectral_gap` and
    :func:`spectral_radius` compute them on small graphs.

    Parameters
    ----------
    s : numpy.ndarray
        The float64 ``S = |A| + |A|^T``, square.

    Returns
    -------
    tuple[float, float]
        ``(0.0, 0.0)`` for an empty or zero matrix.

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    """
    if not s.size or not s.any():
        return 0.0, 0.0
    with one_blas_thread():
        return (_gap(np.linalg.eigvalsh(s)),
                float(np.linalg.eigvalsh(np.diag(s.sum(axis=1)) - s)[-1]))


def operator_spectra(dim: int, product, seed: int = 0) -> tuple[float, float]:
    """``(spectral_gap, spectral_radius)`` of a symmetric ``S = |A| + |A|^T`` given only by its
    products: the iterative solvers of :func:`spectral_gap` and :func:`spectral_radius` (the
    same start vectors, tolerance and basis sizes), never the dense ones.

    Parameters
    ----------
    dim : int
        Rows of ``S`` (every node, isolated ones included).
    product : callable
        ``product(x, out)`` sets ``out = S x`` (float64 vectors of ``dim`` entries).
    seed : int, default 0
        Seeds the start vectors.

    Returns
    -------
    tuple[float, float]
        ``(0.0, 0.0)`` when ``S 1 = 0`` (no edge of non-zero weight).

    References
    ----------
    .. [1] E. Cunegatti, M. Farina, D. Bucur, G. Iacca, "Understanding Sparse Neural Networks
       from their Topology via Multipartite Graph Representations", TMLR, 2024.
    .. [2] R. B. Lehoucq, D. C. Sorensen, C. Yang, "ARPACK Users' Guide", SIAM, 1998.
    """
    diag = np.empty(dim)
    product(np.ones(dim), diag)
    if not diag.any():  # |w| >= 0: S 1 = 0 only when S = 0
        return 0.0, 0.0

    def laplacian(x: np.ndarray, out: np.ndarray) -> None:
        product(x, out)
        np.subtract(diag * x, out, out=out)

    gap = _gap(_eigsh(_MatrixFree(dim, product), 3, "LM", seed, ncv=16,
                      maxdim=_lanczos_maxdim(dim)))
    radius = float(_eigsh(_MatrixFree(dim, laplacian), 1, "LA", seed, ncv=12)[0])
    return gap, radius


def _operators(g: LayeredGraph | GraphView) -> _Operators:
    """The view's matrix-free spectral operators (cached on it)."""
    return as_view(g).cached("spectral_operators", _Operators)


def _start_vector(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.5, 1.5, n)


def _eigsh(op: LinearOperator, k: int, which: str, seed: int, ncv: int,
           maxdim: int = 300) -> np.ndarray:
    """``k`` eigenvalues (``which`` = "LM": largest magnitude, "LA": largest) of the symmetric
    ``op``: Lanczos for a ``_MatrixFree`` operator (``maxdim`` basis vectors at most; the
    radius, ``k = 1`` and "LA", needs none), ARPACK (``eigsh``, ``ncv`` vectors) for any other
    or when Lanczos does not converge or may keep no basis (``maxdim = 0``), and a dense solve
    for an operator of at most ``max(ARPACK_MIN_SIZE, k)`` rows (ARPACK needs ``k < N``)."""
    n = op.shape[0]
    if n <= max(ARPACK_MIN_SIZE, k):
        with one_blas_thread():
            vals = np.linalg.eigvalsh(op.matmat(np.eye(n)))
        order = np.argsort(-np.abs(vals) if which == "LM" else -vals, kind="stable")
        return vals[order[:k]]
    if isinstance(op, _MatrixFree) and (maxdim > 0 or (k, which) == (1, "LA")):
        steps = (largest_eigenvalue_steps(_start_vector(n, seed), tol=ARPACK_TOL)
                 if (k, which) == (1, "LA") else
                 extreme_eigenvalue_steps(_start_vector(n, seed), k, which, tol=ARPACK_TOL,
                                          maxdim=maxdim, seed=seed))
        try:
            return np.atleast_1d(drive(steps, op.apply_into))
        except LanczosNoConvergence:
            pass
    return _arpack(op, k, which, seed, ncv)


def _arpack(op: LinearOperator, k: int, which: str, seed: int, ncv: int) -> np.ndarray:
    n = op.shape[0]
    try:  # ARPACK's BLAS calls are small and memory-bound: threads only contend
        with one_blas_thread():
            return eigsh(op, k=k, which=which, tol=ARPACK_TOL, v0=_start_vector(n, seed),
                         ncv=min(n, ncv), return_eigenvectors=False)
    except ArpackNoConvergence as err:
        raise RuntimeError(f"ARPACK did not converge ({which}, k={k}): {err}") from err


def _shared_spectra(v: GraphView, seed: int) -> tuple[float, float]:
    """``(spectral_gap, spectral_radius)`` of an iterative-size operator with the two Lanczos
    solvers run in lockstep: each step's two products on ``S`` come from one pass over the
    edges (``_sym_abs_matvec2``), the memory traffic of the products being what the spectra
    cost. The same start vectors and the same arithmetic as the solves apart, so bitwise the same
    values. A solver that does not converge is solved again by ARPACK."""
    ops = _operators(v)
    start = _start_vector(ops.dim, seed)
    solvers = [extreme_eigenvalue_steps(start, 3, "LM", tol=ARPACK_TOL,
                                        maxdim=ops.lanczos_maxdim(), seed=seed),
               largest_eigenvalue_steps(start, tol=ARPACK_TOL)]
    laplacian = [False, True]
    diag = ops.diag
    records = np.empty((ops.dim, 4))  # per node: both vectors and both products
    results: list = [None, None]
    pending: dict[int, tuple] = {}

    def advance(i: int, first: bool = False) -> None:
        try:
            pending[i] = next(solvers[i]) if first else solvers[i].send(None)
        except StopIteration as stop:
            results[i] = np.atleast_1d(stop.value)
            pending.pop(i, None)
        except LanczosNoConvergence:
            pending.pop(i, None)

    advance(0, True)
    advance(1, True)
    del start
    while pending:
        if len(pending) == 2:
            (x1, y1), (x2, y2) = pending[0], pending[1]
            _sym_abs_matvec2(ops.indptr, ops.indices, ops.data, x1, x2, y1, y2, records)
            np.subtract(diag * x2, y2, out=y2)
        else:
            records = None  # one solver left: freed while the other's basis may still grow
            (i, (x, y)), = pending.items()
            ops.product(x, y, laplacian=laplacian[i])
        for i in list(pending):
            advance(i)
    gap = results[0] if results[0] is not None else _arpack(ops.adjacency(), 3, "LM", seed, 16)
    radius = (results[1] if results[1] is not None
              else _arpack(ops.laplacian(), 1, "LA", seed, 12))
    return _gap(gap), float(radius[0])


@kernel
def _sym_abs_matvec(indptr, indices, data, x, y):
    """``y = (|A| + |A|^T) x`` from the directed CSR of ``A``: row ``u`` adds ``|w| x[v]`` to
    ``y[u]`` and scatters ``|w| x[u]`` to ``y[v]`` for each of its edges ``(u, v, w)``."""
    y[:] = 0.0
    for u in range(indptr.size - 1):
        s = 0.0
        xu = x[u]
        for e in range(indptr[u], indptr[u + 1]):
            v = indices[e]
            w = abs(np.float64(data[e]))
            s += w * x[v]
            y[v] += w * xu
        y[u] += s


@kernel
def _sym_abs_matvec2(indptr, indices, data, x1, x2, y1, y2, q):
    """``y1 = S x1`` and ``y2 = S x2`` in one pass over the edges, each bitwise
    ``_sym_abs_matvec``'s result (the same operations in the same order). The products are
    bound by their scattered accesses to the vectors: per-node records ``q[u] = (x1[u], x2[u],
    y1[u], y2[u])`` put the four values an edge reads and updates in one cache line instead of
    four."""
    n = indptr.size - 1
    for u in range(n):
        q[u, 0] = x1[u]
        q[u, 1] = x2[u]
        q[u, 2] = 0.0
        q[u, 3] = 0.0
    for u in range(n):
        s1 = 0.0
        s2 = 0.0
        xu1 = q[u, 0]
        xu2 = q[u, 1]
        for e in range(indptr[u], indptr[u + 1]):
            v = indices[e]
            w = abs(np.float64(data[e]))
            s1 += w * q[v, 0]
            q[v, 2] += w * xu1
            s2 += w * q[v, 1]
            q[v, 3] += w * xu2
        q[u, 2] += s1
        q[u, 3] += s2
    for u in range(n):
        y1[u] = q[u, 2]
        y2[u] = q[u, 3]
