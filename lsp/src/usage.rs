//! The usage ledger, read back: per-day summaries, with the cloud price the same tokens would
//! have cost and the local energy they took. Storage (one JSON line per request, one file per
//! local day) is `hearth_protocol::ledger`.

pub use hearth_protocol::ledger::Ledger;
use hearth_protocol::ledger::Record;
use serde::Serialize;

use crate::config::UsageConfig;

/// Reading the ledger into summaries.
pub trait ReadLedger {
    /// Per-day summaries of the last `days` local days (today included), oldest first; days
    /// without a file are left out. Lines that do not parse are counted, not fatal.
    fn read_days(&self, days: u32, now: u64) -> Vec<DayUsage> {
        self.read(days, now).0
    }

    /// The days (as [`ReadLedger::read_days`]) and one summary over all of them.
    fn read(&self, days: u32, now: u64) -> (Vec<DayUsage>, DayUsage);
}

impl ReadLedger for Ledger {
    fn read(&self, days: u32, now: u64) -> (Vec<DayUsage>, DayUsage) {
        let mut out = Vec::new();
        let mut all = Vec::new();
        let mut all_bad = 0;
        for (date, records, bad_lines) in self.read_records(days, now) {
            let mut day = DayUsage::from_records(&date, &records);
            day.unreadable_lines = bad_lines;
            out.push(day);
            all.extend(records);
            all_bad += bad_lines;
        }
        let mut totals = DayUsage::from_records("total", &all);
        totals.unreadable_lines = all_bad;
        (out, totals)
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
    /// Requests this machine's sidecar served to other programs over its HTTP API.
    pub served_requests: u64,
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
            if record.backend == "served" {
                day.served_requests += 1;
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
    use std::io::Write;

    use super::*;
    use hearth_protocol::ledger::{now_secs, utc_date};
    use hearth_protocol::{Priority, RequestMetrics, UsageEvent, UsageOutcome};

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
                    .join(format!("{}.jsonl", hearth_protocol::ledger::local_date(now))),
            )
            .unwrap()
            .write_all(b"{not json\n")
            .unwrap();
        let (days, totals) = ledger.read(7, now);
        assert_eq!(days.len(), 1);
        assert_eq!(totals.date, "total");
        assert_eq!(
            (totals.requests, totals.p95_ms, totals.unreadable_lines),
            (5, 800.0, 1)
        );
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
