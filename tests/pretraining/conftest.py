"""Fixtures of the pre-training tests: an isolated fedlm cache and two books of paragraphs."""

from __future__ import annotations

from pathlib import Path

import pytest

PARAGRAPHS = 30  # in each of the books of paragraph_books


@pytest.fixture(autouse=True)
def own_cache(isolated_cache) -> Path:
    """Every pre-training test gets its own fedlm cache (tests/conftest.py)."""
    return isolated_cache


@pytest.fixture
def paragraph_books(tmp_path) -> list[str]:
    """Two books of PARAGRAPHS blank-line separated paragraphs, for the papers' pipeline."""
    books = []
    for name, line in (("one", "It was the best of times,\nit was"), ("two", "Marley was dead.")):
        path = tmp_path / f"{name}.txt"
        path.write_text("\n\n".join(f"{line} {i}." for i in range(PARAGRAPHS)) + "\n")
        books.append(str(path))
    return books
