"""Helpers behind train.py and evaluate.py: GL setup, rendering, run dirs."""
