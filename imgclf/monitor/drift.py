"""Drift after deployment (docs/practices.md section 9): pure statistics on tables and arrays.

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
    has_mode = "mode" in reference and "mode" in batch
    n_tests = len(columns) + int(has_mode)
    tests = {}
    if has_mode:
        mode = category_shift(reference["mode"], batch["mode"])
        tests["mode"] = {**mode, "p_adjusted": float(min(1.0, mode["p_value"] * n_tests))}
    for column in columns:
        a = pd.to_numeric(reference[column], errors="coerce").dropna().to_numpy()
        b = pd.to_numeric(batch[column], errors="coerce").dropna().to_numpy()
        if len(a) < 2 or len(b) < 2:
            continue
        result = stats.ks_2samp(a, b)
        tests[column] = {"statistic": float(result.statistic), "p_value": float(result.pvalue),
                         "p_adjusted": float(min(1.0, result.pvalue * n_tests)),
                         "reference_median": float(np.median(a)), "batch_median": float(np.median(b))}
    smallest = min((t["p_adjusted"] for t in tests.values()), default=1.0)
    return {"tests": tests, "p_value": smallest, "drift": bool(smallest < alpha), "alpha": alpha}


def category_shift(reference: pd.Series, batch: pd.Series) -> dict[str, Any]:
    """Chi-square goodness of fit of the batch's category counts (image modes, classes) to the
    reference's proportions, smoothed by half a count so that a category the reference never
    had is a strong signal rather than a division by zero."""
    categories = sorted(set(reference.astype(str)) | set(batch.astype(str)))
    ref_counts = reference.astype(str).value_counts().reindex(categories, fill_value=0).to_numpy(float)
    new_counts = batch.astype(str).value_counts().reindex(categories, fill_value=0).to_numpy(float)
    share = lambda counts: {c: round(float(v), 4) for c, v in zip(categories, counts / max(counts.sum(), 1))}
    if len(categories) < 2 or not new_counts.sum():
        chi2, p_value = 0.0, 1.0
    else:
        expected = (ref_counts + 0.5) / (ref_counts + 0.5).sum() * new_counts.sum()
        chi2, p_value = stats.chisquare(new_counts, expected)
    return {"chi2": float(chi2), "p_value": float(p_value), "reference_share": share(ref_counts),
            "batch_share": share(new_counts)}


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
             max_samples: int = 2000, alpha: float | None = None) -> dict[str, Any]:
    """Maximum mean discrepancy between two samples, with a permutation p-value.

    Gaussian kernel whose bandwidth is the median distance of the pooled sample; the
    unbiased estimate of MMD squared. A side larger than ``max_samples`` is subsampled
    (seeded): the kernel matrix grows with the square of the pooled size. With ``alpha``,
    the result carries its verdict (``drift``), as the other tests' do.
    """
    rng = np.random.default_rng(seed)
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) > max_samples:
        x = x[rng.choice(len(x), max_samples, replace=False)]
    if len(y) > max_samples:
        y = y[rng.choice(len(y), max_samples, replace=False)]
    if len(x) < 2 or len(y) < 2:
        return {"mmd2": None, "p_value": None, "note": "fewer than 2 samples on a side", "drift": None,
                "alpha": alpha}
    pooled = np.vstack([x, y])
    distances = _squared_distances(pooled, pooled)
    off_diagonal = distances[np.triu_indices(len(pooled), 1)]
    bandwidth = float(np.median(off_diagonal)) or 1.0
    kernel = np.exp(-distances / bandwidth)
    n, m = len(x), len(y)
    # Every permutation at once: row p of `members` marks the images playing the reference.
    # Sums of the kernel over x-x, x-y and y-y pairs are then matrix products (the diagonal
    # of a Gaussian kernel is 1), which is far faster than indexing the kernel per permutation.
    members = np.zeros((n_permutations + 1, n + m))
    members[0, :n] = 1.0
    for row in range(1, n_permutations + 1):
        members[row, rng.permutation(n + m)[:n]] = 1.0
    sxx = np.einsum("pi,pi->p", members @ kernel, members)
    sxy = members @ kernel.sum(1) - sxx
    syy = kernel.sum() - sxx - 2 * sxy
    values = (sxx - n) / (n * (n - 1)) + (syy - m) / (m * (m - 1)) - 2 * sxy / (n * m)
    observed = float(values[0])
    exceed = int(np.sum(values[1:] >= observed - 1e-12))
    p_value = float((exceed + 1) / (n_permutations + 1))
    result = {"mmd2": observed, "p_value": p_value, "bandwidth": bandwidth,
              "n_reference": n, "n_batch": m, "n_permutations": n_permutations}
    if alpha is not None:
        result.update(drift=bool(p_value < alpha), alpha=alpha)
    return result


def prediction_drift(reference_classes: pd.Series, batch_classes: pd.Series, reference_confidence: pd.Series,
                     batch_confidence: pd.Series, classes: list[str], alpha: float) -> dict[str, Any]:
    """Label shift: the predicted-class mix (chi-square goodness of fit to the reference's
    proportions, smoothed) and the confidences (KS), Bonferroni over the two."""
    mix = category_shift(pd.Categorical(reference_classes.astype(str), categories=classes).astype(str),
                         pd.Series(batch_classes.astype(str)))
    for name in ("reference_share", "batch_share"):
        mix[name] = {c: mix[name].get(c, 0.0) for c in classes}
    ks = stats.ks_2samp(reference_confidence.to_numpy(float), batch_confidence.to_numpy(float))
    p_mix_adj, p_conf_adj = min(1.0, mix["p_value"] * 2), min(1.0, float(ks.pvalue) * 2)
    return {"class_mix": {**mix, "p_adjusted": p_mix_adj},
            "confidence": {"statistic": float(ks.statistic), "p_value": float(ks.pvalue), "p_adjusted": p_conf_adj,
                           "reference_median": float(reference_confidence.median()),
                           "batch_median": float(batch_confidence.median())},
            "p_value": min(p_mix_adj, p_conf_adj), "drift": bool(min(p_mix_adj, p_conf_adj) < alpha), "alpha": alpha}


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (sound for small n and proportions near 0 or 1)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    z = stats.norm.ppf(0.5 + confidence / 2)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def performance_drift(correct: np.ndarray, baseline_correct: int, baseline_n: int, alpha: float,
                      confidence: float = 0.95) -> dict[str, Any]:
    """Accuracy on a labelled batch against the deployed model's test accuracy.

    Both accuracies come with Wilson intervals; the verdict is a one-sided Fisher exact test
    (is the batch accuracy lower than the test one?) at ``alpha``.
    """
    n = int(len(correct))
    if n == 0:
        return {"n": 0, "drift": None, "note": "no labelled image of a known class"}
    hits = int(np.sum(correct))
    _, p_value = stats.fisher_exact([[hits, n - hits], [baseline_correct, baseline_n - baseline_correct]],
                                    alternative="less")
    low, high = wilson_interval(hits, n, confidence)
    base_low, base_high = wilson_interval(baseline_correct, baseline_n, confidence)
    return {"n": n, "accuracy": hits / n, "low": low, "high": high,
            "baseline": {"n": baseline_n, "accuracy": baseline_correct / baseline_n if baseline_n else None,
                         "low": base_low, "high": base_high},
            "p_value": float(p_value), "drift": bool(p_value < alpha), "alpha": alpha,
            "confidence": confidence}


#: The three recommendations, and the retraining mode of ``python -m imgclf.retrain`` for each.
NO_ACTION = "no action"
RETRAIN_ADDING = "retrain adding the new images to the old ones"
RETRAIN_FAVOURING = "retrain favouring the new images"
RETRAIN_MODE = {RETRAIN_ADDING: "add", RETRAIN_FAVOURING: "favour"}


def recommend(signals: dict[str, dict[str, Any]], outlier_share: float, evolution_share: float = 0.5,
              unknown_labels: list[str] | tuple[str, ...] = ()) -> dict[str, str]:
    """The action the verdicts call for, with its reason (docs/practices.md section 9).

    Args:
        signals: Verdicts by signal (``images``, ``embeddings``, ``predictions``, ``performance``),
            each with ``drift`` (True, False or None when not measured).
        outlier_share: The share of batch images unlike the reference (outlier score >= 3.5).
        evolution_share: From this share on, the new images replace the old rather than add to them.
        unknown_labels: Labels of the batch that are not classes of the model: the task itself
            evolved, even when no signal drifts.
    """
    drifting = [name for name, signal in signals.items() if signal.get("drift")]
    if not drifting:
        if unknown_labels:
            return {"action": RETRAIN_FAVOURING,
                    "reason": f"the batch holds class(es) the model does not know ({', '.join(unknown_labels)}): "
                              "the task itself evolved"}
        return {"action": NO_ACTION,
                "reason": "no signal drifts at the configured level: the model sees data like its training data"}
    only_labels = set(drifting) <= {"predictions", "performance"} and not any(
        signals.get(k, {}).get("drift") for k in ("images", "embeddings"))
    if only_labels:
        return {"action": RETRAIN_FAVOURING,
                "reason": "the images look like the training data but the predicted classes or the performance "
                          "moved: the class frequencies or definitions evolved; rebalance the training data "
                          "towards the new batch (and check the labels)"}
    if outlier_share >= evolution_share:
        return {"action": RETRAIN_FAVOURING,
                "reason": f"{100 * outlier_share:.0f}% of the new images are unlike any training image "
                          f"({', '.join(drifting)} drift): an evolution (new device, protocol or site) that "
                          "replaces the old data"}
    return {"action": RETRAIN_ADDING,
            "reason": f"{', '.join(drifting)} drift while most new images stay within the training range "
                      f"({100 * outlier_share:.0f}% outliers): extra variability the model should learn too"}
