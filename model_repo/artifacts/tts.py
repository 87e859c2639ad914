"""CPU TTS "artifact": the system's espeak-ng, checked and recorded.

No neural TTS weights ship in a PyPI package, so the CPU target speaks with espeak-ng (Debian package
``espeak-ng``): real, intelligible formant-synthesis speech. There are no weights to build; the
artifact is ``espeak-ng.json`` recording the program, its version and the voice, written only after a
test synthesis with that voice succeeded, so a missing program or voice fails the render with the fix
instead of failing the first request.
"""

from __future__ import annotations

import inspect
import json
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from model_repo.artifacts.store import ArtifactError, Recipe

MAIN_FILE = "espeak-ng.json"


def recipe(spec, serving, ctx) -> Recipe:
    uri = serving.artifact.uri
    program = urlsplit(uri).netloc
    voice = serving.parameters.get("voice", "en-us")
    path = shutil.which(program)
    if path is None:
        raise ArtifactError(
            f"model {spec.name!r}: {uri} needs the program {program!r} on PATH; "
            f"install it with: apt-get install -y {program}"
        )
    version = subprocess.run([path, "--version"], capture_output=True, text=True, check=False).stdout.strip()

    def build(out: Path) -> None:
        # espeak-ng silently falls back to its default voice for an unknown one: check the list first.
        if voice.lower() not in _voices(path):
            raise ArtifactError(
                f"model {spec.name!r}: {program} -v {voice} could not synthesise speech: no such voice; "
                f"set the model's 'voice' parameter to a language or name listed by `{program} --voices`"
            )
        probe = subprocess.run([path, "-v", voice, "--stdout", "ok"], capture_output=True, check=False)
        if probe.returncode != 0 or not probe.stdout.startswith(b"RIFF"):
            raise ArtifactError(
                f"model {spec.name!r}: {program} -v {voice} could not synthesise speech "
                f"(exit {probe.returncode}: {probe.stderr.decode(errors='replace').strip()}); "
                f"check the {program} installation (apt-get install --reinstall {program})"
            )
        (out / MAIN_FILE).write_text(json.dumps({"program": program, "version": version, "voice": voice}) + "\n")

    return Recipe(
        model=spec.name,
        role="tts",
        uri=uri,
        weights=serving.weights,
        main_file=MAIN_FILE,
        builder_source=inspect.getsource(build) + inspect.getsource(_voices),
        inputs={"program": program, "version": version, "voice": voice},
        build=build,
    )


def _voices(program: str) -> set[str]:
    """Language codes and voice names ``espeak-ng --voices`` lists (lower case)."""
    listing = subprocess.run([program, "--voices"], capture_output=True, text=True, check=False).stdout
    names = set()
    for line in listing.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 4:
            names.update({fields[1].lower(), fields[3].lower()})
    return names
