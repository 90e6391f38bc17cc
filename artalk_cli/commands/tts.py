"""artalk tts: text -> 16 kHz mono speech WAV."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from artalk_cli.console import cli_errors, say, where
from artalk_cli.options import Debug, Quiet


def register(app: typer.Typer) -> None:
    @app.command("tts")
    def tts_cmd(
        text: Annotated[str, typer.Argument(help="The text, - for stdin, or @file.txt.")],
        output: Annotated[Path, typer.Option("--output", "-o", help="WAV file (16 kHz mono PCM16); - for stdout.")] = Path("speech.wav"),
        lang: Annotated[str, typer.Option("--lang", "-l", help="en, zh, ja, de, fr or es.")] = "en",
        engine: Annotated[str, typer.Option("--engine", help="espeak (offline) or gtts (Google, online).")] = "espeak",
        voice: Annotated[str | None, typer.Option("--voice", help="An espeak-ng voice (e.g. en-gb, de+f3: `espeak-ng --voices` and `--voices=variant` list them); an unknown one is refused. espeak only.", show_default=False)] = None,
        speed: Annotated[int | None, typer.Option("--speed", min=80, max=450, help="espeak-ng words per minute (espeak only).", show_default=False)] = None,
        quiet: Quiet = False,
        debug: Debug = False,
    ) -> None:
        """Turn text into speech for `generate` (the reference app's six languages work offline)."""
        with cli_errors(debug):
            from artalk_core.fileio import check_not_input
            from artalk_core.tts import check_tts_options, read_text, text_source, tts

            check_not_input({"-o": output}, {"TEXT": text_source(text)})
            check_tts_options(engine=engine, voice=voice, speed=speed)  # before reading stdin
            audio = tts(read_text(text), output=output, lang=lang, engine=engine, voice=voice, speed=speed)
            say(f"wrote {where(output)}: {audio.duration:.2f} s of speech", quiet=quiet)
