"""Reading a JSON payload that repeats an earlier one but for a few string values.

A streamed answer sends one payload per token, and consecutive payloads differ
only in a few string values: the token's text (or a piece of a tool call's
arguments), and at OpenAI a random ``obfuscation`` string. A :class:`Shape` is
the text of one such payload cut at those values, its *holes*.

A later payload whose text is exactly the same between and around the holes, and
has one complete JSON string in each hole, parses to the same object but for the
holes' values. JSON is read left to right, without lookahead: the same text
before a hole leaves the parser in the same state, so the string literal there
fills the same place, and the same text after it does the same again. Checking
that costs a few string comparisons and one C call per hole
(:func:`json.decoder.scanstring`, the string reader ``json.loads`` uses, with
the same escapes and strictness): a sixth of parsing the payload.

A payload that does not match is simply not read here (:meth:`Shape.match`
returns None), and the caller parses it in full. So the shape can only make
reading faster, never different; ``tests/test_shape.py`` checks that claim on
generated payloads.
"""

from __future__ import annotations

import json
import re
from json.decoder import scanstring
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

__all__ = ["Shape"]

Path = Tuple[Union[str, int], ...]  # keys and list positions, from the top object down

_WS = "[ \t\n\r]*"  # JSON's whitespace
_MAX_CHARS = 16 * 1024  # longer payloads are not per-token ones: not worth the second parse


class Shape:
    """The text of one JSON object with holes at the string values at some paths.

    ``Shape.of(data, obj, paths)`` makes one from a payload's text ``data`` and
    its parsed object ``obj``; ``shape.paths`` are the holes' paths in the order
    their values appear in the text, and ``shape.match(text)`` gives a later
    payload's hole values in that order (a list of str), or None when that
    payload's text differs from ``data`` anywhere but in the holes (or a hole
    does not hold exactly one valid JSON string). When it matches,
    ``json.loads(text)`` is ``obj`` with the hole values put at ``paths``.
    """

    __slots__ = ("paths", "_head", "_start", "_between", "_tail", "_tail_chars")

    def __init__(self, paths: Sequence[Path], texts: Sequence[str]) -> None:
        # texts: the len(paths) + 1 pieces of text around the holes; every piece
        # but the last ends with a hole's opening quote.
        self.paths = tuple(paths)
        self._head = texts[0]
        self._start = len(texts[0])
        self._between = tuple(texts[1:-1])
        self._tail = texts[-1]
        self._tail_chars = len(texts[-1])

    @classmethod
    def of(cls, data: str, obj: Dict[str, Any], paths: Sequence[Path]) -> Optional["Shape"]:
        """The shape of ``data`` (a JSON text) with a hole at each of ``paths``,
        whose values in ``obj`` (``data`` parsed) must be strings; None when a
        path holds no string, its value's literal is not found exactly once after
        its key (a key written with escapes, say) or ``data`` is over 16 Ki
        characters. The holes are checked by parsing ``data`` again with marker
        strings in them: each marker must land at its path, the rest unchanged."""
        if len(data) > _MAX_CHARS:
            return None
        spans = []
        for path in paths:
            try:
                value = _at(obj, path)
            except (LookupError, TypeError):
                return None
            if value.__class__ is not str or not path or path[-1].__class__ is not str:
                return None
            found = [m.end() for m in re.finditer('"' + re.escape(path[-1]) + '"' + _WS + ":" + _WS + '"', data)
                     if _literal(data, m.end()) == value]
            if len(found) != 1:
                return None
            start = found[0]
            spans.append((start, scanstring(data, start)[1], path))
        spans.sort()
        if any(a[1] > b[0] for a, b in zip(spans, spans[1:])):
            return None
        pieces, probe, pos = [], [], 0
        for number, (start, end, _) in enumerate(spans):
            pieces.append(data[pos:start])
            probe.append(data[pos:start] + "\\u0000%d" % number)
            pos = end - 1  # the tail starts at the hole's closing quote
        pieces.append(data[pos:])
        probe.append(data[pos:])
        try:
            marked = json.loads("".join(probe))
        except ValueError:
            return None
        for number, (_, _, path) in enumerate(spans):
            try:
                if _at(marked, path) != "\x00%d" % number:
                    return None
            except (LookupError, TypeError):
                return None
            _put(marked, path, _at(obj, path))
        if marked != obj:
            return None
        return cls([path for _, _, path in spans], pieces)

    def match(self, text: str) -> Optional[List[str]]:
        """The hole values of ``text`` (in :attr:`paths` order), or None when
        ``text`` is not this shape with a valid JSON string in each hole."""
        if not (text.startswith(self._head) and text.endswith(self._tail)):
            return None
        try:
            value, end = scanstring(text, self._start)
            values = [value]
            for piece in self._between:
                # end is just past the closing quote; the tail starts at that quote
                if not text.startswith(piece, end - 1):
                    return None
                value, end = scanstring(text, end - 1 + len(piece))
                values.append(value)
        except ValueError:  # JSONDecodeError: an unterminated string, a bad escape, a control character
            return None
        return values if end - 1 == len(text) - self._tail_chars else None

    def __repr__(self) -> str:
        return f"<Shape with holes at {list(self.paths)}>"


def _literal(data: str, start: int) -> Optional[str]:
    try:
        return scanstring(data, start)[0]
    except ValueError:
        return None


def _at(obj: Any, path: Path) -> Any:
    for key in path:
        obj = obj[key]
    return obj


def _put(obj: Any, path: Path, value: Any) -> None:
    _at(obj, path[:-1])[path[-1]] = value
