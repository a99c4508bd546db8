"""Drift after deployment (PRACTICES.md section 9): pure statistics on tables and arrays.

Three signals are watched separately, each with a verdict at a significance level:

- **images**: the distributions of simple statistics (brightness, contrast, sharpness,
  size) of a new batch against the reference (the training images), by two-sample
  Kolmogorov-Smirnov tests with a Bonferroni correction, and an outlier score per image
  (its largest robust z-score against the reference);
- **embeddings**: the deployed model's penultimate features, by a maximum mean discrepancy
  test (Gaussian kernel, median-distance bandwidth) with a permutation p-value;
- **predictions**: the predicted-class mix (chi-square against the reference's) and the
  confidences (KS) against those on the validation set: label shift;
- **performance**, when labels come with the batch: accuracy with an interval against the
  test baseline.

:func:`recommend` turns the verdicts into an action with its reason: no action; retrain
adding the new images to the old ones (extra variability); or retrain favouring the new ones
(an evolution that replaces the old).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

#: Image statistics compared (from validation's index, or computed for a new batch).
IMAGE_STATISTICS = ("brightness", "contrast", "sharpness", "pixels")


def with_pixels(table: pd.DataFrame) -> pd.DataFrame:
    """The table with ``pixels`` (width x height) for the size comparison."""
    table = table.copy()
    table["pixels"] = table["width"].astype(float) * table["height"].astype(float)
    return table


def image_drift(reference: pd.DataFrame, batch: pd.DataFrame, alpha: float) -> dict[str, Any]:
    """KS tests of each image statistic, Bonferroni-corrected over the statistics.

    Returns:
        ``tests`` (per statistic: KS statistic, p-value, adjusted p-value), ``drift`` (any
        adjusted p-value under ``alpha``), ``p_value`` (the smallest adjusted one).
    """
    reference, batch = with_pixels(reference), with_pixels(batch)
    columns = [c for c in IMAGE_STATISTICS if c in reference and c in batch]
    tests = {}
    for column in columns:
        a = pd.to_numeric(reference[column], errors="coerce").dropna().to_numpy()
        b = pd.to_numeric(batch[column], errors="coerce").dropna().to_numpy()
        if len(a) < 2 or len(b) < 2:
            continue
        result = stats.ks_2samp(a, b)
        tests[column] = {"statistic": float(result.statistic), "p_value": float(result.pvalue),
                         "p_adjusted": float(min(1.0, result.pvalue * len(columns))),
                         "reference_median": float(np.median(a)), "batch_median": float(np.median(b))}
    smallest = min((t["p_adjusted"] for t in tests.values()), default=1.0)
    return {"tests": tests, "p_value": smallest, "drift": bool(smallest < alpha), "alpha": alpha}


def outlier_scores(reference: pd.DataFrame, batch: pd.DataFrame) -> pd.Series:
    """Each batch image's largest robust z-score (median and MAD of the reference) over the
    image statistics: about 3.5 and above is unlike anything in the reference."""
    reference, batch = with_pixels(reference), with_pixels(batch)
    scores = np.zeros(len(batch))
    for column in IMAGE_STATISTICS:
        if column not in reference or column not in batch:
            continue
        ref = pd.to_numeric(reference[column], errors="coerce").dropna().to_numpy(dtype=float)
        if not len(ref):
            continue
        median = np.median(ref)
        mad = 1.4826 * np.median(np.abs(ref - median))
        spread = mad if mad > 0 else (np.std(ref) or 1e-12)
        values = pd.to_numeric(batch[column], errors="coerce").to_numpy(dtype=float)
        scores = np.maximum(scores, np.nan_to_num(np.abs(values - median) / spread))
    return pd.Series(scores, index=batch.index, name="outlier_score")


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T, 0.0)


def mmd_test(x: np.ndarray, y: np.ndarray, n_permutations: int = 200, seed: int = 0,
             max_samples: int = 500) -> dict[str, Any]:
    """Maximum mean discrepancy between two samples, with a permutation p-value.

    Gaussian kernel whose bandwidth is the median distance of the pooled sample; the
    unbiased estimate of MMD squared. Each side is subsampled (seeded) to ``max_samples``.
    """
    rng = np.random.default_rng(seed)
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) > max_samples:
        x = x[rng.choice(len(x), max_samples, replace=False)]
    if len(y) > max_samples:
        y = y[rng.choice(len(y), max_samples, replace=False)]
    if len(x) < 2 or len(y) < 2:
        return {"mmd2": None, "p_value": None, "note": "fewer than 2 samples on a side"}
    pooled = np.vstack([x, y])
    distances = _squared_distances(pooled, pooled)
    off_diagonal = distances[np.triu_indices(len(pooled), 1)]
    bandwidth = float(np.median(off_diagonal)) or 1.0
    kernel = np.exp(-distances / bandwidth)
    n, m = len(x), len(y)

    def statistic(order: np.ndarray) -> float:
        k = kernel[np.ix_(order, order)]
        kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
        return float((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                     - 2 * kxy.mean())

    observed = statistic(np.arange(n + m))
    exceed = sum(statistic(rng.permutation(n + m)) >= observed for _ in range(n_permutations))
    return {"mmd2": observed, "p_value": float((exceed + 1) / (n_permutations + 1)), "bandwidth": bandwidth,
            "n_reference": n, "n_batch": m, "n_permutations": n_permutations}


def prediction_drift(reference_classes: pd.Series, batch_classes: pd.Series, reference_confidence: pd.Series,
                     batch_confidence: pd.Series, classes: list[str], alpha: float) -> dict[str, Any]:
    """Label shift: the predicted-class mix (chi-square goodness of fit to the reference's
    proportions, smoothed) and the confidences (KS), Bonferroni over the two."""
    ref_counts = reference_classes.astype(str).value_counts().reindex(classes, fill_value=0).to_numpy(float)
    new_counts = batch_classes.astype(str).value_counts().reindex(classes, fill_value=0).to_numpy(float)
    expected = (ref_counts + 0.5) / (ref_counts + 0.5).sum() * new_counts.sum()
    chi2, p_mix = stats.chisquare(new_counts, expected) if new_counts.sum() else (0.0, 1.0)
    ks = stats.ks_2samp(reference_confidence.to_numpy(float), batch_confidence.to_numpy(float))
    p_mix_adj, p_conf_adj = min(1.0, float(p_mix) * 2), min(1.0, float(ks.pvalue) * 2)
    return {"class_mix": {"chi2": float(chi2), "p_value": float(p_mix), "p_adjusted": p_mix_adj,
                          "reference_share": dict(zip(classes, (ref_counts / max(ref_counts.sum(), 1)).round(4))),
                          "batch_share": dict(zip(classes, (new_counts / max(new_counts.sum(), 1)).round(4)))},
            "confidence": {"statistic": float(ks.statistic), "p_value": float(ks.pvalue), "p_adjusted": p_conf_adj,
                           "reference_median": float(reference_confidence.median()),
                           "batch_median": float(batch_confidence.median())},
            "p_value": min(p_mix_adj, p_conf_adj), "drift": bool(min(p_mix_adj, p_conf_adj) < alpha), "alpha": alpha}


def performance_drift(correct: np.ndarray, baseline_low: float, confidence: float = 0.95) -> dict[str, Any]:
    """Accuracy on a labelled batch with a Wilson interval, against the test baseline's lower bound:
    drift when the whole batch interval lies under it."""
    n = int(len(correct))
    if n == 0:
        return {"n": 0, "drift": None, "note": "no labelled image"}
    accuracy = float(np.mean(correct))
    z = stats.norm.ppf(0.5 + confidence / 2)
    centre = (accuracy + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low, high = float(centre - half), float(centre + half)
    return {"n": n, "accuracy": accuracy, "low": low, "high": high, "baseline_low": baseline_low,
            "drift": bool(high < baseline_low)}


def recommend(signals: dict[str, dict[str, Any]], outlier_share: float, evolution_share: float = 0.5) -> dict[str, str]:
    """The action the verdicts call for, with its reason (PRACTICES.md section 9).

    Args:
        signals: Verdicts by signal (``images``, ``embeddings``, ``predictions``, ``performance``),
            each with ``drift`` (True, False or None when not measured).
        outlier_share: The share of batch images unlike the reference (outlier score >= 3.5).
        evolution_share: From this share on, the new images replace the old rather than add to them.
    """
    drifting = [name for name, signal in signals.items() if signal.get("drift")]
    if not drifting:
        return {"action": "no action",
                "reason": "no signal drifts at the configured level: the model sees data like its training data"}
    only_labels = set(drifting) <= {"predictions", "performance"} and not any(
        signals.get(k, {}).get("drift") for k in ("images", "embeddings"))
    if only_labels:
        return {"action": "retrain favouring the new images",
                "reason": "the images look like the training data but the predicted classes or the performance "
                          "moved: the class frequencies or definitions evolved; rebalance the training data "
                          "towards the new batch (and check the labels)"}
    if outlier_share >= evolution_share:
        return {"action": "retrain favouring the new images",
                "reason": f"{100 * outlier_share:.0f}% of the new images are unlike any training image "
                          f"({', '.join(drifting)} drift): an evolution (new device, protocol or site) that "
                          "replaces the old data"}
    return {"action": "retrain adding the new images to the old ones",
            "reason": f"{', '.join(drifting)} drift while most new images stay within the training range "
                      f"({100 * outlier_share:.0f}% outliers): extra variability the model should learn too"}
