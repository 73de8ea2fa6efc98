from finsync.cli.main import main

main()
