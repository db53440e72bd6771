//! Suggestions reused without a model call: an LRU of recent answers, and "typing along" a
//! suggestion that is still on screen.

use std::collections::hash_map::DefaultHasher;
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};

/// Identifies one completion situation: the document and the exact text around the cursor.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub uri: String,
    pub prefix_hash: u64,
    pub suffix_hash: u64,
}

impl CacheKey {
    /// `prefix`/`suffix` are the texts the prompt was built from (after clipping), so that two
    /// situations with the same prompt share an entry.
    pub fn new(uri: &str, prefix: &str, suffix: &str) -> CacheKey {
        CacheKey {
            uri: uri.to_owned(),
            prefix_hash: hash_text(prefix),
            suffix_hash: hash_text(suffix),
        }
    }
}

/// A stable-within-the-process hash (std's SipHash with fixed keys).
fn hash_text(text: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

/// A small least-recently-used map from [`CacheKey`] to a suggestion. Linear scans: it is meant
/// to hold tens of entries.
#[derive(Debug, Clone)]
pub struct SuggestionCache {
    capacity: usize,
    /// Most recently used first.
    entries: VecDeque<(CacheKey, String)>,
}

impl SuggestionCache {
    pub fn new(capacity: usize) -> SuggestionCache {
        SuggestionCache {
            capacity,
            entries: VecDeque::with_capacity(capacity),
        }
    }

    /// The suggestion for `key`, marking it most recently used.
    pub fn get(&mut self, key: &CacheKey) -> Option<&str> {
        let index = self.entries.iter().position(|(entry_key, _)| entry_key == key)?;
        let entry = self.entries.remove(index)?;
        self.entries.push_front(entry);
        self.entries.front().map(|(_, suggestion)| suggestion.as_str())
    }

    /// Stores `suggestion` for `key`, evicting the least recently used entry when full.
    pub fn insert(&mut self, key: CacheKey, suggestion: String) {
        if self.capacity == 0 {
            return;
        }
        if let Some(index) = self.entries.iter().position(|(entry_key, _)| *entry_key == key) {
            self.entries.remove(index);
        }
        while self.entries.len() >= self.capacity {
            self.entries.pop_back();
        }
        self.entries.push_front((key, suggestion));
    }

    /// Drops every entry of one document (closed, or changed by something other than typing).
    pub fn remove_document(&mut self, uri: &str) {
        self.entries.retain(|(key, _)| key.uri != uri);
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// What is left of a shown suggestion after the user typed more.
///
/// `prev_prefix` is the text before the cursor when `prev_suggestion` was made, `new_prefix` the
/// text before the cursor now (both must reach back to the same point, e.g. the document start or
/// the same line start). When the user typed exactly the start of the suggestion, the rest is
/// returned and no model call is needed. `None` when they typed something else, deleted text
/// (backspace: the LRU may still have the older position), typed the whole suggestion or past it,
/// or only whitespace would remain.
///
/// The suffix is not compared: the caller must check it did not change (an editor that
/// auto-closes `(` changes the suffix, not the prefix).
pub fn continue_from_previous(prev_prefix: &str, prev_suggestion: &str, new_prefix: &str) -> Option<String> {
    let typed = new_prefix.strip_prefix(prev_prefix)?;
    let rest = prev_suggestion.strip_prefix(typed)?;
    if rest.trim().is_empty() {
        return None;
    }
    Some(rest.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_along_cases() {
        let prefix = "fn main() {\n    let total = ";
        let cases: &[(&str, &str, &str, Option<&str>)] = &[
            // (previous prefix, previous suggestion, new prefix, expected rest)
            (prefix, "items.len();", prefix, Some("items.len();")),
            (
                prefix,
                "items.len();",
                "fn main() {\n    let total = i",
                Some("tems.len();"),
            ),
            (
                prefix,
                "items.len();",
                "fn main() {\n    let total = items.",
                Some("len();"),
            ),
            (
                prefix,
                "items.len();",
                "fn main() {\n    let total = items.len()",
                Some(";"),
            ),
            // Typed the whole suggestion, or past its end.
            (
                prefix,
                "items.len();",
                "fn main() {\n    let total = items.len();",
                None,
            ),
            (
                prefix,
                "items.len();",
                "fn main() {\n    let total = items.len();\n",
                None,
            ),
            // Typed something else.
            (prefix, "items.len();", "fn main() {\n    let total = x", None),
            (prefix, "items.len();", "fn main() {\n    let total = I", None),
            // Backspace.
            (prefix, "items.len();", "fn main() {\n    let total =", None),
            (prefix, "items.len();", "", None),
            // Edited earlier text.
            (prefix, "items.len();", "fn main2() {\n    let total = i", None),
            // Newlines and indentation typed along a multi-line suggestion.
            ("if x {", "\n    run();\n}", "if x {\n", Some("    run();\n}")),
            ("if x {", "\n    run();\n}", "if x {\n  ", Some("  run();\n}")),
            ("if x {", "\n    run();\n}", "if x {\n    ", Some("run();\n}")),
            ("if x {", "\n    run();\n}", "if x {\n        ", None),
            ("if x {", "\n    run();\n}", "if x {\r\n", None),
            // Only whitespace would remain.
            ("x = ", "1  ", "x = 1", None),
            ("x = ", "1\n", "x = 1", None),
            // Multi-byte characters: the typed text must match whole characters.
            ("s = \"", "héllo 😀\"", "s = \"h", Some("éllo 😀\"")),
            ("s = \"", "héllo 😀\"", "s = \"hé", Some("llo 😀\"")),
            ("s = \"", "héllo 😀\"", "s = \"héllo ", Some("😀\"")),
            ("s = \"", "héllo 😀\"", "s = \"he", None),
            ("s = \"", "漢字です", "s = \"漢", Some("字です")),
            ("", "", "", None),
        ];
        for (prev_prefix, prev_suggestion, new_prefix, expected) in cases {
            assert_eq!(
                continue_from_previous(prev_prefix, prev_suggestion, new_prefix).as_deref(),
                *expected,
                "{prev_suggestion:?} after {new_prefix:?}"
            );
        }
    }

    #[test]
    fn lru_evicts_the_least_recently_used() {
        let mut cache = SuggestionCache::new(2);
        let a = CacheKey::new("file:///a.rs", "let x = ", ";");
        let b = CacheKey::new("file:///a.rs", "let y = ", ";");
        let c = CacheKey::new("file:///b.rs", "let x = ", ";");
        cache.insert(a.clone(), "1".into());
        cache.insert(b.clone(), "2".into());
        assert_eq!(cache.get(&a), Some("1")); // a is now the most recent
        cache.insert(c.clone(), "3".into()); // evicts b
        assert_eq!(cache.get(&b), None);
        assert_eq!(cache.get(&a), Some("1"));
        assert_eq!(cache.get(&c), Some("3"));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn lru_keys_distinguish_document_prefix_and_suffix() {
        let mut cache = SuggestionCache::new(8);
        cache.insert(CacheKey::new("file:///a.rs", "p", "s"), "one".into());
        assert_eq!(cache.get(&CacheKey::new("file:///a.rs", "p", "s")), Some("one"));
        assert_eq!(cache.get(&CacheKey::new("file:///b.rs", "p", "s")), None);
        assert_eq!(cache.get(&CacheKey::new("file:///a.rs", "p2", "s")), None);
        assert_eq!(cache.get(&CacheKey::new("file:///a.rs", "p", "s2")), None);
        // Re-inserting replaces without growing.
        cache.insert(CacheKey::new("file:///a.rs", "p", "s"), "two".into());
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(&CacheKey::new("file:///a.rs", "p", "s")), Some("two"));
    }

    #[test]
    fn lru_remove_document_and_zero_capacity() {
        let mut cache = SuggestionCache::new(4);
        cache.insert(CacheKey::new("file:///a.rs", "1", ""), "a1".into());
        cache.insert(CacheKey::new("file:///b.rs", "1", ""), "b1".into());
        cache.insert(CacheKey::new("file:///a.rs", "2", ""), "a2".into());
        cache.remove_document("file:///a.rs");
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get(&CacheKey::new("file:///b.rs", "1", "")), Some("b1"));
        cache.clear();
        assert!(cache.is_empty());

        let mut none = SuggestionCache::new(0);
        none.insert(CacheKey::new("file:///a.rs", "", ""), "x".into());
        assert!(none.is_empty());
    }
}
