"""Datasets: Hub ids, local directories and tl_hub's synthetic traffic signs, as canonical tensors."""

from tl_hub.data.gtsrb import GTSRB_CLASS_NAMES
from tl_hub.data.loading import PreparedData, SplitData, open_dataset, prepare_data

__all__ = ["GTSRB_CLASS_NAMES", "PreparedData", "SplitData", "open_dataset", "prepare_data"]
