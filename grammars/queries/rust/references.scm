; Hearth references for Rust: every identifier-like token.
(identifier) @reference
(type_identifier) @reference
(field_identifier) @reference
