"""A real HTTP server speaking OpenAI's ``/v1/chat/completions``, answering from a script, for tests.

    with FakeOpenAIServer([error(429, headers={"Retry-After": "0"}), completion(good_reply_json())]) as server:
        proposer = OpenAIProposer("m", base_url=server.base_url)
        ...
        server.requests  # what the server received: path, headers, parsed JSON body

Each chat request consumes the next scripted answer; when the script runs out, ``default`` answers (a 500 saying
the script is exhausted unless given; a callable ``default`` answers from the request it gets). ``GET /v1/models`` answers ``models``: a list of ids (served as OpenAI's
listing; by default the one model ``completion`` names), one Scripted answer, or None for no such route (404).
``requests`` holds the POSTs received, ``listing_requests`` the GETs. A Scripted answer may trickle its body
(``trickle_s`` between chunks of ``chunk_bytes``) and may be sent chunked, without a Content-Length. It binds
127.0.0.1 on a free port and serves from daemon threads.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from collections.abc import Callable, Sequence
from typing import Any

GOOD_CODE = (
    "def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):\n"
    "    x = beta * ((policy_chosen_logps - reference_chosen_logps)\n"
    "                - (policy_rejected_logps - reference_rejected_logps))\n"
    "    return -F.logsigmoid(x)\n"
)


@dataclass(frozen=True)
class Scripted:
    """One scripted answer: status, JSON (or raw text) body, headers, a delay before answering, and how the body
    is sent (all at once, or trickled in chunks; with a Content-Length or chunked)."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    trickle_s: float = 0.0  # pause before each chunk of the body
    chunk_bytes: int = 1 << 16
    chunked: bool = False  # Transfer-Encoding: chunked, so the client cannot know the size beforehand


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: Any  # the parsed JSON, or the raw text when it was not JSON
    method: str = "POST"


def good_reply_json(name: str = "scripted_loss", thought: str = "A scripted idea.", code: str = GOOD_CODE) -> str:
    return json.dumps({"thought": thought, "name": name, "code": code})


def completion(content: str | None, prompt_tokens: int = 10, completion_tokens: int = 5, model: str = "fake-model",
               delay_s: float = 0.0, finish_reason: str = "stop", **sending: Any) -> Scripted:
    """A successful chat completion whose message content is ``content``; ``sending``: Scripted's trickle_s,
    chunk_bytes, chunked, headers."""
    body = {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }
    return Scripted(200, body, delay_s=delay_s, **sending)


DEFAULT_MODELS = ("fake-model",)


def model_listing(ids: Sequence[str]) -> Scripted:
    """OpenAI's ``GET /models`` answer listing ``ids``."""
    return Scripted(200, {"object": "list",
                          "data": [{"id": i, "object": "model", "created": 0, "owned_by": "fake"} for i in ids]})


def error(status: int, message: str = "scripted error", headers: dict[str, str] | None = None,
          param: str | None = None) -> Scripted:
    """An OpenAI-style error answer."""
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}
    return Scripted(status, body, dict(headers or {}))


class FakeOpenAIServer:
    def __init__(self, script: list[Scripted], default: Scripted | Callable[[Received], Scripted] | None = None,
                 models: Sequence[str] | Scripted | None = DEFAULT_MODELS):
        self._script = list(script)
        self._default = default or error(500, "fake server: script exhausted")
        self._models = models if models is None or isinstance(models, Scripted) else model_listing(models)
        self._lock = threading.Lock()
        self.requests: list[Received] = []
        self.listing_requests: list[Received] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        # Clients keep connections alive: closing the server must not wait for their handler threads.
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="fake-openai", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> "FakeOpenAIServer":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next_answer(self, received: Received) -> Scripted:
        with self._lock:
            self.requests.append(received)
            if self._script:
                return self._script.pop(0)
        # a callable default answers each request from what it received (a server with a small context, say)
        return self._default(received) if callable(self._default) else self._default

    def _record(self, received: Received) -> None:
        with self._lock:
            (self.listing_requests if received.method == "GET" else self.requests).append(received)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                received = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, None, "GET")
                server._record(received)
                if self.path.rstrip("/") == "/v1/models" and server._models is not None:
                    self._answer(server._models)
                else:
                    self._answer(error(404, f"no route {self.path}"))

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8", "replace")
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    body = raw
                received = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                if self.path.rstrip("/") != "/v1/chat/completions":
                    server._record(received)
                    self._answer(error(404, f"no route {self.path}"))
                else:
                    self._answer(server._next_answer(received))

            def _answer(self, answer: Scripted) -> None:
                time.sleep(answer.delay_s)
                payload = answer.body if isinstance(answer.body, str) else json.dumps(answer.body)
                data = payload.encode()
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", "application/json")
                    if answer.chunked:
                        self.send_header("Transfer-Encoding", "chunked")
                    else:
                        self.send_header("Content-Length", str(len(data)))
                    for key, value in answer.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    for start in range(0, len(data), answer.chunk_bytes):
                        time.sleep(answer.trickle_s)
                        piece = data[start:start + answer.chunk_bytes]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if answer.chunked else piece)
                        self.wfile.flush()
                    if answer.chunked:
                        self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up (a timeout or size test)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - silence the access log
                return

        return Handler
