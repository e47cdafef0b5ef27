"""Measuring the spotter: metrics (recall, false alarms, DET sweeps, through the one detector
replay, ``kwstream.stream.replay``), bench (cost and latency), plots. Library code: it returns
results and never prints."""
