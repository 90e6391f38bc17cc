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
SHAPE_MAX_ABS: float = 100.0
"""Largest FLAME shape (identity) value accepted: shapes are in standard deviations (real heads
within about +-5); far beyond, the head is not a head, and at 1e20 float32 skinning overflows."""
MAX_VERTEX_ABS: float = 1e4
"""Largest vertex coordinate of a vertices file, written or read (metres). A FLAME head is about
0.3 across; values far beyond it are damage, and at ~1e19 the renderer's float32 products
overflow (a blank video)."""
MOTION_MAX_ABS: float = 100.0
"""Largest motion value accepted, in any channel, wherever motion is read or written: expressions
are in standard deviations (real motion stays within about +-5) and rotations in radians (a
turn is 6.28); far beyond, no FLAME parameter means a head, and at ~1e30 the renderer's float32
products overflow. The same bound as :data:`SHAPE_MAX_ABS`."""
VERTICES_MAX_COUNT: int = 1 << 20
"""Most vertices per frame (and faces) a vertices file may hold (FLAME has 5023): checked before
any frame is read, since a gzip chunk of 9 KB can announce 300 MB of vertices."""
VERTICES_READ_BYTES: int = 1 << 26
"""Most bytes of vertices read at once (64 MiB): frames are read in blocks of this size, and a
file whose HDF5 chunks are larger (each is decompressed whole) is refused."""
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

MIN_EXPORT_FPS: float = 1.0
"""Lowest keyframe rate of a glTF export (``artalk export --fps``): 25x slow motion. Slower rates
only stretch the animation towards overflow (at 1e-30 fps a second of motion lasts 1e31 s, and
at 1e-38 its duration is no longer a float32, which glTF stores)."""
MAX_EXPORT_FPS: float = 1000.0
"""Highest keyframe rate of a glTF export (``artalk export --fps``)."""

# Model chunking
CHUNK_FRAMES: int = 100
"""Frames generated per autoregressive chunk (4 s)."""
CHUNK_SAMPLES: int = CHUNK_FRAMES * SAMPLES_PER_FRAME  # 64000
CHUNK_AUDIO_TOKENS: int = 199
"""wav2vec2 frames for one 64,000-sample chunk (the released model; Mimi gives 50, see AUDIO_ENCODERS)."""
AUDIO_ENCODERS: tuple[str, ...] = ("wav2vec", "mimi")
"""Values of the model config's ``AR_CONFIG.AUDIO_ENCODER``: wav2vec2 (xls-r-300m, 1024-d at 50 Hz) or
Kyutai's Mimi codec encoder (512-d at 12.5 Hz); the first is the default and the released one."""
MIMI_SAMPLE_RATE: int = 24000
"""The Mimi encoder's input rate: each 4-s chunk is resampled 16 kHz -> 24 kHz first, as the reference does."""
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
MIN_IMAGE_SIZE: int = 16
MAX_IMAGE_SIZE: int = 4096
"""Image sizes `--size` takes (pixels, square)."""
MESH_RENDERERS: tuple[str, ...] = ("gl", "pytorch3d")
"""Mesh renderers: moderngl offscreen (default) and pytorch3d (where installed)."""
AVATAR_NOISE_MODES: tuple[str, ...] = ("seeded", "stored", "none")
"""The photoreal upsampler's noise: from --seed, the checkpoint's buffers, or none."""
SEED_LIMIT: int = 2**32
"""Seeds are 0 <= seed < SEED_LIMIT (numpy's limit)."""
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

# Untrusted JSON (glTF documents, motion streams, metadata): longer integers are refused, since
# Python converts them in quadratic time (a file of 4000-digit numbers would parse for minutes)
JSON_MAX_INT_DIGITS: int = 100

# File names of the reference tool's asset folder
CHECKPOINT_NAME: str = "ARTalk_wav2vec.pt"
CHECKPOINT_NAMES: dict[str, str] = {"wav2vec": CHECKPOINT_NAME, "mimi": "ARTalk_mimi.pt"}
"""The checkpoint of each audio encoder, as the reference's loading code names it (``ARTalk_<encoder>.pt``);
``ARTalk_mimi.pt`` is not released (yet)."""
CONFIG_NAME: str = "config.json"
STYLE_DIR: str = "style_motion"
FLAME_NAME: str = "FLAME_with_eye.pt"
ASSETS_ENV: str = "ARTALK_ASSETS"
AVATAR_CHECKPOINT_FILE: str = "GAGAvatar/GAGAvatar.pt"
"""The photoreal (GAGAvatar) network, relative to the asset folder."""
TRACKED_FILE: str = "GAGAvatar/tracked.pt"
"""The tracked photoreal avatars, relative to the asset folder."""

# Evaluation metrics (`artalk eval`, the reference training code's metrics.py)
FLAME_VERTICES: int = 5023
"""Vertices of the FLAME head, which the metrics' lip and upper-face index lists refer to."""
METRICS_MM: float = 1000.0
"""Vertices are in metres; the metrics are in millimetres."""
FDD_SCALE: float = 100.0
"""FDD is reported x100, as the reference does."""
METRIC_MASK_MAX_INDICES: int = 1 << 24
"""Most entries an ``eval --masks`` index list may have (the reference's have 254 and 884): an .npz
member's size is checked in its header, before it is decompressed."""

# Photoreal avatar (GAGAvatar) config limits: sizes from --avatar-config are checked against these
# before any module is built (a depth of 10**9 builds for ever, a width of 2**40 overflows torch's
# storage size even on the meta device); the released network is far inside them
AVATAR_MAX_SIZE: int = 1 << 16
"""Largest width, image size, channel count or point count of an avatar network."""
AVATAR_MAX_REPEATS: int = 64
"""Largest repeat count (ViT depth, mapping layers, harmonics, MLP ratio) of an avatar network."""

# ARTalk model config limits: every integer of config.json (its WAV2VEC2_CONFIG / MIMI_CONFIG
# overrides too) is checked against these before any module is built, as the avatar's are; the
# released sizes are far inside them. A config within them but unlike its checkpoint is then found by
# comparing the checkpoint's key shapes with a model made on the meta device (nothing allocated).
MODEL_MAX_SIZE: int = 1 << 16
"""Largest width, head count, kernel, codebook or other size in a model config."""
MODEL_MAX_REPEATS: int = 128
"""Largest layer count (T_DEPTH, num_hidden_layers, num_quantizers...), PREV_RATIO or list length."""

# Batch runs (`artalk batch`)
BATCH_OUTPUT_KINDS: tuple[str, ...] = ("mp4", "motion", "vertices", "glb")
"""Files a batch row can ask for, in the order they are made."""
BATCH_AUDIO_SUFFIXES: frozenset[str] = frozenset(
    {".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus", ".aiff", ".aif", ".webm", ".mp4", ".mov", ".mkv"})
"""Files a batch over a folder takes as speech."""
BATCH_STATE_DIR: str = ".artalk-batch"
"""Folder inside a batch's output folder holding each clip's record and cached intermediates."""
BATCH_RESULTS_NAME: str = "results.jsonl"
BATCH_CLIP_TRIES: int = 2
"""A clip whose worker process dies under it (SIGKILL, the out-of-memory killer) is tried this many
times in all, on a fresh worker, before it fails."""
BATCH_STOP_GRACE_S: float = 5.0
"""After Ctrl-C/SIGTERM, seconds the workers get to unwind (removing their temporary files) before
they are killed."""
BATCH_RAY_TIMEOUT_S: float = 10.0
"""Seconds to wait for a Ray cluster address to answer (`--ray-timeout`) before giving up."""
BATCH_MAX_CELL_CHARS: int = 1 << 24
"""Longest cell of a jobs file (characters, 16 Mi): a longer one fails its row (csv.field_size_limit)."""
BATCH_SUMMARY_ROWS: int = 50
"""Clips listed in the summary table on stderr; a bigger batch lists its failures only, up to this many."""


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
