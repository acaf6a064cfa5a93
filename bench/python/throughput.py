"""Images per second labelling one folder three ways: the CLI, `ferlite.analyze_batch` in one
process, and the Spark example job in local mode on all cores.

    python bench/python/throughput.py FOLDER [--cli target/release/ferlite] [--repeats 3]

Prints one line per way (median of the repeats). Run with the ferlite wheel, PySpark, pandas and
pyarrow installed (bindings/python/requirements-test.txt) and nothing else busy.
"""

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def timed(run, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--cli", default=str(REPO / "target" / "release" / "ferlite"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    paths = sorted(str(p) for p in Path(args.folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    n = len(paths)
    print(f"{n} images in {args.folder}; {os.cpu_count()} cores")

    cli = timed(lambda: subprocess.run([args.cli, "-q", "predict", args.folder, "--format", "csv", "--output", os.devnull], check=True), args.repeats)
    print(f"CLI `ferlite predict FOLDER --format csv`: {n / cli:.1f} images/s ({cli:.2f} s)")

    import ferlite

    predictor = ferlite.Predictor()
    batch = timed(lambda: predictor.analyze_batch(paths), args.repeats)
    print(f"ferlite.analyze_batch(paths), one process: {n / batch:.1f} images/s ({batch:.2f} s)")

    spec = importlib.util.spec_from_file_location("job", REPO / "bindings" / "python" / "examples" / "spark_label_images.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    from pyspark.sql import SparkSession

    os.environ["PYSPARK_PYTHON"] = sys.executable
    spark = SparkSession.builder.master(f"local[{os.cpu_count()}]").config("spark.ui.enabled", "false").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    with tempfile.TemporaryDirectory() as out:
        job.label_images(spark, args.folder, out + "/warm.parquet")  # starts the Python workers
        sparked = timed(lambda: job.label_images(spark, args.folder, out + "/faces.parquet"), args.repeats)
    spark.stop()
    print(f"Spark job, local[{os.cpu_count()}] (workers started): {n / sparked:.1f} images/s ({sparked:.2f} s)")


if __name__ == "__main__":
    main()
