; Hearth imports for C#.
(using_directive [(qualified_name) (identifier)] @import.module) @import
