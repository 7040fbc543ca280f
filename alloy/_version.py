# This file holds the version string and nothing else: setup tooling reads it without importing alloy.
__version__ = "0.1.0"
