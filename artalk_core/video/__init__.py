"""Video: H.264 writing frame by frame (:mod:`~artalk_core.video.writer`), adding speech to a video
(:mod:`~artalk_core.video.mux`), and reading a video's facts and frames (:mod:`~artalk_core.video.probe`)."""

from __future__ import annotations

from artalk_core.video.mux import mux
from artalk_core.video.probe import count_video_frames, extract_frame, probe_video
from artalk_core.video.writer import (
    AAC_FRAME,
    DEFAULT_PRESET,
    VIDEO_CONTAINERS,
    X264_PRESETS,
    VideoWriter,
    video_container,
    write_video,
)

__all__ = ["AAC_FRAME", "DEFAULT_PRESET", "VIDEO_CONTAINERS", "X264_PRESETS", "VideoWriter", "count_video_frames",
           "extract_frame", "mux", "probe_video", "video_container", "write_video"]
