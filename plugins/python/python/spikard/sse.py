"""Server-Sent Events: :class:`EventSourceResponse` streams the events a
sync or async iterator yields, in the ``text/event-stream`` format browsers'
``EventSource`` reads::

    from spikard.sse import EventSourceResponse, ServerSentEvent

    @app.get("/ticks")
    async def ticks() -> EventSourceResponse:
        async def events():
            for n in range(10):
                yield ServerSentEvent({"n": n}, event="tick", id=str(n))
                await asyncio.sleep(1)
        return EventSourceResponse(events())

Items may be :class:`ServerSentEvent`, ``dict`` or ``list`` (sent as one
JSON ``data`` field) or ``str`` (the ``data``; several lines become several
``data:`` lines, which the client joins with ``\\n``). While the producer
is silent for ``ping`` seconds a comment line (``: ping``) keeps proxies and
clients from timing the connection out.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, Iterable
from typing import Any, Final

from ._responses import HeadersLike
from ._streaming import Encoder, StreamingResponse

__all__ = ["EventSourceResponse", "ServerSentEvent", "encode_event"]

#: Line ends of the format: the client splits on each of them.
_LINE_END: Final = re.compile(r"\r\n|\r|\n")

#: Headers of every event stream (``headers`` may override them).
_HEADERS: Final = (
    ("content-type", "text/event-stream"),
    ("cache-control", "no-cache"),
    ("x-accel-buffering", "no"),
)

_json_encode: Any = None


def _to_json(value: Any) -> str:
    global _json_encode
    if _json_encode is None:
        import msgspec

        def enc_hook(obj: Any) -> Any:
            dump = getattr(obj, "model_dump", None)
            if dump is not None:
                return dump(mode="json")
            raise TypeError(f"objects of type {type(obj).__name__} are not JSON serializable")

        _json_encode = msgspec.json.Encoder(enc_hook=enc_hook).encode
    encoded: bytes = _json_encode(value)
    return encoded.decode()


def _field(name: str, value: str) -> str:
    if _LINE_END.search(value):
        raise ValueError(f"the SSE {name} must be one line, got {value!r}")
    return value


class ServerSentEvent:
    """One event.

    - ``data``: ``str`` (several lines become several ``data:`` lines), any
      other value is sent as JSON; ``None`` sends no ``data`` field.
    - ``event``: the event type (``EventSource.addEventListener(type)``);
      ``id``: the last event id the client sends back on reconnection
      (no NUL); ``retry``: the client's reconnection delay in milliseconds;
      ``comment``: comment lines, which clients ignore.
    """

    __slots__ = ("comment", "data", "event", "id", "retry")

    def __init__(
        self,
        data: Any = None,
        event: str | None = None,
        id: str | None = None,
        retry: int | None = None,
        comment: str | None = None,
    ) -> None:
        if event is not None:
            _field("event", event)
        if id is not None and "\0" in _field("id", id):
            raise ValueError("the SSE id must not contain NUL (clients ignore such ids)")
        if retry is not None and (isinstance(retry, bool) or not isinstance(retry, int) or retry < 0):
            raise ValueError(f"the SSE retry must be a non-negative int of milliseconds, got {retry!r}")
        self.data = data
        self.event = event
        self.id = id
        self.retry = retry
        self.comment = comment

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={getattr(self, name)!r}" for name in self.__slots__ if getattr(self, name) is not None
        )
        return f"ServerSentEvent({fields})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ServerSentEvent):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    __hash__ = None  # type: ignore[assignment]

    def encode(self) -> bytes:
        """The event in the wire format, ending with the blank line that
        dispatches it."""
        lines: list[str] = []
        if self.comment is not None:
            lines += [f": {line}" for line in _LINE_END.split(self.comment)]
        if self.id is not None:
            lines.append(f"id: {self.id}")
        if self.event is not None:
            lines.append(f"event: {self.event}")
        if self.retry is not None:
            lines.append(f"retry: {self.retry}")
        data = self.data
        if data is not None:
            text = data if isinstance(data, str) else _to_json(data)
            lines += [f"data: {line}" for line in _LINE_END.split(text)]
        lines.append("\n")
        return "\n".join(lines).encode()


def encode_event(item: Any) -> bytes:
    """An item of an event stream in the wire format: a
    :class:`ServerSentEvent`, a ``str`` (the data) or a ``dict``/``list``
    (JSON data); a ``TypeError`` for anything else."""
    if isinstance(item, ServerSentEvent):
        return item.encode()
    if isinstance(item, str):
        return ServerSentEvent(item).encode()
    if isinstance(item, (dict, list)):
        return ServerSentEvent(_to_json(item)).encode()
    raise TypeError(f"an event stream item must be a ServerSentEvent, dict, list or str, not {type(item).__name__}")


class EventSourceResponse(StreamingResponse):
    """A ``text/event-stream`` response (Server-Sent Events).

    ``content`` is a sync or async iterator of :class:`ServerSentEvent`,
    ``dict``/``list`` (JSON data) or ``str`` (data). ``ping``: seconds of
    producer silence after which a ``: ping`` comment is sent (``None`` or
    ``0``: never). Sent with ``Content-Type: text/event-stream``,
    ``Cache-Control: no-cache`` and ``X-Accel-Buffering: no`` (so nginx does
    not buffer it); ``headers`` add to or override them.
    """

    __slots__ = ("ping",)

    def __init__(
        self,
        content: Iterable[Any] | AsyncIterable[Any],
        ping: float | None = 15.0,
        headers: HeadersLike | None = None,
        status_code: int = 200,
    ) -> None:
        if ping is not None and (isinstance(ping, bool) or not isinstance(ping, (int, float)) or ping < 0):
            raise ValueError(f"ping must be a number of seconds >= 0 or None, got {ping!r}")
        super().__init__(content, status_code, headers)
        given = {name.lower() for name, _ in self.headers.raw}
        self.headers = [*(pair for pair in _HEADERS if pair[0] not in given), *self.headers.raw]
        self.ping = float(ping) if ping else None

    def encoder(self) -> Encoder:
        return encode_event

    def ping_interval(self) -> float | None:
        return self.ping
