"""Keywords enrolled from spoken examples: scorer (DTW over features), store (keywords on disk).
Enrolling them (examples to a calibrated keyword) is ``kwstream.enroll``."""
