"""artalk_core: speech-driven 3D head animation (ARTalk), the library behind the ``artalk`` CLI."""

__version__ = "0.1.0"
