"""The two hot-path fast paths give exactly what the general path gives.

1. SSE framing (llmlib/framing.py): ``SSEFramer`` decodes a whole network read at
   once, builds an ``Event`` itself for a block that is one ``data:`` line, and
   has a faster loop still for a read whose blocks are all ``data: ...``; every
   other block goes to sseclient-py. Random streams (plain ``data: {json}``,
   ``data:`` without a space, empty data, comments, ``event:``/``id:``/``retry:``,
   unknown fields, multi-line data, non-ASCII and U+2028 text, runs of blank
   lines, LF/CRLF/CR line ends, a leading BOM, an unterminated tail) cut into
   random pieces (random cuts, empty pieces, one-byte pieces) must give the
   events of the spec (as sseclient-py reads a whole body), the byte offset of each
   event's block read right after the event, and the unterminated tail; invalid
   UTF-8 in the Nth event raises only after the N-1 before it, at its offset.
   Two regression tests keep a divergence the properties found (now fixed); two
   strict xfails keep a CRLF quirk of the general path they found.

2. The OpenAI stream decoder (llmlib/providers/openai.py): ``decode_object``'s
   fast path (one choice, no finish reason, no usage, a delta of only text or
   only tool calls) and ``tool_calls``' fast path (one piece continuing a call)
   must give the chunks, and the decoder state, of the general path.

   The general path is reached without editing the library, by a subclass whose
   ``decode_object`` (the documented hook Azure's decoder uses) hands the general
   code a ``choices`` list and tool-call dicts of subclasses of ``list`` and
   ``dict``: both fast paths test ``__class__ is list`` / ``is dict``, the general
   code only reads them. ``think_tags=True`` cannot serve as the reference: it
   holds back leading whitespace and any prefix of ``<think>`` (so the chunks
   differ), and once every choice's answer has started it turns itself off and
   the fast path runs again. ``test_the_references_really_take_the_general_path``
   checks that the reference never runs a fast-path line and that the fast
   decoder does. Random chunk sequences, and every OpenAI-shaped recorded stream
   in ../shared/wire, must give equal chunks (all fields, logprobs too),
   ``complete``/``ended`` after each, equal errors, and equal ``collect()``.
"""

from __future__ import annotations

import inspect
import json
import sys
from typing import Any, Dict, List, Optional, Tuple

import attrs
import pytest
import sseclient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmlib import collect
from llmlib.framing import Event, SSEFramer
from llmlib.providers import spec_for
from llmlib.providers.openai import StreamDecoder
from tests.conftest import WIRE

BOM = b"\xef\xbb\xbf"
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ================================================================ SSE framing

def pick(*strategies):
    """One of ``strategies``, each as likely (``st.one_of`` favours the first ones)."""
    return st.sampled_from(strategies).flatmap(lambda s: s)


SPECIALS = ["é", "日本語", "😀", "\u2028", "\u2029", "\u0085", "\x00", " ", ":", "data: ", "\t", "\ufeff", "\\"]
line_text = st.lists(st.one_of(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
                               st.sampled_from(SPECIALS)), max_size=8).map("".join)
payload = st.builds(lambda s, ascii_only: json.dumps({"choices": [{"delta": {"content": s}}]}, ensure_ascii=ascii_only),
                    line_text, st.booleans())
data_value = st.one_of(payload, line_text)

plain_block = st.builds(lambda p: ["data: " + p], st.one_of(payload, st.just("")))  # "data: " is empty data
nospace_block = st.builds(lambda v: ["data:" + v], data_value)
empty_block = st.sampled_from([["data:"], ["data: "], ["data"]])
comment_block = st.lists(st.builds(lambda t: ":" + t, line_text), min_size=1, max_size=2)
multi_data_block = st.lists(st.builds(lambda v: "data: " + v, data_value), min_size=2, max_size=3)
field_line = st.one_of(
    st.builds(lambda f, sep, v: f + ":" + sep + v,
              st.sampled_from(["event", "id", "retry", "data", "foo", "Data"]), st.sampled_from(["", " "]), line_text),
    st.builds(lambda t: ":" + t, line_text),  # a comment inside an event
    st.sampled_from(["data", "event", "id", " ", "\u2028"]),  # no colon; whitespace-only lines
)
fields_block = st.lists(field_line, min_size=1, max_size=4)

any_block_lines = pick(plain_block, nospace_block, empty_block, comment_block, multi_data_block, fields_block)
blank_run = st.sampled_from([0, 0, 0, 0, 1, 2, 3])  # extra blank lines before a block
tail_text = pick(st.just(b""), st.just(b"data: par"), st.just(b"data: {\"a\": 1}\n"), st.just(b": c"),
                 st.just(b"event: x\ndata: y\n"), st.just(b"data: \xff"),  # invalid UTF-8 in the tail: dropped
                 st.builds(lambda t: ("data: " + t).encode(), line_text))


def block_st(lines_st, endings):
    return st.fixed_dictionaries({"lines": lines_st, "end": st.sampled_from(endings), "blank": blank_run})


def expected_event(lines: List[str]) -> Optional[Tuple[str, str, Optional[str], Optional[str]]]:
    """(event, data, id, retry) of a block, as the spec (and sseclient-py) reads it,
    or None for a block that dispatches nothing (no ``data`` field)."""
    fields: Dict[str, Any] = {"event": "message", "data": "", "id": None, "retry": None}
    for line in lines:
        if not line.strip() or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name not in fields:
            continue
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            fields["data"] += value + "\n"
        else:
            fields[name] = value
    if not fields["data"]:
        return None
    return fields["event"] or "message", fields["data"][:-1], fields["id"], fields["retry"]


class Body:
    """A generated stream: its bytes, and for each block where it lies."""

    def __init__(self, blocks, bom=False, tail_blank=0, tail=b""):
        out = bytearray(BOM if bom else b"")
        self.blocks = []  # (expected event or None, line start, blank-line start, extra blank lines before)
        for block in blocks:
            end = block["end"]
            out += (end * block["blank"]).encode()
            start = len(out)
            for line in block["lines"]:
                out += (line + end).encode()
            self.blocks.append((expected_event(block["lines"]), start, len(out), block["blank"]))
            out += end.encode()
        self.complete = len(out)  # where the terminated part ends
        out += b"\n" * tail_blank
        self.tail_start = len(out)
        out += tail
        self.tail, self.tail_blank = tail, tail_blank
        self.raw = bytes(out)
        self.bom = bom
        self.lf_only = b"\r" not in self.raw
        self.cr_only_endings = any(b["end"] == "\r" for b in blocks)

    @property
    def events(self):
        return [e for e, *_ in self.blocks if e is not None]

    def check_offsets(self, offsets: List[int]) -> None:
        """Each event's ``block_offset`` is where its block begins, in bytes (a BOM
        counted). A block begins after the blank line that ended the event before,
        with the line ends of a run of blank lines paired from the left as a reader
        going forward pairs them (the general path's regex): so after an odd number
        of extra blank lines the block begins one byte before its first line, at an
        unpaired LF. Exact for LF streams; with CR line ends, only within the blank
        lines before the first line (see the CRLF xfail below)."""
        rows = [(start, blank, previous) for (event, start, _, blank), previous
                in zip(self.blocks, self._previous_blank()) if event is not None]
        assert len(offsets) == len(rows)
        for n, (offset, (start, blank, previous)) in enumerate(zip(offsets, rows)):
            if self.lf_only:
                assert offset == start - blank % 2, (n, offset, start, blank)
            else:
                assert previous < offset <= start, (n, offset, previous, start)
                assert self.raw[offset:start].strip(b"\r\n") == b"", (n, offset, start)

    def check_leftover(self, leftover: bytes) -> None:
        """``leftover`` is the unterminated tail (with the unpaired LF of an odd run of
        blank lines before it, as for a block), or b"" when it is only blank lines."""
        if not self.tail.strip(b" \t\r\n"):
            assert leftover == b""
        elif self.lf_only:
            assert leftover == self.raw[self.tail_start - self.tail_blank % 2:]
        else:
            assert self.raw.endswith(leftover) and len(leftover) >= len(self.tail)
            assert self.raw[len(self.raw) - len(leftover):self.tail_start].strip(b"\r\n") == b""

    def _previous_blank(self):
        previous = (len(BOM) if self.bom else 0) - 1
        for _, _, blank_start, _ in self.blocks:
            yield previous
            previous = blank_start

    def reference_events(self):
        """sseclient-py's own reading of the terminated part of the body (LF/CRLF only:
        its reader mishandles CR line ends and a leading BOM)."""
        body = self.raw[len(BOM) if self.bom else 0:self.complete]
        return [(e.event, e.data, e.id, e.retry) for e in sseclient.SSEClient(iter([body])).events()]


def pieces_of(raw: bytes, cuts: List[int], empties: bool, bytewise: bool) -> List[bytes]:
    if bytewise:
        pieces = [raw[i:i + 1] for i in range(len(raw))]
    else:
        points = sorted({c % (len(raw) + 1) for c in cuts})
        pieces = [raw[a:b] for a, b in zip([0] + points, points + [len(raw)])]
    if empties:
        pieces = [p for piece in pieces for p in (b"", piece)] + [b""]
    return pieces


def read(pieces):
    """(events as (event, data, id, retry), block_offset read right after each, the framer)."""
    framer = SSEFramer(iter(pieces))
    got, offsets = [], []
    for e in framer:
        got.append((e.event, e.data, e.id, e.retry))
        offsets.append(framer.block_offset)
    return got, offsets, framer


cuts_st = st.lists(st.integers(min_value=0, max_value=100_000), max_size=12)
split_st = st.fixed_dictionaries({"cuts": cuts_st, "empties": st.booleans(),
                                  "bytewise": st.sampled_from([False, False, False, True])})


@settings(max_examples=300, **SETTINGS)
@given(blocks=st.lists(block_st(any_block_lines, ["\n", "\n", "\r\n", "\r"]), max_size=8),
       lf_only=st.sampled_from([True, True, False]),  # one CR anywhere sends the rest to the general path
       bom=st.booleans(), tail_blank=st.integers(0, 3), tail=tail_text, split=split_st)
def test_property_mixed_streams_in_any_pieces_give_the_spec_events_offsets_and_tail(blocks, lf_only, bom, tail_blank,
                                                                                 tail, split):
    if lf_only:
        blocks = [dict(b, end="\n") for b in blocks]
    body = Body(blocks, bom, tail_blank, tail)
    got, offsets, framer = read(pieces_of(body.raw, **split))
    assert got == body.events
    if not body.cr_only_endings:
        assert got == body.reference_events()
    body.check_offsets(offsets)
    body.check_leftover(framer.leftover)


@settings(max_examples=200, **SETTINGS)
@given(blocks=st.lists(block_st(plain_block, ["\n"]).map(lambda b: dict(b, blank=0)), max_size=10),
       bom=st.booleans(), tail=st.sampled_from([b"", b"data: {\"par", b"data: x\n", "data: é".encode()[:-1]]),
       split=split_st)
def test_property_uniform_reads_give_the_spec_events_and_exact_byte_offsets(blocks, bom, tail, split):
    # Every block is "data: ...": whole reads take the fastest loop.
    body = Body(blocks, bom, 0, tail)
    got, offsets, framer = read(pieces_of(body.raw, **split))
    assert got == body.events == body.reference_events()
    assert offsets == [start for _, start, _, _ in body.blocks]  # bytes, not characters; the BOM counted
    assert framer.leftover == tail


BAD = [b"\xff", b"\xfe", b"\x80", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80"]


@settings(max_examples=200, **SETTINGS)
@given(before=st.lists(block_st(any_block_lines, ["\n", "\n", "\r\n"]), max_size=5),
       bad=block_st(st.one_of(plain_block, multi_data_block, fields_block, comment_block), ["\n", "\r\n"]),
       after=st.lists(block_st(any_block_lines, ["\n"]), max_size=3),
       where=st.tuples(st.integers(0, 100), st.integers(0, 100)), junk=st.sampled_from(BAD),
       bom=st.booleans(), split=split_st)
def test_property_invalid_utf8_raises_at_its_event_after_the_earlier_ones(before, bad, after, where, junk, bom,
                                                                         split):
    if before:  # the blank line that ends the event before the bad one is one LF line end
        before[-1] = dict(before[-1], end="\n")
    bad = dict(bad, blank=0)
    marker = "\U0010fffd"  # a placeholder character, replaced by the invalid bytes
    lines = list(bad["lines"])
    i = where[0] % len(lines)
    at = where[1] % (len(lines[i]) + 1)
    lines[i] = lines[i][:at] + marker + lines[i][at:]
    body = Body(before + [dict(bad, lines=lines)] + after, bom)
    raw = body.raw.replace(marker.encode(), junk)
    assert raw.count(junk) >= 1 and marker.encode() not in raw
    bad_start = body.blocks[len(before)][1]
    earlier = Body(before, bom)

    framer = SSEFramer(iter(pieces_of(raw, **split)))
    got, offsets = [], []
    with pytest.raises(UnicodeDecodeError):
        for e in framer:
            got.append((e.event, e.data, e.id, e.retry))
            offsets.append(framer.block_offset)
    assert got == earlier.events
    earlier.check_offsets(offsets)
    assert framer.block_offset == bad_start


def test_examples_of_each_kind_of_block():
    raw = ("\ufeffdata: {\"a\": \"\u2028é\"}\n\n"
           "data:{\"b\":1}\n\n"
           "data:\n\n"
           ": keep-alive\n\n"
           "event: delta\nid: 7\nretry: 10\ndata: x\n\n"
           "data: a\ndata: b\n\n"
           "data: 日本\n\n").encode()
    got, offsets, framer = read([raw])
    assert got == [("message", "{\"a\": \"\u2028é\"}", None, None), ("message", "{\"b\":1}", None, None),
                   ("message", "", None, None), ("delta", "x", "7", "10"), ("message", "a\nb", None, None),
                   ("message", "日本", None, None)]
    assert offsets == [3, 25, 39, 60, 98, 115]  # bytes: U+2028 is 3, é 2, 日 3
    assert [raw[o:o + 4] for o in offsets] == [b"data", b"data", b"data", b"even", b"data", b"data"]
    assert read([raw[i:i + 1] for i in range(len(raw))])[:2] == (got, offsets)


def test_a_one_data_line_event_is_the_framers_own_event():
    events = list(SSEFramer(iter([b"data: a\n\ndata: b\n\n", b"data:c\n\n: x\n\n"])))
    assert all(type(e) is Event for e in events)
    assert [(e.event, e.data, e.id, e.retry) for e in events] == [("message", d, None, None) for d in "abc"]


# Found by the properties above: the fast path once paired a run of 3+ LFs from the
# right (rfind), so offsets and the leftover depended on where reads were cut (fixed
# in d93c9d3). The events were the same either way.

def test_block_offset_after_a_blank_line_run_does_not_depend_on_the_reads():
    raw = b"data: a\n\n\ndata: b\n\n\n\n\ndata: c\n\n"
    whole = read([raw])[:2]
    assert whole == ([("message", d, None, None) for d in "abc"], [0, 9, 21])  # the unpaired LF opens the block
    for cut in range(len(raw) + 1):
        assert read([raw[:cut], raw[cut:]])[:2] == whole, cut
    assert read([raw[i:i + 1] for i in range(len(raw))])[:2] == whole


def test_leftover_after_a_blank_line_run_does_not_depend_on_the_reads():
    raw = b"data: a\n\n\ndata: b\n"
    for cut in range(len(raw) + 1):
        assert read([raw[:cut], raw[cut:]])[2].leftover == b"\ndata: b\n", cut


# Found by the mixed property (so it checks CR streams' offsets and leftover only
# loosely): not the fast path's doing, the general path has done it since before.

@pytest.mark.xfail(strict=True, reason=(
    "general path (before the fast path too): when a read ends between the CR and the LF of the CRLF blank "
    "line that ends an event, the regex ends the event at the CR, so the next event's block begins at that "
    "LF: its block_offset is one byte early (10, not 11)"))
def test_crlf_split_at_an_events_end_does_not_move_the_next_offset():
    raw = b"data: a\r\n\r\ndata: b\r\n\r\n"
    for cut in range(len(raw) + 1):
        assert read([raw[:cut], raw[cut:]])[1] == [0, 11], cut  # cut=10 gives [0, 10]


@pytest.mark.xfail(strict=True, reason=(
    "general path (before the fast path too): the same split CRLF puts its LF at the start of the leftover "
    "(b'\\ndata: b\\r\\n', not b'data: b\\r\\n')"))
def test_crlf_split_at_an_events_end_does_not_change_the_leftover():
    raw = b"data: a\r\n\r\ndata: b\r\n"
    for cut in range(len(raw) + 1):
        assert read([raw[:cut], raw[cut:]])[2].leftover == b"data: b\r\n", cut  # cut=10 gives b"\ndata: b\r\n"


# ================================================================ the OpenAI stream decoder

class _List(list):
    """A list the fast path does not take (it tests ``__class__ is list``)."""


class _Dict(dict):
    """A dict the tool-call fast path does not take (it tests ``__class__ is dict``)."""


def _off_the_fast_paths(obj: Dict[str, Any]) -> Dict[str, Any]:
    choices = obj.get("choices")
    if choices.__class__ is not list:
        return obj
    out = []
    for c in choices:
        d = c.get("delta") if c.__class__ is dict else None
        if d.__class__ is dict and d.get("tool_calls").__class__ is list:
            d = dict(d, tool_calls=[_Dict(t) if t.__class__ is dict else t for t in d["tool_calls"]])
            c = dict(c, delta=d)
        out.append(c)
    return dict(obj, choices=_List(out))


class GeneralPath(StreamDecoder):
    """The same decoder, every chunk through the general path (decode_chunk, then
    the finish-reason, tool-call and reasoning-detail bookkeeping)."""

    __slots__ = ()

    def decode_object(self, obj, data):
        return super().decode_object(_off_the_fast_paths(obj), data)


def outcomes(decoder: StreamDecoder, events) -> Tuple[list, list]:
    """What the decoder gives for each event: the chunk (and a deep copy of all its
    fields, logprobs too, which chunk equality ignores) with ``complete`` and
    ``ended`` after it, or the error (type and message); stops at the first error,
    as a stream does. Also the chunks themselves."""
    out, chunks = [], []
    for event in events:
        try:
            chunk = decoder.decode(event)
        except Exception as exc:  # noqa: BLE001 - compared by type and message
            out.append(("error", type(exc), str(exc)))
            break
        out.append((chunk, None if chunk is None else attrs.asdict(chunk), decoder.complete, decoder.ended))
        if chunk is not None:
            chunks.append(chunk)
    return out, chunks


def collected(chunks):
    try:
        return collect(chunks)
    except Exception as exc:  # noqa: BLE001
        return ("error", type(exc), str(exc))


def assert_same_as_general(events, provider="openai", choices=1, think_tags=False):
    """The fast decoder and the general path give equal chunks, states, errors and collect()."""
    fast, fast_chunks = outcomes(StreamDecoder(provider, choices, think_tags=think_tags), events)
    general, general_chunks = outcomes(GeneralPath(provider, choices, think_tags=think_tags), events)
    assert fast == general
    assert collected(fast_chunks) == collected(general_chunks)
    return fast, fast_chunks


words = st.lists(st.one_of(st.characters(blacklist_categories=("Cs",)), st.sampled_from(SPECIALS)),
                 max_size=5).map("".join)
content_text = st.one_of(words, st.sampled_from(["", " ", "\n", "<think>", "<thi", "nk>", "</think>", "ok"]))
args_text = st.sampled_from(['{"city"', ': "Paris"}', "{}", " ", '"é\u2028"'])
function_st = st.fixed_dictionaries({}, optional={
    "name": st.one_of(st.none(), st.sampled_from(["get_weather", "lookup"])),
    "arguments": st.one_of(st.none(), st.just(""), args_text)})
tool_piece = st.one_of(
    # the common piece: more arguments of a call already started (or not started)
    st.builds(lambda i, a: {"index": i, "function": {"arguments": a}}, st.integers(0, 2), args_text),
    st.fixed_dictionaries({}, optional={
        "index": st.integers(0, 2), "id": st.one_of(st.none(), st.sampled_from(["call_1", "call_2"])),
        "type": st.one_of(st.none(), st.just("function")), "function": function_st}),
)
usage_st = st.fixed_dictionaries({"prompt_tokens": st.integers(0, 50), "completion_tokens": st.integers(0, 50)},
                                 optional={"total_tokens": st.integers(0, 100),
                                           "completion_tokens_details": st.just({"reasoning_tokens": 3}),
                                           "prompt_tokens_details": st.just({"cached_tokens": 2}),
                                           "cost": st.just(0.01)})
detail_st = st.fixed_dictionaries({"type": st.sampled_from(["reasoning.text", "reasoning.encrypted"]),
                                   "index": st.integers(0, 1)},
                                  optional={"text": words, "signature": st.sampled_from(["", "sig"])})
delta_st = pick(
    st.builds(lambda s: {"content": s}, content_text),  # fast path
    st.builds(lambda calls: {"tool_calls": calls}, st.lists(tool_piece, min_size=1, max_size=2)),  # fast path
    st.fixed_dictionaries({}, optional={
        "role": st.just("assistant"),
        "content": st.one_of(st.none(), content_text),
        "refusal": st.one_of(st.none(), words),
        "reasoning_content": st.one_of(st.none(), words),
        "reasoning": words,
        "tool_calls": st.one_of(st.none(), st.just([]), st.lists(tool_piece, max_size=2)),
        "channel": st.just("analysis"),  # a delta key llmlib does not map
    }),
    st.fixed_dictionaries({"content": st.just([{"type": "thinking", "thinking": [{"type": "text", "text": "hm"}]},
                                              {"type": "text", "text": "ok"}])}),  # Magistral parts
    st.sampled_from([{}, None]),
)
# OpenRouter's reasoning details turn the fast path off for the rest of the answer: rare.
delta_st = st.integers(0, 24).flatmap(lambda n: delta_st if n else st.fixed_dictionaries(
    {"reasoning_details": st.lists(detail_st, min_size=1, max_size=2)}, optional={"reasoning": words}))
finish_st = st.one_of(st.none(), st.sampled_from(["stop", "length", "tool_calls", "content_filter", "function_call",
                                                  "eos", "end_turn", "max_tokens", "weird"]))
logprobs_st = st.one_of(st.none(), st.just({"content": [{"token": "a", "logprob": -0.5, "bytes": [97]}]}))


def choice_st(index):
    return st.fixed_dictionaries({"delta": delta_st}, optional={
        "index": index, "finish_reason": finish_st, "logprobs": logprobs_st,
        "native_finish_reason": st.just("STOP")})


# The chunk sent once per token: what the fast paths are for.
token_chunk_st = st.builds(
    lambda delta, extra, logprobs: {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                    **extra, "choices": [{"index": 0, "delta": delta, **logprobs,
                                                          "finish_reason": None}]},
    st.one_of(st.builds(lambda s: {"content": s}, content_text),
              st.builds(lambda i, a: {"tool_calls": [{"index": i, "function": {"arguments": a}}]},
                        st.integers(0, 2), args_text)),
    st.fixed_dictionaries({}, optional={"obfuscation": st.text("abcXYZ", max_size=4),
                                        "service_tier": st.just("default"), "usage": st.none(),
                                        "system_fingerprint": st.just("fp_1")}),
    st.fixed_dictionaries({}, optional={"logprobs": logprobs_st}),
)
any_chunk_st = st.fixed_dictionaries(
    {"choices": pick(
        st.lists(choice_st(st.just(0)), min_size=1, max_size=1),
        st.lists(choice_st(st.just(0)), min_size=1, max_size=1),
        st.lists(choice_st(st.integers(0, 2)), max_size=3))},
    optional={
        "id": st.sampled_from(["chatcmpl-1", ""]), "object": st.just("chat.completion.chunk"),
        "created": st.integers(0, 2 ** 31), "model": st.sampled_from(["gpt-4o", "m"]),
        "system_fingerprint": st.one_of(st.none(), st.just("fp_1")),
        "usage": st.one_of(st.none(), st.just({}), usage_st),
        "obfuscation": st.text("abcXYZ", max_size=4), "service_tier": st.just("default"),
        "x_groq": st.one_of(st.just({"id": "req_1"}), st.builds(lambda u: {"id": "req_1", "usage": u}, usage_st)),
        "error": st.none(),
    })


def _twisted(chunk: Dict[str, Any], twist: Tuple[str, Any]) -> Dict[str, Any]:
    """A token chunk with one thing that should send it off the fast path (or not)."""
    chunk = json.loads(json.dumps(chunk))
    c = chunk["choices"][0]
    d = c["delta"]
    calls = d.get("tool_calls")
    kind, value = twist
    if kind == "top":  # usage, Groq's usage, "error": null
        chunk.update(value)
    elif kind == "choice":  # a finish reason, another index, logprobs, a key llmlib does not map
        c.update(value)
    elif kind == "delta":  # role, refusal, reasoning, null content beside the tool calls...
        d.update(value)
    elif kind == "piece" and calls:  # id, type, no index, an index not started...
        calls[0].update(value)
        if calls[0]["index"] is None:
            del calls[0]["index"]
    elif kind == "function" and calls:  # a name, empty or null arguments
        calls[0]["function"].update(value)
    elif kind == "pieces" and calls:
        calls.append({"index": value, "function": {"arguments": "x"}})
    elif kind == "choices":
        chunk["choices"].append(dict(c, index=value))
    return chunk


finishes = st.sampled_from(["stop", "length", "tool_calls", "content_filter", "function_call", "eos", "end_turn",
                            "max_tokens", "weird"])
twist_st = pick(
    st.tuples(st.just("top"), st.builds(lambda u: {"usage": u}, usage_st)),
    st.tuples(st.just("top"), st.builds(lambda u: {"x_groq": {"id": "r", "usage": u}}, usage_st)),
    st.tuples(st.just("top"), st.sampled_from([{"usage": None}, {"usage": {}}, {"error": None}])),
    st.tuples(st.just("choice"), st.builds(lambda f: {"finish_reason": f}, finishes)),
    st.tuples(st.just("choice"), st.builds(lambda i: {"index": i}, st.integers(1, 2))),
    st.tuples(st.just("choice"), st.sampled_from([{"native_finish_reason": None}, {"delta": None}])),
    st.tuples(st.just("delta"), st.sampled_from([{"role": "assistant"}, {"refusal": None}, {"refusal": "no"},
                                                 {"reasoning_content": "hm"}, {"reasoning": "hm"}, {"content": None},
                                                 {"content": ""}, {"tool_calls": None}, {"channel": "final"}])),
    st.tuples(st.just("piece"), st.sampled_from([{"id": "call_1"}, {"id": None}, {"type": "function"},
                                                 {"index": None}, {"index": 7}, {"extra": 1}])),
    st.tuples(st.just("function"), st.sampled_from([{"name": "f"}, {"name": None}, {"arguments": ""},
                                                    {"arguments": None}, {"extra": 1}])),
    st.tuples(st.just("pieces"), st.integers(0, 2)),
    st.tuples(st.just("choices"), st.integers(0, 2)),
)
twisted_chunk_st = st.builds(_twisted, token_chunk_st, twist_st)
chunk_st = pick(any_chunk_st, token_chunk_st, twisted_chunk_st, twisted_chunk_st)


def _tool_story(index, starts, pieces, repeat, finish, usage):
    """A realistic tool-call answer: role, each call's first piece (arguments "",
    null or absent), argument pieces (the fast path; some providers repeat the
    call's id, type or name on each), the finish, the usage chunk."""
    def chunk(delta, reason=None):
        return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": reason}]}

    out = [chunk({"role": "assistant", "content": None})]
    for i, (start, more) in enumerate(zip(starts, pieces)):
        function = {"name": "f"} if start == "absent" else {"name": "f", "arguments": start}
        out.append(chunk({"tool_calls": [{"index": i, "id": f"call_{i}", "type": "function", "function": function}]}))
        again = {"id": {"id": f"call_{i}"}, "type": {"type": "function"}}.get(repeat, {})
        name = {"name": "f"} if repeat == "name" else {}
        out += [chunk({"tool_calls": [{"index": i, **again, "function": {**name, "arguments": a}}]}) for a in more]
    out.append(chunk({}, finish))
    if usage is not None:
        out.append({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                    "choices": [], "usage": usage})
    return out


tool_story_st = st.builds(
    _tool_story, st.integers(0, 1), st.lists(st.sampled_from(["", None, "absent", "{"]), min_size=1, max_size=2),
    st.lists(st.lists(args_text, max_size=3), min_size=2, max_size=2), st.sampled_from([None, "id", "type", "name"]),
    st.sampled_from(["tool_calls", "stop", None]),
    st.one_of(st.none(), usage_st))
chunks_st = pick(
    st.lists(chunk_st, min_size=1, max_size=12),
    st.builds(lambda a, story, b: a + story + b, st.lists(chunk_st, max_size=3), tool_story_st,
              st.lists(chunk_st, max_size=3)),
)


@settings(max_examples=300, **SETTINGS)
@given(chunks=chunks_st, done=st.booleans(), ascii_only=st.booleans(),
       choices=st.integers(1, 3), think_tags=st.sampled_from([False, False, True]))
def test_property_openai_fast_paths_give_the_general_paths_chunks(chunks, done, ascii_only, choices, think_tags):
    datas = [json.dumps(c, ensure_ascii=ascii_only) for c in chunks] + (["[DONE]"] if done else [])
    assert_same_as_general([Event(d) for d in datas], choices=choices, think_tags=think_tags)


def test_openai_fast_path_examples():
    text = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "system_fingerprint": "fp",
            "obfuscation": "xyz", "service_tier": "default",
            "choices": [{"index": 0, "delta": {"content": "Hé\u2028"}, "logprobs": {"content": []},
                         "finish_reason": None}]}
    start = {"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]}}]}
    more = {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\""}}]}}]}
    end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}],
           "x_groq": {"id": "r", "usage": {"prompt_tokens": 1, "completion_tokens": 2}}}
    events = [Event(json.dumps(o)) for o in (text, start, more, more, end)] + [Event("[DONE]")]
    got, chunks = assert_same_as_general(events)
    assert len(chunks) == 5 and got[-1] == (None, None, True, True)  # [DONE]: no chunk, ended
    assert chunks[0].text == "Hé\u2028" and chunks[0].choices[0].logprobs == {"content": []}
    assert chunks[0].provider_fields == {"obfuscation": "xyz", "service_tier": "default"}
    assert chunks[2].choices[0].delta.tool_calls[0].function.arguments == "{\"a\""
    assert chunks[4].usage.completion_tokens == 2 and got[4][2]  # Groq's usage; complete
    assert collect(chunks).choices[0].message.tool_calls[0].function.arguments == "{\"a\"{\"a\""
    # A call whose arguments never came gets "{}" on the finishing chunk, on both paths.
    _, chunks = assert_same_as_general([Event(json.dumps(start)), Event(json.dumps(end))])
    assert chunks[1].choices[0].delta.tool_calls[0].function.arguments == "{}"


# -------------------------------------------------------- the references do avoid the fast paths

def _line_of(function, snippet: str) -> int:
    lines, first = inspect.getsourcelines(function)
    found = [first + n for n, line in enumerate(lines) if snippet in line]
    assert len(found) == 1, f"{snippet!r} not found once in {function.__qualname__}: the fast path changed"
    return found[0]


def _lines_run(code, run) -> set:
    hit: set = set()

    def local(frame, event, arg):
        if event == "line":
            hit.add(frame.f_lineno)
        return local

    def tracer(frame, event, arg):
        return local if frame.f_code is code else None

    old = sys.gettrace()
    sys.settrace(tracer)
    try:
        run()
    finally:
        sys.settrace(old)
    return hit


def test_the_references_really_take_the_general_path():
    text_fast = _line_of(StreamDecoder.decode_object, "delta = Delta(None, content)")
    calls_fast = _line_of(StreamDecoder.tool_calls, "return [ToolCallDelta(index, None, None, FunctionCallDelta(")
    datas = [json.dumps({"choices": [{"index": 0, "delta": d}]}) for d in (
        {"content": "a"},
        {"tool_calls": [{"index": 0, "id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]})]
    for cls, taken in ((StreamDecoder, True), (GeneralPath, False)):
        decoder = cls("openai")
        run = lambda: [decoder.decode(Event(d)) for d in datas]  # noqa: E731
        assert (text_fast in _lines_run(StreamDecoder.decode_object.__code__, run)) is taken, cls
        decoder = cls("openai")
        assert (calls_fast in _lines_run(StreamDecoder.tool_calls.__code__, run)) is taken, cls

    # And the framer's two fast loops run for the streams the properties make.
    uniform = _line_of(SSEFramer.__iter__, "yield new(Event, (block[6:],))")
    mixed = _line_of(SSEFramer.__iter__, "yield new(Event, (block[6:] if block.startswith(")
    code = SSEFramer.__iter__.__code__
    assert uniform in _lines_run(code, lambda: list(SSEFramer(iter([b"data: a\n\ndata: b\n\n"]))))
    assert mixed in _lines_run(code, lambda: list(SSEFramer(iter([b"data: a\n\n: c\n\ndata:b\n\n"]))))


# -------------------------------------------------------- every recorded OpenAI-shaped stream

FOLDERS = {"openai_chat": "openai", "groq": "groq", "deepseek": "deepseek", "mistral": "mistral",
           "openrouter": "openrouter", "zhipu_zai": "zhipu"}
TRANSCRIPTS = sorted(f"{folder}/{p.name}" for folder in FOLDERS for p in (WIRE / folder).glob("*.sse"))


@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_recorded_streams_give_the_general_paths_chunks(name):
    folder = name.split("/")[0]
    provider = FOLDERS[folder]
    events = list(SSEFramer(iter([(WIRE / name).read_bytes()])))
    payloads = []
    for e in events:
        try:
            payloads.append(json.loads(e.data))
        except ValueError:
            if e.data != "[DONE]":
                pytest.skip(f"not OpenAI chunks: {e.data[:40]!r}")
    if not all(isinstance(p, dict) and ("choices" in p or "error" in p) for p in payloads):
        pytest.skip("not OpenAI chunks")
    n = len({c.get("index", 0) for p in payloads for c in (p.get("choices") or ())}) or 1
    for think_tags in sorted({False, spec_for(provider).think_tags}):
        got, chunks = assert_same_as_general(events, provider, n, think_tags)
        assert chunks
        # Whole and in pieces: the same chunks again after SSE framing in 7-byte reads.
        raw = (WIRE / name).read_bytes()
        again, _ = assert_same_as_general(list(SSEFramer(iter([raw[i:i + 7] for i in range(0, len(raw), 7)]))),
                                          provider, n, think_tags)
        assert again == got
