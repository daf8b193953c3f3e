from fttool.cli import main

main()
