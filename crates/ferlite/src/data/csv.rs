//! Kaggle's `fer2013.csv`: header `emotion,pixels,Usage`, one face per row, 2304 space-separated pixels.

use super::{BadInput, DataError, FaceSet, Split};
use crate::emotion::{FACE_PIXELS, NUM_CLASSES};
use std::path::Path;

const USAGES: [&str; 3] = ["Training", "PublicTest", "PrivateTest"];

pub fn load_csv(path: &Path, split: Option<Split>, bad: BadInput) -> Result<FaceSet, DataError> {
    let io_err = |e: std::io::Error| DataError::io(path, e);
    let file = std::fs::File::open(path).map_err(io_err)?;
    let mut reader = ::csv::ReaderBuilder::new().flexible(true).from_reader(LineLimit::new(std::io::BufReader::new(file)));
    let headers = reader.headers().map_err(|e| csv_error(path, e))?.clone();
    let column = |name: &'static str| {
        headers.iter().position(|h| h.trim().eq_ignore_ascii_case(name)).ok_or(DataError::MissingColumn { path: path.to_path_buf(), column: name })
    };
    let (emotion_col, pixels_col) = (column("emotion")?, column("pixels")?);
    // `Usage` is only required when a split is asked for: a CSV of one split may leave it out.
    let usage_col = match split {
        Some(_) => Some(column("Usage")?),
        None => column("Usage").ok(),
    };

    let mut set = FaceSet::default();
    let mut pixels = Vec::with_capacity(FACE_PIXELS);
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(path, e))?;
        let line = record.position().map_or(0, |p| p.line());
        let parsed = parse_row(&record, emotion_col, pixels_col, usage_col, &mut pixels);
        match parsed {
            Ok((label, usage)) => {
                if split.is_none_or(|s| s.usage() == usage) {
                    set.push(&pixels, label, format!("{}:{line}", path.display()));
                }
            }
            Err(problem) => {
                let err = DataError::BadRow { path: path.to_path_buf(), line, problem };
                match bad {
                    BadInput::Abort => return Err(err),
                    BadInput::Skip => {
                        tracing::warn!("skipping {err}");
                        set.skipped += 1;
                    }
                }
            }
        }
    }
    Ok(set)
}

/// Parses one row into `pixels`; returns the label and the row's Usage (or "" when there is no column).
fn parse_row<'r>(
    record: &'r ::csv::StringRecord,
    emotion_col: usize,
    pixels_col: usize,
    usage_col: Option<usize>,
    pixels: &mut Vec<u8>,
) -> Result<(u8, &'r str), String> {
    let field = |i: usize, name: &str| record.get(i).ok_or_else(|| format!("row has {} fields, no `{name}`", record.len()));
    let emotion = field(emotion_col, "emotion")?.trim();
    let label: usize = emotion.parse().map_err(|_| format!("emotion `{emotion}` is not a number"))?;
    if label >= NUM_CLASSES {
        return Err(format!("emotion label {label} is out of range 0..={}", NUM_CLASSES - 1));
    }
    let usage = match usage_col {
        Some(i) => {
            let u = field(i, "Usage")?.trim();
            if !USAGES.contains(&u) {
                return Err(format!("unknown Usage `{u}` (expected Training, PublicTest or PrivateTest)"));
            }
            u
        }
        None => "",
    };
    pixels.clear();
    for (i, token) in field(pixels_col, "pixels")?.split_ascii_whitespace().enumerate() {
        let value: u32 = token.parse().map_err(|_| format!("pixel {} is `{token}`, not a number", i + 1))?;
        if value > 255 {
            return Err(format!("pixel {} is {value}, outside 0..=255", i + 1));
        }
        pixels.push(value as u8);
    }
    if pixels.len() != FACE_PIXELS {
        return Err(format!("expected {FACE_PIXELS} pixels (48x48), found {}", pixels.len()));
    }
    Ok((label as u8, usage))
}

fn csv_error(path: &Path, e: ::csv::Error) -> DataError {
    let line = e.position().map_or(0, |p| p.line());
    if let ::csv::ErrorKind::Io(error) = e.kind() {
        // A read error (or `LineLimit`'s refusal) is about the file, not a row.
        return DataError::Io { path: path.to_path_buf(), error: std::io::Error::new(error.kind(), error.to_string()) };
    }
    DataError::BadRow { path: path.to_path_buf(), line, problem: e.to_string() }
}

/// Longest line read: a FER2013 row (2,304 pixels of up to 3 digits, label, usage) is under 10 KB.
const MAX_LINE_BYTES: usize = 64 * 1024;

/// Passes bytes through until a line runs past [`MAX_LINE_BYTES`], then fails with the line's
/// number: the CSV reader would otherwise buffer a line of any length (a 400 MB line took 1 GB).
struct LineLimit<R> {
    inner: R,
    line: u64,
    line_bytes: usize,
}

impl<R> LineLimit<R> {
    fn new(inner: R) -> Self {
        LineLimit { inner, line: 1, line_bytes: 0 }
    }
}

impl<R: std::io::Read> std::io::Read for LineLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            if b == b'\n' {
                self.line += 1;
                self.line_bytes = 0;
            } else {
                self.line_bytes += 1;
                if self.line_bytes > MAX_LINE_BYTES {
                    let message = format!("line {} is longer than {MAX_LINE_BYTES} bytes (a FER2013 row is under 10 KB)", self.line);
                    return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, message));
                }
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn pixels(n: usize, v: u8) -> String {
        vec![v.to_string(); n].join(" ")
    }

    #[test]
    fn a_line_too_long_to_be_a_row_is_refused_by_its_number_without_reading_it_all() {
        let rows = [format!("3,{},Training", pixels(FACE_PIXELS, 7)), format!("3,{},Training", "1 ".repeat(1_000_000))];
        let f = write_csv(&rows);
        let err = load_csv(f.path(), None, BadInput::Abort).unwrap_err().to_string();
        assert!(err.contains("line 3 is longer than 65536 bytes"), "{err}");
    }

    fn write_csv(rows: &[String]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "emotion,pixels,Usage").unwrap();
        for r in rows {
            writeln!(f, "{r}").unwrap();
        }
        f
    }

    fn good_row(label: u8, usage: &str) -> String {
        format!("{label},{},{usage}", pixels(FACE_PIXELS, label * 30))
    }

    fn first_error(rows: &[String]) -> String {
        let f = write_csv(rows);
        load_csv(f.path(), None, BadInput::Abort).unwrap_err().to_string()
    }

    #[test]
    fn reads_rows_of_the_requested_usage() {
        let f = write_csv(&[good_row(3, "Training"), good_row(0, "PublicTest"), good_row(6, "Training")]);
        let train = load_csv(f.path(), Some(Split::Train), BadInput::Abort).unwrap();
        assert_eq!(train.labels, vec![3, 6]);
        assert_eq!(train.face(1)[0], 180);
        let all = load_csv(f.path(), None, BadInput::Abort).unwrap();
        assert_eq!(all.len(), 3);
        assert!(all.sources[1].ends_with(":3"), "source names the line: {}", all.sources[1]);
    }

    #[test]
    fn rejects_csv_row_with_2303_pixels() {
        let msg = first_error(&[good_row(1, "Training"), format!("2,{},Training", pixels(2303, 1))]);
        assert!(msg.contains(":3:") && msg.contains("expected 2304 pixels") && msg.contains("found 2303"), "{msg}");
    }

    #[test]
    fn rejects_non_numeric_pixel() {
        let mut p: Vec<String> = vec!["1".into(); FACE_PIXELS];
        p[10] = "x7".into();
        let msg = first_error(&[format!("2,{},Training", p.join(" "))]);
        assert!(msg.contains(":2:") && msg.contains("pixel 11 is `x7`"), "{msg}");
    }

    #[test]
    fn rejects_pixel_above_255() {
        let mut p: Vec<String> = vec!["1".into(); FACE_PIXELS];
        p[0] = "256".into();
        let msg = first_error(&[format!("2,{},Training", p.join(" "))]);
        assert!(msg.contains("outside 0..=255"), "{msg}");
    }

    #[test]
    fn rejects_label_out_of_range() {
        let msg = first_error(&[format!("7,{},Training", pixels(FACE_PIXELS, 1))]);
        assert!(msg.contains("emotion label 7 is out of range"), "{msg}");
    }

    #[test]
    fn rejects_unknown_usage() {
        let msg = first_error(&[format!("1,{},Testing", pixels(FACE_PIXELS, 1))]);
        assert!(msg.contains("unknown Usage `Testing`"), "{msg}");
    }

    #[test]
    fn rejects_missing_pixels_column() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "emotion,image,Usage\n1,2,Training").unwrap();
        let msg = load_csv(f.path(), None, BadInput::Abort).unwrap_err().to_string();
        assert!(msg.contains("missing column `pixels`"), "{msg}");
    }

    #[test]
    fn skip_bad_leaves_out_and_counts_bad_rows() {
        let f = write_csv(&[good_row(1, "Training"), format!("9,{},Training", pixels(FACE_PIXELS, 1)), "3,1 2 3,Training".into(), good_row(2, "Training")]);
        let set = load_csv(f.path(), None, BadInput::Skip).unwrap();
        assert_eq!(set.labels, vec![1, 2]);
        assert_eq!(set.skipped, 2);
    }
}
