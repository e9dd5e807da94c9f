//! Workspace-level end-to-end tests of wca live in `tests/`; this library
//! is empty on purpose.
