"""Where the files of a TFX artifact lie: the one place components turn artifacts into paths."""

import os
from typing import List

from tfx import types
from tfx.types import artifact_utils


def split_files(artifact: types.Artifact, split: str) -> List[str]:
    """Glob pattern of one split's gzipped TFRecord files in an Examples artifact."""
    (uri,) = artifact_utils.get_split_uris([artifact], split)
    return [os.path.join(uri, "*.gz")]
