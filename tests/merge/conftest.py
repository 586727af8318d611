"""Fixtures for merge tests (helpers shared by several test files live in _helpers.py)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def pico():
    """A base tensor [6, 5] and three fine-tuned versions of it (float32, fixed seed)."""
    g = torch.Generator().manual_seed(1234)
    base = torch.randn(6, 5, generator=g)
    tuned = [base + 0.5 * torch.randn(6, 5, generator=g) for _ in range(3)]
    return base, tuned
