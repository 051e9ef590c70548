"""Python mode: the categories only an application expresses.

- **di**: the fixture's dependency graph as FastAPI-style `Depends`: a
  `value` dependency is a function returning the value, a `factory` a
  `def`, an `async_factory` an `async def`, each taking its `depends_on` as
  `Annotated[Any, Depends(...)]` parameters; `cacheable: false` is
  `use_cache=False`, `singleton: true` a cache kept across requests,
  `cleanup: true` a generator dependency (`yield`, then its teardown records
  `<name>_closed`), `route_overrides` go to `app.dependency_overrides`, and
  hooks with dependencies are the route's `dependencies=[Depends(hook)]`.
  The handler asserts every dependency it gets is what the graph implies (a
  value, or `{"dependency": name, "uses": {...}}` for a factory; the same
  object for a cached dependency asked for twice) and answers the expected
  response; a wrong injection is a 500, so it fails.
- **lifecycle_hooks**: `on_request`, `pre_validation` and `pre_handler` hooks
  are the route's `dependencies` in that order (by `order` within a phase),
  each appending its name to a per-request list (a cached dependency the
  handler also takes: `execution_order` in the expected body is that list);
  a case expecting 4xx has its last `pre_handler` hook raise an exception
  that `@app.exception_handler` renders as the expected response;
  `on_response` hooks are a route dependency taking `response: Response`
  that sets the expected headers (FastAPI's way; spikard has no HTTP
  middleware), the handler then returning data with the route's status.
- **background**: the handler takes `tasks: BackgroundTasks` and adds a task
  that appends the body's `value_field` to a list; a second route (GET
  `state_path`) answers `{state_key: the list}`, which the runner polls
  for `expected_state` after the response.
- **openapi_schemas**: each operation of the document becomes a route with
  its parameters, request body schema, success status and metadata
  (`summary=`, `description=`, `operation_id=`, `tags=`, FastAPI's names);
  the runner then reads the host's `/openapi.json` and checks each
  operation: operationId, summary, tags, parameters (name, in, required),
  a request body when the fixture has one, the success status.

A feature the package lacks makes the case's status "needs <feature>" when
the app is imported (pymode.SUPPORT's `need`), never a failure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import rawhttp
from .fixtures import MISSING, TOKEN, Unloadable, load_case
from .pygen import Generated, NotExpressible, handler_params, py, route_options, scalar_param
from .pymode import PyCase

HOOK_PHASES = ("on_request", "pre_validation", "pre_handler")


def load_feature_case(root: Path, f: Path) -> PyCase:
    rel = f.relative_to(root).as_posix()
    category = rel.split("/", 1)[0]
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise Unloadable(f"cannot read: {e}") from None
    if not isinstance(data, dict):
        raise Unloadable("not a JSON object")
    if category == "openapi_schemas":
        return openapi_case(rel, f, data)
    if category == "schemas" or "openrpc" in data:
        raise NotExpressible("an OpenRPC (JSON-RPC 2.0) service description; spikard serves HTTP routes, not JSON-RPC methods")
    case = load_case(root, f)
    handler = data.get("handler") or {}
    if category == "background":
        return background_case(case, data)
    if category == "di" or "dependencies" in handler:
        return di_case(case, handler, data)
    hooks = (handler.get("middleware") or {}).get("lifecycle_hooks")
    if isinstance(hooks, dict):
        return hooks_case(case, handler, hooks)
    raise NotExpressible("no dependencies, hooks or background block to express")


# --------------------------------------------------------------------------
# shared pieces


def canned_response(case, extra_headers: bool = True) -> str:
    """`Response(...)` source for the case's expected answer."""
    from .tomlgen import canned_settings  # noqa: PLC0415

    s = canned_settings(case)
    headers = [(k.lower(), v) for k, v in (s.get("headers") or {}).items()]
    body = s.get("body")
    content = "None" if body is None else py(body.encode("utf-8"))
    return f"Response(content={content}, status_code={s['status']}, headers={py(headers)})"


def signature(params: list[tuple[str, str]]) -> str:
    return ("*, " + ", ".join(f"{n}: {a}" for n, a in params)) if params else ""


def indent(lines: list[str], n: int = 4) -> list[str]:
    return [(" " * n + l) if l else l for l in lines]


NEED_KW = '''def need_kw(func, *names):
        import inspect
        try:
            params = inspect.signature(func).parameters
        except (TypeError, ValueError):
            return
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return
        missing = [n for n in names if n not in params]
        if missing:
            raise Needs(f"{getattr(func, '__qualname__', func)}({', '.join(m + '=' for m in missing)})")'''


# --------------------------------------------------------------------------
# dependency injection


class Graph:
    """A fixture's dependencies, checked: every name known, no cycle."""

    def __init__(self, deps: Any, wanted: list[str]):
        if not isinstance(deps, dict):
            raise Unloadable("handler.dependencies is not an object")
        self.deps = deps
        for name in wanted:
            if name not in deps:
                raise NotExpressible(
                    f"dependency {name!r} is not declared: a FastAPI-style Depends names the function it calls, "
                    "so an unregistered dependency cannot be written (a registry lookup error has no Depends form)"
                )
        self.order: list[str] = []
        state: dict[str, int] = {}

        def visit(name: str, path: list[str]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                raise NotExpressible(
                    f"circular dependencies {' -> '.join(path + [name])}: Depends(f) refers to a function defined "
                    "before it, so a cycle cannot be declared"
                )
            spec = deps.get(name)
            if not isinstance(spec, dict):
                raise NotExpressible(f"dependency {name!r} is not declared")
            state[name] = 1
            for sub in spec.get("depends_on") or []:
                visit(sub, path + [name])
            state[name] = 2
            self.order.append(name)

        for name in list(deps) + wanted:
            visit(name, [])

    def expected(self, name: str, overrides: dict) -> Any:
        """What the handler must receive for a dependency."""
        spec = overrides.get(name) or self.deps[name]
        if spec.get("type", "value") == "value":
            return spec.get("value")
        return {"dependency": name, "uses": {d: self.expected(d, overrides) for d in spec.get("depends_on") or []}}


def dep_function(name: str, spec: dict, graph: Graph) -> list[str]:
    """`def dep_<name>(...)` for one dependency."""
    kind = spec.get("type", "value")
    if kind not in ("value", "factory", "async_factory"):
        raise NotExpressible(f"dependency {name!r} has type {kind!r} (value, factory, async_factory are known)")
    params = []
    for sub in spec.get("depends_on") or []:
        cache = "" if graph.deps[sub].get("cacheable", True) else ", use_cache=False"
        params.append((f"u_{sub}", f"Annotated[Any, Depends(dep_{sub}{cache})]"))
    is_async = kind == "async_factory"
    if kind == "value":
        make = f"copy.deepcopy({py(spec.get('value'))})"
    else:
        uses = ", ".join(f"{d!r}: u_{d}" for d in spec.get("depends_on") or [])
        make = f"{{'dependency': {name!r}, 'uses': {{{uses}}}, 'id': str(uuid.uuid4())}}"
    lines = [f"{'async ' if is_async else ''}def dep_{name}({signature(params)}):"]
    if spec.get("singleton"):
        lines += [f"    if {name!r} in singletons:", f"        return singletons[{name!r}]"]
        lines += [f"    value = singletons[{name!r}] = {make}"]
    else:
        lines += [f"    value = {make}"]
    if spec.get("cleanup"):
        label = name.split("_")[0]
        lines += [
            f"    cleanup.append({label + '_opened'!r})",
            "    try:",
            "        yield value",
            "    finally:",
            f"        cleanup.append({label + '_closed'!r})",
        ]
    else:
        lines += ["    return value"]
    return lines


CHECK = '''def strip_ids(value):
        if isinstance(value, dict):
            return {k: strip_ids(v) for k, v in value.items() if k != "id"}
        return value

    def check(name, got, expected):
        if strip_ids(got) != expected:
            raise AssertionError(f"dependency {name!r}: got {got!r}, expected {expected!r}")'''


def di_echo(case, graph: Graph, overrides: dict, wanted: list[str]) -> list[tuple[str, str]]:
    """(member, expression) for each top-level member of the expected JSON
    body a value dependency carries: the dependency named like the member,
    or a member of an object a dependency returns, with the expected value."""
    body = case.expected.body
    if not isinstance(body, dict) or case.expected.partial:
        return []
    out = []
    for key, value in body.items():
        if isinstance(value, str) and TOKEN.match(value):
            continue
        for i, name in enumerate(wanted):
            got = graph.expected(name, overrides)
            var = f"d{i}_{name}"
            if name == key and got == value:
                out.append((key, var))
                break
            if isinstance(got, dict) and "dependency" not in got and got.get(key, MISSING) == value:
                out.append((key, f"{var}[{key!r}]"))
                break
    return out


def di_case(case, handler: dict, data: dict) -> PyCase:
    wanted = [d for d in handler.get("handler_dependencies") or [] if isinstance(d, str)]
    hooks = ((handler.get("middleware") or {}).get("lifecycle_hooks")) or {}
    hook_deps = [d for phase in HOOK_PHASES for h in hooks.get(phase) or [] for d in h.get("dependencies") or []]
    graph = Graph(handler.get("dependencies") or {}, wanted + hook_deps)
    if handler.get("expected_types"):
        raise NotExpressible(
            "expected_types: a registry that checks the type of a dependency's value; Depends calls a function "
            "and passes what it returns"
        )
    overrides = handler.get("route_overrides") or {}
    background = data.get("background")
    followups = []
    if isinstance(background, dict):
        followups.append(
            ("GET", background["state_path"], 200, {background["state_key"]: background["expected_state"]})
        )

    def generate(function: str, prefix: str) -> Generated:
        path = prefix + (case.route.path if case.route.path != "/" else "/")
        needs = ["'Depends'"]
        lines = [f"def {function}(app):", f"    # {case.id}", f"    need({', '.join(needs)})"]
        if overrides:
            lines += ["    if not hasattr(app, 'dependency_overrides'):", "        raise Needs('App.dependency_overrides')"]
        if hooks:
            lines += ["    " + NEED_KW, "    need_kw(app.add_route, 'dependencies')"]
        lines += [
            "    import copy",
            "    import uuid",
            "    from spikard import Depends",
            "    singletons = {}",
            "    cleanup = []",
            "    " + CHECK,
        ]
        for name in graph.order:
            lines += indent(dep_function(name, graph.deps[name], graph))
        for name, spec in overrides.items():
            if name not in graph.deps:
                raise NotExpressible(f"route_overrides.{name}: no such dependency")
            lines += indent(
                [f"def override_{name}():", f"    return copy.deepcopy({py(spec.get('value'))})"]
            )
            lines += [f"    app.dependency_overrides[dep_{name}] = override_{name}"]
        params: list[tuple[str, str]] = []
        checks = []
        seen: dict[str, str] = {}
        for i, name in enumerate(wanted):
            cache = "" if graph.deps[name].get("cacheable", True) else ", use_cache=False"
            var = f"d{i}_{name}"
            params.append((var, f"Annotated[Any, Depends(dep_{name}{cache})]"))
            checks.append(f"check({name!r}, {var}, {py(graph.expected(name, overrides))})")
            if name in seen and graph.deps[name].get("cacheable", True):
                checks.append(
                    f"if {var} is not {seen[name]}:\n"
                    f"            raise AssertionError('dependency {name} asked for twice: two values, not one cached per request')"
                )
            seen.setdefault(name, var)
        route_deps = []
        for phase in HOOK_PHASES:
            for j, hook in enumerate(sorted(hooks.get(phase) or [], key=lambda h: h.get("order", 0))):
                hname = f"hook_{phase}_{j}"
                hparams = [
                    (f"u_{d}", f"Annotated[Any, Depends(dep_{d})]") for d in hook.get("dependencies") or []
                ]
                body = [f"check({d!r}, u_{d}, {py(graph.expected(d, overrides))})" for d in hook.get("dependencies") or []]
                lines += indent([f"def {hname}({signature(hparams)}):", *indent(body or ["pass"])])
                route_deps.append(f"Depends({hname})")
        used = {p for p, _ in params}
        for p in handler_params(case, used):
            params.append((p.name, p.annotation + (f" = {p.default}" if p.default else "")))
            lines += indent(p.prelude)
        answer = [f"return {canned_response(case)}"]
        echo = di_echo(case, graph, overrides, wanted)
        if echo:
            # Members the dependencies carry come from what was injected.
            from .tomlgen import canned_settings  # noqa: PLC0415

            s = canned_settings(case)
            headers = [(k.lower(), v) for k, v in (s.get("headers") or {}).items()]
            answer = [f"data = json.loads({py(s['body'])})"]
            answer += [f"data[{k!r}] = {expr}" for k, expr in echo]
            answer.append(
                f"return Response(content=msgspec.json.encode(data), status_code={s['status']}, headers={py(headers)})"
            )
        lines += indent([f"async def handler({signature(params)}):", *indent(checks), *indent(answer)])
        opts = route_options(case)
        if route_deps:
            opts.append(f"dependencies=[{', '.join(route_deps)}]")
        routes = [f"app.add_route({py(case.route.method)}, {py(path)}, handler{''.join(', ' + o for o in opts)})"]
        if isinstance(background, dict):
            lines += indent(
                ["async def state():", f"    return {{{background['state_key']!r}: cleanup}}"]
            )
            routes.append(f"app.add_route('GET', {py(prefix + background['state_path'])}, state)")
        lines.append(f"    return [{', '.join(routes)}]")
        return Generated(function, "\n".join(lines) + "\n")

    return PyCase(case, generate, followups)


# --------------------------------------------------------------------------
# lifecycle hooks


def hooks_case(case, handler: dict, hooks: dict) -> PyCase:
    unknown = set(hooks) - set(HOOK_PHASES) - {"on_response", "on_error"}
    if unknown:
        raise NotExpressible(f"hook phase(s) {', '.join(sorted(unknown))} have no FastAPI-style form")
    if hooks.get("on_error"):
        raise NotExpressible("on_error hooks: the fixture's error hooks reshape any exception's answer; not generated")
    rejects = case.expected.status >= 400 and bool(hooks.get("pre_handler"))
    response_headers = [(k.lower(), v) for k, v in case.expected.headers.items() if not TOKEN.match(v)]
    order_expected = isinstance(case.expected.body, dict) and "execution_order" in case.expected.body

    def generate(function: str, prefix: str) -> Generated:
        path = prefix + (case.route.path if case.route.path != "/" else "/")
        needs = ["'Depends'"]
        if rejects:
            needs.append("'App.exception_handler'")
        lines = [
            f"def {function}(app):",
            f"    # {case.id}",
            f"    need({', '.join(needs)})",
            "    " + NEED_KW,
            "    need_kw(app.add_route, 'dependencies')",
            "    from spikard import Depends",
            "    def execution_order():",
            "        return []",
        ]
        route_deps = []
        phases = [(p, h) for p in HOOK_PHASES for h in sorted(hooks.get(p) or [], key=lambda h: h.get("order", 0))]
        last_pre = max((i for i, (p, _) in enumerate(phases) if p == "pre_handler"), default=None)
        if rejects:
            lines += indent(["class HookRejected(Exception):", "    pass"])
            lines += indent(
                [
                    "@app.exception_handler(HookRejected)",
                    "async def rejected(request, exc):",
                    f"    return {canned_response(case)}",
                ]
            )
        for i, (phase, hook) in enumerate(phases):
            name = hook.get("name", f"{phase}_{i}")
            body = [f"order.append({name!r})"]
            if rejects and i == last_pre:
                body.append("raise HookRejected()")
            lines += indent(
                [f"def hook_{i}(order: Annotated[list, Depends(execution_order)]):", *indent(body)]
            )
            route_deps.append(f"Depends(hook_{i})")
        if hooks.get("on_response"):
            # FastAPI's way for code around a handler to set response headers:
            # a dependency that takes `response: Response` (the headers are
            # merged into the answer of a handler that returns data).
            lines += indent(
                [
                    "def on_response(response: Response):",
                    f"    for name, value in {py(response_headers)}:",
                    "        response.headers[name] = value",
                ]
            )
            route_deps.append("Depends(on_response)")
        used: set[str] = {"order"}
        params = [("order", "Annotated[list, Depends(execution_order)]")]
        for p in handler_params(case, used):
            params.append((p.name, p.annotation + (f" = {p.default}" if p.default else "")))
            lines += indent(p.prelude)
        body = case.expected.body
        if hooks.get("on_response") or (order_expected and not rejects):
            # Data, not a Response: the framework renders it with the route's
            # status_code, and the on_response dependency's headers apply.
            if body is MISSING or not isinstance(body, (dict, list)):
                raise NotExpressible("on_response hooks on a route whose expected body is not JSON")
            ret = [f"data = {py(body)}"]
            if order_expected and not rejects:
                ret.append("data['execution_order'] = order")
            ret.append("return data")
            status_opt = [f"status_code={case.expected.status}"]
        else:
            ret = [f"return {canned_response(case)}"]
            status_opt = []
        lines += indent([f"async def handler({signature(params)}):", *indent(ret)])
        opts = route_options(case) + status_opt + [f"dependencies=[{', '.join(route_deps)}]"]
        lines.append(f"    return [app.add_route({py(case.route.method)}, {py(path)}, handler, {', '.join(opts)})]")
        return Generated(function, "\n".join(lines) + "\n")

    return PyCase(case, generate)


# --------------------------------------------------------------------------
# background tasks


def background_case(case, data: dict) -> PyCase:
    bg = data.get("background")
    if not isinstance(bg, dict) or not all(k in bg for k in ("state_path", "state_key", "value_field", "expected_state")):
        raise Unloadable("background needs state_path, state_key, value_field and expected_state")
    followups = [("GET", bg["state_path"], 200, {bg["state_key"]: bg["expected_state"]})]

    def generate(function: str, prefix: str) -> Generated:
        path = prefix + (case.route.path if case.route.path != "/" else "/")
        used: set[str] = {"tasks"}
        declared = handler_params(case, used)
        params = [(p.name, p.annotation + (f" = {p.default}" if p.default else "")) for p in declared]
        prelude = [line for p in declared for line in p.prelude]
        if not any(n == "body" for n, _ in params):
            raise NotExpressible("background: no body to take value_field from")
        params.append(("tasks", "BackgroundTasks"))
        lines = [
            f"def {function}(app):",
            f"    # {case.id}",
            "    need('BackgroundTasks')",
            "    from spikard import BackgroundTasks",
            "    state = []",
            "    async def record(value):",
            "        state.append(value)",
            *indent(prelude),
            f"    async def handler({signature(params)}):",
            f"        value = body[{bg['value_field']!r}] if isinstance(body, dict) else body.{bg['value_field']}",
            "        tasks.add_task(record, value)",
            f"        return {canned_response(case)}",
            "    async def read_state():",
            f"        return {{{bg['state_key']!r}: state}}",
            f"    return [app.add_route({py(case.route.method)}, {py(path)}, handler{''.join(', ' + o for o in route_options(case))}),",
            f"            app.add_route('GET', {py(prefix + bg['state_path'])}, read_state)]",
        ]
        return Generated(function, "\n".join(lines) + "\n")

    return PyCase(case, generate, followups)


# --------------------------------------------------------------------------
# OpenAPI documents


def openapi_case(rel: str, f: Path, doc: dict) -> PyCase:
    """The operations of an OpenAPI document as routes; the check reads the
    host's /openapi.json."""
    from .fixtures import Case, Expected, Request, Route  # noqa: PLC0415

    paths = doc.get("paths")
    if not isinstance(paths, dict) or not paths:
        raise Unloadable("an OpenAPI document without paths")
    components = ((doc.get("components") or {}).get("schemas")) or {}
    ops = []
    for p, item in paths.items():
        for method, op in (item or {}).items():
            if method.upper() not in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"):
                continue
            ops.append((p, method.upper(), op or {}))
    case = Case(
        id=rel,
        category="openapi_schemas",
        file=f,
        name=str((doc.get("info") or {}).get("title", f.stem)),
        route=Route(method="GET", path="/", schemas={}),
        request=Request(method="GET", target="/openapi.json", headers=[], body=None),
        expected=Expected(status=200),
        host_answers=False,
    )

    def schema_of(s: Any) -> Any:
        """`#/components/schemas/X` -> `#/$defs/X`, with the components as $defs."""
        text = json.dumps(s).replace("#/components/schemas/", "#/$defs/")
        out = json.loads(text)
        if isinstance(out, dict) and components:
            out = {**out, "$defs": json.loads(json.dumps(components).replace("#/components/schemas/", "#/$defs/"))}
        return out

    def success(op: dict) -> int:
        codes = sorted(int(c) for c in (op.get("responses") or {}) if str(c).isdigit() and 200 <= int(c) < 300)
        return codes[0] if codes else 200

    def generate(function: str, prefix: str) -> Generated:
        lines = [
            f"def {function}(app):",
            f"    # {rel}",
            "    " + NEED_KW,
            "    need_kw(app.add_route, 'summary', 'operation_id', 'tags', 'description')",
            "    routes = []",
        ]
        for i, (p, method, op) in enumerate(ops):
            used: set[str] = set()
            params = []
            for prm in op.get("parameters") or []:
                if not isinstance(prm, dict) or "$ref" in prm:
                    raise NotExpressible("a $ref parameter")
                source = {"path": "path", "query": "query", "header": "headers", "cookie": "cookies"}.get(prm.get("in"))
                if source is None:
                    raise NotExpressible(f"parameter in {prm.get('in')!r}")
                sch = dict(prm.get("schema") or {})
                if prm.get("description"):
                    sch.setdefault("description", prm["description"])
                sp = scalar_param(source, prm["name"], sch, bool(prm.get("required")) or source == "path", used)
                params.append((sp.name, sp.annotation + (f" = {sp.default}" if sp.default else "")))
            rb = op.get("requestBody")
            if isinstance(rb, dict):
                content = (rb.get("content") or {}).get("application/json") or {}
                params.append(("body", f"Annotated[Any, Body(), msgspec.Meta(extra_json_schema={py(schema_of(content.get('schema') or {}))})]"))
            kw = [f"status_code={success(op)}"]
            for key, arg in (("summary", "summary"), ("description", "description"), ("operationId", "operation_id"), ("tags", "tags")):
                if key in op:
                    kw.append(f"{arg}={py(op[key])}")
            lines += indent(
                [
                    f"async def op_{i}({signature(params)}):",
                    "    return None",
                    f"routes.append(app.add_route({method!r}, {py(prefix + p)}, op_{i}, {', '.join(kw)}))",
                ]
            )
        lines.append("    return routes")
        return Generated(function, "\n".join(lines) + "\n")

    def check(port: int, prefix: str, timeout: float) -> list[str]:
        resp = rawhttp.exchange("127.0.0.1", port, "GET", "/openapi.json", [], None, timeout=timeout)
        if resp.status != 200:
            return [f"GET /openapi.json: status {resp.status}"]
        try:
            got = json.loads(resp.body)
        except ValueError:
            return ["GET /openapi.json: not JSON"]
        diffs = []
        for p, method, op in ops:
            where = f"{method} {p}"
            entry = ((got.get("paths") or {}).get(prefix + p) or {}).get(method.lower())
            if not isinstance(entry, dict):
                diffs.append(f"{where}: missing from /openapi.json")
                continue
            for key in ("operationId", "summary", "description", "tags"):
                if key in op and entry.get(key) != op[key]:
                    diffs.append(f"{where}: {key} expected {op[key]!r}, got {entry.get(key)!r}")
            have = {(x.get("name"), x.get("in")): x for x in entry.get("parameters") or [] if isinstance(x, dict)}
            for prm in op.get("parameters") or []:
                key = (prm["name"].lower() if prm.get("in") == "header" else prm["name"], prm.get("in"))
                if key not in have:
                    diffs.append(f"{where}: parameter {key[0]} in {key[1]} missing")
                elif bool(have[key].get("required")) != bool(prm.get("required") or prm.get("in") == "path"):
                    diffs.append(f"{where}: parameter {key[0]} required expected {bool(prm.get('required'))}")
            if "requestBody" in op and "requestBody" not in entry:
                diffs.append(f"{where}: requestBody missing")
            status = str(success(op))
            if status not in (entry.get("responses") or {}):
                diffs.append(f"{where}: response {status} missing (has {', '.join(entry.get('responses') or {})})")
        return diffs

    return PyCase(case, generate, needs_openapi=True, check=check)
