"""The Blocks page: the reference tool's layout (input | avatar control | video, then examples).

Two events call the same generation: the Generate button (the page's Audio/Text switch picks the
input) and an API-only event named ``generate`` whose keyword parameters are ``audio``, ``text``,
``language``, ``appearance``, ``style`` and ``style_file``. Both share one concurrency slot
(``concurrency_id="model"``, limit 1): one generation at a time on the model.

The button's chain: the inputs are checked (each wrong one marked, nothing changed), then the last
result and message are cleared and the small Cancel enabled, then the generation runs with one
progress bar on the video; its result, or why there is none ("Cancelled." included), shows under
"Generated video" rather than in a popup that would outlive it, and Cancel is disabled again.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from artalk_core.app.config import LANGUAGES, MESH, AppConfig, Catalog
from artalk_core.app.handlers import (
    MSG_CANCELLED,
    MSG_NO_INPUT,
    Generator,
    ProgressBridge,
    Refused,
    gradio_callback,
    preview_glb,
    run_generation,
    session_of,
)
from artalk_core.app.inputs import EXAMPLE, FILE, TEXT, InputPolicy, checked_blocks
from artalk_core.app.jobs import JobStore

TITLE = "ARTalk"
CSS = """
#notice { border: 1px solid #d9a400; background: #fff8e1; color: #5c4400; border-radius: 8px;
          padding: 4px 12px; }
#notice p { margin: 4px 0; }
#avatar-gallery .grid-container { grid-template-columns: repeat(auto-fill, minmax(96px, 128px)) !important; }
/* download names whole, as one line of text that wraps (Gradio cut the stem, so ".motion.safetensors" and
   "_motions.pt" looked alike; font-size 0 drops the space between its stem and extension spans); no
   "remove" buttons on results */
#downloads td.filename { display: block; font-size: 0; overflow-wrap: anywhere; }
#downloads td.filename span { font-size: var(--text-md); overflow: visible; white-space: normal; }
#downloads .label-clear-button { display: none; }
#status .status { border-radius: 8px; padding: 6px 12px; }
#status .error { border: 1px solid #e57373; background: #fdecea; color: #7f1d1d; }
#status .note { border: 1px solid #bdbdbd; background: #f5f5f5; color: #333; }
"""
MSG_NO_AUDIO = "Please upload or record speech."
MSG_NO_TEXT = "Please type a text."
PREVIEW_HEIGHT = 320
PREVIEW_CAMERA = (90.0, 90.0, None)
"""The 3D preview's camera (alpha, beta degrees, radius): facing the head; radius None = the viewer's framing."""
STYLE_FILE_TYPES = [".pt", ".safetensors", ".ndjson", ".jsonl"]
"""Style clips: a reference ``style_motion/*.pt`` or any motion file of ours (read by content)."""


def status_html(message: str = "", kind: str = "error") -> Any:
    """The page's status line: ``message`` (plain text, escaped here) in a box of ``kind`` (error |
    note); hidden while there is nothing to say."""
    import gradio as gr

    box = f'<div class="status {kind}">{html.escape(message)}</div>' if message else ""
    return gr.update(value=box, visible=bool(message))


def build_blocks(catalog: Catalog, generator: Generator, jobs: JobStore, *, max_seconds: float,
                 max_upload_bytes: int | None = None, delete_cache: tuple[int, int] | None = None,
                 pictures: list[tuple[str, Path]] | None = None) -> Any:
    """The ``gr.Blocks`` page (not launched, queue not yet configured); ``delete_cache`` as Gradio's.

    ``pictures``: (appearance id, PNG) of the photoreal avatars (:func:`artalk_core.app.thumbs.avatar_thumbnails`),
    shown as a gallery under the Appearance list; clicking one selects that avatar. Every event's
    inputs pass :class:`~artalk_core.app.inputs.InputPolicy` first (files: this server's uploads and
    examples only, at most ``max_upload_bytes``; default: :class:`AppConfig`'s).
    """
    import gradio as gr

    limit = AppConfig().max_upload_bytes if max_upload_bytes is None else max_upload_bytes
    policy = InputPolicy(cache=jobs.cache, max_bytes=limit,
                         examples=[e.audio for e in catalog.examples if e.audio is not None])
    generate = gradio_callback(generator)

    async def ui_generate(mode: str, audio: str | None, text: str | None, language: str, appearance: str,
                          style: str, style_file: str | None, request: gr.Request | None = None,
                          progress: Any = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008
        """The page's generation: only the input the Audio/Text switch shows counts. Shows the result
        (and its 3D preview), or says under the video why there is none (no popup to outlive it)."""
        audio, text = (None, text) if mode == "Text" else (audio, None)
        try:
            video, files = await run_generation(generator, audio=audio, text=text, language=language,
                                                appearance=appearance, style=style, style_file=style_file,
                                                session=session_of(request), progress=ProgressBridge(progress))
        except Refused as e:
            kind = "note" if e.message == MSG_CANCELLED else "error"
            return None, None, None, status_html(e.message, kind), gr.update(interactive=False)
        return video, files, preview_glb(files), status_html(), gr.update(interactive=False)

    ui_generate.__annotations__["request"] = gr.Request

    def ui_checked(*inputs: Any) -> None:
        """The step that carries the validator (a Python function: with none, nothing is validated)."""

    def ui_start() -> tuple[Any, ...]:
        """Once the inputs passed: clear the last result and its message, enable Cancel."""
        return None, None, None, status_html(), gr.update(interactive=True)

    def ui_validate(mode: str, audio: str | None, text: str | None, language: str, appearance: str, style: str,
                    style_file: str | None) -> list[Any]:
        """Before queueing (a request thread, nothing decoded): a message on each input that is wrong."""
        audio, text = (None, text) if mode == "Text" else (audio, None)
        problems = generator.input_problems(audio=audio, text=text, language=language, appearance=appearance,
                                            style=style, style_file=style_file)
        if problems.get("audio") == MSG_NO_INPUT:
            problems = {"text": MSG_NO_TEXT} if mode == "Text" else {"audio": MSG_NO_AUDIO}
        names = ["mode", "audio", "text", "language", "appearance", "style", "style_file"]
        return [gr.validate(name not in problems, problems.get(name, "")) for name in names]

    def cancel(request: gr.Request) -> tuple[Any, Any]:
        """Cancel: the event is cancelled by Gradio (queued or running); the running job stops at its next step."""
        jobs.cancel_session(session_of(request))
        return status_html(MSG_CANCELLED, "note"), gr.update(interactive=False)

    cancel.__annotations__["request"] = gr.Request

    def switch(mode: str) -> tuple[Any, ...]:
        text_mode = mode == "Text"
        return gr.update(visible=not text_mode), gr.update(visible=text_mode), gr.update(visible=text_mode)

    picked = [ident for ident, _ in pictures or []]

    def pick(evt: gr.SelectData) -> Any:
        """A click on an avatar's picture selects it in the Appearance list."""
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) and evt.index else evt.index
        if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(picked):
            return gr.update(value=picked[index])
        return gr.update()

    pick.__annotations__["evt"] = gr.SelectData

    styles = ["default", *catalog.styles]
    with checked_blocks(policy)(title=TITLE, analytics_enabled=False, delete_cache=delete_cache) as demo:
        gr.Markdown(f"# {TITLE}\nSpeech-driven 3D head animation: speech or text in, a talking head out. "
                    "[Live: speak, and the head speaks with you →](/live)", elem_id="intro")
        if catalog.notice:
            gr.Markdown(html.escape(catalog.notice), elem_id="notice")
        with gr.Row(equal_height=False):
            with gr.Column():
                gr.Markdown("### Input audio & text")
                mode = gr.Radio(["Audio", "Text"], value="Audio", label="Input", elem_id="mode")
                audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Speech",
                                 elem_id="audio", buttons=["download"])
                text = gr.Textbox(label="Text", lines=4, visible=False, elem_id="text",
                                  placeholder="Type what the head should say")
                # a fixed menu: typing into a filterable one chose nothing and kept the last language
                language = gr.Dropdown(LANGUAGES, value="en", label="Language", visible=False, elem_id="language",
                                       filterable=False)
                gr.Markdown(f"At most {max_seconds:g} s of speech.", elem_id="limits")
            with gr.Column():
                gr.Markdown("### Avatar control")
                appearance = gr.Dropdown(catalog.appearances, value=MESH, label="Appearance", elem_id="appearance",
                                         filterable=False)
                if pictures:
                    gallery = gr.Gallery([(str(path), ident) for ident, path in pictures], label="Photoreal avatars",
                                         elem_id="avatar-gallery", columns=4, height=300, allow_preview=False,
                                         interactive=False, object_fit="cover", buttons=[])
                    gallery.select(pick, None, appearance, queue=False, api_visibility="private")
                style = gr.Dropdown(styles, value="default", label="Style", elem_id="style", filterable=False)
                style_file = gr.File(label="...or upload a style / motion file", file_types=STYLE_FILE_TYPES,
                                     type="filepath", elem_id="style-file")
            with gr.Column():
                gr.Markdown("### Generated video")
                status = gr.HTML("", elem_id="status", visible=False)
                video = gr.Video(label="Video", autoplay=True, interactive=False, elem_id="video", buttons=["download"])
                files = gr.File(label="Downloads", file_count="multiple", interactive=False, elem_id="downloads")
                # page only (the API's outputs stay (video, files)); Gradio's Babylon.js viewer plays the
                # glTF's animation (skin + morph targets), silent: the sound is in the video
                preview = gr.Model3D(label="3D preview (.glb)", interactive=False, elem_id="preview-3d",
                                     height=PREVIEW_HEIGHT, camera_position=PREVIEW_CAMERA)
        with gr.Row():
            run_btn = gr.Button("Generate", variant="primary", elem_id="generate", scale=4)
            cancel_btn = gr.Button("Cancel", variant="secondary", size="sm", elem_id="cancel", interactive=False,
                                   scale=0, min_width=120)
        if catalog.examples:
            rows = [["Text" if e.text is not None else "Audio", str(e.audio) if e.audio is not None else None,
                     e.text or "", e.language, e.appearance, e.style] for e in catalog.examples]
            examples = gr.Examples(rows, inputs=[mode, audio, text, language, appearance, style], label="Examples",
                                   example_labels=[e.label for e in catalog.examples], elem_id="examples")
            policy.add(examples.dataset, EXAMPLE, "example")
        api_btn = gr.Button(visible=False)
        for component, kind, name in ((mode, TEXT, "input switch"), (audio, FILE, "speech"), (text, TEXT, "text"),
                                      (language, TEXT, "language"), (appearance, TEXT, "appearance"),
                                      (style, TEXT, "style"), (style_file, FILE, "style file")):
            policy.add(component, kind, name)

        mode.change(switch, mode, [audio, text, language], queue=False, api_visibility="private")
        inputs = [audio, text, language, appearance, style, style_file]
        busy: dict[str, Any] = dict(concurrency_limit=1, concurrency_id="model")
        outputs = [video, files, preview, status, cancel_btn]
        # Validate, then clear (so a refusal keeps the last result), then generate: three steps, as a
        # generator function (one event) cannot update the Model3D viewer in Gradio 6. One progress
        # bar, on the video (not one per output panel).
        job = (run_btn.click(ui_checked, [mode, *inputs], None, validator=ui_validate, show_progress="hidden",
                             api_visibility="private")
               .success(ui_start, None, outputs, queue=False, show_progress="hidden", api_visibility="private")
               .success(ui_generate, [mode, *inputs], outputs, api_visibility="private", show_progress="full",
                        show_progress_on=[video], **busy))
        api_job = api_btn.click(generate, inputs, [video, files], api_name="generate",
                                api_description="Speech file or text -> (video file, [motion, reference "
                                                "motion .pt, vertices, glTF .glb])", **busy)
        cancel_btn.click(cancel, None, [status, cancel_btn], cancels=[job, api_job], queue=False,
                         api_visibility="private")
    return demo


__all__ = ["CSS", "MSG_NO_AUDIO", "MSG_NO_TEXT", "PREVIEW_CAMERA", "PREVIEW_HEIGHT", "STYLE_FILE_TYPES", "TITLE", "build_blocks",
           "status_html"]
