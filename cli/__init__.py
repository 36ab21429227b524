"""poolkeeper's virsh-shaped command line (`poolkeeper VERB ...`): cli.commands is the table
of verbs and their options, cli.argspec parses them as virsh does, cli.main runs them,
cli.verbs, cli.pool_verbs and cli.volume_verbs hold the handlers, cli.output writes to the
terminal."""
