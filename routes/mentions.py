"""Mentions: the caller's feed of messages that name them, or everyone with `@room`/`@here`."""

from controller import mentions

RULES = [
    ("GET", "/mentions", mentions.feed),
]
