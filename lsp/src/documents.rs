//! Open documents: ropey text, version, and position conversion in the negotiated encoding.
//!
//! LSP columns are code units of the negotiated encoding (UTF-8 bytes or UTF-16 units); ropey
//! indexes chars; tree-sitter and the prompt builder use byte offsets. Out-of-range positions are
//! clamped (to the line end, or the document end), never an error and never a panic.

use ropey::Rope;
use tower_lsp_server::lsp_types::{Position, TextDocumentContentChangeEvent};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionEncoding {
    Utf8,
    Utf16,
}

#[derive(Debug, Clone)]
pub struct Document {
    pub rope: Rope,
    pub version: i32,
    pub language_id: String,
}

/// Why an edit was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("stale edit: document is at version {current}, edit is for version {edit}")]
    Stale { current: i32, edit: i32 },
}

impl Document {
    pub fn new(text: &str, version: i32, language_id: &str) -> Document {
        Document {
            rope: Rope::from_str(text),
            version,
            language_id: language_id.to_string(),
        }
    }

    /// Apply a `didChange` in order. A change for a version not newer than ours is refused: an
    /// older edit never lands after a newer one.
    pub fn apply_changes(
        &mut self,
        version: i32,
        changes: &[TextDocumentContentChangeEvent],
        encoding: PositionEncoding,
    ) -> Result<(), EditError> {
        if version <= self.version {
            return Err(EditError::Stale {
                current: self.version,
                edit: version,
            });
        }
        for change in changes {
            match change.range {
                None => self.rope = Rope::from_str(&change.text),
                Some(range) => {
                    let start = self.position_to_char(range.start, encoding);
                    let end = self.position_to_char(range.end, encoding).max(start);
                    self.rope.remove(start..end);
                    self.rope.insert(start, &change.text);
                }
            }
        }
        self.version = version;
        Ok(())
    }

    /// Char index of an LSP position; clamps past-the-end lines and columns.
    pub fn position_to_char(&self, position: Position, encoding: PositionEncoding) -> usize {
        let rope = &self.rope;
        let line_index = position.line as usize;
        if line_index >= rope.len_lines() {
            return rope.len_chars();
        }
        let line_start_char = rope.line_to_char(line_index);
        let line = rope.line(line_index);
        // Columns never reach past the line's content (its line break excluded).
        let content_chars = line_content_chars(&line);
        let column = position.character as usize;
        let column_chars = match encoding {
            PositionEncoding::Utf8 => {
                let line_bytes = line.char_to_byte(content_chars);
                let byte = column.min(line_bytes);
                // A column inside a multi-byte char rounds down to the char start.
                line.byte_to_char(byte)
            }
            PositionEncoding::Utf16 => {
                let line_units = line.char_to_utf16_cu(content_chars);
                line.utf16_cu_to_char(column.min(line_units))
            }
        };
        line_start_char + column_chars.min(content_chars)
    }

    pub fn position_to_byte(&self, position: Position, encoding: PositionEncoding) -> usize {
        self.rope.char_to_byte(self.position_to_char(position, encoding))
    }

    pub fn char_to_position(&self, char_index: usize, encoding: PositionEncoding) -> Position {
        let char_index = char_index.min(self.rope.len_chars());
        let line_index = self.rope.char_to_line(char_index);
        let line_start_char = self.rope.line_to_char(line_index);
        let line = self.rope.line(line_index);
        let column_chars = char_index - line_start_char;
        let column = match encoding {
            PositionEncoding::Utf8 => line.char_to_byte(column_chars),
            PositionEncoding::Utf16 => line.char_to_utf16_cu(column_chars),
        };
        Position::new(line_index as u32, column as u32)
    }

    pub fn byte_to_position(&self, byte: usize, encoding: PositionEncoding) -> Position {
        let byte = byte.min(self.rope.len_bytes());
        self.char_to_position(self.rope.byte_to_char(byte), encoding)
    }

    /// Clamp a position to the document (so responses never point past it).
    pub fn clamp(&self, position: Position, encoding: PositionEncoding) -> Position {
        self.char_to_position(self.position_to_char(position, encoding), encoding)
    }

    pub fn text(&self) -> String {
        self.rope.to_string()
    }
}

fn line_content_chars(line: &ropey::RopeSlice<'_>) -> usize {
    let mut chars = line.len_chars();
    if chars > 0 && line.char(chars - 1) == '\n' {
        chars -= 1;
        if chars > 0 && line.char(chars - 1) == '\r' {
            chars -= 1;
        }
    } else if chars > 0 && line.char(chars - 1) == '\r' {
        chars -= 1;
    }
    chars
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_lsp_server::lsp_types::Range;

    fn change(range: Option<((u32, u32), (u32, u32))>, text: &str) -> TextDocumentContentChangeEvent {
        TextDocumentContentChangeEvent {
            range: range.map(|((l1, c1), (l2, c2))| Range::new(Position::new(l1, c1), Position::new(l2, c2))),
            range_length: None,
            text: text.to_string(),
        }
    }

    /// (initial text, encoding, edit range, inserted text, expected text)
    #[test]
    fn incremental_edits_land_where_they_should() {
        use PositionEncoding::*;
        type Case<'a> = (
            &'a str,
            PositionEncoding,
            ((u32, u32), (u32, u32)),
            &'a str,
            &'a str,
        );
        let cases: &[Case] = &[
            // ASCII
            (
                "fn main() {}\n",
                Utf8,
                ((0, 11), (0, 11)),
                " x ",
                "fn main() { x }\n",
            ),
            // Emoji: 4 UTF-8 bytes, 2 UTF-16 units.
            (
                "let s = \"😀\";\n",
                Utf16,
                ((0, 11), (0, 11)),
                "!",
                "let s = \"😀!\";\n",
            ),
            (
                "let s = \"😀\";\n",
                Utf8,
                ((0, 13), (0, 13)),
                "!",
                "let s = \"😀!\";\n",
            ),
            // CJK: 3 UTF-8 bytes, 1 UTF-16 unit each.
            ("名前 = 1\n", Utf16, ((0, 2), (0, 2)), "_x", "名前_x = 1\n"),
            ("名前 = 1\n", Utf8, ((0, 6), (0, 6)), "_x", "名前_x = 1\n"),
            // CRLF: columns past the line end clamp before the \r\n.
            (
                "a = 1\r\nb = 2\r\n",
                Utf8,
                ((0, 99), (0, 99)),
                ";",
                "a = 1;\r\nb = 2\r\n",
            ),
            (
                "a = 1\r\nb = 2\r\n",
                Utf16,
                ((1, 0), (1, 1)),
                "c",
                "a = 1\r\nc = 2\r\n",
            ),
            // Replace across lines.
            ("one\ntwo\nthree\n", Utf8, ((0, 1), (2, 2)), "X", "oXree\n"),
            // Past the last line: appends at the end.
            ("x\n", Utf16, ((10, 0), (10, 0)), "y", "x\ny"),
            // Column inside a multi-byte char (UTF-8) rounds down to its start.
            ("é\n", Utf8, ((0, 1), (0, 1)), "a", "aé\n"),
        ];
        for (index, (text, encoding, range, insert, expected)) in cases.iter().enumerate() {
            let mut document = Document::new(text, 1, "rust");
            document
                .apply_changes(2, &[change(Some(*range), insert)], *encoding)
                .unwrap();
            assert_eq!(document.text(), *expected, "case {index}");
        }
    }

    #[test]
    fn stale_edit_is_refused() {
        let mut document = Document::new("abc", 5, "python");
        let error = document
            .apply_changes(5, &[change(None, "zzz")], PositionEncoding::Utf16)
            .unwrap_err();
        assert_eq!(error, EditError::Stale { current: 5, edit: 5 });
        assert_eq!(document.text(), "abc");
        document
            .apply_changes(7, &[change(None, "new")], PositionEncoding::Utf16)
            .unwrap();
        assert_eq!((document.text().as_str(), document.version), ("new", 7));
    }

    #[test]
    fn several_changes_in_one_notification_apply_in_order() {
        let mut document = Document::new("abc\n", 1, "c");
        let changes = [
            change(Some(((0, 3), (0, 3))), "d"),
            change(Some(((0, 0), (0, 1))), ""),
        ];
        document
            .apply_changes(2, &changes, PositionEncoding::Utf8)
            .unwrap();
        assert_eq!(document.text(), "bcd\n");
    }

    #[test]
    fn positions_round_trip_in_both_encodings() {
        let document = Document::new("a😀b\r\n名c\n", 1, "rust");
        for encoding in [PositionEncoding::Utf8, PositionEncoding::Utf16] {
            for char_index in 0..document.rope.len_chars() {
                let position = document.char_to_position(char_index, encoding);
                let back = document.position_to_char(position, encoding);
                // \r and \n positions clamp to the line end; everything else round-trips.
                let ch = document.rope.char(char_index);
                if ch != '\r' && ch != '\n' {
                    assert_eq!(back, char_index, "{encoding:?} {char_index}");
                }
            }
        }
        assert_eq!(
            document.char_to_position(2, PositionEncoding::Utf16),
            Position::new(0, 3)
        );
        assert_eq!(
            document.char_to_position(2, PositionEncoding::Utf8),
            Position::new(0, 5)
        );
    }
}
