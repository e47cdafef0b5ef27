"""Keywords enrolled from spoken examples: enroll (examples to a calibrated keyword), scorer (DTW
over features), store (keywords on disk)."""
