"""The Spark example job in local mode: one Parquet row per face, equal to the CLI's results for
the same folder. Skips, saying why, without PySpark or Java."""

import csv
import importlib.util
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pyspark = pytest.importorskip("pyspark", reason="PySpark not installed (pip install pyspark pandas pyarrow)")
if shutil.which("java") is None:
    pytest.skip("no Java for Spark (apt-get install openjdk-17-jre-headless)", allow_module_level=True)

from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
DEMO = REPO / "assets" / "demo" / "astronaut.jpg"
CLI = REPO / "target" / "release" / "ferlite"
EXAMPLE = REPO / "bindings" / "python" / "examples" / "spark_label_images.py"


def load_example():
    spec = importlib.util.spec_from_file_location("spark_label_images", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    # Spark's Python workers run this interpreter, the one with ferlite installed.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master("local[2]")
        .appName("ferlite-test")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Two photos with a face, a 48x48 crop, a photo without a face and a broken file, nested."""
    root = tmp_path_factory.mktemp("images")
    (root / "sub").mkdir()
    shutil.copy(DEMO, root / "astronaut.jpg")
    Image.open(DEMO).convert("RGB").resize((256, 256)).save(root / "sub" / "small.png")
    Image.open(DEMO).convert("L").crop((170, 70, 270, 170)).resize((48, 48)).save(root / "crop.png")
    Image.new("RGB", (320, 240), (120, 130, 140)).save(root / "blank.jpg")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (root / "notes.txt").write_text("not an image, and not matched by the job's glob")
    return root


def test_the_spark_job_writes_one_row_per_face_equal_to_the_cli(spark, images, tmp_path):
    job = load_example()
    out = tmp_path / "faces.parquet"
    job.label_images(spark, str(images), str(out), partitions=3)
    rows = spark.read.parquet(str(out)).toPandas()
    assert list(rows.columns) == job.COLUMNS

    broken = rows[rows["error"].notna()]
    assert [Path(p).name for p in broken["path"]] == ["broken.jpg"]
    faces = rows[rows["error"].isna()].copy()
    faces["name"] = [Path(p).name for p in faces["path"]]
    assert sorted(faces["name"]) == ["astronaut.jpg", "crop.png", "small.png"]  # blank.jpg: no face, no row

    if not CLI.exists():
        pytest.skip(f"no ferlite binary at {CLI} to compare with (cargo build --release)")
    out = subprocess.run([str(CLI), "-q", "predict", str(images), "--format", "csv"], capture_output=True, text=True)
    cli = {Path(r["file"]).name: r for r in csv.DictReader(io.StringIO(out.stdout)) if r["face"]}
    assert sorted(cli) == sorted(faces["name"])
    for _, face in faces.iterrows():
        expected = cli[face["name"]]
        assert (face["x"], face["y"], face["width"], face["height"]) == tuple(int(expected[k]) for k in ("x", "y", "width", "height"))
        assert face["emotion"] == expected["emotion"]
        for emotion in job.EMOTIONS:
            assert face[emotion] == pytest.approx(float(expected[emotion]), abs=1e-4)
