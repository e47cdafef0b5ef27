"""The ``kwstream`` command: main (parser), options (flags shared by several commands, declared
once), one module per command, the dashboard and tables. All printing and exit codes live here."""
