"""The ``/live`` WebSocket protocol: the client's messages, their checks, and the close codes.

The client sends, in order (JSON Schema: ``artalk_core/schemas/live-client.schema.json``):

1. a text message ``{"type": "start", "sample_rate": 16000, "format": "s16le", "channels": 1,
   "style": "default", "engine": "artalk", "clip_length": 0, "fix_pose": false, "raw": false,
   "seed": 0, "token": "..."}`` (every field but ``type`` optional);
2. binary messages of PCM (interleaved little-endian ``s16le`` or ``f32le``), of any size;
3. a text message ``{"type": "end"}`` (closing the socket instead abandons the stream).

The server answers with text messages, each one line of the motion stream
(:mod:`artalk_core.formats.motion_stream`): the header at once, frame lines as soon as they are
final, then the end line and a normal close, or an error line ``{"error": "..."}`` and a close with
one of :class:`CloseCode`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from artalk_core.constants import LIVE_MAX_BINARY_BYTES as MAX_BINARY_BYTES
from artalk_core.constants import LIVE_MAX_FRAME_BYTES as MAX_FRAME_BYTES
from artalk_core.constants import LIVE_MAX_TEXT_BYTES as MAX_TEXT_BYTES
from artalk_core.errors import InputError

FORMATS: dict[str, str] = {"s16le": "s16", "f32le": "f32"}
"""Protocol sample formats -> :class:`~artalk_core.audio.pcm.PcmLayout` sample formats."""
MAX_CHANNELS: int = 8
RATE_RANGE: tuple[int, int] = (1000, 384_000)
START_FIELDS: tuple[str, ...] = ("type", "sample_rate", "format", "channels", "style", "engine", "clip_length",
                                 "fix_pose", "raw", "seed", "token")
_STYLE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,99}$")


class CloseCode(IntEnum):
    """WebSocket close codes of the protocol (the reason says the same as the error line)."""

    NORMAL = 1000
    """The end line was sent."""
    GOING_AWAY = 1001
    """The server is shutting down (SIGTERM, Ctrl+C)."""
    UNSUPPORTED = 1003
    """A message of the wrong kind: audio before the start message, text other than start/end."""
    INVALID = 1007
    """An invalid message or audio: malformed JSON, a bad option, an unknown style, too short."""
    POLICY = 1008
    """Refused: a missing or wrong token (a foreign Origin is refused before: HTTP 403)."""
    TOO_BIG = 1009
    """A message over the size limit."""
    SERVER_ERROR = 1011
    """The server failed (a bug: the error line says so, without details)."""
    BUSY = 1013
    """``--max-streams`` streams are running: try again later."""
    IDLE = 4000
    """No message from the client for the idle timeout."""
    TOO_SLOW = 4001
    """The client did not read its frames: the bounded send queue filled, the stream was dropped."""


class ProtocolError(InputError):
    """A message the protocol does not allow; ``code`` is the close code."""

    def __init__(self, message: str, code: CloseCode = CloseCode.INVALID) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class StartMessage:
    """A checked start message (the defaults are the protocol's)."""

    sample_rate: int = 16000
    format: str = "s16le"
    channels: int = 1
    style: str = "default"
    engine: str | None = None
    clip_length: int = 0
    fix_pose: bool = False
    raw: bool = False
    seed: int = 0
    token: str | None = None

    @property
    def sample_format(self) -> str:
        return FORMATS[self.format]


def parse_text(text: str) -> dict[str, Any]:
    """A text message -> its JSON object; ProtocolError for one that is too big, not JSON, nested
    too deep, or not an object."""
    if len(text) > MAX_TEXT_BYTES:
        raise ProtocolError(f"a text message may hold at most {MAX_TEXT_BYTES} characters, got {len(text)}",
                            CloseCode.TOO_BIG)
    try:
        obj = json.loads(text)
    except RecursionError:
        raise ProtocolError("the message is nested too deep to be a protocol message") from None
    except json.JSONDecodeError as e:
        raise ProtocolError(f"the message is not valid JSON ({e.msg} at character {e.pos})") from None
    except ValueError as e:  # numbers too long to convert, and the like
        raise ProtocolError(f"the message is not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"a text message must be a JSON object with a \"type\", got {type(obj).__name__}")
    return obj


def _int(obj: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"\"{key}\" must be an integer, got {json.dumps(value)[:40]}")
    if not lo <= value <= hi:
        raise ProtocolError(f"\"{key}\" must be between {lo} and {hi}, got {value}")
    return value


def _bool(obj: dict[str, Any], key: str) -> bool:
    value = obj.get(key, False)
    if not isinstance(value, bool):
        raise ProtocolError(f"\"{key}\" must be true or false, got {json.dumps(value)[:40]}")
    return value


def _str(obj: dict[str, Any], key: str, default: str | None, limit: int = 200) -> str | None:
    if key not in obj:
        return default
    value = obj[key]
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ProtocolError(f"\"{key}\" must be a non-empty string of at most {limit} characters")
    return value


def parse_start(obj: dict[str, Any]) -> StartMessage:
    """Check a start message's fields (see the module docstring); ProtocolError names the first problem."""
    if obj.get("type") != "start":
        raise ProtocolError("the first message must be the start message, {\"type\": \"start\", ...}",
                            CloseCode.UNSUPPORTED)
    unknown = sorted(set(obj) - set(START_FIELDS))
    if unknown:
        raise ProtocolError(f"unknown field(s) in the start message: {', '.join(u[:40] for u in unknown[:5])} "
                            f"(known: {', '.join(START_FIELDS[1:])})")
    fmt = _str(obj, "format", "s16le", 10)
    if fmt not in FORMATS:
        raise ProtocolError(f"\"format\" must be one of {', '.join(FORMATS)}, got {json.dumps(fmt)[:40]}")
    rate = _int(obj, "sample_rate", 16000, *RATE_RANGE)
    from artalk_core.audio.resample import check_rate

    try:
        check_rate(rate)
    except ValueError as e:
        raise ProtocolError(str(e)) from None
    style = _str(obj, "style", "default", 100)
    assert style is not None
    if not _STYLE_NAME.match(style):
        raise ProtocolError("\"style\" must be a style name of the server (letters, digits, _ . + -), not a path")
    msg = StartMessage(sample_rate=rate, format=fmt, channels=_int(obj, "channels", 1, 1, MAX_CHANNELS),
                       style=style, engine=_str(obj, "engine", None, 50),
                       clip_length=_int(obj, "clip_length", 0, 0, 2**31 - 1), fix_pose=_bool(obj, "fix_pose"),
                       raw=_bool(obj, "raw"), seed=_int(obj, "seed", 0, 0, 2**32 - 1),
                       token=_str(obj, "token", None, 1000))
    if msg.raw and (msg.clip_length or msg.fix_pose):
        raise ProtocolError("\"clip_length\" and \"fix_pose\" apply at post-processing: they cannot go with \"raw\"")
    return msg


def is_end(obj: dict[str, Any]) -> bool:
    """Whether a (later) text message is the end message; ProtocolError for any other."""
    kind = obj.get("type")
    if kind == "end":
        if set(obj) - {"type"}:
            raise ProtocolError("the end message has no fields besides \"type\"")
        return True
    if kind == "start":
        raise ProtocolError("the stream has already started (one start message per connection)",
                            CloseCode.UNSUPPORTED)
    raise ProtocolError(f"unknown message type {json.dumps(kind)[:40]}: after the start message send audio "
                        "(binary) and then {\"type\": \"end\"}", CloseCode.UNSUPPORTED)


def close_code(error: BaseException) -> CloseCode:
    """The close code for a stream that failed with ``error``."""
    if isinstance(error, ProtocolError):
        return error.code
    if isinstance(error, InputError):
        return CloseCode.INVALID
    return CloseCode.SERVER_ERROR


def error_line(message: str) -> str:
    """The motion stream's error line (one JSON object)."""
    return json.dumps({"error": message})


__all__ = ["CloseCode", "FORMATS", "MAX_BINARY_BYTES", "MAX_FRAME_BYTES", "MAX_TEXT_BYTES", "ProtocolError",
           "START_FIELDS", "StartMessage", "close_code", "error_line", "is_end", "parse_start", "parse_text"]
