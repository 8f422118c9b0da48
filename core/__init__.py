"""The bottom layer every package may import: the feature contract and small shared mechanics.

`features` names every feature, vocabulary and split once; `config_loader` builds typed, frozen
configs from JSON with every problem reported by key path; `version_dirs` lists and publishes
integer model versions atomically; `tfrecord_columns` reads gzipped TFRecords into numpy
columns; `durable_files` holds fsync'ed JSON state and lock files; `process` sets up a process
(Keras 2, quiet TensorFlow logs) before TensorFlow is imported. Nothing here imports another
package of the project.
"""
