"""A real HTTP server speaking OpenAI's ``/v1/chat/completions``, answering from a script, for tests.

    with FakeOpenAIServer([error(429, headers={"Retry-After": "0"}), completion(good_reply_json())]) as server:
        proposer = OpenAIProposer("m", base_url=server.base_url)
        ...
        server.requests  # what the server received: path, headers, parsed JSON body

Each request consumes the next scripted answer; when the script runs out, ``default`` answers (a 500 saying the
script is exhausted unless given). It binds 127.0.0.1 on a free port and serves from a daemon thread.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GOOD_CODE = (
    "def loss(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps, beta):\n"
    "    x = beta * ((policy_chosen_logps - reference_chosen_logps)\n"
    "                - (policy_rejected_logps - reference_rejected_logps))\n"
    "    return -F.logsigmoid(x)\n"
)


@dataclass(frozen=True)
class Scripted:
    """One scripted answer: status, JSON (or raw text) body, headers, and a delay before answering."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: Any  # the parsed JSON, or the raw text when it was not JSON


def good_reply_json(name: str = "scripted_loss", thought: str = "A scripted idea.", code: str = GOOD_CODE) -> str:
    return json.dumps({"thought": thought, "name": name, "code": code})


def completion(content: str, prompt_tokens: int = 10, completion_tokens: int = 5, model: str = "fake-model",
               delay_s: float = 0.0) -> Scripted:
    """A successful chat completion whose message content is ``content``."""
    body = {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }
    return Scripted(200, body, delay_s=delay_s)


def error(status: int, message: str = "scripted error", headers: dict[str, str] | None = None,
          param: str | None = None) -> Scripted:
    """An OpenAI-style error answer."""
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}
    return Scripted(status, body, dict(headers or {}))


class FakeOpenAIServer:
    def __init__(self, script: list[Scripted], default: Scripted | None = None):
        self._script = list(script)
        self._default = default or error(500, "fake server: script exhausted")
        self._lock = threading.Lock()
        self.requests: list[Received] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
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
            return self._script.pop(0) if self._script else self._default

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8", "replace")
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    body = raw
                received = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                if self.path.rstrip("/") != "/v1/chat/completions":
                    answer = error(404, f"no route {self.path}")
                    with server._lock:
                        server.requests.append(received)
                else:
                    answer = server._next_answer(received)
                time.sleep(answer.delay_s)
                payload = answer.body if isinstance(answer.body, str) else json.dumps(answer.body)
                data = payload.encode()
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in answer.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing to answer

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - silence the access log
                return

        return Handler
