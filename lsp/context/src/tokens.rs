//! Token counting for the context budget.

/// Counts the tokens of a text for budgeting. The language server passes the model's real
/// tokenizer; tests and the CLI may use [`EstimateTokenCounter`].
pub trait TokenCounter {
    fn count(&self, text: &str) -> usize;
}

/// Fast estimate: one token per 3.5 bytes of UTF-8, rounded up (`ceil(bytes * 2 / 7)`).
///
/// Code tokenizers average 3–4 bytes per token on source code; 3.5 errs on the side of
/// counting slightly more tokens than a real tokenizer for typical code. The estimate is
/// subadditive (`count(a + b) <= count(a) + count(b)`), so a concatenation of snippets
/// never counts more than the sum of their counts.
#[derive(Debug, Clone, Copy, Default)]
pub struct EstimateTokenCounter;

impl TokenCounter for EstimateTokenCounter {
    fn count(&self, text: &str) -> usize {
        (text.len() * 2).div_ceil(7)
    }
}

impl<F: Fn(&str) -> usize> TokenCounter for F {
    fn count(&self, text: &str) -> usize {
        self(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_rounds_up_bytes_over_three_and_a_half() {
        let counter = EstimateTokenCounter;
        assert_eq!(counter.count(""), 0);
        assert_eq!(counter.count("a"), 1);
        assert_eq!(counter.count("abc"), 1);
        assert_eq!(counter.count("abcd"), 2);
        assert_eq!(counter.count("abcdefg"), 2);
        assert_eq!(counter.count("abcdefgh"), 3);
        assert_eq!(counter.count(&"x".repeat(700)), 200);
        // Multi-byte characters count by bytes: "é" is 2 bytes.
        assert_eq!(counter.count("éé"), 2);
    }

    #[test]
    fn closures_are_token_counters() {
        let words = |text: &str| text.split_whitespace().count();
        assert_eq!(words.count("fn main ( )"), 4);
    }
}
