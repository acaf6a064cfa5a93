//! The shared fixtures (`ferlite-testkit`) and, for the service's tests, the `ferlite` binary served.
#![allow(dead_code)]

pub use ferlite_testkit::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A running `ferlite serve` on a free loopback port, killed when dropped.
pub struct Server {
    child: Child,
    pub url: String,
    /// The (untrained) model it serves.
    pub model: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    pub fn start(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model.safetensors");
        untrained_model(&model);
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferlite"))
            .args(["serve", "--addr", "127.0.0.1:0", "--model", model.to_str().unwrap()])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("ferlite serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected first line: {line}")).to_string();
        Server { child, url, model, _dir: dir }
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait()
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// The server's peak resident memory so far (VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("/proc is readable");
        let kib: u64 = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).expect("VmHWM in /proc/PID/status");
        kib / 1024
    }

    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}


/// What [`run_bounded`] saw of one `ferlite` run.
pub struct Bounded {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
    /// The child's peak resident memory, from `wait4`'s resource usage.
    pub peak_rss_mib: u64,
    /// Whether it was still running at the end of its budget (and was killed then).
    pub killed: bool,
}

/// Runs `ferlite ARGS`, killing it if it runs past `budget` (a hang check, not a timing), and
/// reaps it with `wait4` to read its peak memory.
pub fn run_bounded(args: &[&str], budget: std::time::Duration) -> Bounded {
    use std::io::Read;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferlite")).args(args).env("RUST_LOG", "warn").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("ferlite starts");
    let pid = child.id() as i32;
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let (out, err) = (read(Box::new(child.stdout.take().unwrap())), read(Box::new(child.stderr.take().unwrap())));
    let (done, killed) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let watchdog = {
        let (done, killed) = (done.clone(), killed.clone());
        std::thread::spawn(move || {
            let start = std::time::Instant::now();
            while !done.load(Ordering::SeqCst) {
                if start.elapsed() > budget {
                    killed.store(true, Ordering::SeqCst);
                    // SAFETY: kill(2) on our own child, not yet reaped (`done` is still false).
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        })
    };
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, which `child` never waits for afterwards.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    done.store(true, Ordering::SeqCst);
    watchdog.join().unwrap();
    assert_eq!(reaped, pid, "wait4 failed");
    std::mem::forget(child); // reaped above
    Bounded {
        success: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        peak_rss_mib: usage.ru_maxrss as u64 / 1024,
        killed: killed.load(Ordering::SeqCst),
    }
}
