"""Audio decoding (every container/codec via PyAV), resampling accuracy, errors and WAV writing."""

from __future__ import annotations

import io
import json
import struct
import sys
import wave
import zlib
from pathlib import Path

import numpy as np
import pytest

from artalk_core.audio import (
    Audio,
    audio_from_array,
    is_silent,
    load_audio,
    read_wav_metadata,
    write_wav,
)
from artalk_core.errors import AudioError, InputError
from artalk_core.fileio import provenance, sha256_file

av = pytest.importorskip("av")

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "tiny_en"

TONE_HZ = 440.0
LEAD_S = 0.5  # silence before the tone
TONE_S = 1.0
TAIL_S = 0.3


def tone_signal(rate: int, channels: int = 1, amp: float = 0.5) -> np.ndarray:
    """float32 [C, S]: LEAD_S of silence, TONE_S of 440 Hz, TAIL_S of silence (same in every channel
    except a small level difference, so channel averaging is exercised)."""
    n_lead, n_tone, n_tail = (int(round(s * rate)) for s in (LEAD_S, TONE_S, TAIL_S))
    t = np.arange(n_tone) / rate
    tone = amp * np.sin(2 * np.pi * TONE_HZ * t)
    x = np.concatenate([np.zeros(n_lead), tone, np.zeros(n_tail)])
    gains = np.linspace(1.0, 0.8, channels)
    return (gains[:, None] * x[None, :]).astype(np.float32)


def encode(path: Path, x: np.ndarray, rate: int, codec: str, *, fmt: str | None = None,
           sample_fmt: str = "fltp", with_video: bool = False) -> Path:
    """Encode float [C, S] with PyAV into ``path`` (container from the suffix unless ``fmt``)."""
    channels = x.shape[0]
    layout = {1: "mono", 2: "stereo"}[channels]
    with av.open(str(path), "w", format=fmt) as c:
        v = None
        if with_video:
            v = c.add_stream("mpeg4", rate=25)
            v.width, v.height, v.pix_fmt = 64, 64, "yuv420p"
        a = c.add_stream(codec, rate=rate, layout=layout)
        a.codec_context.format = sample_fmt
        kind = sample_fmt.rstrip("p")
        dtype = {"flt": np.float32, "s16": np.int16, "s32": np.int32}[kind]
        scale = {"flt": 1.0, "s16": 32767.0, "s32": 2147483647.0}[kind]
        data = x * scale if kind == "flt" else np.round(x * scale)
        data = data.astype(dtype)
        fs = a.codec_context.frame_size or 1024
        for start in range(0, data.shape[1], fs):
            block = data[:, start:start + fs]
            arr = block if sample_fmt.endswith("p") else block.T.reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr), format=sample_fmt, layout=layout)
            frame.sample_rate = rate
            frame.pts = start
            for p in a.encode(frame):
                c.mux(p)
        for p in a.encode(None):
            c.mux(p)
        if v is not None:
            n_video = int(data.shape[1] / rate * 25)
            for i in range(n_video):
                img = np.full((64, 64, 3), (i * 7) % 255, np.uint8)
                vf = av.VideoFrame.from_ndarray(img, format="rgb24")
                vf.pts = i
                for p in v.encode(vf):
                    c.mux(p)
            for p in v.encode(None):
                c.mux(p)
    return path


def onset_s(x: np.ndarray, rate: int = 16000) -> float:
    """Time where the 5 ms RMS envelope first reaches half the tone's RMS."""
    win = int(0.005 * rate)
    env = np.sqrt(np.convolve(x.astype(np.float64) ** 2, np.ones(win) / win, mode="same"))
    return float(np.argmax(env > 0.5 * env.max()) / rate)


def peak_hz(x: np.ndarray, rate: int = 16000) -> float:
    seg = x[int((LEAD_S + 0.1) * rate): int((LEAD_S + TONE_S - 0.1) * rate)].astype(np.float64)
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg)), n=8 * len(seg)))
    return float(np.argmax(spec) * rate / (8 * len(seg)))


# name, suffix, codec, rate, channels, sample_fmt, lossy, container format
CASES = [
    ("wav_16k_mono", ".wav", "pcm_s16le", 16000, 1, "s16", False, None),
    ("wav_8k", ".wav", "pcm_s16le", 8000, 1, "s16", False, None),
    ("wav_44k_stereo", ".wav", "pcm_s16le", 44100, 2, "s16", False, None),
    ("wav_48k_stereo_f32", ".wav", "pcm_f32le", 48000, 2, "flt", False, None),
    ("wav_22k_s32", ".wav", "pcm_s32le", 22050, 1, "s32", False, None),
    ("flac_44k", ".flac", "flac", 44100, 2, "s16", False, None),
    ("mp3_44k", ".mp3", "libmp3lame", 44100, 2, "fltp", True, None),
    ("aac_m4a_48k", ".m4a", "aac", 48000, 2, "fltp", True, "mp4"),
    ("opus_ogg_48k", ".ogg", "libopus", 48000, 1, "flt", True, "ogg"),
]


@pytest.mark.parametrize("name,suffix,codec,rate,channels,sample_fmt,lossy,fmt", CASES, ids=[c[0] for c in CASES])
def test_formats_decode_to_16k_mono(tmp_path: Path, name: str, suffix: str, codec: str, rate: int,
                                    channels: int, sample_fmt: str, lossy: bool, fmt: str | None) -> None:
    x = tone_signal(rate, channels)
    path = encode(tmp_path / f"{name}{suffix}", x, rate, codec, fmt=fmt, sample_fmt=sample_fmt)
    a = load_audio(path)
    assert isinstance(a, Audio)
    assert a.samples.dtype == np.float32 and a.samples.ndim == 1
    assert a.sample_rate == 16000
    assert a.source_rate == rate
    assert a.source_channels == channels
    assert a.sha256 == sha256_file(path)
    expected_len = round(x.shape[1] * 16000 / rate)
    if lossy:
        # Encoder padding is trimmed by FFmpeg when the container says how much; allow a codec frame.
        assert abs(len(a.samples) - expected_len) <= 0.07 * 16000
    else:
        assert abs(len(a.samples) - expected_len) <= 1
        assert a.duration == pytest.approx(x.shape[1] / rate, abs=1 / 16000)
    assert abs(peak_hz(a.samples) - TONE_HZ) < 1.0
    assert abs(onset_s(a.samples) - onset_s(_reference_16k(x, rate))) < (0.006 if lossy else 0.002)
    # Mono average of the channels keeps the level (channel gains 1.0 .. 0.8).
    mid = a.samples[int(0.7 * 16000): int(1.3 * 16000)]
    assert np.sqrt(np.mean(mid.astype(np.float64) ** 2)) == pytest.approx(0.5 * np.mean(np.linspace(1, 0.8, channels)) / np.sqrt(2), rel=0.05)


def _reference_16k(x: np.ndarray, rate: int) -> np.ndarray:
    """The same test signal generated directly at 16 kHz (for onset comparison)."""
    return tone_signal(16000, 1)[0]


def test_lossless_resample_is_close_to_direct_synthesis(tmp_path: Path) -> None:
    """44.1 kHz -> 16 kHz must equal the tone synthesised at 16 kHz (no delay, no gain change)."""
    x = tone_signal(44100, 1)
    a = load_audio(encode(tmp_path / "t.wav", x, 44100, "pcm_f32le", sample_fmt="flt"))
    ref = tone_signal(16000, 1)[0]
    n = min(len(ref), len(a.samples))
    inner = slice(int(0.6 * 16000), int(1.4 * 16000))  # away from the tone's edges
    assert n >= len(ref) - 1
    assert np.max(np.abs(a.samples[:n][inner] - ref[:n][inner])) < 2e-3


def test_video_audio_track(tmp_path: Path) -> None:
    x = tone_signal(44100, 2)
    path = encode(tmp_path / "clip.mp4", x, 44100, "aac", fmt="mp4", with_video=True)
    with av.open(str(path)) as c:
        assert len(c.streams.video) == 1 and len(c.streams.audio) == 1
    a = load_audio(path)
    assert a.source_rate == 44100 and a.source_channels == 2
    assert abs(a.duration - x.shape[1] / 44100) < 0.07
    assert abs(peak_hz(a.samples) - TONE_HZ) < 1.0
    assert abs(onset_s(a.samples) - onset_s(tone_signal(16000)[0])) < 0.006


def test_mkv_and_webm_audio(tmp_path: Path) -> None:
    x = tone_signal(48000, 1)
    for suffix, codec, sf in ((".mkv", "flac", "s16"), (".webm", "libopus", "flt")):
        a = load_audio(encode(tmp_path / f"a{suffix}", x, 48000, codec, sample_fmt=sf))
        assert abs(peak_hz(a.samples) - TONE_HZ) < 1.0
        assert abs(a.duration - x.shape[1] / 48000) < 0.07


def test_pcm16_16k_mono_is_bit_exact_int16_over_32768() -> None:
    from safetensors.numpy import load_file

    a = load_audio(FIXTURE / "speech_16k.wav")
    expected = load_file(str(FIXTURE / "expected.safetensors"))["audio"]
    assert a.samples.dtype == np.float32
    assert np.array_equal(a.samples, expected)
    with wave.open(str(FIXTURE / "speech_16k.wav")) as w:
        raw = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    assert np.array_equal(a.samples, raw.astype(np.float32) / 32768)
    assert a.source_format.startswith("wav/pcm_s16le")
    assert a.decode_warnings == ()


def test_bytes_and_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    data = (FIXTURE / "speech_16k.wav").read_bytes()
    a = load_audio(data)
    b = load_audio(FIXTURE / "speech_16k.wav")
    assert np.array_equal(a.samples, b.samples) and a.sha256 == b.sha256

    class FakeStdin:
        buffer = io.BytesIO(data)

    monkeypatch.setattr(sys, "stdin", FakeStdin())
    c = load_audio("-")
    assert np.array_equal(c.samples, b.samples) and c.sha256 == b.sha256


def test_mp3_bytes_decode(tmp_path: Path) -> None:
    path = encode(tmp_path / "x.mp3", tone_signal(44100, 1), 44100, "libmp3lame", sample_fmt="fltp")
    a = load_audio(path.read_bytes())
    assert abs(peak_hz(a.samples) - TONE_HZ) < 1.0


# ---------------------------------------------------------------------------------------------
# Errors


def _err(source: object, match: str, **kw: object) -> AudioError:
    with pytest.raises(AudioError, match=match) as info:
        load_audio(source, **kw)  # type: ignore[arg-type]
    msg = str(info.value)
    assert "\n" not in msg
    return info.value


def test_missing_file(tmp_path: Path) -> None:
    e = _err(tmp_path / "nope.wav", "not found")
    assert "nope.wav" in str(e)


def test_folder(tmp_path: Path) -> None:
    _err(tmp_path, "folder")


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    assert "empty.wav" in str(_err(p, "empty"))
    _err(b"", "empty")


def test_text_file(tmp_path: Path) -> None:
    p = tmp_path / "notes.txt"
    p.write_text("hello, this is not audio\n" * 20)
    assert "notes.txt" in str(_err(p, "not an audio|no audio"))
    p2 = tmp_path / "notes.wav"
    p2.write_text("hello, this is not audio either\n" * 20)
    assert "notes.wav" in str(_err(p2, "not an audio|no audio"))


def _png_bytes() -> bytes:
    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    w = h = 8
    raw = b"".join(b"\0" + bytes([200, 30, 30] * w) for _ in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_png(tmp_path: Path) -> None:
    p = tmp_path / "face.png"
    p.write_bytes(_png_bytes())
    assert "face.png" in str(_err(p, "no audio|not an audio"))


def test_random_bytes(tmp_path: Path) -> None:
    p = tmp_path / "noise.mp3"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    _err(p, "not an audio|no audio|no decodable")


def test_video_without_audio(tmp_path: Path) -> None:
    p = tmp_path / "silent_movie.mp4"
    with av.open(str(p), "w") as c:
        v = c.add_stream("mpeg4", rate=25)
        v.width, v.height, v.pix_fmt = 64, 64, "yuv420p"
        for i in range(10):
            vf = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            vf.pts = i
            for pk in v.encode(vf):
                c.mux(pk)
        for pk in v.encode(None):
            c.mux(pk)
    e = _err(p, "no audio track")
    assert "silent_movie.mp4" in str(e) and "video" in str(e)


def test_wav_header_only(tmp_path: Path) -> None:
    full = encode(tmp_path / "full.wav", tone_signal(16000), 16000, "pcm_s16le", sample_fmt="s16").read_bytes()
    data_at = full.index(b"data") + 8
    p = tmp_path / "header_only.wav"
    p.write_bytes(full[:data_at])
    _err(p, "no decodable audio|not an audio")


def test_wav_cut_mid_data_decodes_valid_part(tmp_path: Path) -> None:
    x = tone_signal(16000)
    full = encode(tmp_path / "full.wav", x, 16000, "pcm_s16le", sample_fmt="s16").read_bytes()
    data_at = full.index(b"data") + 8
    cut = data_at + 2 * 12000 + 1  # 12000 whole samples and half a sample
    p = tmp_path / "cut.wav"
    p.write_bytes(full[:cut])
    a = load_audio(p)
    assert len(a.samples) == 12000
    whole = load_audio(tmp_path / "full.wav")
    assert np.array_equal(a.samples, whole.samples[:12000])
    assert any("cut short" in w for w in a.decode_warnings)


def test_half_mp3_decodes_valid_part(tmp_path: Path) -> None:
    x = tone_signal(44100)
    full = encode(tmp_path / "full.mp3", x, 44100, "libmp3lame", sample_fmt="fltp").read_bytes()
    p = tmp_path / "half.mp3"
    p.write_bytes(full[: len(full) // 2])
    a = load_audio(p)
    total = x.shape[1] / 44100
    assert 0.3 * total < a.duration < 0.7 * total
    assert a.decode_warnings  # the caller is told it is incomplete


def test_mp3_headers_only(tmp_path: Path) -> None:
    full = encode(tmp_path / "full.mp3", tone_signal(44100), 44100, "libmp3lame", sample_fmt="fltp").read_bytes()
    p = tmp_path / "stub.mp3"
    p.write_bytes(full[:300])
    _err(p, "no decodable audio|not an audio|too short")


def test_too_short(tmp_path: Path) -> None:
    p = tmp_path / "blip.wav"
    write_wav(p, np.full(639, 0.1, np.float32))
    e = _err(p, "too short")
    assert "blip.wav" in str(e) and "40 ms" in str(e)
    write_wav(p, np.full(640, 0.1, np.float32))
    assert len(load_audio(p).samples) == 640
    _err(p, "too short", min_frames=2)
    # 8 kHz: 320 samples are exactly one frame after resampling.
    p8 = tmp_path / "blip8.wav"
    write_wav(p8, np.full(319, 0.1, np.float32), 8000)
    _err(p8, "too short")


def test_nan_and_inf(tmp_path: Path) -> None:
    x = tone_signal(16000)
    x[0, 5000] = np.nan
    p = encode(tmp_path / "nan.wav", x, 16000, "pcm_f32le", sample_fmt="flt")
    assert "nan.wav" in str(_err(p, "NaN or infinite"))
    y = tone_signal(16000)
    y[0, 100] = np.inf
    _err(encode(tmp_path / "inf.wav", y, 16000, "pcm_f32le", sample_fmt="flt"), "NaN or infinite")


def test_silence_is_not_an_error(tmp_path: Path) -> None:
    p = tmp_path / "quiet.wav"
    write_wav(p, np.zeros(16000, np.float32))
    a = load_audio(p)
    assert len(a.samples) == 16000 and is_silent(a.samples)


def test_is_silent() -> None:
    rng = np.random.default_rng(1)
    assert is_silent(np.zeros(100, np.float32))
    assert is_silent(np.array([], np.float32))
    assert is_silent((rng.standard_normal(16000) * 1e-4).astype(np.float32))  # -80 dBFS
    assert not is_silent((rng.standard_normal(16000) * 1e-2).astype(np.float32))  # -40 dBFS
    assert not is_silent(tone_signal(16000)[0])
    assert is_silent((rng.standard_normal(16000) * 1e-2).astype(np.float32), threshold_db=-30)


# ---------------------------------------------------------------------------------------------
# Arrays and writing


def test_audio_from_array() -> None:
    x = tone_signal(48000, 2)
    a = audio_from_array(x, 48000)  # [C, S]
    b = audio_from_array(x.T, 48000)  # [S, C]
    assert np.array_equal(a.samples, b.samples)
    assert len(a.samples) == round(x.shape[1] / 3) and a.source_channels == 2
    assert abs(peak_hz(a.samples) - TONE_HZ) < 1.0
    i16 = (tone_signal(16000)[0] * 32767).astype(np.int16)
    c = audio_from_array(i16, 16000)
    assert np.array_equal(c.samples, i16.astype(np.float32) / 32768)
    assert c.sha256 == audio_from_array(i16, 16000).sha256
    with pytest.raises(AudioError):
        audio_from_array(np.zeros(10, np.float32), 16000)
    with pytest.raises(AudioError):
        audio_from_array(np.array([np.nan] * 2000, np.float32), 16000)
    with pytest.raises(InputError):
        audio_from_array(np.zeros((2, 2, 2000)), 16000)
    with pytest.raises(InputError):
        audio_from_array(np.zeros(2000), 0)


def test_write_wav_round_trip_and_metadata(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pcm = rng.integers(-32768, 32768, 16000, dtype=np.int64)
    x = (pcm / 32768).astype(np.float32)
    p = tmp_path / "out.wav"
    meta = provenance("test", options={"engine": "energy"}, inputs={"audio": "ab" * 32})
    write_wav(p, x, metadata=meta)
    a = load_audio(p)
    assert np.array_equal(a.samples, x)
    with wave.open(str(p)) as w:  # any standard reader opens it
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, 16000, 16000)
    got = read_wav_metadata(p)
    assert got["created_by"] == "test" and got["audio_sha256"] == "ab" * 32
    with av.open(str(p)) as c:
        assert "artalk_version" in c.metadata.get("comment", "")
    assert not list(tmp_path.glob(".*part*"))


def test_wav_metadata_of_a_hostile_comment_is_ignored(tmp_path: Path) -> None:
    """A stranger's WAV whose ICMT comment nests JSON deeper than Python recurses: no metadata,
    not an unexpected RecursionError."""
    p = tmp_path / "deep.wav"
    write_wav(p, np.zeros(1600, np.float32), metadata={"k": "X" * 200_000})
    raw = p.read_bytes()
    old = json.dumps({"k": "X" * 200_000}).encode()
    assert raw.count(old) == 1
    deep = b"[" * 100_000 + b"]" * 100_000
    p.write_bytes(raw.replace(old, deep.ljust(len(old), b" ")))  # the same size: the chunks stay valid
    assert read_wav_metadata(p) == {}


def test_write_wav_clips_and_rejects(tmp_path: Path) -> None:
    p = tmp_path / "clip.wav"
    write_wav(p, np.array([2.0, -2.0, 0.5, -1.0, 1.0] * 200, np.float32))
    with wave.open(str(p)) as w:
        raw = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    assert list(raw[:5]) == [32767, -32768, 16384, -32768, 32767]
    assert read_wav_metadata(p) == {}
    with pytest.raises(InputError):
        write_wav(p, np.array([0.0, np.nan], np.float32))
    with pytest.raises(InputError):
        write_wav(p, np.zeros((2, 100), np.float32))
    # A failed write leaves the earlier good file in place.
    assert len(load_audio(p).samples) == 1000


def test_write_wav_other_rate_and_stdout(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    x = tone_signal(22050)[0]
    p = tmp_path / "r.wav"
    write_wav(p, x, 22050)
    a = load_audio(p)
    assert a.source_rate == 22050 and abs(peak_hz(a.samples) - TONE_HZ) < 1.0
    write_wav("-", x[:22050], 22050)
    out = capsysbinary.readouterr().out
    assert out[:4] == b"RIFF" and out[8:12] == b"WAVE"
    assert len(load_audio(out).samples) == 16000


def test_resampler_pass_band_and_alias_rejection() -> None:
    """44.1 kHz -> 16 kHz with the reference's filter (torchaudio's Hann-windowed sinc, 6 zero
    crossings, roll-off 0.99: issue 11 asks for its numbers, see test_resample_parity.py).

    Before issue 11 this test held a sharper filter of our own (7 kHz within 0.2 dB, 9 kHz below
    -80 dB); the reference's filter is gentler, and parity with it is what gives the reference's
    motion: 1 kHz flat, 7 kHz -1.8 dB, 9 kHz (would alias to 7 kHz) -17 dB, 10 kHz -45 dB."""
    rate = 44100
    t = np.arange(2 * rate) / rate

    def level_db(freq: float) -> float:
        y = audio_from_array(np.sin(2 * np.pi * freq * t).astype(np.float32), rate).samples[4000:-4000]
        return 20 * np.log10(np.sqrt(np.mean(y.astype(np.float64) ** 2)) * np.sqrt(2) + 1e-12)

    assert abs(level_db(1000)) < 0.05
    assert abs(level_db(7000) + 1.78) < 0.1
    assert abs(level_db(9000) + 16.8) < 0.5
    assert level_db(10000) < -40


def test_damaged_mp3_middle_still_decodes(tmp_path: Path) -> None:
    x = tone_signal(44100)
    full = bytearray(encode(tmp_path / "full.mp3", x, 44100, "libmp3lame", sample_fmt="fltp").read_bytes())
    at = len(full) // 3
    full[at:at + 600] = np.random.default_rng(1).integers(0, 256, 600, dtype=np.uint8).tobytes()
    p = tmp_path / "damaged.mp3"
    p.write_bytes(bytes(full))
    a = load_audio(p)
    assert a.duration > 0.85 * x.shape[1] / 44100
    assert np.all(np.isfinite(a.samples))


def test_named_pipe(tmp_path: Path) -> None:
    import os
    import threading

    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes on this platform")
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    data = (FIXTURE / "speech_16k.wav").read_bytes()

    def feed() -> None:
        with open(fifo, "wb") as f:
            f.write(data)

    th = threading.Thread(target=feed)
    th.start()
    a = load_audio(fifo)
    th.join(timeout=10)
    assert a.sha256 == load_audio(data).sha256 and len(a.samples) == 160707


def test_unknown_codec_is_a_clean_audio_error(tmp_path):
    """A WAV whose extensible header names a sub-format FFmpeg cannot decode."""
    import struct

    from artalk_core.audio import load_audio
    from artalk_core.errors import AudioError

    data = b"\x00\x00" * 16000
    fmt = struct.pack("<HHIIHH", 0xFFFE, 1, 16000, 32000, 2, 16) + struct.pack("<HHI", 22, 16, 4) + b"\x99" * 16
    riff = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path = tmp_path / "odd.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(riff)) + riff)
    with pytest.raises(AudioError, match="odd.wav"):
        load_audio(path)
