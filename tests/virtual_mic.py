"""A real virtual microphone for tests: PortAudio -> ALSA `file` PCM -> a 16 kHz recording.

`virtual_mic_env()` returns an environment for a subprocess (the kwstream CLI, a probe script)
whose PortAudio sees a recording as an ordinary ALSA capture device, with no sound card.

What PortAudio shows (Debian 12: alsa-lib 1.2.8, PortAudio 19.6.0, sounddevice 0.5.6), measured:

* `sd.query_devices()` lists two ALSA devices, `<name>` (default "vfile") and `default`; the
  default input is `default` (`sd.default.device == [1, 1]`). Both: max_input_channels 128,
  max_output_channels 128, default_samplerate 44100.0, default low/high input latency
  0.0087/0.0348 s. PortAudio 19.6 names ALSA devices by their config id; the `hint`
  description ("kwstream virtual mic") only shows in `arecord -L`.
* Any rate, 1..128 channels, and int16, int32 or float32 open; every channel carries the
  recording. At 16000 Hz the samples arrive unchanged (int16: bit-identical); other rates are
  linearly interpolated. int8/uint8/int24 are refused: the stream fails to open.
* Capture runs in real time: each block is handed over only once it "has been recorded".
  Every stream opening replays the recording from its first sample, timed from the stream's
  first read. After the recording ends the microphone gives silence (exact zeros), still paced,
  for as long as the stream runs: no error, no blocking, the callback keeps running.

Why it is more than the `.asoundrc` alone: the plain ALSA `file` plugin over `null` is not a
usable microphone here. `null` has no clock, so capture ran unpaced (about 20 million frames a
second); past the end of `infile` it hands out stale ring-buffer contents (old audio repeats);
and any converting plugin between PortAudio and the file plugin (`plug` changing rate, format
or channels, even `copy`) maps more frames than it commits, and the file plugin drops the rest:
a 0.5 s tone burst arrived as 0.15-0.2 s at 44.1 kHz, though at the right pitch. Only a 16 kHz
int16 mono stream read straight from the file plugin was intact. So a small LD_PRELOAD library
(C below, built with `cc`) takes over the file plugin's `read()` of `infile`: it learns the
rate, format and channels PortAudio negotiated from its `snd_pcm_hw_params()` call, converts
the recording to them, waits for real time, and pads the end with zeros. PortAudio, ALSA's
device lookup, configuration, hw_params and mmap transfer all stay real.

Limits: one virtual capture stream at a time per process (the last negotiated format wins);
a process in this environment that reads the `.raw` file itself gets this endless synthetic
stream, so read the recording from the array you passed instead.

In-process switching works too: `sd._terminate()`, set HOME, `sd._initialize()` re-reads
`~/.asoundrc` (devices appear or vanish). But LD_PRELOAD only takes effect at process start,
so without it the device is the raw, unpaced file plugin; use a subprocess.

Without any `.asoundrc` and no sound card (`no_input_env()`), measured: `sd.query_devices()`
is empty, `sd.default.device == [-1, -1]`, and `sd.InputStream()`, `sd.query_devices(kind=
"input")` and `sd.check_input_settings()` raise `sounddevice.PortAudioError('Error querying
device -1')`; `sd.InputStream(device="vfile")` raises `ValueError("No input device matching
'vfile'")`; `sd.query_devices(0)` raises `PortAudioError('Error querying device 0')`. Without
libportaudio2, `import sounddevice` raises `OSError('PortAudio library not found')`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
DESCRIPTION = "kwstream virtual mic"

_ASOUNDRC = """\
pcm.{name} {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{infile}"
    format "raw"
    hint {{ show on; description "{description}" }}
}}
pcm.!default "{name}"
"""

# Replaces read() of the infile (identified by device and inode) with a paced, converted,
# zero-padded stream, and records the format PortAudio negotiates for ALSA `file` capture PCMs.
_SHIM_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { FMT_S16_LE = 2, FMT_S32_LE = 10, FMT_FLOAT_LE = 14, STREAM_CAPTURE = 1, TYPE_FILE = 3,
       SOURCE_RATE = 16000, MAX_FD = 4096 };

typedef struct snd_pcm snd_pcm_t;
typedef struct snd_pcm_hw_params snd_pcm_hw_params_t;

static ssize_t (*real_read)(int, void *, size_t);
static int16_t *source;
static size_t source_frames;
static dev_t source_dev;
static ino_t source_ino;
static volatile int capture_format = -1;
static volatile unsigned capture_rate, capture_channels;
static struct timespec started[MAX_FD];

static size_t sample_width(int format) {
    return format == FMT_S16_LE ? 2 : (format == FMT_S32_LE || format == FMT_FLOAT_LE) ? 4 : 0;
}

__attribute__((constructor)) static void load_source(void) {
    const char *path = getenv("KWSTREAM_VMIC_INFILE");
    struct stat st;
    real_read = (ssize_t (*)(int, void *, size_t))dlsym(RTLD_NEXT, "read");
    if (!path)
        return;
    int fd = open(path, O_RDONLY);
    if (fd < 0 || fstat(fd, &st) != 0 || !(source = malloc(st.st_size + 1))) {
        fprintf(stderr, "virtual mic: cannot load %s\n", path);
        return;
    }
    size_t got = 0;
    ssize_t r;
    while (got < (size_t)st.st_size && (r = real_read(fd, (char *)source + got, st.st_size - got)) > 0)
        got += (size_t)r;
    close(fd);
    source_frames = got / 2;
    source_dev = st.st_dev;
    source_ino = st.st_ino;
}

int snd_pcm_hw_params(snd_pcm_t *pcm, snd_pcm_hw_params_t *params) {
    /* PortAudio is loaded RTLD_LOCAL, so RTLD_NEXT cannot see libasound: ask it directly. */
    void *alsa = dlopen("libasound.so.2", RTLD_NOW | RTLD_NOLOAD);
    int (*real)(snd_pcm_t *, snd_pcm_hw_params_t *) = dlsym(alsa, "snd_pcm_hw_params");
    int (*hw_free)(snd_pcm_t *) = dlsym(alsa, "snd_pcm_hw_free");
    int (*stream)(snd_pcm_t *) = dlsym(alsa, "snd_pcm_stream");
    int (*type)(snd_pcm_t *) = dlsym(alsa, "snd_pcm_type");
    int (*get_format)(const snd_pcm_hw_params_t *, int *) =
        dlvsym(alsa, "snd_pcm_hw_params_get_format", "ALSA_0.9.0rc4");
    int (*get_rate)(const snd_pcm_hw_params_t *, unsigned *, int *) =
        dlvsym(alsa, "snd_pcm_hw_params_get_rate", "ALSA_0.9.0rc4");
    int (*get_channels)(const snd_pcm_hw_params_t *, unsigned *) =
        dlvsym(alsa, "snd_pcm_hw_params_get_channels", "ALSA_0.9.0rc4");
    dlclose(alsa);
    int err = real(pcm, params);
    int format;
    unsigned rate, channels;
    if (err != 0 || stream(pcm) != STREAM_CAPTURE || type(pcm) != TYPE_FILE
        || get_format(params, &format) != 0 || get_rate(params, &rate, NULL) != 0
        || get_channels(params, &channels) != 0)
        return err;
    if (!sample_width(format)) {
        fprintf(stderr, "virtual mic: capture format %d unsupported: use int16, int32 or float32\n", format);
        hw_free(pcm);
        return -EINVAL;
    }
    capture_format = format;
    capture_rate = rate;
    capture_channels = channels;
    return err;
}

static double source_at(double position) {
    size_t i = (size_t)position;
    double frac = position - (double)i;
    double a = i < source_frames ? source[i] : 0.0;
    double b = i + 1 < source_frames ? source[i + 1] : 0.0;
    return (a + (b - a) * frac) / 32768.0;
}

static void wait_until_recorded(const struct timespec *start, long long frames, unsigned rate) {
    long long ns = start->tv_nsec + frames * 1000000000LL / rate;
    struct timespec due = {start->tv_sec + ns / 1000000000LL, ns % 1000000000LL};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, NULL) == EINTR)
        ;
}

/* The file offset counts bytes handed out (it runs past EOF), so it is this opening's clock. */
static ssize_t capture(int fd, char *buf, size_t n) {
    int format = capture_format;
    unsigned rate = capture_rate, channels = capture_channels;
    size_t width = sample_width(format), frame_bytes = width * channels;
    if (!frame_bytes || !rate) {
        errno = EINVAL;
        return -1;
    }
    off_t offset = lseek(fd, 0, SEEK_CUR);
    if (offset == 0)
        clock_gettime(CLOCK_MONOTONIC, &started[fd]);
    long long first = offset / frame_bytes;
    size_t frames = n / frame_bytes;
    wait_until_recorded(&started[fd], first + frames, rate);
    for (size_t i = 0; i < frames; i++) {
        double v = source_at((double)(first + i) * SOURCE_RATE / rate);
        union { int16_t s16; int32_t s32; float f; } out;
        if (format == FMT_S16_LE)
            out.s16 = (int16_t)fmax(-32768.0, fmin(32767.0, nearbyint(v * 32768.0)));
        else if (format == FMT_S32_LE)
            out.s32 = (int32_t)fmax(-2147483648.0, fmin(2147483647.0, nearbyint(v * 2147483648.0)));
        else
            out.f = (float)v;
        for (unsigned c = 0; c < channels; c++)
            memcpy(buf + (i * channels + c) * width, &out, width);
    }
    memset(buf + frames * frame_bytes, 0, n - frames * frame_bytes);
    lseek(fd, (off_t)n, SEEK_CUR);
    return (ssize_t)n;
}

ssize_t read(int fd, void *buf, size_t n) {
    struct stat st;
    if (!real_read)
        real_read = (ssize_t (*)(int, void *, size_t))dlsym(RTLD_NEXT, "read");
    if (!source || n == 0 || fd < 0 || fd >= MAX_FD || fstat(fd, &st) != 0
        || st.st_dev != source_dev || st.st_ino != source_ino)
        return real_read(fd, buf, n);
    return capture(fd, buf, n);
}
"""


def virtual_mic_env(directory: Path, audio_int16_16k_mono: np.ndarray, name: str = "vfile") -> dict[str, str]:
    """Environment for a subprocess whose default (and `name`) input device plays this recording.

    Writes `<name>.raw`, `.asoundrc` and the pacing library into `directory`; see the module
    docstring for what PortAudio then reports and how the stream behaves.
    """
    audio = np.asarray(audio_int16_16k_mono)
    if audio.dtype != np.int16 or audio.ndim != 1 or audio.size == 0:
        raise ValueError(f"need non-empty 1-D int16 audio at 16 kHz, got {audio.dtype} {audio.shape}")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or name == "default":
        raise ValueError(f"device name must be an ALSA identifier other than 'default', got {name!r}")
    directory = Path(directory).resolve()
    if '"' in str(directory) or "\\" in str(directory):
        raise ValueError(f"directory path cannot be quoted in an ALSA config: {directory}")
    infile = directory / f"{name}.raw"
    audio.astype("<i2").tofile(infile)
    (directory / ".asoundrc").write_text(_ASOUNDRC.format(name=name, infile=infile, description=DESCRIPTION))
    shim = _build_shim(directory)
    env = no_input_env(directory)
    env["LD_PRELOAD"] = ":".join(filter(None, [str(shim), os.environ.get("LD_PRELOAD")]))
    env["KWSTREAM_VMIC_INFILE"] = str(infile)
    return env


def stalled_mic_env(directory: Path, name: str = "vfifo") -> tuple[dict[str, str], int]:
    """Environment whose default input device reads a FIFO that nobody writes: PortAudio's capture
    thread blocks in ALSA's read() until the returned writer descriptor gets data or closes. That
    is a stalled device: measured, PortAudio's stop and abort then wait for ever. The caller
    holds (and closes) the writer, without which opening the device would block instead."""
    directory = Path(directory).resolve()
    fifo = directory / f"{name}.fifo"
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR)  # a writer, so that the device's open() does not block
    (directory / ".asoundrc").write_text(_ASOUNDRC.format(name=name, infile=fifo, description=DESCRIPTION))
    return no_input_env(directory), writer


def no_input_env(directory: Path) -> dict[str, str]:
    """Environment whose ALSA configuration is only the system's: no input device without a card.

    HOME and XDG_CONFIG_HOME point into `directory` (ALSA reads ~/.asoundrc and
    $XDG_CONFIG_HOME/alsa/asoundrc), and ALSA_CONFIG_PATH, which would replace both, is dropped.
    """
    env = dict(os.environ)
    env.pop("ALSA_CONFIG_PATH", None)
    env["HOME"] = str(Path(directory).resolve())
    env["XDG_CONFIG_HOME"] = str(Path(directory).resolve() / ".config")
    return env


def _build_shim(directory: Path) -> Path:
    """Compile the pacing library; C because it must run inside ALSA's read() on PortAudio's thread."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("the virtual microphone needs a C compiler (Debian: gcc, libc6-dev)")
    source, library = directory / "virtual_mic_shim.c", directory / "virtual_mic_shim.so"
    source.write_text(_SHIM_C)
    built = subprocess.run(
        [compiler, "-O2", "-Wall", "-shared", "-fPIC", "-o", str(library), str(source), "-ldl", "-lm"],
        capture_output=True,
        text=True,
    )
    if built.returncode != 0:
        raise RuntimeError(f"building the virtual microphone library failed:\n{built.stderr}")
    return library
