"""Start-up and shutdown hooks through the real host and plugin
(examples/lifecycle_app.py): start-up state is served, SIGTERM runs the
shutdown hooks."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from conftest import BRIDGES, start_app_host

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("bridge", BRIDGES)
def test_startup_state_and_shutdown_hook(tmp_path: Path, bridge: str) -> None:
    marker = tmp_path / "shutdown.txt"
    host = start_app_host(
        tmp_path,
        "examples.lifecycle_app:app",
        bridge,
        env={"SPIKARD_TEST_SHUTDOWN_FILE": str(marker)},
    )
    try:
        body = host.get("/state").json()
        assert body == {"started": True, "events": ["sync-startup", "async-startup"]}
        assert host.get("/state/sync").json() == {"started": True}
        assert not marker.exists()
    finally:
        code = host.stop(signal.SIGTERM)
    assert code == 0, host.log
    assert marker.read_text() == "sync-startup,async-startup,async-shutdown,sync-shutdown"
