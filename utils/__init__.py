"""Shared code of the scripts: run folders and errors (run), the fitting pipeline (fitting/), network training (training/)."""
