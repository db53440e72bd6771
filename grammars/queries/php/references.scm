; Hearth references for PHP.
(name) @reference
