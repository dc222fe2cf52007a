"""The HTTP transport under the openai client: one overall deadline per exchange and a cap on the reply's size
(httpx's own timeouts are per read, so a server that trickles bytes would otherwise never time out)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx


class DeadlinePassed(httpx.ReadTimeout):
    """The exchange ran past its overall deadline (a timeout, so the openai client reports APITimeoutError)."""


class ReplyTooLarge(Exception):
    """The reply's body passed max_reply_bytes; the exchange was cut off."""


class _BoundedStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, deadline: float, timeouts: dict, max_bytes: int):
        self._inner = inner
        self._deadline = deadline
        self._timeouts = timeouts
        self._max_bytes = max_bytes

    def __iter__(self) -> Iterator[bytes]:
        # httpcore reads the read timeout when the body starts: make a stall after the headers end at the deadline.
        self._timeouts["read"] = max(self._deadline - time.monotonic(), 0.001)
        received = 0
        for chunk in self._inner:
            received += len(chunk)
            if received > self._max_bytes:
                raise ReplyTooLarge(f"the reply passed {self._max_bytes} bytes (max_reply_bytes) and was cut off")
            if time.monotonic() > self._deadline:
                raise DeadlinePassed("the reply was still arriving at the deadline")
            yield chunk

    def close(self) -> None:
        self._inner.close()


class BoundedTransport(httpx.BaseTransport):
    """Wraps a real transport. A server that trickles bytes keeps each socket wait short, so socket timeouts alone
    never end the exchange: the deadline is checked between chunks as well, and the bytes are counted."""

    def __init__(self, timeout_s: float, max_bytes: int, inner: httpx.BaseTransport | None = None):
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self._inner = inner or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        deadline = time.monotonic() + self.timeout_s
        timeouts = {"connect": self.timeout_s, "read": self.timeout_s, "write": self.timeout_s,
                    "pool": self.timeout_s}
        request.extensions = {**request.extensions, "timeout": timeouts}
        # Bytes on the wire are the bytes decoded: a compressed body could not be capped by counting.
        request.headers["Accept-Encoding"] = "identity"
        response = self._inner.handle_request(request)
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response.close()
            raise ReplyTooLarge(f"the server announced a reply of {int(declared)} bytes, over the {self.max_bytes} "
                                f"allowed (max_reply_bytes)")
        if time.monotonic() > deadline:
            response.close()
            raise DeadlinePassed("the reply's headers came after the deadline")
        assert isinstance(response.stream, httpx.SyncByteStream)
        return httpx.Response(response.status_code, headers=response.headers, extensions=response.extensions,
                              stream=_BoundedStream(response.stream, deadline, timeouts, self.max_bytes))

    def close(self) -> None:
        self._inner.close()
