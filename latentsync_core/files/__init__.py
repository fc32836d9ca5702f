"""File-system helpers shared by the library: files published whole, never half written."""
