"""The `xmodal` command line: one module per subcommand, listed in ``cli.main.COMMANDS``.

Every subcommand module has the same interface (``add_parser(subparsers)``, see ``cli.command``). Slow imports
(torch, faust, the gateway's app) happen inside the handlers, so `xmodal --help` answers at once. The CLI
drives the services and the Faust app; nothing in services/ or streams/ imports it.
"""
