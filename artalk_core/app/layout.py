"""The Blocks page: the reference tool's layout (input | avatar control | video, then examples).

Two events call the same generation: the Generate button (the page's Audio/Text switch picks the
input) and an API-only event named ``generate`` whose keyword parameters are ``audio``, ``text``,
``language``, ``appearance``, ``style`` and ``style_file``. Both share one concurrency slot
(``concurrency_id="model"``, limit 1): one generation at a time on the model.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from artalk_core.app.config import LANGUAGES, MESH, Catalog
from artalk_core.app.handlers import MSG_NO_INPUT, Generator, gradio_callback, preview_glb
from artalk_core.app.jobs import JobStore

TITLE = "ARTalk"
CSS = """
#notice { border: 1px solid #d9a400; background: #fff8e1; color: #5c4400; border-radius: 8px;
          padding: 4px 12px; }
#notice p { margin: 4px 0; }
#avatar-gallery .grid-container { grid-template-columns: repeat(auto-fill, minmax(96px, 128px)) !important; }
"""
MSG_NO_AUDIO = "Please upload or record speech."
MSG_NO_TEXT = "Please type a text."
PREVIEW_HEIGHT = 320
PREVIEW_CAMERA = (90.0, 90.0, None)
"""The 3D preview's camera (alpha, beta degrees, radius): facing the head; radius None = the viewer's framing."""
STYLE_FILE_TYPES = [".pt", ".safetensors", ".ndjson", ".jsonl"]
"""Style clips: a reference ``style_motion/*.pt`` or any motion file of ours (read by content)."""


def build_blocks(catalog: Catalog, generator: Generator, jobs: JobStore, *, max_seconds: float,
                 delete_cache: tuple[int, int] | None = None, pictures: list[tuple[str, Path]] | None = None) -> Any:
    """The ``gr.Blocks`` page (not launched, queue not yet configured); ``delete_cache`` as Gradio's.

    ``pictures``: (appearance id, PNG) of the photoreal avatars (:func:`artalk_core.app.thumbs.avatar_thumbnails`),
    shown as a gallery under the Appearance list; clicking one selects that avatar.
    """
    import gradio as gr

    generate = gradio_callback(generator)

    async def ui_generate(mode: str, audio: str | None, text: str | None, language: str, appearance: str,
                          style: str, style_file: str | None, request: gr.Request | None = None,
                          progress: Any = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008
        """The page's button: only the input the Audio/Text switch shows counts; adds the 3D preview."""
        audio, text = (None, text) if mode == "Text" else (audio, None)
        video, files = await generate(audio, text, language, appearance, style, style_file, request=request,
                                      progress=progress)
        return video, files, preview_glb(files)

    ui_generate.__annotations__["request"] = gr.Request

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

    def cancel(request: gr.Request) -> None:
        jobs.cancel_session(getattr(request, "session_hash", None) or "")

    cancel.__annotations__["request"] = gr.Request

    def switch(mode: str) -> tuple[Any, ...]:
        text_mode = mode == "Text"
        return gr.update(visible=not text_mode), gr.update(visible=text_mode), gr.update(visible=text_mode)

    def clear() -> tuple[None, None, None]:
        return None, None, None

    picked = [ident for ident, _ in pictures or []]

    def pick(evt: gr.SelectData) -> Any:
        """A click on an avatar's picture selects it in the Appearance list."""
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        return gr.update(value=picked[index]) if isinstance(index, int) and 0 <= index < len(picked) else gr.update()

    pick.__annotations__["evt"] = gr.SelectData

    styles = ["default", *catalog.styles]
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=delete_cache) as demo:
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
                language = gr.Dropdown(LANGUAGES, value="en", label="Language", visible=False, elem_id="language")
                gr.Markdown(f"At most {max_seconds:g} s of speech.", elem_id="limits")
            with gr.Column():
                gr.Markdown("### Avatar control")
                appearance = gr.Dropdown(catalog.appearances, value=MESH, label="Appearance", elem_id="appearance")
                if pictures:
                    gallery = gr.Gallery([(str(path), ident) for ident, path in pictures], label="Photoreal avatars",
                                         elem_id="avatar-gallery", columns=4, height=300, allow_preview=False,
                                         interactive=False, object_fit="cover", buttons=[])
                    gallery.select(pick, None, appearance, queue=False, api_visibility="private")
                style = gr.Dropdown(styles, value="default", label="Style", elem_id="style")
                style_file = gr.File(label="...or upload a style / motion file", file_types=STYLE_FILE_TYPES,
                                     type="filepath", elem_id="style-file", height=120)
            with gr.Column():
                gr.Markdown("### Generated video")
                video = gr.Video(label="Video", autoplay=True, interactive=False, elem_id="video", buttons=["download"])
                files = gr.File(label="Downloads", file_count="multiple", interactive=False, elem_id="downloads")
                # page only (the API's outputs stay (video, files)); Gradio's Babylon.js viewer plays the
                # glTF's animation (skin + morph targets), silent: the sound is in the video
                preview = gr.Model3D(label="3D preview (.glb)", interactive=False, elem_id="preview-3d",
                                     height=PREVIEW_HEIGHT, camera_position=PREVIEW_CAMERA)
        with gr.Row():
            run_btn = gr.Button("Generate", variant="primary", elem_id="generate")
            cancel_btn = gr.Button("Cancel", variant="stop", elem_id="cancel")
        if catalog.examples:
            rows = [["Text" if e.text is not None else "Audio", str(e.audio) if e.audio is not None else None,
                     e.text or "", e.language, e.appearance, e.style] for e in catalog.examples]
            gr.Examples(rows, inputs=[mode, audio, text, language, appearance, style], label="Examples",
                        example_labels=[e.label for e in catalog.examples], elem_id="examples")
        api_btn = gr.Button(visible=False)

        mode.change(switch, mode, [audio, text, language], queue=False, api_visibility="private")
        inputs = [audio, text, language, appearance, style, style_file]
        busy: dict[str, Any] = dict(concurrency_limit=1, concurrency_id="model", show_progress="full")
        job = (run_btn.click(clear, None, [video, files, preview], queue=False, api_visibility="private")
               .then(ui_generate, [mode, *inputs], [video, files, preview], api_visibility="private",
                     validator=ui_validate, **busy))
        api_job = api_btn.click(generate, inputs, [video, files], api_name="generate",
                                api_description="Speech file or text -> (video file, [motion, reference "
                                                "motion .pt, vertices, glTF .glb])", **busy)
        cancel_btn.click(cancel, None, None, cancels=[job, api_job], queue=False, api_visibility="private")
    return demo


__all__ = ["CSS", "MSG_NO_AUDIO", "MSG_NO_TEXT", "PREVIEW_CAMERA", "PREVIEW_HEIGHT", "STYLE_FILE_TYPES", "TITLE", "build_blocks"]
