"""CLI sub-commands (see imagenet_stream.cli)."""
