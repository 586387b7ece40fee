"""How a dataset named by `--dataset` is told apart and named for others, without loading `datasets`
(the Space, which has no `datasets`, names the data its models were trained on)."""

from __future__ import annotations

from pathlib import Path

from tl_hub.config import DataConfig

SYNTHETIC = "synthetic"  # tl_hub's rendered traffic signs


def looks_local(name: str) -> bool:
    return name.startswith((".", "/", "~")) or Path(name).exists() or name.count("/") > 1


def is_hub_dataset_id(name: str) -> bool:
    """Whether `--dataset name` refers to a Hub dataset (not a local path, not "synthetic")."""
    return name != SYNTHETIC and not looks_local(name)


def dataset_name(cfg: DataConfig) -> str:
    """How the dataset is named where others read it (model cards, the Space): `cfg.dataset_name` if given,
    a Hub id as it is, or a local directory's own name, never its path on this machine."""
    if cfg.dataset_name:
        return cfg.dataset_name
    if cfg.dataset == SYNTHETIC or is_hub_dataset_id(cfg.dataset):
        return cfg.dataset
    return Path(cfg.dataset).expanduser().resolve().name or cfg.dataset
