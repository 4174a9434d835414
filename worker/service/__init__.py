"""The service layer: the message bus, one handler per command, the unit of work."""
