from maintkit.cli import main

main()
