; Hearth imports for Bash: `source file` and `. file`.
((command name: (command_name) @_command argument: (_) @import.module) @import
  (#match? @_command "^(source|\\.)$"))
