#!/usr/bin/env python3
"""Start-up time and peak memory of one ferlite command, as docs/performance.md reports them.

    python3 scripts/startup_memory.py [--runs 9] -- target/release/ferlite --threads 1 predict assets/demo/astronaut.jpg

Runs the command `--runs` times (output discarded) and prints the median and range of the wall
time from exec to exit and of the peak RSS, which the kernel reports for the child in `wait4`.
"""
import argparse
import os
import statistics
import subprocess
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to measure after --")
    times, peaks = [], []
    for _ in range(args.runs):
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        times.append((time.perf_counter() - start) * 1000)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{command} failed: exit {os.waitstatus_to_exitcode(status)}")
        peaks.append(usage.ru_maxrss / 1024)  # Linux reports KiB
    print(f"time ms: median {statistics.median(times):.1f} (min {min(times):.1f}, max {max(times):.1f})")
    print(f"peak RSS MB: median {statistics.median(peaks):.1f} (min {min(peaks):.1f}, max {max(peaks):.1f})")


if __name__ == "__main__":
    main()
