"""How every list is paged: flask-smorest's ``?page=`` / ``?page_size=`` and its ``X-Pagination`` header.

Each list reads one page from a sorted index in Redis, so a project with
10,000 stopped sessions answers as fast as one with ten.
"""
from __future__ import annotations

from collections.abc import Callable

from flask_smorest import Blueprint

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500


def paginated(blp: Blueprint) -> Callable:
    return blp.paginate(page_size=DEFAULT_PAGE_SIZE, max_page_size=MAX_PAGE_SIZE)
