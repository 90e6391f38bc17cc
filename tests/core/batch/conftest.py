"""Fixtures of the batch tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
ENGINES = REPO / "tests" / "fixtures" / "batch_engines"


@pytest.fixture()
def test_engines(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The test-only engines ``sigkill`` and ``hang`` (tests/fixtures/batch_engines), here and in every
    process started from here (spawned pool workers, Ray's workers): their PYTHONPATH has them."""
    import importlib.util

    from artalk_core.engines import base

    spec = importlib.util.spec_from_file_location("batch_test_engines", ENGINES / "sitecustomize.py")
    assert spec is not None and spec.loader is not None
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ENGINES), str(REPO), os.environ.get("PYTHONPATH", "")]))
    yield
    for name in ("sigkill", "hang"):
        base._FACTORIES.pop(name, None)
