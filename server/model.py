"""The server's "best guess" (docs/API.md section 4): one policy, used by every backend.

Per symbol and guess g, n_g conversations got guess g and f_g of them followed up.
Pick the g with the higher smoothed followup rate (f+1)/(n+2), ties to vowel, and
explore the other guess with probability epsilon.
"""
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class GuessStats:
    n_vowel: int = 0
    n_consonant: int = 0
    f_vowel: int = 0
    f_consonant: int = 0


NO_STATS = GuessStats()


class Policy:
    def __init__(self, epsilon=0.1, seed=None):
        self.epsilon = epsilon
        self._rng = random.Random(seed)

    def guess(self, stats: GuessStats) -> bool:
        # Cross-multiplied comparison of (f_v+1)/(n_v+2) >= (f_c+1)/(n_c+2): exact in ints.
        best = (stats.f_vowel + 1) * (stats.n_consonant + 2) >= (stats.f_consonant + 1) * (
            stats.n_vowel + 2
        )
        if self._rng.random() < self.epsilon:
            return not best
        return best
