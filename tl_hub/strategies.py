"""The transfer strategies as data: which parameter groups train, from which epoch, at which learning rate.

A strategy is one record. The groups are read from the model by `tl_hub.models.anatomy` (the head; the
base's last stage, "top"; the rest of the base), so one record serves every architecture. The trainer's
optimizer groups, the epochs at which groups join, what checkpoints may skip and what the feature cache
may hold (`Strategy.cache`) all follow from the record (`tl_hub.training.strategies.TransferPlan`); a new
strategy is a new entry in `STRATEGIES`, with no branch to add anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

GROUPS = ("head", "top", "rest")
GROUP_WORDS = {"head": "the head", "top": "the base's last stage", "rest": "the base below its last stage"}


@dataclass(frozen=True)
class Stage:
    """Groups that train together: from the epoch after `after` epochs (a TransferConfig field, or none: from
    the first epoch), at the head's learning rate times `lr_scale` (a TransferConfig field, or 1)."""

    groups: tuple[str, ...]
    lr_scale: str | None = None  # e.g. "top_lr_scale"
    after: str | None = None  # e.g. "head_epochs"

    def first_epoch(self, transfer: object) -> int:
        """The 1-based epoch from which this stage trains under `transfer` (a TransferConfig)."""
        return 1 if self.after is None else int(getattr(transfer, self.after)) + 1

    def scale(self, transfer: object) -> float:
        """This stage's learning rate relative to the head's, under `transfer` (a TransferConfig)."""
        return 1.0 if self.lr_scale is None else float(getattr(transfer, self.lr_scale))

    @property
    def words(self) -> str:
        """The groups in a reader's words."""
        groups = set(self.groups)
        if groups == set(GROUPS):
            return "every layer"
        if groups == {"top", "rest"}:
            return "the whole base"
        return " and ".join(GROUP_WORDS[g] for g in self.groups)


@dataclass(frozen=True)
class Strategy:
    name: str
    words: str  # what it trains, in a reader's words (the model card, the report)
    stages: tuple[Stage, ...]
    pretrained: bool = True  # starts from pretrained weights (scratch: random)

    @property
    def trained_groups(self) -> frozenset[str]:
        return frozenset(g for stage in self.stages for g in stage.groups)

    @property
    def caches_features(self) -> bool:
        """Only the head ever trains, so the base's output per image never changes and may be cached."""
        return self.cache == "head-input"

    @property
    def cache(self) -> str | None:
        """What the feature cache may hold, read from the groups that train:

        - "head-input": only the head trains, so what the head reads never changes (feature-extract);
        - "prefix": the base below its last stage never trains, so that prefix's output per view never
          changes, and the last stage trains with the head on it (finetune-top; in a sequential base);
        - None: every layer trains, nothing is fixed.
        """
        trained = self.trained_groups
        if trained == {"head"}:
            return "head-input"
        if "rest" not in trained:
            return "prefix"
        return None


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy(
            "scratch",
            "every layer trained from random weights",
            (Stage(GROUPS),),
            pretrained=False,
        ),
        Strategy(
            "feature-extract",
            "the pretrained base frozen (feature extraction), a new head trained",
            (Stage(("head",)),),
        ),
        Strategy(
            "finetune-top",
            "a new head trained, then the base's last block fine-tuned with it; the rest frozen",
            (Stage(("head",)), Stage(("top",), lr_scale="top_lr_scale", after="head_epochs")),
        ),
        Strategy(
            "finetune-all",
            "every layer fine-tuned, with a new head",
            (Stage(("head",)), Stage(("top", "rest"), lr_scale="base_lr_scale")),
        ),
    )
}
STRATEGY_NAMES = tuple(STRATEGIES)


def get_strategy(name: str) -> Strategy:
    """The strategy called `name` (a TransferConfig has checked it is one)."""
    return STRATEGIES[name]
