//! The `ferlite` command line: parses arguments and hands each subcommand to the library.

mod cli;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Facial emotion recognition on a plain CPU: a 552k-parameter residual CNN for 48x48 faces
/// (angry, disgust, fear, happy, sad, surprise, neutral), trained on FER2013.
#[derive(Parser)]
#[command(name = "ferlite", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Worker threads, 1 to 1024 (default: all cores).
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
    /// Log more (-v: debug, -vv: trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Log only warnings and errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Log lines as readable text, or as one JSON object a line (for log shippers).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model on FER2013 (CSV or image folders), checkpointing every epoch.
    Train(cli::train::TrainArgs),
    /// Measure a model on labelled faces: accuracy, per-class scores, confusion matrix, ROC/AUC.
    Evaluate(cli::evaluate::EvaluateArgs),
    /// Write the model as ONNX, for other runtimes (ONNX Runtime, PyTorch via onnx2torch, ...).
    Export(cli::export::ExportArgs),
    /// Find the faces in photos (or take face crops as they are) and give each its emotion and all seven probabilities.
    Predict(cli::predict::PredictArgs),
    /// Serve the model over HTTP: JSON API, Prometheus metrics and a live web page (photo or webcam).
    Serve(cli::serve::ServeArgs),
    /// Print the network's layers, output shapes, parameters and multiply-adds.
    Summary(cli::summary::SummaryArgs),
    /// Measure training and inference speed on this machine.
    Bench(cli::bench::BenchArgs),
    /// Store a model's int8 activation ranges, measured on training faces (for --precision int8).
    Calibrate(cli::calibrate::CalibrateArgs),
}

fn main() -> ExitCode {
    // Exit quietly when stdout is closed early (`ferlite predict dir | head`), as Unix tools do,
    // instead of panicking on the failed write.
    // SAFETY: restoring the default SIGPIPE disposition before any thread starts.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // One malloc arena for all threads instead of one per thread: the detector's layers run on
    // every thread, and each arena would keep its own freed buffers (docs/performance.md: the
    // demo photo 48.9 → 44.8 MB peak RSS on 2 threads, a folder of photos 72-81 → 64-68 MB, no slower).
    // And freed buffers kept for the next photo or frame, not handed back to the system and
    // faulted in again (each frame's detector maps are a few MB): a folder of 200 640x480 frames
    // 2.67 → 2.04 s on one core, same peak RSS; mimalloc 2.12 s at twice the RSS (decision 27).
    // SAFETY: plain settings of glibc's allocator, made before any thread starts.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
    let cli = Cli::parse();
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    match cli.log_format {
        // Colour only on a terminal: a log file or journal gets plain text.
        LogFormat::Text => logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
        LogFormat::Json => logs.json().init(),
    }
    if let Some(n) = cli.threads {
        if let Err(e) = rayon::ThreadPoolBuilder::new().num_threads(n.into()).build_global() {
            eprintln!("error: cannot set up {n} threads: {e}");
            return ExitCode::FAILURE;
        }
    }
    let result = match cli.command {
        Command::Train(args) => cli::train::run(args),
        Command::Evaluate(args) => cli::evaluate::run(args),
        Command::Export(args) => cli::export::run(args),
        Command::Predict(args) => cli::predict::run(args),
        Command::Serve(args) => cli::serve::run(args),
        Command::Summary(args) => cli::summary::run(args),
        Command::Calibrate(args) => cli::calibrate::run(args),
        Command::Bench(args) => cli::bench::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
