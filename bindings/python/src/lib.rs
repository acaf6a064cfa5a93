//! `ferlite._ferlite`, the native half of the Python package: it converts Python values to the
//! core's types and back, releases the GIL around the work, and turns the core's errors into
//! Python exceptions. What Python users call (paths, bytes and numpy arrays in, lists of dicts
//! out) is `python/ferlite/__init__.py`, which hands this module one of three kinds of input.

use ferlite::analyze::{analyze, FaceMode, FaceResult, FaceSearch};
use ferlite::data::DataError;
use ferlite::emotion::EMOTIONS;
use ferlite::faces::Detector;
use ferlite::image_io::{decode_bytes, open_image, DecodeError, MAX_IMAGE_PIXELS};
use ferlite::nn::Precision;
use ferlite::predict::{Predictor as CorePredictor, Tta};
use image::{DynamicImage, GrayImage, RgbImage};
use pyo3::exceptions::{PyFileNotFoundError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use rayon::prelude::*;
use std::path::PathBuf;

/// One image as `__init__.py` passes it: a path, encoded bytes (JPEG, PNG, ...), or raw pixels.
enum Input {
    Path(PathBuf),
    Encoded(Vec<u8>),
    /// Row-major 8-bit pixels, 1 (gray) or 3 (RGB) channels.
    Pixels { data: Vec<u8>, height: u32, width: u32, channels: u8 },
}

impl Input {
    /// `("path", str)`, `("bytes", bytes)` or `("pixels", bytes, height, width, channels)`.
    fn from_py(item: &Bound<'_, PyAny>) -> PyResult<Input> {
        let tuple = item.cast::<PyTuple>().map_err(|_| PyValueError::new_err("internal: an input must be a tagged tuple"))?;
        let kind: String = tuple.get_item(0)?.extract()?;
        match kind.as_str() {
            "path" => Ok(Input::Path(tuple.get_item(1)?.extract()?)),
            "bytes" => Ok(Input::Encoded(tuple.get_item(1)?.cast::<PyBytes>()?.as_bytes().to_vec())),
            "pixels" => Ok(Input::Pixels {
                data: tuple.get_item(1)?.cast::<PyBytes>()?.as_bytes().to_vec(),
                height: tuple.get_item(2)?.extract()?,
                width: tuple.get_item(3)?.extract()?,
                channels: tuple.get_item(4)?.extract()?,
            }),
            other => Err(PyValueError::new_err(format!("internal: unknown input kind {other:?}"))),
        }
    }

    fn decode(self) -> Result<DynamicImage, Failure> {
        match self {
            Input::Path(path) => open_image(&path).map_err(|e| match e {
                DataError::NotFound { .. } => Failure::NotFound(e.to_string()),
                DataError::BadImage { .. } => Failure::BadInput(e.to_string()),
                other => Failure::Other(other.to_string()),
            }),
            Input::Encoded(bytes) => decode_bytes(&bytes, MAX_IMAGE_PIXELS).map_err(|e| match e {
                DecodeError::Io(io) => Failure::Other(io.to_string()),
                other => Failure::BadInput(other.to_string()),
            }),
            Input::Pixels { data, height, width, channels } => {
                if u64::from(height) * u64::from(width) > MAX_IMAGE_PIXELS {
                    return Err(Failure::BadInput(format!("image is {width}x{height} pixels, more than the limit of {MAX_IMAGE_PIXELS}")));
                }
                let size = (width, height);
                let image = match channels {
                    1 => GrayImage::from_raw(size.0, size.1, data).map(DynamicImage::ImageLuma8),
                    3 => RgbImage::from_raw(size.0, size.1, data).map(DynamicImage::ImageRgb8),
                    n => return Err(Failure::BadInput(format!("an image array needs 1 or 3 channels, not {n}"))),
                };
                image.ok_or_else(|| Failure::BadInput(format!("{width}x{height}x{channels} pixels do not match the array's length")))
            }
        }
    }
}

/// Why one image gave no result, as the Python exception it becomes.
enum Failure {
    NotFound(String),
    BadInput(String),
    Other(String),
}

impl From<Failure> for PyErr {
    fn from(failure: Failure) -> PyErr {
        match failure {
            Failure::NotFound(message) => PyFileNotFoundError::new_err(message),
            Failure::BadInput(message) => PyValueError::new_err(message),
            Failure::Other(message) => PyRuntimeError::new_err(message),
        }
    }
}

/// A choice given by name, parsed by the names the CLI and config files use (`"flip"`,
/// `"ten-crop"`, ...); a wrong one is a `ValueError` listing the right ones.
fn choice<T: serde::de::DeserializeOwned>(what: &str, name: &str) -> PyResult<T> {
    ferlite::choice::parse(name).map_err(|e| PyValueError::new_err(format!("{what}: {e}")))
}

/// How to find faces and classify them: `analyze`'s keyword arguments, parsed once.
#[derive(Clone, Copy)]
struct Options {
    search: FaceSearch,
    tta: Tta,
}

impl Options {
    fn parse(faces: &str, detector: &str, tta: &str, min_face_score: Option<f32>) -> PyResult<Options> {
        let mut search = FaceSearch { mode: choice::<FaceMode>("faces", faces)?, detector: choice::<Detector>("detector", detector)?, ..FaceSearch::default() };
        if let Some(score) = min_face_score {
            ferlite::faces::check_min_score(score).map_err(PyValueError::new_err)?;
            search.min_face_score = Some(score);
        }
        Ok(Options { search, tta: choice::<Tta>("tta", tta)? })
    }
}

fn run(predictor: &CorePredictor, input: Input, options: Options) -> Result<Vec<FaceResult>, Failure> {
    let image = input.decode()?;
    analyze(predictor, &image, options.search, options.tta).map_err(|e| Failure::BadInput(format!("{e:#}")))
}

/// The faces as a list of dicts, the very schema of the CLI's and the service's JSON (the same
/// serde form, through `pythonize`): `box` (`x`, `y`, `width`, `height`, `score`, `detector`,
/// `landmarks` when the detector gives them), `emotion`, `class_index`, `confidence`,
/// `probabilities` (all seven, by name).
fn faces_list<'py>(py: Python<'py>, faces: &[FaceResult]) -> PyResult<Bound<'py, PyAny>> {
    pythonize::pythonize(py, faces).map_err(PyErr::from)
}

/// A loaded model, reused across calls and safe to share between threads.
#[pyclass(module = "ferlite._ferlite", frozen)]
struct Predictor {
    inner: CorePredictor,
}

#[pymethods]
impl Predictor {
    #[new]
    #[pyo3(signature = (model_path=None, precision="f32"))]
    fn new(py: Python<'_>, model_path: Option<PathBuf>, precision: &str) -> PyResult<Self> {
        if let Some(path) = &model_path {
            if !path.exists() {
                return Err(PyFileNotFoundError::new_err(format!("{}: not found", path.display())));
            }
        }
        let precision = choice::<Precision>("precision", precision)?;
        let inner = py
            .detach(|| CorePredictor::load(model_path.as_deref()).and_then(|p| p.with_precision(precision)))
            .map_err(|e| PyValueError::new_err(format!("{e:#}")))?;
        Ok(Predictor { inner })
    }

    /// Where the weights came from: their path, or `"embedded"`.
    #[getter]
    fn source(&self) -> &str {
        &self.inner.source
    }

    /// Accuracy on FER2013's validation split recorded in the weights file when it was trained.
    #[getter]
    fn val_accuracy(&self) -> Option<f64> {
        self.inner.val_accuracy
    }

    #[pyo3(signature = (item, faces, detector, tta, min_face_score))]
    fn analyze<'py>(&self, py: Python<'py>, item: &Bound<'py, PyAny>, faces: &str, detector: &str, tta: &str, min_face_score: Option<f32>) -> PyResult<Bound<'py, PyAny>> {
        let options = Options::parse(faces, detector, tta, min_face_score)?;
        let input = Input::from_py(item)?;
        let result = py.detach(|| run(&self.inner, input, options))?;
        faces_list(py, &result)
    }

    /// Every item at once on `threads` threads (all cores when `None`), the GIL released; with
    /// `return_exceptions` a failed item's place holds its exception instead of raising it.
    #[pyo3(signature = (items, faces, detector, tta, min_face_score, threads, return_exceptions))]
    #[allow(clippy::too_many_arguments)]
    fn analyze_batch<'py>(
        &self,
        py: Python<'py>,
        items: &Bound<'py, PyList>,
        faces: &str,
        detector: &str,
        tta: &str,
        min_face_score: Option<f32>,
        threads: Option<usize>,
        return_exceptions: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        let options = Options::parse(faces, detector, tta, min_face_score)?;
        let inputs = items.iter().map(|item| Input::from_py(&item)).collect::<PyResult<Vec<_>>>()?;
        let pool = match threads {
            Some(0) => return Err(PyValueError::new_err("threads must be at least 1")),
            Some(n) => Some(rayon::ThreadPoolBuilder::new().num_threads(n).build().map_err(|e| PyRuntimeError::new_err(e.to_string()))?),
            None => None,
        };
        let results: Vec<Result<Vec<FaceResult>, Failure>> = py.detach(|| {
            let work = || inputs.into_par_iter().map(|input| run(&self.inner, input, options)).collect();
            match &pool {
                Some(pool) => pool.install(work),
                None => work(),
            }
        });
        let mut out = Vec::with_capacity(results.len());
        for result in results {
            match result {
                Ok(faces) => out.push(faces_list(py, &faces)?),
                Err(failure) if return_exceptions => out.push(PyErr::from(failure).into_value(py).into_bound(py).into_any()),
                Err(failure) => return Err(failure.into()),
            }
        }
        PyList::new(py, out)
    }
}

#[pymodule]
fn _ferlite(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Predictor>()?;
    m.add("EMOTIONS", EMOTIONS.to_vec())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
