"""Test images that every final model gets wrong: where models trained from different seeds
agree on the same wrong answer, the cause is more often the image or its label than the model.

Pure functions on the evaluation rule's prediction tables (one per final model, in the test
manifest's order). The summary lists these images; the report's diagnosis makes the confident
ones a data finding (docs/evaluate.md, "Images every model gets wrong").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

#: An agreed error is *confident* when the models' mean probability of the image's label is at
#: most this: every model is sure of another class (a label error looks like this; a hard case
#: between two close classes rarely does).
CONFIDENT_WRONG = 0.1
#: How many agreed errors the summary lists (most confident first); the count covers them all.
LISTED = 50
#: What to do with them (the summary, the report and the diagnosis's next action say it).
LABEL_CHECK = ("Have their labels checked by someone who knows the classes, without seeing the models' answers, "
               "and the training images' labels the same way. Fix a wrong label in the data (a new data "
               "version); never drop only the test images the models miss, which would flatter the test figure.")


def agreed_errors(tables: list[pd.DataFrame]) -> dict[str, Any] | None:
    """The test images that every model got wrong, most confident first.

    Args:
        tables: Each final model's test predictions (:func:`imgclf.evaluate.metrics.predictions_table`:
            ``path``, ``label``, ``predicted``, ``p_<class>``), all of the same test manifest.

    Returns:
        None for fewer than two models (one model's errors say nothing of agreement). Otherwise
        ``models``, ``n_test``, ``count`` (images every model got wrong), ``same_answer`` (of
        those, the ones every model gave the same wrong class), ``confident`` (of those, the ones
        whose mean probability of their label is at most :data:`CONFIDENT_WRONG`),
        ``mean_errors`` (each model's errors, averaged) and ``images``: up to :data:`LISTED` of
        them (``path``, ``label``, ``answered``: the class most models gave, ``p_label``: the
        models' mean probability of the label, ``same_answer``), lowest ``p_label`` first.

    Raises:
        ValueError: The tables do not list the same images in the same order.
    """
    if len(tables) < 2:
        return None
    first = tables[0]
    for table in tables[1:]:
        if len(table) != len(first) or not (table["path"].to_numpy() == first["path"].to_numpy()).all():
            raise ValueError("the models' test predictions do not list the same images in the same order")
    labels = first["label"].astype(str).to_numpy()
    answers = np.array([table["predicted"].astype(str).to_numpy() for table in tables])
    wrong = answers != labels
    every = wrong.all(axis=0)
    names = sorted(set(labels))
    missing = [f"p_{name}" for table in tables for name in names if f"p_{name}" not in table.columns]
    if missing:
        raise ValueError(f"the test predictions have no probability column {missing[0]}")
    # Each image's probability of its own label, averaged over the models.
    column_of = np.array([names.index(label) for label in labels])
    rows = np.arange(len(first))
    p_label = np.mean([table[[f"p_{name}" for name in names]].to_numpy(dtype=float)[rows, column_of]
                       for table in tables], axis=0)
    same = (answers == answers[0]).all(axis=0)
    images = []
    for i in sorted(np.flatnonzero(every), key=lambda i: (p_label[i], first["path"].iloc[i]))[:LISTED]:
        values, counts = np.unique(answers[:, i], return_counts=True)
        images.append({"path": str(first["path"].iloc[i]), "label": str(labels[i]),
                       "answered": str(values[counts.argmax()]), "p_label": round(float(p_label[i]), 4),
                       "same_answer": bool(same[i])})
    return {"models": len(tables), "n_test": len(first), "count": int(every.sum()),
            "same_answer": int((every & same).sum()),
            "confident": int((every & same & (p_label <= CONFIDENT_WRONG)).sum()),
            "mean_errors": float(wrong.sum(axis=1).mean()), "images": images}


def agreed_errors_markdown(agreed: dict[str, Any] | None) -> list[str]:
    """The summary's section on the images every model got wrong (empty without agreement data)."""
    if not agreed:
        return []
    lines = ["", "## Images every model gets wrong", "",
             f"{agreed['count']} of {agreed['n_test']} test images were misclassified by all {agreed['models']} "
             f"final models (each model got {agreed['mean_errors']:.1f} wrong on average); {agreed['confident']} of "
             f"them with every model giving the same other class and a mean probability of the label of at most "
             f"{CONFIDENT_WRONG:g}. {LABEL_CHECK}"]
    if agreed["images"]:
        lines += ["", "| image | label | answered | mean probability of the label |", "|---|---|---|---|"]
        lines += [f"| {m['path']} | {m['label']} | {m['answered']} | {m['p_label']:.4f} |" for m in agreed["images"]]
        if agreed["count"] > len(agreed["images"]):
            lines.append(f"\n(The first {len(agreed['images'])}; the other {agreed['count'] - len(agreed['images'])}, "
                         "with higher probabilities of their label, are not listed.)")
    return lines
