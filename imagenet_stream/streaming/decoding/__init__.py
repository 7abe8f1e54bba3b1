"""Image bytes -> tensors: the presets table (:mod:`.presets`), the transforms (:mod:`.transforms`),
crop geometry (:mod:`.geometry`) and the native libjpeg-turbo region decoder (:mod:`.jpeg_region`,
``_jpegroi.c``) with its Pillow fallback."""
