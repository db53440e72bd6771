//! The usage ledger: one line per completion or chat request, in one file per local day
//! (`$XDG_DATA_HOME/hearth/usage/YYYY-MM-DD.jsonl`, private to the user), so every Hearth process
//! (each editor's language server, the CLI) can append without coordinating. Only counts and
//! timings are written, never code. `hearth stats` reads it back per day, with the cloud price
//! the same tokens would have cost and the local energy they took.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hearth_protocol::{UsageEvent, UsageObserver, UsageOutcome};
use serde::{Deserialize, Serialize};

use crate::config::UsageConfig;

/// One request, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Unix time (seconds) when the request ended.
    pub t: u64,
    /// `completion` or `chat`.
    pub kind: String,
    /// `local` (the sidecar) or `remote` (an OpenAI-compatible server).
    pub backend: String,
    pub model: String,
    /// `completed`, `cancelled` or `failed`.
    pub outcome: String,
    #[serde(default)]
    pub prompt: u32,
    #[serde(default)]
    pub reused: u32,
    #[serde(default)]
    pub generated: u32,
    /// Client-side latency, request to answer (or to cancellation).
    pub ms: f64,
    /// The engine's own time for the request (prefill + decode), when it finished.
    #[serde(default)]
    pub engine_ms: f64,
}

impl Record {
    pub fn from_event(event: &UsageEvent, now: u64) -> Record {
        let metrics = event.metrics.clone().unwrap_or_default();
        Record {
            t: now,
            kind: event.kind.to_string(),
            backend: if event.remote { "remote" } else { "local" }.to_string(),
            model: event.model.clone(),
            outcome: match event.outcome {
                UsageOutcome::Completed => "completed",
                UsageOutcome::Cancelled => "cancelled",
                UsageOutcome::Failed => "failed",
            }
            .to_string(),
            prompt: metrics.prompt_tokens,
            reused: metrics.reused_tokens,
            generated: metrics.generated_tokens,
            ms: event.elapsed_ms,
            engine_ms: metrics.prefill_ms + metrics.decode_ms,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Ledger {
    dir: PathBuf,
}

/// The local calendar date of a Unix time, as `YYYY-MM-DD`.
pub fn local_date(unix_secs: u64) -> String {
    #[cfg(unix)]
    {
        let time = unix_secs as libc::time_t;
        // SAFETY: localtime_r writes into the struct we own; a zeroed tm is a valid start.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        if !unsafe { libc::localtime_r(&time, &mut tm) }.is_null() {
            return format!("{:04}-{:02}-{:02}", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
        }
    }
    utc_date(unix_secs)
}

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn utc_date(unix_secs: u64) -> String {
    let days = (unix_secs / 86400) as i64 + 719468;
    let era = days.div_euclid(146097);
    let doe = days.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Ledger {
    /// `$HEARTH_DATA_DIR/usage`, else `$XDG_DATA_HOME/hearth/usage` (`~/.local/share/...`).
    pub fn open_default() -> Option<Ledger> {
        let base = std::env::var_os("HEARTH_DATA_DIR")
            .map(PathBuf::from)
            .or_else(|| dirs::data_dir().map(|dir| dir.join("hearth")))?;
        Some(Ledger::at(base.join("usage")))
    }

    pub fn at(dir: impl Into<PathBuf>) -> Ledger {
        Ledger { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn append(&self, record: &Record) -> std::io::Result<()> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&self.dir)?;
        let path = self.dir.join(format!("{}.jsonl", local_date(record.t)));
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        // One write per line: appends from several processes do not interleave.
        options.open(path)?.write_all(&line)
    }

    /// The observer a client reports its requests to.
    pub fn observer(self) -> UsageObserver {
        Arc::new(move |event: UsageEvent| {
            if let Err(error) = self.append(&Record::from_event(&event, now_secs())) {
                tracing::warn!("cannot write the usage ledger in {}: {error}", self.dir.display());
            }
        })
    }

    /// Per-day summaries of the last `days` local days (today included), oldest first; days
    /// without a file are left out. Lines that do not parse are counted, not fatal.
    pub fn read_days(&self, days: u32, now: u64) -> Vec<DayUsage> {
        let mut out = Vec::new();
        for back in (0..days as u64).rev() {
            let date = local_date(now.saturating_sub(back * 86400));
            if out.iter().any(|d: &DayUsage| d.date == date) {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(self.dir.join(format!("{date}.jsonl"))) else {
                continue;
            };
            let mut bad_lines = 0;
            let records: Vec<Record> = text
                .lines()
                .filter(|line| !line.trim().is_empty())
                .filter_map(|line| {
                    let parsed = serde_json::from_str(line).ok();
                    bad_lines += usize::from(parsed.is_none());
                    parsed
                })
                .collect();
            let mut day = DayUsage::from_records(&date, &records);
            day.unreadable_lines = bad_lines;
            out.push(day);
        }
        out
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DayUsage {
    pub date: String,
    pub requests: u64,
    pub completed: u64,
    pub cancelled: u64,
    pub failed: u64,
    pub completions: u64,
    pub chats: u64,
    pub remote_requests: u64,
    pub prompt_tokens: u64,
    pub reused_tokens: u64,
    pub generated_tokens: u64,
    /// Latency percentiles of completed requests, milliseconds.
    pub p50_ms: f64,
    pub p95_ms: f64,
    /// Seconds the local engine worked for these requests (prefill + decode; cancelled requests
    /// count their client-side time). Overlapping requests are each counted, so this is an
    /// upper bound of the busy time.
    pub local_busy_secs: f64,
    pub unreadable_lines: usize,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

impl DayUsage {
    pub fn from_records(date: &str, records: &[Record]) -> DayUsage {
        let mut day = DayUsage {
            date: date.to_string(),
            ..DayUsage::default()
        };
        let mut latencies = Vec::new();
        for record in records {
            day.requests += 1;
            match record.outcome.as_str() {
                "completed" => {
                    day.completed += 1;
                    day.prompt_tokens += record.prompt as u64;
                    day.reused_tokens += record.reused as u64;
                    day.generated_tokens += record.generated as u64;
                    latencies.push(record.ms);
                }
                "cancelled" => day.cancelled += 1,
                _ => day.failed += 1,
            }
            match record.kind.as_str() {
                "chat" => day.chats += 1,
                _ => day.completions += 1,
            }
            if record.backend == "remote" {
                day.remote_requests += 1;
            } else if record.outcome == "completed" {
                day.local_busy_secs += record.engine_ms / 1000.0;
            } else if record.outcome == "cancelled" {
                day.local_busy_secs += record.ms / 1000.0;
            }
        }
        latencies.sort_by(f64::total_cmp);
        day.p50_ms = percentile(&latencies, 50.0);
        day.p95_ms = percentile(&latencies, 95.0);
        day
    }
}

/// What the recorded tokens would have cost in the cloud, and what they cost here.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CostReport {
    pub cloud_cost: f64,
    pub energy_kwh: f64,
    pub energy_cost: f64,
    /// Cloud cost minus energy cost.
    pub saved: f64,
    /// Days until `usage.hardware-cost` is paid back at this period's average daily saving.
    pub break_even_days: Option<f64>,
}

pub fn cost(days: &[DayUsage], prices: &UsageConfig) -> CostReport {
    let per_million = |tokens: u64, price: f64| tokens as f64 / 1e6 * price;
    let mut report = CostReport::default();
    for day in days {
        let uncached = day.prompt_tokens - day.reused_tokens.min(day.prompt_tokens);
        report.cloud_cost += per_million(uncached, prices.cloud_input_per_mtok)
            + per_million(day.reused_tokens, prices.cloud_cached_input_per_mtok)
            + per_million(day.generated_tokens, prices.cloud_output_per_mtok);
        report.energy_kwh += prices.watts * day.local_busy_secs / 3600.0 / 1000.0;
    }
    report.energy_cost = report.energy_kwh * prices.price_per_kwh;
    report.saved = report.cloud_cost - report.energy_cost;
    let active_days = days.iter().filter(|d| d.requests > 0).count();
    if prices.hardware_cost > 0.0 && active_days > 0 && report.saved > 0.0 {
        report.break_even_days = Some(prices.hardware_cost / (report.saved / active_days as f64));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_protocol::{Priority, RequestMetrics};

    fn event(outcome: UsageOutcome, prompt: u32, reused: u32, generated: u32, ms: f64) -> UsageEvent {
        UsageEvent {
            kind: "completion",
            priority: Priority::Interactive,
            remote: false,
            model: "m".into(),
            outcome,
            metrics: (outcome == UsageOutcome::Completed).then(|| RequestMetrics {
                prompt_tokens: prompt,
                reused_tokens: reused,
                generated_tokens: generated,
                prefill_ms: ms / 4.0,
                decode_ms: ms / 2.0,
                ..RequestMetrics::default()
            }),
            elapsed_ms: ms,
        }
    }

    #[test]
    fn dates_are_civil_dates() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
        assert_eq!(utc_date(1_796_301_081), "2026-12-03");
    }

    #[test]
    fn the_ledger_sums_days_and_prices_them() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::at(dir.path().join("usage"));
        let now = now_secs();
        let records = [
            Record::from_event(&event(UsageOutcome::Completed, 1000, 900, 20, 200.0), now),
            Record::from_event(&event(UsageOutcome::Completed, 3000, 0, 40, 800.0), now),
            Record::from_event(&event(UsageOutcome::Completed, 500, 400, 10, 100.0), now),
            Record::from_event(&event(UsageOutcome::Cancelled, 0, 0, 0, 60.0), now),
            Record::from_event(&event(UsageOutcome::Failed, 0, 0, 0, 5.0), now),
        ];
        for record in &records {
            ledger.append(record).unwrap();
        }
        // A line from a newer Hearth or a torn write is skipped, not fatal.
        std::fs::OpenOptions::new()
            .append(true)
            .open(
                dir.path()
                    .join("usage")
                    .join(format!("{}.jsonl", local_date(now))),
            )
            .unwrap()
            .write_all(b"{not json\n")
            .unwrap();
        let days = ledger.read_days(7, now);
        assert_eq!(days.len(), 1);
        let day = &days[0];
        assert_eq!(
            (day.requests, day.completed, day.cancelled, day.failed),
            (5, 3, 1, 1)
        );
        assert_eq!(
            (day.prompt_tokens, day.reused_tokens, day.generated_tokens),
            (4500, 1300, 70)
        );
        assert_eq!((day.p50_ms, day.p95_ms), (200.0, 800.0));
        assert_eq!(day.unreadable_lines, 1);
        // Engine time 3/4 of each completed request's time, plus the cancelled one's 60 ms.
        assert!((day.local_busy_secs - (0.75 * 1.1 + 0.06)).abs() < 1e-9);

        let prices = UsageConfig {
            cloud_input_per_mtok: 3.0,
            cloud_cached_input_per_mtok: 0.3,
            cloud_output_per_mtok: 15.0,
            watts: 100.0,
            price_per_kwh: 0.5,
            hardware_cost: 1.0,
            ..UsageConfig::default()
        };
        let report = cost(&days, &prices);
        // 3200 uncached × $3/M + 1300 cached × $0.3/M + 70 out × $15/M
        let cloud = 3200.0 * 3.0 / 1e6 + 1300.0 * 0.3 / 1e6 + 70.0 * 15.0 / 1e6;
        assert!((report.cloud_cost - cloud).abs() < 1e-12, "{report:?}");
        let kwh = 100.0 * 0.885 / 3600.0 / 1000.0;
        assert!((report.energy_kwh - kwh).abs() < 1e-12);
        assert!((report.energy_cost - kwh * 0.5).abs() < 1e-12);
        let per_day = cloud - kwh * 0.5;
        assert!((report.break_even_days.unwrap() - 1.0 / per_day).abs() < 1e-6);
    }
}
