"""Pictures of a dataset: ``imagenet-stream inspect DATASET --html report.html`` (see :mod:`.page`)."""
