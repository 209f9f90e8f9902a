"""The over-sampling pool's selection rules on constructed loss sequences."""
import math

import pytest

from core.training.sampling import SamplePool


def test_below_threshold_is_never_kept():
    pool = SamplePool("hard", capacity=3, threshold=1.0)
    assert not pool.offer("a", 0.5)
    assert not pool.offer("b", 1.0)  # equal to T is not "larger than T"
    assert len(pool) == 0


def test_not_full_adds_every_hard_entry():
    pool = SamplePool("hard", capacity=3, threshold=1.0)
    assert pool.offer("a", 1.5) and pool.offer("b", 3.0)
    assert len(pool) == 2 and not pool.full


def test_full_replaces_the_minimum_only_when_larger():
    pool = SamplePool("hard", capacity=3, threshold=1.0)
    for item, loss in [("a", 2.0), ("b", 5.0), ("c", 3.0)]:
        pool.offer(item, loss)
    assert pool.full and pool.minimum_loss() == 2.0
    assert not pool.offer("d", 1.9)        # smaller than the minimum: dropped
    assert not pool.offer("e", 2.0)        # a tie keeps the older entry
    assert pool.offer("f", 4.0)            # replaces "a", the minimum
    assert pool.items() == [("b", 5.0), ("f", 4.0), ("c", 3.0)]
    assert pool.minimum_loss() == 3.0


def test_drain_returns_hardest_first_and_clears():
    pool = SamplePool("hard", capacity=2, threshold=0.0)
    for item, loss in [("a", 1.0), ("b", 3.0), ("c", 2.0)]:
        pool.offer(item, loss)
    assert pool.drain() == ["b", "c"]
    assert len(pool) == 0 and pool.minimum_loss() is None


def test_easy_pool_mirrors_the_rules():
    pool = SamplePool("easy", capacity=2, threshold=2.0)
    assert not pool.offer("hard", 3.0)
    pool.offer("a", 1.5)
    pool.offer("b", 0.5)
    assert pool.offer("c", 0.2)            # replaces the largest loss, "a"
    assert not pool.offer("d", 1.9)
    assert pool.drain() == ["c", "b"]


def test_random_pool_is_uniform_over_the_pass():
    counts = {i: 0 for i in range(10)}
    for seed in range(2000):
        pool = SamplePool("random", capacity=2, seed=seed)
        for i in range(10):
            pool.offer(i, float(i))
        for item in pool.drain():
            counts[item] += 1
    # each of 10 entries kept with probability 2/10: about 400 of 2000 runs
    assert all(320 < c < 480 for c in counts.values()), counts


def test_non_finite_losses_are_ignored():
    pool = SamplePool("hard", capacity=2, threshold=0.0)
    assert not pool.offer("nan", math.nan)
    assert not pool.offer("inf", math.inf)
    assert len(pool) == 0


@pytest.mark.parametrize("bad", [dict(strategy="focal"), dict(capacity=0)])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError):
        SamplePool(**bad)
