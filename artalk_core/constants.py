"""Fixed numbers of ARTalk and of the file formats. Everything else imports them from here."""

from __future__ import annotations

# Audio
SAMPLE_RATE: int = 16000
"""Speech sample rate the model was trained on (Hz)."""

# Motion
FPS: int = 25
"""Motion and video frame rate (frames per second)."""
SAMPLES_PER_FRAME: int = SAMPLE_RATE // FPS  # 640
MOTION_DIM: int = 106
"""Channels of one motion frame."""
EXP_DIM: int = 100
SHAPE_DIM: int = 300
NUM_JOINTS: int = 5
"""FLAME joints: 0 root (global rotation), 1 neck, 2 jaw, 3 left eye (+x), 4 right eye."""
EXP_SLICE = slice(0, 100)
"""FLAME expression coefficients."""
GLOBAL_ROT_SLICE = slice(100, 103)
"""Global head rotation, axis-angle (radians)."""
JAW_SLICE = slice(103, 106)
"""Jaw rotation, axis-angle (radians); 104:106 are zeroed by post-processing."""
JAW_OPEN_CHANNEL: int = 103
JAW_YZ_SLICE = slice(104, 106)
CHANNEL_LAYOUT: str = "expression[0:100],global_rotation[100:103],jaw_rotation[103:106]"

# Model chunking
CHUNK_FRAMES: int = 100
"""Frames generated per autoregressive chunk (4 s)."""
CHUNK_SAMPLES: int = CHUNK_FRAMES * SAMPLES_PER_FRAME  # 64000
CHUNK_AUDIO_TOKENS: int = 199
"""wav2vec2 frames for one 64,000-sample chunk."""
STYLE_FRAMES: int = 50
"""Frames of a style clip (2 s)."""
DEFAULT_PATCH_NUMS: tuple[int, ...] = (1, 5, 25, 50, 100)

# Post-processing (the reference engine's Savitzky-Golay filter)
SAVGOL_WINDOW: int = 5
SAVGOL_ORDER: int = 2
SAVGOL_POSE_WINDOW: int = 9
SAVGOL_POSE_ORDER: int = 3
DEFAULT_CLIP_LENGTH: int = 750
"""Reference default maximum number of frames (30 s)."""

# Compute precision of encode/generate: the keys of artalk_core.model.artalk.PRECISIONS, and "auto"
# (the fastest of them here, measured once: artalk_core.model.precision)
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16", "auto")

# Rendering (the reference mesh video)
IMAGE_SIZE: int = 512
MESH_COLOR: tuple[int, int, int] = (142, 179, 247)
BACKGROUND_COLOR: tuple[int, int, int] = (255, 255, 255)
FOCAL_NDC: float = 12.0
CAMERA_DISTANCE: float = 2.0
LIGHT_POSITION: tuple[float, float, float] = (0.0, 1.0, 3.0)
AMBIENT: float = 0.5
DIFFUSE: float = 0.3
SPECULAR: float = 0.2
MATERIAL_SPECULAR: float = 0.6
SHININESS: float = 10.0
VIDEO_CRF: int = 18

# File names of the reference tool's asset folder
CHECKPOINT_NAME: str = "ARTalk_wav2vec.pt"
CONFIG_NAME: str = "config.json"
STYLE_DIR: str = "style_motion"
FLAME_NAME: str = "FLAME_with_eye.pt"
ASSETS_ENV: str = "ARTALK_ASSETS"
AVATAR_CHECKPOINT_FILE: str = "GAGAvatar/GAGAvatar.pt"
"""The photoreal (GAGAvatar) network, relative to the asset folder."""
TRACKED_FILE: str = "GAGAvatar/tracked.pt"
"""The tracked photoreal avatars, relative to the asset folder."""

# Batch runs (`artalk batch`)
BATCH_OUTPUT_KINDS: tuple[str, ...] = ("mp4", "motion", "vertices", "glb")
"""Files a batch row can ask for, in the order they are made."""
BATCH_AUDIO_SUFFIXES: frozenset[str] = frozenset(
    {".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus", ".aiff", ".aif", ".webm", ".mp4", ".mov", ".mkv"})
"""Files a batch over a folder takes as speech."""
BATCH_STATE_DIR: str = ".artalk-batch"
"""Folder inside a batch's output folder holding each clip's record and cached intermediates."""
BATCH_RESULTS_NAME: str = "results.jsonl"


# Live streams (`artalk serve`, the /live WebSocket; artalk_core/live)
LIVE_PORT: int = 8961
"""Default port of `artalk serve` (`artalk app` is 8960)."""
LIVE_MAX_STREAMS: int = 16
"""Default number of streams served at once; more are refused (close 1013)."""
LIVE_IDLE_SECONDS: float = 30.0
"""A stream whose client sends nothing for this long is closed (4000); the start message too."""
LIVE_SEND_QUEUE_LINES: int = 1000
"""Motion-stream lines (40 s of frames) queued for a client that does not read, before it is dropped (4001)."""
LIVE_MAX_AHEAD_SECONDS: float = 8.0
"""Audio a stream may have received but not computed (a sender faster than real time) before the
server stops reading from it (TCP backpressure): two model chunks."""
LIVE_MAX_TEXT_BYTES: int = 64 * 1024
"""Largest text message read (a start message is a few hundred bytes)."""
LIVE_MAX_BINARY_BYTES: int = 1 << 20
"""Largest PCM message read; a larger one gets an error line (32 s of 16 kHz s16 mono)."""
LIVE_MAX_FRAME_BYTES: int = 4 << 20
"""Largest message the WebSocket layer accepts at all (beyond it: close 1009 without an error line)."""
