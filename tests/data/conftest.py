"""Shared fixtures of the data tests: tiny DexYCB / HO3D trees and a few synthetic samples."""

from __future__ import annotations

import warnings

import pytest

from hoimask.data import SyntheticHOI
from hoimask.data.testing import write_dexycb_fixture, write_ho3d_fixture, write_mano_fixture


@pytest.fixture(scope="session")
def mano_root(tmp_path_factory):
    return write_mano_fixture(tmp_path_factory.mktemp("mano"))


@pytest.fixture(scope="session")
def dexycb_root(tmp_path_factory, mano_root):
    return write_dexycb_fixture(tmp_path_factory.mktemp("dexycb"), mano_root)


@pytest.fixture(scope="session")
def ho3d_root(tmp_path_factory, mano_root):
    return write_ho3d_fixture(tmp_path_factory.mktemp("ho3d"), mano_root)


@pytest.fixture(scope="session")
def small_synthetic():
    """A small synthetic dataset (64 px, few SDF points) shared by the tests."""
    return SyntheticHOI(num_samples=50, image_size=64, seed=3, num_sdf_points=512, num_object_points=256, deoccluded=True)


@pytest.fixture(scope="session")
def synthetic_samples(small_synthetic):
    """The first 12 samples of :func:`small_synthetic` (generated once)."""
    return [small_synthetic[i] for i in range(12)]


@pytest.fixture
def quiet():
    """Silence the expected 'fixture is smaller than the release' warnings of the loaders."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
