; Hearth references for Lua.
(identifier) @reference
