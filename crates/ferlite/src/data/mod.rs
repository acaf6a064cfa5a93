//! FER2013 in the two forms users have it: Kaggle's `fer2013.csv` and image folders
//! (`<root>/<split>/<class>/*.jpg`), loaded into one in-memory [`FaceSet`].
//!
//! Bad input is an error naming the file (and row) and what is wrong. By default the first bad
//! row or image aborts the load ([`BadInput::Abort`]); with `--skip-bad` ([`BadInput::Skip`]) bad
//! rows and images are left out, each is logged, and the load reports how many were skipped.

pub mod augment;
pub mod csv;
pub mod folder;
pub mod loader;

use crate::emotion::{EMOTIONS, FACE_PIXELS};
use std::path::{Path, PathBuf};

/// Everything that can be wrong with a data source. Each variant names where the problem is.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: not found")]
    NotFound { path: PathBuf },
    // Not `source`: the message already ends with the I/O error, and a source would repeat it in `{:#}`.
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{path}:{line}: {problem}")]
    BadRow { path: PathBuf, line: u64, problem: String },
    #[error("{path}: missing column `{column}` in the header (expected emotion,pixels,Usage)")]
    MissingColumn { path: PathBuf, column: &'static str },
    #[error("{path}: cannot decode image: {reason}")]
    BadImage { path: PathBuf, reason: String },
    #[error("{path}: class folder has no images")]
    EmptyClassFolder { path: PathBuf },
    #[error("{path}: `{name}` is not an emotion class (expected one of: {}, or their label numbers 0-6)", EMOTIONS.join(", "))]
    UnknownClassFolder { path: PathBuf, name: String },
    #[error("{path}: an image, not a data set (a FER2013 CSV or a folder of class folders); `ferlite predict` classifies single images")]
    ImageNotDataSet { path: PathBuf },
    #[error("{path}: no faces found{hint}")]
    NoFaces { path: PathBuf, hint: String },
}

impl DataError {
    /// An I/O error on `path`: [`DataError::NotFound`] when there is nothing there, else [`DataError::Io`].
    pub fn io(path: &Path, error: std::io::Error) -> Self {
        match error.kind() {
            std::io::ErrorKind::NotFound => DataError::NotFound { path: path.to_path_buf() },
            _ => DataError::Io { path: path.to_path_buf(), error },
        }
    }
}

/// What to do with a bad CSV row or image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BadInput {
    /// Stop at the first bad row or image with its error (the default: silent data loss is worse).
    #[default]
    Abort,
    /// Leave it out, log it, and count it.
    Skip,
}

/// A split of FER2013 (or any set of labelled 48x48 faces), held in memory as 8-bit pixels.
#[derive(Clone, Debug, Default)]
pub struct FaceSet {
    /// `len() * 2304` gray pixels, face after face.
    pub pixels: Vec<u8>,
    /// Class index per face (see [`EMOTIONS`]).
    pub labels: Vec<u8>,
    /// Where each face came from (`file` or `file:line`), for reports and error messages.
    pub sources: Vec<String>,
    /// How many bad rows or images were skipped while loading.
    pub skipped: usize,
}

impl FaceSet {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn face(&self, i: usize) -> &[u8] {
        &self.pixels[i * FACE_PIXELS..(i + 1) * FACE_PIXELS]
    }

    pub fn push(&mut self, pixels: &[u8], label: u8, source: String) {
        debug_assert_eq!(pixels.len(), FACE_PIXELS);
        self.pixels.extend_from_slice(pixels);
        self.labels.push(label);
        self.sources.push(source);
    }

    /// Number of faces per class.
    pub fn class_counts(&self) -> [usize; EMOTIONS.len()] {
        let mut counts = [0; EMOTIONS.len()];
        self.labels.iter().for_each(|&l| counts[l as usize] += 1);
        counts
    }

    /// The first `n` faces of each class at most (for quick runs), keeping the original order.
    pub fn limit_per_class(&self, n: usize) -> FaceSet {
        let mut seen = [0usize; EMOTIONS.len()];
        let mut out = FaceSet { skipped: self.skipped, ..Default::default() };
        for i in 0..self.len() {
            let l = self.labels[i];
            if seen[l as usize] < n {
                seen[l as usize] += 1;
                out.push(self.face(i), l, self.sources[i].clone());
            }
        }
        out
    }
}

/// Which split of a source to read: the CSV's `Usage` or the folder's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Split {
    /// CSV `Training`, folder `train/`.
    Train,
    /// CSV `PublicTest`, folder `val/` (or `publictest/`).
    Val,
    /// CSV `PrivateTest`, folder `test/` (or `privatetest/`).
    Test,
}

impl Split {
    pub fn usage(self) -> &'static str {
        match self {
            Split::Train => "Training",
            Split::Val => "PublicTest",
            Split::Test => "PrivateTest",
        }
    }

    /// Folder names this split goes by in image-folder releases.
    pub fn folder_names(self) -> &'static [&'static str] {
        match self {
            Split::Train => &["train", "training"],
            Split::Val => &["val", "valid", "validation", "publictest"],
            Split::Test => &["test", "privatetest"],
        }
    }
}

/// Loads faces from a CSV file or an image folder.
///
/// - `fer2013.csv`: the rows whose `Usage` matches `split` (all rows when `split` is `None`).
/// - a folder with class subfolders (`happy/`, `sad/`, ...): those images; `split` is ignored.
/// - a folder holding split folders (`train/`, `val/`, ...): the folder of `split`.
pub fn load(path: &Path, split: Option<Split>, bad: BadInput) -> Result<FaceSet, DataError> {
    if !path.exists() {
        return Err(DataError::NotFound { path: path.to_path_buf() });
    }
    let set = if path.is_dir() {
        folder::load_folder(path, split, bad)?
    } else if crate::image_io::is_image_file(path) {
        return Err(DataError::ImageNotDataSet { path: path.to_path_buf() });
    } else {
        csv::load_csv(path, split, bad)?
    };
    if set.is_empty() {
        let hint = match split {
            Some(s) => format!(" for split {s:?} (CSV Usage `{}`, folder `{}`)", s.usage(), s.folder_names()[0]),
            None => String::new(),
        };
        return Err(DataError::NoFaces { path: path.to_path_buf(), hint });
    }
    Ok(set)
}
