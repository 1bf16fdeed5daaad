"""The leaf of maintkit: plain data and the error vocabulary, with no third-party imports.

Every other package may import ``model``; ``model`` imports nothing of maintkit but itself.
"""
