//! Section 5: long prompts. Per size: a cold prefill (cache reuse off) and a follow-up with one
//! line appended (reuse on), whose cost should stay near the appended tokens at every size.

use std::time::Instant;

use hearth_protocol::{CompletionParams, Priority, PromptPart, SamplingParams, SidecarClient, StreamEvent};
use serde::Serialize;

use crate::prompts::text_with_tokens;
use crate::util::ratio;

#[derive(Debug, Clone, Default, Serialize)]
pub struct SizePoint {
    pub target_tokens: usize,
    pub prompt_tokens: u32,
    pub cold_client_ttft_ms: f64,
    pub cold_server_prefill_ms: f64,
    pub cold_prefill_tokens_per_second: f64,
    pub resident_bytes_after: u64,
    pub follow_prompt_tokens: u32,
    pub follow_reused_tokens: u32,
    pub follow_evaluated_tokens: u32,
    pub follow_client_ttft_ms: f64,
    /// Follow-up time to first token / cold time to first token.
    pub follow_to_cold_ratio: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LongContextResult {
    pub n_ctx_per_slot: u32,
    pub n_ctx_train: u32,
    pub cap_tokens: usize,
    pub cap_reason: String,
    pub resident_bytes_idle: u64,
    pub points: Vec<SizePoint>,
    /// Why sizes below the cap were left out (the time budget), if they were.
    pub stopped: Option<String>,
}

pub const APPENDED_LINE: &str = "    // one more line typed by the user\n";

async fn timed(
    client: &SidecarClient,
    text: &str,
    reuse: bool,
) -> anyhow::Result<(f64, hearth_protocol::RequestMetrics)> {
    let params = CompletionParams {
        prompt: vec![PromptPart::Text(text.to_string())],
        add_bos: true,
        sampling: SamplingParams {
            max_tokens: 4,
            ..SamplingParams::default()
        },
        priority: Priority::Interactive,
        stream: true,
        reuse_cache: reuse,
    };
    let started = Instant::now();
    let mut stream = client.complete(params)?;
    let mut first = None;
    loop {
        match stream.next_event().await? {
            StreamEvent::Token(_) => {
                first.get_or_insert_with(Instant::now);
            }
            StreamEvent::Done(outcome) => {
                let first = first.unwrap_or_else(Instant::now);
                return Ok((
                    first.duration_since(started).as_secs_f64() * 1000.0,
                    outcome.metrics,
                ));
            }
        }
    }
}

/// The sizes to measure: `wanted` below the cap, plus the cap itself.
pub fn sizes(wanted: &[usize], cap: usize) -> Vec<usize> {
    let mut sizes: Vec<usize> = wanted.iter().copied().filter(|&s| s < cap).collect();
    if sizes.last().is_none_or(|&last| last < cap) && wanted.iter().any(|&s| s >= cap) {
        sizes.push(cap);
    }
    sizes
}

/// `budget`: a size is skipped when its cold prefill, extrapolated from the previous size
/// (quadratically: attention grows with the context), would exceed it.
pub async fn run(
    client: &SidecarClient,
    corpus: &str,
    wanted: &[usize],
    budget: std::time::Duration,
) -> anyhow::Result<LongContextResult> {
    let hello = client.hello();
    let per_slot = hello.engine.n_ctx_per_slot as usize;
    let train = hello.model.n_ctx_train as usize;
    // Room for the appended line and the few generated tokens.
    let margin = 96;
    let (cap, reason) = if train > 0 && train < per_slot {
        (
            train.saturating_sub(margin),
            format!("the model trains on {train} tokens"),
        )
    } else {
        (
            per_slot.saturating_sub(margin),
            format!("the sidecar's slot holds {per_slot} tokens"),
        )
    };
    let mut result = LongContextResult {
        n_ctx_per_slot: per_slot as u32,
        n_ctx_train: train as u32,
        cap_tokens: cap,
        cap_reason: reason,
        resident_bytes_idle: client.stats().await?.resident_memory_bytes,
        points: Vec::new(),
        stopped: None,
    };
    for target in sizes(wanted, cap) {
        if let Some(last) = result.points.last() {
            let scale = target as f64 / f64::from(last.prompt_tokens.max(1));
            let estimate_ms = last.cold_client_ttft_ms * scale * scale;
            if estimate_ms > budget.as_secs_f64() * 1000.0 {
                result.stopped = Some(format!(
                    "stopped before {target} tokens: its cold prefill would take about {:.0} s here (budget {:.0} s per size; \
                     raise it with --long-context-budget)",
                    estimate_ms / 1000.0,
                    budget.as_secs_f64()
                ));
                break;
            }
        }
        let (text, _) = text_with_tokens(client, corpus, target).await?;
        let (cold_ttft, cold) = timed(client, &text, false).await?;
        let resident = client.stats().await?.resident_memory_bytes;
        let follow_text = format!("{text}{APPENDED_LINE}");
        let (follow_ttft, follow) = timed(client, &follow_text, true).await?;
        result.points.push(SizePoint {
            target_tokens: target,
            prompt_tokens: cold.prompt_tokens,
            cold_client_ttft_ms: cold_ttft,
            cold_server_prefill_ms: cold.prefill_ms,
            cold_prefill_tokens_per_second: cold.prefill_tokens_per_second,
            resident_bytes_after: resident,
            follow_prompt_tokens: follow.prompt_tokens,
            follow_reused_tokens: follow.reused_tokens,
            follow_evaluated_tokens: follow.evaluated_tokens,
            follow_client_ttft_ms: follow_ttft,
            follow_to_cold_ratio: ratio(follow_ttft, cold_ttft),
        });
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_stop_at_the_cap() {
        assert_eq!(sizes(&[2048, 4096, 8192, 32768], 8096), vec![2048, 4096, 8096]);
        assert_eq!(sizes(&[512, 1024], 8096), vec![512, 1024]);
        assert_eq!(sizes(&[2048, 131072], 131000), vec![2048, 131000]);
    }
}
