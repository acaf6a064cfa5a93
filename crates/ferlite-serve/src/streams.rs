//! Live streams of frames (`POST /v1/predict?stream=ID`): one face tracker per stream, so that a
//! camera page's faces keep their `track_id` from frame to frame and, with `smooth=SECONDS`,
//! their probabilities are averaged over time. Streams are held in memory, bounded in number;
//! one idle for [`IDLE`] is forgotten.

use ferlite::analyze::FaceResult;
use ferlite::track::Tracker;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A stream without a frame for this long is dropped (its next frame starts new tracks).
pub const IDLE: Duration = Duration::from_secs(60);
/// Most streams held at once; past it the one idle longest is dropped.
pub const MAX_STREAMS: usize = 1024;
/// Longest smoothing a stream may ask for, in seconds.
pub const MAX_SMOOTH_SECONDS: f64 = 60.0;

struct Stream {
    tracker: Tracker,
    smooth_seconds: Option<f64>,
    started: Instant,
    last_frame: Instant,
}

#[derive(Default)]
pub struct Streams {
    streams: Mutex<HashMap<String, Stream>>,
}

/// Why a stream id or smoothing is refused (a 400).
pub fn check(id: &str, smooth_seconds: Option<f64>) -> Result<(), String> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err("stream: 1 to 64 letters, digits, '-' or '_'".into());
    }
    match smooth_seconds {
        Some(s) if !(0.0..=MAX_SMOOTH_SECONDS).contains(&s) => Err(format!("smooth: seconds from 0 to {MAX_SMOOTH_SECONDS}, not {s}")),
        _ => Ok(()),
    }
}

impl Streams {
    /// Track ids (and smoothing) for a frame of stream `id` that arrived at `now`. A stream whose
    /// smoothing changes starts afresh.
    pub fn track(&self, id: &str, smooth_seconds: Option<f64>, now: Instant, faces: &mut [FaceResult]) {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        streams.retain(|_, s| now.saturating_duration_since(s.last_frame) < IDLE);
        let fresh = || Stream { tracker: Tracker::new(smooth_seconds), smooth_seconds, started: now, last_frame: now };
        if !streams.contains_key(id) && streams.len() >= MAX_STREAMS {
            if let Some(oldest) = streams.iter().min_by_key(|(_, s)| s.last_frame).map(|(k, _)| k.clone()) {
                streams.remove(&oldest);
            }
        }
        let stream = streams.entry(id.to_string()).or_insert_with(fresh);
        if stream.smooth_seconds != smooth_seconds {
            *stream = fresh();
        }
        // Frames answered out of order (two workers) keep time from going back.
        stream.last_frame = stream.last_frame.max(now);
        let time = stream.last_frame.duration_since(stream.started).as_secs_f64();
        stream.tracker.update(time, faces);
    }

    /// How many streams are followed (the tests' view of the bound).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.streams.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_odd_stream_ids_and_smoothing() {
        assert!(check("cam-1_a", Some(0.5)).is_ok() && check("x", None).is_ok());
        assert!(check("", None).is_err() && check("a b", None).is_err() && check(&"a".repeat(65), None).is_err());
        assert!(check("a", Some(-1.0)).is_err() && check("a", Some(61.0)).is_err() && check("a", Some(f64::NAN)).is_err());
    }

    #[test]
    fn holds_at_most_max_streams() {
        let streams = Streams::default();
        let now = Instant::now();
        for i in 0..MAX_STREAMS + 10 {
            streams.track(&format!("s{i}"), None, now + Duration::from_millis(i as u64), &mut []);
        }
        assert_eq!(streams.len(), MAX_STREAMS);
        // Idle ones go.
        streams.track("late", None, now + IDLE + Duration::from_secs(5), &mut []);
        assert_eq!(streams.len(), 1);
    }
}
