"""The reported interval covers the true accuracy about 95 % of the time, over many seeds,
end to end: the suite goes through the real question path to the vLLM test server, whose
oracle answers each item right with a known probability p (tests/servers/score_oracle.py).

How the acceptance band is made (and what it can and cannot say):

- Run k (of K = 300) asks n = 10 suite items of a reader with accuracy p_k, spread evenly
  over 0.5..0.9 (where model scores live), its draws seeded by k. Whether run k's reported
  interval covers p_k is a Bernoulli variable with probability C(n, p_k), the Wilson
  interval's exact coverage (summed over the binomial distribution, as in test_stats).
  Because Wilson's coverage oscillates with p, one fixed p could sit anywhere between 92
  and 98 %; averaged over the spread it is 95.6 %, "about 95 %".
- The number of covering runs then follows a Poisson-binomial distribution, computed here
  exactly. The test accepts the central 99 % of it (277 to 295 of 300 for these settings).
  A correct scorer falls outside with probability 1 % over the choice of seeds; the seeds
  are fixed, so the outcome is deterministic (no flakes), and that 1 % is the chance that
  this fixed set of seeds is unlucky.
- Power: an interval that covered 90 % instead of 95 % (e.g. z = 1.645) would be caught
  with probability 0.81; the gross errors this end-to-end test is for (n counting failed
  items, a right answer judged wrong, the interval of another count) are caught outright
  by the per-run check that the reported count equals the oracle's own count.
"""

from __future__ import annotations

import asyncio
import math

from kanoa_desktop.core.ask.services import Services
from kanoa_desktop.core.config.profiles import Profile
from kanoa_desktop.core.endpoint.pool import ClientPool
from kanoa_desktop.core.score import question as Q
from kanoa_desktop.core.score.run import ScoreRun, suite_source
from kanoa_desktop.core.score.stats import wilson_interval
from tests.servers.score_oracle import ScoreOracle
from tests.servers.vllm_server import VLLMTestServer

RUNS = 300
N = 10
LEVEL = 0.01


def accuracies() -> list[float]:
    return [0.5 + 0.4 * (k + 0.5) / RUNS for k in range(RUNS)]


def exact_coverage(n: int, p: float) -> float:
    return sum(
        math.comb(n, k) * p**k * (1 - p) ** (n - k)
        for k in range(n + 1)
        if wilson_interval(k, n)[0] <= p <= wilson_interval(k, n)[1]
    )


def acceptance_band(coverages: list[float], level: float) -> tuple[int, int]:
    """The central 1 - level of the Poisson-binomial distribution of covering runs."""
    dist = [1.0]
    for c in coverages:
        nxt = [0.0] * (len(dist) + 1)
        for i, v in enumerate(dist):
            nxt[i] += v * (1 - c)
            nxt[i + 1] += v * c
        dist = nxt
    cdf, acc = [], 0.0
    for v in dist:
        acc += v
        cdf.append(acc)
    low = next(x for x in range(len(cdf)) if cdf[x] >= level / 2)
    high = next(x for x in range(len(cdf)) if 1 - cdf[x] < level / 2)
    return low, high


def test_the_band_is_what_the_docstring_says():
    coverages = [exact_coverage(N, p) for p in accuracies()]
    assert abs(sum(coverages) / RUNS - 0.956) < 0.001
    assert acceptance_band(coverages, LEVEL) == (277, 295)


async def test_the_reported_interval_covers_the_true_accuracy_about_95_percent_of_the_time():
    source = suite_source(N, 11)
    figures = {i.id: Q.prepare(i, 1024) for i in source.items}
    covered = 0
    pool = ClientPool()
    # Five servers, five runs at a time (each run still one profile on its own server).
    servers = [VLLMTestServer(tokens_per_second=20_000).start() for _ in range(5)]

    async def one(k: int, p: float, server: VLLMTestServer) -> bool:
        oracle = ScoreOracle(source.items, p, seed=k, figures=figures)
        server.answer_for = oracle
        profile = Profile(name="oracle", api_base=server.api_base, temperature=0.0)
        ended = await ScoreRun(source, [profile], Services(pool), concurrency=N).run()
        (s,) = ended.summaries
        assert oracle.unmatched == []
        assert (s.n, s.correct) == (N, oracle.right()), k  # the count is the reader's
        assert (s.ci_low, s.ci_high) == wilson_interval(s.correct, s.n)
        return s.ci_low <= p <= s.ci_high

    try:
        ps = accuracies()
        for start in range(0, RUNS, len(servers)):
            batch = range(start, min(RUNS, start + len(servers)))
            results = await asyncio.gather(
                *(one(k, ps[k], srv) for k, srv in zip(batch, servers, strict=False))
            )
            covered += sum(results)
    finally:
        for srv in servers:
            srv.stop()
        await pool.aclose()
    low, high = acceptance_band([exact_coverage(N, p) for p in accuracies()], LEVEL)
    print(f"{covered} of {RUNS} intervals covered p (accepted: {low} to {high})")
    assert low <= covered <= high, f"{covered} of {RUNS} intervals covered p"
