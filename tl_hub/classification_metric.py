"""tl_hub's classification metrics as a Hugging Face `evaluate` module, loadable offline:

    import evaluate
    metric = evaluate.load(tl_hub.metrics.METRIC_PATH)  # this file
    metric.add_batch(predictions=logits, references=labels)  # per batch, as often as needed
    metric.compute(num_classes=43)

Predictions are each sample's logits (or any scores, one per class); references the true class indices.
`compute` gives accuracy, macro-F1, top-5 accuracy, per-class recall and the confusion matrix, computed by
`tl_hub.metrics.scores` (scikit-learn's definitions; `tests/test_metrics.py` compares them).

The Hub's metric scripts (`evaluate.load("accuracy")`) need the network; this one is a file of the package.
`evaluate` copies it into its module cache and imports it from there, so it imports tl_hub absolutely.
"""

import datasets
import evaluate
import numpy as np

from tl_hub.metrics import scores

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
        logits = np.asarray(predictions, dtype=np.float64)
        if num_classes is None:
            num_classes = logits.shape[1] if logits.ndim == 2 else 0
        return scores(logits, np.asarray(references, dtype=np.int64), num_classes)
