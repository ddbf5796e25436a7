"""Reading a repeated payload by its shape gives exactly what parsing it gives.

1. ``Shape`` (llmlib/providers/shape.py) on generated JSON objects, serialized
   every way ``json.dumps`` can (compact, spaced, indented, sorted keys, ASCII
   or not), with string leaves full of quotes, backslashes, escapes, U+2028,
   control characters, lone surrogates and emoji, and keys that repeat a hole's
   key elsewhere (or end with it: ``x"content``):

   - completeness: a hole whose key is written once is found, and a payload
     that differs only in the holes' literals (each written anew, ASCII or not)
     is read back, values and object both;
   - soundness: any text made from a matching one by inserting, deleting,
     replacing, duplicating or cutting characters is either not read (None) or
     read to exactly what ``json.loads`` gives; ``match`` never raises;
   - the payloads ``Shape.of`` must refuse (duplicate keys, a key written with
     an escape, a value that appears twice, a path to a non-string, 16 Ki+).

2. The OpenAI stream decoder with shapes, on streams as repetitive as real
   ones (one envelope, a role chunk, many text or tool-call argument chunks,
   OpenAI's random ``obfuscation`` on each, odd chunks among them), gives the
   chunks, states, errors and ``collect()`` of the general path
   (``GeneralPath`` from test_fast_paths, which never learns a shape), and for
   the plain streams really reads by shape (the line ``return
   self._again(values)`` runs, traced as test_fast_paths traces its fast paths).

3. Cases: an ``event: error`` with a known shape still raises; reasoning
   details mid-stream; three interleaved choices past the 8 shapes a decoder
   learns; chunks are independent objects; Azure's decoder never reads by
   shape; recorded OpenAI streams with their token chunks repeated.
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any, Dict, List, Optional, Sequence, Tuple

import attrs
import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from llmlib.errors import APIStatusError
from llmlib.framing import Event, SSEFramer
from llmlib.providers import azure
from llmlib.providers.openai import StreamDecoder
from llmlib.providers.shape import Shape
from tests.conftest import wire
from tests.test_fast_paths import (SETTINGS, GeneralPath, _line_of, _lines_run, _off_the_fast_paths,
                                   assert_same_as_general, collected, outcomes)

Path = Tuple[Any, ...]


def _at(obj: Any, path: Path) -> Any:
    for key in path:
        obj = obj[key]
    return obj


def with_values(obj: Any, paths: Sequence[Path], values: Sequence[str]) -> Any:
    """A deep copy of ``obj`` with ``values`` put at ``paths``."""
    out = copy.deepcopy(obj)
    for path, value in zip(paths, values):
        _at(out, path[:-1])[path[-1]] = value
    return out


# ================================================================ Shape

# Strings that are hard to find again in JSON text: escapes, quotes, a literal
# that looks like the end of a hole and the start of another, surrogates.
NASTY = ['"', "\\", '\\"', "\\u0041", "/", "\u2028", "\u2029", "\x00", "\x1f", "\x7f", "\x85", "é", "日本",
         "😀", "\ud800", "\udfff", '","content":"', '"}', '":"', " ", "\t", "\n", "content", "obfuscation"]
text_st = st.lists(st.one_of(st.characters(), st.sampled_from(NASTY)), max_size=5).map("".join)
HOLE_KEYS = ["content", "obfuscation", "arguments"]
# Keys that never contain a hole's key: a hole under one of HOLE_KEYS is written once.
safe_key_st = st.one_of(st.sampled_from(["a", "b", "delta", "choices", "index", "k\"", "k\\", "é", "\u2028", "",
                                         "😀", "\\u0063ontent", "x\"y", " "]),
                        st.text(st.characters(blacklist_characters="cobfuscationargument"), max_size=3))
# Keys that may be a hole's key, or end with it, or hold it escaped.
any_key_st = st.one_of(safe_key_st, st.sampled_from(HOLE_KEYS + ['x"content', "content\"", " content", "conten",
                                                                 "Content", "content\\"]))
scalar_st = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70),
                      st.floats(allow_nan=False, allow_infinity=False), text_st)


def values_st(key_st):
    return st.recursive(scalar_st, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(key_st, kids, max_size=3),
                        max_leaves=10)


FORMATS = st.fixed_dictionaries({
    "separators": st.sampled_from([(",", ":"), (", ", ": "), (",", ": "), (" ,\n", "\t:\r\n ")]),
    "indent": st.sampled_from([None, None, None, 0, 2, "\t"]),
    "ensure_ascii": st.booleans(),
    "sort_keys": st.booleans(),
})


def _dict_paths(obj: Any, path: Path = ()) -> List[Path]:
    """Paths to every dict in ``obj``, ``obj`` itself first."""
    out = []
    if isinstance(obj, dict):
        out.append(path)
        for k, v in obj.items():
            out += _dict_paths(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _dict_paths(v, path + (i,))
    return out


def _string_paths(obj: Any, path: Path = ()) -> List[Path]:
    """Paths to every string value whose last step is a dict key."""
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, str):
                out.append(path + (k,))
            else:
                out += _string_paths(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _string_paths(v, path + (i,))
    return out


SENTINEL = "\ue000\U0010fffe%d\ue001"  # stands in for a hole's value while the text is made


@attrs.define
class Case:
    """A JSON object, the paths of its holes, a format, and its text cut around
    the holes' literals (``pieces``: one more than the holes, in text order)."""

    obj: Dict[str, Any]
    paths: List[Path]  # as chosen
    fmt: Dict[str, Any]
    order: List[Path] = attrs.field(factory=list)  # the holes' paths in text order
    pieces: List[str] = attrs.field(factory=list)
    values: Dict[Path, str] = attrs.field(factory=dict)  # the holes' values as written in the text
    duplicated: bool = False  # keys written twice: obj may hold other values at the holes' paths

    def cut(self) -> bool:
        marked = with_values(self.obj, self.paths, [SENTINEL % n for n in range(len(self.paths))])
        text = json.dumps(marked, **self.fmt)
        found = []
        for n, path in enumerate(self.paths):
            literal = json.dumps(SENTINEL % n, ensure_ascii=self.fmt["ensure_ascii"])
            if text.count(literal) != 1:
                return False  # the sentinel is in the generated object too: draw again
            found.append((text.index(literal), len(literal), path))
        found.sort()
        self.values = {path: _at(self.obj, path) for path in self.paths}
        pos = 0
        for start, size, path in found:
            self.pieces.append(text[pos:start])
            self.order.append(path)
            pos = start + size
        self.pieces.append(text[pos:])
        return True

    def render(self, values: Dict[Path, str], ascii_flags: Sequence[bool]) -> str:
        """The text with each hole's literal written anew (ASCII or not, per hole)."""
        out = [self.pieces[0]]
        for path, piece, ascii_only in zip(self.order, self.pieces[1:], ascii_flags):
            out.append(json.dumps(values[path], ensure_ascii=ascii_only))
            out.append(piece)
        return "".join(out)

    @property
    def data(self) -> str:
        return self.render(self.values, [self.fmt["ensure_ascii"]] * len(self.order))

    def spans(self, text_values: Dict[Path, str], ascii_flags: Sequence[bool]) -> List[int]:
        """Where the holes' literals begin and end in ``render(...)``: places to mutate near."""
        out, pos = [], len(self.pieces[0])
        for path, piece, ascii_only in zip(self.order, self.pieces[1:], ascii_flags):
            out.append(pos)
            pos += len(json.dumps(text_values[path], ensure_ascii=ascii_only))
            out.append(pos)
            pos += len(piece)
        return out


DUPLICATE = "\ue002\U0010fffd%d"  # a key that becomes a copy of another in the text


def _normal(value: Any) -> Any:
    """``value`` as JSON reads it back: lone surrogates side by side become one character."""
    return json.loads(json.dumps(value))


def written(news: Sequence[str], asciis: Sequence[bool]) -> List[str]:
    """What JSON reads back of each of ``news`` written with its own ``ensure_ascii``."""
    return [json.loads(json.dumps(v, ensure_ascii=a)) for v, a in zip(news, asciis)]


def _escaped(key: str) -> str:
    """``key``'s JSON literal with its first character written as a \\u escape."""
    return '"\\u%04x' % ord(key[0]) + json.dumps(key[1:])[1:] if key and ord(key[0]) < 0x10000 else json.dumps(key)


@st.composite
def cases(draw, adversarial: bool, duplicates: bool = False) -> Case:
    """An object with 1-2 string holes. Not adversarial: each hole's key is one of
    HOLE_KEYS, used nowhere else (so ``Shape.of`` must find it). Adversarial: any
    1-2 string paths of an object whose keys may repeat the holes' keys. With
    ``duplicates``, the text also has members whose key is written again in
    the same object (a hole's key, plain or with an escape; before or after it;
    the same value, another string, an object): ``obj`` is what json.loads makes
    of the text, and the holes' paths may now hold anything."""
    key_st = any_key_st if adversarial else safe_key_st
    obj = _normal(draw(st.dictionaries(key_st, values_st(key_st), max_size=4)))
    keys = draw(st.lists(st.sampled_from(HOLE_KEYS), min_size=1, max_size=2, unique=True))
    chosen = []
    for key in keys:
        parent = draw(st.sampled_from(_dict_paths(obj)))
        _at(obj, parent)[key] = _normal(draw(text_st))
        chosen.append(parent + (key,))
    if adversarial:
        strings = _string_paths(obj)
        chosen = draw(st.lists(st.sampled_from(strings), min_size=1, max_size=2, unique=True))
    renames = []
    for n in range(draw(st.integers(1, 2)) if duplicates else 0):
        hole = draw(st.sampled_from(chosen))
        key = draw(st.sampled_from([hole[-1], hole[-1], draw(any_key_st)]))
        value = draw(st.sampled_from(["same", "same", "other", "object"]))
        value = {"same": _at(obj, hole), "other": _normal(draw(text_st)), "object": {key: _at(obj, hole)}}[value]
        into = _at(obj, draw(st.sampled_from([hole[:-1], hole[:-1]] + _dict_paths(obj))))
        items = list(into.items())
        into.clear()
        into.update([(DUPLICATE % n, value)] + items if draw(st.booleans()) else items + [(DUPLICATE % n, value)])
        renames.append((n, draw(st.sampled_from([json.dumps(key), _escaped(key)]))))
    case = Case(obj, chosen, draw(FORMATS))
    assume(case.cut())
    if renames:
        for n, literal in renames:
            old = json.dumps(DUPLICATE % n, ensure_ascii=case.fmt["ensure_ascii"])
            assume(sum(p.count(old) for p in case.pieces) == 1)
            case.pieces = [p.replace(old, literal) for p in case.pieces]
        case.obj = json.loads(case.data)
        case.duplicated = True
    return case


def check_read(shape: Shape, obj: Any, text: str) -> Optional[List[str]]:
    """The soundness claim for one text: ``match`` never raises, and reads a text
    only to what ``json.loads`` gives (so never one json.loads refuses)."""
    values = shape.match(text)
    try:
        parsed = json.loads(text)
    except ValueError:
        assert values is None, (text, values)
        return None
    if values is not None:
        assert isinstance(values, list) and all(type(v) is str for v in values)
        assert parsed == with_values(obj, shape.paths, values), (text, values)
    return values


def check_complete(case: Case, shape: Shape, news: List[str], asciis: List[bool]) -> None:
    """The shape reads its own text, and the text with new literals in its holes."""
    obj = case.obj
    assert shape.paths == tuple(case.order)  # text order
    assert shape.match(case.data) == [case.values[p] for p in shape.paths] == [_at(obj, p) for p in shape.paths]
    values = dict(zip(case.order, news))
    text = case.render(values, asciis)
    read = written(news[:len(case.order)], asciis)
    assert shape.match(text) == read
    assert json.loads(text) == with_values(obj, shape.paths, read)


@settings(max_examples=150, **SETTINGS)
@given(case=cases(adversarial=False), news=st.lists(text_st, min_size=2, max_size=2),
       asciis=st.lists(st.booleans(), min_size=2, max_size=2))
def test_property_shape_of_finds_holes_written_once_and_match_reads_new_literals(case, news, asciis):
    data = case.data
    assert data == json.dumps(case.obj, **case.fmt)
    shape = Shape.of(data, case.obj, case.paths)
    assert shape is not None, data
    check_complete(case, shape, news, asciis)


@settings(max_examples=150, **SETTINGS)
@given(case=cases(adversarial=True), news=st.lists(text_st, min_size=2, max_size=2),
       asciis=st.lists(st.booleans(), min_size=2, max_size=2))
def test_property_a_shape_of_a_tricky_object_reads_new_literals_right(case, news, asciis):
    shape = Shape.of(case.data, case.obj, case.paths)
    event("refused" if shape is None else "shaped")
    assume(shape is not None)  # a key written twice, say: refusing is allowed
    check_complete(case, shape, news, asciis)


MUTATION_TEXT = ['"', "\\", " ", ",", ":", "}", "]", "{", "[", "u", "0", "\n", "\x00", "a", "\u2028", '\\"', "\\u00",
                 "\\ud800", '"x":"', '","content":"', "é", "null", "'"]
mutation_st = st.tuples(
    st.sampled_from(["insert", "delete", "replace", "duplicate", "cut", "truncate", "swap"]),
    st.one_of(st.integers(0, 10 ** 6), st.tuples(st.integers(0, 3), st.integers(-3, 3))),  # anywhere, or near a hole
    st.integers(0, 12),  # a length
    st.one_of(st.sampled_from(MUTATION_TEXT), st.characters()),
)


def mutate(text: str, spans: List[int], op) -> str:
    kind, where, size, new = op
    if isinstance(where, tuple):  # near a hole's literal: its start or end, give or take 3
        pos = min(max(spans[where[0] % len(spans)] + where[1], 0), len(text))
    else:
        pos = where % (len(text) + 1)
    if kind == "insert":
        return text[:pos] + new + text[pos:]
    if kind == "delete":
        return text[:pos] + text[pos + 1:]
    if kind == "replace":
        return text[:pos] + new + text[pos + 1:]
    if kind == "duplicate":  # a slice written twice
        return text[:pos + size] + text[pos:pos + size] + text[pos + size:]
    if kind == "cut":
        return text[:pos] + text[pos + size:]
    if kind == "truncate":
        return text[:pos]
    return text[:pos] + text[pos + size:pos + 2 * size] + text[pos:pos + size] + text[pos + 2 * size:]  # swap


@settings(max_examples=350, **SETTINGS)
@given(case=st.one_of(cases(adversarial=False), cases(adversarial=True), cases(adversarial=True, duplicates=True)),
       news=st.lists(text_st, min_size=2, max_size=2),
       asciis=st.lists(st.booleans(), min_size=2, max_size=2), ops=st.lists(mutation_st, min_size=1, max_size=3))
def test_property_match_reads_a_mutated_text_as_json_loads_does_or_not_at_all(case, news, asciis, ops):
    shape = Shape.of(case.data, case.obj, case.paths)
    event(f"{'duplicates' if case.duplicated else 'no duplicates'}: {'refused' if shape is None else 'shaped'}")
    assume(shape is not None)
    values = dict(zip(case.order, news))
    text = case.render(values, asciis)
    spans = case.spans(values, asciis)
    read = check_read(shape, case.obj, text)
    if not case.duplicated:  # else the shape's holes may be other literals than the case's
        assert read == written(news[:len(case.order)], asciis)
    for op in ops:
        text = mutate(text, spans, op)
        read = check_read(shape, case.obj, text)
        event(f"{op[0]}: {'read' if read is not None else 'not read'}")


CHUNK = {"id": "chatcmpl-AB1", "object": "chat.completion.chunk", "created": 1727346168, "model": "gpt-4o",
         "system_fingerprint": "fp_1", "choices": [{"index": 0, "delta": {"content": "Hi"}, "logprobs": None,
                                                     "finish_reason": None}]}
CONTENT = ("choices", 0, "delta", "content")
OBFUSCATION = ("obfuscation",)


@pytest.mark.parametrize("fmt", [{}, {"separators": (",", ":")}, {"indent": 2}, {"ensure_ascii": False}])
def test_shape_of_gives_a_shape_for_typical_openai_chunks(fmt):
    """Content alone, and content with obfuscation (either order), in any usual format."""
    plain = json.dumps(CHUNK, **fmt)
    shape = Shape.of(plain, CHUNK, [CONTENT])
    assert shape is not None and shape.paths == (CONTENT,)
    assert shape.match(plain) == ["Hi"]
    assert shape.match(plain.replace('"Hi"', json.dumps('é"\\\u2028😀'))) == ['é"\\\u2028😀']
    for obj in ({**CHUNK, "obfuscation": "aB3", "service_tier": "default"},
                {"obfuscation": "aB3", **CHUNK}):
        data = json.dumps(obj, **fmt)
        shape = Shape.of(data, obj, [CONTENT, OBFUSCATION])
        assert shape is not None and set(shape.paths) == {CONTENT, OBFUSCATION}
        values = {CONTENT: "Hi", OBFUSCATION: "aB3"}
        assert shape.match(data) == [values[p] for p in shape.paths]
        again = data.replace('"Hi"', '"\\u00e9"').replace('"aB3"', '""')
        values = {CONTENT: "é", OBFUSCATION: ""}
        assert shape.match(again) == [values[p] for p in shape.paths]
    tool = {**CHUNK, "choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "function": {"arguments": "{\""}}]}, "logprobs": None, "finish_reason": None}]}
    arguments = ("choices", 0, "delta", "tool_calls", 0, "function", "arguments")
    assert Shape.of(json.dumps(tool, **fmt), tool, [arguments]).match(json.dumps(tool, **fmt)) == ["{\""]


@pytest.mark.parametrize("data, obj, paths", [
    ('{"a":"x","a":"x"}', {"a": "x"}, [("a",)]),  # a duplicate key, its literal twice
    # the literal after the only plain "a" key is in the overridden duplicate of "p"
    ('{"p":{"a":"x"},"p":{"\\u0061":"x"}}', {"p": {"a": "x"}}, [("p", "a")]),
    ('{"p":{"a":"x"},"p":{"a":"y"}}', {"p": {"a": "x"}}, [("p", "a")]),  # obj is not data's object
    ('{"a":"x","b":{"a":"x"}}', {"a": "x", "b": {"a": "x"}}, [("a",)]),  # the same key and value twice
    ('{"a":"x","b":{"a":"x"}}', {"a": "x", "b": {"a": "x"}}, [("b", "a")]),
    ('{"b":["a","x"],"a":"x","c":[{"a":"x"}]}', {"b": ["a", "x"], "a": "x", "c": [{"a": "x"}]}, [("a",)]),
    ('{"\\u0061":"x"}', {"a": "x"}, [("a",)]),  # the key written with an escape
    ('{"\\"a":"x"}', {'"a': "x"}, [('"a',)]),
    ('{"a":1}', {"a": 1}, [("a",)]),  # not strings
    ('{"a":null}', {"a": None}, [("a",)]),
    ('{"a":["x"]}', {"a": ["x"]}, [("a",)]),
    ('{"a":{"b":"x"}}', {"a": {"b": "x"}}, [("a",)]),
    ('{"a":["x"]}', {"a": ["x"]}, [("a", 0)]),  # a list item: no key before it
    ('{"a":"x"}', {"a": "x"}, [("b",)]),  # no such path
    ('{"a":"x"}', {"a": "x"}, [("a", "b")]),
    ('{"a":"x"}', {"a": "x"}, [()]),
    ('{"a":"x","b":"y"}', {"a": "x", "b": "y"}, [("a",), ("a",)]),  # one hole twice
    ('{"x\\"a":"1","a":"1"}', {'x"a': "1", "a": "1"}, [("a",)]),  # a key ending with the hole's key
    ('{"a":"' + "x" * 16400 + '"}', {"a": "x" * 16400}, [("a",)]),  # over 16 Ki characters
])
def test_shape_of_refuses(data, obj, paths):
    """Shape.of gives None for these."""
    assert Shape.of(data, obj, paths) is None


def test_shape_of_finds_a_key_whose_text_is_also_inside_a_value():
    """A value holding the text of the hole's key and value hides nothing; with a duplicate key, a shape reads right."""
    obj = {"x": '"a":"y', "a": "y"}
    shape = Shape.of('{"x":"\\"a\\":\\"y","a":"y"}', obj, [("a",)])
    assert shape is not None and shape.match('{"x":"\\"a\\":\\"y","a":"z"}') == ["z"]
    assert shape.match('{"x":"\\"a\\":\\"z","a":"y"}') is None
    shape = Shape.of('{"a":"x","a":"y"}', {"a": "y"}, [("a",)])  # may be refused; if not, read right
    for text in ('{"a":"x","a":"z"}', '{"a":"z","a":"z"}', '{"a":"x","a":"y","a":"z"}'):
        assert shape is None or check_read(shape, {"a": "y"}, text) in (None, ["z"])


def test_shape_of_takes_up_to_16_ki_characters():
    """16 Ki characters is the most, counted in characters (not bytes)."""
    for size, shaped in ((16 * 1024, True), (16 * 1024 + 1, False)):
        pad = size - len('{"a":"x","b":""}')
        obj = {"a": "x", "b": "é" * pad}
        data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
        assert len(data) == size
        assert (Shape.of(data, obj, [("a",)]) is not None) is shaped


@pytest.mark.parametrize("text, read", [
    ('{"a":"y","c":"2","b":1}', None),  # something between the hole's literal and the tail
    ('{"a":"y","b":1}","b":1}', None),
    ('{"a":"y\\","b":1}', None),  # the hole's literal swallows the tail
    ('{"a":"y","b":1}', ["y"]),
    ('{"a":"","b":1}', [""]),
    ('{"a":"\\ud83d\\ude00","b":1}', ["😀"]),
    ('{"a":"\\ud800","b":1}', ["\ud800"]),
    ('{"a":"\\q","b":1}', None),  # a bad escape
    ('{"a":"\\u12","b":1}', None),
    ('{"a":"\x01","b":1}', None),  # a raw control character
    ('{"a":"\n","b":1}', None),
    ('{"a":"y","b":1}\n', None),  # text after the tail: not the shape (json.loads reads it)
    ('{"a":"y","b":1}}', None),
    ('{"a":"', None),
    ('{"a":"x","b":1', None),
])
def test_match_examples_with_one_hole(text, read):
    """What match gives for texts near the template {"a":"x","b":1}, each checked against json.loads too."""
    obj = {"a": "x", "b": 1}
    shape = Shape.of('{"a":"x","b":1}', obj, [("a",)])
    assert shape.match(text) == read
    check_read(shape, obj, text)


@pytest.mark.parametrize("text, read", [
    ('{"a":"1","n":2,"b":"2"}', ["1", "2"]),
    ('{"a":"1","n":3,"b":"2"}', None),  # changed between the holes
    ('{"a":"1","n":2 ,"b":"2"}', None),
    ('{"a":"1","n":2,"b":"2","n":2,"b":"2"}', None),
    ('{"a":"1\\"","n":2,"b":"2"}', ['1"', "2"]),
    ('{"a":"1","n":2,"b":"1","n":2,"b":"2"}', None),  # a between piece written twice
    ('{"a":"1","b":"2"}', None),  # the between piece missing
    ('{"a":"1","n":2,"b":"2\\","n":2,"b":"2"}', None),
])
def test_match_examples_with_two_holes(text, read):
    """What match gives for texts near the template {"a":"x","n":2,"b":"y"}."""
    obj = {"a": "x", "n": 2, "b": "y"}
    shape = Shape.of('{"a":"x","n":2,"b":"y"}', obj, [("b",), ("a",)])
    assert shape.paths == (("a",), ("b",))
    assert shape.match(text) == read
    check_read(shape, obj, text)


# ================================================================ the decoder with shapes

SHAPE_LINE = _line_of(StreamDecoder.decode, "return self._again(values)")


def shape_path_runs(decoder: StreamDecoder, events) -> bool:
    """Whether decoding ``events`` with ``decoder`` reads any of them by its shape."""
    return SHAPE_LINE in _lines_run(StreamDecoder.decode.__code__, lambda: outcomes(decoder, events))


ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
PIECES = ['"', "\\", '\\"', "é", "日本語", "😀", "👍🏽", "\u2028", "\u2029", "", " ", "\n", "\t", "Hello", " world", ".",
          "<think>", "\x00", "\x1f", "\ud800", "{\"", "\":\"", "\"}", "/", "\\u0041"]
piece_st = st.one_of(st.sampled_from(PIECES), st.text(max_size=4))
USAGE = {"prompt_tokens": 12, "completion_tokens": 30, "total_tokens": 42,
         "completion_tokens_details": {"reasoning_tokens": 0}}
LOGPROBS = {"content": [{"token": "a", "logprob": -0.5, "bytes": [97], "top_logprobs": []}], "refusal": None}
BAD_LITERALS = ['"\\q"', '"\\u12"', '"a\x01b"', '"\n"', '"\\"', '"a']
TOP_KEYS = ["id", "object", "created", "model", "system_fingerprint", "service_tier", "obfuscation", "usage",
            "choices"]
CHOICE_KEYS = ["index", "delta", "logprobs", "finish_reason"]


@attrs.define
class Envelope:
    """What every chunk of one stream shares, and how its chunks are written."""

    top: Dict[str, Any]  # id, object, created, model, system_fingerprint, service_tier, usage: null...
    order: List[str]
    choice_order: List[str]
    obfuscation: bool
    fmt: Dict[str, Any]
    rnd: random.Random

    def chunk(self, delta: Any = None, finish: Optional[str] = None, index: int = 0, *, choices: Any = None,
              logprobs: Any = None, **top: Any) -> Dict[str, Any]:
        if choices is None:
            choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
            choices = [{k: choice[k] for k in self.choice_order}]
        values = dict(self.top, choices=choices, **top)
        if self.obfuscation:
            values["obfuscation"] = "".join(self.rnd.choice(ALNUM) for _ in range(self.rnd.randint(0, 14)))
        out = {k: values[k] for k in self.order if k in values}
        out.update((k, v) for k, v in values.items() if k not in out)
        return out

    def text(self, obj: Dict[str, Any]) -> str:
        return json.dumps(obj, **self.fmt)


@st.composite
def envelopes(draw) -> Envelope:
    top = {"id": "chatcmpl-" + draw(st.text(ALNUM, max_size=12)), "object": "chat.completion.chunk",
           "created": draw(st.integers(0, 2 ** 31)),
           "model": draw(st.sampled_from(["gpt-4o", "gpt-4o-mini-2024-07-18", "m", "modèle/😀"]))}
    fingerprint = draw(st.sampled_from(["absent", None, "fp_5050236cbd", "fp_\u2028"]))
    if fingerprint != "absent":
        top["system_fingerprint"] = fingerprint
    tier = draw(st.sampled_from([None, None, "default", "auto"]))
    if tier is not None:
        top["service_tier"] = tier
    if draw(st.integers(0, 4)) == 0:  # DeepSeek, Zhipu, Mistral: "usage": null on every chunk
        top["usage"] = None
    fmt = {"separators": draw(st.sampled_from([(",", ":"), (", ", ": ")])), "ensure_ascii": draw(st.booleans())}
    return Envelope(top, draw(st.permutations(TOP_KEYS)), draw(st.permutations(CHOICE_KEYS)),
                    draw(st.booleans()), fmt, draw(st.randoms(use_true_random=False)))


ODD = ["logprobs", "usage", "reasoning", "bad_escape", "error", "refusal", "role_again", "empty_args",
       "other_index"]


@attrs.define
class Stream:
    datas: List[str]
    think_tags: bool
    plain: bool  # no odd chunks, and two chunks in a row that a shape reads


@st.composite
def streams(draw, odd: bool = True) -> Stream:
    """A realistic answer: a role chunk, text and/or tool calls chunk by chunk,
    (sometimes) odd chunks among them, the finish, the usage chunk, [DONE]."""
    env = draw(envelopes())
    kind = draw(st.sampled_from(["text", "tool", "text+tool", "two tools"]))
    think_tags = draw(st.sampled_from([False, False, False, True]))
    chunks: List[Any] = [env.chunk(draw(st.sampled_from([{"role": "assistant", "content": ""},
                                                         {"role": "assistant", "content": "", "refusal": None},
                                                         {"role": "assistant"}])))]
    reads = False  # two chunks in a row a learned shape reads
    if kind in ("text", "text+tool"):
        pieces = draw(st.lists(piece_st, min_size=2, max_size=25))
        chunks += [env.chunk({"content": p}) for p in pieces]
        reads = True
    if kind != "text":
        first = draw(st.integers(0, 1))
        repeat = draw(st.sampled_from([None, None, None, "id", "type", "name"]))  # pieces repeating the call's
        for i in range(first, first + (2 if kind == "two tools" else 1)):
            call_id = "call_" + draw(st.text(ALNUM, max_size=8))
            chunks.append(env.chunk({"tool_calls": [{"index": i, "id": call_id, "type": "function",
                                                     "function": {"name": "get_weather", "arguments": ""}}]}))
            pieces = draw(st.lists(st.one_of(piece_st.filter(bool), st.just("")), min_size=2, max_size=15))
            for p in pieces:
                piece: Dict[str, Any] = {"index": i, "function": {"arguments": p}}
                if repeat == "id":
                    piece = {"index": i, "id": call_id, "function": {"arguments": p}}
                elif repeat == "type":
                    piece["type"] = "function"
                elif repeat == "name":
                    piece["function"] = {"name": "get_weather", "arguments": p}
                chunks.append(env.chunk({"tool_calls": [piece]}))
            reads = reads or (repeat is None and any(a and b for a, b in zip(pieces, pieces[1:])))
    odds = draw(st.lists(st.tuples(st.integers(1, 10 ** 6), st.sampled_from(ODD)), max_size=3)) if odd else []
    for where, what in odds:
        position = 1 + where % len(chunks)
        if what == "logprobs":
            new = env.chunk({"content": "lp"}, logprobs=LOGPROBS)
        elif what == "usage":
            new = env.chunk({"content": "u"}, usage=USAGE)
        elif what == "reasoning":
            new = env.chunk({"reasoning_content": draw(piece_st)})
        elif what == "bad_escape":  # the shape's text around a literal json.loads refuses
            literal = draw(st.sampled_from(BAD_LITERALS))
            chunks.insert(position, env.text(env.chunk({"content": "\ue000"})).replace(
                json.dumps("\ue000", ensure_ascii=env.fmt["ensure_ascii"]), literal))
            continue
        elif what == "error":
            new = env.chunk({"content": ""}, error={"message": "Internal error", "code": 502})
        elif what == "refusal":
            new = env.chunk({"content": "r", "refusal": None})
        elif what == "role_again":
            new = env.chunk({"role": "assistant", "content": "x"})
        elif what == "empty_args":
            new = env.chunk({"tool_calls": [{"index": 0, "function": {"arguments": ""}}]})
        else:
            new = env.chunk({"content": "o"}, index=1)
        chunks.insert(position, new)
    chunks.append(env.chunk({}, draw(st.sampled_from(["stop", "tool_calls", "length"]))))
    if draw(st.booleans()):
        chunks.append(env.chunk(choices=[], usage=USAGE))
    datas = [c if isinstance(c, str) else env.text(c) for c in chunks]
    if draw(st.integers(0, 5)):
        datas.append("[DONE]")
    return Stream(datas, think_tags, reads and not odds and not think_tags)


@settings(max_examples=250, **SETTINGS)
@given(stream=streams())
def test_property_repetitive_streams_give_the_general_paths_chunks(stream):
    events = [Event(d) for d in stream.datas]
    got, _ = assert_same_as_general(events, "openai", 1, stream.think_tags)
    event(f"ends with {got[-1][0] if got[-1][0] == 'error' else 'a chunk'}; plain: {stream.plain}")
    if stream.plain:
        assert shape_path_runs(StreamDecoder("openai"), events)


@settings(max_examples=80, **SETTINGS)
@given(stream=streams(odd=False), choices=st.integers(1, 3))
def test_property_plain_repetitive_streams_are_read_by_shape(stream, choices):
    """Without odd chunks, with n=1..3 announced: equal chunks, and read by shape."""
    events = [Event(d) for d in stream.datas]
    assert_same_as_general(events, "openai", choices, stream.think_tags)
    if stream.plain:
        assert shape_path_runs(StreamDecoder("openai", choices), events)


# -------------------------------------------------------- examples

def _env(obfuscation: bool = True, **top: Any) -> Envelope:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
            "system_fingerprint": "fp_1", **top}
    return Envelope(base, TOP_KEYS, CHOICE_KEYS, obfuscation, {"separators": (",", ":")}, random.Random(7))


def _events(env: Envelope, objs) -> List[Event]:
    return [Event(o if isinstance(o, str) else env.text(o)) for o in objs]


def test_an_error_event_with_a_known_shape_still_raises():
    """``event: error`` whose data has the learned shape: the provider error, as on the general path."""
    env = _env()
    objs = [env.chunk({"role": "assistant", "content": ""})] + [env.chunk({"content": w}) for w in "abcd"]
    body = b"".join(b"data: " + env.text(o).encode() + b"\n\n" for o in objs)
    body += b"event: error\ndata: " + env.text(env.chunk({"content": "e"})).encode() + b"\n\n"
    body += b"data: " + env.text(env.chunk({"content": "f"})).encode() + b"\n\n"
    events = list(SSEFramer(iter([body])))
    assert type(events[-2]) is not Event and events[-2].event == "error"
    got, chunks = assert_same_as_general(events)
    assert [c.text for c in chunks] == ["", "a", "b", "c", "d"]
    assert got[-1][0] == "error" and issubclass(got[-1][1], APIStatusError)
    assert shape_path_runs(StreamDecoder("openai"), events[:-2])  # the shape was known when the error came


def test_an_error_object_in_a_chunk_with_a_known_shape_raises():
    """A chunk of the learned envelope plus ``"error": {...}``: the provider error."""
    env = _env()
    objs = [env.chunk({"content": w}) for w in "abc"] + [env.chunk({"content": ""}, error={"message": "boom"})]
    got, _ = assert_same_as_general(_events(env, objs))
    assert got[-1][0] == "error" and issubclass(got[-1][1], APIStatusError) and "boom" in got[-1][2]


def test_reasoning_details_mid_stream_end_up_whole_on_the_finishing_chunk():
    """Details after a shape was learned: later text chunks as on the general path, and read by parsing."""
    env = _env()

    def detail(text, sig=""):
        return {"type": "reasoning.text", "text": text, "index": 0, "format": "x", "signature": sig}

    before = [env.chunk({"role": "assistant", "content": ""})] + [env.chunk({"content": w}) for w in ["I", " a", "m"]]
    after = ([env.chunk({"reasoning": "hm", "reasoning_details": [detail("Let ")]})]
             + [env.chunk({"content": w}) for w in [" so", " \u2028", "r", "r"]]
             + [env.chunk({"reasoning_details": [detail("me", "sig")]})]
             + [env.chunk({"content": w}) for w in ["y", "!"]]
             + [env.chunk({}, "stop"), env.chunk(choices=[], usage=USAGE), "[DONE]"])
    events = _events(env, before + after)
    _, chunks = assert_same_as_general(events, "openrouter")
    last = [c for c in chunks if c.choices and c.choices[0].finish_reason][0]
    assert last.choices[0].delta.provider_fields == {"openrouter": {"reasoning_details": [
        {"type": "reasoning.text", "text": "Let me", "index": 0, "format": "x", "signature": "sig"}]}}
    assert [c.text for c in chunks[5:9]] == [" so", " \u2028", "r", "r"]
    decoder = StreamDecoder("openrouter")
    assert shape_path_runs(decoder, _events(env, before))
    assert not shape_path_runs(decoder, _events(env, after))  # each chunk may have to carry the whole details


def test_three_interleaved_choices_past_the_shapes_a_decoder_learns():
    """n=3, round-robin (a new shape each chunk, far past 8), then runs of one choice: as the general path."""
    env = _env()
    objs = [env.chunk({"role": "assistant", "content": ""}, index=i) for i in range(3)]
    words = ["Hé", "\"", "\\", "😀", " ", "", "\u2028", "ok"]
    for r in range(14):
        objs += [env.chunk({"content": words[(r + i) % len(words)]}, index=i) for i in range(3)]
    for i in (1, 0, 2, 1):
        objs += [env.chunk({"content": w}, index=i) for w in words]
        objs += [env.chunk({"tool_calls": [{"index": 0, "function": {"arguments": w}}]}, index=i) for w in words[:3]]
    objs += [env.chunk({}, "stop", index=i) for i in (2, 0)]
    objs += [env.chunk({"content": w}, index=1) for w in words] + [env.chunk({}, "stop", index=1)]
    objs += [env.chunk(choices=[], usage=USAGE), "[DONE]"]
    events = _events(env, objs)
    got, chunks = assert_same_as_general(events, "openai", 3)
    assert [g[2] for g in got[-4:]] == [False, True, True, True]  # complete after the third finish
    assert len(collected(chunks).choices) == 3
    assert shape_path_runs(StreamDecoder("openai", 3), events)


def _mutate_chunk(chunk) -> None:
    """Change everything of ``chunk`` a caller could change in place."""
    if chunk.provider_fields is not None:
        for value in chunk.provider_fields.values():
            if isinstance(value, list):
                value.append("mutated")
            elif isinstance(value, dict):
                value["mutated"] = True
        chunk.provider_fields["mutated"] = True
        chunk.provider_fields["obfuscation"] = "mutated"
    for c in chunk.choices:
        d = c.delta
        if d.tool_calls:
            d.tool_calls[0].function.arguments = "mutated"
            d.tool_calls[0].id = "mutated"
            if isinstance(d.tool_calls, list):
                d.tool_calls.append(d.tool_calls[0])
        d.content = "mutated"
        d.provider_fields = {"mutated": True}
        c.index = 99
    if isinstance(chunk.choices, list):
        chunk.choices.append(chunk.choices[0])
    for name in ("model", "created", "object", "system_fingerprint"):
        value = getattr(chunk, name)
        if isinstance(value, list):
            value.append("mutated")
        elif isinstance(value, dict):
            value["mutated"] = True
    chunk.id = "mutated"


def _decode_mutating(events, provider="openai", spare=2):
    """Decode with a fresh decoder and with GeneralPath side by side; every chunk
    after the first ``spare`` ones is mutated once compared. The chunks must stay equal."""
    fast, general = StreamDecoder(provider), GeneralPath(provider)
    for n, e in enumerate(events):
        got, want = fast.decode(e), general.decode(e)
        assert got == want and (got is None or attrs.asdict(got) == attrs.asdict(want)), n
        if got is not None and n >= spare:
            _mutate_chunk(got)


def _citations_stream():
    env = _env(citations=["https://a.example"], search={"n": 1})
    return _events(env, [env.chunk({"role": "assistant", "content": ""})]
                   + [env.chunk({"content": w}) for w in "abcdef"] + [env.chunk({}, "stop")])


def _text_stream():
    env = _env(service_tier="default")
    return _events(env, [env.chunk({"role": "assistant", "content": ""})]
                   + [env.chunk({"content": w}) for w in "abcdef"] + [env.chunk({}, "stop")])


def _tool_stream():
    env = _env()
    start = {"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f",
                                                                                         "arguments": ""}}]}
    return _events(env, [env.chunk({"role": "assistant", "content": None}), env.chunk(start)]
                   + [env.chunk({"tool_calls": [{"index": 0, "function": {"arguments": w}}]}) for w in "{\"a\":1}"]
                   + [env.chunk({}, "tool_calls")])


@pytest.mark.parametrize("make, spare", [(_text_stream, 2), (_tool_stream, 3), (_citations_stream, 2)])
def test_chunks_read_by_shape_are_independent_objects(make, spare):
    """Changing a chunk read by shape (its provider_fields, delta, tool calls) changes no later chunk."""
    events = make()
    _decode_mutating(events, spare=spare)
    if make is not _citations_stream:  # a list in provider_fields: never shared, so no shape
        assert shape_path_runs(StreamDecoder("openai"), events)


def _learned_chunk_mutated():
    _decode_mutating(_text_stream(), spare=1)  # the first text chunk is the one the shape was learned from


def _shared_obfuscation_list():
    env = _env(obfuscation=False)
    events = _events(env, [env.chunk({"content": w}, obfuscation=["x"]) for w in "abcd"])
    _decode_mutating(events, spare=0)


def _shared_created_list():
    env = _env(obfuscation=False, created=[1], model={"name": "m"})
    _decode_mutating(_events(env, [env.chunk({"content": w}) for w in "abcd"]), spare=0)


@pytest.mark.parametrize("case", [_learned_chunk_mutated, _shared_obfuscation_list, _shared_created_list])
def test_no_chunk_shares_a_mutable_object_with_a_later_one(case):
    """The chunk a shape was learned from, and non-scalar values in the envelope, are not shared either."""
    case()


class AzureGeneral(azure.StreamDecoder):
    """Azure's decoder, every chunk through the general path (as GeneralPath for OpenAI's)."""

    __slots__ = ()

    def decode_object(self, obj, data):
        return super().decode_object(_off_the_fast_paths(obj), data)


def test_azure_never_reads_by_shape():
    """Azure's chunks, with content_filter_results on each choice, as its general path gives them."""
    safe = {"hate": {"filtered": False, "severity": "safe"}, "violence": {"filtered": False, "severity": "safe"}}
    also = {"hate": {"filtered": False, "severity": "safe", "detected": False},
            "violence": {"filtered": False, "severity": "safe"}}  # as severe: the latest one is kept
    low = {"hate": {"filtered": False, "severity": "low"}, "violence": {"filtered": False, "severity": "safe"}}
    env = _env(obfuscation=False)

    def chunk(delta, results, finish=None):
        return env.chunk(choices=[{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish,
                                   "content_filter_results": results}])

    objs = [env.chunk(choices=[], prompt_filter_results=[{"prompt_index": 0, "content_filter_results": safe}]),
            chunk({"role": "assistant", "content": ""}, {})]
    for r in range(12):
        objs += [chunk({"content": w}, safe) for w in ("a", "b")] + [chunk({"content": "c"}, also)]
    objs += [chunk({"content": w}, safe) for w in "de"] + [chunk({"content": "f"}, low)]
    objs += [chunk({"tool_calls": [{"index": 0, "id": "c1", "type": "function",
                                    "function": {"name": "f", "arguments": ""}}]}, safe)]
    for r in range(10):
        objs += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": w}}]}, res)
                 for w, res in (("{", safe), ("}", also))]
    objs += [chunk({}, safe, "stop"),
             env.chunk(id="", model="", choices=[{"index": 0, "finish_reason": None, "content_filter_offsets": {
                 "check_offset": 0, "start_offset": 0, "end_offset": 9}, "content_filter_results": low}]),
             "[DONE]"]
    events = _events(env, objs)
    fast, fast_chunks = outcomes(azure.StreamDecoder("azure"), events)
    general, general_chunks = outcomes(AzureGeneral("azure"), events)
    assert fast == general
    assert collected(fast_chunks) == collected(general_chunks)
    assert not shape_path_runs(azure.StreamDecoder("azure"), events)
    assert shape_path_runs(StreamDecoder("azure"), events)  # OpenAI's decoder would have


def _token_event(event) -> bool:
    try:
        obj = json.loads(event.data)
    except ValueError:
        return False
    choices = obj.get("choices") or []
    if len(choices) != 1 or choices[0].get("finish_reason") is not None:
        return False
    delta = choices[0].get("delta") or {}
    calls = delta.get("tool_calls") or [{}]
    return list(delta) == ["content"] or (list(delta) == ["tool_calls"] and set(calls[0]) == {"index", "function"})


@pytest.mark.parametrize("name", ["plain_text_with_usage.sse", "tool_call_single.sse"])
def test_recorded_streams_with_their_token_chunks_repeated(name):
    """A recorded OpenAI stream whose token chunks come many times over: as the general path, read by shape."""
    events = list(SSEFramer(iter([wire("openai_chat", name).read_bytes()])))
    tokens = [n for n, e in enumerate(events) if _token_event(e)]
    assert len(tokens) >= 5
    first, last = tokens[0], tokens[-1] + 1
    body = [e for e in events[first:last] for _ in range(3)]
    stream = events[:first] + body * 8 + events[last:]
    _, chunks = assert_same_as_general(stream)
    texts, arguments = [], []
    for e in stream:  # what the payloads say, read here without the decoder
        for c in (json.loads(e.data).get("choices") or []) if e.data != "[DONE]" else []:
            delta = c.get("delta") or {}
            texts.append(delta.get("content") or "")
            arguments += [(t.get("function") or {}).get("arguments") or "" for t in delta.get("tool_calls") or []]
    message = collected(chunks).choices[0].message
    if arguments:
        assert message.tool_calls[0].function.arguments == "".join(arguments)
    else:
        assert message.content.as_text() == "".join(texts)
    assert shape_path_runs(StreamDecoder("openai"), stream)
