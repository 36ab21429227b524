"""poolkeeper's virsh-shaped command line (`poolkeeper VERB ...`): cli.main parses and runs
it, cli.verbs holds one handler per verb, cli.output writes to the terminal."""
