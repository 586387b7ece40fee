import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, top_k_accuracy_score

from tl_hub.metrics import classification_metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_agree_with_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    num_classes = 8
    labels = rng.integers(0, num_classes - 1, size=300)  # the last class never occurs as a label
    logits = rng.normal(size=(300, num_classes)) + 2.0 * np.eye(num_classes)[labels]
    names = [f"class {i}" for i in range(num_classes)]
    m = classification_metrics(logits, labels, names)
    preds = logits.argmax(1)
    assert m["accuracy"] == pytest.approx(accuracy_score(labels, preds))
    assert m["macro_f1"] == pytest.approx(f1_score(labels, preds, average="macro"))
    assert m["top5_accuracy"] == pytest.approx(
        top_k_accuracy_score(labels, logits, k=5, labels=np.arange(num_classes))
    )
    assert m["confusion_matrix"] == confusion_matrix(labels, preds, labels=np.arange(num_classes)).tolist()
    for i, name in enumerate(names[:-1]):
        assert m["per_class_accuracy"][name] == pytest.approx((preds[labels == i] == i).mean())
    assert names[-1] not in m["per_class_accuracy"]


def test_perfect_predictions_score_one() -> None:
    labels = np.array([0, 1, 2, 2])
    m = classification_metrics(np.eye(3)[labels] * 10, labels, ["a", "b", "c"])
    assert m["accuracy"] == m["macro_f1"] == m["top5_accuracy"] == 1.0
