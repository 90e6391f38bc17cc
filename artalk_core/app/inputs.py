"""What a request may hand the page's functions, checked before Gradio touches a value.

Gradio checks that an input file was uploaded through it only when the app was started with
``Blocks.launch()``; we mount it on our own server (see :mod:`artalk_core.app.server`), so without
this a ``queue/join`` naming ``{"path": "/any/server/file"}`` had that file hashed and copied into
the cache on the event loop (``/dev/zero`` hashed forever, a FIFO blocked ``open()``, the page
stopped answering everyone), then processed. :class:`InputPolicy` is the rule: a file input may name
only a regular file in Gradio's upload cache under our private root (what this server received as
an upload; its examples are copied there too) or one of its own example files, at most
``--max-upload-mb``. Anything else is refused on the path's text alone, before any file system call,
so neither the refusal nor its wording depends on whether the path exists, and nothing can block.

Every other input must be text (or nothing), a menu's one of its values, and the examples table's
value the number of one of its rows; an event's data (a click on a picture) must be what the function
reads from it (a file it names passes the rule above). A refusal names the input in words; it
never echoes a path (a menu's unknown value is quoted, cut at 40 characters). Whatever still fails
inside one of the page's functions is logged in one line (the traceback only with ``--debug``) and
answered in words, never with Gradio's empty error.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FILE = "file"
TEXT = "text"
EXAMPLE = "example"
MSG_FAILED = "Something went wrong on the server; its log has the details."
MSG_EVENT = "The request's event data is not what this function takes."


def _kind_of(value: Any) -> str:
    """A value's JSON kind in words (for a refusal; the value itself is never echoed)."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "something else"


def file_objects(value: Any) -> Iterator[dict[str, Any]]:
    """Every dict with a ``path`` key inside ``value`` (how Gradio recognizes a file, with or without
    its ``meta`` marker; pydantic would accept either as a FileData)."""
    if isinstance(value, dict):
        if "path" in value:
            yield value
        for item in value.values():
            yield from file_objects(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from file_objects(item)


@dataclass
class InputPolicy:
    """The inputs of the page's functions: which are files, which text, and what a file may be.

    ``cache``: Gradio's upload cache (``GRADIO_TEMP_DIR``, under the JobStore root). ``examples``:
    the app's own example files. ``names``: component id -> (FILE or TEXT, the input in words).
    """

    cache: Path
    max_bytes: int
    examples: Iterable[Path] = ()
    names: dict[int, tuple[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._roots = {os.path.normpath(str(self.cache)), os.path.realpath(self.cache)}
        self._examples = {os.path.normpath(str(p)) for p in self.examples} | {os.path.realpath(p)
                                                                             for p in self.examples}

    def add(self, component: Any, kind: str, name: str) -> None:
        """Declare ``component`` (a Gradio input) a FILE or TEXT input called ``name`` in messages."""
        self.names[component._id] = (kind, name)

    def _inside_cache(self, path: str) -> bool:
        return any(path.startswith(root + os.sep) for root in self._roots)

    def path_problem(self, path: Any, name: str) -> str | None:
        """Why ``path`` may not be opened as the input ``name`` (None: it may)."""
        refused = f"The {name} must be a file uploaded to this server (with gradio_client: handle_file(path))."
        if not isinstance(path, str) or not path or "\0" in path or not os.path.isabs(path):
            return refused
        norm = os.path.normpath(path)
        if norm in self._examples:
            return None
        if not self._inside_cache(norm):
            return refused  # decided on the text alone: no file system call, nothing revealed
        try:
            info = os.lstat(norm)  # inside our own cache: no FIFO, device or network mount there
        except FileNotFoundError:
            return f"The uploaded {name} is no longer on this server (uploads are removed after a while): " \
                   "upload it again."
        except OSError:
            return refused
        if not stat.S_ISREG(info.st_mode) or not self._inside_cache(os.path.realpath(norm)):
            return refused
        if info.st_size > self.max_bytes:
            return (f"The {name} is too large ({info.st_size / 2**20:.1f} MB): this server takes files up to "
                    f"{self.max_bytes / 2**20:g} MB.")
        return None

    def value_problem(self, component: Any, value: Any) -> str | None:
        """Why ``value`` is not acceptable for ``component`` (None: it is)."""
        kind, name = self.names.get(getattr(component, "_id", -1), ("", "input"))
        if kind == FILE and value is not None and not (isinstance(value, dict) and "path" in value):
            return f"The {name} must be an uploaded file (with gradio_client: handle_file(path)), not {_kind_of(value)}."
        if kind == TEXT and value is not None and not isinstance(value, str):
            return f"The {name} must be text, not {_kind_of(value)}."
        if kind == EXAMPLE:  # the examples table sends the number of the row clicked
            rows = len(getattr(component, "raw_samples", None) or ())
            if not (isinstance(value, int) and not isinstance(value, bool) and 0 <= value < rows):
                return f"The {name} must be the number of one of the page's {rows} examples (0 to {rows - 1})."
        choices = getattr(component, "choices", None)
        if isinstance(value, str) and choices and not getattr(component, "allow_custom_value", False):
            # a menu: Gradio's own refusal ("Value: x is not in the list of choices") names no input
            values = [str(c[1]) if isinstance(c, (list, tuple)) else str(c) for c in choices]
            if value not in values:
                shown = value if len(value) <= 40 else value[:40] + "..."
                return f"Unknown {name} '{shown}': choose one of {', '.join(values)}."
        for obj in file_objects(value):
            problem = self.path_problem(obj.get("path"), name if kind == FILE else "file")
            if problem is not None:
                return problem
        return None

    def problem(self, components: list[Any], values: list[Any]) -> str | None:
        """The first refusal for an event's input ``values`` (one per component), None if all pass."""
        if len(values) != len(components):
            return f"The request carries {len(values)} input values; this function takes {len(components)}."
        for component, value in zip(components, values):
            problem = self.value_problem(component, value)
            if problem is not None:
                return problem
        return None

    def event_problem(self, fn: Any, data: Any) -> str | None:
        """Why an event's ``data`` (the JSON a click sends) is not what ``fn`` reads from it: each of
        its ``gr.EventData`` parameters must be made from it as Gradio will (None: it is fine)."""
        import inspect
        import typing

        from gradio import EventData

        try:
            hints = typing.get_type_hints(fn)
        except Exception:  # an annotation that does not resolve: Gradio passes no event data either
            return None
        wanted = [t for t in hints.values() if inspect.isclass(t) and issubclass(t, EventData)]
        for cls in wanted:
            try:
                cls(None, data)
            except Exception:
                return MSG_EVENT
        if wanted:
            for obj in file_objects(data):
                problem = self.path_problem(obj.get("path"), "file")
                if problem is not None:
                    return problem
        return None


def checked_blocks(policy: InputPolicy) -> type:
    """``gr.Blocks`` whose events refuse (in words, as ``gr.Error``) inputs ``policy`` does not allow,
    before Gradio preprocesses them (copies files into its cache, validates them with pydantic), and
    whose functions never answer with an empty error: what fails in them is logged in one line."""
    import inspect
    import logging

    import gradio as gr

    log = logging.getLogger("artalk.app")
    process_api = inspect.signature(gr.Blocks.process_api)

    class Refusal(gr.Error):
        """gr.Error whose text is its message (gr.Error's is its repr: quoted in a 400's detail)."""

        def __init__(self, message: str, title: str = "Refused") -> None:
            super().__init__(message, title=title, print_exception=False)

        def __str__(self) -> str:
            return str(self.message)

    class CheckedBlocks(gr.Blocks):
        async def process_api(self, block_fn: Any, *args: Any, **kwargs: Any) -> Any:
            fn = self.fns[block_fn] if isinstance(block_fn, int) else block_fn
            event = process_api.bind(self, block_fn, *args, **kwargs).arguments.get("event_data")
            if fn.fn is not None and event is not None:
                problem = policy.event_problem(fn.fn, getattr(event, "_data", None))
                if problem is not None:
                    raise Refusal(problem)
            try:
                return await super().process_api(block_fn, *args, **kwargs)
            except gr.Error:
                raise
            except Exception:
                # the traceback goes to the log's handler (the CLI prints it with --debug only)
                log.exception("the page's function %s failed", fn.name)
                raise Refusal(MSG_FAILED, title="Error") from None

        async def preprocess_data(self, block_fn: Any, inputs: list[Any], *args: Any, **kwargs: Any) -> Any:
            problem = policy.problem(list(block_fn.inputs), list(inputs))
            if problem is not None:
                raise Refusal(problem)
            try:
                return await super().preprocess_data(block_fn, inputs, *args, **kwargs)
            except gr.Error:
                raise
            except Exception as e:  # Gradio's own wording names its internals (pydantic, components)
                log.warning("refused a request whose inputs Gradio could not read: %s", e)
                raise Refusal("The request's inputs could not be read.") from None

    return CheckedBlocks


__all__ = ["EXAMPLE", "FILE", "MSG_EVENT", "MSG_FAILED", "TEXT", "InputPolicy", "checked_blocks", "file_objects"]
