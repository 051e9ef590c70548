"""Parameter markers: ``Query``, ``Header``, ``Cookie``, ``Path``, ``Body``,
``Form`` and ``File``.

Each marker says where a handler parameter comes from and which constraints the
host validates before the handler runs. Use one as the parameter's default
(``q: str | None = Query(None, min_length=3)``) or inside ``Annotated``
(``q: Annotated[str, Query(min_length=3)]``). The functions return ``Any`` so
that type checkers accept them as defaults of any type.

Every marker also takes the documentation keywords ``title``,
``description``, ``examples`` (a list) and ``deprecated``, written into the
parameter's JSON Schema (the host lifts them into the OpenAPI document);
``include_in_schema=False`` leaves them out. ``alias`` is the name on the
wire (query key, header, cookie, form field or body member).
"""

from __future__ import annotations

from typing import Any, Final, Literal

__all__ = [
    "Body",
    "Cookie",
    "Depends",
    "File",
    "Form",
    "Header",
    "ParamInfo",
    "Path",
    "Query",
    "Security",
    "SecurityScopes",
    "Source",
]

Source = Literal["path", "query", "headers", "cookies", "body", "form", "file"]


class _Required:
    """The default of a parameter that has none (``...`` works as well)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Required"


#: Marks a parameter without a default; ``...`` (Ellipsis) is accepted too.
REQUIRED: Final = _Required()


class ParamInfo:
    """Where a parameter comes from and the constraints its schema carries."""

    __slots__ = (
        "alias",
        "convert_underscores",
        "default",
        "deprecated",
        "description",
        "embed",
        "examples",
        "ge",
        "gt",
        "include_in_schema",
        "le",
        "lt",
        "max_length",
        "max_size",
        "media_type",
        "min_length",
        "pattern",
        "source",
        "title",
    )

    def __init__(
        self,
        source: Source,
        default: Any = REQUIRED,
        *,
        alias: str | None = None,
        ge: float | None = None,
        gt: float | None = None,
        le: float | None = None,
        lt: float | None = None,
        min_length: int | None = None,
        max_length: int | None = None,
        pattern: str | None = None,
        description: str | None = None,
        title: str | None = None,
        examples: list[Any] | None = None,
        deprecated: bool | None = None,
        include_in_schema: bool = True,
        convert_underscores: bool = True,
        embed: bool = False,
        media_type: str | None = None,
        max_size: int | None = None,
    ) -> None:
        self.source: Source = source
        self.default: Any = REQUIRED if default is ... else default
        self.alias = alias
        self.ge = ge
        self.gt = gt
        self.le = le
        self.lt = lt
        self.min_length = min_length
        self.max_length = max_length
        self.pattern = pattern
        self.description = description
        #: ``title``, ``examples`` and ``deprecated`` go into the parameter's
        #: JSON Schema (the host lifts them into the OpenAPI document).
        self.title = title
        self.examples = list(examples) if examples is not None else None
        self.deprecated = deprecated
        #: ``False``: none of the documentation keywords above are added.
        self.include_in_schema = include_in_schema
        self.convert_underscores = convert_underscores
        self.embed = embed
        #: ``File``: the media types a file may have (``contentMediaType``).
        self.media_type = media_type
        #: ``File``: the largest file in bytes (``maxLength`` of a binary string).
        self.max_size = max_size

    @property
    def required(self) -> bool:
        """True when the parameter has no default."""
        return self.default is REQUIRED

    def __repr__(self) -> str:
        parts = [] if self.required else [repr(self.default)]
        for name in self.__slots__[2:]:
            value = getattr(self, name)
            if value is not None and name not in ("convert_underscores", "embed", "include_in_schema"):
                parts.append(f"{name}={value!r}")
        return f"{self.source.capitalize()}({', '.join(parts)})"


def Query(
    default: Any = REQUIRED,
    *,
    alias: str | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
    pattern: str | None = None,
    description: str | None = None,
    title: str | None = None,
    examples: list[Any] | None = None,
    deprecated: bool | None = None,
    include_in_schema: bool = True,
) -> Any:
    """A query-string parameter (``?name=value``; repeated keys make a list)."""
    return ParamInfo(
        "query",
        default,
        alias=alias,
        ge=ge,
        gt=gt,
        le=le,
        lt=lt,
        min_length=min_length,
        max_length=max_length,
        pattern=pattern,
        description=description,
        title=title,
        examples=examples,
        deprecated=deprecated,
        include_in_schema=include_in_schema,
    )


def Header(
    default: Any = REQUIRED,
    *,
    alias: str | None = None,
    convert_underscores: bool = True,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
    pattern: str | None = None,
    description: str | None = None,
    title: str | None = None,
    examples: list[Any] | None = None,
    deprecated: bool | None = None,
    include_in_schema: bool = True,
) -> Any:
    """A request header. Its name is ``alias``, or the parameter name with
    ``_`` turned into ``-`` (unless ``convert_underscores=False``), lower-case:
    ``x_token`` reads ``X-Token``."""
    return ParamInfo(
        "headers",
        default,
        alias=alias,
        convert_underscores=convert_underscores,
        ge=ge,
        gt=gt,
        le=le,
        lt=lt,
        min_length=min_length,
        max_length=max_length,
        pattern=pattern,
        description=description,
        title=title,
        examples=examples,
        deprecated=deprecated,
        include_in_schema=include_in_schema,
    )


def Cookie(
    default: Any = REQUIRED,
    *,
    alias: str | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
    pattern: str | None = None,
    description: str | None = None,
    title: str | None = None,
    examples: list[Any] | None = None,
    deprecated: bool | None = None,
    include_in_schema: bool = True,
) -> Any:
    """A cookie of the ``Cookie`` request header."""
    return ParamInfo(
        "cookies",
        default,
        alias=alias,
        ge=ge,
        gt=gt,
        le=le,
        lt=lt,
        min_length=min_length,
        max_length=max_length,
        pattern=pattern,
        description=description,
        title=title,
        examples=examples,
        deprecated=deprecated,
        include_in_schema=include_in_schema,
    )


def Path(
    default: Any = REQUIRED,
    *,
    alias: str | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
    pattern: str | None = None,
    description: str | None = None,
    title: str | None = None,
    examples: list[Any] | None = None,
    deprecated: bool | None = None,
    include_in_schema: bool = True,
) -> Any:
    """A ``{name}`` segment of the route's path (always required)."""
    return ParamInfo(
        "path",
        default,
        alias=alias,
        ge=ge,
        gt=gt,
        le=le,
        lt=lt,
        min_length=min_length,
        max_length=max_length,
        pattern=pattern,
        description=description,
        title=title,
        examples=examples,
        deprecated=deprecated,
        include_in_schema=include_in_schema,
    )


def Body(
    default: Any = REQUIRED,
    *,
    alias: str | None = None,
    embed: bool = False,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
    pattern: str | None = None,
    description: str | None = None,
    title: str | None = None,
    examples: list[Any] | None = None,
    deprecated: bool | None = None,
    include_in_schema: bool = True,
) -> Any:
    """The JSON (or urlencoded form) request body, or with ``embed=True`` (or
    when a handler has several body parameters) one member of a JSON object
    body, named ``alias`` or the parameter name. ``bytes`` means the raw body,
    unvalidated."""
    return ParamInfo(
        "body",
        default,
        alias=alias,
        embed=embed,
        ge=ge,
        gt=gt,
        le=le,
        lt=lt,
        min_length=min_length,
        max_length=max_length,
        pattern=pattern,
        description=description,
        title=title,
        examples=examples,
        deprecated=deprecated,
        include_in_schema=include_in_schema,
    )


def Form(
    default: Any = REQUIRED,
    *,
    alias: str | None = None,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
    pattern: str | None = None,
    description: str | None = None,
    title: str | None = None,
    examples: list[Any] | None = None,
    deprecated: bool | None = None,
    include_in_schema: bool = True,
) -> Any:
    """A field of a ``multipart/form-data`` or
    ``application/x-www-form-urlencoded`` body, named ``alias`` or the
    parameter name; ``list[T]`` collects repeated fields. The host converts
    the text by the declared type and validates it. A handler with ``Form``
    or ``File`` parameters cannot also take a JSON body."""
    return ParamInfo(
        "form",
        default,
        alias=alias,
        ge=ge,
        gt=gt,
        le=le,
        lt=lt,
        min_length=min_length,
        max_length=max_length,
        pattern=pattern,
        description=description,
        title=title,
        examples=examples,
        deprecated=deprecated,
        include_in_schema=include_in_schema,
    )


def File(
    default: Any = REQUIRED,
    *,
    alias: str | None = None,
    media_type: str | None = None,
    max_size: int | None = None,
    description: str | None = None,
    title: str | None = None,
    examples: list[Any] | None = None,
    deprecated: bool | None = None,
    include_in_schema: bool = True,
) -> Any:
    """A file of a ``multipart/form-data`` body: declare it ``UploadFile``,
    ``bytes`` (the content), or a list of those (several parts of the same
    name). The host checks ``media_type`` (``"image/png, image/jpeg"``,
    ``"image/*"``; a part without ``Content-Type`` is ``text/plain``) and
    ``max_size`` (bytes) and answers 422 at ``["files", name]`` otherwise.
    ``UploadFile`` parameters need no marker unless optional or aliased."""
    return ParamInfo(
        "file",
        default,
        alias=alias,
        description=description,
        title=title,
        examples=examples,
        deprecated=deprecated,
        include_in_schema=include_in_schema,
        media_type=media_type,
        max_size=max_size,
    )


# ---------------------------------------------------------------------------
# Dependencies


class Depends:
    """A dependency (FastAPI's ``Depends``): the parameter's value is what
    ``dependency`` returns (or yields) for this request. Its own parameters
    are read like a handler's (path, query, headers, cookies, body, other
    dependencies, ``request: Request``, ``response: Response``,
    ``background_tasks: BackgroundTasks``); the host validates them with
    the route's. ``use_cache=True``: called once per request however many
    parameters depend on it. ``Depends()`` in ``Annotated[T, Depends()]``
    calls ``T``."""

    __slots__ = ("dependency", "scopes", "use_cache")

    def __init__(self, dependency: Any = None, *, use_cache: bool = True) -> None:
        if dependency is not None and not callable(dependency):
            raise TypeError(f"Depends({dependency!r}): the dependency must be callable (a function or a class)")
        self.dependency = dependency
        self.use_cache = use_cache
        #: ``Security`` scopes (empty for ``Depends``).
        self.scopes: tuple[str, ...] = ()

    def __repr__(self) -> str:
        name = getattr(self.dependency, "__qualname__", None) or repr(self.dependency)
        scopes = f", scopes={list(self.scopes)!r}" if self.scopes else ""
        cache = "" if self.use_cache else ", use_cache=False"
        return f"{'Security' if self.scopes else 'Depends'}({name}{scopes}{cache})"


def Security(
    dependency: Any = None, *, scopes: list[str] | tuple[str, ...] | None = None, use_cache: bool = True
) -> Any:
    """``Depends`` with OAuth2 scopes: a dependency (or one it depends on)
    that declares ``security_scopes: SecurityScopes`` gets the scopes of
    every ``Security`` on the way from the handler to it."""
    marker = Depends(dependency, use_cache=use_cache)
    marker.scopes = tuple(scopes or ())
    return marker


class SecurityScopes:
    """The scopes required by the ``Security`` markers that lead to a
    dependency: ``scopes`` (a list) and ``scope_str`` (space-separated)."""

    __slots__ = ("scope_str", "scopes")

    def __init__(self, scopes: list[str] | None = None) -> None:
        self.scopes: list[str] = list(scopes or ())
        self.scope_str = " ".join(self.scopes)

    def __repr__(self) -> str:
        return f"SecurityScopes({self.scopes!r})"
