"""``kwstream serve``: the Wyoming-protocol wake-word service (Home Assistant), one shared model for many streams."""
