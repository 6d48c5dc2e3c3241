"""The authenticated dashboard API: request parsing, error mapping, handlers by domain."""
