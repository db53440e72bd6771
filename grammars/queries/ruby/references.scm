; Hearth references for Ruby.
(identifier) @reference
(constant) @reference
