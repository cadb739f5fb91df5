"""The real data in ../shared/data, read by path (a test that needs a missing file is skipped, not failed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("REALM_SHARED_DATA", REPO.parent / "shared" / "data"))
FIXTURES = REPO / "tests" / "fixtures"


def shared_file(relative: str) -> Path:
    """A file under ../shared/data, or skip the test when this machine does not have it."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path
