"""tl_hub's classification metrics as a Hugging Face `evaluate` module, loadable offline:

    import evaluate
    metric = evaluate.load(tl_hub.metrics.METRIC_PATH)  # this file
    metric.add_batch(predictions=logits, references=labels)  # per batch, as often as needed
    metric.compute(num_classes=43)

Predictions are each sample's logits (or any scores, one per class); references the true class indices.
`compute` gives accuracy, macro-F1, top-5 accuracy, per-class recall and the confusion matrix, with
scikit-learn's definitions (`tests/test_metrics.py` compares them): macro-F1 averages over the classes that
occur as a label or a prediction; top-5 ranks tied scores as scikit-learn's stable sort does; with at most
five classes top-5 is 1.0; with no samples every score is 0.0.

The Hub's metric scripts (`evaluate.load("accuracy")`) need the network; this one is a file of the package.
It imports nothing from tl_hub: `evaluate` copies it into its module cache and imports it from there.
"""

import datasets
import evaluate
import numpy as np

TOP_K = 5

_DESCRIPTION = "Accuracy, macro-F1, top-5 accuracy, per-class recall and the confusion matrix, from logits."
_INPUTS = """
Args:
    predictions: per sample, one score per class (logits or probabilities).
    references: per sample, the true class index.
    num_classes: the number of classes (default: the number of scores per sample).
Returns:
    accuracy, macro_f1, top5_accuracy (floats), num_samples (int), per_class_recall (a list, None for a
    class with no sample), confusion_matrix (a list of lists of int, [true][predicted]).
"""


class ClassificationMetric(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_INPUTS,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float32")),
                    "references": datasets.Value("int64"),
                }
            ),
        )

    def _compute(self, predictions, references, num_classes: int | None = None) -> dict:
        labels = np.asarray(references, dtype=np.int64)
        scores = np.asarray(predictions, dtype=np.float64)
        if num_classes is None:
            num_classes = scores.shape[1] if scores.ndim == 2 else 0
        scores = scores.reshape(len(labels), num_classes)
        if len(labels) == 0:
            cm = np.zeros((num_classes, num_classes), dtype=np.int64)
            return _result(cm, 0.0, 0.0, 0.0, 0)
        preds = scores.argmax(axis=1)
        cm = np.bincount(labels * num_classes + preds, minlength=num_classes * num_classes)
        cm = cm.reshape(num_classes, num_classes)  # cm[true, predicted]
        support, predicted, hits = cm.sum(axis=1), cm.sum(axis=0), np.diag(cm)
        present = (support + predicted) > 0  # a class absent from both is left out of the mean
        f1 = 2 * hits[present] / (support[present] + predicted[present])
        if num_classes > TOP_K:
            # as scikit-learn's top_k_accuracy_score: a stable sort, reversed (ties: the higher index first)
            ranked = np.argsort(scores, axis=1, kind="mergesort")[:, ::-1][:, :TOP_K]
            top_k = float((ranked == labels[:, None]).any(axis=1).mean())
        else:
            top_k = 1.0
        return _result(cm, float(hits.sum() / len(labels)), float(f1.mean()), top_k, len(labels))


def _result(cm: np.ndarray, accuracy: float, macro_f1: float, top_k: float, n: int) -> dict:
    support = cm.sum(axis=1)
    recall = [float(cm[c, c] / support[c]) if support[c] else None for c in range(len(cm))]
    return {
        "accuracy": accuracy,
        "macro_f1": macro_f1,
        "top5_accuracy": top_k,
        "num_samples": n,
        "per_class_recall": recall,
        "confusion_matrix": cm.tolist(),
    }
