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
"""
