"""The on-storage contract shared by the sharder and the streamer: tar members, side index, manifest.

See docs/FORMAT.md for the format in prose.
"""
from imagenet_stream.format.manifest import (
                    ClassesInfo,
                    ExclusionsEntry,
                    LabelsEntry,
                    Manifest,
                    ShardEntry,
                    wnids_sha256,
)
from imagenet_stream.format.members import (
                    REQUIRED_META,
                    Sample,
                    decode_label,
                    decode_meta,
                    encode_label,
                    encode_meta,
)
from imagenet_stream.format.names import (
                    CLASS_EXT,
                    EXCLUSIONS_NAME,
                    FORMAT_VERSION,
                    IMAGE_EXT,
                    INDEX_SUFFIX,
                    LABELS_NAME,
                    MANIFEST_NAME,
                    META_EXT,
                    READABLE_FORMATS,
                    REPORT_NAME,
                    SHARD_SUFFIX,
                    WORK_NAME,
                    dedupe_key,
                    index_name,
                    is_valid_key,
                    key_from_source,
                    shard_name,
                    split_member,
)
from imagenet_stream.format.side_index import SideIndex
from imagenet_stream.format.tarwalk import TarDamaged, TarMember, TarWalker, group_samples, iter_samples
from imagenet_stream.format.writer import ShardWriter, WrittenShard

__all__ = [
    "ClassesInfo", "ExclusionsEntry", "LabelsEntry", "Manifest", "ShardEntry", "wnids_sha256",
    "CLASS_EXT", "EXCLUSIONS_NAME", "FORMAT_VERSION", "READABLE_FORMATS", "WORK_NAME", "IMAGE_EXT", "INDEX_SUFFIX", "LABELS_NAME", "MANIFEST_NAME", "META_EXT",
    "REPORT_NAME", "SHARD_SUFFIX", "dedupe_key", "index_name", "is_valid_key", "key_from_source", "shard_name",
    "split_member", "TarDamaged", "TarMember", "TarWalker", "group_samples", "iter_samples",
    "REQUIRED_META", "Sample", "decode_label", "decode_meta", "encode_label", "encode_meta",
    "SideIndex", "ShardWriter", "WrittenShard",
]
