"""Shared fixtures: small datasets and small model options, so the suite runs in minutes on 2 cores."""

from __future__ import annotations

import os

import pytest
import torch

from deepgen.data import DataSpec, load_dataset

torch.set_num_threads(1)  # tiny models: one thread is faster and runs are reproducible under xdist
os.environ.setdefault("DEEPGEN_TEST", "1")

# Small networks for every registered model; a model missing here runs with its defaults.
SMALL = {
    "vae": {"latent_dim": 4, "hidden": (32, 32), "channels": (8, 16)},
    "gan": {"latent_dim": 4, "hidden": (32, 32), "g_channels": (16, 8), "d_channels": (8, 16)},
    "gmm": {"components": 3},
}


def small_options(name: str) -> dict:
    return dict(SMALL.get(name, {}))


@pytest.fixture(scope="session")
def moons():
    return load_dataset(DataSpec("moons", n_train=2000))


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="session")
def binary_digits():
    return load_dataset(DataSpec("digits", binarize="threshold"))


@pytest.fixture
def cpu_generator():
    return torch.Generator().manual_seed(0)
