//! What the detector examples share: FER2013 faces pasted into grid photos.

use ferlite::data::FaceSet;
use ferlite::faces::FaceBox;
use image::{GrayImage, Luma};

/// Side at which each 48x48 face is pasted (3x), and the faces per grid row and column.
pub const SIDE: u32 = 144;
pub const PER_ROW: u32 = 6;

/// A mid-gray photo with the faces `indices` (at most `PER_ROW`²) of `set` pasted in a grid at
/// `SIDE` px, 60 px apart, and for each face its index and the centre where it went.
#[allow(dead_code)] // framing_sweep pastes through paste_grid_tilted
pub fn paste_grid(set: &FaceSet, indices: &[usize]) -> (GrayImage, Vec<(usize, u32, u32)>) {
    paste_grid_tilted(set, indices, &[])
}

/// [`paste_grid`] with face `k` turned by `degrees[k]` (clockwise; none when missing) about its
/// centre, as a tilted head is; the corners it uncovers take the background's grey.
pub fn paste_grid_tilted(set: &FaceSet, indices: &[usize], degrees: &[f32]) -> (GrayImage, Vec<(usize, u32, u32)>) {
    let mut photo = GrayImage::from_pixel(PER_ROW * (SIDE + 60) + 60, PER_ROW * (SIDE + 60) + 60, Luma([128]));
    let mut placed = Vec::new();
    for (slot, &i) in indices.iter().enumerate() {
        let face = GrayImage::from_raw(48, 48, set.face(i).to_vec()).expect("48x48 face");
        let mut big = image::imageops::resize(&face, SIDE, SIDE, image::imageops::FilterType::CatmullRom);
        if let Some(&angle) = degrees.get(slot).filter(|a| **a != 0.0) {
            big = turned(&big, angle.to_radians());
        }
        let (x, y) = (60 + (slot as u32 % PER_ROW) * (SIDE + 60), 60 + (slot as u32 / PER_ROW) * (SIDE + 60));
        image::imageops::replace(&mut photo, &big, x as i64, y as i64);
        placed.push((i, x + SIDE / 2, y + SIDE / 2));
    }
    (photo, placed)
}

/// Whether `b` found the face pasted at (`cx`, `cy`): its centre within a fifth of the face side
/// of the paste centre.
pub fn is_at(b: &FaceBox, cx: u32, cy: u32) -> bool {
    (b.x + b.width / 2).abs_diff(cx) < SIDE / 5 && (b.y + b.height / 2).abs_diff(cy) < SIDE / 5
}

/// The detection that found the face pasted at (`cx`, `cy`).
#[allow(dead_code)] // detector_calibration asks `is_at` of every box instead
pub fn box_at(boxes: &[FaceBox], cx: u32, cy: u32) -> Option<&FaceBox> {
    boxes.iter().find(|b| is_at(b, cx, cy))
}

/// `image` turned clockwise by `angle` radians about its centre (bilinear), grey 128 outside it.
fn turned(image: &GrayImage, angle: f32) -> GrayImage {
    let (w, h) = image.dimensions();
    let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
    let (sin, cos) = angle.sin_cos();
    GrayImage::from_fn(w, h, |x, y| {
        // The source of destination pixel (x, y): turned back by the angle.
        let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
        let (sx, sy) = (cx + dx * cos + dy * sin - 0.5, cy - dx * sin + dy * cos - 0.5);
        if sx < 0.0 || sy < 0.0 || sx > (w - 1) as f32 || sy > (h - 1) as f32 {
            return Luma([128]);
        }
        let (x0, y0) = (sx.floor() as u32, sy.floor() as u32);
        let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
        let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
        let p = |x: u32, y: u32| image.get_pixel(x, y)[0] as f32;
        let top = p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx;
        let bottom = p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx;
        Luma([(top * (1.0 - fy) + bottom * fy).round() as u8])
    })
}
