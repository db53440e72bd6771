; Hearth references for Bash.
(command_name) @reference
(variable_name) @reference
