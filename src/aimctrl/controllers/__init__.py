"""aimctrl."""
