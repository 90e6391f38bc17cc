#!/usr/bin/env bash
# Regenerates assets/speech_sample.wav: espeak-ng speaks a short English text (22,050 Hz), which
# artalk's own load_audio resamples to 16 kHz mono and write_wav stores as PCM16 with provenance.
# Usage: scripts/make_speech_sample.sh [output.wav]   (run from anywhere; needs espeak-ng)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/assets/speech_sample.wav}"
py="${PYTHON:-$root/.venv/bin/python}"
voice="en-us"
speed=160
text="Hello! This is artalk. It turns your speech into a talking head, \
moving the jaw, the lips and the head in time with every word."
command -v espeak-ng >/dev/null || { echo "espeak-ng is not installed (see scripts/sysdeps.sh)" >&2; exit 1; }
tmp="$(mktemp --suffix=.wav)"
trap 'rm -f "$tmp"' EXIT
espeak-ng -v "$voice" -s "$speed" -w "$tmp" "$text"
cd "$root"
"$py" - "$tmp" "$out" "$voice" "$speed" "$text" <<'PY'
import sys
import numpy as np
from artalk_core.audio import load_audio, write_wav
from artalk_core.fileio import provenance

src, out, voice, speed, text = sys.argv[1:6]
a = load_audio(src)
x = a.samples / max(float(np.max(np.abs(a.samples))), 1e-9) * 0.89  # peak at -1 dBFS
meta = provenance("scripts/make_speech_sample.sh",
                  options={"tts": "espeak-ng", "voice": voice, "speed": int(speed), "text": text},
                  inputs={"espeak_wav": a.sha256})
write_wav(out, x.astype(np.float32), metadata=meta)
print(f"wrote {out}: {a.duration:.2f} s, 16 kHz mono PCM16 (from {a.source_rate} Hz)", file=sys.stderr)
PY
