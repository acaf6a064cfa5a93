//! `predict --annotate`: the photo with a box, the top emotion and a bar per emotion for each face.

use crate::emotion::{EMOTIONS, EMOTION_COLORS};
use crate::eval::plots::{ensure_font, FONT};
use crate::analyze::FaceResult;
use anyhow::{anyhow, Context, Result};
use image::RgbImage;
use plotters::prelude::*;
use std::path::Path;

/// Draws each face's box, label and probability bars onto a copy of `photo`.
pub fn annotate(photo: &RgbImage, faces: &[FaceResult]) -> Result<RgbImage> {
    ensure_font();
    let (w, h) = photo.dimensions();
    let mut buf = photo.as_raw().clone();
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        // Sizes follow the face, so labels stay readable on small and large photos alike.
        for FaceResult { face_box: b, prediction: p, .. } in faces {
            let color = class_color(p.class_index).to_rgba();
            let thick = (b.width / 60).clamp(2, 8);
            let (x0, y0, x1, y1) = (b.x as i32, b.y as i32, (b.x + b.width) as i32, (b.y + b.height) as i32);
            root.draw(&Rectangle::new([(x0, y0), (x1, y1)], color.stroke_width(thick))).map_err(|e| anyhow!("{e}"))?;
            let font_px = (b.width as f64 / 6.0).clamp(12.0, 48.0);
            let label = format!("{} {:.0}%", p.emotion, p.confidence * 100.0);
            let label_y = (y0 - font_px as i32 - 4).max(0);
            root.draw(&Rectangle::new([(x0, label_y), (x0 + (font_px * 0.6 * label.len() as f64) as i32, label_y + font_px as i32 + 2)], color.filled()))
                .map_err(|e| anyhow!("{e}"))?;
            root.draw(&Text::new(label, (x0 + 2, label_y + 1), (FONT, font_px).into_font().color(&WHITE))).map_err(|e| anyhow!("{e}"))?;
            // One thin bar per emotion under the box, length = probability.
            let bar_h = (font_px / 2.0).max(9.0) as i32;
            let panel_w = b.width.max(110) as i32;
            let panel = [(x0, y1 + 1), (x0 + panel_w, y1 + 5 + EMOTIONS.len() as i32 * (bar_h + 2))];
            root.draw(&Rectangle::new(panel, WHITE.mix(0.75).filled())).map_err(|e| anyhow!("{e}"))?;
            for (i, (name, prob)) in EMOTIONS.iter().zip(p.probabilities).enumerate() {
                let y = y1 + 3 + i as i32 * (bar_h + 2);
                let len = (prob as f64 * (panel_w as f64 - 60.0)) as i32;
                root.draw(&Rectangle::new([(x0, y), (x0 + len.max(1), y + bar_h)], class_color(i).to_rgba().filled())).map_err(|e| anyhow!("{e}"))?;
                root.draw(&Text::new(name.to_string(), (x0 + len + 3, y - 1), (FONT, bar_h as f64 + 1.0).into_font().color(&BLACK))).map_err(|e| anyhow!("{e}"))?;
            }
        }
        root.present().map_err(|e| anyhow!("{e}"))?;
    }
    RgbImage::from_raw(w, h, buf).context("annotation buffer has the wrong size")
}

/// The colour of class `index`, as every front end draws it.
pub fn class_color(index: usize) -> RGBColor {
    let [r, g, b] = EMOTION_COLORS[index];
    RGBColor(r, g, b)
}

/// Annotates and writes a PNG (or any format `image` infers from the extension).
pub fn annotate_to_file(photo: &RgbImage, faces: &[FaceResult], path: &Path) -> Result<()> {
    annotate(photo, faces)?.save(path).with_context(|| format!("{}: cannot write annotated image", path.display()))
}
