"""``kwstream devices``: the audio inputs PortAudio sees, the default marked."""

from __future__ import annotations

import argparse

from kwstream.audio.sources import import_sounddevice, list_input_devices
from kwstream.errors import KwstreamError


def cmd_devices(args: argparse.Namespace) -> int:
    devices = list_input_devices()
    if not devices:
        raise KwstreamError("no input devices found; read a recording with `kwstream listen --file`")
    default_input = import_sounddevice().default.device[0]
    for d in devices:
        mark = "*" if d["index"] == default_input else " "
        print(f"{mark}{d['index']:>3}  {d['name']:<40} {d['max_input_channels']:>2} ch  {d['default_samplerate']:>7.0f} Hz")
    return 0
