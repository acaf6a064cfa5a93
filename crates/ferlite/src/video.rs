//! Video files in and out through FFmpeg's command-line tools, spawned (`ffprobe` for the stream's
//! size and rate, `ffmpeg` to decode frames to raw RGB on a pipe, and to encode annotated frames
//! from one). Spawning keeps every codec FFmpeg has without linking its libraries into the binary
//! (docs/decisions.md 24); a machine without FFmpeg gets an error saying what to install.

use crate::image_io::MAX_IMAGE_PIXELS;
use anyhow::{bail, ensure, Context, Result};
use image::RgbImage;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::thread::JoinHandle;

/// File extensions read as video.
pub const VIDEO_EXTENSIONS: [&str; 7] = ["mp4", "m4v", "mov", "mkv", "webm", "avi", "mpg"];

pub fn is_video_file(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| VIDEO_EXTENSIONS.iter().any(|v| v.eq_ignore_ascii_case(e)))
}

/// A video stream's frame size (as shown, rotation applied) and rate.
#[derive(Clone, Debug, PartialEq)]
pub struct VideoInfo {
    pub width: u32,
    pub height: u32,
    /// Frames per second (the stream's average rate).
    pub fps: f64,
    /// Seconds, when the container says.
    pub duration: Option<f64>,
}

impl VideoInfo {
    /// Frames `sample_fps` gives over the whole video (every frame: `None`), when its length is known.
    pub fn expected_frames(&self, sample_fps: Option<f64>) -> Option<u64> {
        self.duration.map(|d| (d * sample_fps.unwrap_or(self.fps)).round() as u64)
    }
}

/// `program` (ffmpeg or ffprobe) with its arguments, or an error saying how to get it.
fn spawn(program: &str, args: &[&str], stdin: Stdio, stdout: Stdio) -> Result<Child> {
    Command::new(program).args(args).stdin(stdin).stdout(stdout).stderr(Stdio::piped()).spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow::anyhow!("{program} not found: video needs FFmpeg's `ffmpeg` and `ffprobe` on the PATH (Debian/Ubuntu: apt install ffmpeg; macOS: brew install ffmpeg)")
        } else {
            anyhow::Error::new(e).context(format!("cannot start {program}"))
        }
    })
}

/// Collects a child's standard error on a thread (so that it never blocks on a full pipe),
/// keeping its last lines for an error message.
fn collect_stderr(child: &mut Child) -> JoinHandle<String> {
    let mut stderr = child.stderr.take().expect("stderr piped");
    std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text);
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(3)..].join("; ")
    })
}

/// The first video stream's size, rate and length.
pub fn probe(path: &Path) -> Result<VideoInfo> {
    let name = path.to_str().with_context(|| format!("{}: a path FFmpeg cannot be given (not UTF-8)", path.display()))?;
    ensure!(path.is_file(), "{}: no such file", path.display());
    let args = ["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height,avg_frame_rate,r_frame_rate:stream_side_data=rotation:format=duration", "-of", "json", "--", name];
    let mut child = spawn("ffprobe", &args, Stdio::null(), Stdio::piped())?;
    let stderr = collect_stderr(&mut child);
    let mut json = String::new();
    child.stdout.take().expect("stdout piped").read_to_string(&mut json)?;
    let status = child.wait()?;
    let errors = stderr.join().unwrap_or_default();
    ensure!(status.success(), "{}: not a video FFmpeg can read ({errors})", path.display());
    parse_probe(&json).with_context(|| format!("{}: {}", path.display(), if errors.is_empty() { "no video stream" } else { &errors }))
}

fn parse_probe(json: &str) -> Result<VideoInfo> {
    let v: serde_json::Value = serde_json::from_str(json).context("ffprobe's answer is not JSON")?;
    let stream = v["streams"].get(0).context("no video stream")?;
    let side = |key: &str| stream[key].as_u64().and_then(|v| u32::try_from(v).ok()).filter(|&v| v > 0);
    let (mut width, mut height) = (side("width").context("no frame width")?, side("height").context("no frame height")?);
    // Phones store portrait video landscape with a rotation; ffmpeg turns the frames upright.
    let rotation = stream["side_data_list"].as_array().into_iter().flatten().find_map(|d| d["rotation"].as_i64()).unwrap_or(0);
    if rotation.rem_euclid(180) == 90 {
        std::mem::swap(&mut width, &mut height);
    }
    ensure!(width as u64 * height as u64 <= MAX_IMAGE_PIXELS, "frames of {width}x{height} px, over the limit of {MAX_IMAGE_PIXELS} pixels");
    let rate = |key: &str| {
        let text = stream[key].as_str()?;
        let (n, d) = text.split_once('/').unwrap_or((text, "1"));
        let fps = n.parse::<f64>().ok()? / d.parse::<f64>().ok()?;
        (fps.is_finite() && fps > 0.0).then_some(fps)
    };
    let fps = rate("avg_frame_rate").or_else(|| rate("r_frame_rate")).context("no frame rate")?;
    let duration = v["format"]["duration"].as_str().and_then(|d| d.parse::<f64>().ok()).filter(|d| d.is_finite() && *d >= 0.0);
    Ok(VideoInfo { width, height, fps, duration })
}

/// One decoded frame: its index among the frames read and its time in the video.
pub struct Frame {
    pub index: u64,
    /// Seconds from the start.
    pub time: f64,
    pub image: RgbImage,
}

/// The frames of a video, decoded by an `ffmpeg` child as they are read.
pub struct FrameReader {
    path: PathBuf,
    child: Child,
    stdout: ChildStdout,
    stderr: Option<JoinHandle<String>>,
    width: u32,
    height: u32,
    /// Frames per second of what is read (the video's, or the sampling rate).
    fps: f64,
    next_index: u64,
}

impl FrameReader {
    /// Every frame of the video (`sample_fps` `None`), or `sample_fps` frames a second of it.
    pub fn open(path: &Path, info: &VideoInfo, sample_fps: Option<f64>) -> Result<Self> {
        let name = path.to_str().with_context(|| format!("{}: a path FFmpeg cannot be given (not UTF-8)", path.display()))?;
        let filter = sample_fps.map(|fps| format!("fps={fps}"));
        let mut args = vec!["-v", "error", "-nostdin", "-i", name, "-map", "0:v:0"];
        if let Some(filter) = &filter {
            args.extend(["-vf", filter]);
        }
        args.extend(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]);
        let mut child = spawn("ffmpeg", &args, Stdio::null(), Stdio::piped())?;
        let stderr = Some(collect_stderr(&mut child));
        let stdout = child.stdout.take().expect("stdout piped");
        Ok(FrameReader { path: path.to_path_buf(), child, stdout, stderr, width: info.width, height: info.height, fps: sample_fps.unwrap_or(info.fps), next_index: 0 })
    }

    /// The next frame, `None` at the end of the video; an error when FFmpeg could not decode it.
    pub fn next_frame(&mut self) -> Result<Option<Frame>> {
        let mut pixels = vec![0u8; self.width as usize * self.height as usize * 3];
        let mut filled = 0;
        while filled < pixels.len() {
            match self.stdout.read(&mut pixels[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e).with_context(|| format!("{}: reading frames from ffmpeg", self.path.display())),
            }
        }
        if filled < pixels.len() {
            let status = self.child.wait()?;
            let errors = self.stderr.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default();
            if !status.success() || filled > 0 {
                bail!("{}: ffmpeg could not decode frame {} ({})", self.path.display(), self.next_index, if errors.is_empty() { "a partial frame" } else { &errors });
            }
            return Ok(None);
        }
        let image = RgbImage::from_raw(self.width, self.height, pixels).expect("a whole frame");
        let frame = Frame { index: self.next_index, time: self.next_index as f64 / self.fps, image };
        self.next_index += 1;
        Ok(Some(frame))
    }
}

impl Drop for FrameReader {
    fn drop(&mut self) {
        // Stopped early (an error, or enough frames): don't leave ffmpeg decoding.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A video being written: frames piped to an `ffmpeg` child that encodes them (H.264 for
/// mp4/mov/mkv, VP9 for webm: the players' common ground).
pub struct VideoWriter {
    path: PathBuf,
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: Option<JoinHandle<String>>,
    width: u32,
    height: u32,
}

impl VideoWriter {
    pub fn create(path: &Path, (width, height): (u32, u32), fps: f64) -> Result<Self> {
        let name = path.to_str().with_context(|| format!("{}: a path FFmpeg cannot be given (not UTF-8)", path.display()))?;
        ensure!(is_video_file(path), "{}: a video is written as one of .{}", path.display(), VIDEO_EXTENSIONS.join(", ."));
        let (size, rate) = (format!("{width}x{height}"), format!("{fps}"));
        let webm = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("webm"));
        // yuv420p needs even sides: the last row or column is dropped from odd ones.
        let codec: &[&str] = if webm { &["-c:v", "libvpx-vp9", "-b:v", "0", "-crf", "32", "-deadline", "realtime"] } else { &["-c:v", "libx264", "-preset", "veryfast", "-crf", "20"] };
        let mut args = vec!["-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", &size, "-r", &rate, "-i", "-", "-vf", "crop=trunc(iw/2)*2:trunc(ih/2)*2"];
        args.extend(codec);
        args.extend(["-pix_fmt", "yuv420p", name]);
        let mut child = spawn("ffmpeg", &args, Stdio::piped(), Stdio::null())?;
        let stderr = Some(collect_stderr(&mut child));
        let stdin = child.stdin.take();
        Ok(VideoWriter { path: path.to_path_buf(), child, stdin, stderr, width, height })
    }

    pub fn write(&mut self, frame: &RgbImage) -> Result<()> {
        ensure!(frame.dimensions() == (self.width, self.height), "a {}x{} frame for a {}x{} video", frame.width(), frame.height(), self.width, self.height);
        let stdin = self.stdin.as_mut().expect("open until finish");
        if let Err(e) = stdin.write_all(frame.as_raw()) {
            let errors = self.stop();
            bail!("{}: ffmpeg stopped encoding ({}): {e}", self.path.display(), errors);
        }
        Ok(())
    }

    /// Closes the stream and waits for the file to be complete.
    pub fn finish(mut self) -> Result<()> {
        drop(self.stdin.take());
        let status = self.child.wait()?;
        let errors = self.stderr.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default();
        ensure!(status.success(), "{}: ffmpeg could not write the video ({errors})", self.path.display());
        Ok(())
    }

    fn stop(&mut self) -> String {
        drop(self.stdin.take());
        let _ = self.child.wait();
        self.stderr.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default()
    }
}

impl Drop for VideoWriter {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            // Not finished (an error elsewhere): stop the encoder.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_size_rate_length_and_rotation_from_ffprobe() {
        let json = r#"{"streams": [{"width": 1920, "height": 1080, "r_frame_rate": "30/1", "avg_frame_rate": "30000/1001",
            "side_data_list": [{"rotation": -90}]}], "format": {"duration": "2.002000"}}"#;
        let info = parse_probe(json).unwrap();
        assert_eq!((info.width, info.height), (1080, 1920));
        assert!((info.fps - 29.97).abs() < 0.01 && info.duration == Some(2.002), "{info:?}");
        assert_eq!(info.expected_frames(Some(5.0)), Some(10));
    }

    #[test]
    fn refuses_a_stream_without_size_or_rate_or_with_huge_frames() {
        assert!(parse_probe(r#"{"streams": []}"#).is_err());
        assert!(parse_probe(r#"{"streams": [{"width": 640, "height": 480, "avg_frame_rate": "0/0", "r_frame_rate": "0/0"}]}"#).is_err());
        let huge = parse_probe(r#"{"streams": [{"width": 60000, "height": 60000, "avg_frame_rate": "25/1"}]}"#).unwrap_err();
        assert!(format!("{huge:#}").contains("over the limit"), "{huge:#}");
    }

    #[test]
    fn knows_video_files_by_extension() {
        assert!(is_video_file(Path::new("a/clip.MP4")) && is_video_file(Path::new("b.webm")));
        assert!(!is_video_file(Path::new("photo.jpg")) && !is_video_file(Path::new("noext")));
    }
}
