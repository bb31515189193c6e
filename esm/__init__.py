"""esm: AWS Lambda-style event source mappings as a self-hosted daemon."""

__version__ = "0.1.0"
