"""Shared fixtures: the ../shared folder (reference models, real microscope files)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the checkout; tests that need it skip cleanly when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent (reference models and test files live there)")
    return SHARED


def _shared_folder(shared_dir: Path, name: str) -> Path:
    path = shared_dir / name
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(scope="session")
def test_files(shared_dir: Path) -> Path:
    return _shared_folder(shared_dir, "test_files")


@pytest.fixture(scope="session")
def reference_models(shared_dir: Path) -> Path:
    return _shared_folder(shared_dir, "reference_models")
