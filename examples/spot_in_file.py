"""Find keywords in a recording as fast as the machine allows, iterating over detections.

    python examples/spot_in_file.py talk.flac hey stop
"""

import sys

from kwstream import AudioFile, AudioInputError, Spotter

if len(sys.argv) < 2:
    sys.exit(f"usage: python {sys.argv[0]} RECORDING [KEYWORD ...]")
path, *keywords = sys.argv[1:]
try:
    spotter = Spotter(keywords or ["hey", "stop"], source=AudioFile(path, realtime=False))
except AudioInputError as error:  # a missing or unreadable file, told before the model loads
    sys.exit(f"spot_in_file: {error}")
with spotter:
    for detection in spotter.detections():
        print(f"{detection.start:7.2f} s  {detection.keyword:<12} {detection.score:.2f}")
print(f"{spotter.stats.audio_s:.1f} s of audio, real-time factor {spotter.stats.real_time_factor:.3f}")
