"""Spikard conformance runner: fixtures in, one host, verdicts out.

Modules:
- fixtures:  loads a fixture file tolerantly and translates it into a route
             (standard JSON Schemas per source) and a raw HTTP request.
- tomlgen:   writes the host config (a tiny TOML value emitter).
- hostproc:  starts the real spikard-host once and always stops it.
- rawhttp:   an HTTP/1.1 client on raw sockets, every wait bounded.
- compare:   status/header/body comparison, tokens, Problem Details,
             streamed bodies and their framing.
- sse:       SSE events: encoding, parsing, the schema check of their data.
- main:      command line, skips, expected-pass list, report.

The Python mode (`--python`):
- pygen:     a case -> the source of its route in the Python API (type
             hints, markers, msgspec.Meta, the handler's answer).
- models:    a JSON body schema -> msgspec Struct classes, when exact.
- features:  di, lifecycle_hooks, background, openapi_schemas as Depends,
             exception handlers, BackgroundTasks, route metadata.
- pymode:    the generated package (one module per category) and config.
- pyrun:     the run: one host with the Python plugin, status.json, report.
"""
