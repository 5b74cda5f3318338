"""Video in: the user's sources, frame sampling, decoding with OpenCV and preprocessing. No model."""
