"""``settings.venv`` starts the embedded interpreter as the virtual
environment's own ``python`` would (``pyvenv.cfg``): ``sys.prefix`` is the
venv, its site-packages come before the base installation's
(``include-system-site-packages = true``) or the base's are absent
(``false``), so a package installed in both is the venv's.

Two throwaway venvs are made from the base Python of the one running the
tests (``--without-pip``); each gets msgspec through a ``.pth`` file and a
package named like one of the base installation's own site-packages (the
probe), marked as the venv's copy. Nothing outside the temporary directory
is touched.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import msgspec
import pytest

from conftest import (
    Host,
    missing_binaries,
    plugin_settings,
    run_check,
    start_app_host,
    write_config,
)

pytestmark = pytest.mark.e2e

APP = "examples.venv_app:app"
VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
BASE_SITE = Path(sysconfig.get_paths(vars={"base": sys.base_prefix, "platbase": sys.base_prefix})["purelib"])


def base_python() -> Path:
    for name in (f"python{VERSION}", "python3"):
        candidate = Path(sys.base_prefix) / "bin" / name
        if candidate.is_file():
            return candidate
    pytest.skip(f"no base python{VERSION} under {sys.base_prefix}")


def probe_name() -> str:
    """A top-level package of the base installation's site-packages."""
    names = (
        sorted(p.name for p in BASE_SITE.iterdir() if (p / "__init__.py").is_file() and p.name.isidentifier())
        if BASE_SITE.is_dir()
        else []
    )
    if not names:
        pytest.skip(f"the base installation has no package in {BASE_SITE} to shadow")
    return "pip" if "pip" in names else names[0]


def make_venv(root: Path, name: str, system_site: bool, deps: Path, probe: str) -> Path:
    venv = root / name
    args = [str(base_python()), "-m", "venv", "--without-pip", str(venv)]
    if system_site:
        args.insert(4, "--system-site-packages")
    subprocess.run(args, check=True, capture_output=True, timeout=120)
    site = venv / "lib" / f"python{VERSION}" / "site-packages"
    (site / "spikard_test_deps.pth").write_text(f"{deps}\n", encoding="utf-8")
    package = site / probe
    package.mkdir()
    (package / "__init__.py").write_text("WHERE = 'venv'\n", encoding="utf-8")
    return venv


@pytest.fixture(scope="module")
def venvs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if missing_binaries():
        pytest.skip("needs the binaries")
    root = tmp_path_factory.mktemp("venvs")
    deps = root / "deps"
    deps.mkdir()
    os.symlink(Path(msgspec.__file__).parent, deps / "msgspec")
    probe = probe_name()
    return {
        "probe": probe,
        "with_system": make_venv(root, "with-system", True, deps, probe),
        "isolated": make_venv(root, "isolated", False, deps, probe),
    }


def interpreter(tmp: Path, venv: Path, probe: str) -> dict[str, Any]:
    host: Host = start_app_host(tmp, APP, venv=str(venv))
    try:
        r = host.get(f"/interpreter?probe={probe}")
        assert r.status == 200, (r.status, r.body, host.log)
        return r.json()
    finally:
        host.stop()


def index(path: list[str], directory: Path) -> int:
    real = [os.path.realpath(p) for p in path]
    return real.index(os.path.realpath(directory)) if os.path.realpath(directory) in real else -1


def test_a_venv_with_system_site_packages_comes_first(venvs: dict[str, Any], tmp_path: Path) -> None:
    venv: Path = venvs["with_system"]
    info = interpreter(tmp_path, venv, venvs["probe"])
    assert os.path.realpath(info["prefix"]) == os.path.realpath(venv)
    assert os.path.realpath(info["exec_prefix"]) == os.path.realpath(venv)
    assert os.path.realpath(info["base_prefix"]) == os.path.realpath(sys.base_prefix)
    assert info["executable"] == str(venv / "bin" / "python")
    site = venv / "lib" / f"python{VERSION}" / "site-packages"
    mine, base = index(info["path"], site), index(info["path"], BASE_SITE)
    assert 0 <= mine < base, info["path"]
    # The probe is installed in both: the venv's copy is imported.
    assert info["probe"] == str(site / venvs["probe"] / "__init__.py"), info


def test_an_isolated_venv_hides_the_base_site_packages(venvs: dict[str, Any], tmp_path: Path) -> None:
    venv: Path = venvs["isolated"]
    info = interpreter(tmp_path, venv, venvs["probe"])
    assert os.path.realpath(info["prefix"]) == os.path.realpath(venv)
    site = venv / "lib" / f"python{VERSION}" / "site-packages"
    assert index(info["path"], site) >= 0, info["path"]
    assert index(info["path"], BASE_SITE) == -1, info["path"]
    assert info["probe"] == str(site / venvs["probe"] / "__init__.py"), info
    # Start-up is otherwise as before: no UTF-8 mode forced on the host's process.
    assert info["utf8_mode"] == 0 or os.environ.get("PYTHONUTF8") == "1"


def test_a_venv_of_another_python_is_refused_at_start_up(venvs: dict[str, Any], tmp_path: Path) -> None:
    venv = tmp_path / "foreign"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text("home = /nonexistent/bin\nversion = 2.7.18\n", encoding="utf-8")
    config = write_config(tmp_path, plugin_settings(APP, venv=str(venv)))
    result = run_check(config)
    assert result.returncode == 2, result
    assert "settings.venv" in result.stderr and "was made by Python 2.7.18" in result.stderr, result.stderr
    assert f"python{VERSION} -m venv" in result.stderr, result.stderr
