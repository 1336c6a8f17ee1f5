"""Faces in video frames: pretrained detectors (registered by name) and the one crop that every
face model sees, at training (the face-crops extractor) and live (`challenge live`) alike."""
