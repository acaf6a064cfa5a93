//! What the detector examples share: FER2013 faces pasted into grid photos.

use ferlite::data::FaceSet;
use ferlite::faces::FaceBox;
use image::{GrayImage, Luma};

/// Side at which each 48x48 face is pasted (3x), and the faces per grid row and column.
pub const SIDE: u32 = 144;
pub const PER_ROW: u32 = 6;

/// A mid-gray photo with the faces `indices` (at most `PER_ROW`²) of `set` pasted in a grid at
/// `SIDE` px, 60 px apart, and for each face its index and the centre where it went.
pub fn paste_grid(set: &FaceSet, indices: &[usize]) -> (GrayImage, Vec<(usize, u32, u32)>) {
    let mut photo = GrayImage::from_pixel(PER_ROW * (SIDE + 60) + 60, PER_ROW * (SIDE + 60) + 60, Luma([128]));
    let mut placed = Vec::new();
    for (slot, &i) in indices.iter().enumerate() {
        let face = GrayImage::from_raw(48, 48, set.face(i).to_vec()).expect("48x48 face");
        let big = image::imageops::resize(&face, SIDE, SIDE, image::imageops::FilterType::CatmullRom);
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
pub fn box_at(boxes: &[FaceBox], cx: u32, cy: u32) -> Option<&FaceBox> {
    boxes.iter().find(|b| is_at(b, cx, cy))
}
