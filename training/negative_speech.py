"""Keyword-free speech for calibrating enrolled keywords: ``kwstream/assets/negatives/speech.ogg``.

Enrollment sets each keyword's threshold from how it scores on speech that does not hold it
(``kwstream.enroll.calibration``), so the package ships a few minutes of such speech: sentences
synthesised here with espeak-ng and flite (everyday talk and names; no digits, since the development
measurements enroll digits), each in the next voice of ``VOICES``, then real people's words and short
phrases on home microphones (``REAL``: English and Spanish, redistributable, each clip trimmed to its
speech by the VAD). Synthetic speech alone scores far lower than real speech does, so thresholds
calibrated on it alone land low (docs/enrollment.md). No FSDD speaker and no reserved voice or data
set is in it (see DESIGN.md). Rebuild: ``python -m training.negative_speech [--data ../shared/data]``.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile
import soxr

from kwstream.assets import asset_path
from kwstream.audio.io import read_audio
from kwstream.enroll.enroll import EnrollSettings, voiced_span

SAMPLE_RATE = 16000
PAUSE_S = 0.7
REAL_PAUSE_S = 0.4
COMPRESSION = 0.6
"""Vorbis compression level (0-1): about 300 KB for 5 minutes; what the encoder hears of it does not change the scores much."""
REAL = [("precise/not-wake-words/en", 40), ("precise/not-wake-words/es", 50), ("precise/athena", 8), ("precise/amelia", 8),
        ("precise/android", 8), ("precise/heychatterbox", 8)] + [
    (f"speech_commands/{word}", 4) for word in "bed bird cat dog down go happy house left marvin no off on right sheila stop tree up wow yes".split()]
"""(folder under the shared data, clips taken in name order): Mycroft's Precise community recordings
(public domain) and Google's Speech Commands (CC BY 4.0), every word but the digits."""
VOICES = [("espeak-ng", "en-us"), ("flite", "kal16"), ("espeak-ng", "en+f3"), ("flite", "awb"),
          ("espeak-ng", "en-gb-x-rp+m3"), ("flite", "rms"), ("espeak-ng", "en-us+f2"), ("espeak-ng", "en-gb-scotland+m5")]
SENTENCES = """\
Good morning, could you put the kettle on before the meeting starts?
The train to the city leaves from the far platform, a little later than it did last year.
I think we should paint the kitchen a lighter colour, maybe something close to sand or cream.
My sister moved to a small town by the coast, and she says the winters there are very mild.
Please remember to water the tomatoes, the basil and the lemon tree while I am away.
A dozen people signed up for the course, but only half of them came on the first day.
He lost his keys again, so we spent the whole evening looking under the sofa and the cushions.
The weather report says light rain in the afternoon, clearing up by the early evening.
Turn left at the bakery, then walk straight on until you reach the old stone bridge.
She plays the cello in a quartet that practises every Thursday in the church hall.
We ordered soup, two salads and a loaf of fresh bread, and the bill was more than we expected.
The children built a castle of cardboard boxes that filled half of the living room.
Could you send me the numbers from the last quarter, along with a short summary?
Nobody noticed the cat sleeping on the warm lid of the printer until it started to move.
Lumber prices went up again, so the new fence will have to wait until the spring.
The museum opens early on weekdays and at noon on Sundays and public holidays.
I would like a window seat, if there is one, and a cup of tea once we are in the air.
The recipe calls for a few eggs, a spoonful of honey and a pinch of salt.
Our neighbour fixed the gate with a piece of wire and an old hinge from the garage.
After the storm, the river rose almost to the top of the footpath by the mill.
My grandfather kept bees for most of his life and never once wore gloves.
Let us stop for lunch at the next village; there is a market square with a fountain.
The library will close for a fortnight while they replace the heating and the lights.
Please speak a little louder, the line is very bad and I can hardly hear you.
On Friday the office will close early, so plan your calls for the morning.
The dog barked at the postman, then rolled over and asked to have its belly scratched.
The sums on the second page do not add up, so check them again tomorrow.
A small boat drifted past the harbour wall with nobody on board.
Hey, come over here and look at this, the paint is still wet on the door.
Amanda, Ellen and Theodore are the names of the people who live next door.
Okay, so what do you think, should we take the bus or walk through the park?
The printer in the corner has been slow since the last update, so please restart it.
Lights in the hall flicker whenever somebody turns on the kettle in the kitchen.
Start with the smaller pieces and leave the heavy boxes for the end of the day.
""".splitlines()


def synthesise(engine: str, voice: str, text: str, folder: Path) -> np.ndarray:
    wav = folder / "s.wav"
    if engine == "espeak-ng":
        subprocess.run(["espeak-ng", "-v", voice, "-s", "160", "-w", str(wav), text], check=True)
    else:
        subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(wav)], check=True)
    audio, rate = soundfile.read(wav, dtype="float32")
    return soxr.resample(audio, rate, SAMPLE_RATE) if rate != SAMPLE_RATE else audio


def synthetic_parts() -> list[np.ndarray]:
    pause = np.zeros(int(PAUSE_S * SAMPLE_RATE), np.float32)
    parts = [pause]
    with tempfile.TemporaryDirectory() as tmp:
        for i, sentence in enumerate(SENTENCES):
            engine, voice = VOICES[i % len(VOICES)]
            audio = synthesise(engine, voice, sentence, Path(tmp))
            parts += [0.5 * audio / max(1e-6, float(np.abs(audio).max())), pause]
    return parts


def real_parts(data: Path) -> list[np.ndarray]:
    """The ``REAL`` clips, each trimmed to its speech (with 0.1 s around it) at its own level, with pauses between."""
    pause, margin = np.zeros(int(REAL_PAUSE_S * SAMPLE_RATE), np.float32), int(0.1 * SAMPLE_RATE)
    settings = EnrollSettings()
    parts = []
    for folder, count in REAL:
        for path in sorted(p for p in (data / folder).iterdir() if p.suffix in (".wav", ".flac"))[:count]:
            audio = read_audio(path)
            span = voiced_span(audio, settings.trim_vad, settings.join_gap_s)
            if span is not None:
                parts += [audio[max(0, span[0] - margin):span[1] + margin], pause]
    return parts


def build(out: Path, data: Path | None) -> float:
    """Write the speech to ``out`` (the real clips too where ``data`` is given); returns its length in seconds."""
    audio = np.concatenate(synthetic_parts() + (real_parts(data) if data else []))
    out.parent.mkdir(parents=True, exist_ok=True)
    with soundfile.SoundFile(out, "w", SAMPLE_RATE, 1, format="OGG", subtype="VORBIS", compression_level=COMPRESSION) as f:
        for start in range(0, len(audio), SAMPLE_RATE):  # libsndfile's Vorbis encoder crashes on one large write
            f.write(audio[start:start + SAMPLE_RATE])
    return len(audio) / SAMPLE_RATE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=asset_path("negatives", "speech.ogg"))
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data",
                        help="the shared data holding REAL's folders")
    parser.add_argument("--synthetic-only", action="store_true", help="leave the real clips out")
    args = parser.parse_args()
    seconds = build(args.out, None if args.synthetic_only else args.data)
    print(f"wrote {seconds:.0f} s of keyword-free speech")


if __name__ == "__main__":
    main()
