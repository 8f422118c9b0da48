"""Memory of the Beam stages (ExampleGen, Transform) on the DirectRunner, variant by variant.

    python -m benchmarks.beam_memory [--sizes 1000000] [--variants stock,ordered,ordered-nostats]
                                     [--work /tmp/recsys-beam-memory]

For each size the synthetic data is generated once; then, for each variant, a child process
runs a three-node pipeline (interaction ExampleGen, the curated schema, Transform) with the
LocalDagRunner while this process samples the memory of the child's process tree. Variants:

- `stock`: TFX's ImportExampleGen (shuffles each split before writing) and Transform with its
  pre- and post-transform statistics (the pipeline before `OrderedImportExampleGen`);
- `ordered`: `components.import_examples.OrderedImportExampleGen` and Transform with statistics;
- `ordered-nostats`: the ordered ExampleGen and Transform with `disable_statistics=True`.

Printed: wall seconds and peak RSS (GB) per component and variant, and the peak's growth
between sizes (log-log slope; 0: flat, 1: linear).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import time
from typing import Dict, List

from benchmarks.scale import GB, run_child
from benchmarks.scale_run import component_windows, synthetic_config

VARIANTS = ("stock", "ordered", "ordered-nostats")
COMPONENTS = ("interaction_example_gen", "Transform")


def child_main(variant: str, data_root: str, out: str, result_path: str) -> None:
    """Runs ExampleGen -> Transform of `variant` on `data_root`; writes the component windows."""
    from tfx import v1 as tfx

    from components.import_examples import OrderedImportExampleGen
    from core import features as F
    from pipeline import curated_schema
    from pipeline import pipeline as recsys_pipeline
    from pipeline.config import PipelineConfig

    example_gen_class = tfx.components.ImportExampleGen if variant == "stock" else OrderedImportExampleGen
    example_gen = example_gen_class(
        input_base=os.path.join(data_root, recsys_pipeline.INTERACTIONS_DIR),
        input_config=recsys_pipeline.interactions_input_config(PipelineConfig.split),
        output_config=recsys_pipeline.interactions_output_config(PipelineConfig.split),
    ).with_id("interaction_example_gen")
    import_schema = tfx.components.ImportSchemaGen(schema_file=str(curated_schema.SCHEMA_FILE))
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=import_schema.outputs["schema"],
        preprocessing_fn=recsys_pipeline.PREPROCESSING_FN,
        splits_config=tfx.proto.SplitsConfig(analyze=[F.TRAIN_SPLIT], transform=[F.TRAIN_SPLIT, F.EVAL_SPLIT]),
        disable_statistics=variant.endswith("nostats"),
    )
    metadata_path = os.path.join(out, "metadata.sqlite")
    pipeline = tfx.dsl.Pipeline(
        pipeline_name=f"beam-memory-{variant}",
        pipeline_root=os.path.join(out, "pipeline"),
        components=[example_gen, import_schema, transform],
        enable_cache=False,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path),
        beam_pipeline_args=["--direct_num_workers=1"],
    )
    tfx.orchestration.LocalDagRunner().run(pipeline)
    with open(result_path, "w", encoding="utf-8") as handle:
        json.dump({"windows": component_windows(metadata_path)}, handle)


def generate_main(interactions: int, data_root: str) -> None:
    """Writes the synthetic data of `interactions` interactions to `data_root`."""
    import ingest as data_layer

    data_layer.generate_synthetic(data_root, synthetic_config(interactions))


def measure(sizes: List[int], variants: List[str], work: pathlib.Path) -> List[Dict]:
    """One row per (size, variant): wall seconds and peak GB of each component."""
    rows = []
    for n in sizes:
        data_root = work / f"{n}" / "data"
        work.mkdir(parents=True, exist_ok=True)
        if not (data_root / "interactions").exists():
            print(f"[beam-memory] generating {n:,} interactions", flush=True)
            child = run_child(["benchmarks.beam_memory", "--generate", str(n), "--data", str(data_root)],
                              work / f"{n}-generate.log", timeout_s=3600)
            if child["returncode"] != 0:
                raise RuntimeError(f"data generation failed; see {work / f'{n}-generate.log'}")
        for variant in variants:
            out = work / f"{n}" / variant
            result = out / "windows.json"
            out.mkdir(parents=True, exist_ok=True)
            print(f"[beam-memory] {n:,} interactions, variant {variant}", flush=True)
            started = time.time()
            child = run_child(["benchmarks.beam_memory", "--child", variant, "--data", str(data_root),
                               "--out", str(out), "--result", str(result)], out / "run.log", timeout_s=7200)
            if child["returncode"] != 0:
                raise RuntimeError(f"{variant} at {n:,} failed ({child['returncode']}); see {out / 'run.log'}")
            windows = json.loads(result.read_text())["windows"]
            sampler = child["sampler"]
            row = {"interactions": n, "variant": variant, "wall_s": time.time() - started,
                   "peak_gb": sampler.peak() / GB}
            for name in COMPONENTS:
                start, end = windows[name]
                row[name] = {"wall_s": end - start, "peak_gb": sampler.peak(start, end) / GB}
            rows.append(row)
            print(f"[beam-memory]   {row['wall_s']:.0f}s, peak {row['peak_gb']:.2f} GB", flush=True)
    return rows


def print_report(rows: List[Dict]) -> None:
    """The per-component table and the peak's growth between the sizes of each variant."""
    header = f"{'interactions':>13} {'variant':<17}" + "".join(f"{name + ' s':>26}{'GB':>7}" for name in COMPONENTS)
    print(header)
    for row in rows:
        cells = "".join(f"{row[name]['wall_s']:>26.1f}{row[name]['peak_gb']:>7.2f}" for name in COMPONENTS)
        print(f"{row['interactions']:>13,} {row['variant']:<17}{cells}")
    sizes = sorted({row["interactions"] for row in rows})
    if len(sizes) < 2:
        return
    print("\nPeak growth, log-log slope of each component's peak RSS between the smallest and largest size")
    for variant in dict.fromkeys(row["variant"] for row in rows):
        small, large = (next(r for r in rows if r["variant"] == variant and r["interactions"] == n)
                        for n in (sizes[0], sizes[-1]))
        slopes = [math.log(large[c]["peak_gb"] / small[c]["peak_gb"]) / math.log(sizes[-1] / sizes[0])
                  for c in COMPONENTS]
        print(f"  {variant:<17}" + "".join(f"{c}: {s:.2f}   " for c, s in zip(COMPONENTS, slopes)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--work", default="/tmp/recsys-beam-memory")
    parser.add_argument("--report", default="", help="also write the rows to this JSON file")
    parser.add_argument("--generate", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate_main(args.generate, args.data)
        return
    if args.child:
        child_main(args.child, args.data, args.out, args.result)
        return
    variants = args.variants.split(",")
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    rows = measure([int(s) for s in args.sizes.split(",")], variants, pathlib.Path(args.work))
    print()
    print_report(rows)
    if args.report:
        pathlib.Path(args.report).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
