"""`challenge live`: every face of a camera, stream or file, tracked, with its smile intensity
from a trained cnn-gru run; a web view on 127.0.0.1 and a per-face CSV.

source.py reads frames (dropping those the pipeline cannot keep up with, for live sources);
pipeline.py detects every N frames, tracks in between and runs the model on all faces at once;
model.py exports a run's cnn-gru to ONNX and runs it with onnxruntime; output.py draws frames and
writes the CSV; web.py serves the page; score.py scores a CSV against an ELAN annotation."""
