"""Models: pin them by digest, scan them without running them, and turn them into predictions."""
