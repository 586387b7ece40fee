import numpy as np
import pytest

from tl_hub.metrics import classification_metrics, scores, summary


def reference_metrics(logits: np.ndarray, labels: np.ndarray, names: list[str]) -> dict:
    """The definitions, one sample and one class at a time."""
    num_classes = len(names)
    rows = logits.tolist()
    preds = [max(range(num_classes), key=row.__getitem__) for row in rows]  # first maximum, as argmax
    cm = [[0] * num_classes for _ in range(num_classes)]
    for true, predicted in zip(labels.tolist(), preds, strict=True):
        cm[true][predicted] += 1
    f1, recall = [], {}
    for c in range(num_classes):
        support, predicted = sum(cm[c]), sum(row[c] for row in cm)
        if support:
            recall[names[c]] = cm[c][c] / support
        if support or predicted:  # a class absent from both labels and predictions is left out
            f1.append(2 * cm[c][c] / (support + predicted))
    top5 = [
        label in sorted(range(num_classes), key=lambda c: -row[c])[:5]
        for row, label in zip(rows, labels.tolist(), strict=True)
    ]
    n = len(labels)
    return {
        "accuracy": sum(p == t for p, t in zip(preds, labels.tolist(), strict=True)) / n if n else 0.0,
        "macro_f1": sum(f1) / len(f1) if f1 else 0.0,
        "top5_accuracy": sum(top5) / n if n else 0.0,
        "num_samples": n,
        "per_class_accuracy": recall,
        "confusion_matrix": cm,
    }


def assert_same(metrics: dict, expected: dict) -> None:
    assert list(metrics) == list(expected)
    for key in ("accuracy", "macro_f1", "top5_accuracy"):
        assert type(metrics[key]) is float and metrics[key] == pytest.approx(expected[key], abs=1e-12), key
    assert type(metrics["num_samples"]) is int and metrics["num_samples"] == expected["num_samples"]
    assert list(metrics["per_class_accuracy"]) == list(expected["per_class_accuracy"])
    for name, value in metrics["per_class_accuracy"].items():
        assert type(value) is float and value == pytest.approx(expected["per_class_accuracy"][name]), name
    assert metrics["confusion_matrix"] == expected["confusion_matrix"]
    assert all(type(count) is int for row in metrics["confusion_matrix"] for count in row)


def random_case(seed: int, num_classes: int, num_samples: int, present: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from the first `present` classes; logits leaning towards the label, so mostly right."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, present, size=num_samples)
    logits = rng.normal(size=(num_samples, num_classes)) + 1.5 * np.eye(num_classes)[labels]
    return logits, labels


@pytest.mark.parametrize(
    ("num_classes", "num_samples", "present"),
    [
        (2, 50, 2),
        (2, 20, 1),  # one class never occurs as a label
        (5, 40, 5),  # top-5 of 5 classes: every label is in it
        (6, 60, 6),
        (8, 300, 7),
        (43, 500, 43),
        (43, 200, 30),  # 13 classes never occur as labels; some are predicted anyway
    ],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_the_reference(num_classes: int, num_samples: int, present: int, seed: int) -> None:
    logits, labels = random_case(seed, num_classes, num_samples, present)
    names = [f"class {i}" for i in range(num_classes)]
    assert_same(classification_metrics(logits, labels, names), reference_metrics(logits, labels, names))


def test_a_class_absent_from_labels_and_predictions_is_left_out_of_macro_f1() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2])
    preds = np.array([0, 0, 1, 1, 2, 2])  # "d" is neither a label nor predicted
    m = classification_metrics(np.eye(4)[preds], labels, ["a", "b", "c", "d"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    # F1 per class: a 2*1*(2/3)/(1+2/3) = 0.8, b 0.5, c 2*0.5*1/1.5 = 2/3; d not counted (not 0 in the mean).
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert m["per_class_accuracy"] == pytest.approx({"a": 2 / 3, "b": 0.5, "c": 1.0})
    assert m["confusion_matrix"] == [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert m["top5_accuracy"] == 1.0 and m["num_samples"] == 6


def test_a_class_only_predicted_counts_zero_in_macro_f1_and_has_no_accuracy() -> None:
    labels = np.array([0, 0, 1])
    preds = np.array([0, 2, 1])  # "c" is predicted once, never a label
    m = classification_metrics(np.eye(3)[preds], labels, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1.0 + 0.0) / 3)
    assert m["per_class_accuracy"] == pytest.approx({"a": 0.5, "b": 1.0})
    assert m["confusion_matrix"] == [[1, 0, 1], [0, 1, 0], [0, 0, 0]]


def test_top5_counts_a_label_ranked_fifth_and_misses_one_ranked_sixth() -> None:
    logits = np.tile(np.arange(7.0)[::-1], (2, 1))  # class 0 ranked first ... class 6 last
    m = classification_metrics(logits, np.array([4, 5]), list("abcdefg"))
    assert m["top5_accuracy"] == 0.5 and m["accuracy"] == 0.0


@pytest.mark.parametrize("num_classes", [2, 3, 5])
def test_with_at_most_five_classes_top5_is_one(num_classes: int) -> None:
    logits, labels = random_case(0, num_classes, 30, num_classes)
    m = classification_metrics(-logits, labels, [str(i) for i in range(num_classes)])  # mostly wrong
    assert m["top5_accuracy"] == 1.0 and m["accuracy"] < 0.5


@pytest.mark.parametrize("num_classes", [2, 43])
def test_no_samples_score_zero_with_an_empty_matrix(num_classes: int) -> None:
    names = [str(i) for i in range(num_classes)]
    m = classification_metrics(np.zeros((0, num_classes)), np.zeros(0, dtype=np.int64), names)
    assert_same(m, reference_metrics(np.zeros((0, num_classes)), np.zeros(0, dtype=np.int64), names))
    assert m["confusion_matrix"] == [[0] * num_classes] * num_classes and m["per_class_accuracy"] == {}


def test_perfect_predictions_score_one() -> None:
    labels = np.array([0, 1, 2, 2])
    m = classification_metrics(np.eye(3)[labels] * 10, labels, ["a", "b", "c"])
    assert m["accuracy"] == m["macro_f1"] == m["top5_accuracy"] == 1.0


def test_summary_keeps_the_scalars() -> None:
    labels = np.array([0, 1, 1])
    m = classification_metrics(np.eye(2)[[0, 1, 0]], labels, ["a", "b"])
    assert summary(m) == {
        "accuracy": pytest.approx(2 / 3),
        "macro_f1": pytest.approx((2 / 3 + 2 / 3) / 2),
        "top5_accuracy": 1.0,
        "num_samples": 3,
    }


@pytest.mark.parametrize(("num_classes", "present"), [(2, 2), (10, 7), (43, 43)])
def test_the_evaluate_module_agrees_with_scikit_learn(num_classes: int, present: int) -> None:
    """The figures the project computed with scikit-learn before it scored through its `evaluate` module."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score, top_k_accuracy_score

    logits, labels = random_case(7, num_classes, 600, present)
    logits = logits.astype(np.float32)
    m = classification_metrics(logits, labels, [f"c{i}" for i in range(num_classes)])
    classes = np.arange(num_classes)
    preds = logits.argmax(axis=1)
    assert m["accuracy"] == pytest.approx(accuracy_score(labels, preds), abs=1e-12)
    macro_f1 = f1_score(labels, preds, average="macro", zero_division=0)
    assert m["macro_f1"] == pytest.approx(macro_f1, abs=1e-12)
    top5 = top_k_accuracy_score(labels, logits, k=5, labels=classes) if num_classes > 5 else 1.0
    assert m["top5_accuracy"] == pytest.approx(top5, abs=1e-12)
    recall = recall_score(labels, preds, labels=classes, average=None, zero_division=0)
    assert list(m["per_class_accuracy"].values()) == pytest.approx(recall[:present].tolist())
    assert m["confusion_matrix"] == confusion_matrix(labels, preds, labels=classes).tolist()


def test_the_module_loads_offline_and_accumulates_batches_like_one_compute() -> None:
    import evaluate

    from tl_hub.metrics import METRIC_PATH

    logits, labels = random_case(3, 12, 300, 12)
    whole = evaluate.load(METRIC_PATH, keep_in_memory=True).compute(
        predictions=logits, references=labels, num_classes=12
    )
    metric = evaluate.load(METRIC_PATH, keep_in_memory=True)
    for start in range(0, 300, 64):  # as the trainer's validation and scripts/evaluate.py feed it
        metric.add_batch(predictions=logits[start : start + 64], references=labels[start : start + 64])
    assert metric.compute(num_classes=12) == whole
    expected = reference_metrics(logits, labels, list("abcdefghijkl"))
    assert whole["accuracy"] == pytest.approx(expected["accuracy"])
    assert whole == scores(logits, labels, 12)  # the library's own figures, through evaluate
    combined = evaluate.combine([evaluate.load(METRIC_PATH, keep_in_memory=True)])
    assert combined.compute(predictions=logits, references=labels)["macro_f1"] == whole["macro_f1"]


@pytest.mark.slow
def test_the_module_loads_where_a_file_called_evaluate_py_comes_first_on_the_path(tmp_path) -> None:
    """As in scripts/, beside scripts/evaluate.py: load_metric() still finds the evaluate library."""
    import subprocess
    import sys

    (tmp_path / "evaluate.py").write_text("raise SystemExit('the script was imported as the library')\n")
    code = "from tl_hub.metrics import load_metric; m = load_metric(); "
    code += "print(m.compute(predictions=[[0.2, 0.8], [0.9, 0.1]], references=[1, 1])['accuracy'])"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "0.5"
