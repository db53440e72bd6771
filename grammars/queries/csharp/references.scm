; Hearth references for C#.
(identifier) @reference
