"""Audio input: the ring buffer and the sources that fill it."""
