"""Search keys: the normalised words of a message body, and the index keys that find them.

A word is a run of letters and digits after normalisation (case folded, compatibility
decomposed, accents and other combining marks dropped), so `Café`, `CAFE` and `café` are one
word, `ß` is `ss`, and `user_id` or `don't` are two words each.

Every indexed word gives the keys (`keys_of`):
- its prefixes of 1 to `SHORT` characters (`h`, `he`, `hel`, `hell`), so that a short last
  word is one key whatever it continues into;
- its first `HEAD` characters (the word itself when shorter), so that a whole word, or a long
  last word, is one key that few other words share.

A query looks up one key (`Query.key`) and re-checks the words of each message it finds
(`Query.matches`): the key is a superset, the check is exact. A message indexes its first
words, in order, until they would give more than `MAX_KEYS` keys; the rest of a very long
message is not searchable, and the check ignores it the same way, so a message is found or
not whichever key a query uses.
"""

import re
import unicodedata
from dataclasses import dataclass

SHORT = 4
HEAD = 12
MAX_KEYS = 300

_WORD = re.compile(r"[^\W_]+")
_MARKS = frozenset({"Mn", "Mc", "Me"})


def normalize(text: str) -> str:
    """Case-fold and decompose `text`, then drop combining marks (accents)."""
    # Decomposing before and after folding: folding can make a decomposable letter (İ -> i̇)
    # and decomposing can make one that folds (㎒ -> MHz).
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold()).casefold()
    return "".join(char for char in folded if unicodedata.category(char) not in _MARKS)


def words_of(text: str) -> list[str]:
    """The distinct normalised words of `text`, in order of first appearance."""
    return list(dict.fromkeys(_WORD.findall(normalize(text))))


def _word_keys(word: str) -> set[str]:
    return {word[:length] for length in range(1, min(len(word), SHORT) + 1)} | {word[:HEAD]}


def _prefix_key(prefix: str) -> str:
    """The key every word starting with `prefix` has: the prefix itself up to SHORT characters, or from HEAD on."""
    if len(prefix) <= SHORT:
        return prefix
    return prefix[:HEAD] if len(prefix) >= HEAD else prefix[:SHORT]


def index(body: str) -> tuple[list[str], list[str]]:
    """Return (indexed words, their keys) of a message body: its first words, within MAX_KEYS keys."""
    words, keys = [], set()
    for word in words_of(body):
        more = keys | _word_keys(word)
        if len(more) > MAX_KEYS:
            break
        words.append(word)
        keys = more
    return words, sorted(keys)


def keys_of(body: str) -> list[str]:
    """The search keys stored with a message body."""
    return index(body)[1]


@dataclass(frozen=True)
class Query:
    """What a search looks for: whole `words`, and a last word that may also be a `prefix`."""

    words: frozenset[str]
    prefix: str

    @classmethod
    def parse(cls, text: str) -> "Query | None":
        """The query of a search text, or None when it holds no word."""
        words = _WORD.findall(normalize(text))
        return cls(frozenset(words[:-1]), words[-1]) if words else None

    @property
    def key(self) -> str:
        """The one key to look up: the longest (the rarest, as a rule) any of the terms gives."""
        # Ties go to a whole word: its key is exact where a prefix's stands for many words.
        terms = [(len(word[:HEAD]), True, word[:HEAD]) for word in self.words]
        return max([*terms, (len(_prefix_key(self.prefix)), False, _prefix_key(self.prefix))])[2]

    def matches(self, body: str) -> bool:
        """Whether a message body holds every word, and a word starting with the prefix, among its indexed words."""
        indexed = index(body)[0]
        present = set(indexed)
        return self.words <= present and any(word.startswith(self.prefix) for word in indexed)
