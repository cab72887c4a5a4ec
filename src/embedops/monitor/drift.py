"""Embedding drift of a window of vectors against a reference set: MMD, domain-classifier AUC, centroid shift.

Each statistic gets a p-value from the reference itself, so no constant threshold (such as "AUC > 0.55") has to be
guessed for a given model and dimension:

- MMD (RBF kernel, median-heuristic bandwidth fixed at fit time): permutation test on the pooled subsample.
- Domain-classifier AUC (logistic regression, cross-validated): compared with AUCs of reference-vs-reference splits
  of the same sizes, computed once per window size.
- Centroid cosine shift (1 - cos between the means of a reference subsample and the window): compared with the same
  statistic between disjoint reference subsamples of the same size.

A window is `drifted` when at least `min_votes` of the three tests reject at level `alpha`; requiring two votes keeps
the false-alarm rate near `alpha` although three tests are run.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# Imported at module load, not lazily: threadpool_limits only reaches the BLAS/OpenMP libraries already loaded.
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from threadpoolctl import threadpool_limits

from embedops.errors import InputError

MIN_WINDOW = 10
# Windows are subsampled to the largest of these sizes that fits, so that traffic of varying volume needs at most a
# dozen calibrations (one per size), not one per distinct window length.
SIZE_LADDER = (10, 15, 20, 30, 40, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1000, 1500, 2000)


@dataclass(frozen=True)
class DriftResult:
    """One window's drift check: each statistic with its p-value and threshold, and the verdict."""

    drifted: bool
    votes: int  # how many of the three tests rejected
    n_window: int  # vectors in the window given
    n_used: int  # vectors of the window (and of the reference) the tests used
    n_reference: int  # vectors in the fitted reference
    mmd2: float
    mmd_p_value: float
    mmd_drifted: bool
    auc: float
    auc_threshold: float  # an AUC above this rejects at `alpha`
    auc_p_value: float
    auc_drifted: bool
    centroid_shift: float
    centroid_threshold: float
    centroid_p_value: float
    centroid_drifted: bool
    alpha: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """Plain types, for JSON, alert details and reports."""
        return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in asdict(self).items()}


def _as_matrix(vectors: Any, what: str) -> np.ndarray:
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] == 0:
        raise InputError(f"{what} must be a 2-d array of vectors (got shape {x.shape})", where=what)
    if not np.isfinite(x).all():
        raise InputError(f"{what} holds NaN or infinite values", where=what)
    return x


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aa = np.einsum("ij,ij->i", a, a)[:, None]
    bb = np.einsum("ij,ij->i", b, b)[None, :]
    return np.maximum(aa + bb - 2.0 * (a @ b.T), 0.0)


def _p_value(null: np.ndarray, observed: float) -> float:
    """Permutation p-value with the +1 correction: never 0, valid at any number of draws."""
    return float((1 + np.count_nonzero(null >= observed)) / (1 + null.size))


def _threshold(null: np.ndarray, alpha: float) -> float:
    """The limit a statistic must exceed for its p-value to be <= alpha (the k-th largest null value)."""
    k = int(np.floor(alpha * (1 + null.size)))  # p <= alpha  <=>  fewer than k null values reach it
    if k < 1:
        return float("inf")
    return float(np.sort(null)[::-1][k - 1])


class DriftDetector:
    """Fitted on reference vectors; `check(window)` says whether the window's distribution moved away from it."""

    def __init__(self, *, alpha: float = 0.05, min_votes: int = 2, max_samples: int = 500, permutations: int = 500,
                 calibration_rounds: int = 40, centroid_rounds: int = 500, folds: int = 5, seed: int = 0):
        if not 0 < alpha < 1 or not 1 <= min_votes <= 3:
            raise InputError(f"alpha must be in (0, 1) and min_votes in 1..3 (got {alpha}, {min_votes})",
                             where="DriftDetector")
        self.alpha, self.min_votes, self.max_samples = alpha, min_votes, max_samples
        self.permutations, self.calibration_rounds, self.centroid_rounds = permutations, calibration_rounds, \
            centroid_rounds
        self.folds, self.seed = folds, seed
        self.reference: np.ndarray | None = None
        self._auc_null: dict[int, np.ndarray] = {}
        self._centroid_null: dict[int, np.ndarray] = {}

    def fit(self, reference: Any, *, window_size: int | None = None) -> DriftDetector:
        """Keep the reference, fix the kernel bandwidth; with `window_size`, calibrate for it now instead of lazily."""
        ref = _as_matrix(reference, "reference")
        if len(ref) < 2 * MIN_WINDOW:
            raise InputError(f"the reference has {len(ref)} vectors; drift needs at least {2 * MIN_WINDOW}",
                             where="reference")
        self.reference = ref
        self._auc_null.clear()
        self._centroid_null.clear()
        rng = np.random.default_rng(self.seed)
        sub = ref[rng.choice(len(ref), size=min(len(ref), 1000), replace=False)]
        d2 = _sq_dists(sub, sub)[np.triu_indices(len(sub), k=1)]
        median = float(np.median(d2))
        # k = exp(-d^2 / (2 sigma^2)) with sigma = the median pairwise distance (so sigma^2 = the median of d^2).
        self._gamma = 1.0 / (2.0 * (median if median > 0 else 1.0))
        if window_size is not None:
            with threadpool_limits(1):
                self._calibrate(self._used(window_size))
        return self

    def _used(self, n: int) -> int:
        assert self.reference is not None
        cap = min(n, self.max_samples, len(self.reference) // 2)
        return max((size for size in SIZE_LADDER if size <= cap), default=cap)

    # -- the three statistics --------------------------------------------------------------------------------------

    def _mmd(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
        z = np.concatenate([x, y])
        kernel = np.exp(-self._gamma * _sq_dists(z, z))
        m, n = len(x), len(y)
        weights = np.concatenate([np.full(m, 1.0 / m), np.full(n, -1.0 / n)])
        observed = float(weights @ kernel @ weights)  # biased MMD^2 = w' K w
        # All permutations at once: one (B, N) x (N, N) product.
        perms = np.stack([rng.permutation(weights) for _ in range(self.permutations)])
        null = np.einsum("bi,bi->b", perms @ kernel, perms)
        return observed, _p_value(null, observed)

    def _auc(self, x: np.ndarray, y: np.ndarray, seed: int) -> float:
        features = np.concatenate([x, y])
        labels = np.concatenate([np.zeros(len(x)), np.ones(len(y))])
        # Centre and scale with the pooled statistics: unit-norm embeddings have tiny coordinates, and the default
        # regularisation would otherwise flatten the classifier.
        features = (features - features.mean(axis=0)) / (features.std(axis=0) + 1e-6)
        folds = StratifiedKFold(n_splits=self.folds, shuffle=True, random_state=seed)
        model = LogisticRegression(C=0.05, max_iter=300)
        scores = cross_val_predict(model, features, labels, cv=folds, method="decision_function")
        return float(roc_auc_score(labels, scores))

    def _centroid_shift(self, window_sum: np.ndarray, rest_sum: np.ndarray) -> np.ndarray:
        num = np.einsum("...i,...i->...", window_sum, rest_sum)
        den = np.linalg.norm(window_sum, axis=-1) * np.linalg.norm(rest_sum, axis=-1) + 1e-12
        return 1.0 - num / den

    def _calibrate(self, n: int) -> None:
        """Null distributions of AUC and centroid shift for windows of `n` vectors, from reference-only splits."""
        if n in self._auc_null:
            return
        assert self.reference is not None
        ref = self.reference
        rng = np.random.default_rng([self.seed, n])
        aucs = []
        for r in range(self.calibration_rounds):
            idx = rng.permutation(len(ref))
            aucs.append(self._auc(ref[idx[:n]], ref[idx[n:2 * n]], seed=r))
        self._auc_null[n] = np.asarray(aucs)
        # Same shape as the check: n reference vectors against n others, both drawn from the reference here.
        a, b = np.empty((self.centroid_rounds, ref.shape[1])), np.empty((self.centroid_rounds, ref.shape[1]))
        for r in range(self.centroid_rounds):
            idx = rng.permutation(len(ref))
            a[r], b[r] = ref[idx[:n]].sum(axis=0, dtype=np.float64), ref[idx[n:2 * n]].sum(axis=0, dtype=np.float64)
        self._centroid_null[n] = self._centroid_shift(a, b)

    def check(self, window: Any) -> DriftResult:
        """Test one window of vectors against the reference (calibrating for its size the first time)."""
        # These matrices are small: multi-threaded BLAS costs more in hand-offs than it gains (10x on a busy host).
        with threadpool_limits(1):
            return self._check(window)

    def _check(self, window: Any) -> DriftResult:
        if self.reference is None:
            raise InputError("the drift detector is not fitted; call fit(reference) first", where="DriftDetector")
        win = _as_matrix(window, "window")
        if win.shape[1] != self.reference.shape[1]:
            raise InputError(f"window vectors have dimension {win.shape[1]}, the reference {self.reference.shape[1]}"
                             " (a different model?)", where="window")
        if len(win) < MIN_WINDOW:
            raise InputError(f"the window has {len(win)} vectors; drift needs at least {MIN_WINDOW}", where="window")
        start = time.perf_counter()
        n = self._used(len(win))
        self._calibrate(n)
        rng = np.random.default_rng([self.seed, n, len(win), 1])
        y = win[rng.choice(len(win), size=n, replace=False)] if len(win) > n else win
        x = self.reference[rng.choice(len(self.reference), size=n, replace=False)]

        mmd2, mmd_p = self._mmd(x, y, rng)
        auc = self._auc(x, y, seed=int(rng.integers(1 << 31)))
        auc_null, cen_null = self._auc_null[n], self._centroid_null[n]
        # The reference subsample, not the whole reference: a fixed reference mean would put its own sampling error
        # into every window's statistic at once (calibrated marginally, it over-alarmed: 4 of 24 STS windows).
        shift = float(self._centroid_shift(y.sum(axis=0, dtype=np.float64), x.sum(axis=0, dtype=np.float64)))
        auc_p, cen_p = _p_value(auc_null, auc), _p_value(cen_null, shift)
        flags = (mmd_p <= self.alpha, auc_p <= self.alpha, cen_p <= self.alpha)
        votes = int(sum(flags))
        return DriftResult(
            drifted=votes >= self.min_votes, votes=votes, n_window=len(win), n_used=n,
            n_reference=len(self.reference), mmd2=mmd2, mmd_p_value=mmd_p, mmd_drifted=flags[0], auc=auc,
            auc_threshold=_threshold(auc_null, self.alpha), auc_p_value=auc_p, auc_drifted=flags[1],
            centroid_shift=shift, centroid_threshold=_threshold(cen_null, self.alpha), centroid_p_value=cen_p,
            centroid_drifted=flags[2], alpha=self.alpha, seconds=time.perf_counter() - start)
