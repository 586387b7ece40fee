"""Seeded, class-stratified, group-aware index splits."""

from __future__ import annotations

import numpy as np


def stratified_group_split(
    labels: np.ndarray, groups: np.ndarray | None, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (kept, held_out) with about `fraction` of each class held out.

    Whole groups (e.g. GTSRB tracks: ~30 frames of one physical sign) go to one side, so near-duplicate
    frames never straddle the split. Every class with at least two groups keeps one on each side.
    Deterministic for a given seed; both index arrays are sorted.
    """
    rng = np.random.default_rng(seed)
    if groups is None:
        groups = np.arange(len(labels))
    held_out: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        class_groups = np.unique(groups[idx])
        rng.shuffle(class_groups)
        sizes = np.array([np.count_nonzero(groups[idx] == g) for g in class_groups])
        target = fraction * len(idx)
        # Take groups in shuffled order until the held-out share reaches the target (at least one group,
        # never all of them).
        n_take = int(np.searchsorted(np.cumsum(sizes), target, side="left")) + 1
        n_take = min(max(n_take, 1), len(class_groups) - 1)
        if n_take <= 0:
            continue
        chosen = class_groups[:n_take]
        held_out.append(idx[np.isin(groups[idx], chosen)])
    held = np.sort(np.concatenate(held_out)) if held_out else np.array([], dtype=np.int64)
    kept = np.setdiff1d(np.arange(len(labels)), held)
    return kept, held


def balanced_sample(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded sample of `n` items with the classes as equal as possible.

    Each class gets n // C items (the first n % C classes one more); a class with fewer gives all it has and
    the others make up the difference.
    """
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    pools = {c: rng.permutation(np.flatnonzero(labels == c)) for c in classes}
    quota = {c: n // len(classes) + (i < n % len(classes)) for i, c in enumerate(classes)}
    short = sum(max(0, quota[c] - len(pools[c])) for c in classes)
    taken = {c: min(quota[c], len(pools[c])) for c in classes}
    while short > 0:  # hand the shortfall to classes with images to spare, one at a time
        spare = [c for c in classes if taken[c] < len(pools[c])]
        if not spare:
            break
        for c in spare[:short]:
            taken[c] += 1
            short -= 1
    return np.sort(np.concatenate([pools[c][: taken[c]] for c in classes]))


def stratified_sample(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded sample of exactly `n` items (all of them if `n >= len(labels)`), each
    class in proportion to its share of `labels`.

    Each class gets the whole part of its proportional share; the items left over go one each to the
    classes with the largest remainders (the largest remainder method), ties broken at random. So every
    class is within one item of its proportional share, and with fewer items than classes the classes
    that get one are a seeded random choice, not the first ones.
    """
    assert n >= 0, n
    if n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota, remainder = np.divmod(n * counts, len(labels))  # exact integers: equal shares tie exactly
    by_remainder = np.lexsort((rng.random(len(classes)), -remainder))  # largest first, ties at random
    quota[by_remainder[: n - quota.sum()]] += 1  # never more than a class has: n < len(labels)
    picks = [
        rng.choice(np.flatnonzero(labels == c), size=k, replace=False)
        for c, k in zip(classes, quota, strict=True)
    ]
    return np.sort(np.concatenate(picks))
