"""The wire: inbound message schemas, outbound CloudEvents, the event stream."""
