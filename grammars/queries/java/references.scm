; Hearth references for Java.
(identifier) @reference
(type_identifier) @reference
