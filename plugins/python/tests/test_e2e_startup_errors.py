"""Start-up failures: `spikard-host --check` exits 2 with one line that names
the setting and the fix."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from conftest import PLUGIN_DIR, plugin_settings, run_check, write_config

pytestmark = pytest.mark.e2e


def check(tmp_path: Path, **settings: object) -> subprocess.CompletedProcess[str]:
    app = str(settings.pop("app", "examples.app:app"))
    return run_check(write_config(tmp_path, plugin_settings(app, **settings)))


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT[0-9:.]+Z\s+(TRACE|DEBUG|INFO|WARN|ERROR) ")


def the_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one `spikard-host: error:` line; everything else on stderr must be
    ordinary log lines (no traceback, no message spread over lines)."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("spikard-host: error:")]
    assert len(errors) == 1, result.stderr
    others = [line for line in lines if line not in errors and not LOG_LINE.match(line)]
    assert others == [], result.stderr
    assert "Traceback" not in result.stderr and "panicked" not in result.stderr, result.stderr
    line = errors[0]
    assert "plugins[0]" in line, line
    return line


def test_check_passes_for_the_bundled_example(tmp_path: Path) -> None:
    result = check(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "GET" in result.stdout and "/items/{item_id}" in result.stdout
    assert "3 route(s)" in result.stdout


def test_module_not_found(tmp_path: Path) -> None:
    line = the_error_line(check(tmp_path, app="examples.does_not_exist:app"))
    assert "settings.app" in line and "examples.does_not_exist" in line
    assert "python_path" in line  # the fix


def test_attribute_not_found(tmp_path: Path) -> None:
    line = the_error_line(check(tmp_path, app="examples.app:nope"))
    assert "settings.app" in line and "nope" in line
    assert "App()" in line or '"examples.app:app"' in line  # the fix


def test_attribute_is_not_an_app(tmp_path: Path) -> None:
    line = the_error_line(check(tmp_path, app="examples.app:hello"))
    assert "settings.app" in line and "not a spikard.App" in line


def test_syntax_error_in_the_app(tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "broken_app.py").write_text("from spikard import App\n\napp = App()\n\ndef handler(:\n    pass\n")
    line = the_error_line(check(tmp_path, app="broken_app:app", python_path=[str(apps), str(PLUGIN_DIR)]))
    assert "settings.app" in line and "syntax error" in line and "broken_app.py" in line


def test_missing_venv_directory(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-venv"
    line = the_error_line(check(tmp_path, venv=str(missing)))
    assert "settings.venv" in line and str(missing) in line
    assert "venv" in line.split(str(missing), 1)[1]  # the fix says how to create one


def test_handler_that_cannot_be_served(tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "bad_route_app.py").write_text(
        "from spikard import App, Path\n\napp = App()\n\n"
        "@app.get('/items')\ndef get_item(item_id: int = Path()) -> dict:\n    return {}\n"
    )
    line = the_error_line(check(tmp_path, app="bad_route_app:app", python_path=[str(apps), str(PLUGIN_DIR)]))
    assert "get_item" in line and "bad_route_app.py" in line and "not in the path" in line


def test_route_timeout_out_of_range(tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "bad_timeout_app.py").write_text(
        "from spikard import App\n\napp = App()\n\n"
        "@app.get('/slow', timeout=0)\nasync def slow() -> dict:\n    return {}\n"
    )
    line = the_error_line(check(tmp_path, app="bad_timeout_app:app", python_path=[str(apps), str(PLUGIN_DIR)]))
    assert "settings.app" in line and "route GET /slow: handler slow" in line and "bad_timeout_app.py" in line, line
    assert "timeout=0 is out of range" in line and "at most 3600" in line, line
