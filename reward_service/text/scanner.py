"""Fast phrase scanning: find rule phrases (regexes) at word starts, the first phrase in table order winning.

Equivalent to one big alternation scanned with ``finditer``, but at each word only the phrases that
can start with its first four characters are tried (one regex per distinct four-character start,
built on first sight), which makes scanning several times faster. The first characters a phrase can
start with are read off the standard library's regex parser, so a phrase is never skipped: one it
cannot analyse is tried at every word.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any

# The regex parser tells which letters a phrase can start with. Its modules are private and not in the
# typeshed stubs, so they are bound untyped.
_re_constants: Any = importlib.import_module("re._constants")
_re_parser: Any = importlib.import_module("re._parser")

_PREFIX = 4  # phrases are dispatched on the first four characters of a word
_DISPATCH_CACHE_LIMIT = 50_000


def phrase_prefixes(pattern: str) -> frozenset[str] | None:
    """The first four characters a match of ``pattern`` can start with; None if the parse is not understood.

    A shorter entry means a match can end after it. Uses the standard library's
    regex parser, so a phrase is never skipped: anything it cannot analyse falls back to None
    (try the phrase at every word).
    """
    try:
        return frozenset(_sequence_prefixes(list(_re_parser.parse(pattern)), _PREFIX))
    except (ValueError, TypeError, AttributeError, IndexError):
        return None


def _sequence_prefixes(items: list, limit: int) -> set[str]:
    done: set[str] = set()
    partial = {""}
    for op, argument in items:
        following: set[str] = set()
        for prefix in partial:
            for extension in _op_prefixes(op, argument, limit - len(prefix)):
                (done if len(prefix) + len(extension) == limit else following).add(prefix + extension)
        partial = following
        if not partial:
            break
    return done | partial


def _op_prefixes(op: object, argument: Any, limit: int) -> set[str]:
    constants = _re_constants
    if op is constants.LITERAL:
        return {chr(argument)}
    if op is constants.IN:
        characters: set[str] = set()
        for kind, value in argument:
            if kind is constants.LITERAL:
                characters.add(chr(value))
            elif kind is constants.RANGE:
                characters.update(chr(code) for code in range(value[0], value[1] + 1))
            elif kind is constants.CATEGORY and value is constants.CATEGORY_WORD:
                characters.update(_WORD_CHARACTERS)
            else:
                raise ValueError(f"unhandled character class {kind}")
        return characters
    if op is constants.SUBPATTERN:
        return _sequence_prefixes(list(argument[3]), limit)
    if op is constants.BRANCH:
        return set().union(*(_sequence_prefixes(list(branch), limit) for branch in argument[1]))
    if op in (constants.MAX_REPEAT, constants.MIN_REPEAT):
        low, high, body = argument
        counts = range(low, min(high, low + limit) + 1)
        return set().union(*(_sequence_prefixes(list(body) * count, limit) for count in counts))
    if op in (constants.ASSERT, constants.ASSERT_NOT, constants.AT):
        return {""}
    raise ValueError(f"unhandled regex op {op}")


_WORD_CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789_"


class _Dispatch(dict[str, "re.Pattern[str] | None"]):
    """The regex for each word start, built on first sight: one C-level lookup per word."""

    def __init__(self, build: Callable[[str], re.Pattern[str] | None]) -> None:
        super().__init__()
        self._build = build

    def __missing__(self, start: str) -> re.Pattern[str] | None:
        return self._build(start)


class PhraseScanner:
    """Finds phrases (regexes) at word starts, the first phrase in table order winning at a position."""

    def __init__(self, patterns: list[str]) -> None:
        self._patterns = patterns
        self._prefixes = [phrase_prefixes(pattern) for pattern in patterns]
        self._dispatch = _Dispatch(self._regex_for)  # four-letter word start -> its regex
        self._compiled: dict[tuple[int, ...], re.Pattern[str]] = {}  # one regex per distinct phrase set
        self._index = {f"g{index}": index for index in range(len(patterns))}

    def _regex_for(self, start: str) -> re.Pattern[str] | None:
        candidates = [
            index
            for index, prefixes in enumerate(self._prefixes)
            if prefixes is None
            or any(
                start == prefix if len(prefix) == _PREFIX else start.startswith(prefix) for prefix in prefixes
            )
        ]
        key = tuple(candidates)
        regex = self._compiled.get(key)
        if regex is None and candidates:
            # Each phrase must end at a word end; the scan only tries word starts.
            regex = self._compiled[key] = re.compile(
                "|".join(f"(?P<g{i}>(?:{self._patterns[i]})(?![\\w-]))" for i in candidates)
            )
        if len(self._dispatch) < _DISPATCH_CACHE_LIMIT:
            self._dispatch[start] = regex
        return regex

    def scan(
        self, text: str, word_starts: list[int], sentence_ends: list[int] | None = None
    ) -> list[tuple[int, int, int]]:
        """``(start, end, phrase index)`` of non-overlapping phrases, left to right.

        With ``sentence_ends`` (ascending, the last past the end of ``text``) no phrase reaches past
        the end of the sentence it starts in, so a report read whole and read a sentence at a time
        give the same phrases.
        """
        found = []
        covered = 0
        dispatch = self._dispatch
        index = self._index
        ends = sentence_ends or [len(text) + 1]
        sentence = 0
        sentence_end = ends[0]
        for position in word_starts:
            if position < covered:
                continue
            start = text[position : position + _PREFIX]
            regex = dispatch[start]
            if regex is None:
                continue
            while position >= sentence_end:
                sentence += 1
                sentence_end = ends[sentence]
            match = regex.match(text, position, sentence_end)
            if match is not None:
                assert match.lastgroup is not None  # every alternative is a named group
                found.append((position, match.end(), index[match.lastgroup]))
                covered = match.end()
        return found
