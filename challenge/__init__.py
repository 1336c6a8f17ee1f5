"""challenge: from ABAW-style challenge data to a validated leaderboard file."""

__version__ = "0.1.0"
