"""One run of a track: its context and protocols, preparation, selection, finishing, estimates, baselines and saved models."""
