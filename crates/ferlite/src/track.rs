//! Faces followed across the frames of a video or a camera: each face gets a track id that stays
//! the same from frame to frame (greedy matching of boxes by overlap), and optionally its
//! probabilities smoothed over time, so that a live label does not flicker. `predict` on video
//! files and the service's streams both go through [`Tracker`].

use crate::analyze::FaceResult;
use crate::emotion::NUM_CLASSES;
use crate::faces::FaceBox;
use crate::predict::Prediction;

/// Least overlap (intersection over union) of a face's box with a track's last box for the face
/// to continue that track. Faces move a fraction of their size between frames at video rates;
/// at 0.3 a face may shift by about a third of its width.
pub const MIN_IOU: f32 = 0.3;

/// A track that has matched no face for this long (seconds) ends; a face seen after that gets a
/// new id. Covers a detector's miss on a frame or two, and a face turned away for a moment.
pub const MAX_GAP_SECONDS: f64 = 1.0;

struct Track {
    id: u64,
    face_box: FaceBox,
    last_seen: f64,
    /// The smoothed probabilities (the last ones when there is no smoothing).
    probabilities: [f32; NUM_CLASSES],
}

/// Track ids and smoothing for one stream of frames.
pub struct Tracker {
    next_id: u64,
    tracks: Vec<Track>,
    smooth_seconds: Option<f64>,
}

impl Tracker {
    /// A tracker whose probabilities are averaged over about `smooth_seconds` (an exponential
    /// moving average with that time constant), or not at all (`None`, or 0).
    pub fn new(smooth_seconds: Option<f64>) -> Self {
        Tracker { next_id: 1, tracks: Vec::new(), smooth_seconds: smooth_seconds.filter(|&s| s > 0.0) }
    }

    /// Gives each face of the frame at `time` (seconds, never decreasing) its track id. With
    /// smoothing, each face's probabilities become their moving average along its track, and its
    /// emotion and confidence those of the average.
    pub fn update(&mut self, time: f64, faces: &mut [FaceResult]) {
        self.tracks.retain(|t| time - t.last_seen <= MAX_GAP_SECONDS);
        // Every (track, face) pair that overlaps enough, best overlap first, taken greedily.
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (t, track) in self.tracks.iter().enumerate() {
            for (f, face) in faces.iter().enumerate() {
                let overlap = iou(&track.face_box, &face.face_box);
                if overlap >= MIN_IOU {
                    pairs.push((overlap, t, f));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut track_of_face: Vec<Option<usize>> = vec![None; faces.len()];
        let mut track_taken = vec![false; self.tracks.len()];
        for (_, t, f) in pairs {
            if !track_taken[t] && track_of_face[f].is_none() {
                track_taken[t] = true;
                track_of_face[f] = Some(t);
            }
        }
        for (face, track) in faces.iter_mut().zip(track_of_face) {
            let new = face.prediction.probabilities;
            let track = match track {
                Some(t) => {
                    let track = &mut self.tracks[t];
                    let weight = match self.smooth_seconds {
                        Some(tau) => 1.0 - (-(time - track.last_seen).max(0.0) / tau).exp(),
                        None => 1.0,
                    } as f32;
                    for (smoothed, p) in track.probabilities.iter_mut().zip(new) {
                        *smoothed += weight * (p - *smoothed);
                    }
                    track.face_box = face.face_box;
                    track.last_seen = time;
                    track
                }
                None => {
                    self.tracks.push(Track { id: self.next_id, face_box: face.face_box, last_seen: time, probabilities: new });
                    self.next_id += 1;
                    self.tracks.last_mut().expect("just pushed")
                }
            };
            face.track_id = Some(track.id);
            if self.smooth_seconds.is_some() {
                face.prediction = Prediction::from_probabilities(track.probabilities);
            }
        }
    }
}

fn iou(a: &FaceBox, b: &FaceBox) -> f32 {
    let overlap_w = (a.x + a.width).min(b.x + b.width).saturating_sub(a.x.max(b.x)) as f32;
    let overlap_h = (a.y + a.height).min(b.y + b.height).saturating_sub(a.y.max(b.y)) as f32;
    let overlap = overlap_w * overlap_h;
    let area = |f: &FaceBox| f.width as f32 * f.height as f32;
    overlap / (area(a) + area(b) - overlap).max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(x: u32, y: u32, side: u32, happy: f32) -> FaceResult {
        let mut probabilities = [(1.0 - happy) / 6.0; NUM_CLASSES];
        probabilities[3] = happy;
        FaceResult { face_box: FaceBox { x, y, width: side, height: side, ..FaceBox::whole(1, 1) }, prediction: Prediction::from_probabilities(probabilities), track_id: None }
    }

    fn ids(faces: &[FaceResult]) -> Vec<u64> {
        faces.iter().map(|f| f.track_id.unwrap()).collect()
    }

    #[test]
    fn two_faces_moving_keep_their_ids_whatever_order_the_detector_gives() {
        let mut tracker = Tracker::new(None);
        let mut first = [face(10, 10, 100, 0.9), face(300, 20, 80, 0.9)];
        tracker.update(0.0, &mut first);
        assert_eq!(ids(&first), [1, 2]);
        // Next frame: both moved a little, listed the other way round.
        let mut second = [face(310, 24, 80, 0.9), face(18, 12, 100, 0.9)];
        tracker.update(0.04, &mut second);
        assert_eq!(ids(&second), [2, 1]);
    }

    #[test]
    fn a_face_elsewhere_or_after_a_long_gap_gets_a_new_id() {
        let mut tracker = Tracker::new(None);
        let mut frame = [face(10, 10, 100, 0.9)];
        tracker.update(0.0, &mut frame);
        let mut far = [face(400, 10, 100, 0.9)];
        tracker.update(0.04, &mut far);
        assert_eq!(ids(&far), [2]);
        let mut back_late = [face(400, 10, 100, 0.9)];
        tracker.update(0.04 + MAX_GAP_SECONDS + 0.1, &mut back_late);
        assert_eq!(ids(&back_late), [3]);
    }

    #[test]
    fn a_face_missed_for_a_frame_keeps_its_id() {
        let mut tracker = Tracker::new(None);
        tracker.update(0.0, &mut [face(10, 10, 100, 0.9)]);
        tracker.update(0.04, &mut []);
        let mut again = [face(12, 10, 100, 0.9)];
        tracker.update(0.08, &mut again);
        assert_eq!(ids(&again), [1]);
    }

    #[test]
    fn smoothing_damps_a_one_frame_flicker_and_follows_a_lasting_change() {
        let mut tracker = Tracker::new(Some(0.5));
        for i in 0..25 {
            tracker.update(i as f64 * 0.04, &mut [face(10, 10, 100, 0.9)]);
        }
        // One frame where the network says "not happy": the label stays happy.
        let mut flicker = [face(10, 10, 100, 0.05)];
        tracker.update(1.0, &mut flicker);
        assert_eq!(flicker[0].prediction.emotion, "happy");
        assert!(flicker[0].prediction.probabilities[3] > 0.7, "{:?}", flicker[0].prediction);
        // Two seconds of it (four time constants): the label follows.
        let mut last = [face(10, 10, 100, 0.05)];
        for i in 1..=50 {
            last = [face(10, 10, 100, 0.05)];
            tracker.update(1.0 + i as f64 * 0.04, &mut last);
        }
        assert_ne!(last[0].prediction.emotion, "happy");
        let sum: f32 = last[0].prediction.probabilities.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4, "smoothed probabilities still sum to 1: {sum}");
    }

    #[test]
    fn without_smoothing_the_predictions_are_the_networks() {
        let mut tracker = Tracker::new(None);
        tracker.update(0.0, &mut [face(10, 10, 100, 0.9)]);
        let mut next = [face(10, 10, 100, 0.05)];
        tracker.update(0.04, &mut next);
        assert_eq!(next[0].prediction.probabilities, face(0, 0, 1, 0.05).prediction.probabilities);
    }
}
