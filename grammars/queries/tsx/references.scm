; Hearth references for TypeScript (shared by TSX).
(identifier) @reference
(property_identifier) @reference
(type_identifier) @reference
(shorthand_property_identifier) @reference
