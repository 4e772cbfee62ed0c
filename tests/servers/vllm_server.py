"""A stand-in for a vLLM 0.33 OpenAI-compatible server, for tests and manual use.

vLLM needs a GPU, so tests talk to this instead. It answers like vLLM 0.33.0 as described
in ``tests/servers/README.md`` (section "What the real servers send") and renders
``/metrics`` with vLLM 0.33's metric names, help strings, label sets and buckets
(``tests/data/vllm-0.33-metrics.prom``).

Use from a test::

    with VLLMTestServer(model="qwen2.5-vl-7b") as server:
        httpx.get(server.api_base + "/models")

or by hand: ``python -m tests.servers.vllm_server --port 8000 [--model M] [--text-only]
[--api-key K] [--reasoning] [--tokens-per-second 20]``.

The server is a ``ThreadingHTTPServer`` on 127.0.0.1 in a daemon thread, so it never
blocks an asyncio/qasync loop in the test process. Each instance has its own
prometheus_client ``CollectorRegistry``.

Endpoints: ``GET /v1/models``, ``GET /health``, ``GET|POST /ping``, ``GET /version``,
``GET /load``, ``POST /tokenize``, ``POST /v1/chat/completions`` (stream true/false),
``GET /metrics``. ``--api-key`` guards only paths under ``/v1``.

Tokenizer (deterministic, documented so tests can compute counts by hand)
-------------------------------------------------------------------------
Text is split by ``TOKEN_RE``: a special marker ``<|...|>``, a newline, a run of word
characters, or one punctuation character; spaces are dropped. A chat prompt is rendered
as ``<|im_start|>ROLE\\nCONTENT<|im_end|>\\n`` per message followed by
``<|im_start|>assistant\\n``, so each message costs 5 tokens plus its content (a one-word
role), and the generation prompt costs 3. Each image part costs exactly ``image_tokens``
tokens (default 256). ``prompt_tokens(messages)`` gives the count the server uses.

Generation: the answer is ``ANSWER_TEXT`` (a canned Markdown interpretation) cut into
pieces (``PIECE_RE``: leading whitespace plus one word or punctuation mark); one piece is
one token, repeated cyclically up to ``answer_tokens`` pieces. With ``reasoning=True`` the
first ``reasoning_tokens`` pieces of ``REASONING_TEXT`` stream as ``delta.reasoning``
first. A request that fits stops with ``finish_reason="stop"`` and, like vLLM, its
end-of-sequence token counts as one extra completion token (it arrives as the separate
finish chunk with ``delta.content == ""``). A request cut by ``max_tokens`` (or
``max_completion_tokens``; default ``max_model_len - prompt_tokens``) ends with
``finish_reason="length"`` on the chunk carrying the last piece, as vLLM does.
``ignore_eos: true`` generates exactly ``max_tokens``.

Answers a test chooses: ``answer_for`` (a function of the request's parsed JSON body,
called on the server's thread, so it must be thread-safe) returns the answer text for that
request, or None for the canned one; the text is cut into pieces by ``PIECE_RE`` like the
canned answer (so spaces before words are kept, trailing spaces dropped) and obeys
``max_tokens`` the same way. The scoring tests hand it ``tests/servers/score_oracle.py``,
which answers each chart question right with a seeded probability from the truth the test
gives it.

Pacing: the first token is due ``1/tokens_per_second + uncached_prompt_tokens /
prefill_tokens_per_second`` after the request is scheduled, then one token every
``1/tokens_per_second``. TTFT and inter-token latency histograms record the real times
at which chunks were written.

Failure modes (``server.fail_next(mode)`` is one-shot and queues; ``server.set_mode(mode)``
applies to every chat request until ``set_mode(None)``). ``after_tokens`` (default 3) and
``delay_s`` (default 2.0) are keyword arguments of both:

- ``"midstream_error"``: HTTP 200 stream, ``after_tokens`` token chunks, then
  ``data: {"error":{...,"code":500}}`` and ``data: [DONE]`` (non-stream: a 500 error).
  Counted as ``finished_reason="error"``.
- ``"cut_stream"``: ``after_tokens`` token chunks, then the connection is closed with
  no terminating chunk and no ``[DONE]`` (httpx raises ``RemoteProtocolError``).
- ``"no_done"``: a complete stream (finish and usage chunks) whose body ends cleanly
  without ``data: [DONE]``.
- ``"non_json_chunk"``: after ``after_tokens`` token chunks one ``data:`` line that is
  not JSON, then the stream goes on normally to ``[DONE]``.
- ``"legacy_error"``: a 400 in the pre-0.10.1 flat shape
  ``{"object":"error","message",...,"code":400}``. (``legacy_error_shape=True`` on the
  server makes every error flat.)
- ``"slow_first_token"``: the first token (and the role chunk, which vLLM sends with it)
  is delayed by ``delay_s``; response headers go out at once.
- ``"queue_full"``: 503 as when the waiting queue is full.
- ``"internal_error"``: a 500 JSON error before any streaming.

``server.set_engine_dead(True)`` makes ``/health`` and ``/ping`` answer 503 and chat
requests answer 500. ``keepalive_comments=True`` adds ``: keep-alive`` SSE comments.
``ignore_stream_options=True`` behaves like llama-cpp-python's own server: streams carry no
usage even when asked (clients must estimate tokens).

Closing the client connection aborts the request: generation stops at once (the socket is
polled between tokens), ``vllm:request_success_total{finished_reason="abort"}`` and
``server.stats.aborted`` go up. ``server.stats`` is a snapshot (``ServerStats``);
``server.wait_for(pred, timeout)`` polls it; ``server.received`` lists every request
seen on ``/v1`` and ``/tokenize`` (method, path, headers, parsed JSON body).

Metrics options: ``multiprocess=True`` drops ``_created`` samples and the ``python_*`` /
``process_*`` families; ``legacy_names=True`` emits ``vllm:gpu_cache_usage_perc``,
``vllm:gpu_prefix_cache_queries/_hits`` and ``vllm:time_per_output_token_seconds``
instead of the new names; ``engine_label=False`` drops the ``engine`` label;
``extra_models=("other",)`` serves more models (own series, own /v1/models entries);
``lora_modules=("name",)`` adds LoRA entries (``parent`` set, ``max_model_len`` null);
``disable_log_stats=True`` removes every ``vllm:`` family.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import select
import signal
import socket
import sys
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    Summary,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

VLLM_VERSION = "0.33.0"
VOCAB_SIZE = 151_643
BLOCK_SIZE = 16
DEFAULT_NUM_GPU_BLOCKS = 27_463

FAILURE_MODES: frozenset[str] = frozenset(
    {
        "midstream_error",
        "cut_stream",
        "no_done",
        "non_json_chunk",
        "legacy_error",
        "slow_first_token",
        "queue_full",
        "internal_error",
    }
)

FINISHED_REASONS = ("stop", "length", "abort", "error", "repetition")

TOKEN_RE = re.compile(r"<\|[a-z_]+\|>|\n|\w+|[^\w\s]")
PIECE_RE = re.compile(r"\s*(?:\w+|[^\w\s])")

ANSWER_TEXT = """## What the figure shows

The figure plots **signal intensity** (arbitrary units) against time in seconds for three
conditions. The control stays flat near zero, while both treatments rise after about
two seconds.

## Key observations

- Treatment A peaks at roughly 0.8 and then decays slowly.
- Treatment B rises later, reaches about 0.6, and plateaus.
- The shaded bands (likely standard error) overlap early but separate after four seconds.

## Caveats

The axis labels do not state the number of replicates, so the apparent difference between
A and B should be read with care. A statistical test would make the comparison firmer."""

REASONING_TEXT = (
    "The user shared a figure with three curves. I should describe the axes first, then "
    "the trends, then what the error bands imply, and finish with caveats about replicates."
)

ANSWER_PIECES: tuple[str, ...] = tuple(PIECE_RE.findall(ANSWER_TEXT))
REASONING_PIECES: tuple[str, ...] = tuple(PIECE_RE.findall(REASONING_TEXT))

# Bucket lists from vllm/v1/metrics (0.33), as in tests/data/vllm-0.33-metrics.prom.
TOKEN_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)
ITERATION_BUCKETS = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
N_BUCKETS = (1, 2, 5, 10, 20)
TTFT_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
ITL_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip
REQUEST_LATENCY_BUCKETS = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0,
    40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
PREEMPTION_BUCKETS = (1, 2, 3, 4, 5, 10, 20)
HTTP_HIGHR_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5,
    3.0, 3.5, 4.0, 4.5, 5.0, 7.5, 10.0, 30.0, 60.0,
)  # fmt: skip
HTTP_HANDLER_BUCKETS = (0.1, 0.5, 1.0)

# prometheus-fastapi-instrumentator in vLLM skips these handlers.
_HTTP_EXCLUDED = frozenset({"/metrics", "/health", "/load", "/ping", "/version"})
_ROUTES: dict[str, frozenset[str]] = {
    "/health": frozenset({"GET"}),
    "/ping": frozenset({"GET", "POST"}),
    "/version": frozenset({"GET"}),
    "/load": frozenset({"GET"}),
    "/metrics": frozenset({"GET"}),
    "/tokenize": frozenset({"POST"}),
    "/v1/models": frozenset({"GET"}),
    "/v1/chat/completions": frozenset({"POST"}),
}

_CACHE_CONFIG_INFO = {
    "block_size": "16",
    "cache_dtype": "auto",
    "cache_hit_alignment_tokens": "16",
    "effective_attention_block_size": "16",
    "enable_mamba_shared_prefix_checkpoint": "False",
    "enable_prefix_caching": "True",
    "gpu_memory_utilization": "0.9",
    "hash_block_size": "16",
    "is_attention_free": "False",
    "kv_cache_dtype_skip_layers": "[]",
    "kv_cache_layout": "None",
    "kv_cache_max_concurrency": "13.41",
    "kv_cache_memory_bytes": "None",
    "kv_cache_size_tokens": "439408",
    "kv_offloading_backend": "native",
    "kv_offloading_size": "None",
    "kv_sharing_fast_prefill": "False",
    "mamba_block_size": "None",
    "mamba_cache_dtype": "auto",
    "mamba_cache_mode": "none",
    "mamba_page_size_padded": "None",
    "mamba_ssm_cache_dtype": "auto",
    "num_cpu_blocks": "None",
    "num_gpu_blocks": "27463",
    "num_gpu_blocks_override": "None",
    "prefix_cache_retention_interval": "0",
    "prefix_caching_hash_algo": "sha256",
    "prefix_match_unit": "None",
    "replayssm_buffer_len": "16",
    "simple_cpu_offload_num_blocks": "None",
    "skip_page_size_padded": "None",
    "sliding_window": "None",
    "swa_bounded_replay": "True",
    "use_kda_recoverssm": "False",
    "use_replayssm": "False",
    "user_specified_block_size": "False",
}


# --------------------------------------------------------------------------- tokenizer


def tokenize_text(text: str) -> list[str]:
    """Split ``text`` into token strings with ``TOKEN_RE`` (spaces are dropped)."""
    return TOKEN_RE.findall(text)


def token_id(token: str) -> int:
    """A stable fake vocabulary id for a token string."""
    return zlib.crc32(token.encode("utf-8")) % VOCAB_SIZE


@dataclass(frozen=True)
class _Rendered:
    tokens: list[str]
    # Same length as tokens; image pads carry the image digest so the prefix cache
    # does not treat two different images as the same tokens.
    hash_keys: list[str]
    image_digests: list[str]


def _content_parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [p for p in content if isinstance(p, dict)]


def _is_image_part(part: Mapping[str, Any]) -> bool:
    return part.get("type") in ("image_url", "input_image", "image")


def _image_url(part: Mapping[str, Any]) -> str:
    url = part.get("image_url")
    if isinstance(url, dict):
        url = url.get("url")
    return str(url or part.get("image") or "")


def render_chat(
    messages: Sequence[Mapping[str, Any]],
    image_tokens: int = 256,
    add_generation_prompt: bool = True,
) -> _Rendered:
    """Render messages through the documented template and tokenize them."""
    tokens: list[str] = []
    keys: list[str] = []
    digests: list[str] = []

    def add(toks: list[str]) -> None:
        tokens.extend(toks)
        keys.extend(toks)

    for msg in messages:
        add(["<|im_start|>", *tokenize_text(str(msg.get("role", ""))), "\n"])
        for part in _content_parts(msg.get("content")):
            if _is_image_part(part):
                digest = hashlib.sha256(_image_url(part).encode("utf-8")).hexdigest()[:16]
                digests.append(digest)
                pads = ["<|image_pad|>"] * max(0, image_tokens - 2)
                tokens.extend(["<|vision_start|>", *pads, "<|vision_end|>"])
                keys.extend(
                    ["<|vision_start|>", *(f"img:{digest}" for _ in pads), "<|vision_end|>"]
                )
            elif part.get("type") == "text":
                add(tokenize_text(str(part.get("text", ""))))
        add(["<|im_end|>", "\n"])
    if add_generation_prompt:
        add(["<|im_start|>", "assistant", "\n"])
    return _Rendered(tokens, keys, digests)


def prompt_tokens(messages: Sequence[Mapping[str, Any]], image_tokens: int = 256) -> int:
    """The prompt token count the server reports for these chat messages."""
    return len(render_chat(messages, image_tokens).tokens)


def generated_pieces(n: int, reasoning: int = 0) -> tuple[list[str], list[str]]:
    """The first ``reasoning`` reasoning pieces and ``n`` answer pieces, cycling the texts."""
    return _cycle(REASONING_PIECES, reasoning), _cycle(ANSWER_PIECES, n)


def _cycle(pieces: Sequence[str], n: int) -> list[str]:
    out: list[str] = []
    i = 0
    while len(out) < n:
        piece = pieces[i % len(pieces)]
        if i and i % len(pieces) == 0:
            piece = "\n\n" + piece.lstrip()
        out.append(piece)
        i += 1
    return out


# --------------------------------------------------------------------------- stats


@dataclass(frozen=True)
class ServerStats:
    """A snapshot of what the server has seen; read it with ``server.stats``.

    ``requests_started`` counts chat requests admitted to the engine (after validation);
    ``requests_finished`` counts them by finished_reason (stop/length/abort/error);
    ``aborted`` equals ``requests_finished["abort"]``; ``running``/``waiting`` are the
    engine's current queues; ``open_connections`` are TCP connections not yet closed;
    ``connections_accepted`` is the total ever accepted; ``requests_rejected`` counts chat
    requests answered with an error status before admission.
    """

    requests_started: int
    requests_finished: dict[str, int]
    running: int
    waiting: int
    aborted: int
    open_connections: int
    connections_accepted: int
    requests_rejected: int


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the server received it (``body`` is parsed JSON or None)."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


class _ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        err_type: str,
        param: str | None = None,
        legacy: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.err_type = err_type
        self.param = param
        self.legacy = legacy


class _ClientGone(Exception):
    """The client closed the connection (or the server is stopping)."""


@dataclass
class _Request:
    request_id: str
    served_model: str  # the name the client asked for (may be a LoRA)
    metric_model: str  # the base served name used as model_name label
    body: dict[str, Any]
    rendered: _Rendered
    prompt_tokens: int
    max_tokens: int
    stream: bool
    arrival: float
    mode: str | None
    after_tokens: int
    delay_s: float
    cached_tokens: int = 0
    scheduled_at: float | None = None
    first_token_at: float | None = None
    last_token_at: float | None = None
    generated: int = 0
    finished: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- metrics


class _ExposedRegistry:
    """What /metrics renders: the registry, minus ``_created`` samples in multiprocess mode."""

    def __init__(self, registry: CollectorRegistry, drop_created: bool) -> None:
        self._registry = registry
        self._drop_created = drop_created

    def collect(self) -> Iterator[Any]:
        for family in self._registry.collect():
            if self._drop_created:
                created = family.name + "_created"
                family.samples = [s for s in family.samples if s.name != created]
            yield family


class _VLLMMetrics:
    """vLLM 0.33's Prometheus families, registered in a private registry."""

    def __init__(
        self,
        models: Sequence[str],
        *,
        engine_label: bool,
        legacy_names: bool,
        multiprocess: bool,
        disable_log_stats: bool,
        num_gpu_blocks: int,
    ) -> None:
        self.registry = CollectorRegistry()
        self.exposed = _ExposedRegistry(self.registry, drop_created=multiprocess)
        self.engine_label = engine_label
        self.enabled = not disable_log_stats
        reg = self.registry
        if not multiprocess:
            GCCollector(registry=reg)
            PlatformCollector(registry=reg)
            ProcessCollector(registry=reg)
        base = ["model_name", "engine"] if engine_label else ["model_name"]

        def counter(name: str, doc: str, extra: Sequence[str] = ()) -> Counter:
            return Counter(name, doc, [*base, *extra], registry=reg)

        def gauge(name: str, doc: str, extra: Sequence[str] = ()) -> Gauge:
            return Gauge(name, doc, [*base, *extra], registry=reg)

        def hist(name: str, doc: str, buckets: Sequence[float]) -> Histogram:
            return Histogram(name, doc, base, buckets=buckets, registry=reg)

        if self.enabled:
            mfu = "per GPU (for Model Flops Utilization calculations)."
            self.flops = counter(
                "vllm:estimated_flops_per_gpu",
                f"Estimated number of floating point operations {mfu}",
            )
            self.read_bytes = counter(
                "vllm:estimated_read_bytes_per_gpu",
                f"Estimated number of bytes read from memory {mfu}",
            )
            self.write_bytes = counter(
                "vllm:estimated_write_bytes_per_gpu",
                f"Estimated number of bytes written to memory {mfu}",
            )
            self.running = gauge(
                "vllm:num_requests_running", "Number of requests in model execution batches."
            )
            self.waiting = gauge(
                "vllm:num_requests_waiting", "Number of requests waiting to be processed."
            )
            self.waiting_by_reason = gauge(
                "vllm:num_requests_waiting_by_reason",
                "Number of waiting requests by reason. Reason labels: 'capacity' = waiting for "
                "scheduling capacity; 'deferred' = deferred by transient constraints (LoRA "
                "budget, KV transfer, blocked status). Sum of all reasons equals "
                "vllm:num_requests_waiting.",
                ["reason"],
            )
            self.sleep_state = gauge(
                "vllm:engine_sleep_state",
                "Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine "
                "is awake; weights_offloaded = 1 means sleep level 1; discard_all = 1 means "
                "sleep level 2.",
                ["sleep_state"],
            )
            if legacy_names:
                self.kv_usage = gauge(
                    "vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage."
                )
                self.prefix_queries = counter(
                    "vllm:gpu_prefix_cache_queries",
                    "GPU prefix cache queries, in terms of number of queried tokens.",
                )
                self.prefix_hits = counter(
                    "vllm:gpu_prefix_cache_hits",
                    "GPU prefix cache hits, in terms of number of cached tokens.",
                )
            else:
                self.kv_usage = gauge(
                    "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage."
                )
                self.prefix_queries = counter(
                    "vllm:prefix_cache_queries",
                    "Prefix cache queries, in terms of number of queried tokens.",
                )
                self.prefix_hits = counter(
                    "vllm:prefix_cache_hits",
                    "Prefix cache hits, in terms of number of cached tokens.",
                )
            kv = "from KV connector cross-instance cache sharing"
            self.ext_queries = counter(
                "vllm:external_prefix_cache_queries",
                f"External prefix cache queries {kv}, in terms of number of queried tokens.",
            )
            self.ext_hits = counter(
                "vllm:external_prefix_cache_hits",
                f"External prefix cache hits {kv}, in terms of number of cached tokens.",
            )
            self.mm_queries = counter(
                "vllm:mm_cache_queries",
                "Multi-modal cache queries, in terms of number of queried items.",
            )
            self.mm_hits = counter(
                "vllm:mm_cache_hits", "Multi-modal cache hits, in terms of number of cached items."
            )
            self.preemptions = counter(
                "vllm:num_preemptions", "Cumulative number of preemption from the engine."
            )
            self.prompt_tokens = counter(
                "vllm:prompt_tokens", "Number of prefill tokens processed."
            )
            self.prompt_by_source = counter(
                "vllm:prompt_tokens_by_source", "Number of prompt tokens by source.", ["source"]
            )
            self.prompt_cached = counter(
                "vllm:prompt_tokens_cached", "Number of cached prompt tokens (local + external)."
            )
            self.prompt_cached_by_source = counter(
                "vllm:prompt_tokens_cached_by_source",
                "Prefix-cache hit tokens by the cache tier that supplied them: device (local "
                "HBM), host (offloaded to DRAM), disk, p2p (transferred from another vLLM "
                "instance) or external_unspecified. Counted at admission; sums to "
                "vllm:prefix_cache_hits + vllm:external_prefix_cache_hits.",
                ["source"],
            )
            self.generation_tokens = counter(
                "vllm:generation_tokens", "Number of generation tokens processed."
            )
            self.request_success = counter(
                "vllm:request_success",
                "Count of successfully processed requests.",
                ["finished_reason"],
            )
            # vLLM registers this one without the engine label.
            self.admission_rejections = Counter(
                "vllm:admission_rejections",
                "Number of admission attempts rejected by a queue limit, by reason.",
                ["model_name", "reason"],
                registry=reg,
            )
            self.h_prompt = hist(
                "vllm:request_prompt_tokens", "Number of prefill tokens processed.", TOKEN_BUCKETS
            )
            self.h_generation = hist(
                "vllm:request_generation_tokens",
                "Number of generation tokens processed.",
                TOKEN_BUCKETS,
            )
            self.h_iteration = hist(
                "vllm:iteration_tokens_total",
                "Histogram of number of tokens per engine_step.",
                ITERATION_BUCKETS,
            )
            self.h_max_gen = hist(
                "vllm:request_max_num_generation_tokens",
                "Histogram of maximum number of requested generation tokens.",
                TOKEN_BUCKETS,
            )
            self.h_n = hist(
                "vllm:request_params_n", "Histogram of the n request parameter.", N_BUCKETS
            )
            self.h_max_tokens = hist(
                "vllm:request_params_max_tokens",
                "Histogram of the max_tokens request parameter.",
                TOKEN_BUCKETS,
            )
            self.h_ttft = hist(
                "vllm:time_to_first_token_seconds",
                "Histogram of time to first token in seconds.",
                TTFT_BUCKETS,
            )
            if legacy_names:
                self.h_itl = hist(
                    "vllm:time_per_output_token_seconds",
                    "Histogram of time per output token in seconds.",
                    ITL_BUCKETS,
                )
            else:
                self.h_itl = hist(
                    "vllm:inter_token_latency_seconds",
                    "Histogram of inter-token latency in seconds.",
                    ITL_BUCKETS,
                )
            self.h_tpot = hist(
                "vllm:request_time_per_output_token_seconds",
                "Histogram of time_per_output_token_seconds per request.",
                ITL_BUCKETS,
            )
            self.h_e2e = hist(
                "vllm:e2e_request_latency_seconds",
                "Histogram of e2e request latency in seconds.",
                REQUEST_LATENCY_BUCKETS,
            )
            self.h_queue = hist(
                "vllm:request_queue_time_seconds",
                "Histogram of time spent in WAITING phase for request.",
                REQUEST_LATENCY_BUCKETS,
            )
            self.h_inference = hist(
                "vllm:request_inference_time_seconds",
                "Histogram of time spent in RUNNING phase for request.",
                REQUEST_LATENCY_BUCKETS,
            )
            self.h_prefill = hist(
                "vllm:request_prefill_time_seconds",
                "Histogram of time spent in PREFILL phase for request.",
                REQUEST_LATENCY_BUCKETS,
            )
            self.h_decode = hist(
                "vllm:request_decode_time_seconds",
                "Histogram of time spent in DECODE phase for request.",
                REQUEST_LATENCY_BUCKETS,
            )
            self.h_preempt = hist(
                "vllm:request_num_preemptions",
                "Histogram of the number of times a request was preempted.",
                PREEMPTION_BUCKETS,
            )
            self.h_prefill_kv = hist(
                "vllm:request_prefill_kv_computed_tokens",
                "Histogram of new KV tokens computed during prefill (excluding cached tokens).",
                TOKEN_BUCKETS,
            )
            info_labels = dict(_CACHE_CONFIG_INFO, num_gpu_blocks=str(num_gpu_blocks))
            info_labels["kv_cache_size_tokens"] = str(num_gpu_blocks * BLOCK_SIZE)
            if engine_label:
                info_labels["engine"] = "0"
            self.cache_config_info = Gauge(
                "vllm:cache_config_info",
                "Information of the LLMEngine CacheConfig",
                sorted(info_labels),
                registry=reg,
            )
            self.cache_config_info.labels(**info_labels).set(1)
            for model in models:
                self._init_children(model)

        # prometheus-fastapi-instrumentator families (vLLM's HTTP middleware).
        no_pct = "Only value of header is respected. Otherwise ignored. No percentile calculated. "
        self.http_requests = Counter(
            "http_requests",
            "Total number of requests by method, status and handler.",
            ["method", "status", "handler"],
            registry=reg,
        )
        self.http_request_size = Summary(
            "http_request_size_bytes",
            f"Content length of incoming requests by handler. {no_pct}",
            ["handler"],
            registry=reg,
        )
        self.http_response_size = Summary(
            "http_response_size_bytes",
            f"Content length of outgoing responses by handler. {no_pct}",
            ["handler"],
            registry=reg,
        )
        self.http_highr = Histogram(
            "http_request_duration_highr_seconds",
            "Latency with many buckets but no API specific labels. Made for more accurate "
            "percentile calculations. ",
            buckets=HTTP_HIGHR_BUCKETS,
            registry=reg,
        )
        self.http_duration = Histogram(
            "http_request_duration_seconds",
            "Latency with only few buckets by handler. Made to be only used if aggregation by "
            "handler is important. ",
            ["method", "handler"],
            buckets=HTTP_HANDLER_BUCKETS,
            registry=reg,
        )

    def lbl(self, model: str) -> tuple[str, ...]:
        return (model, "0") if self.engine_label else (model,)

    def _init_children(self, model: str) -> None:
        # vLLM creates every labelled child at start-up, so an idle server shows zeros.
        lb = self.lbl(model)
        for metric in (
            self.flops, self.read_bytes, self.write_bytes, self.running, self.waiting,
            self.kv_usage, self.prefix_queries, self.prefix_hits, self.ext_queries,
            self.ext_hits, self.mm_queries, self.mm_hits, self.preemptions,
            self.prompt_tokens, self.prompt_cached, self.generation_tokens, self.h_prompt,
            self.h_generation, self.h_iteration, self.h_max_gen, self.h_n, self.h_max_tokens,
            self.h_ttft, self.h_itl, self.h_tpot, self.h_e2e, self.h_queue, self.h_inference,
            self.h_prefill, self.h_decode, self.h_preempt, self.h_prefill_kv,
        ):  # fmt: skip
            metric.labels(*lb)
        for reason in ("capacity", "deferred"):
            self.waiting_by_reason.labels(*lb, reason)
        for state, value in (("awake", 1), ("weights_offloaded", 0), ("discard_all", 0)):
            self.sleep_state.labels(*lb, state).set(value)
        for source in ("local_compute", "local_cache_hit", "external_kv_transfer"):
            self.prompt_by_source.labels(*lb, source)
        for source in ("device", "host", "p2p", "disk", "external_unspecified"):
            self.prompt_cached_by_source.labels(*lb, source)
        for reason in FINISHED_REASONS:
            self.request_success.labels(*lb, reason)
        for reason in ("max_num_queued_reqs", "max_num_queued_tokens"):
            self.admission_rejections.labels(model, reason)

    def render(self) -> bytes:
        return generate_latest(self.exposed)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- HTTP plumbing


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: VLLMTestServer) -> None:
        self.app = app
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.app._connection_opened(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        try:
            super().shutdown_request(request)
        finally:
            self.app._connection_closed(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (OSError, _ClientGone)):
            return  # a client that went away is normal here
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def version_string(self) -> str:
        return "uvicorn"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:
        self.server.app._dispatch(self, "GET")

    def do_POST(self) -> None:
        self.server.app._dispatch(self, "POST")

    def do_PUT(self) -> None:
        self.server.app._dispatch(self, "PUT")

    def do_DELETE(self) -> None:
        self.server.app._dispatch(self, "DELETE")

    # -- response helpers (each records status/size for the http_* metrics)

    def send_json(self, status: int, obj: Any, headers: Mapping[str, str] | None = None) -> None:
        payload = json.dumps(obj, separators=(",", ":")).encode("utf-8")
        self.send_bytes(status, payload, "application/json", headers)

    def send_bytes(
        self,
        status: int,
        payload: bytes,
        content_type: str | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._status = status
        self._response_size = len(payload)
        try:
            self.send_response(status)
            if content_type:
                self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(payload)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()
        except OSError as exc:
            self.close_connection = True
            raise _ClientGone from exc

    def start_stream(self) -> None:
        self._status = 200
        self._response_size = 0
        try:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream; charset=utf-8")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
        except OSError as exc:
            self.close_connection = True
            raise _ClientGone from exc

    def write_chunk(self, data: bytes) -> None:
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        except OSError as exc:
            self.close_connection = True
            raise _ClientGone from exc

    def end_stream(self) -> None:
        self.write_chunk(b"")

    def client_gone(self) -> bool:
        """True when the peer has closed its end (polled without blocking)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True


# --------------------------------------------------------------------------- the server


class VLLMTestServer:
    """A vLLM 0.33 stand-in on 127.0.0.1; see the module docstring for behaviour.

    ``start()`` binds a free port (or ``port``) and serves from a daemon thread;
    ``stop()`` closes every connection and the listening socket. Usable as a context
    manager. Most options are plain attributes that a test may change while it runs
    (``tokens_per_second``, ``answer_tokens``, ``reasoning``, ``legacy_error_shape``...).
    """

    def __init__(
        self,
        model: str = "qwen2.5-vl-7b",
        root: str = "Qwen/Qwen2.5-VL-7B-Instruct",
        max_model_len: int = 32768,
        multimodal: bool = True,
        max_images: int | None = None,
        api_key: str | None = None,
        tokens_per_second: float = 500.0,
        *,
        prefill_tokens_per_second: float = 20_000.0,
        image_tokens: int = 256,
        answer_tokens: int | None = None,
        reasoning: bool = False,
        reasoning_tokens: int | None = None,
        reasoning_field: str = "reasoning",
        lora_modules: Sequence[str] = (),
        extra_models: Sequence[str] = (),
        max_num_seqs: int = 256,
        max_num_queued_reqs: int | None = None,
        num_gpu_blocks: int = DEFAULT_NUM_GPU_BLOCKS,
        enable_prefix_caching: bool = True,
        multiprocess: bool = False,
        legacy_names: bool = False,
        engine_label: bool = True,
        disable_log_stats: bool = False,
        legacy_error_shape: bool = False,
        keepalive_comments: bool = False,
        ignore_stream_options: bool = False,
        answer_for: Callable[[dict[str, Any]], str | None] | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
    ) -> None:
        if image_tokens < 2:
            raise ValueError("image_tokens must be at least 2 (vision start and end markers)")
        self.model = model
        self.root = root
        self.max_model_len = max_model_len
        self.multimodal = multimodal
        self.max_images = max_images
        self.api_key = api_key
        self.tokens_per_second = tokens_per_second
        self.prefill_tokens_per_second = prefill_tokens_per_second
        self.image_tokens = image_tokens
        self.answer_tokens = len(ANSWER_PIECES) if answer_tokens is None else answer_tokens
        self.reasoning = reasoning
        self.reasoning_tokens = (
            len(REASONING_PIECES) if reasoning_tokens is None else reasoning_tokens
        )
        self.reasoning_field = reasoning_field
        self.lora_modules = tuple(lora_modules)
        self.extra_models = tuple(extra_models)
        self.max_num_seqs = max_num_seqs
        self.max_num_queued_reqs = max_num_queued_reqs
        self.num_gpu_blocks = num_gpu_blocks
        self.enable_prefix_caching = enable_prefix_caching
        self.legacy_error_shape = legacy_error_shape
        self.keepalive_comments = keepalive_comments
        self.ignore_stream_options = ignore_stream_options
        self.answer_for = answer_for
        self.engine_dead = False
        self._host = host
        self._port = port
        self.metrics = _VLLMMetrics(
            (model, *self.extra_models),
            engine_label=engine_label,
            legacy_names=legacy_names,
            multiprocess=multiprocess,
            disable_log_stats=disable_log_stats,
            num_gpu_blocks=num_gpu_blocks,
        )
        self.received: list[ReceivedRequest] = []
        self._created = int(time.time())
        self._lock = threading.Condition()
        self._pending_modes: deque[tuple[str, int, float]] = deque()
        self._mode: tuple[str, int, float] | None = None
        self._running: dict[str, list[_Request]] = {m: [] for m in (model, *self.extra_models)}
        self._waiting: dict[str, list[_Request]] = {m: [] for m in (model, *self.extra_models)}
        self._started = 0
        self._finished = {reason: 0 for reason in FINISHED_REASONS}
        self._rejected = 0
        self._connections: set[Any] = set()
        self._accepted = 0
        self._prefix_blocks: dict[str, set[str]] = {}
        self._seen_images: dict[str, set[str]] = {}
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> VLLMTestServer:
        """Bind and serve in a daemon thread; returns self. The port is open on return."""
        if self._httpd is not None:
            raise RuntimeError("server already started")
        self._stopping.clear()
        self._httpd = _HTTPServer((self._host, self._port), self)
        self._port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"vllm-test-server:{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: abort running requests, close all connections and the socket."""
        httpd = self._httpd
        if httpd is None:
            return
        self._stopping.set()
        with self._lock:
            self._lock.notify_all()
        httpd.shutdown()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.wait_for(lambda s: s.open_connections == 0, timeout=2.0)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> VLLMTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def api_base(self) -> str:
        return self.base_url + "/v1"

    @property
    def metrics_url(self) -> str:
        return self.base_url + "/metrics"

    # -- test controls

    def fail_next(self, mode: str, *, after_tokens: int = 3, delay_s: float = 2.0) -> None:
        """Make the next chat request fail in ``mode`` (one-shot; calls queue up)."""
        self._check_mode(mode)
        with self._lock:
            self._pending_modes.append((mode, after_tokens, delay_s))

    def set_mode(self, mode: str | None, *, after_tokens: int = 3, delay_s: float = 2.0) -> None:
        """Make every chat request fail in ``mode`` until ``set_mode(None)``."""
        if mode is not None:
            self._check_mode(mode)
        with self._lock:
            self._mode = None if mode is None else (mode, after_tokens, delay_s)

    def set_engine_dead(self, dead: bool = True) -> None:
        """A dead engine: /health and /ping answer 503, chat requests 500."""
        self.engine_dead = dead

    @staticmethod
    def _check_mode(mode: str) -> None:
        if mode not in FAILURE_MODES:
            raise ValueError(f"unknown failure mode {mode!r}; known: {sorted(FAILURE_MODES)}")

    @property
    def stats(self) -> ServerStats:
        with self._lock:
            return ServerStats(
                requests_started=self._started,
                requests_finished=dict(self._finished),
                running=sum(len(v) for v in self._running.values()),
                waiting=sum(len(v) for v in self._waiting.values()),
                aborted=self._finished["abort"],
                open_connections=len(self._connections),
                connections_accepted=self._accepted,
                requests_rejected=self._rejected,
            )

    def wait_for(self, predicate: Callable[[ServerStats], bool], timeout: float = 5.0) -> bool:
        """Poll ``stats`` until ``predicate`` holds; False if ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate(self.stats):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)

    def served_names(self) -> list[str]:
        """Every name a request may use as ``model``."""
        return [self.model, *self.extra_models, *self.lora_modules]

    # -- connection accounting (called by _HTTPServer)

    def _connection_opened(self, conn: Any) -> None:
        with self._lock:
            self._connections.add(conn)
            self._accepted += 1

    def _connection_closed(self, conn: Any) -> None:
        with self._lock:
            self._connections.discard(conn)

    # -- dispatch

    def _dispatch(self, h: _Handler, method: str) -> None:
        start = time.monotonic()
        path = urlsplit(h.path).path
        h._status = 500
        h._response_size = 0
        length = int(h.headers.get("content-length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            self._route(h, method, path, raw)
        except _ClientGone:
            h.close_connection = True
        except _ApiError as err:  # raised outside the chat handler, e.g. /tokenize
            self._send_error(h, err)
        finally:
            self._record_http(method, path, h._status, length, h._response_size, start)

    def _record_http(
        self, method: str, path: str, status: int, req_size: int, resp_size: int, start: float
    ) -> None:
        if path in _HTTP_EXCLUDED:
            return
        handler = path if path in _ROUTES else "none"
        m = self.metrics
        elapsed = time.monotonic() - start
        m.http_requests.labels(method, f"{status // 100}xx", handler).inc()
        m.http_request_size.labels(handler).observe(req_size)
        m.http_response_size.labels(handler).observe(resp_size)
        m.http_highr.observe(elapsed)
        m.http_duration.labels(method, handler).observe(elapsed)

    def _route(self, h: _Handler, method: str, path: str, raw: bytes) -> None:
        if path.startswith("/v1") and self.api_key is not None:
            if h.headers.get("authorization", "") != f"Bearer {self.api_key}":
                h.send_json(401, {"error": "Unauthorized"})
                return
        methods = _ROUTES.get(path)
        if methods is None:
            h.send_json(404, {"detail": "Not Found"})
            return
        if method not in methods:
            h.send_json(405, {"detail": "Method Not Allowed"})
            return
        if path.startswith("/v1") or path == "/tokenize":
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            with self._lock:
                self.received.append(ReceivedRequest(method, path, dict(h.headers.items()), body))
        if path in ("/health", "/ping"):
            h.send_bytes(503 if self.engine_dead else 200, b"", None)
        elif path == "/version":
            h.send_json(200, {"version": VLLM_VERSION})
        elif path == "/load":
            s = self.stats
            h.send_json(200, {"server_load": s.running + s.waiting})
        elif path == "/metrics":
            h.send_bytes(200, self.metrics.render(), CONTENT_TYPE_LATEST)
        elif path == "/v1/models":
            h.send_json(200, self._models_body())
        elif path == "/tokenize":
            self._tokenize(h, raw)
        else:
            self._chat(h, raw)

    def _models_body(self) -> dict[str, Any]:
        def entry(mid: str, root: str, parent: str | None, max_len: int | None) -> dict:
            return {
                "id": mid,
                "object": "model",
                "created": self._created,
                "owned_by": "vllm",
                "root": root,
                "parent": parent,
                "max_model_len": max_len,
                "permission": [
                    {
                        "id": f"modelperm-{uuid.uuid5(uuid.NAMESPACE_DNS, mid).hex}",
                        "object": "model_permission",
                        "created": self._created,
                        "allow_create_engine": False,
                        "allow_sampling": True,
                        "allow_logprobs": True,
                        "allow_search_indices": False,
                        "allow_view": True,
                        "allow_fine_tuning": False,
                        "organization": "*",
                        "group": None,
                        "is_blocking": False,
                    }
                ],
            }

        data = [entry(self.model, self.root, None, self.max_model_len)]
        data += [entry(m, m, None, self.max_model_len) for m in self.extra_models]
        data += [entry(lo, f"/adapters/{lo}", self.model, None) for lo in self.lora_modules]
        return {"object": "list", "data": data}

    # -- errors

    def _send_error(self, h: _Handler, err: _ApiError) -> None:
        if err.legacy or self.legacy_error_shape:
            body: dict[str, Any] = {
                "object": "error",
                "message": err.message,
                "type": err.err_type,
                "param": err.param,
                "code": err.status,
            }
        else:
            body = {
                "error": {
                    "message": err.message,
                    "type": err.err_type,
                    "param": err.param,
                    "code": err.status,
                }
            }
        h.send_json(err.status, body)

    def _resolve_model(self, name: Any) -> tuple[str, str]:
        """(served name, metrics model_name) for a request's ``model`` field."""
        if name is None:
            return self.model, self.model
        if name in (self.model, *self.lora_modules):
            return str(name), self.model
        if name in self.extra_models:
            return str(name), str(name)
        raise _ApiError(
            404,
            f"The model `{name}` does not exist. Valid aliases: {', '.join(self.served_names())}.",
            "NotFoundError",
            "model",
        )

    # -- /tokenize

    def _tokenize(self, h: _Handler, raw: bytes) -> None:
        body, errors = _parse_json_object(raw)
        if errors:
            raise _validation_error(errors)
        self._resolve_model(body.get("model"))
        if "messages" in body:
            msgs = body["messages"]
            if not isinstance(msgs, list):
                raise _validation_error([_verr("list_type", ("body", "messages"), msgs)])
            add_gen = bool(body.get("add_generation_prompt", True))
            toks = render_chat(msgs, self.image_tokens, add_gen).tokens
        elif isinstance(body.get("prompt"), str):
            toks = tokenize_text(body["prompt"])
        else:
            raise _validation_error([_verr("missing", ("body", "prompt"), body)])
        h.send_json(
            200,
            {
                "count": len(toks),
                "max_model_len": self.max_model_len,
                "tokens": [token_id(t) for t in toks],
                "token_strs": toks if body.get("return_token_strs") else None,
            },
        )

    # -- /v1/chat/completions

    def _take_mode(self) -> tuple[str, int, float] | None:
        with self._lock:
            if self._pending_modes:
                return self._pending_modes.popleft()
            return self._mode

    def _chat(self, h: _Handler, raw: bytes) -> None:
        arrival = time.monotonic()
        try:
            req = self._validate_chat(raw, arrival)
            self._admit(req)
        except _ApiError as err:
            with self._lock:
                self._rejected += 1
            self._send_error(h, err)
            return
        try:
            if req.stream:
                self._serve_stream(h, req)
            else:
                self._serve_once(h, req)
        except _ClientGone:
            h.close_connection = True
            self._finish(req, "abort")
        finally:
            if not req.finished:  # e.g. an unexpected exception: never leak a running slot
                self._finish(req, "error")

    def _validate_chat(self, raw: bytes, arrival: float) -> _Request:
        body, errors = _parse_json_object(raw)
        if not errors:
            errors = _chat_validation_errors(body)
        if errors:
            raise _validation_error(errors)
        # Taken only once the body is valid, so a malformed request does not use it up.
        taken = self._take_mode()
        mode, after_tokens, delay_s = taken if taken else (None, 3, 2.0)
        if mode == "legacy_error":
            raise _ApiError(
                400, "This is a simulated error in the pre-0.10.1 flat shape.",
                "BadRequestError", None, legacy=True,
            )  # fmt: skip
        if mode == "internal_error":
            raise _ApiError(500, "Simulated internal server error.", "InternalServerError")
        if self.engine_dead:
            raise _ApiError(
                500,
                "EngineCore encountered an issue. See stack trace (above) for the root cause.",
                "InternalServerError",
            )
        served, metric_model = self._resolve_model(body.get("model"))
        messages = body["messages"]
        n_images = sum(
            1 for m in messages for p in _content_parts(m.get("content")) if _is_image_part(p)
        )
        if n_images and not self.multimodal:
            raise _ApiError(400, f"{served} is not a multimodal model", "BadRequestError")
        if self.max_images is not None and n_images > self.max_images:
            raise _ApiError(
                400,
                f"At most {self.max_images} image(s) may be provided in one prompt.",
                "BadRequestError",
                "image",
            )
        rendered = render_chat(messages, self.image_tokens)
        n_prompt = len(rendered.tokens)
        requested = body.get("max_completion_tokens", body.get("max_tokens"))
        if requested is not None and requested > self.max_model_len:
            raise _ApiError(
                400,
                f"max_tokens={requested} cannot be greater than max_model_len="
                f"{self.max_model_len}. Please request fewer output tokens.",
                "BadRequestError",
                "max_tokens",
            )
        if requested is None and n_prompt >= self.max_model_len:
            raise _ApiError(
                400,
                f"This model's maximum context length is {self.max_model_len} tokens. However, "
                f"your prompt contains at least {n_prompt} input tokens, which exceeds the "
                "model's maximum context length. Please reduce the length of the input prompt.",
                "BadRequestError",
                "input_tokens",
            )
        if requested is not None and n_prompt + requested > self.max_model_len:
            raise _ApiError(
                400,
                f"This model's maximum context length is {self.max_model_len} tokens. However, "
                f"you requested {requested} output tokens and your prompt contains at least "
                f"{n_prompt} input tokens, for a total of at least {n_prompt + requested} "
                "tokens. Please reduce the length of the input prompt or the number of "
                "requested output tokens.",
                "BadRequestError",
                "input_tokens",
            )
        max_tokens = requested if requested is not None else self.max_model_len - n_prompt
        if mode == "queue_full":
            self._reject_queue_full(metric_model)
        return _Request(
            request_id=f"chatcmpl-{uuid.uuid4().hex}",
            served_model=served,
            metric_model=metric_model,
            body=body,
            rendered=rendered,
            prompt_tokens=n_prompt,
            max_tokens=max_tokens,
            stream=bool(body.get("stream", False)),
            arrival=arrival,
            mode=mode,
            after_tokens=after_tokens,
            delay_s=delay_s,
        )

    def _reject_queue_full(self, metric_model: str) -> None:
        if self.metrics.enabled:
            self.metrics.admission_rejections.labels(metric_model, "max_num_queued_reqs").inc()
        raise _ApiError(
            503,
            "The engine's waiting queue is full (max_num_queued_reqs). Please retry later.",
            "ServiceUnavailableError",
        )

    # -- engine bookkeeping

    def _admit(self, req: _Request) -> None:
        with self._lock:
            waiting = self._waiting[req.metric_model]
            running = self._running[req.metric_model]
            full = len(running) >= self.max_num_seqs
            if (
                full
                and self.max_num_queued_reqs is not None
                and len(waiting) >= self.max_num_queued_reqs
            ):
                self._reject_queue_full(req.metric_model)
            self._started += 1
            waiting.append(req)
            self._update_gauges(req.metric_model)

    def _schedule(self, req: _Request, h: _Handler) -> None:
        """Block until a running slot is free (FIFO); raises _ClientGone on disconnect."""
        with self._lock:
            while True:
                waiting = self._waiting[req.metric_model]
                running = self._running[req.metric_model]
                if waiting and waiting[0] is req and len(running) < self.max_num_seqs:
                    break
                if self._stopping.is_set() or h.client_gone():
                    raise _ClientGone
                self._lock.wait(0.01)
            waiting.pop(0)
            running.append(req)
            req.scheduled_at = time.monotonic()
            cached = self._prefix_lookup(req)
            req.cached_tokens = cached
            self._update_gauges(req.metric_model)
        m = self.metrics
        if m.enabled:
            lb = m.lbl(req.metric_model)
            n = req.prompt_tokens
            m.prompt_tokens.labels(*lb).inc(n)
            m.prefix_queries.labels(*lb).inc(n)
            m.prefix_hits.labels(*lb).inc(cached)
            m.prompt_cached.labels(*lb).inc(cached)
            m.prompt_by_source.labels(*lb, "local_compute").inc(n - cached)
            m.prompt_by_source.labels(*lb, "local_cache_hit").inc(cached)
            m.prompt_cached_by_source.labels(*lb, "device").inc(cached)
            images = req.rendered.image_digests
            if images:
                with self._lock:
                    seen = self._seen_images.setdefault(req.metric_model, set())
                    hits = sum(1 for d in images if d in seen)
                    seen.update(images)
                m.mm_queries.labels(*lb).inc(len(images))
                m.mm_hits.labels(*lb).inc(hits)

    def _prefix_lookup(self, req: _Request) -> int:
        """Cached prompt tokens: leading full blocks seen before (at most prompt - 1)."""
        if not self.enable_prefix_caching:
            return 0
        blocks = self._prefix_blocks.setdefault(req.metric_model, set())
        keys = req.rendered.hash_keys
        digest = hashlib.sha256()
        hits = 0
        still_hitting = True
        for start in range(0, len(keys) - len(keys) % BLOCK_SIZE, BLOCK_SIZE):
            digest.update("\x00".join(keys[start : start + BLOCK_SIZE]).encode("utf-8"))
            block_hash = digest.hexdigest()
            if still_hitting and block_hash in blocks:
                hits += BLOCK_SIZE
            else:
                still_hitting = False
                blocks.add(block_hash)
        # vLLM always recomputes at least the last prompt token.
        return min(hits, max(0, req.prompt_tokens - 1))

    def _update_gauges(self, model: str) -> None:
        # Caller holds self._lock.
        m = self.metrics
        if not m.enabled:
            return
        lb = m.lbl(model)
        running = self._running[model]
        m.running.labels(*lb).set(len(running))
        m.waiting.labels(*lb).set(len(self._waiting[model]))
        m.waiting_by_reason.labels(*lb, "capacity").set(len(self._waiting[model]))
        used = sum(math.ceil((r.prompt_tokens + r.generated) / BLOCK_SIZE) for r in running)
        m.kv_usage.labels(*lb).set(min(1.0, used / self.num_gpu_blocks))

    def _on_token(self, req: _Request, now: float) -> None:
        m = self.metrics
        if m.enabled:
            lb = m.lbl(req.metric_model)
            m.generation_tokens.labels(*lb).inc()
            if req.first_token_at is None:
                m.h_ttft.labels(*lb).observe(now - req.arrival)
                m.h_iteration.labels(*lb).observe(req.prompt_tokens - req.cached_tokens + 1)
            else:
                m.h_itl.labels(*lb).observe(now - (req.last_token_at or now))
                m.h_iteration.labels(*lb).observe(1)
        if req.first_token_at is None:
            req.first_token_at = now
        req.last_token_at = now
        with self._lock:
            req.generated += 1
            if req.generated % BLOCK_SIZE == 1:  # a new KV block was allocated
                self._update_gauges(req.metric_model)

    def _finish(self, req: _Request, reason: str) -> None:
        with self._lock:
            if req.finished:
                return
            req.finished = True
            for queue in (self._running, self._waiting):
                if req in queue[req.metric_model]:
                    queue[req.metric_model].remove(req)
            self._finished[reason] += 1
            self._update_gauges(req.metric_model)
            self._lock.notify_all()
        m = self.metrics
        if not m.enabled:
            return
        now = time.monotonic()
        lb = m.lbl(req.metric_model)
        m.request_success.labels(*lb, reason).inc()
        m.h_e2e.labels(*lb).observe(now - req.arrival)
        m.h_prompt.labels(*lb).observe(req.prompt_tokens)
        m.h_generation.labels(*lb).observe(req.generated)
        m.h_max_gen.labels(*lb).observe(req.max_tokens)
        m.h_max_tokens.labels(*lb).observe(req.max_tokens)
        m.h_n.labels(*lb).observe(int(req.body.get("n") or 1))
        m.h_preempt.labels(*lb).observe(0)
        if req.scheduled_at is None:
            return
        m.h_queue.labels(*lb).observe(req.scheduled_at - req.arrival)
        m.h_inference.labels(*lb).observe(now - req.scheduled_at)
        m.h_prefill_kv.labels(*lb).observe(req.prompt_tokens - req.cached_tokens)
        if req.first_token_at is not None:
            m.h_prefill.labels(*lb).observe(req.first_token_at - req.scheduled_at)
            last = req.last_token_at or req.first_token_at
            m.h_decode.labels(*lb).observe(last - req.first_token_at)
            if req.generated > 1:
                m.h_tpot.labels(*lb).observe((last - req.first_token_at) / (req.generated - 1))

    # -- generation

    def _plan(self, req: _Request) -> tuple[list[str], list[str], bool]:
        """(reasoning pieces, answer pieces, ends with EOS) for this request."""
        body = req.body
        kwargs = body.get("chat_template_kwargs") or {}
        thinking = (
            self.reasoning
            and kwargs.get("enable_thinking", True) is not False
            and body.get("include_reasoning", True) is not False
        )
        n_reason = self.reasoning_tokens if thinking else 0
        chosen = self.answer_for(body) if self.answer_for is not None else None
        pieces = tuple(PIECE_RE.findall(chosen)) if chosen is not None else None
        n_answer_natural = len(pieces) if pieces is not None else self.answer_tokens
        natural = n_reason + n_answer_natural
        if body.get("ignore_eos"):
            natural = max(natural, req.max_tokens + 1)
        budget = req.max_tokens
        eos = natural + 1 <= budget  # room for every piece and the EOS token
        n_reason_emitted = n_reason if eos else min(n_reason, budget)
        n_answer = natural - n_reason if eos else budget - n_reason_emitted
        reasoning, answer = generated_pieces(n_answer, n_reason_emitted)
        if pieces is not None:
            answer = _cycle(pieces, n_answer) if pieces else []
        return reasoning, answer, eos

    def _pace(self, req: _Request, h: _Handler, due: float, keepalive: bool) -> None:
        """Sleep until ``due``, watching for a disconnect; raises _ClientGone."""
        last_comment = time.monotonic()
        while True:
            now = time.monotonic()
            if self._stopping.is_set() or h.client_gone():
                raise _ClientGone
            if now >= due:
                return
            if keepalive and now - last_comment >= 0.5:
                h.write_chunk(b": keep-alive\n\n")
                last_comment = now
            time.sleep(min(due - now, 0.005))

    def _token_times(self, req: _Request) -> Iterator[float]:
        """Deadlines for each token: prefill first, then one per 1/tokens_per_second."""
        assert req.scheduled_at is not None
        step = 1.0 / self.tokens_per_second
        uncached = req.prompt_tokens - req.cached_tokens
        first = req.scheduled_at + step + uncached / self.prefill_tokens_per_second
        if req.mode == "slow_first_token":
            first += req.delay_s
        yield first
        i = 1
        while True:
            yield first + i * step
            i += 1

    def _usage(self, req: _Request) -> dict[str, Any]:
        return {
            "prompt_tokens": req.prompt_tokens,
            "total_tokens": req.prompt_tokens + req.generated,
            "completion_tokens": req.generated,
            "prompt_tokens_details": None,
        }

    def _serve_once(self, h: _Handler, req: _Request) -> None:
        self._schedule(req, h)
        reasoning, answer, eos = self._plan(req)
        times = self._token_times(req)
        n_steps = len(reasoning) + len(answer) + (1 if eos else 0)
        for _ in range(n_steps):
            self._pace(req, h, next(times), keepalive=False)
            self._on_token(req, time.monotonic())
            if req.mode in ("midstream_error", "cut_stream") and req.generated >= req.after_tokens:
                break
        if req.mode == "midstream_error":
            self._finish(req, "error")
            self._send_error(
                h,
                _ApiError(500, "Simulated engine error during generation.", "InternalServerError"),
            )
            return
        if req.mode == "cut_stream":
            self._finish(req, "abort")
            self._cut(h)
            return
        finish_reason = "stop" if eos else "length"
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(answer),
            "refusal": None,
            "annotations": None,
            "audio": None,
            "function_call": None,
            "tool_calls": [],
            self.reasoning_field: "".join(reasoning) if reasoning else None,
        }
        body = {
            "id": req.request_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req.served_model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": finish_reason,
                    "stop_reason": None,
                    "token_ids": None,
                }
            ],
            "service_tier": None,
            "system_fingerprint": None,
            "usage": self._usage(req),
            "prompt_logprobs": None,
            "prompt_token_ids": None,
            "kv_transfer_params": None,
        }
        self._finish(req, finish_reason)
        h.send_json(200, body)

    def _cut(self, h: _Handler) -> None:
        h.close_connection = True
        try:
            h.wfile.flush()
            h.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _serve_stream(self, h: _Handler, req: _Request) -> None:
        # ignore_stream_options imitates llama-cpp-python's own server: never any usage.
        opts = {} if self.ignore_stream_options else (req.body.get("stream_options") or {})
        include_usage = bool(opts.get("include_usage"))
        continuous = include_usage and bool(opts.get("continuous_usage_stats"))
        want_ids = bool(req.body.get("return_token_ids"))
        created = int(time.time())
        keepalive = self.keepalive_comments

        def send(obj: dict[str, Any]) -> None:
            if continuous:
                obj["usage"] = {
                    "prompt_tokens": req.prompt_tokens,
                    "total_tokens": req.prompt_tokens + req.generated,
                    "completion_tokens": req.generated,
                }
            h.write_chunk(b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n")

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict:
            choice: dict[str, Any] = {
                "index": 0,
                "delta": delta,
                "logprobs": None,
                "finish_reason": finish,
            }
            if finish is not None:
                choice["stop_reason"] = None
            choice["token_ids"] = extra.pop("token_ids", None)
            return {
                "id": req.request_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": req.served_model,
                "choices": [choice],
                **extra,
            }

        h.start_stream()
        if keepalive:
            h.write_chunk(b": keep-alive\n\n")
        self._schedule(req, h)
        reasoning, answer, eos = self._plan(req)
        steps: list[tuple[str, str]] = [(self.reasoning_field, p) for p in reasoning]
        steps += [("content", p) for p in answer]
        if eos:
            steps.append(("eos", ""))
        times = self._token_times(req)
        for i, (kind, piece) in enumerate(steps):
            self._pace(req, h, next(times), keepalive)
            if i == 0:  # vLLM sends the role chunk with the first output, usage still 0
                prompt_ids = [token_id(t) for t in req.rendered.tokens] if want_ids else None
                role = chunk({"role": "assistant", "content": ""}, prompt_token_ids=prompt_ids)
                role["choices"][0].pop("token_ids")
                send(role)
            self._on_token(req, time.monotonic())
            ids = [token_id(piece.strip() or piece)] if want_ids else None
            last = i == len(steps) - 1
            if kind == "eos":
                send(chunk({"content": ""}, "stop", token_ids=ids, kv_transfer_params=None))
            else:
                finish = "length" if last else None
                extra: dict[str, Any] = {"kv_transfer_params": None} if last else {}
                send(chunk({kind: piece}, finish, token_ids=ids, **extra))
            if keepalive and i % 10 == 9:
                h.write_chunk(b": keep-alive\n\n")
            if req.generated == req.after_tokens and not last:
                if req.mode == "midstream_error":
                    err = {
                        "message": "Simulated engine error during generation.",
                        "type": "InternalServerError",
                        "param": None,
                        "code": 500,
                    }
                    h.write_chunk(b"data: " + json.dumps({"error": err}).encode() + b"\n\n")
                    h.write_chunk(b"data: [DONE]\n\n")
                    h.end_stream()
                    self._finish(req, "error")
                    return
                if req.mode == "cut_stream":
                    self._finish(req, "abort")
                    self._cut(h)
                    return
                if req.mode == "non_json_chunk":
                    h.write_chunk(b'data: {"id": this is not json\n\n')
        self._finish(req, "stop" if eos else "length")
        if include_usage:
            usage_chunk = {
                "id": req.request_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": req.served_model,
                "choices": [],
                "usage": self._usage(req),
                "system_fingerprint": f"vllm-{VLLM_VERSION}",
            }
            h.write_chunk(
                b"data: " + json.dumps(usage_chunk, separators=(",", ":")).encode() + b"\n\n"
            )
        if req.mode != "no_done":
            h.write_chunk(b"data: [DONE]\n\n")
        h.end_stream()


# --------------------------------------------------------------------------- validation


def _verr(kind: str, loc: tuple[Any, ...], value: Any, msg: str | None = None) -> dict[str, Any]:
    msgs = {
        "missing": "Field required",
        "list_type": "Input should be a valid list",
        "dict_type": "Input should be a valid dictionary",
        "int_type": "Input should be a valid integer",
        "bool_type": "Input should be a valid boolean",
        "string_type": "Input should be a valid string",
        "float_type": "Input should be a valid number",
        "greater_than_equal": "Input should be greater than or equal to 1",
        "json_invalid": "JSON decode error",
        "model_attributes_type": (
            "Input should be a valid dictionary or object to extract fields from"
        ),
    }
    return {"type": kind, "loc": loc, "msg": msg or msgs.get(kind, kind), "input": value}


def _validation_error(errors: list[dict[str, Any]]) -> _ApiError:
    # FastAPI's RequestValidationError str() followed by errors(), as vLLM's handler does.
    n = len(errors)
    text = f"{n} validation error{'s' if n != 1 else ''}:\n"
    text += "".join(f"  {e}\n" for e in errors)
    return _ApiError(400, f"{text} {errors}", "Bad Request")


def _parse_json_object(raw: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    try:
        body = json.loads(raw) if raw else None
    except ValueError as exc:
        return {}, [_verr("json_invalid", ("body", 0), {}, f"JSON decode error: {exc}")]
    if not isinstance(body, dict):
        return {}, [_verr("model_attributes_type", ("body",), body)]
    return body, []


def _chat_validation_errors(body: dict[str, Any]) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    msgs = body.get("messages")
    if "messages" not in body:
        errors.append(_verr("missing", ("body", "messages"), body))
    elif not isinstance(msgs, list):
        errors.append(_verr("list_type", ("body", "messages"), msgs))
    else:
        for i, m in enumerate(msgs):
            if not isinstance(m, dict):
                errors.append(_verr("dict_type", ("body", "messages", i), m))
            elif not isinstance(m.get("role"), str):
                errors.append(_verr("missing", ("body", "messages", i, "role"), m))
            elif m.get("content") is not None and not isinstance(m["content"], (str, list)):
                errors.append(_verr("string_type", ("body", "messages", i, "content"), m))
    if "model" in body and body["model"] is not None and not isinstance(body["model"], str):
        errors.append(_verr("string_type", ("body", "model"), body["model"]))
    for key in ("max_tokens", "max_completion_tokens", "n"):
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append(_verr("int_type", ("body", key), value))
        elif value < 1:
            errors.append(_verr("greater_than_equal", ("body", key), value))
    for key in ("stream", "ignore_eos", "return_token_ids"):
        if key in body and body[key] is not None and not isinstance(body[key], bool):
            errors.append(_verr("bool_type", ("body", key), body[key]))
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            errors.append(_verr("float_type", ("body", key), value))
    opts = body.get("stream_options")
    if opts is not None:
        if not isinstance(opts, dict):
            errors.append(_verr("dict_type", ("body", "stream_options"), opts))
        elif not body.get("stream"):
            errors.append(
                _verr(
                    "value_error",
                    ("body",),
                    body,
                    "Value error, Stream options can only be defined when `stream=True`.",
                )
            )
    return errors


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until interrupted: ``python -m tests.servers.vllm_server --port N``."""
    p = argparse.ArgumentParser(description="A vLLM 0.33 stand-in for kanoa desktop tests.")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--model", default="qwen2.5-vl-7b", help="served model name")
    p.add_argument("--root", default="Qwen/Qwen2.5-VL-7B-Instruct")
    p.add_argument("--max-model-len", type=int, default=32768)
    p.add_argument("--text-only", action="store_true", help="reject images")
    p.add_argument("--max-images", type=int, default=None)
    p.add_argument("--api-key", default=None)
    p.add_argument("--tokens-per-second", type=float, default=30.0)
    p.add_argument("--reasoning", action="store_true")
    p.add_argument("--lora", action="append", default=[], help="LoRA adapter name")
    p.add_argument("--legacy-names", action="store_true")
    args = p.parse_args(argv)
    server = VLLMTestServer(
        model=args.model,
        root=args.root,
        max_model_len=args.max_model_len,
        multimodal=not args.text_only,
        max_images=args.max_images,
        api_key=args.api_key,
        tokens_per_second=args.tokens_per_second,
        reasoning=args.reasoning,
        lora_modules=args.lora,
        legacy_names=args.legacy_names,
        port=args.port,
        host=args.host,
    )
    # Background jobs of a non-interactive shell ignore SIGINT; SIGTERM stops us cleanly.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.start()
    print(f"vLLM {VLLM_VERSION} stand-in serving {args.model} at {server.api_base}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
