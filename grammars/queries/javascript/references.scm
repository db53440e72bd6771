; Hearth references for JavaScript.
(identifier) @reference
(property_identifier) @reference
(shorthand_property_identifier) @reference
