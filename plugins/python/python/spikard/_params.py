"""Parameter markers: ``Query``, ``Header``, ``Cookie``, ``Path``, ``Body``,
``Form`` and ``File``.

Each marker says where a handler parameter comes from and which constraints the
host validates before the handler runs. Use one as the parameter's default
(``q: str | None = Query(None, min_length=3)``) or inside ``Annotated``
(``q: Annotated[str, Query(min_length=3)]``). The functions return ``Any`` so
that type checkers accept them as defaults of any type.
"""

from __future__ import annotations

from typing import Any, Final, Literal

__all__ = ["Body", "Cookie", "File", "Form", "Header", "ParamInfo", "Path", "Query", "Source"]

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
        "source",
        "default",
        "alias",
        "ge",
        "gt",
        "le",
        "lt",
        "min_length",
        "max_length",
        "pattern",
        "description",
        "convert_underscores",
        "embed",
        "media_type",
        "max_size",
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
            if value is not None and name not in ("convert_underscores", "embed"):
                parts.append(f"{name}={value!r}")
        return f"{self.source.capitalize()}({', '.join(parts)})"


def Query(  # noqa: N802 - FastAPI-style constructor
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
    )


def Header(  # noqa: N802
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
    )


def Cookie(  # noqa: N802
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
    )


def Path(  # noqa: N802
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
    )


def Body(  # noqa: N802
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
    )


def Form(  # noqa: N802
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
    )


def File(  # noqa: N802
    default: Any = REQUIRED,
    *,
    alias: str | None = None,
    media_type: str | None = None,
    max_size: int | None = None,
    description: str | None = None,
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
        media_type=media_type,
        max_size=max_size,
    )
