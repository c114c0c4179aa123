"""Search keys: the normalised words of a message body, and the index keys that find them.

A word is a run of letters and digits after normalisation (case folded, compatibility
decomposed, accents and other combining marks dropped), so `Café`, `CAFE` and `café` are one
word, `ß` is `ss`, and `user_id` or `don't` are two words each.

Every indexed word gives at most three keys (`keys_of`):
- its first `HEAD` characters (the word itself when shorter): a whole word, or a last word of
  at least `HEAD` characters, is one key that few other words share;
- its first character and its first three (`PREFIXES`): a last word of one or three
  characters is one key whatever it continues into, and one of two, four or five characters
  has the key of its first one or three.
Every key costs the database one index entry per message (measured in docs/PERFORMANCE.md),
so these are few: prefixes of every length up to `HEAD` would give a last word of any length
a key of its own, for some sixty per cent more keys.

A query looks up one key (`Query.key`) and re-checks the words of each message it finds
(`Query.matches`): the key stands for a superset, the check is exact. A message indexes its
first words, in order, until they would give more than `MAX_KEYS` keys; the rest of a very
long message is not searchable, and the check ignores it the same way, so a message is found
or not whichever key a query uses.

A message that mentions anyone also holds mention keys (`mention_keys`): `@<user id>` for each
member it names, `@room:<room id>` for `@room`/`@here`. They serve the mentions feed and
mention counts (`services/mentions.py`, `services/read_state.py`) from the same index, so a
message naming nobody pays no index entry for mentions. A word key holds letters and digits
only and a query looks up only word keys (`Query.key`), so a mention key is never a word's
and no search finds a message by one.
"""

import re
import unicodedata
from dataclasses import dataclass

PREFIXES = (1, 3)
HEAD = 6
MAX_KEYS = 500

_WORD = re.compile(r"[^\W_]+")
# ASCII text (most messages, on the send path) is split by C-level calls: what is not a letter or digit is a space.
_ASCII_SEPARATORS = bytes(code for code in range(128) if not chr(code).isalnum())
_ASCII_SPLIT = bytes.maketrans(_ASCII_SEPARATORS, b" " * len(_ASCII_SEPARATORS))
# Combining marks, accents among them: those of the Basic Multilingual Plane by one `str.translate`, the
# others (rare: historic scripts, musical notation) one by one.
_BMP_MARKS = dict.fromkeys(code for code in range(0x10000) if unicodedata.category(chr(code)).startswith("M"))
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def normalize(text: str) -> str:
    """Case-fold and decompose `text`, then drop combining marks (accents)."""
    if text.isascii():
        return text.lower()  # what the rest comes to on ASCII
    # Decomposing before and after folding: folding can make a decomposable letter (İ -> i̇)
    # and decomposing can make one that folds (㎒ -> MHz).
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold()).casefold()
    folded = folded.translate(_BMP_MARKS)
    if _ASTRAL.search(folded):
        return "".join(char for char in folded if not unicodedata.category(char).startswith("M"))
    return folded


def _tokens(text: str) -> list[str]:
    """The normalised words of `text`, in order, repeats included."""
    if text.isascii():
        return text.encode().lower().translate(_ASCII_SPLIT).decode().split()
    return _WORD.findall(normalize(text))


def words_of(text: str) -> list[str]:
    """The distinct normalised words of `text`, in order of first appearance."""
    return list(dict.fromkeys(_tokens(text)))


_LENGTHS = (*PREFIXES, HEAD)


def _word_keys(word: str) -> set[str]:
    return {word[:length] for length in _LENGTHS}  # a short word repeats itself: the set keeps it once


def _prefix_key(prefix: str) -> str:
    """The key every word starting with `prefix` has: its first HEAD characters, or the longest of PREFIXES."""
    if len(prefix) >= HEAD:
        return prefix[:HEAD]
    return prefix[: max(length for length in PREFIXES if length <= len(prefix))]


def index(body: str) -> tuple[list[str], list[str]]:
    """Return (indexed words, their keys) of a message body: its first words, within MAX_KEYS keys."""
    words, keys = [], set()
    for word in words_of(body):
        more = _word_keys(word) - keys
        if len(keys) + len(more) > MAX_KEYS:
            break
        words.append(word)
        keys |= more
    return words, sorted(keys)


def keys_of(body: str) -> list[str]:
    """The search keys stored with a message body."""
    return index(body)[1]


def user_key(user_id) -> str:
    """The key of the messages naming a member."""
    return f"@{user_id}"


def room_key(room_id) -> str:
    """The key of a room's `@room`/`@here` messages."""
    return f"@room:{room_id}"


def mention_keys(room_id, user_ids, mentions_room: bool) -> list[str]:
    """The mention keys of a message of a room that names `user_ids`, and everyone when `mentions_room`."""
    return [user_key(user_id) for user_id in user_ids] + ([room_key(room_id)] if mentions_room else [])


def message_keys(body: str, room_id, user_ids, mentions_room: bool) -> list[str]:
    """Every key stored with a message: its body's, then its mentions'."""
    return keys_of(body) + mention_keys(room_id, user_ids, mentions_room)


@dataclass(frozen=True)
class Query:
    """What a search looks for: whole `words`, and a last word that may also be a `prefix`."""

    words: frozenset[str]
    prefix: str

    @classmethod
    def parse(cls, text: str) -> "Query | None":
        """The query of a search text, or None when it holds no word."""
        words = _tokens(text)
        return cls(frozenset(words[:-1]), words[-1]) if words else None

    @property
    def key(self) -> str:
        """The one key to look up: the longest (the rarest, as a rule) any of the terms gives."""
        # Ties go to a whole word, whose key more often stands for that word alone.
        terms = [(len(word[:HEAD]), True, word[:HEAD]) for word in self.words]
        return max([*terms, (len(_prefix_key(self.prefix)), False, _prefix_key(self.prefix))])[2]

    def matches(self, body: str) -> bool:
        """Whether a message body holds every word, and a word starting with the prefix, among its indexed words."""
        indexed = index(body)[0]
        present = set(indexed)
        return self.words <= present and any(word.startswith(self.prefix) for word in indexed)
