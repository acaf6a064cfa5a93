use anyhow::{bail, Context, Result};
use ferlite::analyze::{analyze, FaceMode, FaceResult, FaceSearch};
use ferlite::faces::Detector;
use ferlite::annotate::{annotate_frame, annotate_to_file};
use ferlite::emotion::EMOTIONS;
use ferlite::image_io::{for_each_gif_frame, is_animated_gif, is_image_file, open_image, IMAGE_EXTENSIONS};
use ferlite::predict::{Predictor, Tta};
use ferlite::track::Tracker;
use ferlite::video::{is_video_file, probe, FrameReader, VideoWriter, VIDEO_EXTENSIONS};
use image::DynamicImage;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde_json::json;
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
#[command(after_help = "Video: give a video file (mp4, mov, mkv, webm, avi; read through FFmpeg, which must be \
installed) or an animated GIF. Every frame is analysed (or --fps N a second); records carry `frame`, `time` and \
each face's `track_id`, the same for the same face from frame to frame.\n\n\
Examples:\n  ferlite predict assets/demo/astronaut.jpg --annotate astronaut.png\n  \
ferlite predict photos/ --format csv --output emotions.csv\n  \
ferlite predict clip.mp4 --fps 5 --smooth 1 --json --annotate clip.annotated.mp4")]
pub struct PredictArgs {
    /// Images (any size, colour, format; EXIF orientation respected), videos, animated GIFs, or folders of them (recursive).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    #[command(flatten)]
    model: super::ModelArgs,
    /// Test-time augmentation: average the predictions over flipped or shifted views (`none` is fastest).
    #[arg(long, value_enum, default_value_t = Tta::default())]
    tta: Tta,
    /// Where the faces are: found by the detector, or the whole image is one (`auto` decides by size and content).
    #[arg(long, value_enum, default_value_t = FaceMode::Auto)]
    faces: FaceMode,
    /// Face detector for photos: `yunet` (a few ms a photo on one core), `accurate` (all four
    /// merged: more turned and tightly cropped faces, ~0.4 s a photo), or one of the others alone:
    /// `ssd` (face-api's), `seeta` (frontal faces), `mmod` (dlib's CNN: faces of 80 px and up).
    #[arg(long, value_enum, default_value_t = Detector::default())]
    detector: Detector,
    /// Lowest face confidence (0-1) kept: lower finds more faces, and more false ones. Defaults:
    /// YuNet 0.6, SSD 0.4; SeetaFace and MMOD keep faces from 0.77 and 0.83 up whatever is lower.
    #[arg(long, value_name = "SCORE", value_parser = face_score)]
    min_face_score: Option<f32>,
    /// How to write results: readable lines, one JSON object per image (or frame), or one CSV row per face.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Same as `--format jsonl`.
    #[arg(long, conflicts_with = "format")]
    json: bool,
    /// Write results to this file instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Write each photo with boxes, labels and probability bars drawn on it: to this file for one
    /// input file (into it, as `<name>.annotated.png`, if it is a folder), or into this folder for
    /// several inputs or a folder, mirroring the inputs' folders (`<folder>/<name>.annotated.png`).
    /// A video gives an annotated video (`.mp4`); an animated GIF one file per frame (`out.png` →
    /// `out.frame0000.png`, ...). Existing files are not overwritten without --force; files named
    /// `*.annotated.*` in the inputs are skipped.
    #[arg(long, value_name = "PATH")]
    annotate: Option<PathBuf>,
    /// Overwrite existing --annotate outputs.
    #[arg(long, requires = "annotate")]
    force: bool,
    /// Most frames analysed of one animated GIF (default 300) or video (default: all of it); the
    /// rest are left, with a warning.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
    max_frames: Option<u32>,
    /// Frames a second to analyse of a video (default: every frame).
    #[arg(long, value_name = "N", value_parser = sample_rate)]
    fps: Option<f64>,
    /// Average each face's probabilities over about this many seconds of a video or GIF (an
    /// exponential moving average along its track), so that its label does not flicker.
    #[arg(long, value_name = "SECONDS", value_parser = smoothing)]
    smooth: Option<f64>,
}

/// Frames of one animated GIF analysed when `--max-frames` is not given (a 240 KB GIF can hold
/// 10,000 large frames: hours of work).
const GIF_MAX_FRAMES: u32 = 300;

/// `--fps`: a positive rate up to 1000.
fn sample_rate(value: &str) -> Result<f64, String> {
    let fps: f64 = value.parse().map_err(|e| format!("{e}"))?;
    if fps > 0.0 && fps <= 1000.0 {
        Ok(fps)
    } else {
        Err(format!("frames a second from over 0 to 1000, not {value}"))
    }
}

/// `--smooth`: seconds from 0 to 60.
fn smoothing(value: &str) -> Result<f64, String> {
    let seconds: f64 = value.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=60.0).contains(&seconds) {
        Ok(seconds)
    } else {
        Err(format!("seconds from 0 to 60, not {value}"))
    }
}

impl PredictArgs {
    fn face_search(&self) -> FaceSearch {
        FaceSearch { mode: self.faces, detector: self.detector, min_face_score: self.min_face_score }
    }
}

/// `--min-face-score`'s value: a score strictly between 0 and 1.
fn face_score(value: &str) -> Result<f32, String> {
    let score: f32 = value.parse().map_err(|e| format!("{e}"))?;
    ferlite::faces::check_min_score(score)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// `file[ face N at x,y WxH]: emotion (confidence%) [all seven]`, or `file: no face found`.
    Text,
    /// `{"file", "frame"?, "time"?, "image": {"width", "height"}, "faces": [{"box", "emotion", "confidence", "probabilities", "track_id"?}]}` or `{"file", "error"}`.
    Jsonl,
    /// `file,frame,time,image_width,image_height,faces,face,track_id,detector,x,y,width,height,score,emotion,confidence,<seven probabilities>,error`:
    /// a row per face, and one with `faces` 0 for an image without any.
    Csv,
}

pub fn run(args: PredictArgs) -> Result<ExitCode> {
    let predictor = args.model.load()?;
    let (mut files, mut unlisted) = (Vec::new(), Vec::new());
    for input in &args.inputs {
        // With several inputs, each folder's files are mirrored under its own name.
        let under_own_name = args.inputs.len() > 1;
        collect_images(input, under_own_name, args.annotate.as_deref(), &mut files, &mut unlisted);
    }
    let one_file = args.inputs.len() == 1 && files.len() == 1 && !args.inputs[0].is_dir();
    if let Some(target) = &args.annotate {
        if !one_file && !target.is_dir() && (is_image_file(target) || is_video_file(target)) {
            bail!("--annotate {}: {} inputs are annotated into a folder, not one file; give a folder", target.display(), files.len() + unlisted.len());
        }
    }
    let format = if args.json { Format::Jsonl } else { args.format };
    let out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path).with_context(|| format!("{}: cannot create output file", path.display()))?)),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut sink = Sink::new(format, out)?;
    // A bar only for real batches; it draws on stderr and hides itself when that is not a terminal.
    let progress = if files.len() > 1 { ProgressBar::new(files.len() as u64) } else { ProgressBar::hidden() };
    progress.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} images {elapsed} (eta {eta}) {msg}").expect("valid template"));
    let mut failures = 0;
    for (path, problem) in &unlisted {
        failures += 1;
        eprintln!("error: {}: {problem}", path.display());
        sink.error(path, problem)?;
    }
    let mut annotations = Annotations { force: args.force, written: HashSet::new() };
    // Still images are decoded and analysed a core's worth at a time, one per core (a face's
    // network is too small to share out well), then written in order.
    for chunk in files.chunks(rayon::current_num_threads()) {
        let stills: Vec<Option<Result<Still>>> = chunk.par_iter().map(|input| analyse_still(&predictor, &input.path, &args)).collect();
        for (input, still) in chunk.iter().zip(stills) {
            let file = &input.path;
            let annotate_to = args.annotate.as_ref().map(|target| annotation_path(target, one_file, input));
            if let Err(e) = predict_file(&predictor, file, still, &args, annotate_to.as_deref(), &mut annotations, &mut sink, &progress) {
                failures += 1;
                let message = format!("{e:#}");
                progress.suspend(|| eprintln!("error: {message}"));
                sink.error(file, &message)?;
            }
            progress.inc(1);
        }
    }
    progress.finish_and_clear();
    sink.finish()?;
    let what = |path: &Path| if is_video_file(path) { "video" } else { "image" };
    match (&args.annotate, annotations.written.iter().next()) {
        (Some(_), Some(only)) if annotations.written.len() == 1 => tracing::info!("annotated {} written to {}", what(only), only.display()),
        (Some(target), Some(_)) => tracing::info!("{} annotated files written into {}", annotations.written.len(), target.display()),
        _ => {}
    }
    let inputs = files.len() + unlisted.len();
    if failures > 0 && inputs > 1 {
        eprintln!("{failures} of {inputs} inputs failed");
    }
    Ok(if failures == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// A still image and its faces.
type Still = (DynamicImage, Vec<FaceResult>);

/// `file` decoded and analysed when it is a still image (on any thread); `None` for a video or an
/// animated GIF, whose frames [`predict_file`] analyses in order.
fn analyse_still(predictor: &Predictor, file: &Path, args: &PredictArgs) -> Option<Result<Still>> {
    if is_video_file(file) || is_animated_gif(file) {
        return None;
    }
    let analysed = || -> Result<Still> {
        let photo = open_image(file)?;
        let faces = analyze(predictor, &photo, args.face_search(), args.tta).with_context(|| file.display().to_string())?;
        Ok((photo, faces))
    };
    Some(analysed())
}

/// One input file: a still image analysed by [`analyse_still`], or every frame of a video or an
/// animated GIF.
#[allow(clippy::too_many_arguments)] // the loop's state, passed down as it is
fn predict_file(predictor: &Predictor, file: &Path, still: Option<Result<Still>>, args: &PredictArgs, annotate_to: Option<&Path>, annotations: &mut Annotations, sink: &mut Sink, progress: &ProgressBar) -> Result<()> {
    if let Some(still) = still {
        let (photo, faces) = still?;
        progress.suspend(|| sink.faces(file, None, (photo.width(), photo.height()), &faces))?;
        return annotate_to.map_or(Ok(()), |out| annotations.draw(&photo, &faces, out));
    }
    if is_video_file(file) {
        return predict_video(predictor, file, args, annotate_to, annotations, sink, progress);
    }
    // An animated GIF (`analyse_still` took every other image).
    let max_frames = args.max_frames.unwrap_or(GIF_MAX_FRAMES);
    // GIF frames carry their own delays; tracks are kept at a nominal 10 frames a second.
    let mut tracker = Tracker::new(args.smooth);
    let read = for_each_gif_frame(file, max_frames as usize, |frame, image| {
        let started = std::time::Instant::now();
        let mut faces = analyze(predictor, &image, args.face_search(), args.tta)?;
        let time = frame as f64 / 10.0;
        tracker.update(time, &mut faces);
        let at = FrameAt { index: frame as u64, time: None, analysis: started.elapsed() };
        progress.suspend(|| sink.faces(file, Some(at), (image.width(), image.height()), &faces))?;
        // One drawing per frame: `out.png` becomes `out.frame0000.png`, `out.frame0001.png`, ...
        annotate_to.map_or(Ok(()), |out| annotations.draw(&image, &faces, &frame_path(out, frame)))
    })?;
    let name = file.display();
    if !read.skipped.is_empty() {
        progress.suspend(|| tracing::warn!("{name}: skipped {} frames of no pixels (frames {:?})", read.skipped.len(), read.skipped));
    }
    if read.more_frames {
        progress.suspend(|| tracing::warn!("{name}: analysed its first {max_frames} frames and left the rest (raise --max-frames for more)"));
    }
    Ok(())
}

/// Every frame of a video (or `--fps` a second), through FFmpeg: a record per frame, faces
/// tracked from frame to frame, and with `--annotate` the annotated video.
fn predict_video(predictor: &Predictor, file: &Path, args: &PredictArgs, annotate_to: Option<&Path>, annotations: &mut Annotations, sink: &mut Sink, batch: &ProgressBar) -> Result<()> {
    let info = probe(file)?;
    let mut reader = FrameReader::open(file, &info, args.fps)?;
    let fps = args.fps.unwrap_or(info.fps);
    let mut writer = match annotate_to {
        Some(out) => Some(VideoWriter::create(annotations.claim(out)?, (info.width, info.height), fps)?),
        None => None,
    };
    let expected = info.expected_frames(args.fps);
    let max_frames = args.max_frames.map(u64::from);
    let bar = match (batch.is_hidden(), expected) {
        (true, Some(n)) => ProgressBar::new(max_frames.map_or(n, |m| m.min(n))),
        (true, None) => ProgressBar::no_length(),
        (false, _) => ProgressBar::hidden(), // inside a batch: the batch's bar is enough
    };
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} frames {per_sec} {elapsed} (eta {eta})").expect("valid template"));
    let mut tracker = Tracker::new(args.smooth);
    while let Some(frame) = reader.next_frame()? {
        if max_frames.is_some_and(|m| frame.index >= m) {
            bar.suspend(|| tracing::warn!("{}: analysed its first {} frames and left the rest (raise --max-frames for more)", file.display(), frame.index));
            break;
        }
        let started = std::time::Instant::now();
        let image = image::DynamicImage::ImageRgb8(frame.image);
        let mut faces = analyze(predictor, &image, args.face_search(), args.tta).with_context(|| format!("{}: frame {}", file.display(), frame.index))?;
        tracker.update(frame.time, &mut faces);
        let at = FrameAt { index: frame.index, time: Some(frame.time), analysis: started.elapsed() };
        bar.suspend(|| batch.suspend(|| sink.faces(file, Some(at), (info.width, info.height), &faces)))?;
        if let Some(writer) = writer.as_mut() {
            writer.write(&annotate_frame(image.as_rgb8().expect("an RGB frame"), &faces)?)?;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if let Some(writer) = writer {
        writer.finish()?;
    }
    Ok(())
}

/// Which frame of a video or GIF a record is about: its index, its time in the video (seconds;
/// GIFs: none), and how long its analysis took.
#[derive(Clone, Copy)]
struct FrameAt {
    index: u64,
    time: Option<f64>,
    analysis: std::time::Duration,
}

/// One input file, and where it sits below the input it was found in (its name alone for a file
/// given as it is; `folder/...` when several inputs are mirrored).
struct InputFile {
    path: PathBuf,
    relative: PathBuf,
}

/// Where `input`'s annotated output goes: `target` itself for one input file (into it when it is a
/// folder), else `target/<relative folders>/<name>.annotated.<png|mp4>`.
fn annotation_path(target: &Path, one_file: bool, input: &InputFile) -> PathBuf {
    let extension = if is_video_file(&input.path) { "mp4" } else { "png" };
    let name = format!("{}.annotated.{extension}", input.path.file_stem().unwrap_or_default().to_string_lossy());
    if one_file && !target.is_dir() {
        target.to_path_buf()
    } else if one_file {
        target.join(name)
    } else {
        target.join(input.relative.with_file_name(name))
    }
}

/// The `--annotate` outputs of this run: never one written twice, and none that existed before
/// overwritten without `--force`.
struct Annotations {
    force: bool,
    written: HashSet<PathBuf>,
}

impl Annotations {
    /// `out`, once it is sure it may be written (its folder made if need be).
    fn claim<'a>(&mut self, out: &'a Path) -> Result<&'a Path> {
        if self.written.contains(out) {
            bail!("{}: another input of this run was annotated to this file already", out.display());
        }
        if out.exists() && !self.force {
            bail!("{}: exists; --force to overwrite it", out.display());
        }
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create folder", dir.display()))?;
        }
        self.written.insert(out.to_path_buf());
        Ok(out)
    }

    /// The image with its faces drawn, written to `out`.
    fn draw(&mut self, image: &image::DynamicImage, faces: &[FaceResult], out: &Path) -> Result<()> {
        annotate_to_file(&image.to_rgb8(), faces, self.claim(out)?)
    }
}

/// Where frame `frame` of an animated GIF is drawn when `out` is asked for.
fn frame_path(out: &Path, frame: usize) -> PathBuf {
    let stem = out.file_stem().unwrap_or_default().to_string_lossy();
    let extension = out.extension().map_or("png".into(), |e| e.to_string_lossy());
    out.with_file_name(format!("{stem}.frame{frame:04}.{extension}"))
}

/// Where results go, in the chosen format.
struct Sink {
    format: Format,
    out: Box<dyn Write>,
    csv: Option<csv::Writer<Box<dyn Write>>>,
}

impl Sink {
    fn new(format: Format, out: Box<dyn Write>) -> Result<Self> {
        if format != Format::Csv {
            return Ok(Sink { format, out, csv: None });
        }
        let mut csv = csv::Writer::from_writer(out);
        let mut header = vec!["file", "frame", "time", "image_width", "image_height", "faces", "face", "track_id", "detector", "x", "y", "width", "height", "score", "emotion", "confidence"];
        header.extend(EMOTIONS);
        header.push("error");
        csv.write_record(&header)?;
        Ok(Sink { format, out: Box::new(std::io::sink()), csv: Some(csv) })
    }

    fn faces(&mut self, file: &Path, frame: Option<FrameAt>, (width, height): (u32, u32), faces: &[FaceResult]) -> Result<()> {
        let name = file.display().to_string();
        let time = frame.and_then(|f| f.time).map(|t| (t * 1e3).round() / 1e3);
        match self.format {
            Format::Jsonl => {
                let mut record = json!({ "file": name, "image": { "width": width, "height": height }, "faces": faces });
                if let Some(at) = frame {
                    record["frame"] = json!(at.index);
                    if let Some(t) = time {
                        record["time"] = json!(t);
                    }
                    record["timing_ms"] = json!({ "analysis": (at.analysis.as_secs_f64() * 1e5).round() / 100.0 });
                }
                writeln!(self.out, "{record}")?;
            }
            Format::Csv => {
                let csv = self.csv.as_mut().expect("csv writer");
                let image = [name.clone(), frame.map(|f| f.index.to_string()).unwrap_or_default(), time.map(|t| t.to_string()).unwrap_or_default(), width.to_string(), height.to_string(), faces.len().to_string()];
                if faces.is_empty() {
                    // Processed and no face: a row still, unlike a file never read (its row has the error).
                    let mut row = image.to_vec();
                    row.extend(std::iter::repeat_n(String::new(), 10 + EMOTIONS.len() + 1));
                    csv.write_record(&row)?;
                }
                for (i, f) in faces.iter().enumerate() {
                    let b = &f.face_box;
                    let mut row = image.to_vec();
                    row.push((i + 1).to_string());
                    row.push(f.track_id.map(|t| t.to_string()).unwrap_or_default());
                    row.push(b.detector.and_then(|d| clap::ValueEnum::to_possible_value(&d)).map_or_else(|| "whole-image".to_string(), |v| v.get_name().to_string()));
                    row.extend([b.x, b.y, b.width, b.height].map(|v| v.to_string()));
                    row.push(b.score.map(|s| format!("{s:.2}")).unwrap_or_default());
                    row.push(f.prediction.emotion.to_string());
                    row.push(format!("{:.4}", f.prediction.confidence));
                    row.extend(f.prediction.probabilities.iter().map(|p| format!("{p:.4}")));
                    row.push(String::new());
                    csv.write_record(&row)?;
                }
            }
            Format::Text => {
                let name = match frame {
                    Some(at) => format!("{name} frame {}", at.index),
                    None => name,
                };
                if faces.is_empty() {
                    writeln!(self.out, "{name}: no face found")?;
                }
                for (i, f) in faces.iter().enumerate() {
                    let (b, p) = (&f.face_box, &f.prediction);
                    let all: Vec<String> = EMOTIONS.iter().zip(p.probabilities).map(|(e, v)| format!("{e} {:.1}%", v * 100.0)).collect();
                    let place = if faces.len() == 1 && b.score.is_none() { String::new() } else { format!(" face {} at {},{} {}x{}", i + 1, b.x, b.y, b.width, b.height) };
                    let place = match f.track_id {
                        Some(id) => format!("{place} (track {id})"),
                        None => place,
                    };
                    writeln!(self.out, "{name}{place}: {} ({:.1}%)  [{}]", p.emotion, p.confidence * 100.0, all.join(", "))?;
                }
            }
        }
        Ok(())
    }

    /// A failed input: in the results too (JSONL/CSV), so a batch's output accounts for every file.
    fn error(&mut self, file: &Path, message: &str) -> Result<()> {
        let name = file.display().to_string();
        match self.format {
            Format::Jsonl => writeln!(self.out, "{}", json!({ "file": name, "error": message }))?,
            Format::Csv => {
                let mut row = vec![name];
                row.extend(std::iter::repeat_n(String::new(), 15 + EMOTIONS.len()));
                row.push(message.to_string());
                self.csv.as_mut().expect("csv writer").write_record(&row)?;
            }
            Format::Text => {}
        }
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        if let Some(mut csv) = self.csv.take() {
            csv.flush()?;
        }
        self.out.flush()?;
        Ok(())
    }
}

/// A file without an extension whose first bytes are an image's (as cameras and scrapers leave
/// them): read, rather than skipped silently. Files with another extension are not opened.
fn is_unnamed_image(path: &Path) -> bool {
    use std::io::Read;
    if path.extension().is_some() {
        return false;
    }
    let mut head = [0u8; 32];
    let read = std::fs::File::open(path).and_then(|mut f| f.read(&mut head)).unwrap_or(0);
    image::guess_format(&head[..read]).is_ok()
}

/// A file as given (so a bad one gets its error), or a folder's image and video files,
/// recursively and in name order, leaving out annotated outputs (`*.annotated.*`, and anything in
/// the `--annotate` folder `skip`). Links are followed, but not round a loop: a link back to a
/// folder above it is logged and skipped (its images are listed once already); a folder that
/// cannot be read goes into `unlisted` with why. Either way the walk goes on.
fn collect_images(path: &Path, under_own_name: bool, skip: Option<&Path>, files: &mut Vec<InputFile>, unlisted: &mut Vec<(PathBuf, String)>) {
    if !path.is_dir() {
        files.push(InputFile { path: path.to_path_buf(), relative: PathBuf::from(path.file_name().unwrap_or_default()) });
        return;
    }
    let skip = skip.and_then(|s| s.canonicalize().ok());
    let (files_before, unlisted_before) = (files.len(), unlisted.len());
    let walk = walkdir::WalkDir::new(path).follow_links(true).sort_by_file_name().into_iter();
    // The --annotate folder inside the input is left out (the input folder itself is not).
    let is_skipped = |e: &walkdir::DirEntry| e.depth() > 0 && e.file_type().is_dir() && skip.as_ref().is_some_and(|s| e.path().canonicalize().ok().as_ref() == Some(s));
    for entry in walk.filter_entry(|e| !is_skipped(e)) {
        match entry {
            Ok(entry) if entry.file_type().is_file() && !is_annotated_output(entry.path()) && (is_image_file(entry.path()) || is_video_file(entry.path()) || is_unnamed_image(entry.path())) => {
                let within = entry.path().strip_prefix(path).unwrap_or(entry.path()).to_path_buf();
                let relative = if under_own_name { PathBuf::from(path.file_name().unwrap_or_default()).join(within) } else { within };
                files.push(InputFile { path: entry.into_path(), relative });
            }
            Ok(_) => {}
            Err(e) => {
                let at = e.path().unwrap_or(path).to_path_buf();
                match e.loop_ancestor() {
                    Some(ancestor) => tracing::warn!("{}: a link back to {}, not followed (a loop)", at.display(), ancestor.display()),
                    None => unlisted.push((at, e.io_error().map_or_else(|| e.to_string(), |io| format!("cannot list: {io}")))),
                }
            }
        }
    }
    if files.len() == files_before && unlisted.len() == unlisted_before {
        unlisted.push((path.to_path_buf(), format!("no images or videos in this folder (looked for .{}, .{})", IMAGE_EXTENSIONS.join(", ."), VIDEO_EXTENSIONS.join(", ."))));
    }
}

/// `--annotate`'s own output (`photo.annotated.png`), which a folder run does not read again.
fn is_annotated_output(path: &Path) -> bool {
    path.file_stem().is_some_and(|stem| stem.to_string_lossy().ends_with(".annotated") || stem.to_string_lossy().contains(".annotated.frame"))
}
