; Hearth imports for Go.
(import_spec path: (_) @import.module) @import
