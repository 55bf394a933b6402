from mlops_gates.cli import main

main()
