"""Label every image under a folder with ferlite on Spark: one Parquet row per face.

Local (all cores of this machine):

    spark-submit bindings/python/examples/spark_label_images.py photos/ emotions.parquet

On a cluster, install the ferlite wheel on every worker (``pip install ferlite-*.whl``; the model
is inside it), then point the same job at shared storage:

    spark-submit --master spark://head:7077 spark_label_images.py s3a://bucket/frames/ s3a://bucket/emotions.parquet

Columns are the face columns of ``ferlite predict --format csv``, with ``path`` for its ``file``: path, face,
x, y, width, height, score (the detector's; null for a whole-image face crop), emotion,
confidence, the seven probabilities (angry ... neutral), and error (set, with the faces' columns
null, for a file that is not a readable image). An image without faces gives no row.
"""

from __future__ import annotations

import argparse
from typing import Iterator

EMOTIONS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
COLUMNS = ["path", "face", "x", "y", "width", "height", "score", "emotion", "confidence", *EMOTIONS, "error"]
SCHEMA = (
    "path string, face int, x int, y int, width int, height int, score double, emotion string, confidence double, "
    + ", ".join(f"{e} double" for e in EMOTIONS)
    + ", error string"
)
IMAGE_GLOB = "*.{jpg,jpeg,JPG,JPEG,png,PNG,bmp,gif,webp,tif,tiff}"


def label_batches(batches: Iterator["pandas.DataFrame"], threads: int = 1, **options) -> Iterator["pandas.DataFrame"]:
    """``mapInPandas`` body: each batch of (path, content) rows to one row per face. One
    ``Predictor`` per Python worker; ``threads`` per task (Spark already runs a task per core)."""
    import pandas as pd

    import ferlite

    predictor = ferlite.Predictor()
    for batch in batches:
        results = predictor.analyze_batch(list(batch["content"]), threads=threads, return_exceptions=True, **options)
        rows = []
        for path, faces in zip(batch["path"], results):
            if isinstance(faces, Exception):
                rows.append({"path": path, "error": str(faces)})
                continue
            for i, face in enumerate(faces, start=1):
                box = face["box"]
                rows.append(
                    {"path": path, "face": i, **{k: box[k] for k in ("x", "y", "width", "height", "score")},
                     "emotion": face["emotion"], "confidence": face["confidence"], **face["probabilities"]}
                )
        # Object columns keep None as null (a float column would turn the integer ones into NaN).
        yield pd.DataFrame({c: pd.Series([row.get(c) for row in rows], dtype=object) for c in COLUMNS})


def label_images(spark, images: str, out: str, partitions: int | None = None, threads: int = 1, **options):
    """Reads every image under ``images`` (recursively), labels it, writes Parquet to ``out``."""
    files = (
        spark.read.format("binaryFile")
        .option("pathGlobFilter", IMAGE_GLOB)
        .option("recursiveFileLookup", "true")
        .load(images)
        .select("path", "content")
    )
    files = files.repartition(partitions or spark.sparkContext.defaultParallelism)
    faces = files.mapInPandas(lambda batches: label_batches(batches, threads=threads, **options), schema=SCHEMA)
    faces.write.mode("overwrite").parquet(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", help="folder (or bucket prefix) of images, read recursively")
    parser.add_argument("out", help="Parquet output folder")
    parser.add_argument("--partitions", type=int, help="tasks to split the images into (default: the cluster's cores)")
    parser.add_argument("--threads", type=int, default=1, help="threads per task (default 1: Spark runs one task per core)")
    parser.add_argument("--faces", default="auto", choices=["auto", "detect", "whole"])
    parser.add_argument("--tta", default="flip", choices=["none", "flip", "ten-crop"])
    args = parser.parse_args()

    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName("ferlite-label-images").getOrCreate()
    label_images(spark, args.images, args.out, args.partitions, args.threads, faces=args.faces, tta=args.tta)
    spark.stop()


if __name__ == "__main__":
    main()
