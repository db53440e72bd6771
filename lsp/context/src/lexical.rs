//! Lexical tokens: identifiers scanned without a parser, hashed for the similarity index.

/// Byte classes for [`identifier_ranges`]: bit 0 starts a word (`[A-Za-z_$]`), bit 1
/// continues a word (`[A-Za-z0-9_$]`), bit 2 continues a number (`[A-Za-z0-9_]`).
const WORD_START: u8 = 1;
const WORD_CONTINUE: u8 = 2;
const NUMBER_CONTINUE: u8 = 4;
const BYTE_CLASSES: [u8; 256] = {
    let mut classes = [0u8; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        let alphabetic = b.is_ascii_alphabetic();
        let mut class = 0;
        if alphabetic || b == b'_' || b == b'$' {
            class |= WORD_START | WORD_CONTINUE;
        }
        if b.is_ascii_digit() {
            class |= WORD_CONTINUE;
        }
        if alphabetic || b.is_ascii_digit() || b == b'_' {
            class |= NUMBER_CONTINUE;
        }
        classes[byte] = class;
        byte += 1;
    }
    classes
};

/// Byte ranges of identifier-like words (`[A-Za-z_$][A-Za-z0-9_$]*`, ASCII) in `text`.
pub(crate) fn identifier_ranges(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let bytes = text.as_bytes();
    let mut position = 0;
    let class = |byte: u8| BYTE_CLASSES[byte as usize];
    std::iter::from_fn(move || {
        while position < bytes.len() {
            let byte = bytes[position];
            if class(byte) & WORD_START != 0 {
                let start = position;
                position += 1;
                while position < bytes.len() && class(bytes[position]) & WORD_CONTINUE != 0 {
                    position += 1;
                }
                return Some((start, position));
            }
            if byte.is_ascii_digit() {
                // Skip numbers and their suffixes (`0x1f`, `10u32`) as one unit.
                while position < bytes.len() && class(bytes[position]) & NUMBER_CONTINUE != 0 {
                    position += 1;
                }
                continue;
            }
            position += 1;
        }
        None
    })
}

/// Words shorter than this are not similarity tokens (`i`, `x`, `if`, `fn`).
pub(crate) const MIN_SIMILARITY_TOKEN_LENGTH: usize = 3;

/// FNV-1a, 64 bits: token identity for the similarity index (no token strings are stored).
pub(crate) fn token_hash(token: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in token.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Sorted, distinct similarity-token hashes of `text`, skipping the word at
/// `excluded_range` (the word being typed at the cursor).
pub(crate) fn similarity_tokens(text: &str, excluded_range: Option<(usize, usize)>) -> Vec<u64> {
    let mut hashes: Vec<u64> = identifier_ranges(text)
        .filter(|&(start, end)| end - start >= MIN_SIMILARITY_TOKEN_LENGTH)
        .filter(|&range| Some(range) != excluded_range)
        .map(|(start, end)| token_hash(&text[start..end]))
        .collect();
    hashes.sort_unstable();
    hashes.dedup();
    hashes
}

/// Content hash of a whole file (FNV-1a over 8-byte words, then the tail).
pub(crate) fn content_hash(text: &str) -> u64 {
    let bytes = text.as_bytes();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ (bytes.len() as u64);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        hash ^= u64::from_le_bytes(word);
        hash = hash.wrapping_mul(0x0100_0000_01b3).rotate_left(23);
    }
    for &byte in chunks.remainder() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<&str> {
        identifier_ranges(text)
            .map(|(start, end)| &text[start..end])
            .collect()
    }

    #[test]
    fn identifiers_skip_numbers_and_punctuation() {
        assert_eq!(
            words("let x1 = foo_bar(0x1f, 10u32) + $el.é_y;"),
            vec!["let", "x1", "foo_bar", "$el", "_y"]
        );
        assert_eq!(words(""), Vec::<&str>::new());
    }

    #[test]
    fn similarity_tokens_are_distinct_and_skip_short_and_excluded_words() {
        let text = "fn parse(parse: Config) -> Config { xy }";
        let tokens = similarity_tokens(text, None);
        let mut expected = vec![token_hash("parse"), token_hash("Config")];
        expected.sort_unstable();
        assert_eq!(tokens, expected);
        let without_config = similarity_tokens("Config parse", Some((0, 6)));
        assert_eq!(without_config, vec![token_hash("parse")]);
    }

    #[test]
    fn content_hash_differs_on_one_byte() {
        assert_ne!(content_hash("fn main() {}"), content_hash("fn main() {}\n"));
        assert_ne!(content_hash("abcdefgh1"), content_hash("abcdefgh2"));
        assert_eq!(content_hash("same text"), content_hash("same text"));
    }
}
