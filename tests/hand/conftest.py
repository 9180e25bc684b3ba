"""Fixtures of the hand tests: synthetic MANO files written once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from hoimask.hand.testing import write_synthetic_mano


@pytest.fixture(scope="session")
def mano_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding synthetic ``MANO_RIGHT.pkl`` and ``MANO_LEFT.pkl`` (seed 0)."""
    root = tmp_path_factory.mktemp("mano")
    write_synthetic_mano(root / "MANO_RIGHT.pkl", side="right", seed=0)
    write_synthetic_mano(root / "MANO_LEFT.pkl", side="left", seed=0)
    return root


@pytest.fixture(scope="session")
def right_pkl(mano_dir: Path) -> Path:
    """Synthetic right-hand MANO pickle."""
    return mano_dir / "MANO_RIGHT.pkl"


@pytest.fixture(scope="session")
def left_pkl(mano_dir: Path) -> Path:
    """Synthetic left-hand MANO pickle (official layout and defect)."""
    return mano_dir / "MANO_LEFT.pkl"
