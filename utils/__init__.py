"""Shared helpers: run plumbing, metrics, optimizers, data loading, the fitting pipeline."""
