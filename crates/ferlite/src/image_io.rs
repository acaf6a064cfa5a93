//! Images in: decoding files and uploaded bytes in any supported format with bounded memory,
//! turned upright by their EXIF orientation, and turned into 48x48 gray faces.
//!
//! Every decode checks the image's size from its header first and refuses anything above
//! [`MAX_IMAGE_PIXELS`] (or the caller's own limit) before a pixel buffer is allocated, so a
//! 20000x20000 photo or a decompression bomb is a clear error, never an out-of-memory kill.

use crate::data::DataError;
use crate::emotion::FACE_SIZE;
use image::imageops::FilterType;
use image::{AnimationDecoder, DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use std::io::{BufRead, BufReader, Cursor, Seek, SeekFrom};
use std::path::Path;

/// Extensions read as images; other files (README, .DS_Store, ...) are ignored in folders.
pub const IMAGE_EXTENSIONS: [&str; 8] = ["jpg", "jpeg", "png", "bmp", "gif", "webp", "tif", "tiff"];

/// Largest image decoded by default: 100 megapixels (a 12000x8000 photo; about 400 MB as RGBA while
/// it is converted). Larger images are refused with [`DecodeError::TooLarge`].
pub const MAX_IMAGE_PIXELS: u64 = 100_000_000;

/// Most frames read from one animated GIF.
pub const MAX_GIF_FRAMES: usize = 10_000;

/// Why bytes could not become an image.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not an image in a supported format (JPEG, PNG, GIF, BMP, WebP, TIFF)")]
    Unsupported,
    #[error("image is {width}x{height} = {} pixels, more than the limit of {max_pixels}", *width as u64 * *height as u64)]
    TooLarge { width: u32, height: u32, max_pixels: u64 },
    #[error("decoding would need more memory than allowed: {0}")]
    OverMemoryLimit(String),
    #[error("corrupt or truncated image: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

pub fn is_image_file(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Decodes an image held in memory (an upload), refusing more than `max_pixels` pixels.
pub fn decode_bytes(bytes: &[u8], max_pixels: u64) -> Result<DynamicImage, DecodeError> {
    decode(Cursor::new(bytes), max_pixels)
}

/// Decodes an image file; errors name the file.
pub fn open_image(path: &Path) -> Result<DynamicImage, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    decode(BufReader::new(file), MAX_IMAGE_PIXELS).map_err(|e| match e {
        DecodeError::Io(error) => DataError::io(path, error),
        other => DataError::BadImage { path: path.to_path_buf(), reason: other.to_string() },
    })
}

/// False for JPEG data that stops before its end-of-image marker; true for a whole JPEG and for
/// anything that is not a JPEG (its decoder judges it). JPEG decoders fill a cut-off scan with
/// grey and report no error, so a half-written or half-downloaded photo would otherwise be
/// classified as if it were whole. Walks the segments (skipping each by its length) and the
/// entropy-coded scans (where 0xFF is followed by a stuffed 0x00 or a restart marker) to the
/// first end-of-image marker, so data appended after it (camera trailers) does not matter.
/// Reads byte by byte from the caller's buffer: memory stays constant whatever the file's size.
fn jpeg_reaches_its_end(data: impl BufRead) -> std::io::Result<bool> {
    let mut bytes = data.bytes();
    let mut next = move || bytes.next().transpose();
    if next()? != Some(0xFF) || next()? != Some(0xD8) {
        return Ok(true);
    }
    // The code after a run of 0xFF fill bytes (`None`: the data ended).
    fn marker_code(next: &mut impl FnMut() -> std::io::Result<Option<u8>>) -> std::io::Result<Option<u8>> {
        loop {
            match next()? {
                Some(0xFF) => continue,
                other => return Ok(other),
            }
        }
    }
    let mut pending = None;
    loop {
        let code = match pending.take() {
            Some(code) => code,
            None => match next()? {
                Some(0xFF) => match marker_code(&mut next)? {
                    Some(code) => code,
                    None => return Ok(false),
                },
                Some(_) => return Ok(true), // not a marker where one belongs: malformed, the decoder's to judge
                None => return Ok(false),
            },
        };
        match code {
            0xD9 => return Ok(true),
            0x01 | 0xD0..=0xD7 => continue,
            _ => {
                let (Some(high), Some(low)) = (next()?, next()?) else { return Ok(false) };
                for _ in 2..u16::from_be_bytes([high, low]) {
                    if next()?.is_none() {
                        return Ok(false);
                    }
                }
                if code == 0xDA {
                    loop {
                        match next()? {
                            None => return Ok(false),
                            Some(0xFF) => match marker_code(&mut next)? {
                                None => return Ok(false),
                                Some(0x00 | 0xD0..=0xD7) => {}
                                Some(code) => {
                                    pending = Some(code);
                                    break;
                                }
                            },
                            Some(_) => {}
                        }
                    }
                }
            }
        }
    }
}

/// Every image's one way in (files and bytes alike): a JPEG cut before its end is refused, the
/// size is checked from the header, then the pixels are decoded and turned upright.
fn decode<R: BufRead + Seek>(mut source: R, max_pixels: u64) -> Result<DynamicImage, DecodeError> {
    let start = source.stream_position()?;
    if !jpeg_reaches_its_end(&mut source)? {
        return Err(DecodeError::Corrupt("the JPEG data ends before its end-of-image marker (truncated file?)".into()));
    }
    source.seek(SeekFrom::Start(start))?;
    let mut reader = ImageReader::new(source).with_guessed_format()?;
    if reader.format().is_none() {
        return Err(DecodeError::Unsupported);
    }
    reader.limits(allocation_limits(max_pixels));
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    check_pixels(&decoder, max_pixels)?;
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    img.apply_orientation(orientation);
    Ok(img)
}

fn corrupt(e: image::ImageError) -> DecodeError {
    match e {
        image::ImageError::Unsupported(_) => DecodeError::Unsupported,
        image::ImageError::Limits(e) => DecodeError::OverMemoryLimit(e.to_string()),
        image::ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => DecodeError::Corrupt("the data ends early (truncated file?)".into()),
        image::ImageError::IoError(io) => DecodeError::Io(io),
        other => DecodeError::Corrupt(other.to_string()),
    }
}

/// Whether `path` holds a GIF with more than one frame (read as a video by `predict`). A GIF too
/// large to decode is not animated here: [`open_image`] then refuses it with the reason.
pub fn is_animated_gif(path: &Path) -> bool {
    let Ok(reader) = ImageReader::open(path).and_then(|r| r.with_guessed_format()) else { return false };
    if reader.format() != Some(ImageFormat::Gif) {
        return false;
    }
    gif_decoder(path).is_ok_and(|d| d.into_frames().take(2).count() > 1)
}

/// A GIF decoder for `path` whose canvas fits [`MAX_IMAGE_PIXELS`], checked from the header before
/// any frame is read (the frame iterator allocates the whole canvas: a 441-byte GIF claiming
/// 65535x65535 would take 17 GB), with the decoder's allocation cap as for every other image.
fn gif_decoder(path: &Path) -> Result<image::codecs::gif::GifDecoder<BufReader<std::fs::File>>, DecodeError> {
    let file = std::fs::File::open(path)?;
    let mut decoder = image::codecs::gif::GifDecoder::new(BufReader::new(file)).map_err(corrupt)?;
    check_pixels(&decoder, MAX_IMAGE_PIXELS)?;
    decoder.set_limits(allocation_limits(MAX_IMAGE_PIXELS)).map_err(corrupt)?;
    Ok(decoder)
}

/// The size a decoder reads from the header, refused when over `max_pixels`, before any pixel.
fn check_pixels(decoder: &impl ImageDecoder, max_pixels: u64) -> Result<(), DecodeError> {
    let (width, height) = decoder.dimensions();
    if width as u64 * height as u64 > max_pixels {
        return Err(DecodeError::TooLarge { width, height, max_pixels });
    }
    Ok(())
}

/// The decoder's own allocation cap, backing up the pixel check (RGBA f32 would be 16 bytes a pixel).
fn allocation_limits(max_pixels: u64) -> image::Limits {
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(16));
    limits
}

/// Calls `each` with every frame of an animated GIF, in order, composited as a viewer shows it.
/// Frames are decoded one at a time, so memory stays at one frame however long the GIF is.
pub fn for_each_gif_frame(path: &Path, mut each: impl FnMut(usize, DynamicImage) -> anyhow::Result<()>) -> Result<(), DataError> {
    let bad = |reason: String| DataError::BadImage { path: path.to_path_buf(), reason };
    let decoder = gif_decoder(path).map_err(|e| match e {
        DecodeError::Io(error) => DataError::io(path, error),
        other => bad(other.to_string()),
    })?;
    for (index, frame) in decoder.into_frames().take(MAX_GIF_FRAMES).enumerate() {
        let frame = frame.map_err(|e| bad(format!("frame {index}: {e}")))?;
        each(index, DynamicImage::ImageRgba8(frame.into_buffer())).map_err(|e| bad(format!("frame {index}: {e:#}")))?;
    }
    Ok(())
}

/// Any image as a 48x48 gray face: converted to luma, resized (Catmull-Rom) when it is another size.
pub fn face_pixels(img: &DynamicImage) -> Vec<u8> {
    let gray = img.to_luma8();
    let gray = if gray.dimensions() == (FACE_SIZE as u32, FACE_SIZE as u32) {
        gray
    } else {
        image::imageops::resize(&gray, FACE_SIZE as u32, FACE_SIZE as u32, FilterType::CatmullRom)
    };
    gray.into_raw()
}

/// Reads an image file as a 48x48 gray face.
pub fn load_face(path: &Path) -> Result<Vec<u8>, DataError> {
    open_image(path).map(|img| face_pixels(&img))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        image::GrayImage::new(width, height).write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png).unwrap();
        bytes
    }

    /// The smallest GIF (one pixel, two colours), its canvas and frame claiming `side` x `side`.
    fn gif_claiming(side: u16) -> Vec<u8> {
        let [lo, hi] = side.to_le_bytes();
        let mut gif = b"GIF89a".to_vec();
        gif.extend([lo, hi, lo, hi, 0x80, 0, 0, 0xff, 0xff, 0xff, 0, 0, 0]); // canvas, 2-colour table
        gif.extend([0x2c, 0, 0, 0, 0, lo, hi, lo, hi, 0]); // the frame
        gif.extend([2, 2, 0x44, 0x01, 0, 0x3b]); // its LZW data, trailer
        gif
    }

    #[test]
    fn a_tiny_gif_claiming_a_huge_canvas_is_refused_before_any_frame_is_allocated() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("huge.gif");
        std::fs::write(&path, gif_claiming(65535)).unwrap();
        assert!(!is_animated_gif(&path));
        let err = open_image(&path).unwrap_err().to_string();
        assert!(err.contains("huge.gif") && err.contains("65535x65535") && err.contains("limit"), "{err}");
        let err = for_each_gif_frame(&path, |_, _| Ok(())).unwrap_err().to_string();
        assert!(err.contains("65535x65535"), "{err}");
        // The same file at its own size decodes.
        std::fs::write(&path, gif_claiming(1)).unwrap();
        assert!(open_image(&path).is_ok() && !is_animated_gif(&path));
    }

    #[test]
    fn a_jpeg_cut_anywhere_before_its_end_marker_is_an_error_and_a_whole_one_is_not() {
        let whole = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/demo/astronaut.jpg")).unwrap();
        assert!(decode_bytes(&whole, MAX_IMAGE_PIXELS).is_ok());
        // Camera trailers after the end marker are fine.
        let trailer = [whole.as_slice(), b"SEFT trailer bytes \xff\xd8 and more"].concat();
        assert!(decode_bytes(&trailer, MAX_IMAGE_PIXELS).is_ok());
        for cut in [whole.len() - 2, whole.len() - 1000, whole.len() / 2, 2000, 300, 4] {
            let err = decode_bytes(&whole[..cut], MAX_IMAGE_PIXELS).unwrap_err().to_string();
            assert!(err.contains("truncated"), "cut at {cut}: {err}");
        }
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("half.jpg");
        std::fs::write(&path, &whole[..whole.len() / 2]).unwrap();
        let err = open_image(&path).unwrap_err().to_string();
        assert!(err.contains("half.jpg") && err.contains("truncated"), "{err}");
    }

    #[test]
    fn refuses_image_above_pixel_limit_before_decoding() {
        let err = decode_bytes(&png(300, 200), 50_000).unwrap_err();
        assert!(matches!(err, DecodeError::TooLarge { width: 300, height: 200, .. }), "{err}");
        assert!(err.to_string().contains("300x200"), "{err}");
        assert_eq!(decode_bytes(&png(300, 200), 60_000).unwrap().width(), 300);
    }

    #[test]
    fn text_is_unsupported_and_truncated_png_is_corrupt() {
        assert!(matches!(decode_bytes(b"hello, this is not an image", 1 << 20), Err(DecodeError::Unsupported)));
        let bytes = png(64, 64);
        assert!(matches!(decode_bytes(&bytes[..bytes.len() / 2], 1 << 20), Err(DecodeError::Corrupt(_))));
    }
}
