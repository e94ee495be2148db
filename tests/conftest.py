"""Shared fixtures: small datasets and each model's small ``test_options``, so the suite runs in minutes on 2 cores."""

from __future__ import annotations

import os

import pytest
import torch

import doubles  # noqa: F401  (registers the test doubles for the whole session)
from deepgen.data import DataSpec, load_dataset
from deepgen.registry import get_model_class

torch.set_num_threads(1)  # tiny models: one thread is faster and runs are reproducible under xdist
os.environ.setdefault("DEEPGEN_TEST", "1")


@pytest.fixture(autouse=True)
def _seeded_global_rng():
    """torch 2.13 seeds its default generator differently in every process: seed it before each test,
    so a test that draws from the global RNG sees the same numbers alone, in any order and under xdist
    (an unseeded draw once made a DDPM test pass or fail by the process's seed)."""
    torch.manual_seed(0)


def small_options(name: str) -> dict:
    """The model's own ``test_options``: small networks that keep the suite fast."""
    return dict(get_model_class(name).test_options)


def sample_test_options(name: str) -> dict:
    """The model's cheap sampling options for tests (e.g. few sampler steps)."""
    return dict(get_model_class(name).test_sample_options)


@pytest.fixture(scope="session")
def moons():
    return load_dataset(DataSpec("moons", n_train=2000))


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="session")
def binary_digits():
    return load_dataset(DataSpec("digits", binarize="threshold"))


@pytest.fixture(scope="session")
def waves_signal():
    return load_dataset(DataSpec("signal:waves", image_size=16))


@pytest.fixture(scope="session")
def spheres_scene():
    return load_dataset("scene:spheres")


@pytest.fixture(scope="session")
def digit_domains():
    return load_dataset("domains:digits-inverted")


@pytest.fixture
def cpu_generator():
    return torch.Generator().manual_seed(0)
