"""Tests of the vLLM 0.33 stand-in itself, over real HTTP with httpx."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.servers.vllm_server import (
    ANSWER_PIECES,
    REASONING_PIECES,
    VLLMTestServer,
    prompt_tokens,
)

pytestmark = pytest.mark.vllm

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "vllm-0.33-metrics.prom"
MODEL = "qwen2.5-vl-7b"
HELLO = [{"role": "user", "content": "Describe this figure, please."}]
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


@pytest.fixture
def server() -> Iterator[VLLMTestServer]:
    with VLLMTestServer(tokens_per_second=2000, answer_tokens=12) as srv:
        yield srv


@pytest.fixture
def client(server: VLLMTestServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=10) as c:
        yield c


def chat(model: str = MODEL, messages: Any = None, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": messages if messages is not None else HELLO, **extra}


def sse_events(response: httpx.Response) -> list[str]:
    """Every SSE line in order: ``data`` payloads as they are, comments with their colon."""
    return [line.removeprefix("data: ") for line in response.iter_lines() if line]


def stream(client: httpx.Client, body: dict[str, Any]) -> list[str]:
    with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        return sse_events(r)


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def sample(text: str, name: str, **labels: str) -> float:
    labels = {"model_name": MODEL, "engine": "0", **labels}
    return metric_samples(text)[(name, tuple(sorted(labels.items())))]


# --------------------------------------------------------------------------- endpoints


def test_models_lists_context_window_root_and_lora_entry() -> None:
    with VLLMTestServer(max_model_len=4096, lora_modules=("figures-lora",)) as srv:
        data = httpx.get(srv.api_base + "/models").json()
    assert data["object"] == "list"
    base, lora = data["data"]
    assert base["id"] == MODEL
    assert base["root"] == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert base["parent"] is None
    assert base["max_model_len"] == 4096
    assert base["permission"][0]["object"] == "model_permission"
    assert lora["id"] == "figures-lora"
    assert lora["parent"] == MODEL
    assert lora["max_model_len"] is None


def test_health_ping_version_load_answer_like_vllm(
    server: VLLMTestServer, client: httpx.Client
) -> None:
    for path in ("/health", "/ping"):
        r = client.get(path)
        assert (r.status_code, r.content) == (200, b"")
    assert client.get("/version").json() == {"version": "0.33.0"}
    assert client.get("/load").json() == {"server_load": 0}
    server.set_engine_dead(True)
    assert client.get("/health").status_code == 503
    assert client.get("/ping").status_code == 503
    r = client.post("/v1/chat/completions", json=chat())
    assert r.status_code == 500
    assert r.json()["error"]["code"] == 500


def test_unknown_route_and_wrong_method_answer_like_fastapi(client: httpx.Client) -> None:
    assert client.get("/v1/nope").json() == {"detail": "Not Found"}
    r = client.get("/v1/chat/completions")
    assert (r.status_code, r.json()) == (405, {"detail": "Method Not Allowed"})


def test_tokenize_counts_follow_the_documented_tokenizer(client: httpx.Client) -> None:
    r = client.post("/tokenize", json={"model": MODEL, "prompt": "Hello, world!"})
    assert r.json()["count"] == 4  # Hello , world !
    messages = [{"role": "user", "content": [{"type": "text", "text": "Hi there"}, IMAGE]}]
    body = client.post(
        "/tokenize", json={"model": MODEL, "messages": messages, "return_token_strs": True}
    ).json()
    # 5 template tokens for the message + 2 words + 256 image tokens + 3 for the reply prompt
    assert body["count"] == 5 + 2 + 256 + 3 == prompt_tokens(messages)
    assert body["max_model_len"] == 32768
    assert len(body["tokens"]) == body["count"]
    assert body["token_strs"][:3] == ["<|im_start|>", "user", "\n"]


# --------------------------------------------------------------------------- streaming


def test_stream_sends_role_content_finish_then_done_without_usage(client: httpx.Client) -> None:
    events = stream(client, chat())
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len({c["id"] for c in chunks}) == 1
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == MODEL for c in chunks)
    first, *middle, last = chunks
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "prompt_token_ids" in first
    assert all(c["choices"][0]["finish_reason"] is None for c in middle)
    assert "".join(c["choices"][0]["delta"]["content"] for c in middle) == "".join(
        ANSWER_PIECES[:12]
    )
    assert last["choices"][0]["delta"] == {"content": ""}
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["choices"][0]["stop_reason"] is None
    assert not any("usage" in c for c in chunks)


def test_usage_chunk_with_empty_choices_only_when_include_usage(client: httpx.Client) -> None:
    events = stream(client, chat(stream_options={"include_usage": True}))
    assert events[-1] == "[DONE]"
    usage_chunk = json.loads(events[-2])
    assert usage_chunk["choices"] == []
    # 12 answer pieces plus the end-of-sequence token
    assert usage_chunk["usage"]["completion_tokens"] == 13
    assert usage_chunk["usage"]["prompt_tokens"] == prompt_tokens(HELLO)
    assert usage_chunk["usage"]["total_tokens"] == prompt_tokens(HELLO) + 13
    assert all("usage" not in json.loads(e) for e in events[:-2])


def test_continuous_usage_stats_put_growing_usage_on_every_chunk(client: httpx.Client) -> None:
    opts = {"include_usage": True, "continuous_usage_stats": True}
    events = stream(client, chat(stream_options=opts))
    chunks = [json.loads(e) for e in events[:-1]]
    completion = [c["usage"]["completion_tokens"] for c in chunks]
    assert completion[0] == 0  # the role chunk
    assert completion == sorted(completion)
    assert completion[-1] == completion[-2] == 13


def test_max_tokens_cut_ends_with_length_on_the_last_content_chunk(client: httpx.Client) -> None:
    events = stream(client, chat(max_tokens=5, stream_options={"include_usage": True}))
    chunks = [json.loads(e) for e in events[:-1]]
    content = [c for c in chunks if c["choices"]][1:]
    assert len(content) == 5
    assert content[-1]["choices"][0]["finish_reason"] == "length"
    assert content[-1]["choices"][0]["delta"]["content"] == ANSWER_PIECES[4]
    assert chunks[-1]["usage"]["completion_tokens"] == 5


def test_non_stream_returns_message_usage_and_extra_keys(client: httpx.Client) -> None:
    body = client.post("/v1/chat/completions", json=chat(max_tokens=200)).json()
    choice = body["choices"][0]
    assert body["object"] == "chat.completion"
    assert choice["message"]["content"] == "".join(ANSWER_PIECES[:12])
    assert choice["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] == 13
    assert "kv_transfer_params" in body


def test_reasoning_streams_before_content() -> None:
    with VLLMTestServer(tokens_per_second=2000, answer_tokens=4, reasoning=True) as srv:
        with httpx.Client(base_url=srv.base_url) as c:
            events = stream(c, chat())
    deltas = [json.loads(e)["choices"][0]["delta"] for e in events[1:-2]]
    kinds = [next(iter(d)) for d in deltas]
    assert kinds == ["reasoning"] * len(REASONING_PIECES) + ["content"] * 4
    assert "".join(d["reasoning"] for d in deltas if "reasoning" in d) == "".join(REASONING_PIECES)


def test_keepalive_comments_are_sent_when_enabled() -> None:
    with VLLMTestServer(tokens_per_second=2000, answer_tokens=12, keepalive_comments=True) as srv:
        with httpx.Client(base_url=srv.base_url) as c:
            events = stream(c, chat())
    assert ": keep-alive" in events
    assert events[-1] == "[DONE]"


# --------------------------------------------------------------------------- errors


def error_of(r: httpx.Response) -> dict[str, Any]:
    body = r.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == r.status_code
    return body["error"]


def test_unknown_model_is_404_with_valid_aliases(client: httpx.Client) -> None:
    r = client.post("/v1/chat/completions", json=chat(model="gpt-4"))
    err = error_of(r)
    assert r.status_code == 404
    assert err["message"] == f"The model `gpt-4` does not exist. Valid aliases: {MODEL}."
    assert (err["type"], err["param"]) == ("NotFoundError", "model")


def test_context_overflow_is_400_with_both_numbers() -> None:
    long = [{"role": "user", "content": "word " * 100}]
    with VLLMTestServer(max_model_len=64) as srv, httpx.Client(base_url=srv.base_url) as c:
        r = c.post("/v1/chat/completions", json=chat(messages=long))
        r_with_max = c.post("/v1/chat/completions", json=chat(max_tokens=60))
    n = prompt_tokens(long)
    err = error_of(r)
    assert r.status_code == 400 and err["type"] == "BadRequestError"
    assert err["message"].startswith(
        f"This model's maximum context length is 64 tokens. However, your prompt contains "
        f"at least {n} input tokens"
    )
    assert r_with_max.status_code == 400
    assert "maximum context length is 64 tokens" in error_of(r_with_max)["message"]
    assert f"at least {prompt_tokens(HELLO)} input tokens" in error_of(r_with_max)["message"]


def test_max_tokens_above_max_model_len_is_400(client: httpx.Client) -> None:
    r = client.post("/v1/chat/completions", json=chat(max_tokens=40000))
    assert r.status_code == 400
    assert error_of(r)["message"].startswith(
        "max_tokens=40000 cannot be greater than max_model_len=32768."
    )


def test_image_to_text_only_server_is_400_not_multimodal() -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "What is it?"}, IMAGE]}]
    with VLLMTestServer(model="smol", multimodal=False) as srv:
        r = httpx.post(srv.api_base + "/chat/completions", json=chat("smol", messages))
    assert r.status_code == 400
    assert error_of(r)["message"] == "smol is not a multimodal model"


def test_too_many_images_is_400_with_param_image() -> None:
    messages = [{"role": "user", "content": [IMAGE, IMAGE]}]
    with VLLMTestServer(max_images=1) as srv:
        r = httpx.post(srv.api_base + "/chat/completions", json=chat(messages=messages))
    err = error_of(r)
    assert r.status_code == 400
    assert err["message"] == "At most 1 image(s) may be provided in one prompt."
    assert err["param"] == "image"


@pytest.mark.parametrize(
    ("body", "count"),
    [
        ({"model": MODEL}, 1),
        ({"model": MODEL, "messages": "hi"}, 1),
        ({"model": MODEL, "messages": HELLO, "max_tokens": "ten", "temperature": "hot"}, 2),
        ({"model": MODEL, "messages": HELLO, "stream_options": {"include_usage": True}}, 1),
    ],
)
def test_malformed_body_is_400_validation_error(
    client: httpx.Client, body: dict[str, Any], count: int
) -> None:
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 400
    plural = "s" if count > 1 else ""
    assert error_of(r)["message"].startswith(f"{count} validation error{plural}:")


def test_invalid_json_is_400_validation_error(client: httpx.Client) -> None:
    r = client.post(
        "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert "json_invalid" in error_of(r)["message"]


def test_full_queue_is_503_and_counts_an_admission_rejection() -> None:
    with (
        VLLMTestServer(tokens_per_second=50, max_num_seqs=1, max_num_queued_reqs=0) as srv,
        httpx.Client(base_url=srv.base_url) as c,
    ):
        with c.stream("POST", "/v1/chat/completions", json=chat(stream=True)) as busy:
            # Keep the iterator: a discarded one closes the response, which aborts it.
            busy_lines = busy.iter_lines()
            next(busy_lines)  # the first request is running now
            r = c.post("/v1/chat/completions", json=chat())
        metrics = c.get("/metrics").text
    assert r.status_code == 503
    assert error_of(r)["code"] == 503
    rejected = metric_samples(metrics)[
        (
            "vllm:admission_rejections_total",
            (("model_name", MODEL), ("reason", "max_num_queued_reqs")),
        )
    ]
    assert rejected == 1


def test_api_key_guards_only_v1_paths_with_plain_unauthorized() -> None:
    with VLLMTestServer(api_key="sekrit") as srv, httpx.Client(base_url=srv.base_url) as c:
        missing = c.get("/v1/models")
        wrong = c.get("/v1/models", headers={"Authorization": "Bearer nope"})
        good = c.get("/v1/models", headers={"Authorization": "Bearer sekrit"})
        open_paths = [c.get(p).status_code for p in ("/health", "/metrics", "/version")]
        tokenize = c.post("/tokenize", json={"model": MODEL, "prompt": "hi"})
    assert (missing.status_code, missing.json()) == (401, {"error": "Unauthorized"})
    assert (wrong.status_code, wrong.json()) == (401, {"error": "Unauthorized"})
    assert good.status_code == 200
    assert open_paths == [200, 200, 200]
    assert tokenize.status_code == 200


# --------------------------------------------------------------------------- failure modes


def test_midstream_error_arrives_as_data_error_then_done(
    server: VLLMTestServer, client: httpx.Client
) -> None:
    server.fail_next("midstream_error", after_tokens=2)
    events = stream(client, chat())
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])
    assert error["error"]["code"] == 500
    assert len(events) == 1 + 2 + 2  # role, two tokens, error, [DONE]
    # The server books the request after the last byte went out: wait, do not race it.
    assert server.wait_for(lambda s: s.requests_finished.get("error") == 1, 5)
    # one-shot: the next request is healthy
    assert json.loads(stream(client, chat())[-2])["choices"][0]["finish_reason"] == "stop"


def test_cut_stream_closes_without_done(server: VLLMTestServer, client: httpx.Client) -> None:
    server.fail_next("cut_stream", after_tokens=2)
    seen: list[str] = []
    with pytest.raises(httpx.RemoteProtocolError):
        with client.stream("POST", "/v1/chat/completions", json=chat(stream=True)) as r:
            for line in r.iter_lines():
                seen.append(line)
    assert "data: [DONE]" not in seen
    assert sum(line.startswith("data: {") for line in seen) == 3  # role + two tokens


def test_no_done_ends_the_body_cleanly_without_done(
    server: VLLMTestServer, client: httpx.Client
) -> None:
    server.fail_next("no_done")
    events = stream(client, chat(stream_options={"include_usage": True}))
    assert "[DONE]" not in events
    assert json.loads(events[-1])["choices"] == []


def test_non_json_chunk_is_injected_and_stream_continues(
    server: VLLMTestServer, client: httpx.Client
) -> None:
    server.fail_next("non_json_chunk", after_tokens=2)
    events = stream(client, chat())
    bad = [e for e in events if e != "[DONE]" and not _is_json(e)]
    assert len(bad) == 1
    assert events.index(bad[0]) == 3
    assert events[-1] == "[DONE]"


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def test_legacy_error_uses_flat_shape(server: VLLMTestServer, client: httpx.Client) -> None:
    server.fail_next("legacy_error")
    r = client.post("/v1/chat/completions", json=chat())
    body = r.json()
    assert r.status_code == 400
    assert body["object"] == "error" and body["code"] == 400 and "error" not in body
    server.legacy_error_shape = True
    flat = client.post("/v1/chat/completions", json=chat(model="nope")).json()
    assert flat["object"] == "error" and flat["code"] == 404


def test_slow_first_token_delays_ttft_recorded_in_metrics(
    server: VLLMTestServer, client: httpx.Client
) -> None:
    server.fail_next("slow_first_token", delay_s=0.3)
    stream(client, chat())
    text = client.get("/metrics").text
    # A lower bound that sleep() guarantees, not a timing expectation.
    assert sample(text, "vllm:time_to_first_token_seconds_sum") >= 0.3
    assert sample(text, "vllm:time_to_first_token_seconds_bucket", le="0.25") == 0


def test_set_mode_persists_until_cleared(server: VLLMTestServer, client: httpx.Client) -> None:
    server.set_mode("internal_error")
    codes = [client.post("/v1/chat/completions", json=chat()).status_code for _ in range(2)]
    server.set_mode(None)
    codes.append(client.post("/v1/chat/completions", json=chat()).status_code)
    assert codes == [500, 500, 200]


def test_unknown_failure_mode_is_rejected(server: VLLMTestServer) -> None:
    with pytest.raises(ValueError, match="unknown failure mode"):
        server.fail_next("explode")


# --------------------------------------------------------------------------- cancellation


def test_client_disconnect_aborts_the_request_and_closes_the_connection() -> None:
    with VLLMTestServer(tokens_per_second=100, answer_tokens=500) as srv:
        with httpx.Client(base_url=srv.base_url) as c:
            with c.stream("POST", "/v1/chat/completions", json=chat(stream=True)) as r:
                lines = r.iter_lines()
                for _ in range(3):
                    next(lines)
                assert srv.stats.running == 1
        # leaving both blocks closed the response and the client's connection
        assert srv.wait_for(lambda s: s.aborted == 1 and s.open_connections == 0, timeout=5)
        stats = srv.stats
        text = httpx.get(srv.metrics_url).text
        generated = sample(text, "vllm:generation_tokens_total")
        time.sleep(0.1)  # generation must have stopped: nothing more is counted
        again = sample(httpx.get(srv.metrics_url).text, "vllm:generation_tokens_total")
    assert stats.running == 0
    assert stats.requests_finished["abort"] == 1
    assert sample(text, "vllm:request_success_total", finished_reason="abort") == 1
    assert sample(text, "vllm:num_requests_running") == 0
    assert generated < 500
    assert again == generated


def test_stop_closes_open_streams_and_the_port() -> None:
    srv = VLLMTestServer(tokens_per_second=50, answer_tokens=500).start()
    with httpx.Client(base_url=srv.base_url) as c:
        with c.stream("POST", "/v1/chat/completions", json=chat(stream=True)) as r:
            lines = r.iter_lines()
            next(lines)
            srv.stop()
            with pytest.raises(httpx.HTTPError):  # cut mid-body: no terminating chunk
                for _ in lines:
                    pass
        with pytest.raises(httpx.ConnectError):
            c.get("/health")


# --------------------------------------------------------------------------- metrics


def _shape(text: str) -> dict[str, tuple[str, str, frozenset[str], tuple[str, ...]]]:
    shape = {}
    for f in text_string_to_metric_families(text):
        labels = frozenset(k for s in f.samples for k in s.labels if k != "le")
        buckets: list[str] = []
        for s in f.samples:
            le = s.labels.get("le")
            if s.name.endswith("_bucket") and le is not None and le not in buckets:
                buckets.append(le)
        shape[f.name] = (f.type, f.documentation.strip(), labels, tuple(buckets))
    return shape


def _serve_one_of_each(server: VLLMTestServer) -> str:
    with httpx.Client(base_url=server.base_url) as c:
        c.get("/v1/models")
        c.post("/v1/chat/completions", json=chat())
        return c.get("/metrics").text


def test_metrics_match_the_vllm_033_reference_names_types_labels_buckets(
    server: VLLMTestServer,
) -> None:
    ours = _shape(_serve_one_of_each(server))
    reference = _shape(REFERENCE.read_text())
    assert sorted(ours) == sorted(reference)
    for name, expected in reference.items():
        assert ours[name] == expected, name


def test_metrics_move_with_a_served_request(server: VLLMTestServer) -> None:
    before = httpx.get(server.metrics_url).text
    after = _serve_one_of_each(server)
    n_prompt = prompt_tokens(HELLO)
    assert sample(before, "vllm:prompt_tokens_total") == 0
    assert sample(after, "vllm:prompt_tokens_total") == n_prompt
    assert sample(after, "vllm:generation_tokens_total") == 13
    assert sample(after, "vllm:request_success_total", finished_reason="stop") == 1
    assert sample(after, "vllm:request_prompt_tokens_sum") == n_prompt
    assert sample(after, "vllm:request_generation_tokens_sum") == 13
    assert sample(after, "vllm:time_to_first_token_seconds_count") == 1
    assert sample(after, "vllm:inter_token_latency_seconds_count") == 12
    assert sample(after, "vllm:e2e_request_latency_seconds_count") == 1
    assert sample(after, "vllm:request_queue_time_seconds_count") == 1
    assert sample(after, "vllm:prefix_cache_queries_total") == n_prompt


def test_prefix_cache_hits_count_a_repeated_prompt() -> None:
    long = [{"role": "user", "content": "alpha beta gamma delta " * 20}]
    with VLLMTestServer(tokens_per_second=2000, answer_tokens=2) as srv:
        with httpx.Client(base_url=srv.base_url) as c:
            for _ in range(2):
                c.post("/v1/chat/completions", json=chat(messages=long))
            text = c.get("/metrics").text
    n = prompt_tokens(long)
    assert sample(text, "vllm:prefix_cache_queries_total") == 2 * n
    assert sample(text, "vllm:prefix_cache_hits_total") == (n // 16) * 16


def test_gauges_show_a_running_request_and_its_kv_cache_use() -> None:
    with VLLMTestServer(tokens_per_second=50, answer_tokens=500, num_gpu_blocks=10) as srv:
        with httpx.Client(base_url=srv.base_url) as c:
            with c.stream("POST", "/v1/chat/completions", json=chat(stream=True)) as r:
                lines = r.iter_lines()
                next(lines)
                during = c.get("/metrics").text
                load = c.get("/load").json()
        assert srv.wait_for(lambda s: s.running == 0)
        after = httpx.get(srv.metrics_url).text
    assert sample(during, "vllm:num_requests_running") == 1
    assert load == {"server_load": 1}
    assert 0 < sample(during, "vllm:kv_cache_usage_perc") <= 1
    assert sample(after, "vllm:kv_cache_usage_perc") == 0


def test_multiprocess_mode_drops_created_and_process_families() -> None:
    with VLLMTestServer(multiprocess=True) as srv:
        names = set(_shape(_serve_one_of_each(srv)))
    assert "vllm:prompt_tokens" in names
    assert not [n for n in names if n.endswith("_created")]
    assert not [n for n in names if n.startswith(("python_", "process_"))]


def test_legacy_names_replace_the_renamed_families() -> None:
    with VLLMTestServer(legacy_names=True) as srv:
        names = set(_shape(_serve_one_of_each(srv)))
    assert {
        "vllm:gpu_cache_usage_perc",
        "vllm:gpu_prefix_cache_queries",
        "vllm:gpu_prefix_cache_hits",
        "vllm:time_per_output_token_seconds",
    } <= names
    assert not names & {
        "vllm:kv_cache_usage_perc",
        "vllm:prefix_cache_queries",
        "vllm:inter_token_latency_seconds",
    }


def test_engine_label_can_be_dropped() -> None:
    with VLLMTestServer(engine_label=False) as srv:
        text = _serve_one_of_each(srv)
    vllm_labels = {
        k for (name, labels) in metric_samples(text) if name.startswith("vllm:") for k, _ in labels
    }
    assert "model_name" in vllm_labels
    assert "engine" not in vllm_labels


def test_two_served_models_have_separate_series() -> None:
    with VLLMTestServer(extra_models=("llama-3.1-8b",), answer_tokens=3) as srv:
        with httpx.Client(base_url=srv.base_url) as c:
            ids = [m["id"] for m in c.get("/v1/models").json()["data"]]
            c.post("/v1/chat/completions", json=chat(model="llama-3.1-8b"))
            text = c.get("/metrics").text
    assert ids == [MODEL, "llama-3.1-8b"]
    ok = "vllm:request_success_total"
    assert sample(text, ok, finished_reason="stop", model_name="llama-3.1-8b") == 1
    assert sample(text, ok, finished_reason="stop") == 0


def test_concurrent_streams_are_served_in_parallel(server: VLLMTestServer) -> None:
    results: list[str] = []

    def run() -> None:
        with httpx.Client(base_url=server.base_url) as c:
            results.append(stream(c, chat())[-1])

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == ["[DONE]"] * 4
    assert server.wait_for(lambda s: s.requests_finished.get("stop") == 4, 5)


async def test_cancelling_an_async_stream_task_aborts_on_the_server() -> None:
    import asyncio

    with VLLMTestServer(tokens_per_second=100, answer_tokens=500) as srv:
        got_first = asyncio.Event()

        async def consume() -> None:
            async with httpx.AsyncClient(base_url=srv.base_url) as c:
                async with c.stream("POST", "/v1/chat/completions", json=chat(stream=True)) as r:
                    async for _ in r.aiter_lines():
                        got_first.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(got_first.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        closed = await asyncio.to_thread(
            srv.wait_for, lambda s: s.aborted == 1 and s.open_connections == 0, 5
        )
    assert closed


def test_answer_for_chooses_the_answer_per_request_and_obeys_max_tokens() -> None:
    seen = []

    def answer(body: dict[str, Any]) -> str | None:
        seen.append(body["messages"][-1]["content"])
        return "The peak is 40.\nANSWER: 40" if "peak" in body["messages"][-1]["content"] else None

    with (
        VLLMTestServer(tokens_per_second=2000, answer_tokens=5, answer_for=answer) as srv,
        httpx.Client(base_url=srv.base_url, timeout=10) as c,
    ):
        peak = [{"role": "user", "content": "Where is the peak?"}]
        events = stream(c, chat(messages=peak, stream_options={"include_usage": True}))
        chunks = [json.loads(e) for e in events if e != "[DONE]"]
        text = "".join(
            ch["choices"][0]["delta"].get("content", "") for ch in chunks if ch["choices"]
        )
        usage = chunks[-1]["usage"]
        cut = c.post("/v1/chat/completions", json=chat(messages=peak, max_tokens=4)).json()
        canned = c.post("/v1/chat/completions", json=chat()).json()
    assert text == "The peak is 40.\nANSWER: 40"
    assert usage["completion_tokens"] == 8 + 1  # The| peak| is| 40|.|\nANSWER|:| 40, and EOS
    assert cut["choices"][0]["message"]["content"] == "The peak is 40"
    assert cut["choices"][0]["finish_reason"] == "length"
    assert canned["choices"][0]["message"]["content"] == "".join(ANSWER_PIECES[:5])
    assert seen == ["Where is the peak?", "Where is the peak?", HELLO[0]["content"]]
