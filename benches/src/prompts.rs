//! Prompt texts of a given size in tokens, cut from real source code at line boundaries and
//! measured with the model's own tokenizer (through the sidecar).

use hearth_protocol::SidecarClient;

/// A prefix of `corpus` (repeated when too short) ending at a line break, about `target` tokens
/// long. Returns the text and its exact token count (without BOS).
pub async fn text_with_tokens(
    client: &SidecarClient,
    corpus: &str,
    target: usize,
) -> anyhow::Result<(String, usize)> {
    let sample_len = corpus.len().min(32 * 1024);
    let sample = cut_at_line(corpus, sample_len);
    let (counts, _) = client.tokenize(vec![sample.to_string()], true).await?;
    let bytes_per_token = sample.len() as f64 / f64::from(counts[0].max(1));
    let mut source = corpus.to_string();
    let mut guess = (target as f64 * bytes_per_token) as usize;
    let mut best: Option<(String, usize)> = None;
    for _ in 0..6 {
        while source.len() < guess + 1024 {
            source.push_str(corpus);
        }
        let text = cut_at_line(&source, guess.max(1)).to_string();
        let (counts, _) = client.tokenize(vec![text.clone()], true).await?;
        let count = counts[0] as usize;
        let error = count.abs_diff(target);
        if best.as_ref().is_none_or(|(_, c)| error < c.abs_diff(target)) {
            best = Some((text.clone(), count));
        }
        if error * 50 <= target.max(50) {
            break;
        }
        guess = ((guess as f64) * target as f64 / count.max(1) as f64) as usize;
    }
    best.ok_or_else(|| anyhow::anyhow!("could not build a prompt"))
}

/// The longest prefix of `text` no longer than `len` bytes that ends with a line break (or at a
/// char boundary when there is none).
pub fn cut_at_line(text: &str, len: usize) -> &str {
    if len >= text.len() {
        return text;
    }
    let mut end = len;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    match text[..end].rfind('\n') {
        Some(newline) if newline > 0 => &text[..=newline],
        _ => &text[..end],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_at_a_line_break() {
        assert_eq!(cut_at_line("ab\ncd\nef", 7), "ab\ncd\n");
        assert_eq!(cut_at_line("ab\ncd\nef", 100), "ab\ncd\nef");
        assert_eq!(cut_at_line("abcdef", 3), "abc");
    }
}
