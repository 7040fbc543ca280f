from alloy.cli import main

main()
