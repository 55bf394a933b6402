"""Models: pin them by digest, scan them without running them, and turn them into predictions."""

# The formats the adapters read (kept here, free of heavy imports, for the command line's choices).
FORMATS = (
    "auto",
    "skops",
    "pickle",
    "joblib",
    "torchscript",
    "torch-export",
    "safetensors",
    "torch-state-dict",
)
