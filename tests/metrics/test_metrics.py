"""Parsing and deriving: every expected number below is worked out by hand in a comment."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from kanoa_desktop.core.monitor.metrics import (
    MetricsBodyError,
    MetricsDeriver,
    ServerKind,
    histogram_quantile,
    parse_scrape,
)
from tests.metrics.bodies import Series, vllm_body

DATA = Path(__file__).parent / "data"
REFERENCE = Path(__file__).parents[1] / "data" / "vllm-0.33-metrics.prom"


def derive(*bodies_at: tuple[str, float], deriver: MetricsDeriver | None = None):
    deriver = deriver or MetricsDeriver()
    snapshot = None
    for body, at in bodies_at:
        snapshot = deriver.update(parse_scrape(body, at))
    return snapshot


# --- histogram_quantile ------------------------------------------------------------------


def test_quantile_interpolates_linearly_inside_the_bucket_holding_the_rank():
    # 10 observations: 2 in (0, 1], 8 in (1, 3]. p50: rank 5 is 3 of 8 into (1, 3]
    # -> 1 + 2 * 3/8 = 1.75.
    buckets = [(1.0, 2.0), (3.0, 10.0), (math.inf, 10.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(1.75)


def test_quantile_in_first_bucket_starts_from_zero():
    # 4 observations all in (0, 0.2]: p50 rank 2 -> 0.2 * 2/4 = 0.1.
    assert histogram_quantile(0.5, [(0.2, 4.0), (math.inf, 4.0)]) == pytest.approx(0.1)


def test_quantile_in_the_inf_bucket_returns_the_highest_finite_bound():
    assert histogram_quantile(0.95, [(1.0, 1.0), (2.0, 1.0), (math.inf, 10.0)]) == 2.0


def test_quantile_of_an_empty_histogram_is_none_not_zero():
    assert histogram_quantile(0.5, [(1.0, 0.0), (math.inf, 0.0)]) is None
    assert histogram_quantile(0.5, []) is None


# --- vLLM, two scrapes -------------------------------------------------------------------


def test_token_rates_are_counter_increases_over_the_seconds_between_scrapes():
    a = vllm_body(Series(prompt=100, generation=50))
    b = vllm_body(Series(prompt=300, generation=150))
    m = derive((a, 10.0), (b, 12.0))
    assert m.prompt_tokens_per_s == pytest.approx(100.0)  # 200 tokens / 2 s
    assert m.generation_tokens_per_s == pytest.approx(50.0)  # 100 tokens / 2 s


def test_first_scrape_has_no_rates_or_quantiles():
    m = derive((vllm_body(Series(prompt=100, ttft=[1, 1, 1, 1, 1])), 0.0))
    assert m.prompt_tokens_per_s is None
    assert m.ttft_p95_s is None
    assert m.preemptions_per_min is None


def test_ttft_quantiles_come_from_bucket_deltas_between_scrapes():
    # Bounds 0.1 0.25 0.5 1 +Inf. Delta = [0, 2, 6, 8, 8] (8 new requests).
    # p50: rank 4 in (0.25, 0.5] holding 4 (2 below) -> 0.25 + 0.25 * 2/4 = 0.375.
    # p95: rank 7.6 in (0.5, 1] holding 2 (6 below) -> 0.5 + 0.5 * 1.6/2 = 0.9.
    a = vllm_body(Series(ttft=[1, 2, 2, 2, 2]))
    b = vllm_body(Series(ttft=[1, 4, 8, 10, 10]))
    m = derive((a, 0.0), (b, 1.0))
    assert m.ttft_p50_s == pytest.approx(0.375)
    assert m.ttft_p95_s == pytest.approx(0.9)


def test_quantiles_with_no_new_observations_are_none():
    a = vllm_body(Series(ttft=[1, 2, 2, 2, 2]))
    m = derive((a, 0.0), (a, 1.0))
    assert m.ttft_p50_s is None and m.ttft_p95_s is None


def test_quantiles_cover_only_the_last_minute():
    # t=0 -> t=30: 10 slow requests in (0.5, 1]. t=30 -> t=100: 10 fast ones in (0, 0.1].
    # At t=100 the window base is the scrape at t=30 (newest at or before 100-60=40), so only
    # the fast ones count: p50 rank 5 of 10 in (0, 0.1] -> 0.05.
    scrapes = [
        (vllm_body(Series(e2e=[0, 0, 0, 0, 0], ttft=[0, 0, 0, 0, 0])), 0.0),
        (vllm_body(Series(ttft=[0, 0, 0, 10, 10])), 30.0),
        (vllm_body(Series(ttft=[5, 5, 5, 15, 15])), 55.0),
        (vllm_body(Series(ttft=[10, 10, 10, 20, 20])), 100.0),
    ]
    m = derive(*scrapes)
    assert m.ttft_p50_s == pytest.approx(0.05)
    assert m.window_s == pytest.approx(70.0)


def test_inter_token_and_e2e_quantiles():
    # ITL bounds 0.01 0.025 0.05 0.1: delta [0, 10, 10, 10, 10] -> all in (0.01, 0.025];
    # p50 rank 5 -> 0.01 + 0.015 * 5/10 = 0.0175.
    # E2E bounds 1 2.5 5 10: delta [0, 0, 4, 4, 4] -> p95 rank 3.8 -> 2.5 + 2.5 * 3.8/4 = 4.875.
    a = vllm_body(Series())
    b = vllm_body(Series(itl=[0, 10, 10, 10, 10], e2e=[0, 0, 4, 4, 4]))
    m = derive((a, 0.0), (b, 1.0))
    assert m.itl_p50_s == pytest.approx(0.0175)
    assert m.e2e_p95_s == pytest.approx(4.875)


def test_counter_reset_takes_the_new_value_as_the_increase():
    # Server restarted between scrapes: 5000 -> 40. 40 tokens counted since, over 2 s.
    m = derive((vllm_body(Series(prompt=5000)), 0.0), (vllm_body(Series(prompt=40)), 2.0))
    assert m.prompt_tokens_per_s == pytest.approx(20.0)


def test_histogram_reset_uses_the_new_counts():
    # 100 observations before the restart, then 4 in (0.1, 0.25]: p50 rank 2 of 4
    # -> 0.1 + 0.15 * 2/4 = 0.175.
    a = vllm_body(Series(ttft=[50, 80, 100, 100, 100]))
    b = vllm_body(Series(ttft=[0, 4, 4, 4, 4]))
    assert derive((a, 0.0), (b, 1.0)).ttft_p50_s == pytest.approx(0.175)


def test_preemptions_per_minute_and_prefix_hit_rate_over_the_window():
    # 3 preemptions in 30 s -> 6 per minute. 200 queried tokens, 50 hits -> 25 %.
    a = vllm_body(Series(preemptions=1, queries=1000, hits=900))
    b = vllm_body(Series(preemptions=4, queries=1200, hits=950))
    m = derive((a, 0.0), (b, 30.0))
    assert m.preemptions_per_min == pytest.approx(6.0)
    assert m.prefix_cache_hit_rate == pytest.approx(0.25)
    assert m.prefix_cache_hit_rate_lifetime == pytest.approx(950 / 1200)
    assert any("preempted 3 requests in the last minute" in w for w in m.warnings)


def test_model_selection_picks_one_model_or_sums_all():
    a = vllm_body(Series(model="a", prompt=0, running=1), Series(model="b", prompt=0, running=2))
    b = vllm_body(Series(model="a", prompt=10, running=1), Series(model="b", prompt=30, running=2))
    both = derive((a, 0.0), (b, 1.0))
    only_b = derive((a, 0.0), (b, 1.0), deriver=MetricsDeriver(model="b"))
    assert both.models == ("a", "b")
    assert both.prompt_tokens_per_s == pytest.approx(40.0)
    assert both.requests_running == 3.0
    assert only_b.prompt_tokens_per_s == pytest.approx(30.0)
    assert only_b.requests_running == 2.0
    assert only_b.model == "b"


def test_a_model_the_server_does_not_serve_gives_unknown_values_not_zeros():
    a = vllm_body(Series(model="a", prompt=0, running=1))
    b = vllm_body(Series(model="a", prompt=10, running=1))
    m = derive((a, 0.0), (b, 1.0), deriver=MetricsDeriver(model="gone"))
    assert m.models == ("a",)
    assert m.requests_running is None and m.prompt_tokens_per_s is None
    assert m.kv_cache_usage is None


def test_engines_are_summed_and_kv_cache_reports_the_fullest_engine():
    a = vllm_body(Series(engine="0", kv=0.2, waiting=1), Series(engine="1", kv=0.95, waiting=0))
    m = derive((a, 0.0))
    assert m.engines == ("0", "1")
    assert m.kv_cache_usage == pytest.approx(0.95)
    assert m.requests_waiting == 1.0
    assert any(w.startswith("KV cache is 95% full") for w in m.warnings)


def test_changing_the_model_clears_rates():
    deriver = MetricsDeriver()
    derive((vllm_body(Series(model="a", prompt=0)), 0.0), deriver=deriver)
    deriver.model = "a"
    m = derive((vllm_body(Series(model="a", prompt=10)), 1.0), deriver=deriver)
    assert m.prompt_tokens_per_s is None


@pytest.mark.parametrize("style", ["old", "multiprocess"])
def test_old_names_and_multiprocess_bodies_give_the_same_numbers(style):
    a = vllm_body(Series(prompt=0, kv=0.5, queries=0, hits=0, itl=[0] * 5), style=style)
    b = vllm_body(
        Series(prompt=50, kv=0.5, queries=100, hits=40, itl=[0, 10, 10, 10, 10]), style=style
    )
    m = derive((a, 0.0), (b, 1.0))
    assert m.kind is ServerKind.VLLM
    assert m.kv_cache_usage == 0.5
    assert m.prompt_tokens_per_s == pytest.approx(50.0)
    assert m.prefix_cache_hit_rate == pytest.approx(0.4)
    assert m.itl_p50_s == pytest.approx(0.0175)


def test_old_names_fixture_file():
    m = derive(((DATA / "vllm-old-names.prom").read_text(), 0.0))
    assert m.kv_cache_usage == pytest.approx(0.93)
    assert m.prefix_cache_hit_rate_lifetime == pytest.approx(0.25)  # 100 / 400 blocks
    assert m.finished_reasons == {"stop": 60, "length": 20}
    assert m.engines == ()
    assert len(m.warnings) == 2  # KV cache above 90 %, 2 requests waiting


def test_multiprocess_fixture_file_sums_two_models():
    m = derive(((DATA / "vllm-multiprocess.prom").read_text(), 0.0))
    assert m.models == ("molmo-7b", "qwen2.5-vl-7b")
    assert m.requests_running == 3.0
    assert m.prefix_cache_hit_rate_lifetime == pytest.approx(800 / 4000)
    assert m.finished_reasons == {"stop": 10, "abort": 1}


def test_reference_vllm_body():
    m = derive((REFERENCE.read_text(), 0.0))
    assert m.kind is ServerKind.VLLM
    assert m.models == ("qwen2.5-vl-7b",)
    assert m.engines == ("0",)
    assert m.requests_running == 0.0  # a real zero, read from the body
    assert m.kv_cache_usage == 0.0
    assert m.finished_reasons["stop"] == 3 and m.finished_reasons["length"] == 1
    assert m.prefix_cache_hit_rate_lifetime == pytest.approx(1520 / 2925)
    assert m.warnings == ()


def test_filtered_parse_keeps_the_same_samples_as_a_full_parse():
    body = REFERENCE.read_text()
    fast = parse_scrape(body, 0.0)
    full = parse_scrape(body, 0.0, keep_all=True)
    assert fast.samples
    for name, pairs in fast.samples.items():
        assert list(pairs) == list(full.samples[name])


# --- llama.cpp and DCGM ------------------------------------------------------------------


def test_llamacpp_rates_busy_speeds_and_queue():
    a = (DATA / "llamacpp-a.prom").read_text()
    b = (DATA / "llamacpp-b.prom").read_text()
    first = derive((a, 0.0))
    # First scrape: only llama-server's own gauges (averages since its previous scrape).
    assert first.kind is ServerKind.LLAMACPP
    assert first.prompt_speed_tok_s == 300.0 and first.generation_speed_tok_s == 125.0
    assert first.requests_running == 1.0 and first.requests_waiting == 2.0
    m = derive((a, 0.0), (b, 2.0))
    # prompt 36 -> 136 over 2 s = 50 tok/s; busy 0.12 -> 0.52 s, 100 / 0.4 = 250 tok/s.
    assert m.prompt_tokens_per_s == pytest.approx(50.0)
    assert m.prompt_speed_tok_s == pytest.approx(250.0)
    # generation 200 -> 300 over 2 s = 50 tok/s; busy 1.6 -> 2.6 s, 100 / 1.0 = 100 tok/s.
    assert m.generation_tokens_per_s == pytest.approx(50.0)
    assert m.generation_speed_tok_s == pytest.approx(100.0)
    assert m.requests_waiting == 0.0
    assert m.kv_cache_usage is None  # llama-server does not publish it


def test_llamacpp_idle_between_scrapes_has_no_busy_speed():
    a = (DATA / "llamacpp-a.prom").read_text()
    m = derive((a, 0.0), (a, 1.0))
    assert m.generation_tokens_per_s == 0.0  # wall-clock rate: truly nothing generated
    assert m.generation_speed_tok_s is None  # speed while busy: never busy, so unknown


def test_dcgm_gpus_and_warnings():
    m = derive(((DATA / "dcgm.prom").read_text(), 0.0))
    assert m.kind is ServerKind.DCGM
    assert [g.gpu for g in m.gpus] == ["0", "1"]
    g0 = m.gpus[0]
    assert g0.name == "NVIDIA H100 80GB HBM3"
    assert (g0.utilization_pct, g0.fb_used_mib, g0.fb_free_mib) == (87.0, 79000.0, 1000.0)
    assert (g0.temperature_c, g0.power_w) == (86.0, 612.5)
    assert g0.fb_used_fraction == pytest.approx(79000 / 80000)
    assert any("GPU 0 memory is 99% full" in w for w in m.warnings)
    assert any("GPU 0 is at 86 °C" in w for w in m.warnings)
    assert not any("GPU 1" in w for w in m.warnings)
    assert m.requests_running is None


# --- bad bodies --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    ["", "   \n", "<!DOCTYPE html><html><body>Not Found</body></html>", '{"detail":"Not Found"}'],
)
def test_bodies_that_are_not_prometheus_raise_a_readable_error(body):
    with pytest.raises(MetricsBodyError) as info:
        parse_scrape(body, 0.0)
    assert "metrics" in str(info.value)


def test_a_valid_body_from_another_exporter_is_kind_unknown():
    scrape = parse_scrape("# TYPE up gauge\nup 1\n", 0.0)
    assert scrape.kind is ServerKind.UNKNOWN
    m = MetricsDeriver().update(scrape)
    assert m.requests_running is None and m.kv_cache_usage is None


def test_snapshot_to_dict_is_json_ready():
    import json

    m = derive(((DATA / "dcgm.prom").read_text(), 0.0))
    data = json.loads(json.dumps(m.to_dict()))
    assert data["kind"] == "dcgm" and data["gpus"][0]["power_w"] == 612.5
