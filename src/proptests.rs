//! Property tests of the parsers that read untrusted input (filled in by the hardening work).
