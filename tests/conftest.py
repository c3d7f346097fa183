"""Shared fixtures for the core tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from real_data import shared_data

import toy_family  # noqa: F401  (registers the tests' own family for every test, widgets included)


@pytest.fixture
def shared_data_dir() -> Path:
    """The shared data folder (skips the test when it is absent)."""
    return shared_data()
