"""Time of one epoch of the streamed Trainer input, by the number of stretches read at once.

    python -m benchmarks.stream_input --pipeline-root RUN/pipeline [--stretches 1,4,16]

Builds `trainer.streaming.train_dataset` (shuffled, the Trainer's batch size and shuffle
buffer) on the newest Transform output of a pipeline run and iterates one epoch of batches
without training, for each number of stretches in turn (1: the file read in order). Printed:
seconds per epoch and the ratio to reading in file order.
"""

from __future__ import annotations

import argparse
import time

from benchmarks.trainer_throughput import transform_outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline-root", required=True)
    parser.add_argument("--stretches", default="1,4,16")
    args = parser.parse_args()
    from core.process import set_up_process

    set_up_process()
    import tensorflow_transform as tft

    from trainer import inputs, streaming
    from trainer.config import TrainerConfig

    paths = transform_outputs(args.pipeline_root)
    tft_output = tft.TFTransformOutput(paths["transform_graph"])
    timeline = streaming.read_timeline(paths["train_files"], tft_output, inputs.vocabularies(tft_output))
    cfg = TrainerConfig()
    print(f"{timeline.examples:,} training examples, batch {cfg.batch_size}, shuffle buffer {cfg.shuffle_buffer:,}")
    print(f"{'stretches':>9} {'batches':>8} {'epoch s':>8} {'vs file order':>14}")
    first = None
    for stretches in (int(s) for s in args.stretches.split(",")):
        dataset = streaming.train_dataset(paths["train_files"], tft_output, timeline, cfg.batch_size, shuffle=True,
                                          seed=cfg.seed, shuffle_buffer=cfg.shuffle_buffer, stretches=stretches)
        start = time.perf_counter()
        batches = sum(1 for _ in dataset)
        seconds = time.perf_counter() - start
        first = first or seconds
        print(f"{stretches:>9} {batches:>8} {seconds:>8.1f} {seconds / first:>13.2f}x", flush=True)


if __name__ == "__main__":
    main()
