"""The model: which one a spec names (resolve), loading it (checkpoint), its two stages (stages),
who runs them (backends, onnx_backend) and the Encoder that joins them; the shared vocabulary."""
