"""kwstream: real-time keyword spotting on live microphones with wav2vec 2.0.

```python
from kwstream import Spotter

with Spotter(["hey", "stop"], on_detect=print) as spotter:
    spotter.wait()
```
"""

from kwstream.audio.sources import AudioFile, AudioSource, Microphone, RawStdin
from kwstream.stream.detector import Detection, DetectorSettings
from kwstream.model.encoder import Encoder, EncoderSettings
from kwstream.errors import AudioInputError, KeywordError, KwstreamError, ModelLoadError
from kwstream.keywords.keyword_set import Keyword, KeywordSettings
from kwstream.spotter import Spotter, SpotterSettings, SpotterStats
from kwstream.stream.vad import VadSettings
from kwstream.scan import scan  # noqa: E402  after the package: the function is what ``kwstream.scan`` names

__all__ = [
    "AudioFile",
    "AudioInputError",
    "AudioSource",
    "Encoder",
    "Detection",
    "DetectorSettings",
    "EncoderSettings",
    "Keyword",
    "KeywordError",
    "KeywordSettings",
    "KwstreamError",
    "Microphone",
    "ModelLoadError",
    "RawStdin",
    "Spotter",
    "SpotterSettings",
    "SpotterStats",
    "VadSettings",
    "scan",
]
