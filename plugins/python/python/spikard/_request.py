"""``Request``: what a handler that asks for it (``request: Request``) sees of
the raw request and of what the host established about it (``auth``), with
Starlette's API (``await request.json()``, ``request.url``, ``request.client``
...). Everything is computed on first access; a handler that does not ask
for the request pays nothing (the plugin copies the request line and
properties only for handlers that do).

The request's *source* is the plugin's per-request ``spikard._native``
object (the responder, or a ``RequestSource``): ``request_id``, ``method``,
``path``, ``query_string``, ``client``, ``server``, ``scheme``,
``http_version`` and ``route``, read from the host's request (ABI 1.1). A
plain string stands for a source that only knows the request id (unit
tests).
"""

from __future__ import annotations

import typing
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit

from ._upload import UploadFile

__all__ = ["URL", "Address", "Body", "FormData", "Headers", "QueryParams", "Request"]


class Address(NamedTuple):
    """A peer's address, Starlette's ``request.client``."""

    host: str
    port: int


# ---------------------------------------------------------------------------
# Containers


class ImmutableMultiDict(Mapping[str, Any]):
    """A read-only mapping that keeps every value of a repeated key, as
    Starlette's: ``d[key]`` and ``d.get(key)`` are the *last* value,
    ``d.getlist(key)`` all of them in order, ``d.multi_items()`` every pair."""

    __slots__ = ("_dict", "_list")

    def __init__(self, items: Any = ()) -> None:
        if isinstance(items, ImmutableMultiDict):
            pairs = list(items.multi_items())
        elif isinstance(items, Mapping):
            pairs = list(items.items())
        else:
            pairs = list(items)
        self._list: list[tuple[str, Any]] = pairs
        self._dict: dict[str, Any] = dict(pairs)

    def getlist(self, key: str) -> list[Any]:
        """Every value of ``key``, in order (``[]`` when absent)."""
        return [v for k, v in self._list if k == key]

    def multi_items(self) -> list[tuple[str, Any]]:
        """Every ``(key, value)`` pair, repeated keys included."""
        return list(self._list)

    def __getitem__(self, key: str) -> Any:
        return self._dict[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ImmutableMultiDict):
            return sorted(self._list, key=repr) == sorted(other._list, key=repr)
        if isinstance(other, Mapping):
            return self._dict == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._list!r})"


class QueryParams(ImmutableMultiDict):
    """The query string's parameters as sent: strings, repeated keys kept
    (``getlist``). ``str()`` is the query string, re-encoded."""

    __slots__ = ()

    def __init__(self, items: Any = ()) -> None:
        if isinstance(items, (str, bytes)):
            text = items.decode("latin-1") if isinstance(items, bytes) else items
            items = parse_qsl(text, keep_blank_values=True)
        super().__init__(items)

    def __str__(self) -> str:
        return urlencode(self._list)


class FormData(ImmutableMultiDict):
    """A form's fields: ``str`` values, and :class:`UploadFile` for file
    parts. ``await form.close()`` (or ``async with request.form() as
    form:``) closes its files; the runtime does not track them."""

    __slots__ = ()

    async def close(self) -> None:
        """Closes every file of the form."""
        for _, value in self._list:
            if isinstance(value, UploadFile):
                value.release()


class Headers(dict):  # type: ignore[type-arg]
    """Request headers: a ``dict`` of lower-case names to values (repeated
    headers joined with ``", "``, cookies with ``"; "``), looked up without
    regard to case; ``getlist(name)`` gives each line's value separately and
    ``raw`` every ``(name, value)`` pair as received."""

    __slots__ = ("raw",)

    def __init__(self, raw: list[tuple[str, str]] | None = None) -> None:
        super().__init__()
        self.raw: list[tuple[str, str]] = list(raw or ())
        for name, value in self.raw:
            previous = dict.get(self, name)
            if previous is None:
                dict.__setitem__(self, name, value)
            else:
                dict.__setitem__(self, name, previous + ("; " if name == "cookie" else ", ") + value)

    def __getitem__(self, name: str) -> str:
        return str(dict.__getitem__(self, name.lower()))

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name.lower() if isinstance(name, str) else name)

    def get(self, name: str, default: Any = None) -> Any:
        """The (joined) value of ``name``, any case, or ``default``."""
        return dict.get(self, name.lower(), default)

    def getlist(self, name: str) -> list[str]:
        """The value of each ``name`` header line, in order."""
        name = name.lower()
        return [value for key, value in self.raw if key == name]


class URL(str):
    """A URL: a ``str`` with its parts (``scheme``, ``netloc``, ``hostname``,
    ``port``, ``path``, ``query``, ``fragment``, ``is_secure``) and copies
    with parts changed (``replace``, ``include_query_params``,
    ``replace_query_params``, ``remove_query_params``)."""

    __slots__ = ()

    @property
    def _parts(self) -> SplitResult:
        return urlsplit(str(self))

    @property
    def scheme(self) -> str:
        return self._parts.scheme

    @property
    def netloc(self) -> str:
        return self._parts.netloc

    @property
    def hostname(self) -> str | None:
        return self._parts.hostname

    @property
    def port(self) -> int | None:
        return self._parts.port

    @property
    def path(self) -> str:
        return self._parts.path

    @property
    def query(self) -> str:
        return self._parts.query

    @property
    def fragment(self) -> str:
        return self._parts.fragment

    @property
    def username(self) -> str | None:
        return self._parts.username

    @property
    def password(self) -> str | None:
        return self._parts.password

    @property
    def is_secure(self) -> bool:
        return self.scheme in ("https", "wss")

    def replace(self, **parts: Any) -> URL:  # type: ignore[override]
        """A copy with some of ``scheme``, ``netloc``, ``path``, ``query``,
        ``fragment`` (or ``hostname``/``port``) changed."""
        hostname = parts.pop("hostname", None)
        port = parts.pop("port", None)
        current = self._parts
        if hostname is not None or port is not None:
            host = hostname if hostname is not None else (current.hostname or "")
            if ":" in host:
                host = f"[{host}]"
            port = port if port is not None else current.port
            parts["netloc"] = f"{host}:{port}" if port is not None else host
        return URL(current._replace(**parts).geturl())

    def include_query_params(self, **params: Any) -> URL:
        """A copy with these query parameters set (others kept)."""
        query = QueryParams(self.query)
        pairs = [(k, v) for k, v in query.multi_items() if k not in params]
        pairs += [(k, str(v)) for k, v in params.items()]
        return self.replace(query=urlencode(pairs))

    def replace_query_params(self, **params: Any) -> URL:
        """A copy whose query is exactly these parameters."""
        return self.replace(query=urlencode([(k, str(v)) for k, v in params.items()]))

    def remove_query_params(self, keys: str | list[str]) -> URL:
        """A copy without these query parameters."""
        drop = {keys} if isinstance(keys, str) else set(keys)
        pairs = [(k, v) for k, v in QueryParams(self.query).multi_items() if k not in drop]
        return self.replace(query=urlencode(pairs))

    def __repr__(self) -> str:
        return f"URL({str(self)!r})"


class Body(bytes):
    """The raw body: ``bytes`` (``request.body.decode()``, ``len()``,
    ``==``) that may also be called and awaited, so Starlette's ``await
    request.body()`` works as well."""

    __slots__ = ()

    def __call__(self) -> Body:
        return self

    def __await__(self) -> Any:
        return self
        yield  # a generator: awaiting it returns the bytes at once


class _Ready:
    """A value already computed, handed out as an awaitable (``json()`` and
    ``form()`` called in a coroutine), and as an async context manager."""

    __slots__ = ("value", "what")

    def __init__(self, value: Any, what: str) -> None:
        self.value = value
        self.what = what

    def __await__(self) -> Any:
        return self.value
        yield  # a generator: awaiting it returns the value at once

    async def __aenter__(self) -> Any:
        return self.value

    async def __aexit__(self, *exc: object) -> None:
        close = getattr(self.value, "close", None)
        if close is not None:
            await close()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise TypeError(f"{self.what} in an async function is awaitable: write `await {self.what}`")

    def __getitem__(self, key: Any) -> Any:
        raise TypeError(f"{self.what} in an async function is awaitable: write `await {self.what}`")

    def __repr__(self) -> str:
        return f"<awaitable {self.what}>"


# ---------------------------------------------------------------------------
# The request


class Request:
    """The request as the host validated it, with Starlette's API.

    - ``method``, ``url`` (:class:`URL`: ``.path``, ``.query``, ``.scheme``,
      ``.netloc``, ``.hostname``, ``.port``), ``base_url``, ``client`` and
      ``server`` (``Address(host, port)`` or ``None``), ``http_version``,
      ``route`` (the matched template, e.g. ``/items/{id}``).
    - ``headers``: every request header (:class:`Headers`: a ``dict`` by
      lower-case name, case-insensitive lookups, ``getlist``); ``cookies``.
    - ``query_params``: the query string as sent (:class:`QueryParams`,
      strings, ``getlist`` for repeated keys); ``path_params``: the validated
      path parameters; ``params``: every validated parameter by source,
      ``{"path": {...}, "query": {...}, "headers": {...}, "cookies": {...}}``
      (converted values: use it for the host's coercions).
    - ``auth``: the principal the host authenticated, for a route with an
      authentication policy: ``{"scheme": "jwt", "claims": {...}}`` or
      ``{"scheme": "api_key", "key_index": 0}``; ``None`` otherwise. The
      host has verified it (signature, expiry, audience, issuer).
    - ``body``: the raw body (:class:`Body`: ``bytes``, also ``await
      request.body()``); ``json()``, ``form()``, ``stream()``.
    - ``state``: a per-request attribute bag; ``request_id``: the host's id
      of this request (the ``x-request-id`` response header).
    """

    __slots__ = (
        "_body",
        "_cookies",
        "_form",
        "_headers",
        "_params",
        "_params_json",
        "_query",
        "_raw_body",
        "_raw_headers",
        "_source",
        "_state",
    )

    def __init__(
        self,
        headers: list[tuple[str, str]] | None,
        params_json: str | bytes | dict[str, Any],
        body: bytes,
        source: Any = "",
    ) -> None:
        self._raw_headers = headers
        self._headers: Headers | None = None
        if isinstance(params_json, dict):
            self._params: dict[str, Any] | None = params_json
            self._params_json: str | bytes = ""
        else:
            self._params = None
            self._params_json = params_json
        self._raw_body = body
        self._body: Body | None = None
        self._source = source
        self._state: Any = None
        self._query: QueryParams | None = None
        self._cookies: dict[str, str] | None = None
        self._form: FormData | None = None

    # -- what the source knows -------------------------------------------

    def _info(self, name: str) -> Any:
        return getattr(self._source, name, None)

    @property
    def request_id(self) -> str:
        """The host's id of the request (its ``x-request-id``)."""
        source = self._source
        return source if isinstance(source, str) else str(source.request_id)

    @property
    def method(self) -> str:
        """The HTTP method (``""`` when unknown)."""
        return self._info("method") or ""

    @property
    def client(self) -> Address | None:
        """The client's ``Address(host, port)`` (the TCP peer: a proxy's
        address behind one), or ``None`` when unknown."""
        client = self._info("client")
        return Address(*client) if client else None

    @property
    def server(self) -> Address | None:
        """The ``Address(host, port)`` the connection was accepted on."""
        server = self._info("server")
        return Address(*server) if server else None

    @property
    def http_version(self) -> str | None:
        """``"HTTP/1.1"``, ``"HTTP/1.0"``, ... or ``None`` when unknown."""
        return typing.cast("str | None", self._info("http_version"))

    @property
    def route(self) -> str | None:
        """The matched route's template, e.g. ``/items/{id}``."""
        return typing.cast("str | None", self._info("route"))

    @property
    def scheme(self) -> str:
        """``"http"`` or ``"https"`` as the host serves the request (a
        TLS-terminating proxy in front is not seen)."""
        return self._info("scheme") or "http"

    @property
    def url(self) -> URL:
        """The request's URL, from the scheme, the ``Host`` header (else the
        server's address) and the path and query as sent (percent-encoded)."""
        path = self._info("path") or "/"
        query = self._info("query_string")
        return URL(f"{self.base_url[:-1]}{path}" + (f"?{query}" if query else ""))

    @property
    def base_url(self) -> URL:
        """``scheme://host/``: the URL of the root."""
        host = self.headers.get("host")
        if not host:
            server = self.server
            if server is None:
                host = "localhost"
            else:
                name = f"[{server.host}]" if ":" in server.host else server.host
                host = name if server.port == (443 if self.scheme == "https" else 80) else f"{name}:{server.port}"
        return URL(f"{self.scheme}://{host}/")

    # -- headers and parameters ------------------------------------------

    @property
    def headers(self) -> Headers:
        """Request headers by lower-case name (any case looks up)."""
        headers = self._headers
        if headers is None:
            headers = self._headers = Headers(self._raw_headers)
        return headers

    @property
    def cookies(self) -> dict[str, str]:
        """The ``Cookie`` header's cookies by name (the last of a repeated
        name wins), as Starlette parses them."""
        cookies = self._cookies
        if cookies is None:
            from http.cookies import _unquote

            cookies = {}
            for header in self.headers.getlist("cookie"):
                for chunk in header.split(";"):
                    key, sep, value = chunk.partition("=")
                    if not sep:
                        key, value = "", key
                    key, value = key.strip(), value.strip()
                    if key or value:
                        cookies[key] = _unquote(value)
            self._cookies = cookies
        return cookies

    @property
    def params(self) -> dict[str, Any]:
        """The validated parameters by source."""
        params = self._params
        if params is None:
            import msgspec

            params = msgspec.json.decode(self._params_json) if self._params_json else {}
            self._params = params
        return params

    @property
    def auth(self) -> dict[str, Any] | None:
        """The authenticated principal (``{"scheme": "jwt", "claims": {...}}``
        or ``{"scheme": "api_key", "key_index": N}``), or ``None`` when the
        route has no authentication policy."""
        params = self._params
        if params is None:
            # Not decoded yet: without the member name anywhere in the text
            # there is nothing to decode; with it (maybe only inside a value)
            # decode once, for `params` too.
            raw = self._params_json
            present = b'"auth"' in raw if isinstance(raw, bytes) else '"auth"' in raw
            if not present:
                return None
            params = self.params
        auth = params.get("auth")
        return auth if isinstance(auth, dict) else None

    @property
    def path_params(self) -> dict[str, Any]:
        """The validated path parameters (converted to their types)."""
        return self.params.get("path") or {}

    @property
    def query_params(self) -> QueryParams:
        """The query string's parameters as sent, strings (as Starlette's;
        the host's converted values are in ``params["query"]``). Without the
        raw query (a 1.0 host), the validated values as text."""
        query = self._query
        if query is None:
            raw = self._info("query_string")
            if raw is not None:
                query = QueryParams(raw)
            else:
                pairs: list[tuple[str, Any]] = []
                for key, value in (self.params.get("query") or {}).items():
                    for item in value if isinstance(value, list) else [value]:
                        pairs.append((key, item if isinstance(item, str) else str(item)))
                query = QueryParams(pairs)
            self._query = query
        return query

    @property
    def state(self) -> Any:
        """Per-request attributes (``request.state.user = ...``), a
        ``spikard.State`` like ``app.state``."""
        state = self._state
        if state is None:
            from ._app import State
            from ._lifespan import request_state

            state = self._state = State(request_state())  # the lifespan's state, as Starlette's
        return state

    # -- the body --------------------------------------------------------

    @property
    def body(self) -> Body:
        """The raw body: ``bytes``, and ``await request.body()`` too."""
        body = self._body
        if body is None:
            body = self._body = Body(self._raw_body)
        return body

    def json(self) -> Any:
        """The body decoded as JSON, as an awaitable (Starlette's
        ``await request.json()``). A ``def`` handler, which cannot await,
        decodes ``request.body`` itself. Malformed JSON, or JSON nested deeper than the ``max_json_depth``
        setting, raises an ``HTTPException`` (400 Problem Details, in the
        host's words), a ``ValueError`` too."""
        from ._json import decode

        value = decode(self._raw_body)
        return _Ready(value, "request.json()")

    def form(self) -> Any:
        """The body as a form (:class:`FormData`: text fields as ``str``,
        file parts as :class:`UploadFile`), from an
        ``application/x-www-form-urlencoded`` or ``multipart/form-data`` body
        (anything else: empty), as an awaitable: ``await request.form()``,
        ``async with request.form() as form:``."""
        form = self._form
        if form is None:
            from ._forms import parse_form

            form = self._form = parse_form(self.headers.get("content-type") or "", self._raw_body)
        return _Ready(form, "request.form()")

    async def stream(self) -> Any:
        """The body as an async iterator of chunks (the host has read it
        whole: one chunk, then the end)."""
        if self._raw_body:
            yield self.body
        yield b""

    async def is_disconnected(self) -> bool:
        """Always ``False``: the plugin learns of a disconnect as a
        cancellation of the handler (``CancelledError`` where it awaits)."""
        return False

    def __repr__(self) -> str:
        method = self._info("method")
        where = f"{method} {self._info('path')}, " if method else ""
        return f"Request({where}request_id={self.request_id!r}, body={len(self._raw_body)} bytes)"
