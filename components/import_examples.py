"""OrderedImportExampleGen: TFX's ImportExampleGen, writing each split in the order it is read.

The stock executor passes every split through `beam.Reshuffle` before writing it. On a
distributed runner that shuffle spills to disk, but Beam's DirectRunner keeps the whole
shuffled collection in memory, so the component's memory grows with the span (11 GB for a
10M-interaction span here; BENCHMARKS.md "Scale"). This executor keeps everything else of the
stock one (the driver's span resolution, the input and output split configs, hash
partitioning, payload and file format properties) and writes each split straight from the
read, so records stream from the input files to the output files in bounded memory.

The records keep their input order. Nothing downstream depends on a random order: the Trainer
shuffles its input every epoch (a full permutation when the data is held in memory, a
`TrainerConfig.shuffle_buffer` window when it is streamed), and statistics, Transform and
evaluation are order-free.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, List

import apache_beam as beam
from tfx import types
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.example_gen import write_split
from tfx.components.example_gen.import_example_gen import component as import_component
from tfx.components.example_gen.import_example_gen import executor as import_executor
from tfx.components.util import examples_utils
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs as specs
from tfx.utils import proto_utils

logger = logging.getLogger(__name__)

FILE_PREFIX = "data_tfrecord"  # the stock executor's name for the output files
_TFRECORD_FORMATS = (example_gen_pb2.FILE_FORMAT_UNSPECIFIED, example_gen_pb2.FORMAT_TFRECORDS_GZIP)


class OrderedImportExecutor(import_executor.Executor):
    """ImportExampleGen's executor without the in-memory shuffle before the write."""

    def Do(  # noqa: N802 - the TFX executor interface
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        """Reads the resolved span's input splits and writes the output splits as gzipped TFRecords.

        Raises:
          ValueError: an output format other than gzipped TFRecords of serialized records.
        """
        file_format = exec_properties.get(specs.OUTPUT_FILE_FORMAT_KEY) or example_gen_pb2.FILE_FORMAT_UNSPECIFIED
        payload_format = exec_properties.get(specs.OUTPUT_DATA_FORMAT_KEY)
        if file_format not in _TFRECORD_FORMATS or payload_format == example_gen_pb2.FORMAT_PARQUET:
            raise ValueError(
                f"OrderedImportExampleGen writes gzipped TFRecords only; got file format {file_format}, "
                f"payload format {payload_format}: use the stock ImportExampleGen for other formats"
            )
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(exec_properties[specs.INPUT_CONFIG_KEY], input_config)
        output_config = example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties[specs.OUTPUT_CONFIG_KEY], output_config)
        examples = output_dict[specs.EXAMPLES_KEY]
        artifact_utils.get_single_instance(examples).split_names = artifact_utils.encode_split_names(
            example_gen_utils.generate_output_split_names(input_config, output_config)
        )
        with self._make_beam_pipeline() as pipeline:
            for split, records in self.GenerateExamplesByBeam(pipeline, exec_properties).items():
                prefix = os.path.join(artifact_utils.get_split_uri(examples, split), FILE_PREFIX)
                logger.info("writing split %r to %s-*.gz in input order", split, prefix)
                _ = (
                    records
                    | f"Serialize[{split}]" >> beam.ParDo(write_split.MaybeSerialize())
                    | f"Write[{split}]" >> beam.io.WriteToTFRecord(prefix, file_name_suffix=".gz")
                )
        for artifact in examples:
            if payload_format:
                examples_utils.set_payload_format(artifact, payload_format)
            examples_utils.set_file_format(artifact, write_split.to_file_format_str(file_format))


class OrderedImportExampleGen(import_component.ImportExampleGen):
    """The stock ImportExampleGen (same driver, spec and arguments) with `OrderedImportExecutor`."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(OrderedImportExecutor)
