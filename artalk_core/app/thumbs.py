"""Pictures of the photoreal avatars for the page's Appearance gallery, made once at app start.

Each tracked entry's source image (``image`` [3,512,512] float in [0,1]) becomes a small PNG in
the app's private root folder. The files are named by position (``avatar_000.png``...), never by
the avatar's name, so no user-chosen text reaches a path.
"""

from __future__ import annotations

from pathlib import Path

from artalk_core.app.config import MESH, Catalog
from artalk_core.constants import TRACKED_FILE
from artalk_core.errors import ArtalkError

THUMB_SIZE = 128
"""Side of an avatar's picture in the gallery, in pixels."""


def avatar_thumbnails(catalog: Catalog, folder: Path, *, size: int = THUMB_SIZE) -> list[tuple[str, Path]]:
    """(appearance id, PNG) for every photoreal avatar of ``catalog``, written into ``folder``.

    Empty (and nothing written) when the catalog lists no avatars, or the tracked file cannot be
    read now: the page then shows the Appearance list without pictures.
    """
    import numpy as np
    from PIL import Image

    names = [ident for _, ident in catalog.appearances if ident != MESH]
    if not names:
        return []
    try:
        from artalk_core.render.avatar.tracked import load_tracked  # type: ignore[import-not-found,unused-ignore]

        entries = load_tracked(catalog.assets / TRACKED_FILE)
    except (ImportError, ArtalkError):
        return []
    folder.mkdir(parents=True, exist_ok=True)
    pictures: list[tuple[str, Path]] = []
    for i, name in enumerate(names):
        entry = entries.get(name)
        if entry is None:
            continue
        pixels = (np.clip(np.asarray(entry.image, dtype=np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        picture = Image.fromarray(pixels.transpose(1, 2, 0)).resize((size, size), Image.Resampling.LANCZOS)
        path = folder / f"avatar_{i:03d}.png"
        picture.save(path, format="PNG")
        pictures.append((name, path))
    return pictures


__all__ = ["THUMB_SIZE", "avatar_thumbnails"]
