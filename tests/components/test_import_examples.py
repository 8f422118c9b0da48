"""OrderedImportExampleGen's executor writes what the stock executor writes, in input order."""

import glob
import os

import pytest
import tensorflow as tf
from tfx.components.example_gen.import_example_gen import executor as stock_executor
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.types import standard_component_specs as specs
from tfx.utils import proto_utils

from components.import_examples import OrderedImportExampleGen, OrderedImportExecutor


def _example(i: int) -> bytes:
    return tf.train.Example(features=tf.train.Features(feature={
        "user_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"u{i % 7}".encode()])),
        "position": tf.train.Feature(int64_list=tf.train.Int64List(value=[i])),
    })).SerializeToString()


def _write_input(root, split: str, records, files: int = 2) -> None:
    os.makedirs(root / split, exist_ok=True)
    for f in range(files):
        with tf.io.TFRecordWriter(str(root / split / f"part-{f}.tfrecord.gz"), "GZIP") as writer:
            for record in records[f::files]:
                writer.write(record)


def _run(executor_class, input_base, output_dir, input_config, output_config, payload=example_gen_pb2.FORMAT_TF_EXAMPLE):
    examples = standard_artifacts.Examples()
    examples.uri = str(output_dir)
    executor_class().Do({}, {specs.EXAMPLES_KEY: [examples]}, {
        specs.INPUT_BASE_KEY: str(input_base),
        specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(input_config),
        specs.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(output_config),
        specs.OUTPUT_DATA_FORMAT_KEY: payload,
        specs.OUTPUT_FILE_FORMAT_KEY: example_gen_pb2.FORMAT_TFRECORDS_GZIP,
    })
    return examples


def _read_split(examples, split: str):
    files = sorted(glob.glob(os.path.join(artifact_utils.get_split_uri([examples], split), "*.gz")))
    assert files, f"no files in split {split}"
    return [bytes(r.numpy()) for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def _positions(records):
    return [tf.train.Example.FromString(r).features.feature["position"].int64_list.value[0] for r in records]


def test_input_splits_are_copied_whole_and_in_order(tmp_path):
    records = [_example(i) for i in range(300)]
    _write_input(tmp_path / "in", "train", records[:240], files=1)
    _write_input(tmp_path / "in", "eval", records[240:], files=1)
    config = example_gen_pb2.Input(splits=[
        example_gen_pb2.Input.Split(name="train", pattern="train/*"),
        example_gen_pb2.Input.Split(name="eval", pattern="eval/*"),
    ])
    ordered = _run(OrderedImportExecutor, tmp_path / "in", tmp_path / "ordered", config, example_gen_pb2.Output())
    stock = _run(stock_executor.Executor, tmp_path / "in", tmp_path / "stock", config, example_gen_pb2.Output())

    assert artifact_utils.decode_split_names(ordered.split_names) == ["train", "eval"]
    assert _positions(_read_split(ordered, "train")) == list(range(240))
    assert _positions(_read_split(ordered, "eval")) == list(range(240, 300))
    for split in ("train", "eval"):
        assert sorted(_read_split(ordered, split)) == sorted(_read_split(stock, split))
    for key in ("payload_format", "file_format"):
        assert ordered.get_string_custom_property(key) == stock.get_string_custom_property(key) != ""


def test_hash_splits_match_the_stock_executor(tmp_path):
    records = [_example(i) for i in range(500)]
    _write_input(tmp_path / "in", "all", records, files=3)
    input_config = example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="all", pattern="all/*")])
    output_config = example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
        example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=4),
        example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1),
    ]))
    ordered = _run(OrderedImportExecutor, tmp_path / "in", tmp_path / "ordered", input_config, output_config)
    stock = _run(stock_executor.Executor, tmp_path / "in", tmp_path / "stock", input_config, output_config)

    train, eval_ = _read_split(ordered, "train"), _read_split(ordered, "eval")
    assert len(train) + len(eval_) == 500 and 0 < len(eval_) < len(train)
    assert sorted(train) == sorted(_read_split(stock, "train"))
    assert sorted(eval_) == sorted(_read_split(stock, "eval"))


def test_formats_it_cannot_write_are_refused_before_any_work(tmp_path):
    config = example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name="train", pattern="train/*")])
    with pytest.raises(ValueError, match="gzipped TFRecords only"):
        _run(OrderedImportExecutor, tmp_path, tmp_path / "out", config, example_gen_pb2.Output(),
             payload=example_gen_pb2.FORMAT_PARQUET)
    assert not (tmp_path / "out").exists()


def test_the_component_is_the_stock_one_with_the_ordered_executor():
    component = OrderedImportExampleGen(input_base="/data").with_id("interaction_example_gen")
    assert component.executor_spec.executor_class is OrderedImportExecutor
    assert set(component.spec.PARAMETERS) >= {specs.INPUT_CONFIG_KEY, specs.OUTPUT_CONFIG_KEY, specs.RANGE_CONFIG_KEY}


@pytest.mark.parametrize("statistics", [False, True])
def test_the_pipeline_uses_it_for_both_example_gens_and_follows_the_transform_statistics_setting(statistics):
    from pipeline.config import PipelineConfig
    from pipeline.pipeline import create_pipeline

    components = {c.id: c for c in create_pipeline(PipelineConfig(transform_statistics=statistics)).components}
    for name in ("interaction_example_gen", "item_example_gen"):
        assert components[name].executor_spec.executor_class is OrderedImportExecutor
    assert bool(components["Transform"].exec_properties[specs.DISABLE_STATISTICS_KEY]) is (not statistics)
