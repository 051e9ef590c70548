"""``Request``: what a handler that asks for it (``request: Request``) sees of
the raw request and of what the host established about it (``auth``).
Everything is computed on first access."""

from __future__ import annotations

from typing import Any

__all__ = ["Request"]


class Request:
    """The request as the host validated it.

    - ``headers``: every request header, names lower-case (repeated headers
      joined with ``", "``, cookies with ``"; "``).
    - ``params``: the validated parameters,
      ``{"path": {...}, "query": {...}, "headers": {...}, "cookies": {...}}``
      (and ``"auth"``, see below; members added by newer hosts are kept).
    - ``auth``: the principal the host authenticated, for a route with an
      authentication policy (``[server.auth]``, ``[[policies]]``): a dict,
      ``{"scheme": "jwt", "claims": {...every claim of the token...}}`` or
      ``{"scheme": "api_key", "key_index": 0}``. ``None`` when the route has
      no authentication policy. The host has verified it already (signature,
      expiry, audience, issuer): a request that fails never reaches Python.
    - ``body``: the raw body bytes; ``json()`` decodes them.
    - ``request_id``: the host's id of this request (the ``x-request-id``
      response header); put it in log lines.
    """

    __slots__ = ("_raw_headers", "_headers", "_params_json", "_params", "body", "request_id")

    def __init__(
        self,
        headers: list[tuple[str, str]] | None,
        params_json: str | bytes | dict[str, Any],
        body: bytes,
        request_id: str = "",
    ) -> None:
        self._raw_headers = headers
        self._headers: dict[str, str] | None = None
        if isinstance(params_json, dict):
            self._params: dict[str, Any] | None = params_json
            self._params_json: str | bytes = ""
        else:
            self._params = None
            self._params_json = params_json
        self.body = body
        self.request_id = request_id

    @property
    def headers(self) -> dict[str, str]:
        """Request headers by lower-case name."""
        headers = self._headers
        if headers is None:
            headers = {}
            for name, value in self._raw_headers or ():
                previous = headers.get(name)
                if previous is None:
                    headers[name] = value
                else:
                    headers[name] = previous + ("; " if name == "cookie" else ", ") + value
            self._headers = headers
        return headers

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
        """The validated path parameters."""
        return self.params.get("path") or {}

    @property
    def query_params(self) -> dict[str, Any]:
        """The query parameters (validated ones coerced, others as strings)."""
        return self.params.get("query") or {}

    def json(self) -> Any:
        """The body decoded as JSON. Malformed JSON, or JSON nested deeper
        than the ``max_json_depth`` setting, raises an ``HTTPException``
        (400 Problem Details, in the host's words), a ``ValueError`` too."""
        from ._json import decode

        return decode(self.body)

    def __repr__(self) -> str:
        return f"Request(request_id={self.request_id!r}, body={len(self.body)} bytes)"
