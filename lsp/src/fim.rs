//! Fill-in-the-middle layout, read from the model's FIM tokens (provisional: generic PSM; the
//! per-family layouts live in `hearth-completion`).

use hearth_protocol::{ModelInfo, PromptPart, SpecialToken};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FimFormat {
    /// `<pre> prefix <suf> suffix <mid>`.
    PrefixSuffixMiddle,
}

impl FimFormat {
    pub fn from_model(model: &ModelInfo) -> Option<FimFormat> {
        model.fim.can_infill().then_some(FimFormat::PrefixSuffixMiddle)
    }

    pub fn name(&self) -> &'static str {
        "fim-psm"
    }

    pub fn parts(&self, _path: &str, prefix: &str, suffix: &str, _model: &ModelInfo) -> Vec<PromptPart> {
        vec![
            PromptPart::Special(SpecialToken::FimPre),
            PromptPart::Text(prefix.to_string()),
            PromptPart::Special(SpecialToken::FimSuf),
            PromptPart::Text(suffix.to_string()),
            PromptPart::Special(SpecialToken::FimMid),
        ]
    }
}

/// Stop a multi-line suggestion at the first line indented less than the cursor's line.
pub fn cut_at_dedent(text: &str, prefix: &str) -> String {
    let line_before = prefix.rsplit('\n').next().unwrap_or("");
    let base_indent = line_before.len() - line_before.trim_start().len();
    let mut out = String::new();
    for (index, line) in text.split('\n').enumerate() {
        let indent = line.len() - line.trim_start().len();
        if index > 0 && !line.trim().is_empty() && indent < base_indent {
            break;
        }
        if index > 0 {
            out.push('\n');
        }
        out.push_str(line);
    }
    out
}
