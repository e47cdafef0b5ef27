"""Print each keyword heard on the default microphone until Ctrl-C.

    python examples/listen_microphone.py hey stop "hey computer"
"""

import sys

from kwstream import Detection, Spotter


def on_detect(detection: Detection) -> None:
    # Runs on kwstream's dispatcher thread, never the audio thread: slow work here is fine.
    print(f"{detection.keyword!r} at {detection.start:.2f}-{detection.end:.2f} s (score {detection.score:.2f})")


keywords = sys.argv[1:] or ["hey", "stop"]
try:
    with Spotter(keywords, on_detect=on_detect) as spotter:
        spotter.wait()
except KeyboardInterrupt:
    pass
