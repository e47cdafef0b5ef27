"""Stream a recording to a running `kwstream serve` and print what it detects, as Home Assistant or a
satellite would, with the `wyoming` package's own client.

    kwstream serve --keywords hey,stop &
    python examples/wyoming_client.py kwstream/assets/audio/demo_hey_stop.flac
    python examples/wyoming_client.py talk.wav --uri tcp://192.168.1.5:10400 --names stop
"""

import argparse
import asyncio
import sys

import soundfile
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.error import Error
from wyoming.wake import Detect, Detection, NotDetected

CHUNK_S = 0.1
QUIET_S = 3.0
"""After a detection the protocol sends no end-of-stream event: stop once the server is quiet this long."""


async def spot(uri: str, path: str, names: list[str] | None) -> int:
    audio, rate = soundfile.read(path, dtype="int16", always_2d=True)  # any rate and channels: the server converts
    channels, step = audio.shape[1], int(rate * CHUNK_S)
    async with AsyncClient.from_uri(uri) as client:
        await client.write_event(Detect(names=names).event())
        await client.write_event(AudioStart(rate=rate, width=2, channels=channels).event())
        for first in range(0, len(audio), step):
            chunk = audio[first:first + step].tobytes()
            await client.write_event(AudioChunk(rate=rate, width=2, channels=channels, audio=chunk).event())
        await client.write_event(AudioStop().event())
        while True:
            try:
                event = await asyncio.wait_for(client.read_event(), QUIET_S)
            except asyncio.TimeoutError:
                return 0
            if event is None or NotDetected.is_type(event.type):
                return 0
            if Detection.is_type(event.type):
                detection = Detection.from_event(event)
                print(f"{detection.name} at {detection.timestamp / 1000:.2f} s")
            elif Error.is_type(event.type):
                print(f"wyoming_client: the server says: {Error.from_event(event).text}", file=sys.stderr)
                return 1


def main() -> int:
    parser = argparse.ArgumentParser(description="Stream a recording to `kwstream serve`; print its detections.")
    parser.add_argument("recording", help="WAV, FLAC or OGG, any rate and channel count")
    parser.add_argument("--uri", default="tcp://127.0.0.1:10400", help="the server (default tcp://127.0.0.1:10400)")
    parser.add_argument("--names", nargs="+", help="only these of the served keywords (default: all)")
    args = parser.parse_args()
    try:
        return asyncio.run(spot(args.uri, args.recording, args.names))
    except (OSError, soundfile.LibsndfileError) as exc:
        print(f"wyoming_client: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
