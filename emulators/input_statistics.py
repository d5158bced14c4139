"""The training data's distribution, carried by the model file, and the
out-of-distribution scores of new inputs against it.

A coupled network meets inputs its training never showed it; the runtime
can see that coming only if the model file says what the training inputs
were. :func:`input_statistics` measures them in two passes over the
training inputs (physical units, in batches): per input the minimum,
maximum, mean and standard deviation; in the standardized space
``z = (x - mean) / std`` the principal directions of the inputs' correlation
(the leading ``rank`` ones kept, with their variances, and the mean variance
of the rest); and the 99.9th percentile of the training samples' own
distance, which calibrates the guard.

The scores of a column ``x`` (:func:`guard_scores`, the reference the
Fortran runtime's guard is tested against):

- ``max_abs_z``: the largest ``|z_i|``;
- ``distance``: a Mahalanobis distance in the standardized space, with the
  correlation approximated by its leading directions ``B`` (variances
  ``lambda``) and the mean variance ``lambda_r`` of the rest,
  ``sqrt((sum_k (B_k . z)^2 / lambda_k + |z - B B^T z|^2 / lambda_r) / n)``;
  divided by ``n`` under the root, its mean square over the training
  samples is about 1;
- ``n_outside``: how many inputs lie outside the training range widened by
  ``margin`` times its width on each side;
- ``flagged``: ``n_outside > 0`` or ``distance > distance_factor *
  distance_q999``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from emulators.modelfile import InputStatistics

__all__ = ["DEFAULT_MARGIN", "DEFAULT_DISTANCE_FACTOR", "GuardScores", "input_statistics", "guard_scores",
           "statistics_from_json", "statistics_to_json"]

DEFAULT_MARGIN = 0.1
"""Widening of each input's training range, as a fraction of its width."""
DEFAULT_DISTANCE_FACTOR = 2.0
"""A column is flagged beyond this multiple of the training's 99.9th-percentile distance."""
MAX_RANK = 16
EXPLAINED = 0.999
"""The leading directions kept explain this fraction of the standardized variance (at most MAX_RANK)."""


@dataclass
class GuardScores:
    """Per column: largest |z|, distance, inputs outside the widened range, flag."""

    max_abs_z: np.ndarray
    distance: np.ndarray
    n_outside: np.ndarray
    flagged: np.ndarray


def input_statistics(batches: Callable[[], Iterable[np.ndarray]], rank: int | None = None) -> InputStatistics:
    """The statistics of the inputs that ``batches()`` yields, arrays
    ``(n, n_inputs)`` in physical units (called twice: the second pass
    measures the samples' distances). `rank`: directions kept (default: as
    many as explain 99.9 % of the standardized variance, at most 16).
    ValueError for no samples or non-finite values."""
    count, shift, total, outer, low, high = 0, None, None, None, None, None
    for batch in batches():
        x = np.asarray(batch, np.float64)
        if x.ndim != 2 or not x.size:
            continue
        if not np.all(np.isfinite(x)):
            raise ValueError("the training inputs hold non-finite values")
        if shift is None:                     # sums about the first batch's mean: no cancellation
            shift = x.mean(axis=0)
            total = np.zeros_like(shift)
            outer = np.zeros((x.shape[1], x.shape[1]))
            low, high = x.min(axis=0), x.max(axis=0)
        d = x - shift
        count += len(x)
        total += d.sum(axis=0)
        outer += d.T @ d
        low, high = np.minimum(low, x.min(axis=0)), np.maximum(high, x.max(axis=0))
    if count == 0:
        raise ValueError("no training inputs to take statistics of")
    n = len(shift)
    mean_shifted = total / count
    covariance = outer / count - np.outer(mean_shifted, mean_shifted)
    mean = shift + mean_shifted
    std = np.sqrt(np.maximum(np.diag(covariance), 0.0))
    floor = 1e-6 * np.maximum(np.abs(mean), 1e-30)   # a constant input: a tiny spread, not a division by zero
    std = np.maximum(std, floor)
    correlation = covariance / np.outer(std, std)
    eigenvalues, eigenvectors = np.linalg.eigh(correlation)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues = np.maximum(eigenvalues[order], 0.0)
    eigenvectors = eigenvectors[:, order]
    if rank is None:
        cumulative = np.cumsum(eigenvalues) / max(eigenvalues.sum(), 1e-300)
        rank = int(min(np.searchsorted(cumulative, EXPLAINED) + 1, MAX_RANK, n))
    rank = max(0, min(int(rank), n))
    scale = max(eigenvalues.mean(), 1e-300)
    kept = np.maximum(eigenvalues[:rank], 1e-6 * scale)
    rest = eigenvalues[rank:]
    residual = max(float(rest.mean()) if rest.size else 1.0, 1e-6 * scale)
    stats = InputStatistics(minimum=low, maximum=high, mean=mean, std=std, basis=eigenvectors[:, :rank],
                            variance=kept, residual_variance=residual, distance_q999=1.0, samples=count)
    distances = np.concatenate([_distance(stats, np.asarray(b, np.float64)) for b in batches()
                                if np.asarray(b).ndim == 2 and np.asarray(b).size])
    stats.distance_q999 = max(float(np.quantile(distances, 0.999)), 1e-6)
    return stats


def _distance(stats: InputStatistics, x: np.ndarray) -> np.ndarray:
    """As the runtime computes it: with an orthonormal basis the residual's
    square is ``|z|^2 - |B^T z|^2`` (one product instead of two)."""
    z = (x - stats.mean) / stats.std
    p = z @ stats.basis
    d2 = (z ** 2).sum(axis=1) / stats.residual_variance + (p ** 2 @ (1 / stats.variance - 1 / stats.residual_variance))
    return np.sqrt(np.maximum(d2, 0.0) / x.shape[1])


def guard_scores(stats: InputStatistics, x: np.ndarray, margin: float = DEFAULT_MARGIN,
                 distance_factor: float = DEFAULT_DISTANCE_FACTOR) -> GuardScores:
    """The out-of-distribution scores of the columns ``x`` ``(n, n_inputs)``
    against `stats` (the module's definitions, in float64)."""
    x = np.asarray(x, np.float64)
    stats = InputStatistics(**{k: (np.asarray(v, np.float64) if isinstance(v, np.ndarray) else v)
                               for k, v in vars(stats).items()})
    z = (x - stats.mean) / stats.std
    width = stats.maximum - stats.minimum
    outside = ((x < stats.minimum - margin * width) | (x > stats.maximum + margin * width)).sum(axis=1)
    distance = _distance(stats, x)
    flagged = (outside > 0) | (distance > distance_factor * stats.distance_q999)
    return GuardScores(np.abs(z).max(axis=1), distance, outside.astype(np.int32), flagged)


def statistics_to_json(stats: InputStatistics) -> dict:
    """The input statistics as JSON values (the ``.keras`` file's FKB metadata,
    an ONNX file's ``fkb.input_statistics``): float32 arrays as their exact
    decimal values (``float(np.float32)``), the basis by rows."""
    return {"minimum": stats.minimum.astype(np.float32).tolist(), "maximum": stats.maximum.astype(np.float32).tolist(),
            "mean": stats.mean.astype(np.float32).tolist(), "std": stats.std.astype(np.float32).tolist(),
            "basis": stats.basis.astype(np.float32).tolist(), "variance": stats.variance.astype(np.float32).tolist(),
            "residual_variance": float(stats.residual_variance), "distance_q999": float(stats.distance_q999),
            "samples": int(stats.samples)}


def statistics_from_json(values, n_inputs: int) -> InputStatistics:
    """The input statistics of :func:`statistics_to_json`'s values (ValueError when malformed)."""
    try:
        arrays = {name: np.asarray(values[name], np.float32) for name in
                  ("minimum", "maximum", "mean", "std", "variance")}
        rank = arrays["variance"].shape[0] if arrays["variance"].ndim == 1 else -1
        basis = np.asarray(values["basis"], np.float32).reshape(n_inputs, rank) if rank >= 0 else None
        return InputStatistics(**arrays, basis=basis, residual_variance=float(values["residual_variance"]),
                               distance_q999=float(values["distance_q999"]), samples=int(values["samples"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed input_statistics ({exc})") from None
