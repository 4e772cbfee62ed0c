"""The statistics of a score: Wilson intervals, McNemar's exact test, per-template rates.

Plain functions over counts, with no third-party dependency, so a reader can check them by
hand:

- :func:`wilson_interval`: the Wilson score interval without continuity correction (Wilson
  1927; Newcombe 1998, method 3). Unlike the Wald interval it stays inside [0, 1] and keeps
  close to its nominal coverage for small n and for accuracies near 0 or 1, which is where
  chart-reading scores of small models live.
- :func:`mcnemar_exact`: McNemar's exact (conditional) test for two models scored on the same
  items: under "equally accurate", each discordant item (one right, the other wrong) is a
  fair coin, so the two-sided p-value is ``min(1, 2 P(X <= min(b, c)))`` with
  ``X ~ Binomial(b + c, 1/2)`` (Fagerland, Lydersen and Laake 2013). Computed exactly with
  integers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: The two-sided 95 % normal quantile, Phi^-1(0.975).
Z_95 = 1.959963984540054
#: "A beats B" is said only when McNemar's p is below this.
SIGNIFICANCE = 0.05


def wilson_interval(correct: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval for ``correct`` successes out of ``n`` (95 % by default).

    ``n == 0`` gives (0.0, 1.0): nothing is known. Raises ValueError for counts that are
    not ``0 <= correct <= n``.
    """
    if n < 0 or correct < 0 or correct > n:
        raise ValueError(f"need 0 <= correct <= n, got correct={correct}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    # At p = 0 or 1 the bound is exactly 0 or 1; rounding must not move it off.
    low = 0.0 if correct == 0 else max(0.0, centre - half)
    high = 1.0 if correct == n else min(1.0, centre + half)
    return low, high


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts: ``b`` items only the
    first model got right, ``c`` items only the second got right. 1.0 when b + c == 0."""
    if b < 0 or c < 0:
        raise ValueError("discordant counts cannot be negative")
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1))
    # 2 * tail / 2**n, capped at 1 (b == c): exact in integers, one division at the end.
    return min(1.0, (2 * tail) / (1 << n))


@dataclass(frozen=True)
class Paired:
    """Two profiles on the same items: ``b`` right only for ``a``, ``c`` right only for
    ``b_name``; ``p`` is McNemar's exact p-value; ``better`` names the more accurate one
    when p < SIGNIFICANCE, else is empty."""

    a: str
    b_name: str
    n: int  # items both scored
    both: int
    b: int
    c: int
    p: float

    @property
    def better(self) -> str:
        if self.p >= SIGNIFICANCE or self.b == self.c:
            return ""
        return self.a if self.b > self.c else self.b_name

    def verdict(self) -> str:
        """One line a reader can quote: who is better, or that the items cannot tell."""
        if not self.n:
            return f"{self.a} vs {self.b_name}: no item scored by both."
        if self.better:
            worse = self.b_name if self.better == self.a else self.a
            return (
                f"{self.better} reads these charts better than {worse} "
                f"(McNemar exact p {p_equals(self.p)}, {self.b} vs {self.c} discordant items)."
            )
        return (
            f"{self.a} vs {self.b_name}: no significant difference on {self.n} items "
            f"(McNemar exact p {p_equals(self.p)}, {self.b} vs {self.c} discordant)."
        )


def paired(a: str, b_name: str, right_a: dict[str, bool], right_b: dict[str, bool]) -> Paired:
    """Compare two profiles on the items both have scored (item id -> right or not)."""
    common = [k for k in right_a if k in right_b]
    both = sum(1 for k in common if right_a[k] and right_b[k])
    only_a = sum(1 for k in common if right_a[k] and not right_b[k])
    only_b = sum(1 for k in common if right_b[k] and not right_a[k])
    return Paired(a, b_name, len(common), both, only_a, only_b, mcnemar_exact(only_a, only_b))


def format_p(p: float) -> str:
    """A p-value as a reader expects it: three decimals, or ``< 0.001``."""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def p_equals(p: float) -> str:
    """``= 0.070`` or ``< 0.001``, to follow a "p"."""
    text = format_p(p)
    return text if text.startswith("<") else f"= {text}"


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


__all__ = [
    "SIGNIFICANCE",
    "Z_95",
    "Paired",
    "format_p",
    "mcnemar_exact",
    "mean",
    "p_equals",
    "paired",
    "wilson_interval",
]
