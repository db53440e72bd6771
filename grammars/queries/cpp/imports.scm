; Hearth imports for C++.
(preproc_include path: (_) @import.module) @import
