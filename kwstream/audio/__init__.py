"""Audio input: the ring buffer, the sources that fill it, and audio at rest (io: read_audio, SAMPLE_RATE)."""
