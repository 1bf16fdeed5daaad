"""maintkit: maintenance runs for e-commerce sites over SSH."""

__version__ = "0.1.0"
