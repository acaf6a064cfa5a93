//! `predict --annotate`: the photo with each face's box, a label (its number when there are
//! several, its emotion and confidence), and a panel of seven bars with their values.
//!
//! [`layout`] places everything before anything is drawn, so that no label or panel covers
//! another face's box or label, another panel, or its own face, and none leaves the picture. A
//! panel goes below its face, else beside it, else above its label; where none of those is free
//! (a crowded group photo) it goes into a legend beside the photo, keyed by the face's number. Text
//! is sized to the photo, and photos under [`MIN_SIDE`] (a 48x48 crop) are enlarged first.

use crate::analyze::FaceResult;
use crate::emotion::{EMOTIONS, EMOTION_COLORS};
use crate::eval::plots::{ensure_font, FONT};
use anyhow::{anyhow, Context, Result};
use image::RgbImage;
use plotters::prelude::*;
use std::path::Path;

/// Photos whose shorter side is under this are enlarged by a whole factor (pixels stay sharp)
/// before drawing, so that labels fit: a 48x48 crop is drawn at 336x336.
pub const MIN_SIDE: u32 = 320;

/// A rectangle in the drawing's pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub width: i32,
    pub height: i32,
}

impl Rect {
    pub fn intersects(&self, other: &Rect) -> bool {
        self.x < other.x + other.width && other.x < self.x + self.width && self.y < other.y + other.height && other.y < self.y + self.height
    }

    pub fn inside(&self, width: i32, height: i32) -> bool {
        self.x >= 0 && self.y >= 0 && self.x + self.width <= width && self.y + self.height <= height
    }

    /// Moved the least that puts it inside `width` x `height` (when it fits at all).
    fn shifted_inside(mut self, width: i32, height: i32) -> Rect {
        self.x = self.x.min(width - self.width).max(0);
        self.y = self.y.min(height - self.height).max(0);
        self
    }
}

/// Where one face's parts are drawn.
#[derive(Clone, Debug)]
pub struct FaceLayout {
    /// 1-based, as in the label and the legend.
    pub number: usize,
    pub face_box: Rect,
    pub label: Rect,
    /// The panel of bars, beside the face or in the legend; `None` when neither has room (a video
    /// frame, which keeps its size, has no legend).
    pub panel: Option<Rect>,
    pub in_legend: bool,
}

/// The whole drawing: the photo enlarged `scale` times, then widened for the legend if needed.
#[derive(Clone, Debug)]
pub struct Layout {
    pub scale: u32,
    pub width: i32,
    pub height: i32,
    /// Height of a line of text.
    pub font_px: f64,
    pub faces: Vec<FaceLayout>,
}

impl Layout {
    /// What is wrong with this layout, if anything: a label or panel outside the drawing, a label
    /// over another face's box or label, a panel over any face's box or label or another panel.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (i, f) in self.faces.iter().enumerate() {
            let n = i + 1;
            if !f.label.inside(self.width, self.height) {
                problems.push(format!("label {n} leaves the drawing: {:?}", f.label));
            }
            if let Some(p) = f.panel.filter(|p| !p.inside(self.width, self.height)) {
                problems.push(format!("panel {n} leaves the drawing: {p:?}"));
            }
            for (j, g) in self.faces.iter().enumerate() {
                let m = j + 1;
                if i != j && (f.label.intersects(&g.face_box) || f.label.intersects(&g.label)) {
                    problems.push(format!("label {n} covers face {m}'s box or label"));
                }
                if let Some(p) = f.panel {
                    if p.intersects(&g.face_box) || p.intersects(&g.label) {
                        problems.push(format!("panel {n} covers face {m}'s box or label"));
                    }
                    if i < j && g.panel.is_some_and(|q| p.intersects(&q)) {
                        problems.push(format!("panels {n} and {m} overlap"));
                    }
                }
            }
        }
        problems
    }
}

/// The label text's height for a drawing whose longer side is `long_side`, with faces `boxes`:
/// a 50th of the photo, but no more than a third of the median face's height (labels of small
/// faces in a crowd stay near their size), and never under 13 px.
fn font_size(long_side: i32, boxes: &[Rect]) -> f64 {
    let mut heights: Vec<i32> = boxes.iter().map(|b| b.height).collect();
    heights.sort_unstable();
    let by_faces = heights.get(heights.len() / 2).map_or(f64::MAX, |&h| h as f64 / 3.0);
    (long_side as f64 / 50.0).min(by_faces).clamp(13.0, 40.0)
}

/// Sizes of the text and panel for labels `font_px` high.
struct Metrics {
    font_px: f64,
    row: i32,
    pad: i32,
    name_width: i32,
    bar_width: i32,
    value_width: i32,
}

impl Metrics {
    fn new(font_px: f64) -> Metrics {
        let row = (font_px * 0.85).round() as i32;
        let text = |s: &str| text_width(s, row as f64 * 0.9);
        let name_width = EMOTIONS.iter().map(|e| text(e)).max().unwrap_or(0);
        Metrics { font_px, row, pad: (font_px / 4.0).round() as i32, name_width, bar_width: (font_px * 4.0) as i32, value_width: text("100%") }
    }

    fn panel_size(&self) -> (i32, i32) {
        (4 * self.pad + self.name_width + self.bar_width + self.value_width, 2 * self.pad + EMOTIONS.len() as i32 * self.row)
    }
}

fn text_width(text: &str, px: f64) -> i32 {
    ensure_font();
    (FONT, px).into_font().box_size(text).map_or((px * 0.6 * text.len() as f64) as i32, |(w, _)| w as i32)
}

/// The label of face `number` of `count`.
fn label_text(number: usize, count: usize, face: &FaceResult) -> String {
    let p = &face.prediction;
    let prefix = if count > 1 { format!("{number} ") } else { String::new() };
    format!("{prefix}{} {:.0}%", p.emotion, p.confidence * 100.0)
}

/// Places every face's label and panel on a `width` x `height` photo (see the module's doc).
/// `fixed_size` (a video frame): neither enlarged nor widened by a legend; a panel that finds no
/// room beside its face is left out.
pub fn layout(width: u32, height: u32, faces: &[FaceResult], fixed_size: bool) -> Layout {
    let legend = !fixed_size;
    let small = width.min(height) < MIN_SIDE && width.min(height) > 0;
    let scale = if small && !fixed_size { MIN_SIDE.div_ceil(width.min(height)).min(16) } else { 1 };
    let (w, h) = ((width * scale) as i32, (height * scale) as i32);
    let boxes: Vec<Rect> = faces
        .iter()
        .map(|f| {
            let b = f.face_box;
            Rect { x: (b.x * scale) as i32, y: (b.y * scale) as i32, width: (b.width * scale) as i32, height: (b.height * scale) as i32 }
        })
        .collect();
    let m = Metrics::new(font_size(w.max(h), &boxes));
    // Labels first (each must stay near its face), in order; then panels, in order.
    let label_h = m.font_px.round() as i32 + 2 * m.pad;
    let mut labels: Vec<Rect> = Vec::new();
    for (i, (face, b)) in faces.iter().zip(&boxes).enumerate() {
        let lw = text_width(&label_text(i + 1, faces.len(), face), m.font_px) + 2 * m.pad;
        // Above the box, below it, inside its top or bottom edge, a line further out, beside it;
        // aligned with the box's left, right or centre.
        let mut candidates = Vec::new();
        for y in [b.y - label_h, b.y + b.height, b.y, b.y + b.height - label_h, b.y - 2 * label_h, b.y + b.height + label_h] {
            for x in [b.x, b.x + b.width - lw, b.x + (b.width - lw) / 2] {
                candidates.push(Rect { x, y, width: lw, height: label_h });
            }
        }
        for x in [b.x + b.width, b.x - lw] {
            for y in [b.y, b.y + (b.height - label_h) / 2, b.y + b.height - label_h] {
                candidates.push(Rect { x, y, width: lw, height: label_h });
            }
        }
        let candidates: Vec<Rect> = candidates.into_iter().map(|r| r.shifted_inside(w, h)).collect();
        // What a label there would cover of other faces' boxes and of the labels placed so far.
        let covered = |r: &Rect| -> i64 {
            let area = |o: &Rect| {
                let dx = (r.x + r.width).min(o.x + o.width) - r.x.max(o.x);
                let dy = (r.y + r.height).min(o.y + o.height) - r.y.max(o.y);
                dx.max(0) as i64 * dy.max(0) as i64
            };
            boxes.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, o)| area(o)).sum::<i64>() + labels.iter().map(area).sum::<i64>()
        };
        // The first free place, else (faces touching each other) the one covering least.
        let label = candidates.iter().copied().find(|r| covered(r) == 0).unwrap_or_else(|| *candidates.iter().min_by_key(|r| covered(r)).expect("candidates"));
        labels.push(label);
    }
    let (pw, ph) = m.panel_size();
    let gap = m.pad;
    let mut panels: Vec<Rect> = Vec::new();
    let mut faces_out = Vec::new();
    let mut legend_count = 0usize;
    for (i, b) in boxes.iter().enumerate() {
        let l = labels[i];
        let candidates = [
            Rect { x: b.x, y: (b.y + b.height).max(l.y + l.height) + gap, width: pw, height: ph },
            Rect { x: b.x + b.width + gap, y: b.y, width: pw, height: ph },
            Rect { x: b.x - gap - pw, y: b.y, width: pw, height: ph },
            Rect { x: b.x, y: l.y.min(b.y) - gap - ph, width: pw, height: ph },
        ];
        let free = |r: &Rect| r.inside(w, h) && !boxes.iter().any(|o| r.intersects(o)) && !labels.iter().any(|o| r.intersects(o)) && !panels.iter().any(|o| r.intersects(o));
        let placed = candidates.iter().map(|r| r.shifted_inside(w, h)).find(|r| free(r));
        let (panel, in_legend) = match placed {
            Some(r) => {
                panels.push(r);
                (Some(r), false)
            }
            None if legend => {
                legend_count += 1;
                (None, true)
            }
            None => (None, false),
        };
        faces_out.push(FaceLayout { number: i + 1, face_box: *b, label: l, panel, in_legend });
    }
    // The legend: panels in a grid to the right of the photo or below it, whichever makes the
    // smaller picture, each under its face's number.
    let (mut width_out, mut height_out) = (w, h);
    if legend_count > 0 {
        let (slot_w, slot_h) = (pw + gap, ph + label_h + gap);
        let right_rows = ((h - gap) / slot_h).max(1) as usize;
        let right = (w + gap + legend_count.div_ceil(right_rows) as i32 * slot_w, h);
        let below_columns = ((w - gap) / slot_w).max(1) as usize;
        let below = (w, h + gap + legend_count.div_ceil(below_columns) as i32 * slot_h);
        let to_the_right = right.0 as i64 * right.1 as i64 <= below.0 as i64 * below.1 as i64;
        (width_out, height_out) = if to_the_right { right } else { below };
        for (k, face) in faces_out.iter_mut().filter(|f| f.in_legend).enumerate() {
            let (x, y) = if to_the_right {
                (w + gap + (k / right_rows) as i32 * slot_w, gap + (k % right_rows) as i32 * slot_h)
            } else {
                (gap + (k % below_columns) as i32 * slot_w, h + gap + (k / below_columns) as i32 * slot_h)
            };
            face.panel = Some(Rect { x, y: y + label_h, width: pw, height: ph });
        }
    }
    Layout { scale, width: width_out, height: height_out, font_px: m.font_px, faces: faces_out }
}

/// Draws each face's box, label and panel onto a copy of `photo`, with a legend beside it when
/// panels find no room (the result is then wider than the photo).
pub fn annotate(photo: &RgbImage, faces: &[FaceResult]) -> Result<RgbImage> {
    draw(photo, faces, false)
}

/// [`annotate`] for a video frame: the frame's own size whatever the faces, so panels that find
/// no room beside their face are left out (the label stays).
pub fn annotate_frame(photo: &RgbImage, faces: &[FaceResult]) -> Result<RgbImage> {
    draw(photo, faces, true)
}

fn draw(photo: &RgbImage, faces: &[FaceResult], fixed_size: bool) -> Result<RgbImage> {
    ensure_font();
    let plan = layout(photo.width(), photo.height(), faces, fixed_size);
    let (w, h) = (plan.width as u32, plan.height as u32);
    let enlarged = if plan.scale > 1 { image::imageops::resize(photo, photo.width() * plan.scale, photo.height() * plan.scale, image::imageops::FilterType::Nearest) } else { photo.clone() };
    let mut canvas = RgbImage::from_pixel(w, h, image::Rgb([255, 255, 255]));
    image::imageops::replace(&mut canvas, &enlarged, 0, 0);
    let mut buf = canvas.into_raw();
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        let m = Metrics::new(plan.font_px);
        let err = |e: DrawingAreaErrorKind<_>| anyhow!("{e}");
        for (face, place) in faces.iter().zip(&plan.faces) {
            let p = &face.prediction;
            let color = class_color(p.class_index);
            let b = place.face_box;
            let thick = (b.width / 60).clamp(2, 8) as u32;
            root.draw(&Rectangle::new([(b.x, b.y), (b.x + b.width, b.y + b.height)], color.stroke_width(thick))).map_err(err)?;
            let l = place.label;
            root.draw(&Rectangle::new([(l.x, l.y), (l.x + l.width, l.y + l.height)], color.filled())).map_err(err)?;
            let text = label_text(place.number, faces.len(), face);
            root.draw(&Text::new(text, (l.x + m.pad, l.y + m.pad / 2), (FONT, plan.font_px).into_font().color(&WHITE))).map_err(err)?;
            let Some(panel) = place.panel else { continue };
            if place.in_legend {
                let header = format!("face {}", place.number);
                root.draw(&Text::new(header, (panel.x, panel.y - plan.font_px as i32 - m.pad / 2), (FONT, plan.font_px).into_font().color(&BLACK))).map_err(err)?;
            }
            root.draw(&Rectangle::new([(panel.x, panel.y), (panel.x + panel.width, panel.y + panel.height)], WHITE.mix(0.85).filled())).map_err(err)?;
            let font = (FONT, m.row as f64 * 0.9).into_font();
            for (i, (name, prob)) in EMOTIONS.iter().zip(p.probabilities).enumerate() {
                let y = panel.y + m.pad + i as i32 * m.row;
                root.draw(&Text::new(name.to_string(), (panel.x + m.pad, y), font.color(&BLACK))).map_err(err)?;
                // A bar of at least 2 px, so that a small probability still shows its colour.
                let bar_x = panel.x + 2 * m.pad + m.name_width;
                let len = ((prob as f64 * m.bar_width as f64).round() as i32).max(2);
                root.draw(&Rectangle::new([(bar_x, y + m.row / 6), (bar_x + len, y + m.row - m.row / 6)], class_color(i).filled())).map_err(err)?;
                let value = format!("{:.0}%", prob * 100.0);
                let value_x = panel.x + panel.width - m.pad - text_width(&value, m.row as f64 * 0.9);
                root.draw(&Text::new(value, (value_x, y), font.color(&BLACK))).map_err(err)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faces::FaceBox;
    use crate::predict::Prediction;

    fn face(x: u32, y: u32, side: u32) -> FaceResult {
        let mut probabilities = [0.02; 7];
        probabilities[3] = 0.88;
        FaceResult { face_box: FaceBox { x, y, width: side, height: side, ..FaceBox::whole(1, 1) }, prediction: Prediction::from_probabilities(probabilities), track_id: None }
    }

    fn assert_no_overlap(plan: &Layout) {
        let problems = plan.problems();
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn a_crowded_group_photo_has_no_label_or_panel_over_another_face() {
        // 24 faces of 150-200 px in a 1986x1545 collage, as in a class photo: too tight for panels
        // beside them, so they go to the legend.
        let faces: Vec<FaceResult> = (0..24).map(|k| face(20 + (k % 6) * 330, 30 + (k / 6) * 380, 150 + (k % 3) * 25)).collect();
        let plan = layout(1986, 1545, &faces, false);
        assert_no_overlap(&plan);
        assert!(plan.faces.iter().all(|f| f.panel.is_some()), "every face has its panel, beside it or in the legend");
        assert!((plan.width > 1986 || plan.height > 1545) && plan.faces.iter().any(|f| f.in_legend));
        // The same as a video frame: no legend, the frame's size, panels only where they fit.
        let plan = layout(1986, 1545, &faces, true);
        assert_no_overlap(&plan);
        assert_eq!((plan.width, plan.height), (1986, 1545));
    }

    #[test]
    fn faces_with_room_get_their_panel_beside_them() {
        let faces = [face(100, 100, 200), face(1200, 500, 150)];
        let plan = layout(1600, 1200, &faces, false);
        assert_no_overlap(&plan);
        assert!(plan.faces.iter().all(|f| f.panel.is_some() && !f.in_legend), "{plan:?}");
        assert_eq!(plan.width, 1600);
    }

    #[test]
    fn faces_at_the_edges_keep_labels_and_panels_inside() {
        let faces = [face(0, 0, 300), face(1300, 900, 300), face(0, 900, 300), face(1300, 0, 300)];
        let plan = layout(1600, 1200, &faces, false);
        assert_no_overlap(&plan);
    }

    #[test]
    fn a_48px_crop_is_enlarged_so_that_its_label_and_bars_fit() {
        let crop = RgbImage::from_pixel(48, 48, image::Rgb([128, 128, 128]));
        let faces = [FaceResult { face_box: FaceBox::whole(48, 48), ..face(0, 0, 48) }];
        let drawn = annotate(&crop, &faces).unwrap();
        assert!(drawn.height() >= 48 * 7 && drawn.width() >= 48 * 7);
        let plan = layout(48, 48, &faces, false);
        assert_eq!(plan.scale, 7);
        assert_no_overlap(&plan);
        assert!(plan.faces[0].panel.is_some());
    }

    #[test]
    fn a_video_frame_keeps_its_size() {
        let frame = RgbImage::new(640, 480);
        let faces: Vec<FaceResult> = (0..6).map(|k| face(10 + k * 105, 200, 100)).collect();
        assert_eq!(annotate_frame(&frame, &faces).unwrap().dimensions(), (640, 480));
        let small = RgbImage::new(160, 120);
        assert_eq!(annotate_frame(&small, &[face(40, 30, 50)]).unwrap().dimensions(), (160, 120));
    }
}
