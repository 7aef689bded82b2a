"""lifecard: one frozen base model, pluggable life cards."""

__version__ = "0.1.0"
