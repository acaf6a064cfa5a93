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

/// Bytes a decoded pixel may take at the pixel limit (8-bit RGBA): an image of deeper pixels
/// (16-bit, float) may have proportionally fewer, so no decode holds more than
/// `max_pixels * BUDGET_BYTES_PER_PIXEL` bytes of pixels, whatever its format claims.
pub const BUDGET_BYTES_PER_PIXEL: u64 = 4;

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

/// What decoding an image will take, read from its header alone.
#[derive(Clone, Copy, Debug)]
pub struct ImageHeader {
    pub width: u32,
    pub height: u32,
    /// The decoder's pixel buffer plus, for deeper than 8-bit images, the 8-bit copy made of it:
    /// the most decoding holds at once.
    pub peak_bytes: u64,
}

/// The header of an image held in memory: its size and what decoding it will cost, checked
/// against `max_pixels` and the memory budget as [`decode_bytes`] checks them.
pub fn read_header(bytes: &[u8], max_pixels: u64) -> Result<ImageHeader, DecodeError> {
    let decoder = checked_decoder(Cursor::new(bytes), max_pixels)?;
    let (width, height) = decoder.dimensions();
    Ok(ImageHeader { width, height, peak_bytes: peak_bytes(&decoder) })
}

fn peak_bytes(decoder: &impl ImageDecoder) -> u64 {
    let (width, height) = decoder.dimensions();
    let color = decoder.color_type();
    let copy = if color.bytes_per_pixel() > color.channel_count() { width as u64 * height as u64 * color.channel_count() as u64 } else { 0 };
    decoder.total_bytes() + copy
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
/// size and memory are checked from the header, then the pixels are decoded, brought to 8 bits a
/// channel (all that detection and the network use) and turned upright.
fn decode<R: BufRead + Seek>(source: R, max_pixels: u64) -> Result<DynamicImage, DecodeError> {
    let mut decoder = checked_decoder(source, max_pixels)?;
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = to_8_bits(DynamicImage::from_decoder(decoder).map_err(corrupt)?);
    img.apply_orientation(orientation);
    Ok(img)
}

/// The decoder for `source`, once the JPEG end, the pixel count and the memory budget are checked.
fn checked_decoder<'a, R: BufRead + Seek + 'a>(mut source: R, max_pixels: u64) -> Result<impl ImageDecoder + 'a, DecodeError> {
    let start = source.stream_position()?;
    if !jpeg_reaches_its_end(&mut source)? {
        return Err(DecodeError::Corrupt("the JPEG data ends before its end-of-image marker (truncated file?)".into()));
    }
    let length = source.seek(SeekFrom::End(0))? - start;
    source.seek(SeekFrom::Start(start))?;
    let mut reader = ImageReader::new(source).with_guessed_format()?;
    let format = reader.format().ok_or(DecodeError::Unsupported)?;
    reader.limits(allocation_limits(max_pixels));
    let decoder = reader.into_decoder().map_err(corrupt)?;
    check_pixels(&decoder, max_pixels)?;
    if format == ImageFormat::Jpeg {
        // Huffman coding spends at least one bit on every 8x8 block (its DC code), so a file
        // shorter than that cannot hold its frame: a forged size (a 1.4 KB file claiming
        // 7000x7000 decodes to 49 MP of filler), or data cut before a kept end marker.
        let (width, height) = decoder.dimensions();
        let blocks = u64::from(width.div_ceil(8)) * u64::from(height.div_ceil(8));
        if length * 8 < blocks {
            return Err(DecodeError::Corrupt(format!("{length} bytes cannot hold a {width}x{height} JPEG (at least one bit per 8x8 block): truncated or forged")));
        }
    }
    let budget = max_pixels.saturating_mul(BUDGET_BYTES_PER_PIXEL);
    if peak_bytes(&decoder) > budget {
        let (width, height) = decoder.dimensions();
        return Err(DecodeError::OverMemoryLimit(format!(
            "a {width}x{height} {:?} image takes {} MB to decode, more than the {} MB allowed at a limit of {max_pixels} pixels",
            decoder.color_type(),
            peak_bytes(&decoder).div_ceil(1_000_000),
            budget / 1_000_000
        )));
    }
    Ok(decoder)
}

/// 16-bit and float images as 8-bit ones with the same channels, the deep buffer dropped at once.
fn to_8_bits(img: DynamicImage) -> DynamicImage {
    use DynamicImage::*;
    match img {
        ImageLuma16(_) => ImageLuma8(img.to_luma8()),
        ImageLumaA16(_) => ImageLumaA8(img.to_luma_alpha8()),
        ImageRgb16(_) | ImageRgb32F(_) => ImageRgb8(img.to_rgb8()),
        ImageRgba16(_) | ImageRgba32F(_) => ImageRgba8(img.to_rgba8()),
        eight_bit => eight_bit,
    }
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

/// What [`for_each_gif_frame`] read of an animation.
#[derive(Debug, Default)]
pub struct GifFrames {
    /// Indices of frames with no pixels (0x0), passed over.
    pub skipped: Vec<usize>,
    /// Whether the GIF has frames past the cap, left unread.
    pub more_frames: bool,
}

/// Calls `each` with the frames of an animated GIF, in order, composited as a viewer shows them,
/// up to `max_frames` (a 240 KB GIF can hold 10,000 large frames: hours of work). Frames are
/// decoded one at a time, so memory stays at one frame however long the GIF is. A frame of no
/// pixels is passed over (and listed), not taken for the end of the file.
pub fn for_each_gif_frame(path: &Path, max_frames: usize, mut each: impl FnMut(usize, DynamicImage) -> anyhow::Result<()>) -> Result<GifFrames, DataError> {
    let bad = |reason: String| DataError::BadImage { path: path.to_path_buf(), reason };
    let decoder = gif_decoder(path).map_err(|e| match e {
        DecodeError::Io(error) => DataError::io(path, error),
        other => bad(other.to_string()),
    })?;
    let mut read = GifFrames::default();
    let mut analysed = 0;
    for (index, frame) in decoder.into_frames().enumerate() {
        let frame = match frame {
            Ok(frame) => frame,
            // The decoder reads a 0x0 frame as an "odd-sized buffer" and goes on to the next one.
            Err(e) if e.to_string().contains("odd-sized buffer") && read.skipped.len() < max_frames => {
                read.skipped.push(index);
                continue;
            }
            Err(e) => return Err(bad(format!("frame {index}: {e}"))),
        };
        if analysed == max_frames {
            read.more_frames = true;
            break;
        }
        each(index, DynamicImage::ImageRgba8(frame.into_buffer())).map_err(|e| bad(format!("frame {index}: {e:#}")))?;
        analysed += 1;
    }
    Ok(read)
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

    /// A 1x1 GIF with a frame per entry of `sizes`: 1x1 where it says 1, 0x0 where it says 0.
    fn gif_with_frames(sizes: &[u8]) -> Vec<u8> {
        let mut gif = b"GIF89a".to_vec();
        gif.extend([1, 0, 1, 0, 0x80, 0, 0, 0xff, 0xff, 0xff, 0, 0, 0]);
        for &side in sizes {
            gif.extend([0x21, 0xf9, 4, 0, 10, 0, 0, 0]); // graphic control: 0.1 s a frame
            gif.extend([0x2c, 0, 0, 0, 0, side, 0, side, 0, 0]);
            if side == 0 {
                gif.extend([2, 1, 0x2c, 0]); // clear and end codes only
            } else {
                gif.extend([2, 2, 0x44, 0x01, 0]);
            }
        }
        gif.push(0x3b);
        gif
    }

    #[test]
    fn gif_frames_past_the_cap_are_left_and_a_zero_size_frame_is_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("clip.gif");
        std::fs::write(&path, gif_with_frames(&[1, 0, 1, 1, 1])).unwrap();
        let mut seen = Vec::new();
        let read = for_each_gif_frame(&path, 100, |index, _| {
            seen.push(index);
            Ok(())
        }).unwrap();
        assert_eq!((seen.as_slice(), read.skipped.as_slice(), read.more_frames), ([0, 2, 3, 4].as_slice(), [1].as_slice(), false));
        seen.clear();
        let read = for_each_gif_frame(&path, 2, |index, _| {
            seen.push(index);
            Ok(())
        }).unwrap();
        assert_eq!((seen.as_slice(), read.more_frames), ([0, 2].as_slice(), true));
    }

    #[test]
    fn a_tiny_gif_claiming_a_huge_canvas_is_refused_before_any_frame_is_allocated() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("huge.gif");
        std::fs::write(&path, gif_claiming(65535)).unwrap();
        assert!(!is_animated_gif(&path));
        let err = open_image(&path).unwrap_err().to_string();
        assert!(err.contains("huge.gif") && err.contains("65535x65535") && err.contains("limit"), "{err}");
        let err = for_each_gif_frame(&path, 10, |_, _| Ok(())).unwrap_err().to_string();
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
    fn deep_pixels_count_against_the_memory_budget_and_decode_to_8_bits() {
        let deep = image::ImageBuffer::<image::Rgba<u16>, Vec<u16>>::from_pixel(100, 100, image::Rgba([65535, 0, 0, 65535]));
        let mut bytes = Vec::new();
        DynamicImage::ImageRgba16(deep).write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png).unwrap();
        // 10,000 pixels of 8 bytes, plus their 8-bit copy: 120 KB, over the 4-bytes-a-pixel budget
        // of a 20,000-pixel limit (80 KB) though under the pixel count.
        let header = read_header(&bytes, 40_000).unwrap();
        assert_eq!((header.width, header.height, header.peak_bytes), (100, 100, 120_000));
        let err = decode_bytes(&bytes, 20_000).unwrap_err();
        assert!(matches!(err, DecodeError::OverMemoryLimit(_)) && err.to_string().contains("100x100 Rgba16"), "{err}");
        let img = decode_bytes(&bytes, 40_000).unwrap();
        assert!(matches!(img, DynamicImage::ImageRgba8(_)), "{:?}", img.color());
        assert_eq!(img.to_rgba8().get_pixel(5, 5).0, [255, 0, 0, 255]);
    }

    #[test]
    fn text_is_unsupported_and_truncated_png_is_corrupt() {
        assert!(matches!(decode_bytes(b"hello, this is not an image", 1 << 20), Err(DecodeError::Unsupported)));
        let bytes = png(64, 64);
        assert!(matches!(decode_bytes(&bytes[..bytes.len() / 2], 1 << 20), Err(DecodeError::Corrupt(_))));
    }
}
