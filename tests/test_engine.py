"""The epoch loop's parts: each process's seeds for each epoch."""

from __future__ import annotations

import itertools

from tl_hub.training.engine import epoch_seeds


def test_a_single_process_keeps_the_seeds_it_always_had() -> None:
    for seed, epoch in itertools.product((0, 1, 42), range(1, 30)):
        assert epoch_seeds(seed, epoch, 0) == (seed * 1000 + epoch, seed * 1000 + epoch * 10)


def test_no_two_epochs_or_processes_of_a_run_share_a_seed() -> None:
    for seed in (0, 7):
        pairs = [epoch_seeds(seed, epoch, process) for epoch in range(1, 101) for process in range(16)]
        global_seeds, augment_seeds = zip(*pairs, strict=True)
        assert len(set(global_seeds)) == len(pairs) and len(set(augment_seeds)) == len(pairs)
        assert all(0 <= s < 2**32 for s in global_seeds)  # numpy's seed range, which set_seed feeds
    assert epoch_seeds(3, 5, 11) == epoch_seeds(3, 5, 11) != epoch_seeds(4, 5, 11)  # a function of the three
