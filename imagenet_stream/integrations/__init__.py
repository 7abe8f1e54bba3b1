"""Adapters for training frameworks; each imports its framework only when used (optional extras)."""
