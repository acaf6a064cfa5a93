//! Image folders: `<split>/<class>/*.{jpg,png,...}`, the layout of the image-folder FER2013 release.
//! Images of another size or in colour are converted to gray and resized to 48x48.

use super::{BadInput, DataError, FaceSet, Split};
use crate::emotion::emotion_index;
use crate::image_io::{is_image_file, load_face};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// Whether `path` directly holds class folders (`happy/`, ...), rather than split folders.
pub fn holds_class_folders(path: &Path) -> bool {
    subdirs(path).is_ok_and(|dirs| dirs.iter().any(|d| dir_name(d).is_some_and(|n| emotion_index(&n).is_some())))
}

/// The folder holding class folders: `path` itself, or its subfolder for `split`.
fn split_dir(path: &Path, split: Option<Split>) -> Result<PathBuf, DataError> {
    if holds_class_folders(path) {
        return Ok(path.to_path_buf());
    }
    let wanted = split.unwrap_or(Split::Test);
    for dir in subdirs(path)? {
        if dir_name(&dir).is_some_and(|n| wanted.folder_names().contains(&n.to_ascii_lowercase().as_str())) {
            return Ok(dir);
        }
    }
    let present: Vec<String> = subdirs(path)?
        .iter()
        .filter_map(|d| dir_name(d))
        .filter(|n| [Split::Train, Split::Val, Split::Test].iter().any(|s| s.folder_names().contains(&n.to_ascii_lowercase().as_str())))
        .map(|n| format!("{n}/"))
        .collect();
    let asked = if split.is_some() { "the" } else { "the default" };
    let hint = if present.is_empty() {
        format!("no class folders (angry/, happy/, ...) and no `{}/` split folder ({asked} split)", wanted.folder_names()[0])
    } else {
        format!("no `{}/` split folder ({asked} split); it has {}: pass --split to pick one", wanted.folder_names()[0], present.join(", "))
    };
    Err(DataError::NoFaces { path: path.to_path_buf(), hint: format!(": {hint}") })
}

fn subdirs(path: &Path) -> Result<Vec<PathBuf>, DataError> {
    let entries = std::fs::read_dir(path).map_err(|e| DataError::io(path, e))?;
    let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    Ok(dirs)
}

fn dir_name(path: &Path) -> Option<String> {
    path.file_name().and_then(|n| n.to_str()).map(str::to_string)
}

pub fn load_folder(path: &Path, split: Option<Split>, bad: BadInput) -> Result<FaceSet, DataError> {
    let root = split_dir(path, split)?;
    // Collect (file, label) first so decoding can run in parallel.
    let mut files = Vec::new();
    for dir in subdirs(&root)? {
        let name = dir_name(&dir).unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        let Some(label) = emotion_index(&name) else {
            report(DataError::UnknownClassFolder { path: dir.clone(), name }, bad)?;
            continue;
        };
        let entries = std::fs::read_dir(&dir).map_err(|e| DataError::io(&dir, e))?;
        let mut images: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file() && is_image_file(p)).collect();
        if images.is_empty() {
            report(DataError::EmptyClassFolder { path: dir.clone() }, bad)?;
        }
        images.sort();
        files.extend(images.into_iter().map(|p| (p, label as u8)));
    }
    let decoded: Vec<(Result<Vec<u8>, DataError>, u8, PathBuf)> = files.into_par_iter().map(|(p, l)| (load_face(&p), l, p)).collect();
    let mut set = FaceSet::default();
    for (pixels, label, path) in decoded {
        match pixels {
            Ok(px) => set.push(&px, label, path.display().to_string()),
            Err(e) => {
                report(e, bad)?;
                set.skipped += 1;
            }
        }
    }
    Ok(set)
}

/// Aborts with `err`, or logs it when bad input is skipped.
fn report(err: DataError, bad: BadInput) -> Result<(), DataError> {
    match bad {
        BadInput::Abort => Err(err),
        BadInput::Skip => {
            tracing::warn!("skipping {err}");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma, RgbImage};

    fn face(dir: &Path, class: &str, name: &str, value: u8) {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        GrayImage::from_pixel(48, 48, Luma([value])).save(dir.join(class).join(name)).unwrap();
    }

    #[test]
    fn reads_split_folders_in_class_order() {
        let tmp = tempfile::tempdir().unwrap();
        let val = tmp.path().join("val");
        face(&val, "sad", "a.png", 10);
        face(&val, "angry", "b.png", 20);
        face(&tmp.path().join("train"), "happy", "c.png", 30);
        let set = load_folder(tmp.path(), Some(Split::Val), BadInput::Abort).unwrap();
        assert_eq!(set.labels, vec![0, 4]);
        assert_eq!(set.face(0)[0], 20);
        // A split folder given directly works too.
        assert_eq!(load_folder(&val, None, BadInput::Abort).unwrap().len(), 2);
    }

    #[test]
    fn converts_colour_and_resizes_to_48() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("happy")).unwrap();
        RgbImage::from_pixel(100, 80, image::Rgb([200, 200, 200])).save(tmp.path().join("happy/big.jpg")).unwrap();
        let set = load_folder(tmp.path(), None, BadInput::Abort).unwrap();
        assert_eq!(set.pixels.len(), 48 * 48);
        assert!((set.face(0)[24 * 48] as i32 - 200).abs() <= 2);
    }

    #[test]
    fn rejects_corrupt_image_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        face(tmp.path(), "fear", "ok.png", 1);
        std::fs::write(tmp.path().join("fear/broken.jpg"), b"not a jpeg at all").unwrap();
        let err = load_folder(tmp.path(), None, BadInput::Abort).unwrap_err().to_string();
        assert!(err.contains("broken.jpg") && err.contains("cannot decode"), "{err}");
        let set = load_folder(tmp.path(), None, BadInput::Skip).unwrap();
        assert_eq!((set.len(), set.skipped), (1, 1));
    }

    #[test]
    fn rejects_empty_class_folder() {
        let tmp = tempfile::tempdir().unwrap();
        face(tmp.path(), "fear", "ok.png", 1);
        std::fs::create_dir_all(tmp.path().join("disgust")).unwrap();
        let err = load_folder(tmp.path(), None, BadInput::Abort).unwrap_err().to_string();
        assert!(err.contains("disgust") && err.contains("no images"), "{err}");
    }

    #[test]
    fn rejects_unknown_class_folder() {
        let tmp = tempfile::tempdir().unwrap();
        face(tmp.path(), "happy", "ok.png", 1);
        face(tmp.path(), "contempt", "x.png", 1);
        let err = load_folder(tmp.path(), None, BadInput::Abort).unwrap_err().to_string();
        assert!(err.contains("`contempt` is not an emotion class"), "{err}");
    }

    #[test]
    fn folder_without_classes_or_split_names_the_problem() {
        let tmp = tempfile::tempdir().unwrap();
        let err = load_folder(tmp.path(), Some(Split::Val), BadInput::Abort).unwrap_err().to_string();
        assert!(err.contains("no class folders") && err.contains("val/"), "{err}");
        // A FER2013 root with only val/: the default split test/ is missing, and val/ is offered.
        face(&tmp.path().join("val"), "happy", "ok.png", 1);
        let err = load_folder(tmp.path(), None, BadInput::Abort).unwrap_err().to_string();
        assert!(err.contains("no `test/` split folder (the default split)") && err.contains("it has val/") && err.contains("--split"), "{err}");
    }
}
