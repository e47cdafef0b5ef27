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
from wyoming.wake import Detect, Detection

CHUNK_S = 0.1
END_TIMEOUT_S = 120.0
"""How long to wait after audio-stop for the server to finish the stream. A busy server may still have the audio
in its backlog (up to its --max-backlog-s) and in the socket buffers to work through; it gives up on a stream
whose last events do not come within a minute of reading this client's end."""


async def spot(uri: str, path: str, names: list[str] | None, timeout_s: float = END_TIMEOUT_S) -> int:
    audio, rate = soundfile.read(path, dtype="int16", always_2d=True)  # any rate and channels: the server converts
    channels, step = audio.shape[1], int(rate * CHUNK_S)
    async with AsyncClient.from_uri(uri) as client:
        await client.write_event(Detect(names=names).event())
        await client.write_event(AudioStart(rate=rate, width=2, channels=channels).event())
        for first in range(0, len(audio), step):
            chunk = audio[first:first + step].tobytes()
            await client.write_event(AudioChunk(rate=rate, width=2, channels=channels, audio=chunk).event())
        await client.write_event(AudioStop().event())
        # The protocol has no event for the end of a stream that fired (not-detected comes only when nothing did);
        # half-closing the connection asks kwstream to finish the stream, send its events, then close.
        client._writer.write_eof()  # wyoming's client has no public half-close
        try:
            return await asyncio.wait_for(print_detections(client), timeout_s)
        except asyncio.TimeoutError:
            print(f"wyoming_client: the server did not finish the stream within {timeout_s:g} s of audio-stop; "
                  "detections may be missing", file=sys.stderr)
            return 1


async def print_detections(client: AsyncClient) -> int:
    """The server's detections, until it closes the connection."""
    while (event := await client.read_event()) is not None:
        if Detection.is_type(event.type):
            detection = Detection.from_event(event)
            print(f"{detection.name} at {detection.timestamp / 1000:.2f} s")
        elif Error.is_type(event.type):
            print(f"wyoming_client: the server says: {Error.from_event(event).text}", file=sys.stderr)
            return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description="Stream a recording to `kwstream serve`; print its detections.")
    parser.add_argument("recording", help="WAV, FLAC or OGG, any rate and channel count")
    parser.add_argument("--uri", default="tcp://127.0.0.1:10400", help="the server (default tcp://127.0.0.1:10400)")
    parser.add_argument("--names", nargs="+", help="only these of the served keywords (default: all)")
    parser.add_argument("--timeout", type=float, default=END_TIMEOUT_S, metavar="S",
                        help=f"wait at most this long after the recording for the server's last events (default {END_TIMEOUT_S:g})")
    args = parser.parse_args()
    try:
        return asyncio.run(spot(args.uri, args.recording, args.names, args.timeout))
    except (OSError, soundfile.LibsndfileError) as exc:
        print(f"wyoming_client: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
