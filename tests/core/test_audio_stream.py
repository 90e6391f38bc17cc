"""Progressive decoding (iter_audio) equals whole decoding (load_audio) bit for bit, and the
generate / energy / render paths built on it give the results of the whole-signal paths while
holding only a few blocks of audio."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from artalk_core.audio import Audio, iter_audio, load_audio, write_wav
from artalk_core.errors import AudioError, InputError
from artalk_core.options import ModelOptions, MotionOptions, RenderOptions
from tests.core.test_audio import CASES, encode, tone_signal

av = pytest.importorskip("av")

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "tiny_en"


def _noisy_tone(rate: int, channels: int, repeat: int = 4) -> np.ndarray:
    """float32 [C, S]: the test tone repeated (about 7 s) plus a little noise, so every sample matters."""
    x = np.concatenate([tone_signal(rate, channels)] * repeat, axis=1)
    rng = np.random.default_rng(rate + channels)
    return (x + 0.01 * rng.standard_normal(x.shape)).astype(np.float32)


def _same(stream_blocks: list[np.ndarray], ref: np.ndarray) -> bool:
    got = np.concatenate(stream_blocks) if stream_blocks else np.zeros(0, np.float32)
    return got.dtype == np.float32 and got.tobytes() == ref.tobytes()


@pytest.mark.parametrize("name,suffix,codec,rate,channels,sample_fmt,lossy,fmt", CASES, ids=[c[0] for c in CASES])
def test_blockwise_equals_whole(tmp_path: Path, name: str, suffix: str, codec: str, rate: int, channels: int,
                                sample_fmt: str, lossy: bool, fmt: str | None) -> None:
    path = encode(tmp_path / f"{name}{suffix}", _noisy_tone(rate, channels), rate, codec, fmt=fmt,
                  sample_fmt=sample_fmt)
    ref = load_audio(path)
    for block in (640, 3333, 64000, 10 ** 7):
        s = iter_audio(path, block=block)
        assert (s.source_rate, s.source_channels, s.source_format, s.sha256) == \
               (ref.source_rate, ref.source_channels, ref.source_format, ref.sha256)
        blocks = list(s)
        assert all(len(b) == block for b in blocks[:-1]) and 0 < len(blocks[-1]) <= block
        assert _same(blocks, ref.samples), (name, block)
        assert s.num_samples == ref.num_samples
        assert s.decode_warnings == ref.decode_warnings


def test_blockwise_equals_whole_for_video_and_bytes(tmp_path: Path) -> None:
    path = encode(tmp_path / "v.mp4", _noisy_tone(44100, 2), 44100, "aac", with_video=True)
    ref = load_audio(path)
    assert _same(list(iter_audio(path, block=1000)), ref.samples)
    data = path.read_bytes()
    s = iter_audio(data, block=5000)
    assert _same(list(s), ref.samples) and s.sha256 == ref.sha256


def test_cut_wav_warning_and_errors(tmp_path: Path) -> None:
    wav = tmp_path / "a.wav"
    write_wav(wav, np.sin(np.arange(48000) / 5.0).astype(np.float32) * 0.3)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(wav.read_bytes()[:60000])
    s = iter_audio(cut, block=4000)
    assert _same(list(s), load_audio(cut).samples)
    assert s.decode_warnings == load_audio(cut).decode_warnings and s.decode_warnings

    with pytest.raises(AudioError, match="not found"):
        iter_audio(tmp_path / "missing.wav")
    short = tmp_path / "short.wav"
    write_wav(short, np.full(600, 0.1, np.float32))
    with pytest.raises(AudioError) as whole:
        load_audio(short)
    s = iter_audio(short, block=100)  # smaller blocks than a frame: nothing is yielded before the check
    got: list[np.ndarray] = []
    with pytest.raises(AudioError) as streamed:
        for b in s:
            got.append(b)
    assert got == [] and str(streamed.value) == str(whole.value)

    bad = np.sin(np.arange(32000) / 7.0).astype(np.float32)
    bad[20000:20003] = np.nan
    nan_wav = tmp_path / "nan.wav"
    # A float WAV keeps the NaN (PCM16 cannot hold one).
    with av.open(str(nan_wav), "w") as c:
        st = c.add_stream("pcm_f32le", rate=16000, layout="mono")
        fr = av.AudioFrame.from_ndarray(bad[None], format="flt", layout="mono")
        fr.sample_rate, fr.pts = 16000, 0
        for p in st.encode(fr):
            c.mux(p)
        for p in st.encode(None):
            c.mux(p)
    with pytest.raises(AudioError) as whole:
        load_audio(nan_wav)
    with pytest.raises(AudioError) as streamed:
        list(iter_audio(nan_wav, block=640))
    assert str(streamed.value) == str(whole.value) and "NaN" in str(whole.value)


def wavpack_nan_unknown_length(path: Path, seconds: float, rate: int = 8000) -> Path:
    """A float WavPack file (encoder ``wavpack``, fltp): one NaN, then ``seconds`` of silence that packs
    to a few KB, every block's total-samples field set to 'unknown' (as a writer that cannot seek says)."""
    import struct

    assert "wavpack" in av.codecs_available, "PyAV's FFmpeg lacks the WavPack encoder"
    with av.open(str(path), "w", format="wv") as c:
        st = c.add_stream("wavpack", rate=rate, layout="mono")
        st.codec_context.format = "fltp"
        n, step = int(seconds * rate), rate * 10
        for i in range(0, n, step):
            x = np.zeros((1, min(step, n - i)), np.float32)
            x[0, 0] = np.nan if i == 0 else 0.0
            fr = av.AudioFrame.from_ndarray(x, format="fltp", layout="mono")
            fr.sample_rate, fr.pts = rate, i
            for p in st.encode(fr):
                c.mux(p)
        for p in st.encode(None):
            c.mux(p)
    data = bytearray(path.read_bytes())
    at = data.find(b"wvpk")
    while at >= 0:  # block header: "wvpk", size, version, 2 bytes, total_samples (u32 at +12)
        data[at + 12:at + 16] = b"\xff\xff\xff\xff"
        at = data.find(b"wvpk", at + 8 + struct.unpack_from("<I", data, at + 4)[0])
    path.write_bytes(data)
    return path


def test_non_finite_sample_stops_the_decoder_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A NaN first sample, then 10 minutes of unannounced silence in 5 KB: the stream refuses at
    the NaN instead of decoding on (yielding nothing, so no cap or cancel check was ever reached)."""
    import artalk_core.audio.stream as stream_mod

    path = wavpack_nan_unknown_length(tmp_path / "nan.wv", seconds=600)
    assert path.stat().st_size < 20_000
    decoded = {"samples": 0}
    real = stream_mod._decoded_pieces

    def counting(*args):  # type: ignore[no-untyped-def]
        for rate, x in real(*args):
            decoded["samples"] += x.shape[1]
            yield rate, x

    monkeypatch.setattr(stream_mod, "_decoded_pieces", counting)
    s = iter_audio(path, block=16000)
    assert s.expected_samples is None
    with pytest.raises(AudioError, match=r"nan\.wv contains NaN or infinite samples \(the first at 0\.00 s\)"):
        list(s)
    assert decoded["samples"] < 30 * 8000, f"decoded {decoded['samples'] / 8000:.0f} s before refusing"


@pytest.fixture(scope="module")
def clip_30s(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The fixture speech tiled to 30.5 s, as a 16 kHz WAV and as 44.1 kHz stereo FLAC."""
    root = tmp_path_factory.mktemp("clip30")
    x = load_audio(FIXTURE / "speech_16k.wav").samples
    x = np.tile(x, 4)[:int(30.5 * 16000)]
    wav = root / "speech30.wav"
    write_wav(wav, x)
    t = np.arange(int(30.5 * 44100))
    y = np.interp(t * 16000 / 44100, np.arange(len(x)), x).astype(np.float32)
    flac = encode(root / "speech30.flac", np.stack([y, 0.9 * y]), 44100, "flac", sample_fmt="s16")
    return wav, flac


def test_generate_artalk_unchanged(clip_30s: tuple[Path, Path], tiny_assets: Path) -> None:
    from artalk_core.pipeline import generate

    wav, _ = clip_30s
    streamed = generate(wav, raw=True, motion=MotionOptions(style="tiny_0"), model=ModelOptions(assets=tiny_assets, device="cpu"))
    whole = generate(load_audio(wav), raw=True, motion=MotionOptions(style="tiny_0"), model=ModelOptions(assets=tiny_assets, device="cpu"))
    assert streamed.data.shape == (763, 106)
    assert streamed.data.tobytes() == whole.data.tobytes()
    assert streamed.meta["audio_sha256"] == whole.meta["audio_sha256"]
    assert streamed.meta["audio_samples"] == whole.meta["audio_samples"]


def test_encode_audio_unchanged(tiny_assets: Path) -> None:
    from artalk_core.pipeline import encode_audio

    wav = FIXTURE / "speech_16k.wav"
    streamed = encode_audio(wav, model=ModelOptions(assets=tiny_assets, device="cpu"))
    whole = encode_audio(load_audio(wav), model=ModelOptions(assets=tiny_assets, device="cpu"))
    assert streamed.data.tobytes() == whole.data.tobytes()
    for key in ("audio_samples", "frames", "chunks", "audio_sha256"):
        assert streamed.meta[key] == whole.meta[key]


def test_generate_energy_unchanged(clip_30s: tuple[Path, Path]) -> None:
    from artalk_core.engines.energy import energy_motion
    from artalk_core.pipeline import generate

    for path in clip_30s:
        streamed = generate(path, raw=True, motion=MotionOptions(engine="energy", seed=3))
        expected = energy_motion(load_audio(path).samples, seed=3)
        assert streamed.data.tobytes() == expected.tobytes()


def _audio_track(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(c.streams.audio[0])])


def test_render_audio_unchanged(clip_30s: tuple[Path, Path], tmp_path: Path) -> None:
    from artalk_core.pipeline import generate
    from artalk_core.render.stage import render

    wav, flac = clip_30s
    motion = tmp_path / "m.safetensors"
    generate(wav, output=motion, motion=MotionOptions(engine="energy", clip_length=0))
    for audio in (wav, flac):
        a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
        ra = render(motion, output=a, audio=audio, look=RenderOptions(size=32))
        rb = render(motion, output=b, audio=load_audio(audio), look=RenderOptions(size=32))
        assert ra.with_audio and ra.meta["audio_sha256"] == rb.meta["audio_sha256"]
        assert _audio_track(a).tobytes() == _audio_track(b).tobytes()


def _peak_bytes(fn) -> int:
    """Peak bytes traced while ``fn`` runs (numpy arrays included)."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _long_wav(path: Path, minutes: float) -> Path:
    n = int(minutes * 60 * 16000)
    x = (0.2 * np.sin(np.arange(n) * 0.05)).astype(np.float32)
    write_wav(path, x)
    return path


def test_memory_does_not_grow_with_length(tmp_path: Path) -> None:
    """Decoding (and the energy engine) hold a few blocks, not the signal: a 6-minute clip peaks no
    higher than a 2-minute one (23 MB of float32 samples more if it were held)."""
    from artalk_core.pipeline import generate

    short, long = _long_wav(tmp_path / "2min.wav", 2), _long_wav(tmp_path / "6min.wav", 6)

    def decode(path: Path) -> int:
        s = iter_audio(path)  # (hashing the file reads 4 MB pieces: measured from here on)
        tracemalloc.reset_peak()
        for _ in s:
            pass
        return tracemalloc.get_traced_memory()[1]

    def decode_peak(path: Path) -> int:
        tracemalloc.start()
        try:
            return decode(path)
        finally:
            tracemalloc.stop()

    decode_peak(short)  # warm up (imports, filter caches)
    d_short, d_long = decode_peak(short), decode_peak(long)
    assert d_long < 2_000_000 and d_long - d_short < 200_000
    _peak_bytes(lambda: generate(short, raw=True, motion=MotionOptions(engine="energy")))
    e_short = _peak_bytes(lambda: generate(short, raw=True, motion=MotionOptions(engine="energy")))
    e_long = _peak_bytes(lambda: generate(long, raw=True, motion=MotionOptions(engine="energy")))
    # the motion [T,106] float32 itself (and per-frame levels) still grow: 6000 more frames
    motion_growth = 6000 * 106 * 4
    assert e_long - e_short < 3 * motion_growth + 2_000_000


def test_generate_holds_few_blocks(tmp_path: Path, tiny_assets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The model path pulls audio blocks as it generates: never more than two blocks decoded ahead
    of the chunks generated."""
    import artalk_core.audio as audio_mod
    from artalk_core.pipeline import generate

    wav = _long_wav(tmp_path / "1min.wav", 1.0)
    pulled = {"blocks": 0}
    original = audio_mod.AudioStream._blocks

    def counting(self):  # type: ignore[no-untyped-def]
        for b in original(self):
            pulled["blocks"] += 1
            yield b

    monkeypatch.setattr(audio_mod.AudioStream, "_blocks", counting)
    ahead = []

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "generate":
            ahead.append(pulled["blocks"] * 8 - done)  # chunks decoded but not yet generated

    m = generate(wav, raw=True, progress=progress, model=ModelOptions(assets=tiny_assets, device="cpu"))
    assert m.frames == 1500 and pulled["blocks"] == 2
    assert ahead and max(ahead) <= 2 * 8


def test_audio_object_still_accepted(tiny_assets: Path) -> None:
    from artalk_core.pipeline import generate

    clip = load_audio(FIXTURE / "speech_16k.wav")
    assert isinstance(clip, Audio)
    assert generate(clip, raw=True, motion=MotionOptions(engine="energy")).frames == 252


def test_stream_read_once() -> None:
    s = iter_audio(FIXTURE / "speech_16k.wav")
    list(s)
    with pytest.raises(InputError):
        iter(s)
