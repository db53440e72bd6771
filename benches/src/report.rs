//! `REPORT.md` and its SVG plots.

use std::fmt::Write as _;
use std::path::Path;

use crate::results::{Results, Section};
use crate::svg::{Chart, Series, Style};

fn r(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.2}")
    } else {
        "n/a".into()
    }
}

/// A token count (a median may fall between two integers: one decimal then).
fn tokens(value: f64) -> String {
    if !value.is_finite() {
        "n/a".into()
    } else if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

fn ms(value: f64) -> String {
    if !value.is_finite() {
        "n/a".into()
    } else if value >= 10_000.0 {
        format!("{:.1} s", value / 1000.0)
    } else if value >= 100.0 {
        format!("{value:.0} ms")
    } else if value >= 1.0 {
        format!("{value:.1} ms")
    } else {
        format!("{value:.3} ms")
    }
}

fn tps(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.0} tok/s")
    } else {
        "n/a".into()
    }
}

fn bytes(value: f64) -> String {
    let mib = value / (1024.0 * 1024.0);
    if mib.abs() >= 1024.0 {
        format!("{:.1} GiB", mib / 1024.0)
    } else {
        format!("{mib:.0} MiB")
    }
}

fn pct(value: f64) -> String {
    if value.is_finite() {
        format!("{:.1} %", value * 100.0)
    } else {
        "n/a".into()
    }
}

fn met(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "**yes**",
        Some(false) => "**no**",
        None => "n/a",
    }
}

fn check(value: f64, ok: impl Fn(f64) -> bool) -> Option<bool> {
    value.is_finite().then(|| ok(value))
}

fn section_status<T>(out: &mut String, section: &Section<T>) -> bool {
    match section {
        Section::Measured(_) => true,
        Section::Failed(error) => {
            let _ = writeln!(out, "**Failed:** `{}`\n", error.replace('`', "'"));
            false
        }
        Section::Skipped(why) => {
            let _ = writeln!(out, "Skipped: {why}\n");
            false
        }
    }
}

/// Write the markdown to `out` and the plots next to it; returns the markdown.
pub fn write(results: &Results, out: &Path) -> anyhow::Result<String> {
    let directory = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let stem = out
        .file_stem()
        .map_or("report".into(), |s| s.to_string_lossy().to_lowercase());
    let typing_svg = format!("{stem}-typing-latency.svg");
    let long_svg = format!("{stem}-prefill-vs-size.svg");
    let mut plots = Vec::new();

    if let Some(typing) = results.typing.measured() {
        let pick = |source: &str| -> Vec<(f64, f64)> {
            typing
                .requests
                .iter()
                .filter(|q| q.source == source)
                .map(|q| (q.keystroke as f64, q.client_ms))
                .collect()
        };
        let chart = Chart {
            title: "Typing session: latency per completion request (hearth lsp, client side)",
            x_label: "keystroke",
            y_label: "milliseconds (log scale)",
            log_y: true,
            series: vec![
                Series {
                    name: "suggestion from the model".into(),
                    color: "#1f77b4",
                    style: Style::Dots,
                    points: pick("model"),
                },
                Series {
                    name: "model answered nothing usable".into(),
                    color: "#ff7f0e",
                    style: Style::Dots,
                    points: pick("empty"),
                },
                Series {
                    name: "typed-along cache".into(),
                    color: "#2ca02c",
                    style: Style::Dots,
                    points: pick("typed-along"),
                },
                Series {
                    name: "peer: llama-server /completion, same request points".into(),
                    color: "#9467bd",
                    style: Style::Dots,
                    points: typing
                        .peer
                        .iter()
                        .flat_map(|peer| &peer.requests)
                        .filter_map(|p| {
                            let q = typing.requests.get(p.request_index)?;
                            Some((q.keystroke as f64, p.client_ms))
                        })
                        .collect(),
                },
                Series {
                    name: "limit: changed tokens / prefill rate + generated / decode rate".into(),
                    color: "#d62728",
                    style: Style::Line,
                    points: typing
                        .requests
                        .iter()
                        .filter(|q| q.metrics.is_some())
                        .map(|q| (q.keystroke as f64, q.limit_ms))
                        .collect(),
                },
            ],
        };
        std::fs::write(directory.join(&typing_svg), chart.render())?;
        plots.push(typing_svg.clone());
    }
    if let Some(long) = results.long_context.measured() {
        let chart = Chart {
            title: "Prompt size: cold prefill vs. follow-up with one line appended",
            x_label: "prompt tokens",
            y_label: "milliseconds to first token (log scale)",
            log_y: true,
            series: vec![
                Series {
                    name: "cold (cache reuse off)".into(),
                    color: "#d62728",
                    style: Style::LineAndDots,
                    points: long
                        .points
                        .iter()
                        .map(|p| (f64::from(p.prompt_tokens), p.cold_client_ttft_ms))
                        .collect(),
                },
                Series {
                    name: "follow-up (one line appended, reuse on)".into(),
                    color: "#1f77b4",
                    style: Style::LineAndDots,
                    points: long
                        .points
                        .iter()
                        .map(|p| (f64::from(p.follow_prompt_tokens), p.follow_client_ttft_ms))
                        .collect(),
                },
            ],
        };
        std::fs::write(directory.join(&long_svg), chart.render())?;
        plots.push(long_svg.clone());
    }

    let markdown = render(results, &typing_svg, &long_svg);
    std::fs::write(out, &markdown)?;
    Ok(markdown)
}

pub fn render(results: &Results, typing_svg: &str, long_svg: &str) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Hearth benchmark report\n");
    let _ = writeln!(
        o,
        "Written by `{}` ({} mode) on {} UTC in {:.0} s; commit `{}`; {} build. \
         Every figure is compared with a baseline measured side by side in the same run; absolute times are context only \
         (shared, noisy machine). Targets (the summary's last columns) are the project's performance brief: the peer's \
         figures and the limits in it.\n",
        results.command,
        results.mode,
        results.started_utc,
        results.duration_seconds,
        results.git_commit,
        results.build_profile
    );

    // Machine and model.
    let m = &results.machine;
    let _ = writeln!(o, "## Machine\n");
    let _ = writeln!(o, "| | |\n|---|---|");
    let _ = writeln!(o, "| CPU | {} |", m.cpu_model);
    let _ = writeln!(
        o,
        "| Cores | {} logical, {} physical |",
        m.logical_cores, m.physical_cores
    );
    let _ = writeln!(o, "| Memory | {} |", bytes(m.memory_bytes as f64));
    let _ = writeln!(o, "| OS | {} |", m.os);
    let _ = writeln!(
        o,
        "| GPU | {} |",
        if m.gpus.is_empty() {
            "none".to_string()
        } else {
            m.gpus.join("; ")
        }
    );
    let _ = writeln!(
        o,
        "| Load average (1/5/15 min) at start / at the end | {} / {} |\n",
        m.load_average, results.load_average_end
    );

    let _ = writeln!(o, "## Model\n");
    match &results.model {
        Some(model) => {
            let fim = if model.fim.can_infill() {
                "yes"
            } else {
                "no (prefix-only prompts)"
            };
            let _ = writeln!(o, "| | |\n|---|---|");
            let _ = writeln!(o, "| Name | {} |", model.name);
            let _ = writeln!(o, "| Architecture | {} |", model.architecture);
            let _ = writeln!(o, "| Parameters | {:.1} M |", model.n_params as f64 / 1e6);
            let _ = writeln!(
                o,
                "| File | `{}` ({}) |",
                model.path,
                bytes(model.file_size as f64)
            );
            let _ = writeln!(o, "| Trained context | {} tokens |", model.n_ctx_train);
            let _ = writeln!(
                o,
                "| Layers / vocabulary | {} / {} |",
                model.n_layer, model.n_vocab
            );
            let _ = writeln!(o, "| FIM tokens | {fim} |");
            let _ = writeln!(
                o,
                "| Chat template | {} |\n",
                if model.has_chat_template { "yes" } else { "no" }
            );
        }
        None => {
            let _ = writeln!(
                o,
                "`{}` (no sidecar handshake: see the failures below)\n",
                results.model_path
            );
        }
    }
    if !results.sidecars.is_empty() {
        let _ = writeln!(
            o,
            "Sidecars started by the benchmark (engine settings from their handshakes):\n"
        );
        let _ = writeln!(o, "| Purpose | Flags | ctx / per slot | slots | batch / ubatch | threads | GPU layers | KV | load |");
        let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|");
        for s in &results.sidecars {
            let e = &s.engine;
            let _ = writeln!(
                o,
                "| {} | `{}` | {} / {} | {} | {} / {} | {} | {} | {} | {:.1} s |",
                s.purpose,
                s.args.join(" "),
                e.n_ctx,
                e.n_ctx_per_slot,
                e.n_parallel,
                e.n_batch,
                e.n_ubatch,
                e.n_threads,
                e.gpu_layers,
                e.kv_cache_type,
                s.load_seconds
            );
        }
        let _ = writeln!(o);
    }

    // Summary.
    let _ = writeln!(o, "## Summary\n");
    let _ = writeln!(
        o,
        "| Figure | Measured | Baseline (same run) | Ratio | Target | Met |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|");
    if let Some(t) = results.typing.measured() {
        let _ = writeln!(
            o,
            "| Typing: median latency of model requests (through `hearth lsp`) | {} | limit {} (changed tokens at prefill rate + generated at decode rate) | {} (median of per-request ratios) | ≤ 1.2 | {} |",
            ms(t.model_latency_p50_ms),
            ms(t.limit_p50_ms),
            r(t.latency_to_limit_p50),
            met(check(t.latency_to_limit_p50, |v| v <= 1.2))
        );
        let _ = writeln!(
            o,
            "| Typing: tokens evaluated / prompt tokens (median) | {} of {} | whole prompt | {} | ≤ 5 % | {} |",
            tokens(t.evaluated_p50),
            tokens(t.prompt_tokens_p50),
            pct(t.evaluated_to_prompt_p50),
            met(check(t.evaluated_to_prompt_p50, |v| v <= 0.05))
        );
        let _ = writeln!(
            o,
            "| Typing: same prompts with KV reuse vs. without (sidecar, median) | {} | {} without reuse | {}× faster | > 1 | {} |",
            ms(t.replay_reuse_p50_ms),
            ms(t.replay_cold_p50_ms),
            r(t.replay_cold_to_reuse),
            met(check(t.replay_cold_to_reuse, |v| v > 1.0))
        );
        match (&t.peer_comparison, &t.peer_error) {
            (Some(c), _) => {
                let _ = writeln!(
                    o,
                    "| Typing vs. the peer: median latency at the same {} request points (Hearth: model or typed-along) | {} | {} llama-server `/completion`, `cache_prompt` | {} (paired: {}) | ≤ 1.0 | {} |",
                    c.points,
                    ms(c.hearth_p50_ms),
                    ms(c.peer_p50_ms),
                    r(c.ratio),
                    r(c.paired_ratio_p50),
                    met(check(c.ratio, |v| v <= 1.0))
                );
                let _ = writeln!(
                    o,
                    "| Typing vs. the peer: the {} model requests only (same prompts on both engines) | {} | {} | {} (paired: {}) | ≤ 1.0 | {} |",
                    c.model_points,
                    ms(c.hearth_model_p50_ms),
                    ms(c.peer_model_p50_ms),
                    r(c.model_ratio),
                    r(c.model_paired_ratio_p50),
                    met(check(c.model_ratio, |v| v <= 1.0))
                );
            }
            (None, Some(error)) => {
                let _ = writeln!(
                    o,
                    "| Typing vs. the peer (llama-server) | **failed**: `{}` | — | — | ≤ 1.0 | n/a |",
                    crate::procs::tail(error, 1).replace('`', "'").replace('|', "/")
                );
            }
            (None, None) => {
                let _ = writeln!(
                    o,
                    "| Typing vs. the peer (llama-server) | not measured: {} | — | — | ≤ 1.0 | n/a |",
                    t.peer_note.replace('`', "'").replace('|', "/")
                );
            }
        }
    }
    if let Some(v) = results.overhead.measured() {
        let _ = writeln!(
            o,
            "| Sidecar decode speed (client side, IPC included) | {} | {} plain llama-cpp-2 loop | {} | ≥ 0.97 | {} |",
            tps(v.sidecar_decode_tps),
            tps(v.in_process_decode_tps),
            r(v.decode_ratio),
            met(check(v.decode_ratio, |x| x >= 0.97).filter(|_| v.comparable))
        );
        let _ = writeln!(
            o,
            "| Sidecar prefill speed (client side) | {} | {} plain loop | {} | (≥ 0.97) | {} |",
            tps(v.sidecar_prefill_tps),
            tps(v.in_process_prefill_tps),
            r(v.prefill_ratio),
            met(check(v.prefill_ratio, |x| x >= 0.97).filter(|_| v.comparable))
        );
        let _ = writeln!(
            o,
            "| IPC round trip p50 (stats / tokenize) | {} / {} | — | — | negligible | — |",
            ms(v.stats_round_trip_p50_ms),
            ms(v.tokenize_round_trip_p50_ms)
        );
    }
    if let Some(c) = results.concurrency.measured() {
        let one = c.levels.iter().find(|l| l.clients == 1);
        let most = c.levels.iter().max_by_key(|l| l.clients);
        if let (Some(one), Some(most)) = (one, most) {
            let _ = writeln!(
                o,
                "| Throughput with {} clients | {} | {} with 1 client | {}× | ≥ 3× | {} |",
                most.clients,
                tps(most.throughput_tokens_per_second),
                tps(one.throughput_tokens_per_second),
                r(c.scaling_ratio),
                met(check(c.scaling_ratio, |x| x >= 3.0))
            );
        }
        let _ = writeln!(
            o,
            "| Interactive latency p50 while background jobs run | {} | {} without them | {} | held (≤ 1.5, our reading) | {} |",
            ms(c.interactive_loaded_p50_ms),
            ms(c.interactive_alone_p50_ms),
            r(c.loaded_ratio),
            met(check(c.loaded_ratio, |x| x <= 1.5))
        );
    }
    if let Some(x) = results.context.measured() {
        if let Some(ctags) = &x.ctags {
            let _ = writeln!(
                o,
                "| Index build, {} Rust files | {} | {} `ctags -L` same files | {} | ≤ 1.0 | {} |",
                x.files_indexed,
                ms(x.build_ms),
                ms(ctags.list_ms),
                r(x.build_to_ctags_ratio),
                met(check(x.build_to_ctags_ratio, |v| v <= 1.0))
            );
        }
        let _ = writeln!(
            o,
            "| Context selection p50 / p99 ({} cursors) | {} / {} | — | — | ≤ 5 ms / ≤ 25 ms | {} |",
            x.selections,
            ms(x.select_p50_ms),
            ms(x.select_p99_ms),
            met(Some(x.select_p50_ms <= 5.0 && x.select_p99_ms <= 25.0))
        );
        let _ = writeln!(
            o,
            "| Index memory (RSS delta), {} files | {} | — | — | ≤ 300 MB for tens of thousands of files | {} |",
            x.files_indexed,
            bytes(x.resident_delta_bytes as f64),
            if x.files_indexed >= 10_000 {
                met(Some(x.resident_delta_bytes as f64 <= 300e6))
            } else {
                "n/a (fewer files)"
            }
        );
    }
    if let Some(l) = results.long_context.measured() {
        if let Some(last) = l.points.last() {
            let worst = l
                .points
                .iter()
                .map(|p| p.follow_evaluated_tokens)
                .max()
                .unwrap_or(0);
            let _ = writeln!(
                o,
                "| Long context: follow-up after one appended line at {} tokens | {} ({} evaluated; worst over sizes {}) | {} cold | {} | evaluated stays small | {} |",
                last.prompt_tokens,
                ms(last.follow_client_ttft_ms),
                last.follow_evaluated_tokens,
                worst,
                ms(last.cold_client_ttft_ms),
                r(last.follow_to_cold_ratio),
                met(Some(worst <= 32))
            );
        }
    }
    let _ = writeln!(o);

    // Section 1.
    let _ = writeln!(o, "## 1. Typing session through `hearth lsp`\n");
    if section_status(&mut o, &results.typing) {
        if let Some(t) = results.typing.measured() {
            let c = &t.calibration;
            let _ = writeln!(
                o,
                "The last lines of `tests/fixtures/shop/{}` are removed and typed back: {} keystrokes ({} characters; \
                 auto-indent after Enter is one edit), `didChange` per keystroke, `textDocument/inlineCompletion` every \
                 second keystroke and at the start of each line ({} requests), each answer awaited. The server runs with \
                 `debounceMs: 0` and starts its own sidecar (private `HEARTH_RUNTIME_DIR`). Per-request server numbers come \
                 from `hearth/stats` after each request.\n",
                t.file,
                t.keystrokes,
                t.typed_characters,
                t.requests.len()
            );
            let _ = writeln!(
                o,
                "Calibration through the same sidecar, side by side with the session: a probe before the first request, \
                 after every few model requests and after the last, each evaluating the current prompt cold (prefill rate) \
                 and generating from it (decode rate). Probes: {}; medians: prefill {}, decode {}. The limit of a request is \
                 changed prompt tokens / prefill rate + generated tokens / decode rate, with the median rates of the three \
                 probes nearest to it; changed = the tokens after the common prefix with the previous model request's \
                 prompt.\n",
                c.probes
                    .iter()
                    .map(|p| format!(
                        "{:.0}/{:.0} tok/s ({} tokens)",
                        p.prefill_tokens_per_second.unwrap_or(f64::NAN),
                        p.decode_tokens_per_second.unwrap_or(f64::NAN),
                        p.prompt_tokens
                    ))
                    .collect::<Vec<_>>()
                    .join(", "),
                tps(c.prefill_rate),
                tps(c.decode_rate)
            );
            let _ = writeln!(o, "| | value |\n|---|---|");
            let _ = writeln!(
                o,
                "| Requests: model / model but empty answer / typed-along cache / other | {} / {} / {} / {} |",
                t.model_requests - t.empty,
                t.empty,
                t.typed_along,
                t.requests.len() - t.model_requests - t.typed_along
            );
            let _ = writeln!(
                o,
                "| Latency, all requests, p50 / p90 | {} / {} |",
                ms(t.latency_p50_ms),
                ms(t.latency_p90_ms)
            );
            let _ = writeln!(
                o,
                "| Latency, model requests, p50 / p90 | {} / {} |",
                ms(t.model_latency_p50_ms),
                ms(t.model_latency_p90_ms)
            );
            let _ = writeln!(
                o,
                "| Sidecar time per model request, p50 (`total_ms`) | {} |",
                ms(t.server_total_p50_ms)
            );
            let _ = writeln!(o, "| Limit p50 | {} |", ms(t.limit_p50_ms));
            let _ = writeln!(o, "| Latency / limit, median | {} |", r(t.latency_to_limit_p50));
            let _ = writeln!(
                o,
                "| Prompt tokens p50; evaluated tokens p50; evaluated / prompt p50 | {}; {}; {} |",
                r(t.prompt_tokens_p50),
                r(t.evaluated_p50),
                pct(t.evaluated_to_prompt_p50)
            );
            let _ = writeln!(
                o,
                "| Prompt reconstruction matches the server's token count | {} of {} model requests |",
                t.reconstruction_matches, t.model_requests
            );
            let _ = writeln!(
                o,
                "| Cache on vs off on the same {} prompts (sidecar directly), p50 | {} vs {} ({}×) |\n",
                t.replay.len(),
                ms(t.replay_reuse_p50_ms),
                ms(t.replay_cold_p50_ms),
                r(t.replay_cold_to_reuse)
            );
            let _ = writeln!(
                o,
                "The cache-off run drives the sidecar directly with `CompletionParams.reuse_cache = false` on prompts rebuilt the \
                 way `lsp/src/pipeline.rs` builds them (the LSP has no setting to turn reuse off); each pair first warms a slot \
                 with the previous request's prompt, then times this prompt with reuse, then cold.\n"
            );
            peer_section(&mut o, t);
            let _ = writeln!(o, "![typing latency]({typing_svg})\n");
            if !t.server_messages.is_empty() {
                let _ = writeln!(o, "Server messages: {}\n", t.server_messages.join(" | "));
            }
        }
    }

    // Section 2.
    let _ = writeln!(o, "## 2. Sidecar overhead\n");
    if section_status(&mut o, &results.overhead) {
        if let Some(v) = results.overhead.measured() {
            let _ = writeln!(
                o,
                "The same cold prompt ({} tokens of this repository's Rust sources) and {} greedy tokens, through \
                 `SidecarClient` (streamed; times taken by the client, IPC included) and through a plain llama-cpp-2 loop in \
                 the benchmark process with the sidecar's settings ({} threads, same context, batch and KV type), alternating \
                 ABBA over {} repetitions after one warm-up each. Prefill speed = prompt tokens / time to first token; decode \
                 speed = (generated − 1) / (last token − first token). Same generated text: {}.{}\n",
                v.prompt_tokens,
                v.generate_tokens,
                v.threads,
                v.sidecar_runs.len(),
                if v.same_output { "yes" } else { "no" },
                if v.note.is_empty() { String::new() } else { format!(" **Note:** {}", v.note) }
            );
            let _ = writeln!(
                o,
                "| | sidecar (median) | plain loop (median) | ratio (median of back-to-back pair ratios) |\n|---|---|---|---|"
            );
            let _ = writeln!(
                o,
                "| Decode | {} | {} | {} |",
                tps(v.sidecar_decode_tps),
                tps(v.in_process_decode_tps),
                r(v.decode_ratio)
            );
            let _ = writeln!(
                o,
                "| Prefill | {} | {} | {} |",
                tps(v.sidecar_prefill_tps),
                tps(v.in_process_prefill_tps),
                r(v.prefill_ratio)
            );
            let runs = |f: &dyn Fn(usize) -> Option<f64>| -> String {
                (0..v.sidecar_runs.len().max(v.in_process_runs.len()))
                    .filter_map(f)
                    .map(|x| format!("{x:.0}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                o,
                "\nRuns (decode tok/s): sidecar {}; plain loop {}. Sidecar's own metrics (decode): {}.\n",
                runs(&|i| v.sidecar_runs.get(i).map(|r| r.client_decode_tokens_per_second)),
                runs(&|i| v.in_process_runs.get(i).map(|r| r.decode_tokens_per_second)),
                runs(&|i| v.sidecar_runs.get(i).map(|r| r.server_decode_tokens_per_second)),
            );
            let _ = writeln!(
                o,
                "IPC round trip: `stats` p50 {} (p90 {}), `tokenize` p50 {} (p90 {}).\n",
                ms(v.stats_round_trip_p50_ms),
                ms(v.stats_round_trip_p90_ms),
                ms(v.tokenize_round_trip_p50_ms),
                ms(v.tokenize_round_trip_p90_ms)
            );
        }
    }

    // Section 3.
    let _ = writeln!(o, "## 3. Concurrency\n");
    if section_status(&mut o, &results.concurrency) {
        if let Some(c) = results.concurrency.measured() {
            let _ = writeln!(
                o,
                "One sidecar with {} slots ({} tokens each). Each client is its own connection sending {} completion(s) one \
                 after another: about {} prompt tokens (distinct prompts cut from different places of the repository's \
                 sources) and up to {} generated tokens each, greedy. Throughput = generated tokens of all clients / wall time. \
                 Baseline: one client on the same sidecar.\n",
                c.n_parallel, c.n_ctx_per_slot, c.requests_per_client, c.prompt_tokens, c.generate_tokens
            );
            let _ = writeln!(
                o,
                "| Clients | Requests | Wall | Generated | Throughput | Latency p50 | p90 |"
            );
            let _ = writeln!(o, "|---|---|---|---|---|---|---|");
            for l in &c.levels {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    l.clients,
                    l.requests,
                    ms(l.wall_ms),
                    l.generated_tokens,
                    tps(l.throughput_tokens_per_second),
                    ms(l.latency_p50_ms),
                    ms(l.latency_p90_ms)
                );
            }
            let _ = writeln!(
                o,
                "\nThroughput with {} clients / 1 client: **{}×**.\n",
                c.scaling_clients,
                r(c.scaling_ratio)
            );
            if let Some(error) = &c.plain_error {
                let _ = writeln!(o, "Plain batched loop not measured: {error}.\n");
            } else if !c.plain_levels.is_empty() {
                let _ = writeln!(
                    o,
                    "What batching itself gives here: a plain llama-cpp-2 loop with the same model, context, threads and \
                     slots decodes the same kind of prompts together (prefill packed, then one token per sequence per \
                     step; no sidecar, no IPC, no scheduling):\n"
                );
                let _ = writeln!(o, "| Sequences | Generated | Wall | Throughput |");
                let _ = writeln!(o, "|---|---|---|---|");
                for l in &c.plain_levels {
                    let _ = writeln!(
                        o,
                        "| {} | {} | {} | {} |",
                        l.sequences,
                        l.generated_tokens,
                        ms(l.wall_ms),
                        tps(l.throughput_tokens_per_second)
                    );
                }
                let _ = writeln!(
                    o,
                    "\nPlain loop, {} sequences / 1: **{}×**; the sidecar's scaling is **{}×** of that.\n",
                    c.scaling_clients,
                    r(c.plain_scaling_ratio),
                    r(c.scaling_vs_plain)
                );
            }
            let _ = writeln!(
                o,
                "Interactive latency with background jobs ({}; {} finished, {} tokens) vs. without, same prompts evaluated cold, \
                 rounds alternated: p50 {} vs {} (**{}×**), p90 {} vs {}.\n",
                c.background_kind,
                c.background_requests_finished,
                c.background_tokens_generated,
                ms(c.interactive_loaded_p50_ms),
                ms(c.interactive_alone_p50_ms),
                r(c.loaded_ratio),
                ms(c.interactive_loaded_p90_ms),
                ms(c.interactive_alone_p90_ms)
            );
        }
    }

    // Section 4.
    let _ = writeln!(o, "## 4. Context engine (`hearth-context`)\n");
    if section_status(&mut o, &results.context) {
        if let Some(x) = results.context.measured() {
            let _ = writeln!(
                o,
                "Rust files under `{}`{}; {} build of `hearth-context`{}.\n",
                x.root,
                x.subset_of_files
                    .map(|n| format!(" (a copy of the first {n} files in sorted order)"))
                    .unwrap_or_default(),
                if x.optimized_build {
                    "release"
                } else {
                    "dev-profile"
                },
                if x.optimized_build {
                    ""
                } else {
                    " (`hearth-context` and `hearth-grammars` are optimised even there, opt-level 2, with debug assertions on; \
                     `cargo run --release -p hearth-benches --bin hearth-bench -- --sections context` measures the release build)"
                }
            );
            let _ = writeln!(o, "| | value |\n|---|---|");
            let _ = writeln!(
                o,
                "| Files / source / definitions / similarity windows | {} / {} / {} / {} |",
                x.files_indexed,
                bytes(x.source_bytes as f64),
                x.definitions,
                x.windows
            );
            let _ = writeln!(
                o,
                "| Index build (walk + parse, all cores) | {} |",
                ms(x.build_ms)
            );
            match &x.ctags {
                Some(ctags) => {
                    let _ = writeln!(
                        o,
                        "| {} on the same files: `-L` list / `-R` walk (one thread) | {} / {} ({} tags) |",
                        ctags.version,
                        ms(ctags.list_ms),
                        ms(ctags.recursive_ms),
                        ctags.tags
                    );
                    let _ = writeln!(o, "| Build / ctags `-L` | {} |", r(x.build_to_ctags_ratio));
                }
                None => {
                    let _ = writeln!(o, "| ctags | not measured: {} |", x.ctags_note);
                }
            }
            let _ = writeln!(
                o,
                "| Resident memory delta of the build | {} |",
                bytes(x.resident_delta_bytes as f64)
            );
            let _ = writeln!(
                o,
                "| Selection ({} random cursors, 2048-token budget) p50 / p90 / p99 / max | {} / {} / {} / {} |",
                x.selections,
                ms(x.select_p50_ms),
                ms(x.select_p90_ms),
                ms(x.select_p99_ms),
                ms(x.select_max_ms)
            );
            let _ = writeln!(
                o,
                "| Snippets / tokens per selection (average) | {:.1} / {:.0} |",
                x.average_snippets, x.average_tokens
            );
            let _ = writeln!(
                o,
                "| Incremental update (`update_file` with one inserted line, {} files) p50 / p99 | {} / {} |\n",
                x.updates,
                ms(x.update_p50_ms),
                ms(x.update_p99_ms)
            );
        }
    }

    // Section 5.
    let _ = writeln!(o, "## 5. Long context\n");
    if section_status(&mut o, &results.long_context) {
        if let Some(l) = results.long_context.measured() {
            let _ = writeln!(
                o,
                "Prompts of growing size (this repository's Rust sources), each cold (`reuse_cache = false`), then the same \
                 prompt with one line appended (reuse on). Sizes stop at {} tokens: {}. Resident memory of the sidecar \
                 before the first prompt: {}.\n",
                l.cap_tokens,
                l.cap_reason,
                bytes(l.resident_bytes_idle as f64)
            );
            let _ = writeln!(
                o,
                "| Prompt tokens | Cold: first token | prefill | tok/s | Sidecar RSS after | Follow-up: first token | reused / evaluated | follow-up / cold |"
            );
            let _ = writeln!(o, "|---|---|---|---|---|---|---|---|");
            for p in &l.points {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {} | {} / {} | {} |",
                    p.prompt_tokens,
                    ms(p.cold_client_ttft_ms),
                    ms(p.cold_server_prefill_ms),
                    tps(p.cold_prefill_tokens_per_second),
                    bytes(p.resident_bytes_after as f64),
                    ms(p.follow_client_ttft_ms),
                    p.follow_reused_tokens,
                    p.follow_evaluated_tokens,
                    r(p.follow_to_cold_ratio)
                );
            }
            if let Some(stopped) = &l.stopped {
                let _ = writeln!(o, "\n{stopped}.");
            }
            let _ = writeln!(o, "\n![prefill vs size]({long_svg})\n");
        }
    }

    let _ = writeln!(o, "## Checks\n");
    let _ = writeln!(
        o,
        "Functional checks (never timings); a failed one makes the run exit non-zero.\n"
    );
    for c in &results.checks {
        let _ = writeln!(
            o,
            "- [{}] {}: {}",
            if c.passed { "x" } else { " " },
            c.name,
            c.detail
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "## Not measured here\n\n- lsp-ai (the other peer: in-process llama.cpp with a new context per request) is not \
         built by this benchmark. llama.cpp's `llama-server` is measured side by side in section 1 when its binary is \
         present (`tests/install-llama-server.sh`); the other baselines are the computed limit, the cache-off replay and \
         the plain llama-cpp-2 loop, all measured in this run.\n- Quick mode (`--quick`) runs one or two samples per \
         figure: it keeps the harness from rotting, its ratios are not evidence."
    );
    o
}

/// Section 1's part on the peer: llama.cpp's own server on the same request points.
fn peer_section(o: &mut String, t: &crate::typing::TypingResult) {
    let _ = writeln!(o, "### The peer: llama.cpp's `llama-server`\n");
    let (Some(peer), Some(c)) = (&t.peer, &t.peer_comparison) else {
        let why = t.peer_error.as_deref().unwrap_or(&t.peer_note);
        let _ = writeln!(
            o,
            "Not measured: {}\n",
            why.replace('`', "'").lines().collect::<Vec<_>>().join(" ")
        );
        return;
    };
    let _ = writeln!(
        o,
        "`{}` ({}), started with the sidecar's settings (`{}`; loaded in {:.1} s) and its slot warmed, untimed, with \
         the prompt Hearth's slot held before the first keystroke ({} tokens, {} cold). At every request point where \
         Hearth answered — from the model or from its typed-along cache — the peer is asked right after Hearth's \
         answer (so both see the same machine load, each running while the other is idle): `POST /completion` with \
         the token ids Hearth's sidecar evaluates there (rebuilt as for the cache-off replay), `cache_prompt: true`, \
         `temperature: 0`, the same `n_predict` and stop strings. Times are client side (a fresh loopback connection \
         per request, answer read whole).\n",
        peer.program,
        peer.version,
        peer.args.join(" "),
        peer.load_seconds,
        peer.warm_prompt_tokens,
        ms(peer.warm_ms)
    );
    let _ = writeln!(
        o,
        "| | Hearth (`hearth lsp`) | peer (llama-server) | Hearth / peer: of the medians; median of per-point ratios |\n|---|---|---|---|"
    );
    let _ = writeln!(
        o,
        "| Median latency, {} request points | {} | {} | {}; {} |",
        c.points,
        ms(c.hearth_p50_ms),
        ms(c.peer_p50_ms),
        r(c.ratio),
        r(c.paired_ratio_p50)
    );
    let _ = writeln!(
        o,
        "| Median latency, the {} model requests | {} | {} | {}; {} |",
        c.model_points,
        ms(c.hearth_model_p50_ms),
        ms(c.peer_model_p50_ms),
        r(c.model_ratio),
        r(c.model_paired_ratio_p50)
    );
    let _ = writeln!(
        o,
        "| Generated tokens p50 (model requests) | {} | {} | |",
        tokens(c.hearth_generated_p50),
        tokens(c.peer_generated_p50)
    );
    let _ = writeln!(
        o,
        "| Prompt tokens evaluated p50 (all points) | {} (model requests) | {} | |",
        r(t.evaluated_p50),
        r(peer.evaluated_p50)
    );
    let _ = writeln!(
        o,
        "| Same prompt token count as Hearth's sidecar (model requests) | | {} of {} | |",
        c.prompt_tokens_agree, c.model_points
    );
    let _ = writeln!(o, "| Peer latency p90 | | {} | |\n", ms(peer.p90_ms));
}
