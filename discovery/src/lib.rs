//! slcp-discovery: the per-host discovery daemon.
