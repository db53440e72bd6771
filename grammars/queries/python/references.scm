; Hearth references for Python.
(identifier) @reference
