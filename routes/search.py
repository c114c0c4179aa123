"""Search: messages holding every word of a query, newest first, in the rooms the caller may read."""

from controller import search

RULES = [("GET", "/search", search.search)]
