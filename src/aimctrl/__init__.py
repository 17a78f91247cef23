"""aimctrl: a Kubernetes controller for the AIM model catalog."""

__version__ = "0.1.0"
