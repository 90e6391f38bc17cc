"""Streaming: the causal smoother, the progressive audio reader, the chunk-wise generator and the
motion stream equal their offline counterparts exactly."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from artalk_core.audio import load_audio
from artalk_core.constants import CHUNK_SAMPLES
from artalk_core.errors import AudioError, FormatError, InputError
from artalk_core.formats.motion import read_motion
from artalk_core.formats.motion_stream import MotionStreamWriter, iter_motion_stream
from artalk_core.options import ModelOptions, MotionOptions
from artalk_core.postprocess import SMOOTH_DELAY, StreamingPostprocessor, postprocess
from artalk_core.streaming import AudioStreamReader, stream_generate

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "tiny_en"
WAV = FIXTURE / "speech_16k.wav"
GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"  # KSDATAFORMAT_SUBTYPE_*


# ---- helpers ------------------------------------------------------------------------------------
def wav_bytes(samples: np.ndarray, *, rate: int = 16000, tag: int = 1, bits: int = 16, channels: int = 1,
              data_size: int | None = None, extra_chunk: bool = False) -> bytes:
    """A WAV file written by hand; ``samples`` are already in the stored integer/float type,
    interleaved [n*channels]."""
    if bits == 24:
        x = np.asarray(samples, dtype=np.int32)
        pcm = np.stack([x & 0xFF, (x >> 8) & 0xFF, (x >> 16) & 0xFF], axis=1).astype(np.uint8).tobytes()
    else:
        pcm = np.asarray(samples).tobytes()
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    body = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if extra_chunk:
        body += b"LIST" + struct.pack("<I", 10) + b"INFOabcdef"
    size = len(pcm) if data_size is None else data_size
    body += b"data" + struct.pack("<I", size) + pcm
    riff = 0xFFFFFFFF if data_size == 0xFFFFFFFF else 4 + len(body)
    return b"RIFF" + struct.pack("<I", riff) + b"WAVE" + body


def read_all(data: bytes, fmt: str = "wav") -> tuple[np.ndarray, AudioStreamReader]:
    """The reader's PCM pieces through the decoder: 16 kHz mono samples, as a stream gives them."""
    from artalk_core.audio.pcm import PcmDecoder

    reader = AudioStreamReader(io.BytesIO(data), stream_format=fmt, name="<test>")
    decoder = PcmDecoder(reader.read_header(), name="<test>")
    parts = [decoder.push(p) for p in reader.pieces(size=7001)] + [decoder.finish()]
    return np.concatenate(parts), reader


# ---- causal post-processing ---------------------------------------------------------------------
@pytest.mark.parametrize("n_frames", list(range(1, 30)) + [99, 100, 101, 252])
def test_streaming_postprocessor_equals_offline(n_frames: int) -> None:
    rng = np.random.default_rng(n_frames)
    raw = rng.standard_normal((n_frames, 106)).astype(np.float32)
    for clip, fix in [(None, False), (None, True), (1, False), (6, True), (20, False)]:
        want = postprocess(raw, clip_length=clip, fix_pose=fix)
        for step in (1, 3, 8, 100):
            sp = StreamingPostprocessor(clip_length=clip, fix_pose=fix)
            got = np.concatenate([sp.push(raw[i:i + step]) for i in range(0, n_frames, step)] + [sp.flush()])
            np.testing.assert_array_equal(got, want)  # bit for bit
            assert sp.emitted == want.shape[0]


def test_streaming_postprocessor_delay() -> None:
    """Frame t comes out once frame t+4 is in; the first five wait for a whole 9-frame window."""
    raw = np.random.default_rng(0).standard_normal((40, 106)).astype(np.float32)
    sp = StreamingPostprocessor()
    out_counts = []
    for t in range(40):
        sp.push(raw[t:t + 1])
        out_counts.append(sp.emitted)
    assert out_counts[:8] == [0] * 8
    assert out_counts[8:] == [t + 1 - SMOOTH_DELAY for t in range(8, 40)]
    assert sp.flush().shape == (SMOOTH_DELAY, 106)
    with pytest.raises(InputError):
        sp.push(raw[:1])


def test_streaming_postprocessor_full_after_clip() -> None:
    raw = np.random.default_rng(1).standard_normal((60, 106)).astype(np.float32)
    sp = StreamingPostprocessor(clip_length=10)
    got = np.concatenate([sp.push(raw[:14])])
    assert sp.full and got.shape[0] == 10  # 10 + 4 frames were enough
    np.testing.assert_array_equal(got, postprocess(raw, clip_length=10))


# ---- progressive audio reading ------------------------------------------------------------------
def test_reader_equals_offline_decoder_for_pcm16_wav() -> None:
    data = WAV.read_bytes()
    samples, reader = read_all(data)
    want = load_audio(data)
    np.testing.assert_array_equal(samples, want.samples)
    assert reader.complete and reader.sha256 == want.sha256 and len(samples) == want.num_samples


@pytest.mark.parametrize("kind", ["s16_stereo", "s24", "s32", "u8", "f32", "f64_3ch", "extensible", "extra_chunk",
                                  "s16_44k_stereo", "f32_8k"])
def test_reader_equals_offline_decoder_for_other_layouts(kind: str) -> None:
    """Every WAV layout, other sample rates included (resampled block by block as files are)."""
    rng = np.random.default_rng(3)
    n = 70_001  # one whole chunk and a partial one
    x = rng.uniform(-0.9, 0.9, size=(n, 3))
    if kind == "s16_stereo":
        data = wav_bytes((x[:, :2] * 32767).astype("<i2").ravel(), channels=2)
    elif kind == "s24":
        data = wav_bytes((x[:, 0] * 8388607).astype(np.int32), bits=24)
    elif kind == "s32":
        data = wav_bytes((x[:, 0] * 2147483000).astype("<i4"), bits=32)
    elif kind == "u8":
        data = wav_bytes((x[:, 0] * 127 + 128).astype(np.uint8), bits=8)
    elif kind == "f32":
        data = wav_bytes(x[:, 0].astype("<f4"), tag=3, bits=32)
    elif kind == "f64_3ch":
        data = wav_bytes(x.astype("<f8").ravel(), tag=3, bits=64, channels=3)
    elif kind == "s16_44k_stereo":
        data = wav_bytes((x[:, :2] * 32767).astype("<i2").ravel(), channels=2, rate=44100)
    elif kind == "f32_8k":
        data = wav_bytes(x[:, 0].astype("<f4"), tag=3, bits=32, rate=8000)
    elif kind == "extensible":
        pcm = (x[:, 0] * 32767).astype("<i2")
        fmt = struct.pack("<HHIIHHHHI", 0xFFFE, 1, 16000, 32000, 2, 16, 22, 16, 4) + struct.pack("<H", 1) + GUID_TAIL
        data = (b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + pcm.nbytes) + b"WAVE" + b"fmt "
                + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", pcm.nbytes) + pcm.tobytes())
    else:
        data = wav_bytes((x[:, 0] * 32767).astype("<i2"), extra_chunk=True)
    samples, reader = read_all(data)
    want = load_audio(data).samples
    np.testing.assert_array_equal(samples, want)
    assert samples.shape == want.shape and (kind in ("s16_44k_stereo", "f32_8k") or samples.shape == (n,))


def test_reader_raw_pcm_and_streamed_header() -> None:
    pcm = (np.random.default_rng(4).uniform(-1, 1, 130_000) * 32767).astype("<i2")
    want = (pcm.astype(np.float64) / 32768).astype(np.float32)
    got, reader = read_all(pcm.tobytes() + b"\x01", "raw")  # a dangling half sample is dropped
    np.testing.assert_array_equal(got, want)
    assert reader.bytes_read == 260_001
    # A WAV written to a pipe declares an unknown size: read to the end.
    got, _ = read_all(wav_bytes(pcm, data_size=0xFFFFFFFF))
    np.testing.assert_array_equal(got, want)


def test_reader_cut_short_wav_is_a_note() -> None:
    pcm = np.zeros(1000, "<i2")
    data = wav_bytes(pcm)[:-400]
    got, reader = read_all(data)
    assert got.shape == (800,) and "cut short" in reader.notes[0]


@pytest.mark.parametrize("data, fmt, words", [
    (b"", "wav", "empty"),
    (b"", "raw", "empty"),
    (b"RIFF\x00\x00", "wav", "cut short"),
    (wav_bytes(np.zeros(10, "<i2"))[:30], "wav", "cut short"),
    (b"ID3\x03" + bytes(100), "wav", "not a WAV stream"),
    (wav_bytes(np.zeros(20_000, "<i2"), rate=44101), "wav", "cannot be resampled"),
    (wav_bytes(np.zeros(20_000, "<i2"), tag=6, bits=8), "wav", "cannot be streamed"),
    (wav_bytes(np.zeros(639, "<i2")), "wav", "too short"),
    (bytes(100), "raw", "too short"),
    (wav_bytes(np.array([0.0, np.nan], "<f4"), tag=3, bits=32), "wav", "NaN"),
])
def test_stream_input_errors(data: bytes, fmt: str, words: str) -> None:
    """Header errors come from the reader, sample errors from the decoder and the session; either
    way before any output (energy engine: no model to load)."""
    out = io.BytesIO()
    with pytest.raises(AudioError, match=words):
        stream_generate(io.BytesIO(data), out, stream_format=fmt, motion=MotionOptions(engine="energy"))
    assert out.getvalue() == b""


# ---- the chunk-wise generator -------------------------------------------------------------------
@pytest.fixture(scope="module")
def model():
    from artalk_core.model.checkpoint import load_model
    from artalk_core.model.config import ModelConfig

    return load_model(FIXTURE / "weights.safetensors", ModelConfig.from_file(FIXTURE / "model_config.json"))


def test_iter_generate_equals_generate(model) -> None:
    audio = torch.from_numpy(load_audio(WAV).samples)
    style = torch.load(FIXTURE / "style_motion.pt", weights_only=True)
    offline = model.generate_from_audio(audio, style)
    feats = model.encode_audio(audio)
    assert torch.equal(offline, model.generate(feats, offline.shape[0], style))
    chunks = list(model.iter_generate(iter(feats), style))  # one chunk's features at a time
    assert [c.shape for c in chunks] == [(100, 106)] * 3
    assert torch.equal(torch.cat(chunks)[:offline.shape[0]], offline)
    streamed = torch.cat(list(model.iter_generate_from_audio(audio.split(CHUNK_SAMPLES), style)))
    assert torch.equal(streamed[:offline.shape[0]], offline)


def test_chunkwise_generation_holds_few_chunks_of_features(model, monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline generation from audio encodes 8 chunks at a time, interleaved with generation; the
    streaming form holds one chunk: count the chunks encoded ahead of the chunks generated."""
    audio = torch.from_numpy(np.random.default_rng(5).uniform(-0.5, 0.5, 20 * CHUNK_SAMPLES - 5).astype(np.float32))
    encoded, ahead = [0], []
    real = model.encode_chunks

    def counting(chunks: torch.Tensor, **kw: object) -> torch.Tensor:
        encoded[0] += 1 if chunks.dim() == 1 else chunks.shape[0]
        return real(chunks, **kw)

    monkeypatch.setattr(model, "encode_chunks", counting)
    made = 0
    for _motion in model.iter_generate_from_audio(audio):
        made += 1
        ahead.append(encoded[0] - made)
    assert made == 20 and max(ahead) == 7  # batches of 8: at most 7 chunks' features wait
    encoded[0], ahead, made = 0, [], 0
    for _motion in model.iter_generate_from_audio(audio.split(CHUNK_SAMPLES)):
        made += 1
        ahead.append(encoded[0] - made)
    assert made == 20 and max(ahead) == 0  # streaming: only the chunk being generated


# ---- the motion stream format -------------------------------------------------------------------
def _stream(frames: np.ndarray, meta: dict | None = None, end: bool = True) -> bytes:
    buf = io.BytesIO()
    w = MotionStreamWriter(buf, meta or {"engine": "artalk", "smoothed": "false"}, delay_frames=0)
    w.write_frames(frames[:5])
    w.write_frames(frames[5:])
    if end:
        w.end(audio_samples=16000)
    return buf.getvalue()


def test_motion_stream_round_trips_float32_exactly() -> None:
    rng = np.random.default_rng(6)
    # every magnitude motion may take (at most MOTION_MAX_ABS = 100)
    frames = np.clip(rng.standard_normal((12, 106)) * 10.0 ** rng.integers(-8, 3, (12, 106)), -99, 99).astype(np.float32)
    frames[0, 0] = -0.0
    data = _stream(frames)
    m = read_motion(data)
    np.testing.assert_array_equal(m.data, frames)
    assert m.origin == "stream" and m.meta["engine"] == "artalk" and m.meta["audio_samples"] == "16000"
    lines = data.decode().splitlines()
    assert len(lines) == 14 and json.loads(lines[1])["t"] == 0
    got = [f for _, f in iter_motion_stream(io.BytesIO(data))]
    np.testing.assert_array_equal(np.stack(got), frames)


def test_motion_stream_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from artalk_core.schemas import load as load_schema

    schema = load_schema("motion-stream")
    jsonschema.Draft202012Validator.check_schema(schema)
    v = jsonschema.Draft202012Validator(schema)
    lines = _stream(np.zeros((3, 106), np.float32)).decode().splitlines()
    for line in lines:
        assert list(v.iter_errors(json.loads(line))) == [], line
    assert list(v.iter_errors({"t": 0, "motion": [0.0] * 105}))
    assert list(v.iter_errors({"error": "boom"})) == []


@pytest.mark.parametrize("cut, words", [
    (lambda d: d.rsplit(b"\n", 2)[0] + b"\n", "no end line"),
    (lambda d: d[:-40], "not JSON"),
    (lambda d: d.replace(b'"t": 3,', b'"t": 4,'), "expected 3"),
    (lambda d: d.replace(b'"frames": 7', b'"frames": 8'), "says 8"),
    (lambda d: d.rsplit(b"\n", 2)[0] + b'\n{"error": "model exploded"}\n', "model exploded"),
    (lambda d: d.replace(b'"version": 1', b'"version": 9'), "version 9"),
    # header values of the wrong JSON type: named as written, not "at 25 fps ...; artalk is 25 fps"
    (lambda d: d.replace(b'"fps": 25', b'"fps": "25"'), 'fps is "25", not an integer'),
    (lambda d: d.replace(b'"channels": 106', b'"channels": 106.0'), "channels is 106.0, not an integer"),
    (lambda d: d.replace(b'"version": 1', b'"version": "1"'), 'version is "1", not an integer'),
    (lambda d: d.replace(b'"delay_frames": 0', b'"delay_frames": -1'), "delay_frames is -1"),
    (lambda d: d.replace(b'"t": 1,', b'"t": true,'), "holds frame true, expected 1"),
    (lambda d: d.replace(b'"t": 0,', b'"t": 0.0,'), "holds frame 0.0, expected 0"),
    (lambda d: d.replace(b'"frames": 7', b'"frames": 7.0'), "says 7.0"),
    # frames after the end line were ignored with exit 0
    (lambda d: d + d.split(b"\n")[1] + b"\n", "line 10 comes after its end line"),
    (lambda d: d + d, "after its end line"),
])
def test_motion_stream_damage_is_reported(cut, words: str) -> None:
    data = cut(_stream(np.ones((7, 106), np.float32)))
    with pytest.raises(FormatError, match=words):
        read_motion(data)


# ---- end to end, in process ---------------------------------------------------------------------
@pytest.mark.parametrize("n_samples, raw, clip, fix", [
    (None, False, 0, False),         # the whole fixture, 3 chunks
    (None, True, None, False),       # raw frames
    (None, False, 120, True),        # clip reached inside the second chunk: stops early
    (2 * CHUNK_SAMPLES, False, 0, False),  # exactly two chunks: no padded chunk
    (CHUNK_SAMPLES + 700, False, 0, False),  # a last chunk of 2 frames
    (3000, False, 0, False),         # 5 frames: the shrunken windows
])
def test_stream_generate_equals_offline(tiny_assets: Path, tmp_path: Path, n_samples, raw, clip, fix) -> None:
    from artalk_core.audio import write_wav
    from artalk_core.pipeline import generate

    wav = tmp_path / "in.wav"
    write_wav(wav, load_audio(WAV).samples[:n_samples])
    offline = generate(str(wav), raw=raw, motion=MotionOptions(style="tiny_0", clip_length=None if raw else clip, fix_pose=fix), model=ModelOptions(assets=tiny_assets))
    out = io.BytesIO()
    with open(wav, "rb") as f:
        res = stream_generate(f, out, raw=raw, motion=MotionOptions(style="tiny_0", clip_length=None if raw else clip, fix_pose=fix), model=ModelOptions(assets=tiny_assets))
    m = read_motion(out.getvalue())
    np.testing.assert_array_equal(m.data, offline.data)
    assert res.frames == offline.frames
    assert res.stopped_early == (clip == 120)
    for key in ("postprocessed", "smoothed", "clip_length", "fix_pose", "style", "style_sha256", "checkpoint_sha256"):
        assert m.meta[key] == offline.meta[key], key
    if not res.stopped_early:
        assert m.meta["audio_sha256"] == offline.meta["audio_sha256"]
        assert m.meta["audio_samples"] == offline.meta["audio_samples"]


def test_stream_generate_error_leaves_no_output(tiny_assets: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.ndjson"
    with pytest.raises(AudioError, match="too short"):
        stream_generate(io.BytesIO(wav_bytes(np.zeros(100, "<i2"), rate=8000)), out, model=ModelOptions(assets=tiny_assets))
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="--raw"):
        stream_generate(io.BytesIO(WAV.read_bytes()), out, raw=True, motion=MotionOptions(fix_pose=True), model=ModelOptions(assets=tiny_assets))


@pytest.mark.parametrize("engine, rate, channels", [("artalk", 44100, 2), ("energy", 8000, 1), ("energy", 48000, 2)])
def test_stream_generate_resamples_as_files_are(tiny_assets: Path, tmp_path: Path, engine: str, rate: int,
                                                channels: int) -> None:
    """A WAV stream at another rate (stereo too) is resampled block by block exactly as the offline
    decoder resamples the file: the frames are the offline ones, for the model and the energy engine."""
    from artalk_core.pipeline import generate

    x = load_audio(WAV).samples[:90_000]
    pcm = np.round(np.stack([x, x[::-1]][:channels], axis=1) * 32767).astype("<i2").ravel()
    path = tmp_path / "in.wav"
    path.write_bytes(wav_bytes(pcm, rate=rate, channels=channels))
    offline = generate(str(path), motion=MotionOptions(engine=engine, style="tiny_0", clip_length=0), model=ModelOptions(assets=tiny_assets))
    out = io.BytesIO()
    with open(path, "rb") as f:
        res = stream_generate(f, out, motion=MotionOptions(engine=engine, style="tiny_0", clip_length=0), model=ModelOptions(assets=tiny_assets))
    np.testing.assert_array_equal(read_motion(out.getvalue()).data, offline.data)
    assert res.audio_sha256 == offline.meta["audio_sha256"] and str(res.audio_samples) == offline.meta["audio_samples"]
