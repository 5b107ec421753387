"""Fixtures of the pre-training tests: an isolated fedlm cache and two books of paragraphs."""

from __future__ import annotations

from pathlib import Path

import pytest

PARAGRAPHS = 30  # in each of the books of paragraph_books


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """Every test gets its own fedlm cache, so nothing reads or writes ~/.cache/fedlm."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("FEDLM_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def paragraph_books(tmp_path) -> list[str]:
    """Two books of PARAGRAPHS blank-line separated paragraphs, for the papers' pipeline."""
    books = []
    for name, line in (("one", "It was the best of times,\nit was"), ("two", "Marley was dead.")):
        path = tmp_path / f"{name}.txt"
        path.write_text("\n\n".join(f"{line} {i}." for i in range(PARAGRAPHS)) + "\n")
        books.append(str(path))
    return books
