"""Shared fixtures: every test starts from the default config."""
import pytest

from miscc.config import reset_cfg


@pytest.fixture(autouse=True)
def _default_config():
    reset_cfg()
    yield
    reset_cfg()
