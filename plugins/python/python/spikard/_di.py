"""Dependencies (``Depends``, ``Security``): a route's dependency tree made
into a flat list of steps when the route is compiled, and the per-request
invokers that run them.

At compile time every dependency's signature is read like the handler's
(:func:`~spikard._invoke.analyze`): its path/query/header/cookie
parameters and body members join the route's schemas, so the host
validates them before Python runs. The tree becomes a list of steps in
call order (dependencies before what depends on them, the route's
``dependencies=[...]`` first, the handler last); a dependency with
``use_cache=True`` reached twice is one step. Per request the invoker
walks that list: each step's keyword arguments are its parameters, the
values of earlier steps and the per-request objects (``Request``,
``Response``, ``BackgroundTasks``, ``SecurityScopes``).

Where they run: a ``def`` route whose dependencies are all ``def`` runs
everything on its worker thread. Otherwise the route runs on the event loop:
``async def`` dependencies are awaited, ``def`` dependencies are called on
the loop (keep them quick), and a ``def`` handler runs on the sync worker
pool. Generator dependencies (``yield``) are entered in order;
their code after ``yield`` runs after the response
(:class:`~spikard._background.AfterResponse`).

``app.dependency_overrides`` is read when the route is compiled and again
per request while it is not empty (one dict look-up per dependency); an
override set after start-up is compiled on first use. Its parameters that
the route's registered schemas lack are read leniently (the host did not
validate them).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import msgspec

from . import _background
from ._background import AfterResponse, off_loop
from ._invoke import (
    BodyDecl,
    FormDecl,
    Signature,
    _foreign,
    _Param,
    _param_groups,
    _read_groups,
    analyze,
    route_schema,
)
from ._params import Depends, SecurityScopes
from ._request import Request
from ._responses import HTTPException, Response
from ._schemas import _MISSING, RouteError, handler_location

if TYPE_CHECKING:
    from ._invoke import HandlerPlan

__all__ = ["compile_dependencies"]

# How a step's callable is called.
PLAIN: Final = 0  # a function: its return value
CORO: Final = 1  # async def: awaited
GEN: Final = 2  # a generator dependency: its first yield; the rest after the response
AGEN: Final = 3  # an async generator dependency: the same, awaited
OFFLOOP: Final = 4  # a def handler of a route on the loop: on the sync worker pool
CALL: Final = 5  # a streaming handler (generator function): its generator is the result

#: Variants compiled for changed ``dependency_overrides``, per route.
_MAX_VARIANTS: Final = 32


class _Step:
    """One call of a request's plan."""

    __slots__ = ("call", "deps", "groups", "kind", "members", "original", "scopes", "sig", "where")

    def __init__(self, call: Any, original: Any, kind: int, where: str, sig: Signature) -> None:
        self.call = call
        #: The callable ``dependency_overrides`` is keyed by.
        self.original = original
        self.kind = kind
        self.where = where
        self.sig = sig
        #: ``(kwarg, index of the step whose value it gets)``.
        self.deps: tuple[tuple[str, int], ...] = ()
        self.scopes = SecurityScopes()
        #: Path/query/header/cookie parameters, as ``_read_groups`` takes them.
        self.groups: Any = ()
        #: ``(kwarg, name in the route's body/form reader)``.
        self.members: tuple[tuple[str, str], ...] = ()


def _unwrap(fn: Any) -> Any:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return fn


def _kind_of(fn: Any) -> int:
    target = _unwrap(fn)
    if isinstance(target, type):
        return PLAIN
    if not (inspect.isfunction(target) or inspect.ismethod(target)):
        call = getattr(target, "__call__", None)  # noqa: B004 - a callable instance
        if call is not None:
            target = call
    if inspect.isasyncgenfunction(target):
        return AGEN
    if inspect.iscoroutinefunction(target):
        return CORO
    if inspect.isgeneratorfunction(target):
        return GEN
    return PLAIN


class _Builder:
    """Walks the dependency tree once, making the steps."""

    def __init__(self, plan: HandlerPlan, in_path: list[str], overrides: dict[Any, Any]) -> None:
        self.plan = plan
        self.where = f"handler {plan.name}"
        self.in_path = in_path
        self.overrides = overrides
        self.steps: list[_Step] = []
        self.cache: dict[tuple[Any, tuple[str, ...]], int] = {}

    def dependency(self, marker: Depends, dependency: Any, scopes: tuple[str, ...], chain: tuple[Any, ...]) -> int:
        """The index of the step that computes ``dependency`` (made now, or
        the cached one)."""
        scopes = scopes + marker.scopes
        key = (dependency, tuple(sorted(set(scopes))))
        try:
            hash(key)
        except TypeError:  # an unhashable callable object: never cached
            marker = Depends(dependency, use_cache=False)
        if marker.use_cache:
            found = self.cache.get(key)
            if found is not None:
                return found
        if dependency in chain:
            names = " -> ".join(handler_location(d) for d in (*chain, dependency))
            raise RouteError(f"{self.where}: dependencies form a cycle ({names}); break it")
        call = dependency
        if self.overrides:
            try:
                call = self.overrides.get(dependency, dependency)
            except TypeError:  # unhashable: cannot be a key of the overrides
                pass
        if not callable(call):
            raise RouteError(
                f"{self.where}: dependency_overrides[{handler_location(dependency)}] is {call!r}, "
                "which is not callable; override it with a function"
            )
        where = handler_location(call)
        foreign = _foreign(call)
        if foreign is not None:
            raise RouteError(
                f"{self.where}: dependency {where} is {foreign} from another framework; spikard cannot call it: "
                "write the dependency as a function of spikard parameters (e.g. a Header() for a token)"
            )
        sig = analyze(call, f"{self.where}: dependency {where}", self.in_path)
        deps = tuple(
            (name, self.dependency(sub, target, scopes, (*chain, dependency))) for name, sub, target in sig.deps
        )
        index = self.add(call, dependency, _kind_of(call), where, sig)
        step = self.steps[index]
        step.deps = deps
        step.scopes = SecurityScopes(list(scopes))
        if marker.use_cache:
            self.cache[key] = index
        return index

    def add(self, call: Any, original: Any, kind: int, where: str, sig: Signature) -> int:
        self.steps.append(_Step(call, original, kind, where, sig))
        return len(self.steps) - 1


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _route_markers(plan: HandlerPlan, route_deps: list[Any]) -> list[Depends]:
    for marker in route_deps:
        if not isinstance(marker, Depends):
            foreign = type(marker).__module__.partition(".")[0] in ("fastapi", "starlette")
            fix = (
                f"it is {type(marker).__module__}.{type(marker).__qualname__}; use spikard.Depends "
                "(change the import: from spikard import Depends)"
                if foreign
                else "write dependencies=[Depends(function)]"
            )
            raise RouteError(f"route {plan.route.method} {plan.route.path}: dependencies=[...] holds {marker!r}; {fix}")
        if marker.dependency is None:
            raise RouteError(
                f"route {plan.route.method} {plan.route.path}: dependencies=[Depends()] needs the dependency: "
                "Depends(function)"
            )
    return list(route_deps)


def _app_overrides(plan: HandlerPlan) -> Any:
    """The app whose ``dependency_overrides`` apply (``route.app``), if any."""
    return getattr(plan.route, "app", None)


def compile_dependencies(
    plan: HandlerPlan, sig: Signature, route_deps: list[Any], in_path: list[str]
) -> dict[str, Any]:
    """Makes ``plan`` a route with dependencies: its steps, its invoker and
    its schemas (returned)."""
    app = _app_overrides(plan)
    overrides = dict(getattr(app, "dependency_overrides", None) or {})
    steps = _steps(plan, sig, route_deps, in_path, overrides)
    params, bodies, forms = _merge(plan, steps)
    built = route_schema(params, bodies, forms, f"handler {plan.name}", in_path)
    plan.is_async = plan.is_async or any(s.kind in (CORO, AGEN) for s in steps[:-1])
    plan.params = params
    plan.uploads = built.makes_uploads
    plan.wants_request = any(kind == "request" for s in steps for _, kind in s.sig.specials)
    # Always an AfterResponse: an override set later may add generators.
    plan.after = True
    registered = {(p.source, p.key): p.schema for p in params}
    mode_async = plan.is_async
    base = _runner(plan, steps, built, mode_async, None)
    plan.awaits = mode_async
    originals = tuple(dict.fromkeys(s.original for s in steps[:-1] if _hashable(s.original)))
    if app is None or not originals:  # nothing to override
        plan.invoke = base
        return built.schema

    base_key = tuple(overrides.get(o) for o in originals)
    compiled_with_overrides = any(k is not None for k in base_key)
    no_overrides = (None,) * len(originals)
    variants: dict[tuple[Any, ...], Callable[..., Any]] = {}

    def variant(key: tuple[Any, ...], current: dict[Any, Any]) -> Callable[..., Any]:
        run = variants.get(key)
        if run is None:
            late = _steps(plan, sig, route_deps, in_path, current)
            late_params, late_bodies, late_forms = _merge(plan, late)
            late_built = route_schema(late_params, late_bodies, late_forms, f"handler {plan.name}", in_path)
            run = _runner(plan, late, late_built, mode_async, registered)
            if len(variants) >= _MAX_VARIANTS:
                variants.clear()
            variants[key] = run
        return run

    def invoke(params_json: Any, body: bytes, headers: Any, source: Any, after: AfterResponse | None = None) -> Any:
        current = app.dependency_overrides
        if current:
            key = tuple(current.get(o) for o in originals)
            if key != base_key:
                return variant(key, current)(params_json, body, headers, source, after)
        elif compiled_with_overrides:  # overrides set before start-up, cleared since
            return variant(no_overrides, {})(params_json, body, headers, source, after)
        return base(params_json, body, headers, source, after)

    plan.invoke = invoke
    return built.schema


def _steps(
    plan: HandlerPlan, sig: Signature, route_deps: list[Any], in_path: list[str], overrides: dict[Any, Any]
) -> list[_Step]:
    builder = _Builder(plan, in_path, overrides)
    for marker in _route_markers(plan, route_deps):
        builder.dependency(marker, marker.dependency, (), ())
    deps = tuple((name, builder.dependency(marker, target, (), ())) for name, marker, target in sig.deps)
    handler = plan.route.handler
    kind = _kind_of(handler)
    if kind in (GEN, AGEN):  # a streaming handler: its generator is the result
        kind = CALL
    index = builder.add(handler, handler, kind, plan.name, sig)
    builder.steps[index].deps = deps
    return builder.steps


def _merge(plan: HandlerPlan, steps: list[_Step]) -> tuple[list[_Param], list[BodyDecl], list[FormDecl]]:
    """The route's parameters from every step's: the same parameter declared
    alike by several is read once by the host (and given to each)."""
    params: list[_Param] = []
    seen: dict[tuple[str, str], tuple[_Param, str]] = {}
    bodies: list[BodyDecl] = []
    forms: list[FormDecl] = []
    taken: set[str] = set()
    for index, step in enumerate(steps):
        sig = step.sig
        for p in sig.params:
            found = seen.get((p.source, p.key))
            if found is None:
                seen[(p.source, p.key)] = (p, step.where)
                params.append(p)
            elif found[0].schema != p.schema or found[0].required != p.required:
                raise RouteError(
                    f"handler {plan.name}: {p.source} parameter {p.key!r} is declared differently by "
                    f"{found[1]} and {step.where}; declare it alike in both (type, default, rules) "
                    "or give one an alias"
                )
        members: list[tuple[str, str]] = []
        for name, key, tp, info, default, metadata in sig.bodies:
            internal = name if name not in taken else f"{name}@{index}"
            taken.add(internal)
            bodies.append((internal, key, tp, info, default, metadata))
            members.append((name, internal))
        for name, key, source, tp, info, default, metadata in sig.forms:
            internal = name if name not in taken else f"{name}@{index}"
            taken.add(internal)
            forms.append((internal, key, source, tp, info, default, metadata))
            members.append((name, internal))
        step.members = tuple(members)
        step.groups = _param_groups(sig.params)
    return params, bodies, forms


# ---------------------------------------------------------------------------
# Per request


def _temporal(after: AfterResponse) -> Response:
    """The request's ``response: Response`` object (one per request): its
    status (when set), headers and cookies are merged into the answer."""
    response = after.response
    if response is None:
        response = after.response = Response()
        response.status_code = None  # type: ignore[assignment]  # "not set" until a handler sets it
    return response  # type: ignore[no-any-return]


def _lenient(step: _Step, registered: dict[tuple[str, str], Any]) -> Any:
    """Groups for an override compiled after start-up: parameters the host
    did not validate are converted leniently, and a missing required one is
    a 422."""
    groups = []
    for source, entries in step.groups:
        fixed = []
        declared = [q for q in step.sig.params if q.source == source]
        for (name, key, default, conv), p in zip(entries, declared, strict=True):
            if registered.get((source, key)) != p.schema:
                conv = functools.partial(msgspec.convert, type=p.tp, strict=False)
                if default is _MISSING:
                    conv = _required(source, key, conv)
            fixed.append((name, key, default, conv))
        groups.append((source, tuple(fixed)))
    return tuple(groups)


def _required(source: str, key: str, conv: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        try:
            return conv(value)
        except msgspec.ValidationError as exc:
            raise HTTPException(422, f"{source} parameter {key!r}: {exc}") from exc

    return convert


def _missing_required(step: _Step, kwargs: dict[str, Any]) -> None:
    for p in step.sig.params:
        if p.required and p.name not in kwargs:
            raise HTTPException(422, f"{p.source} parameter {p.key!r} is required")


def _runner(
    plan: HandlerPlan,
    steps: list[_Step],
    built: Any,
    on_loop: bool,
    registered: dict[tuple[str, str], Any] | None,
) -> Callable[..., Any]:
    """The per-request function of a route with dependencies:
    ``invoke(params_json, body, headers, source, after)``."""
    late = registered is not None
    last = len(steps) - 1
    # Per step: (call, kind, groups, deps, extras); `extras` is None when the
    # step takes only parameters and earlier steps' values (inlined below).
    specs = tuple(
        (
            s.call,
            OFFLOOP if on_loop and i == last and s.kind == PLAIN else s.kind,
            _lenient(s, registered) if late else s.groups,  # type: ignore[arg-type]
            s.deps,
            (s.members, tuple(s.sig.specials), s.scopes, s if late else None)
            if late or s.members or s.sig.specials
            else None,
            s.where,
        )
        for i, s in enumerate(steps)
    )
    count = len(specs)
    body_reader = built.body_reader
    form_reader = built.form_reader
    decode = msgspec.json.Decoder().decode
    generators = any(s.kind in (GEN, AGEN) for s in steps[:-1])
    loop_steps = any(spec[1] in (CORO, AGEN, OFFLOOP) for spec in specs[:-1]) or specs[-1][1] == OFFLOOP
    read_groups = _read_groups
    #: Some step takes members or per-request objects (see `extra`).
    contextual = any(spec[4] is not None for spec in specs)

    def prepare(params_json: Any, body: bytes, after: AfterResponse) -> tuple[Any, dict[str, Any]]:
        if isinstance(params_json, dict):
            decoded = params_json
        else:
            decoded = decode(params_json) if params_json else {}
        shared: dict[str, Any] = {}
        if body_reader is not None:
            body_reader(shared, body, decoded)
        elif form_reader is not None:
            form_reader(shared, decoded, after.uploads)
        return decoded, shared

    def extra(kwargs: dict[str, Any], extras: Any, decoded: Any, shared: dict[str, Any], context: Any) -> None:
        """Body/form members and the per-request objects of a step."""
        members, specials, scopes, lenient = extras
        if lenient is not None:
            _missing_required(lenient, kwargs)
        for name, internal in members:
            kwargs[name] = shared[internal]
        for name, what in specials:
            if what == "request":
                request = context[0]
                if request is None:
                    headers, body, source = context[1]
                    request = context[0] = Request(headers, decoded, body, source)
                kwargs[name] = request
            elif what == "response":
                kwargs[name] = _temporal(context[2])
            elif what == "background":
                kwargs[name] = context[2].background()
            else:
                kwargs[name] = scopes

    def arguments(spec: Any, values: list[Any], decoded: Any, shared: dict[str, Any], context: Any) -> dict[str, Any]:
        """The keyword arguments of one step: its parameters, the values of the
        steps it depends on, its members and per-request objects."""
        _call, _kind, groups, deps, extras, _where = spec
        kwargs: dict[str, Any] = {}
        if groups:
            read_groups(kwargs, decoded, groups)
        for name, at in deps:
            kwargs[name] = values[at]
        if extras is not None:
            extra(kwargs, extras, decoded, shared, context)
        return kwargs

    def run_steps(params_json: Any, body: bytes, headers: Any, source: Any, after: AfterResponse, block: bool) -> Any:
        """Calls every step in order off the loop's awaits; with ``block``
        (a worker thread), async steps are run to completion on the loop."""
        values: list[Any] = [None] * count
        context: list[Any] | None = [None, (headers, body, source), after] if contextual else None
        try:
            decoded, shared = prepare(params_json, body, after)
            for index, spec in enumerate(specs):
                call, kind, where = spec[0], spec[1], spec[5]
                value = call(**arguments(spec, values, decoded, shared, context))
                if kind == GEN:
                    generator = value
                    value = _first(generator, where)
                    after.enter(generator, False, where)
                elif block and kind == CORO:  # an override made async after start-up
                    value = _blocking(value)
                elif block and kind == AGEN:
                    generator = value
                    value = _blocking(_afirst(generator, where))
                    after.enter(generator, True, where)
                values[index] = value
        except BaseException as exc:
            after.error = exc
            raise
        return values[-1]

    if not on_loop:

        def invoke_sync(
            params_json: Any, body: bytes, headers: Any, source: Any, after: AfterResponse | None = None
        ) -> Any:
            if after is None:
                after = AfterResponse(source)
            return run_steps(params_json, body, headers, source, after, True)

        return invoke_sync

    if not loop_steps:
        # Every dependency is a plain call: run them now, return the
        # handler's coroutine (started eagerly by the runtime).
        handler_is_coroutine = specs[-1][1] == CORO

        def invoke_direct(
            params_json: Any, body: bytes, headers: Any, source: Any, after: AfterResponse | None = None
        ) -> Any:
            if after is None:
                after = AfterResponse(source)
            result = run_steps(params_json, body, headers, source, after, False)
            if not handler_is_coroutine:
                return _ready(result)
            return _guarded(result, after) if generators else result

        return invoke_direct

    async def run(params_json: Any, body: bytes, headers: Any, source: Any, after: AfterResponse) -> Any:
        values: list[Any] = [None] * count
        context: list[Any] | None = [None, (headers, body, source), after] if contextual else None
        try:
            decoded, shared = prepare(params_json, body, after)
            for index, spec in enumerate(specs):
                call, kind, where = spec[0], spec[1], spec[5]
                kwargs = arguments(spec, values, decoded, shared, context)
                if kind == CORO:
                    value = await call(**kwargs)
                elif kind in (PLAIN, CALL):
                    value = call(**kwargs)
                elif kind == GEN:
                    generator = call(**kwargs)
                    value = _first(generator, where)
                    after.enter(generator, False, where)
                elif kind == AGEN:
                    generator = call(**kwargs)
                    value = await _afirst(generator, where)
                    after.enter(generator, True, where)
                else:  # OFFLOOP: a def handler, on the sync worker pool
                    work = functools.partial(contextvars.copy_context().run, call, **kwargs)
                    value = await off_loop(work, after.request_id(), after.handler_id)
                values[index] = value
        except BaseException as exc:
            after.error = exc
            raise
        return values[-1]

    def invoke_async(
        params_json: Any, body: bytes, headers: Any, source: Any, after: AfterResponse | None = None
    ) -> Any:
        return run(params_json, body, headers, source, after if after is not None else AfterResponse(source))

    return invoke_async


def _first(generator: Any, where: str) -> Any:
    try:
        return next(generator)
    except StopIteration:
        raise RuntimeError(f"dependency {where} did not yield a value") from None


async def _afirst(generator: Any, where: str) -> Any:
    try:
        return await generator.__anext__()
    except StopAsyncIteration:
        raise RuntimeError(f"dependency {where} did not yield a value") from None


async def _ready(value: Any) -> Any:
    """An awaitable of a value (a route on the loop whose handler is not a
    coroutine function, e.g. an async generator)."""
    return value


async def _guarded(coro: Any, after: AfterResponse) -> Any:
    """Awaits the handler, recording its exception for the generator
    dependencies' teardown."""
    try:
        return await coro
    except BaseException as exc:
        after.error = exc
        raise


def _blocking(awaitable: Any) -> Any:
    """Runs a coroutine on the runtime's loop from a worker thread (an
    ``async`` override of a ``def`` route's dependency) and waits for it."""
    loop = _background._loop_of()
    if loop is None or not loop.is_running():
        return asyncio.run(_as_coroutine(awaitable))
    return asyncio.run_coroutine_threadsafe(_as_coroutine(awaitable), loop).result()


async def _as_coroutine(awaitable: Any) -> Any:
    return await awaitable
