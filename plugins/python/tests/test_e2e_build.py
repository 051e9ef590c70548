"""The one test that says what to do when the binaries are missing."""

from __future__ import annotations

import pytest

from conftest import BUILD_HINT, missing_binaries

pytestmark = [pytest.mark.e2e, pytest.mark.build_check]


def test_host_and_plugin_are_built() -> None:
    missing = missing_binaries()
    assert not missing, f"missing {', '.join(missing)}: {BUILD_HINT}; every other end-to-end test is skipped until then"
