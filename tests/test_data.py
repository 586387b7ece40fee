import re
from pathlib import Path

import datasets
import numpy as np
import pytest

from tl_hub.config import DataConfig, PreprocessConfig
from tl_hub.data.loading import decode_split, prepare_data, resolve_columns, track_groups
from tl_hub.data.sources import open_dataset
from tl_hub.data.splits import stratified_group_split, stratified_sample
from tl_hub.errors import DatasetError

from .conftest import NUM_CLASSES, png_bytes

GRAY = PreprocessConfig(input_size=32, grayscale=True, equalize="clahe", mean=(0.5,), std=(0.2887,))


def _prepare(dataset: str | Path, **kwargs) -> object:
    return prepare_data(DataConfig(dataset=str(dataset), val_fraction=0.25, **kwargs), GRAY, seed=0)


def test_parquet_directory_gets_a_track_separated_stratified_validation_split(parquet_dir: Path) -> None:
    data = _prepare(parquet_dir)
    assert data.label_names[0] == "Speed limit (20km/h)"
    assert len(data.train) + len(data.validation) == 12 * NUM_CLASSES
    assert data.train.images.shape[1:] == (1, 32, 32)
    # one track of 3 frames out of 4 per class is held out: 3 images of each class
    assert np.bincount(data.validation.labels.numpy()).tolist() == [3] * NUM_CLASSES
    assert "whole GTSRB tracks" in data.validation_from
    assert data.test is None


def test_tracks_never_straddle_the_split(parquet_dir: Path) -> None:
    ds = datasets.load_dataset(str(parquet_dir))["train"]
    paths = ds.cast_column("image", datasets.Image(decode=False))["image"]
    labels = np.array(ds["label"])
    groups = track_groups([p["path"] for p in paths], labels)
    assert groups is not None
    for seed in range(5):
        train_idx, val_idx = stratified_group_split(labels, groups, 0.25, seed)
        assert not set(groups[train_idx]) & set(groups[val_idx])
        assert sorted(np.concatenate([train_idx, val_idx]).tolist()) == list(range(len(labels)))


def test_split_is_seeded() -> None:
    labels = np.repeat(np.arange(4), 25)
    a = stratified_group_split(labels, None, 0.2, seed=7)
    b = stratified_group_split(labels, None, 0.2, seed=7)
    c = stratified_group_split(labels, None, 0.2, seed=8)
    assert np.array_equal(a[1], b[1]) and not np.array_equal(a[1], c[1])
    assert np.bincount(labels[a[1]]).tolist() == [5, 5, 5, 5]


def test_names_without_track_pattern_give_no_groups() -> None:
    assert track_groups(["a/cat.jpg", "b/dog.jpg"], np.array([0, 1])) is None
    assert track_groups([None, None], np.array([0, 1])) is None


def test_image_folder_with_train_and_test(imagefolder_dir: Path) -> None:
    data = _prepare(imagefolder_dir)
    assert data.label_names == [f"class_{i}" for i in range(NUM_CLASSES)]
    assert data.test is not None and len(data.test) == 3 * NUM_CLASSES
    assert "stratified by class" in data.validation_from


def test_save_to_disk_with_other_column_names_and_its_own_validation_split(disk_dir: Path) -> None:
    data = _prepare(disk_dir)
    assert data.label_names == [f"c{i}" for i in range(NUM_CLASSES)]
    assert data.validation_from == "the dataset's 'validation' split"
    assert len(data.validation) == 15


def test_a_stratified_train_sample_keeps_each_class_share(
    parquet_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="tl_hub.data.loading")
    data = _prepare(parquet_dir, train_size=20, train_sample="stratified")
    assert len(data.train) == 20
    assert np.bincount(data.train.labels.numpy()).tolist() == [4] * NUM_CLASSES  # 9 of each class left
    assert "train: a class-stratified sample of 20 images, seed 2" in caplog.text
    for n in (1, NUM_CLASSES - 1, 44):  # 45 training images after the validation split
        assert len(_prepare(parquet_dir, train_size=n, train_sample="stratified").train) == n


SKEWED = np.repeat(np.arange(6), [500, 200, 150, 90, 45, 15])  # 1000 labels, class-ordered


@pytest.mark.parametrize("n", [1, 4, 100, 333, len(SKEWED) - 1])
def test_stratified_sample_takes_exactly_n_within_one_of_each_class_share(n: int) -> None:
    idx = stratified_sample(SKEWED, n, seed=0)
    assert len(idx) == len(np.unique(idx)) == n and np.all(np.diff(idx) > 0)
    share = n * np.bincount(SKEWED) / len(SKEWED)
    assert np.all(np.abs(np.bincount(SKEWED[idx], minlength=6) - share) < 1)


def test_stratified_sample_of_n_or_more_is_everything() -> None:
    assert np.array_equal(stratified_sample(SKEWED, len(SKEWED), seed=0), np.arange(len(SKEWED)))
    assert np.array_equal(stratified_sample(SKEWED, 5000, seed=0), np.arange(len(SKEWED)))


def test_stratified_sample_is_seeded() -> None:
    a, b = stratified_sample(SKEWED, 100, seed=3), stratified_sample(SKEWED, 100, seed=3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, stratified_sample(SKEWED, 100, seed=4))


def test_fewer_samples_than_classes_draw_random_classes_not_the_first_ones() -> None:
    labels = np.repeat(np.arange(43), 10)  # class-ordered, as GTSRB's folders are
    chosen = [tuple(np.unique(labels[stratified_sample(labels, 5, seed)])) for seed in range(20)]
    assert all(len(c) == 5 for c in chosen)  # one image from each of 5 classes
    assert (0, 1, 2, 3, 4) not in chosen and len(set(chosen)) > 10


def test_synthetic_dataset_has_all_43_classes() -> None:
    dsd = open_dataset("synthetic", synthetic_per_class=2)
    assert set(dsd) == {"train", "validation", "test"}
    assert dsd["train"].features["label"].num_classes == 43
    assert sorted(set(dsd["train"]["label"])) == list(range(43))


def test_a_synthetic_split_read_alone_is_the_same_split_rendered_with_the_others() -> None:
    alone = open_dataset("synthetic", synthetic_per_class=4, split="validation")
    assert set(alone) == {"validation"}  # evaluate.py renders only the split it scores
    whole = open_dataset("synthetic", synthetic_per_class=4)
    assert alone["validation"]["label"] == whole["validation"]["label"]
    pixels = [np.asarray(d["validation"][5]["image"]) for d in (alone, whole)]
    assert np.array_equal(*pixels)
    with pytest.raises(DatasetError, match="split 'nope' not in dataset 'synthetic': choose one of train, "):
        open_dataset("synthetic", synthetic_per_class=4, split="nope")


def test_columns_named_by_flag_and_bad_columns_explained() -> None:
    features = datasets.Features(
        {"photo": datasets.Image(), "caption": datasets.Value("string"), "y": datasets.Value("int64")}
    )
    with pytest.raises(
        DatasetError, match="no image column found among: caption; name it with --image-column COLUMN"
    ):
        resolve_columns(datasets.Features({"caption": datasets.Value("string")}), None, None)
    assert resolve_columns(features, None, "y") == ("photo", "y")
    with pytest.raises(DatasetError, match="column 'caption' holds Value values, not images"):
        resolve_columns(features, "caption", "y")
    with pytest.raises(DatasetError, match="label column 'kind' not in the dataset; its columns are"):
        resolve_columns(features, "photo", "kind")
    with pytest.raises(DatasetError, match=r"column 'caption' holds .* not integer class labels"):
        resolve_columns(features, "photo", "caption")


def test_corrupt_images_are_skipped_and_counted(signs, caplog: pytest.LogCaptureFixture) -> None:
    images, labels = signs
    rows = [{"bytes": png_bytes(a), "path": f"{i}.png"} for i, a in enumerate(images[:6])]
    rows[2] = {"bytes": b"not an image at all", "path": "broken.png"}
    rows[4] = {"bytes": png_bytes(images[4])[:40], "path": "truncated.png"}
    ds = datasets.Dataset.from_dict(
        {"image": rows, "label": labels[:6].tolist()},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")}),
    )
    split, skipped = decode_split(ds, "image", "label", GRAY, "train")
    assert skipped == 2 and len(split) == 4
    assert "broken.png" in caplog.text and re.search(r"skipped 2 unreadable image\(s\) of 6", caplog.text)


def test_missing_local_path_is_named() -> None:
    with pytest.raises(DatasetError, match=r"dataset path './no/such/dir' does not exist"):
        open_dataset("./no/such/dir")


def test_unreachable_hub_suggests_synthetic_or_a_local_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DatasetError, match=r"cannot reach the Hugging Face Hub.*--dataset synthetic"):
        open_dataset("someone/some-dataset-that-is-not-cached")


def test_empty_dataset_is_refused(tmp_path: Path) -> None:
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    (tmp_path / "empty" / "data").mkdir(parents=True)
    datasets.Dataset.from_dict({"image": [], "label": []}, features=features).to_parquet(
        str(tmp_path / "empty" / "data" / "train.parquet")
    )
    with pytest.raises(DatasetError, match="is empty: it has no rows"):
        _prepare(tmp_path / "empty")


def test_directory_without_data_files_is_explained(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="holds no data files: expected parquet files, an image folder"):
        _prepare(tmp_path)
