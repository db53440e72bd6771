//! The usage ledger's storage: one JSON line per completion or chat request, in one file per
//! local day (`$HEARTH_DATA_DIR/usage/` or `$XDG_DATA_HOME/hearth/usage/YYYY-MM-DD.jsonl`,
//! private to the user), so every Hearth process (each editor's language server, the CLI, a
//! sidecar serving HTTP) appends without coordinating. Only counts and timings, never code.
//! `hearth stats` reads it back (`lsp/src/usage.rs`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::client::{UsageEvent, UsageObserver, UsageOutcome};

/// One request, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Unix time (seconds) when the request ended.
    pub t: u64,
    /// `completion` or `chat`.
    pub kind: String,
    /// `local` (the sidecar), `remote` (an OpenAI-compatible server), or `served` (this
    /// machine's sidecar answering another program over its HTTP API).
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
pub fn utc_date(unix_secs: u64) -> String {
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

pub fn now_secs() -> u64 {
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

    /// Each of the last `days` local days (today included) that has a file, oldest first: its
    /// date, its readable records and how many lines did not parse.
    pub fn read_records(&self, days: u32, now: u64) -> Vec<(String, Vec<Record>, usize)> {
        let mut out: Vec<(String, Vec<Record>, usize)> = Vec::new();
        for back in (0..days as u64).rev() {
            let date = local_date(now.saturating_sub(back * 86400));
            if out.iter().any(|(d, _, _)| *d == date) {
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
            out.push((date, records, bad_lines));
        }
        out
    }
}
