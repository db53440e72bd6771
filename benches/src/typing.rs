//! Section 1: a scripted typing session through the real `hearth lsp`.
//!
//! The tail of a real file of the fixture project is removed and typed back one keystroke at a
//! time (`didChange` per keystroke, auto-indent after Enter as one edit); an inline completion is
//! requested every second keystroke and at the start of every new line, waiting for each answer
//! like a user who pauses. After each request `hearth/stats` gives the server's numbers for it.
//!
//! The limit for a request is what the model alone must spend: the prompt tokens that changed
//! since the previous model request at this machine's prefill rate plus the generated tokens at
//! its decode rate, both rates calibrated in the same run through the same sidecar.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use hearth_protocol::{
    CompletionParams, Endpoint, EngineSettings, ModelInfo, Priority, PromptPart, RequestMetrics,
    SamplingParams, SidecarClient, SidecarStats,
};
use serde::Serialize;
use serde_json::{json, Value};

use hearth_completion::{
    build_fim_prompt, build_prefix_only_prompt, clip_prefix_suffix, completion_mode,
    cursor_in_string_or_comment, ContextFile, CursorLines, FimFormat, LexicalSyntax, ModeConfig,
    PromptInputs,
};
use hearth_context::LanguageId;

use crate::peer::{PeerPrompt, PeerResult, PeerRun};
use crate::procs::{LspServer, Programs};
use crate::util::{common_prefix, file_uri, median, percentile, ratio};

#[derive(Debug, Clone)]
pub struct TypingConfig {
    pub root: PathBuf,
    /// Relative to `root`.
    pub file: String,
    pub language_id: String,
    pub keystrokes: usize,
    pub replay_samples: usize,
    /// A calibration probe (cold prefill + generation) every this many model requests, and one
    /// before and after the session.
    pub probe_every: usize,
    /// `llama-server` for the peer run, or why there is none.
    pub peer: Result<PathBuf, String>,
}

/// One keystroke: text inserted at the cursor (the end of the typed region).
#[derive(Debug, Clone, PartialEq)]
pub struct Keystroke {
    pub text: String,
    /// Ask for a completion after this keystroke.
    pub request: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RequestRecord {
    pub index: usize,
    pub keystroke: usize,
    pub line: u32,
    pub character: u32,
    pub client_ms: f64,
    /// `model`, `typed-along`, `empty` (the model answered nothing usable) or `none`.
    pub source: String,
    pub suggestion: String,
    pub metrics: Option<RequestMetrics>,
    pub reconstructed_prompt_tokens: usize,
    pub changed_tokens: usize,
    pub limit_ms: f64,
    pub multiline: bool,
}

/// One calibration probe, taken between requests through the same sidecar.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Probe {
    /// Taken after this many requests of the session.
    pub after_requests: usize,
    pub prompt_tokens: u32,
    pub prefill_tokens_per_second: Option<f64>,
    pub decode_tokens_per_second: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Calibration {
    pub probes: Vec<Probe>,
    /// Medians over all probes (each request's limit uses the probes nearest to it).
    pub prefill_rate: f64,
    pub decode_rate: f64,
}

impl Calibration {
    /// Median rates of the `count` probes nearest to request `index` (in session order).
    pub fn rates_near(&self, index: usize, count: usize) -> (f64, f64) {
        let nearest = |pick: &dyn Fn(&Probe) -> Option<f64>| -> f64 {
            let mut probes: Vec<(usize, f64)> = self
                .probes
                .iter()
                .filter_map(|p| pick(p).map(|v| (p.after_requests.abs_diff(index), v)))
                .collect();
            probes.sort_by_key(|(distance, _)| *distance);
            let values: Vec<f64> = probes.iter().take(count).map(|(_, v)| *v).collect();
            median(&values)
        };
        (
            nearest(&|p| p.prefill_tokens_per_second),
            nearest(&|p| p.decode_tokens_per_second),
        )
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplayPair {
    pub request_index: usize,
    pub prompt_tokens: u32,
    pub reuse_evaluated_tokens: u32,
    pub reuse_ms: f64,
    pub cold_evaluated_tokens: u32,
    pub cold_ms: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TypingResult {
    pub file: String,
    pub keystrokes: usize,
    pub typed_characters: usize,
    pub requests: Vec<RequestRecord>,
    pub calibration: Calibration,
    pub model_requests: usize,
    pub typed_along: usize,
    pub empty: usize,
    pub latency_p50_ms: f64,
    pub latency_p90_ms: f64,
    pub model_latency_p50_ms: f64,
    pub model_latency_p90_ms: f64,
    pub server_total_p50_ms: f64,
    pub limit_p50_ms: f64,
    /// Median over model requests of client latency / limit.
    pub latency_to_limit_p50: f64,
    pub evaluated_to_prompt_p50: f64,
    pub evaluated_p50: f64,
    pub prompt_tokens_p50: f64,
    pub reconstruction_matches: usize,
    pub replay: Vec<ReplayPair>,
    pub replay_reuse_p50_ms: f64,
    pub replay_cold_p50_ms: f64,
    pub replay_cold_to_reuse: f64,
    pub server_stats: Value,
    pub server_messages: Vec<String>,
    /// The language server's sidecar, whose settings the peer is given.
    pub engine: EngineSettings,
    /// llama.cpp's `llama-server` on the same request points (see `peer.rs`).
    pub peer: Option<PeerResult>,
    pub peer_comparison: Option<PeerComparison>,
    /// Why there is no peer run (binary absent), empty when there is one.
    pub peer_note: String,
    /// The peer was there but could not be measured.
    pub peer_error: Option<String>,
}

/// Hearth against the peer on the same request points of the same session.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PeerComparison {
    /// Request points where Hearth answered (model or typed-along) and the peer was asked.
    pub points: usize,
    pub hearth_p50_ms: f64,
    pub peer_p50_ms: f64,
    /// Hearth p50 / peer p50 over those points (target ≤ 1.0).
    pub ratio: f64,
    /// Median over those points of Hearth / peer at the same point (robust to load drift).
    pub paired_ratio_p50: f64,
    /// The subset Hearth sent to its model: the same prompts on both engines.
    pub model_points: usize,
    pub hearth_model_p50_ms: f64,
    pub peer_model_p50_ms: f64,
    pub model_ratio: f64,
    pub model_paired_ratio_p50: f64,
    /// Generated tokens, median over the model points (Hearth's sidecar / the peer).
    pub hearth_generated_p50: f64,
    pub peer_generated_p50: f64,
    /// Prompt token counts that agree (the peer's `tokens_evaluated` vs. Hearth's sidecar).
    pub prompt_tokens_agree: usize,
}

/// Remove the tail of `text` (at least `keystrokes` keystrokes' worth of whole lines) and
/// return the remaining text and the keystrokes that type it back.
pub fn script(text: &str, keystrokes: usize) -> (String, Vec<Keystroke>) {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut start = lines.len();
    let mut count = 0;
    while start > 1 && count < keystrokes {
        start -= 1;
        let line = lines[start].trim_end_matches('\n');
        let content = line.trim_start();
        count += content.chars().count() + 1 + usize::from(content.len() != line.len());
    }
    let kept: String = lines[..start].concat();
    let mut strokes = Vec::new();
    for line in &lines[start..] {
        let body = line.trim_end_matches('\n');
        let content = body.trim_start();
        let indent = &body[..body.len() - content.len()];
        if !indent.is_empty() {
            // Auto-indent after Enter: one edit; the editor asks for a suggestion right away.
            strokes.push(Keystroke {
                text: indent.to_string(),
                request: true,
            });
        }
        for ch in content.chars() {
            strokes.push(Keystroke {
                text: ch.to_string(),
                request: false,
            });
        }
        if line.ends_with('\n') {
            strokes.push(Keystroke {
                text: "\n".to_string(),
                request: false,
            });
        }
    }
    // Every second keystroke, plus the start of each line.
    for (i, stroke) in strokes.iter_mut().enumerate() {
        if i % 2 == 1 {
            stroke.request = true;
        }
    }
    for i in 0..strokes.len() {
        let starts_line =
            strokes[i].text == "\n" && strokes.get(i + 1).is_none_or(|next| next.text.trim() != "");
        if starts_line {
            strokes[i].request = true;
        }
    }
    (kept, strokes)
}

/// The request the language server sends to the sidecar for a cursor, rebuilt with the
/// server's own libraries (`hearth-completion` for the layout, `hearth/context` for the
/// cross-file snippets it selected), the way `lsp/src/pipeline.rs` does. Used for the cache-off
/// replay and the changed-token count; checked against the server's own prompt token counts.
pub struct Reconstructed {
    pub params: CompletionParams,
    pub multiline: bool,
}

const PREFIX_LINES: usize = 256;
const SUFFIX_LINES: usize = 64;

pub struct PromptSetting<'a> {
    pub model: &'a ModelInfo,
    pub repo_name: &'a str,
    pub relative: &'a str,
    pub language_id: &'a str,
    pub max_tokens: u32,
}

/// `None` where the server would not ask the model (inside a string or comment, mid-word).
pub fn reconstruct(
    setting: &PromptSetting<'_>,
    context: Vec<ContextFile>,
    before: &str,
    after: &str,
) -> Option<Reconstructed> {
    let syntax = LexicalSyntax::for_language(setting.language_id);
    let lines = CursorLines::new(before, after, 20);
    if cursor_in_string_or_comment(lines.prefix_line, &syntax) {
        return None;
    }
    let mode = completion_mode(
        lines.prefix_line,
        lines.suffix_line,
        &syntax,
        &ModeConfig::default(),
    )?;
    let clipped = clip_prefix_suffix(before, after, PREFIX_LINES, SUFFIX_LINES);
    let inputs = PromptInputs {
        context,
        repo_name: setting.repo_name.to_string(),
        file_path: setting.relative.to_string(),
        prefix: clipped.prefix.to_string(),
        suffix: clipped.suffix.to_string(),
        comment_prefix: LanguageId::from_lsp_language_id(setting.language_id)
            .or_else(|| LanguageId::from_path(Path::new(setting.relative)))
            .map(|language| language.comment_prefix().to_string())
            .unwrap_or_default(),
    };
    let prompt = match FimFormat::from_tokens(&setting.model.fim) {
        Some(format) => build_fim_prompt(&format, &inputs),
        None => build_prefix_only_prompt(&inputs),
    };
    Some(Reconstructed {
        params: CompletionParams {
            prompt,
            add_bos: true,
            sampling: SamplingParams {
                max_tokens: setting.max_tokens,
                stop: vec![if mode.multiline { "\n\n\n" } else { "\n" }.to_string()],
                ..SamplingParams::default()
            },
            priority: Priority::Interactive,
            stream: false,
            reuse_cache: true,
        },
        multiline: mode.multiline,
    })
}

/// The snippets the server selects for a cursor (`hearth/context`).
async fn server_context(
    lsp: &mut LspServer,
    uri: &str,
    line: u32,
    character: u32,
) -> anyhow::Result<(Vec<ContextFile>, bool)> {
    let manifest = lsp
        .request(
            "hearth/context",
            Some(json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": character}})),
            Duration::from_secs(60),
        )
        .await?;
    let snippets = manifest["snippets"]
        .as_array()
        .map(|snippets| {
            snippets
                .iter()
                .map(|s| ContextFile {
                    path: s["path"].as_str().unwrap_or("").to_string(),
                    text: s["text"].as_str().unwrap_or("").to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((snippets, manifest["index_ready"].as_bool().unwrap_or(false)))
}

/// The token ids of a reconstructed prompt, as the sidecar renders it.
async fn prompt_tokens(client: &SidecarClient, params: &CompletionParams) -> anyhow::Result<Vec<i32>> {
    let model = client.model();
    let mut tokens = Vec::new();
    if params.add_bos && model.add_bos {
        if let Some(bos) = &model.bos {
            tokens.push(bos.id);
        }
    }
    let texts: Vec<String> = params
        .prompt
        .iter()
        .filter_map(|p| match p {
            PromptPart::Text(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    let (_, mut tokenized) = client.tokenize(texts, false).await?;
    tokenized.reverse();
    for part in &params.prompt {
        match part {
            PromptPart::Text(_) => tokens.extend(tokenized.pop().unwrap_or_default()),
            PromptPart::Special(special) => {
                use hearth_protocol::SpecialToken::*;
                let fim = &model.fim;
                let info = match special {
                    FimPre => fim.pre.as_ref(),
                    FimSuf => fim.suf.as_ref(),
                    FimMid => fim.mid.as_ref(),
                    FimPad => fim.pad.as_ref(),
                    FimRep => fim.rep.as_ref(),
                    FimSep => fim.sep.as_ref(),
                    Bos => model.bos.as_ref(),
                    Eos => model.eos.as_ref(),
                };
                tokens.push(info.map_or(-1, |i| i.id));
            }
            PromptPart::SpecialText(_) => {}
        }
    }
    Ok(tokens)
}

async fn complete_timed(
    client: &SidecarClient,
    params: CompletionParams,
) -> anyhow::Result<(f64, RequestMetrics)> {
    let started = Instant::now();
    let outcome = client.complete(params)?.finish().await?;
    Ok((started.elapsed().as_secs_f64() * 1000.0, outcome.metrics))
}

/// A probe: the prefill rate from the prompt evaluated cold; the decode rate from a generation
/// on the same prompt (runs that stop after fewer than 8 tokens say little about decode speed:
/// the prompt is then extended with the start of a code line and tried again).
async fn probe(
    client: &SidecarClient,
    base: &CompletionParams,
    after_requests: usize,
) -> anyhow::Result<Probe> {
    let mut cold = base.clone();
    cold.reuse_cache = false;
    cold.sampling.max_tokens = 1;
    let (_, metrics) = complete_timed(client, cold).await?;
    let mut probe = Probe {
        after_requests,
        prompt_tokens: metrics.prompt_tokens,
        prefill_tokens_per_second: (metrics.evaluated_tokens > 0 && metrics.prefill_ms > 0.0)
            .then(|| f64::from(metrics.evaluated_tokens) / (metrics.prefill_ms / 1000.0)),
        decode_tokens_per_second: None,
    };
    for nudge in ["", "    def ", "    # ", "x = "] {
        let mut generate = base.clone();
        generate.sampling.max_tokens = 32;
        generate.sampling.stop.clear();
        if let Some(PromptPart::Text(last)) = generate
            .prompt
            .iter_mut()
            .rev()
            .find(|p| matches!(p, PromptPart::Text(_)))
        {
            last.push_str(nudge);
        }
        let (_, metrics) = complete_timed(client, generate).await?;
        if metrics.generated_tokens >= 8 && metrics.decode_tokens_per_second > 0.0 {
            probe.decode_tokens_per_second = Some(metrics.decode_tokens_per_second);
            break;
        }
    }
    Ok(probe)
}

fn sidecar_stats(stats: &Value) -> Option<SidecarStats> {
    serde_json::from_value(stats.get("sidecar")?.clone()).ok()
}

fn recorded(stats: &SidecarStats) -> u64 {
    stats.requests_completed + stats.requests_cancelled + stats.requests_failed
}

fn served_from_cache(stats: &Value) -> u64 {
    stats["server"]["servedFromCache"].as_u64().unwrap_or(0)
}

async fn wait_ready(lsp: &mut LspServer) -> anyhow::Result<(Value, SidecarStats)> {
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let stats = lsp.stats().await?;
        if let Some(sidecar) = sidecar_stats(&stats) {
            return Ok((stats, sidecar));
        }
        let messages = lsp.messages.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(error) = messages.iter().find(|m| m.contains("Hearth:")) {
            bail!("the language server could not start its sidecar: {error}");
        }
        if Instant::now() > deadline {
            bail!("the language server's sidecar was not ready after 15 minutes: {stats}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn find_socket(dir: &Path) -> anyhow::Result<Endpoint> {
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(key) = name
            .strip_prefix("sidecar-")
            .and_then(|n| n.strip_suffix(".sock"))
        {
            return Ok(Endpoint::in_dir(dir, key));
        }
    }
    bail!("no sidecar socket in {}", dir.display())
}

pub async fn run(
    programs: &Programs,
    model_path: &Path,
    config: &TypingConfig,
) -> anyhow::Result<TypingResult> {
    let path = config.root.join(&config.file);
    let original =
        std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let (initial, strokes) = script(&original, config.keystrokes);
    let uri = file_uri(&path);

    let mut lsp = LspServer::spawn(programs).await?;
    let result = session(&mut lsp, model_path, config, &uri, &initial, &strokes).await;
    let messages = lsp.messages.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let log = lsp.log_tail();
    lsp.close().await;
    let mut result = result.with_context(|| format!("typing session (server log tail: {log})"))?;
    result.server_messages = messages;
    result.file = config.file.clone();
    result.typed_characters = strokes.iter().map(|s| s.text.chars().count()).sum();

    Ok(result)
}

fn compare(result: &TypingResult, peer: &PeerResult) -> PeerComparison {
    let pairs: Vec<(&RequestRecord, &crate::peer::PeerRequest)> = peer
        .requests
        .iter()
        .filter_map(|p| Some((result.requests.get(p.request_index)?, p)))
        .collect();
    let model: Vec<_> = pairs.iter().filter(|(r, _)| r.metrics.is_some()).collect();
    let hearth_p50_ms = median(&pairs.iter().map(|(r, _)| r.client_ms).collect::<Vec<_>>());
    let peer_p50_ms = median(&pairs.iter().map(|(_, p)| p.client_ms).collect::<Vec<_>>());
    let hearth_model_p50_ms = median(&model.iter().map(|(r, _)| r.client_ms).collect::<Vec<_>>());
    let peer_model_p50_ms = median(&model.iter().map(|(_, p)| p.client_ms).collect::<Vec<_>>());
    let paired = |pairs: &[&(&RequestRecord, &crate::peer::PeerRequest)]| {
        median(
            &pairs
                .iter()
                .map(|(r, p)| ratio(r.client_ms, p.client_ms))
                .collect::<Vec<_>>(),
        )
    };
    let generated = |r: &RequestRecord| f64::from(r.metrics.as_ref().map_or(0, |m| m.generated_tokens));
    PeerComparison {
        points: pairs.len(),
        hearth_p50_ms,
        peer_p50_ms,
        ratio: ratio(hearth_p50_ms, peer_p50_ms),
        paired_ratio_p50: paired(&pairs.iter().collect::<Vec<_>>()),
        model_points: model.len(),
        hearth_model_p50_ms,
        peer_model_p50_ms,
        model_ratio: ratio(hearth_model_p50_ms, peer_model_p50_ms),
        model_paired_ratio_p50: paired(&model),
        hearth_generated_p50: median(&model.iter().map(|(r, _)| generated(r)).collect::<Vec<_>>()),
        peer_generated_p50: median(
            &model
                .iter()
                .map(|(_, p)| f64::from(p.generated_tokens))
                .collect::<Vec<_>>(),
        ),
        prompt_tokens_agree: model
            .iter()
            .filter(|(r, p)| {
                r.metrics
                    .as_ref()
                    .is_some_and(|m| m.prompt_tokens == p.prompt_tokens)
            })
            .count(),
    }
}

async fn session(
    lsp: &mut LspServer,
    model_path: &Path,
    config: &TypingConfig,
    uri: &str,
    initial: &str,
    strokes: &[Keystroke],
) -> anyhow::Result<TypingResult> {
    let root_uri = file_uri(&config.root);
    lsp.request(
        "initialize",
        Some(json!({
            "processId": std::process::id(),
            "rootUri": root_uri,
            "workspaceFolders": [{"uri": root_uri, "name": "shop"}],
            "capabilities": {
                "general": {"positionEncodings": ["utf-16"]},
                "window": {"workDoneProgress": true},
                "textDocument": {"inlineCompletion": {"dynamicRegistration": false}}
            },
            "initializationOptions": {"hearth": {
                "model": model_path.display().to_string(),
                "completion": {"debounceMs": 0},
                "backend": {"idleTimeoutSecs": 60}
            }}
        })),
        Duration::from_secs(60),
    )
    .await?;
    lsp.notify("initialized", json!({})).await?;
    let (_, sidecar) = wait_ready(lsp).await?;
    lsp.sidecar_pid = Some(sidecar.pid);
    let endpoint = find_socket(lsp.runtime_dir.path())?;
    let client = SidecarClient::connect(&endpoint, "hearth-bench (typing)", Duration::from_secs(60)).await?;
    let model = client.model().clone();
    let repo_name = config
        .root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let setting = PromptSetting {
        model: &model,
        repo_name: &repo_name,
        relative: &config.file,
        language_id: &config.language_id,
        max_tokens: 64,
    };

    lsp.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": config.language_id, "version": 1, "text": initial}}),
    )
    .await?;

    let mut result = TypingResult {
        keystrokes: strokes.len(),
        ..TypingResult::default()
    };
    let (mut line, mut character) = {
        let line = initial.matches('\n').count() as u32;
        let last = initial.rsplit('\n').next().unwrap_or("");
        (line, last.encode_utf16().count() as u32)
    };
    // Wait for the workspace index, so that context selection is stable during the session.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut snippets = loop {
        let (snippets, ready) = server_context(lsp, uri, line, character).await?;
        if ready || Instant::now() > deadline {
            break snippets;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let calibration_base = reconstruct(&setting, std::mem::take(&mut snippets), initial, "")
        .context("no completion expected at the end of the initial text")?
        .params;
    result.engine = client.hello().engine.clone();
    result
        .calibration
        .probes
        .push(probe(&client, &calibration_base, 0).await?);
    let mut last_params = calibration_base.clone();

    // The peer: started now with the sidecar's settings, its slot warmed with the prompt the
    // probe just left in Hearth's slot.
    let mut peer = match &config.peer {
        Err(why) => {
            result.peer_note = why.clone();
            None
        }
        Ok(program) => {
            eprintln!("hearth-bench: starting the peer (llama-server)...");
            let warm = PeerPrompt {
                request_index: 0,
                tokens: prompt_tokens(&client, &calibration_base).await?,
                max_tokens: 1,
                stop: Vec::new(),
            };
            match PeerRun::start(program, model_path, &result.engine, &warm).await {
                Ok(run) => Some(run),
                Err(error) => {
                    result.peer_error = Some(format!("{error:#}"));
                    None
                }
            }
        }
    };

    let mut text = initial.to_string();
    let mut version = 1;
    let stats = lsp.stats().await?;
    let mut seen_recorded = sidecar_stats(&stats).map_or(0, |s| recorded(&s));
    let mut seen_cached = served_from_cache(&stats);
    let mut previous_prompt: Vec<i32> = Vec::new();
    let mut prompts: Vec<Option<CompletionParams>> = Vec::new();
    for (k, stroke) in strokes.iter().enumerate() {
        version += 1;
        lsp.notify(
            "textDocument/didChange",
            json!({
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [{
                    "range": {"start": {"line": line, "character": character}, "end": {"line": line, "character": character}},
                    "text": stroke.text
                }]
            }),
        )
        .await?;
        text.push_str(&stroke.text);
        for ch in stroke.text.chars() {
            if ch == '\n' {
                line += 1;
                character = 0;
            } else {
                character += ch.len_utf16() as u32;
            }
        }
        if !stroke.request {
            continue;
        }
        let started = Instant::now();
        let answer = lsp
            .request(
                "textDocument/inlineCompletion",
                Some(json!({
                    "textDocument": {"uri": uri},
                    "position": {"line": line, "character": character},
                    "context": {"triggerKind": 2}
                })),
                Duration::from_secs(300),
            )
            .await?;
        let client_ms = started.elapsed().as_secs_f64() * 1000.0;
        let items = answer
            .as_array()
            .cloned()
            .or_else(|| answer.get("items").and_then(Value::as_array).cloned())
            .unwrap_or_default();
        let suggestion = items
            .first()
            .and_then(|item| item.get("insertText"))
            .and_then(|t| {
                t.as_str()
                    .map(str::to_string)
                    .or_else(|| t.get("value")?.as_str().map(str::to_string))
            })
            .unwrap_or_default();

        let stats = lsp.stats().await?;
        let sidecar = sidecar_stats(&stats).context("the sidecar went away during the session")?;
        let now_recorded = recorded(&sidecar);
        let now_cached = served_from_cache(&stats);
        let new = (now_recorded - seen_recorded) as usize;
        let metrics = (new >= 1).then(|| sidecar.recent.last().cloned()).flatten();
        let typed_along = now_cached > seen_cached;
        seen_recorded = now_recorded;
        seen_cached = now_cached;

        let mut record = RequestRecord {
            index: result.requests.len(),
            keystroke: k,
            line,
            character,
            client_ms,
            suggestion,
            ..RequestRecord::default()
        };
        record.source = if typed_along {
            "typed-along".into()
        } else if metrics.is_some() {
            if record.suggestion.is_empty() {
                "empty"
            } else {
                "model"
            }
            .into()
        } else {
            "none".into()
        };
        // The peer also gets the points Hearth served from its typed-along cache.
        let wanted = metrics.is_some() || (typed_along && peer.is_some());
        let reconstructed = match wanted {
            true => {
                let (snippets, _) = server_context(lsp, uri, line, character).await?;
                match reconstruct(&setting, snippets, &text, "") {
                    Some(r) => Some((prompt_tokens(&client, &r.params).await?, r)),
                    None => None,
                }
            }
            false => None,
        };
        if let (Some(run), Some((tokens, reconstructed))) = (peer.as_mut(), &reconstructed) {
            let prompt = PeerPrompt {
                request_index: record.index,
                tokens: tokens.clone(),
                max_tokens: reconstructed.params.sampling.max_tokens,
                stop: reconstructed.params.sampling.stop.clone(),
            };
            if let Err(error) = run.complete(&prompt).await {
                result.peer_error = Some(format!("{error:#}"));
                peer = None;
            }
        }
        match (&metrics, reconstructed) {
            (Some(metrics), Some((tokens, reconstructed))) => {
                record.reconstructed_prompt_tokens = tokens.len();
                let changed = tokens.len()
                    - common_prefix(&previous_prompt, &tokens).min(tokens.len().saturating_sub(1));
                record.changed_tokens = changed.max(1);
                record.multiline = reconstructed.multiline;
                previous_prompt = tokens;
                record.metrics = Some(metrics.clone());
                last_params = reconstructed.params.clone();
                prompts.push(Some(reconstructed.params));
            }
            (Some(metrics), None) => {
                // The server asked the model where the reconstruction says it would not.
                record.changed_tokens = metrics.evaluated_tokens.max(1) as usize;
                record.metrics = Some(metrics.clone());
                prompts.push(None);
            }
            (None, _) => prompts.push(None),
        }
        let is_model = record.metrics.is_some();
        result.requests.push(record);
        let model_requests = result.requests.iter().filter(|r| r.metrics.is_some()).count();
        if is_model && model_requests % config.probe_every.max(1) == 0 {
            let after = result.requests.len();
            result
                .calibration
                .probes
                .push(probe(&client, &last_params, after).await?);
        }
    }

    let after = result.requests.len();
    result
        .calibration
        .probes
        .push(probe(&client, &last_params, after).await?);
    let calibration = &mut result.calibration;
    let all = |pick: &dyn Fn(&Probe) -> Option<f64>| -> Vec<f64> {
        calibration.probes.iter().filter_map(pick).collect()
    };
    calibration.prefill_rate = median(&all(&|p| p.prefill_tokens_per_second));
    calibration.decode_rate = median(&all(&|p| p.decode_tokens_per_second));
    for record in &mut result.requests {
        if let Some(metrics) = &record.metrics {
            let (prefill_rate, decode_rate) = result.calibration.rates_near(record.index, 3);
            record.limit_ms = 1000.0
                * (ratio(record.changed_tokens as f64, prefill_rate)
                    + ratio(f64::from(metrics.generated_tokens), decode_rate));
        }
    }

    // Cache on vs off on the same prompts, alternating: warm a slot with the previous model
    // request's prompt, time this one with reuse; then the same prompt cold.
    let model_indices: Vec<usize> = result
        .requests
        .iter()
        .filter(|r| r.metrics.is_some())
        .map(|r| r.index)
        .collect();
    let samples = config.replay_samples.min(model_indices.len().saturating_sub(1));
    for s in 0..samples {
        let position = 1 + s * (model_indices.len() - 1) / samples.max(1);
        let (previous, index) = (model_indices[position - 1], model_indices[position]);
        let (Some(Some(warm)), Some(Some(params))) = (prompts.get(previous), prompts.get(index)) else {
            continue;
        };
        complete_timed(&client, warm.clone()).await?;
        let (reuse_ms, reuse) = complete_timed(&client, params.clone()).await?;
        let mut cold_params = params.clone();
        cold_params.reuse_cache = false;
        let (cold_ms, cold) = complete_timed(&client, cold_params).await?;
        result.replay.push(ReplayPair {
            request_index: index,
            prompt_tokens: reuse.prompt_tokens,
            reuse_evaluated_tokens: reuse.evaluated_tokens,
            reuse_ms,
            cold_evaluated_tokens: cold.evaluated_tokens,
            cold_ms,
        });
    }
    result.server_stats = lsp.stats().await?;
    drop(client);
    summarize(&mut result);
    if let Some(run) = peer {
        let peer = run.finish();
        result.peer_comparison = Some(compare(&result, &peer));
        result.peer = Some(peer);
    }
    Ok(result)
}

fn summarize(result: &mut TypingResult) {
    let requests = &result.requests;
    let all: Vec<f64> = requests.iter().map(|r| r.client_ms).collect();
    let model: Vec<&RequestRecord> = requests.iter().filter(|r| r.metrics.is_some()).collect();
    let model_ms: Vec<f64> = model.iter().map(|r| r.client_ms).collect();
    result.model_requests = model.len();
    result.typed_along = requests.iter().filter(|r| r.source == "typed-along").count();
    result.empty = requests.iter().filter(|r| r.source == "empty").count();
    result.latency_p50_ms = median(&all);
    result.latency_p90_ms = percentile(&all, 0.9);
    result.model_latency_p50_ms = median(&model_ms);
    result.model_latency_p90_ms = percentile(&model_ms, 0.9);
    let metrics = |f: &dyn Fn(&RequestRecord, &RequestMetrics) -> f64| -> Vec<f64> {
        model
            .iter()
            .map(|r| f(r, r.metrics.as_ref().unwrap_or(&RequestMetrics::default())))
            .collect()
    };
    result.server_total_p50_ms = median(&metrics(&|_, m| m.total_ms));
    result.limit_p50_ms = median(&metrics(&|r, _| r.limit_ms));
    result.latency_to_limit_p50 = median(&metrics(&|r, _| ratio(r.client_ms, r.limit_ms)));
    result.evaluated_to_prompt_p50 = median(&metrics(&|_, m| {
        ratio(f64::from(m.evaluated_tokens), f64::from(m.prompt_tokens))
    }));
    result.evaluated_p50 = median(&metrics(&|_, m| f64::from(m.evaluated_tokens)));
    result.prompt_tokens_p50 = median(&metrics(&|_, m| f64::from(m.prompt_tokens)));
    result.reconstruction_matches = model
        .iter()
        .filter(|r| {
            r.metrics
                .as_ref()
                .is_some_and(|m| m.prompt_tokens as usize == r.reconstructed_prompt_tokens)
        })
        .count();
    let reuse: Vec<f64> = result.replay.iter().map(|p| p.reuse_ms).collect();
    let cold: Vec<f64> = result.replay.iter().map(|p| p.cold_ms).collect();
    result.replay_reuse_p50_ms = median(&reuse);
    result.replay_cold_p50_ms = median(&cold);
    result.replay_cold_to_reuse = ratio(result.replay_cold_p50_ms, result.replay_reuse_p50_ms);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_types_back_the_removed_tail() {
        let text = "a\nclass X:\n    def f(self):\n        return 1\n";
        let (kept, strokes) = script(text, 20);
        let typed: String = strokes.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(format!("{kept}{typed}"), text);
        assert!(strokes.iter().any(|s| s.text == "        " && s.request));
        assert!(strokes.len() >= 20);
        assert!(strokes.iter().filter(|s| s.request).count() >= strokes.len() / 2);
    }

    #[test]
    fn reconstructed_prompts_follow_the_cursor_mode() {
        let model = ModelInfo::default();
        let setting = PromptSetting {
            model: &model,
            repo_name: "shop",
            relative: "shop/x.py",
            language_id: "python",
            max_tokens: 64,
        };
        let r = reconstruct(&setting, Vec::new(), "def f(x):\n    ", "").unwrap();
        assert!(r.multiline);
        assert_eq!(r.params.sampling.stop, vec!["\n\n\n".to_string()]);
        match &r.params.prompt[..] {
            [PromptPart::Text(text)] => {
                assert!(text.contains("shop/x.py") && text.ends_with("def f(x):\n    "))
            }
            other => panic!("unexpected prompt {other:?}"),
        }
        let r = reconstruct(&setting, Vec::new(), "x = fo", "").unwrap();
        assert!(!r.multiline);
        assert!(reconstruct(&setting, Vec::new(), "# a comment", "").is_none());
    }
}
