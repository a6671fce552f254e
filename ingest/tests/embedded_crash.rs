//! The embedded log survives a process killed mid-write (SIGKILL, no chance
//! to clean up): every append that was acknowledged is there after
//! recovery, offsets are gapless, and appends continue.
//!
//! This test runs itself twice over: as the parent it starts a copy of its
//! own binary as a child writer, which appends in a tight loop and prints the
//! offset of every acknowledged append; the parent kills it with SIGKILL
//! after a while, reopens the log and checks it. It has its own `main` and
//! prints libtest's summary line.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reelflow_ingest::log::{EmbeddedLog, EmbeddedOptions, EventLog, PartitionReader};

const TOPIC: &str = "crash.test";

fn child(dir: &str) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let options = EmbeddedOptions {
            segment_bytes: 64 * 1024,
            ..EmbeddedOptions::default()
        };
        let log = EmbeddedLog::open(dir, options).expect("child opens log");
        log.create_topic(TOPIC, 2).await.expect("create topic");
        let mut out = std::io::stdout().lock();
        for i in 0u64.. {
            let key = format!("k{}", i % 5);
            // Values of varying size, so kills land inside records.
            let value = format!("{i}:{}", "x".repeat((i % 300) as usize));
            let at = log
                .append(TOPIC, key.as_bytes(), value.as_bytes())
                .await
                .expect("append");
            writeln!(out, "{} {} {i}", at.partition, at.offset).expect("stdout");
            out.flush().expect("flush");
        }
    });
}

fn parent() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut acked: BTreeMap<u32, BTreeMap<u64, u64>> = BTreeMap::new();
    // Several kills in a row, each recovery followed by more writing.
    for round in 0..3 {
        let mut writer = Command::new(&exe)
            .args(["--child", dir.path().to_str().ok_or("non-utf8 dir")?])
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawning the writer: {e}"))?;
        let stdout = writer.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let started = Instant::now();
        let mut this_round = 0;
        // Let it write for a while, then kill it without warning.
        while started.elapsed() < Duration::from_millis(700 + round * 300) {
            let Some(line) = lines.next() else { break };
            let line = line.map_err(|e| e.to_string())?;
            let mut parts = line.split(' ').map(|s| s.parse::<u64>().expect("number"));
            let (p, off, i) = (
                parts.next().ok_or("p")?,
                parts.next().ok_or("off")?,
                parts.next().ok_or("i")?,
            );
            acked.entry(p as u32).or_default().insert(off, i);
            this_round += 1;
        }
        writer.kill().map_err(|e| format!("SIGKILL: {e}"))?;
        let _ = writer.wait();
        // Acks the child printed before it died still count.
        for line in lines.map_while(Result::ok) {
            let mut parts = line.split(' ').map(|s| s.parse::<u64>().unwrap_or(u64::MAX));
            if let (Some(p), Some(off), Some(i)) = (parts.next(), parts.next(), parts.next())
                && i != u64::MAX
            {
                acked.entry(p as u32).or_default().insert(off, i);
            }
        }
        if this_round == 0 {
            return Err(format!("round {round}: the writer acknowledged nothing"));
        }

        let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
        rt.block_on(async {
            let log = EmbeddedLog::open(dir.path(), EmbeddedOptions::default())
                .map_err(|e| format!("recovery failed: {e}"))?;
            for (&p, offsets) in &acked {
                let hw = log.high_watermark(TOPIC, p).await.map_err(|e| e.to_string())?;
                let last_acked = *offsets.keys().last().ok_or("empty")?;
                if hw <= last_acked {
                    return Err(format!(
                        "partition {p}: acknowledged offset {last_acked} lost (high watermark {hw})"
                    ));
                }
                let mut reader = log.reader(TOPIC, &[(p, 0)]).await.map_err(|e| e.to_string())?;
                let mut next = 0;
                while next < hw {
                    let got = reader
                        .poll(10_000, Duration::from_secs(5))
                        .await
                        .map_err(|e| e.to_string())?;
                    if got.is_empty() {
                        return Err(format!("partition {p}: reading stalled at {next} of {hw}"));
                    }
                    for r in got {
                        if r.offset != next {
                            return Err(format!("partition {p}: offset {} where {next} was expected", r.offset));
                        }
                        if let Some(&i) = offsets.get(&r.offset) {
                            let value = String::from_utf8_lossy(&r.value);
                            if !value.starts_with(&format!("{i}:")) {
                                return Err(format!(
                                    "partition {p} offset {}: value {value:?} is not append #{i}",
                                    r.offset
                                ));
                            }
                        }
                        next += 1;
                    }
                }
            }
            // The log takes appends again after recovery.
            log.append(TOPIC, b"k0", b"after recovery")
                .await
                .map_err(|e| e.to_string())?;
            Ok::<(), String>(())
        })?;
        println!("  round {round}: killed after {this_round} acknowledged appends; all recovered");
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1]);
        return;
    }
    // `cargo test -- --list` and filters: this file holds one test.
    if args.iter().any(|a| a == "--list") {
        println!("embedded_log_survives_sigkill_mid_write: test");
        return;
    }
    println!("\nrunning 1 test");
    match parent() {
        Ok(()) => {
            println!("test embedded_log_survives_sigkill_mid_write ... ok\n");
            println!("test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n");
        }
        Err(e) => {
            println!("test embedded_log_survives_sigkill_mid_write ... FAILED\n\n{e}\n");
            println!("test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n");
            std::process::exit(101);
        }
    }
}
