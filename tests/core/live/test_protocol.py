"""The /live protocol's client messages: parse_start checks what the JSON Schema describes."""

from __future__ import annotations

import json

import pytest

from artalk_core.live.protocol import CloseCode, ProtocolError, StartMessage, is_end, parse_start, parse_text

jsonschema = pytest.importorskip("jsonschema")

GOOD = [
    {"type": "start"},
    {"type": "start", "sample_rate": 48000, "format": "f32le", "channels": 2, "style": "happy_1", "engine": "energy",
     "clip_length": 750, "fix_pose": True, "seed": 7, "token": "s3cret"},
    {"type": "start", "raw": True, "sample_rate": 8000},
]
BAD = [  # (message, words in the error, close code)
    ({"type": "start", "sample_rate": 0}, "sample_rate", CloseCode.INVALID),
    ({"type": "start", "sample_rate": 16000.5}, "integer", CloseCode.INVALID),
    ({"type": "start", "sample_rate": True}, "integer", CloseCode.INVALID),
    ({"type": "start", "format": "mp3"}, "format", CloseCode.INVALID),
    ({"type": "start", "channels": 9}, "channels", CloseCode.INVALID),
    ({"type": "start", "style": "../../etc/passwd"}, "not a path", CloseCode.INVALID),
    ({"type": "start", "style": ""}, "style", CloseCode.INVALID),
    ({"type": "start", "clip_length": -1}, "clip_length", CloseCode.INVALID),
    ({"type": "start", "fix_pose": "yes"}, "true or false", CloseCode.INVALID),
    ({"type": "start", "seed": 2**32}, "seed", CloseCode.INVALID),
    ({"type": "start", "stlye": "x"}, "unknown field(s) in the start message: stlye", CloseCode.INVALID),
    ({"type": "start", "token": 5}, "token", CloseCode.INVALID),
    ({"type": "hello"}, "first message must be the start message", CloseCode.UNSUPPORTED),
]


def validator() -> object:
    from artalk_core.schemas import load as load_schema

    schema = load_schema("live-client")
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("msg", GOOD)
def test_good_start_messages(msg: dict) -> None:
    start = parse_start(parse_text(json.dumps(msg)))
    assert isinstance(start, StartMessage)
    assert validator().is_valid(msg)  # type: ignore[attr-defined]
    assert start.sample_format in ("s16", "f32")


@pytest.mark.parametrize("msg, words, code", BAD)
def test_bad_start_messages(msg: dict, words: str, code: CloseCode) -> None:
    with pytest.raises(ProtocolError, match=words.replace("(", r"\(").replace(")", r"\)")) as e:
        parse_start(msg)
    assert e.value.code == code
    assert not validator().is_valid(msg)  # type: ignore[attr-defined]


def test_checks_beyond_the_schema() -> None:
    """Two rules the schema cannot say: raw excludes post-processing options; a rate whose
    resampling filter would be huge is refused (as for files)."""
    for msg, words in (({"type": "start", "raw": True, "fix_pose": True}, "raw"),
                       ({"type": "start", "sample_rate": 44101}, "cannot be resampled")):
        assert validator().is_valid(msg)  # type: ignore[attr-defined]
        with pytest.raises(ProtocolError, match=words):
            parse_start(msg)


@pytest.mark.parametrize("text, words, code", [
    ("{not json", "not valid JSON", CloseCode.INVALID),
    ("[" * 100_000 + "]" * 100_000, "at most", CloseCode.TOO_BIG),
    ("[" * 30_000 + "]" * 30_000, "nested too deep", CloseCode.INVALID),
    ('"start"', "JSON object", CloseCode.INVALID),
    ("1" * 5000, "not valid JSON", CloseCode.INVALID),
])
def test_malformed_text(text: str, words: str, code: CloseCode) -> None:
    with pytest.raises(ProtocolError, match=words) as e:
        parse_text(text)
    assert e.value.code == code


def test_later_messages() -> None:
    assert is_end({"type": "end"}) and validator().is_valid({"type": "end"})  # type: ignore[attr-defined]
    for msg, code in (({"type": "start"}, CloseCode.UNSUPPORTED), ({"type": "pause"}, CloseCode.UNSUPPORTED),
                      ({"type": "end", "now": True}, CloseCode.INVALID)):
        with pytest.raises(ProtocolError) as e:
            is_end(msg)
        assert e.value.code == code
