"""The model's policy (docs/API.md section 4): smoothed rates, ties to vowel, seeded exploration."""
import pytest

from server.model import NO_STATS, GuessStats, Policy


def greedy():
    return Policy(epsilon=0.0, seed=1)


@pytest.mark.parametrize("stats", [
    NO_STATS,
    GuessStats(n_vowel=4, f_vowel=2, n_consonant=4, f_consonant=2),
    # (0+1)/(0+2) == (1+1)/(2+2): equal smoothed rates from different counts.
    GuessStats(n_vowel=0, f_vowel=0, n_consonant=2, f_consonant=1),
    GuessStats(n_vowel=2, f_vowel=1, n_consonant=0, f_consonant=0),
    GuessStats(n_vowel=98, f_vowel=49, n_consonant=8, f_consonant=4),
])
def test_ties_go_to_vowel(stats):
    assert greedy().guess(stats) is True


@pytest.mark.parametrize("stats, expected", [
    (GuessStats(n_vowel=10, f_vowel=8, n_consonant=10, f_consonant=2), True),
    (GuessStats(n_vowel=10, f_vowel=2, n_consonant=10, f_consonant=8), False),
    # Smoothing decides: raw rates 1/1 vs 60/100, smoothed 2/3 (0.667) vs 61/102 (0.598).
    (GuessStats(n_vowel=1, f_vowel=1, n_consonant=100, f_consonant=60), True),
    # Raw 0/0 is unknown, smoothed 1/2; it beats a consonant at 30/100 (31/102).
    (GuessStats(n_vowel=0, f_vowel=0, n_consonant=100, f_consonant=30), True),
    (GuessStats(n_vowel=0, f_vowel=0, n_consonant=100, f_consonant=70), False),
    # Differences far below float resolution of the raw rates still decide exactly.
    (GuessStats(n_vowel=10**12, f_vowel=10**12 // 2, n_consonant=10**12 + 2,
                f_consonant=10**12 // 2 + 1), True),
    (GuessStats(n_vowel=10**12, f_vowel=10**12 // 2 - 1, n_consonant=10**12,
                f_consonant=10**12 // 2), False),
])
def test_picks_the_higher_smoothed_rate(stats, expected):
    assert greedy().guess(stats) is expected


def test_epsilon_zero_never_explores_and_one_always_does():
    stats = GuessStats(n_vowel=10, f_vowel=9, n_consonant=10, f_consonant=1)
    assert all(Policy(epsilon=0.0, seed=3).guess(stats) for _ in range(1000))
    assert not any(Policy(epsilon=1.0, seed=3).guess(stats) for _ in range(1000))


@pytest.mark.parametrize("best_is_vowel", [True, False])
def test_exploration_frequency_is_epsilon(best_is_vowel):
    stats = (GuessStats(n_vowel=10, f_vowel=9, n_consonant=10, f_consonant=1) if best_is_vowel
             else GuessStats(n_vowel=10, f_vowel=1, n_consonant=10, f_consonant=9))
    policy = Policy(epsilon=0.1, seed=20240305)
    draws = 20_000
    explored = sum(policy.guess(stats) != best_is_vowel for _ in range(draws))
    # Binomial(20000, 0.1): sd ~42, so +-300 is over 7 sd; the seed makes it exact anyway.
    assert 1700 <= explored <= 2300


def test_default_epsilon_is_a_tenth():
    assert Policy().epsilon == 0.1


def test_same_seed_same_guesses_different_seed_different_guesses():
    stats = GuessStats(n_vowel=5, f_vowel=3, n_consonant=5, f_consonant=2)

    def run(seed):
        policy = Policy(epsilon=0.5, seed=seed)
        return [policy.guess(stats) for _ in range(200)]

    assert run(42) == run(42)
    assert run(42) != run(43)
