"""Motion engines. ``energy`` needs no weights (loudness-driven); the ARTalk model lives in ``artalk_core.model``."""

from __future__ import annotations
