//! `cargo xtask bench --report`: runs the overhead benchmark and a write → finding latency
//! measurement, then rewrites the README's benchmark table (between the
//! `<!-- bench:begin -->` and `<!-- bench:end -->` markers) and two plots under
//! `docs/bench/`: the added cost per workload and the latency CDF.
//!
//! Latency: a watched workload sends lines over loopback TCP at a fixed rate, some carrying
//! a distinct checksum-valid GitHub token; the sensor's stdout is read as it arrives, each
//! finding is mapped to its write by its stream offset, and latency is the finding's
//! arrival minus the time the workload started that write.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use plotters::prelude::*;

use crate::bench::{self, Bins, Opts, Row, CONFIGS};

/// One latency run: rate, findings expected and latencies measured (ms, sorted).
pub struct Latency {
    pub label: String,
    pub expected: usize,
    pub ms: Vec<f64>,
}

impl Latency {
    fn pct(&self, p: f64) -> f64 {
        if self.ms.is_empty() {
            return f64::NAN;
        }
        let i = ((self.ms.len() as f64 - 1.0) * p).round() as usize;
        self.ms[i.min(self.ms.len() - 1)]
    }
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A checksum-valid (synthetic) GitHub token: `ghp_` + 30 chars + base62 CRC32 of them.
fn github_token(seed: u64) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let body: String = (0..30)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            BASE62[(x % 62) as usize] as char
        })
        .collect();
    let mut crc = crc32fast::hash(body.as_bytes()) as u64;
    let mut sum = [b'0'; 6];
    for c in sum.iter_mut().rev() {
        *c = BASE62[(crc % 62) as usize];
        crc /= 62;
    }
    format!("ghp_{body}{}", String::from_utf8_lossy(&sum))
}

fn sink() -> Result<String> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?.to_string();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { break };
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 16];
                while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    Ok(addr)
}

/// Sends `lines` lines at `rate`/s, every `every`-th carrying a token, and measures.
fn latency_run(bins: &Bins, hook: &str, rate: u32, lines: usize, every: usize) -> Result<Latency> {
    let dir = std::env::temp_dir().join("token-sensor-bench");
    let file = dir.join(format!("paced-{rate}.txt"));
    let mut text = String::new();
    let mut starts = Vec::with_capacity(lines);
    for i in 0..lines {
        starts.push(text.len() as u64);
        if i % every == 0 {
            text.push_str(&format!("token={}\n", github_token(i as u64 + rate as u64)));
        } else {
            text.push_str("GET /health HTTP/1.1 x-filler: 0123456789abcdefghijklmnopqrst\n");
        }
    }
    std::fs::write(&file, &text)?;
    let addr = sink()?;
    let wname = bench::file_name(&bins.watched);
    let mut sensor = Command::new(&bins.sensor)
        .args(["run", "--only-flag-scopes", "--watch-exe", &wname])
        .env("SENSOR_EXIT_HOOK", hook)
        .env("SENSOR_LOG", "warn,sensor=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the sensor")?;
    let out = sensor.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel::<(SystemTime, String)>();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            let Ok(l) = l else { break };
            if l.contains("\"type\":\"finding\"") && tx.send((SystemTime::now(), l)).is_err() {
                break;
            }
        }
    });
    let err = sensor.stderr.take().expect("piped");
    let (etx, erx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            if etx.send(l).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match erx.recv_timeout(Duration::from_millis(200)) {
            Ok(l) if l.contains("sensor ready") => break,
            Ok(l) if l.contains("error") => bail!("sensor failed: {l}"),
            _ if Instant::now() > deadline => bail!("sensor did not become ready"),
            _ => {}
        }
    }
    let step = format!("paced:{}:{rate}:{addr}", file.display());
    let run = Command::new(&bins.watched).arg(&step).output()?;
    if !run.status.success() {
        bail!("paced workload failed: {}", run.status);
    }
    std::thread::sleep(Duration::from_millis(1500));
    unsafe { libc::kill(sensor.id() as i32, libc::SIGTERM) };
    sensor.wait()?;
    let sent: HashMap<usize, u128> = String::from_utf8_lossy(&run.stdout)
        .lines()
        .filter_map(|l| {
            let mut it = l.strip_prefix("sent ")?.split(' ');
            Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        })
        .collect();
    let mut ms = Vec::new();
    for (at, line) in rx.try_iter() {
        let v: serde_json::Value = serde_json::from_str(&line)?;
        let Some(off) = v["finding"]["offset"].as_u64() else {
            continue;
        };
        let idx = starts.partition_point(|s| *s <= off).saturating_sub(1);
        let Some(t0) = sent.get(&idx) else { continue };
        let arrived = at.duration_since(UNIX_EPOCH)?.as_nanos();
        ms.push(arrived.saturating_sub(*t0) as f64 / 1e6);
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    Ok(Latency {
        label: if every == 1 {
            format!("{rate} writes/s, a token in each")
        } else {
            format!("{rate} writes/s, a token in 1 of {every}")
        },
        expected: sent.len(),
        ms,
    })
}

/// Both latency runs of the report.
pub fn latencies(bins: &Bins, hook: &str) -> Result<Vec<Latency>> {
    Ok(vec![
        latency_run(bins, hook, 20, 100, 1)?,
        latency_run(bins, hook, 10_000, 30_000, 100)?,
    ])
}

fn overhead_plot(rows: &[Row], path: &Path) -> Result<()> {
    let root = SVGBackend::new(path, (760, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let cfgs = &CONFIGS[1..];
    // Added cost relative to no sensor, in percent of the no-sensor figure.
    let vals: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| {
            let none = r.best(0);
            (1..CONFIGS.len())
                .map(|c| (r.best(c) / none - 1.0) * 100.0)
                .collect()
        })
        .collect();
    let top = vals.iter().flatten().cloned().fold(10.0f64, f64::max) * 1.15;
    let bottom = vals
        .iter()
        .flatten()
        .cloned()
        .fold(0.0f64, f64::min)
        .min(0.0);
    let n = rows.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Added cost vs no sensor (%), per workload",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..n, bottom..top)?;
    let names: Vec<&str> = rows.iter().map(|r| r.name).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(rows.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.01 && i < names.len() {
                names[i].to_string()
            } else {
                String::new()
            }
        })
        .y_desc("% added")
        .draw()?;
    let colors = [RGBColor(150, 150, 150), GREEN, BLUE, RED];
    let w = 0.8 / cfgs.len() as f64;
    for (ci, cfg) in cfgs.iter().enumerate() {
        let color = colors[ci % colors.len()];
        chart
            .draw_series(vals.iter().enumerate().map(|(ri, v)| {
                let x0 = ri as f64 + 0.1 + ci as f64 * w;
                Rectangle::new([(x0, 0.0), (x0 + w * 0.9, v[ci])], color.filled())
            }))?
            .label(*cfg)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn latency_plot(lat: &[Latency], path: &Path) -> Result<()> {
    let root = SVGBackend::new(path, (760, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let max = lat
        .iter()
        .flat_map(|l| l.ms.last().copied())
        .fold(1.0f64, f64::max)
        * 1.05;
    let mut chart = ChartBuilder::on(&root)
        .caption("Write → finding latency (CDF)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..max, 0f64..1f64)?;
    chart
        .configure_mesh()
        .x_desc("ms from the write to the finding on stdout")
        .y_desc("fraction of findings")
        .draw()?;
    let colors = [BLUE, RED];
    for (i, l) in lat.iter().enumerate() {
        let color = colors[i % colors.len()];
        let n = l.ms.len().max(1) as f64;
        chart
            .draw_series(LineSeries::new(
                l.ms.iter()
                    .enumerate()
                    .map(|(k, v)| (*v, (k + 1) as f64 / n)),
                color.stroke_width(2),
            ))?
            .label(l.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}

fn table(rows: &[Row], lat: &[Latency], opts: &Opts) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "Regenerated by `cargo xtask bench --report` ({} rounds, best of each; exit hook: {}). \
         Loops: CPU ns per call; dd and tar: CPU ms of the pipeline. Added cost is against no \
         sensor in the same run.\n\n",
        opts.reps, opts.exit_hook
    ));
    s.push_str("| workload | no sensor | empty programs | sensor, nothing watched | sensor, other process watched | watched |\n");
    s.push_str("|---|---|---|---|---|---|\n");
    for r in rows {
        let none = r.best(0);
        let cell = |c: usize| {
            let v = r.best(c);
            if r.unit == "ns/call" {
                format!("{v:.0} ns ({:+.0})", v - none)
            } else {
                format!("{v:.0} ms ({:.2}×)", v / none)
            }
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.name,
            if r.unit == "ns/call" {
                format!("{none:.0} ns")
            } else {
                format!("{none:.0} ms")
            },
            cell(1),
            cell(2),
            cell(3),
            cell(4)
        ));
    }
    s.push_str(
        "\n| write → finding | findings | p50 | p90 | p99 | max |\n|---|---|---|---|---|---|\n",
    );
    for l in lat {
        s.push_str(&format!(
            "| {} | {}/{} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |\n",
            l.label,
            l.ms.len(),
            l.expected,
            l.pct(0.5),
            l.pct(0.9),
            l.pct(0.99),
            l.ms.last().copied().unwrap_or(f64::NAN)
        ));
    }
    s.push_str(
        "\n![added cost per workload](docs/bench/overhead.svg)\n\
         ![write to finding latency](docs/bench/latency.svg)\n",
    );
    s
}

/// Replaces the text between the README's benchmark markers.
fn splice_readme(readme: &Path, body: &str) -> Result<()> {
    const BEGIN: &str = "<!-- bench:begin -->";
    const END: &str = "<!-- bench:end -->";
    let text = std::fs::read_to_string(readme)?;
    let (Some(a), Some(b)) = (text.find(BEGIN), text.find(END)) else {
        bail!("{} has no {BEGIN} … {END} markers", readme.display());
    };
    let new = format!("{}{BEGIN}\n{body}{}", &text[..a], &text[b..]);
    std::fs::write(readme, new)?;
    Ok(())
}

/// `--report`: measure, print, plot, rewrite the README table.
pub fn run(root: &Path, opts: &Opts) -> Result<()> {
    let rows = bench::run(root, opts)?;
    let bins = Bins::prepare(root)?;
    let lat = latencies(&bins, &opts.exit_hook)?;
    for l in &lat {
        println!(
            "latency {}: {}/{} findings, p50 {:.1} ms, p99 {:.1} ms",
            l.label,
            l.ms.len(),
            l.expected,
            l.pct(0.5),
            l.pct(0.99)
        );
    }
    let docs = root.join("docs/bench");
    std::fs::create_dir_all(&docs)?;
    overhead_plot(&rows, &docs.join("overhead.svg"))?;
    latency_plot(&lat, &docs.join("latency.svg"))?;
    splice_readme(&root.join("README.md"), &table(&rows, &lat, opts))?;
    println!("README.md table and docs/bench/*.svg updated");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_carry_a_valid_checksum() {
        // The reference's valid example, recomputed the same way.
        let ex = "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";
        let body = &ex[4..34];
        let mut crc = crc32fast::hash(body.as_bytes()) as u64;
        let mut sum = [b'0'; 6];
        for c in sum.iter_mut().rev() {
            *c = BASE62[(crc % 62) as usize];
            crc /= 62;
        }
        assert_eq!(&ex[34..], std::str::from_utf8(&sum).unwrap());
        let t = github_token(7);
        assert_eq!(t.len(), 40);
        assert_ne!(t, github_token(8));
    }
}
