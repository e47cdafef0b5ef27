"""Measuring the spotter: metrics (recall, false alarms, DET sweeps), replay (the one detector
replay), bench (cost and latency), plots. Library code: it returns results and never prints."""
