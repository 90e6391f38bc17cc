"""The reference's logo watermark (GAGAVATAR.md §7): an RGBA image resized to 82 x 256 (bilinear,
antialiased) blended into the bottom-right corner of the clamped frame with 0.8 x its alpha.
None by default here; ``--watermark PATH`` asks for it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from artalk_core.errors import InputError
from artalk_core.fileio import PathLike

WATERMARK_SIZE: tuple[int, int] = (82, 256)
"""(height, width) of the logo on the 512 px frame."""
WATERMARK_OPACITY: float = 0.8


def load_watermark(path: PathLike) -> Any:
    """The logo as a float tensor [4,82,256] (RGBA in [0,1], resized as the reference does).

    Greyscale or RGB images count as opaque. InputError for a missing or unreadable image.
    """
    import numpy as np
    import torch

    p = Path(path)
    if not p.is_file():
        raise InputError(f"watermark image not found: {p}")
    import av
    try:
        with av.open(str(p)) as container:
            frame = next(container.decode(video=0))
            rgba = frame.to_ndarray(format="rgba").astype(np.float32) / 255.0
    except Exception as e:  # FFmpeg errors, no video stream
        raise InputError(f"cannot read watermark image {p}: {type(e).__name__}: {e}") from None
    logo = torch.from_numpy(rgba).permute(2, 0, 1).unsqueeze(0)
    logo = torch.nn.functional.interpolate(logo, size=WATERMARK_SIZE, mode="bilinear", align_corners=False,
                                           antialias=True)
    return logo[0]


def apply_watermark(images: Any, logo: Any) -> Any:
    """Frames [B,3,H,W] in [0,1] -> a new tensor with the logo [4,h,w] blended at the bottom right:
    out = img (1 - 0.8 A) + rgb 0.8 A. InputError when the frame is smaller than the logo."""
    h, w = int(logo.shape[1]), int(logo.shape[2])
    if images.shape[-2] < h or images.shape[-1] < w:
        raise InputError(f"the watermark ({w}x{h}) does not fit a {images.shape[-1]}x{images.shape[-2]} frame")
    logo = logo.to(images)
    alpha = logo[3:4] * WATERMARK_OPACITY
    out = images.clone()
    region = out[..., -h:, -w:]
    out[..., -h:, -w:] = region * (1.0 - alpha) + logo[:3] * alpha
    return out
