"""The tracks this project ships. Each module defines `TRACK`, a `challenge.track.TrackSpec`,
registered as an entry point in pyproject.toml (`[project.entry-points."challenge.tracks"]`):
a new track is one module plus one line there."""
