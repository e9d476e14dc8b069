//! Examples and integration tests of ws-endpoint; nothing to import.
